package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// tarEntry is what the tests compare of a tar header and its content.
type tarEntry struct {
	Name     string
	Type     byte
	Mode     int64
	Linkname string
	Body     string
}

// readTar lists every entry of a tar stream, failing the test on a
// malformed one, and checks the ownership and mtime rules of Write.
func readTar(t *testing.T, data []byte) []tarEntry {
	t.Helper()
	var entries []tarEntry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || !hdr.ModTime.Equal(epoch()) {
			t.Errorf("%s: uid %d gid %d mtime %v, want 0 0 %v", hdr.Name, hdr.Uid, hdr.Gid, hdr.ModTime, epoch())
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s: %v", hdr.Name, err)
		}
		entries = append(entries, tarEntry{Name: hdr.Name, Type: hdr.Typeflag, Mode: hdr.Mode, Linkname: hdr.Linkname, Body: string(body)})
	}
}

func entryBody(t *testing.T, entries []tarEntry, name string) string {
	t.Helper()
	for _, e := range entries {
		if e.Name == name {
			return e.Body
		}
	}
	t.Fatalf("no entry %s in %v", name, names(entries))
	return ""
}

func names(entries []tarEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Name)
	}
	return out
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// archive is a parsed docker-archive as Write produced it.
type archive struct {
	id       string
	manifest []manifestEntry
	config   imageConfig
	layer    []tarEntry
}

func writeArchive(t *testing.T, spec Spec) (archive, []byte) {
	t.Helper()
	var buf bytes.Buffer
	id, err := Write(&buf, spec)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	outer := readTar(t, buf.Bytes())
	a := archive{id: id}
	if err := json.Unmarshal([]byte(entryBody(t, outer, "manifest.json")), &a.manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(a.manifest) != 1 || len(a.manifest[0].Layers) != 1 {
		t.Fatalf("manifest.json = %+v, want one image with one layer", a.manifest)
	}
	configJSON := entryBody(t, outer, a.manifest[0].Config)
	if got, want := "sha256:"+sha256Hex(configJSON), id; got != want {
		t.Errorf("config digest %s, Write returned %s", got, want)
	}
	if err := json.Unmarshal([]byte(configJSON), &a.config); err != nil {
		t.Fatalf("config: %v", err)
	}
	layer := entryBody(t, outer, a.manifest[0].Layers[0])
	if got := "sha256:" + sha256Hex(layer); len(a.config.RootFS.DiffIDs) != 1 || a.config.RootFS.DiffIDs[0] != got {
		t.Errorf("config diff_ids %v, layer digest %s", a.config.RootFS.DiffIDs, got)
	}
	a.layer = readTar(t, []byte(layer))
	return a, buf.Bytes()
}

func TestWriteLayout(t *testing.T) {
	dir := t.TempDir()
	tool := filepath.Join(dir, "tool")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o750); err != nil {
		t.Fatal(err)
	}
	// A host symlink as Source must land as a regular file with the
	// target's bytes, which is how the loader's /lib64 link is copied.
	link := filepath.Join(dir, "tool-link")
	if err := os.Symlink(tool, link); err != nil {
		t.Fatal(err)
	}
	spec := Spec{
		Ref: "registry.k8s.io/kube-apiserver:v1.37.2",
		Files: []File{
			{Path: "/usr/local/bin/tool", Source: tool},
			{Path: "/lib64/copied", Source: link},
			{Path: "/etc/passwd", Data: []byte("root:x:0:0::/:/bin/sh\n")},
			{Path: "/usr/bin/tool", Symlink: "../local/bin/tool"},
			{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
			{Path: "/usr/local/bin/setuid", Data: []byte{}, Mode: fs.ModeSetuid | 0o755},
		},
		Env:        []string{"GODEBUG=x509sha1=0"},
		Entrypoint: []string{"/usr/local/bin/tool"},
		Cmd:        []string{"--help"},
	}
	a, raw := writeArchive(t, spec)

	layerDir := a.config.RootFS.DiffIDs[0][len("sha256:"):]
	wantManifest := []manifestEntry{{
		Config:   a.id[len("sha256:"):] + ".json",
		RepoTags: []string{"registry.k8s.io/kube-apiserver:v1.37.2"},
		Layers:   []string{layerDir + "/layer.tar"},
	}}
	if diff := cmp.Diff(wantManifest, a.manifest); diff != "" {
		t.Errorf("manifest.json (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{wantManifest[0].Config, layerDir + "/", layerDir + "/layer.tar", "manifest.json"}, names(readTar(t, raw))); diff != "" {
		t.Errorf("archive entries (-want +got):\n%s", diff)
	}

	wantConfig := imageConfig{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Config: containerConfig{
			Env:        []string{DefaultPath, "GODEBUG=x509sha1=0"},
			Entrypoint: []string{"/usr/local/bin/tool"},
			Cmd:        []string{"--help"},
			WorkingDir: "/",
		},
		RootFS: rootFS{Type: "layers", DiffIDs: a.config.RootFS.DiffIDs},
	}
	if diff := cmp.Diff(wantConfig, a.config); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}

	wantLayer := []tarEntry{
		{Name: "etc/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "etc/passwd", Type: tar.TypeReg, Mode: 0o644, Body: "root:x:0:0::/:/bin/sh\n"},
		{Name: "lib64/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "lib64/copied", Type: tar.TypeReg, Mode: 0o750, Body: "#!/bin/sh\n"},
		{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
		{Name: "usr/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/bin/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/bin/tool", Type: tar.TypeSymlink, Mode: 0o777, Linkname: "../local/bin/tool"},
		{Name: "usr/local/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/local/bin/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/local/bin/setuid", Type: tar.TypeReg, Mode: 0o4755},
		{Name: "usr/local/bin/tool", Type: tar.TypeReg, Mode: 0o750, Body: "#!/bin/sh\n"},
	}
	if diff := cmp.Diff(wantLayer, a.layer); diff != "" {
		t.Errorf("layer (-want +got):\n%s", diff)
	}
}

func TestWriteKeepsGivenPath(t *testing.T) {
	a, _ := writeArchive(t, Spec{
		Ref:        "registry.k8s.io/pause:3.10.2",
		Files:      []File{{Path: "/pause", Data: []byte("x"), Mode: 0o755}},
		Env:        []string{"PATH=/bin"},
		WorkingDir: "/work",
	})
	if diff := cmp.Diff(containerConfig{Env: []string{"PATH=/bin"}, WorkingDir: "/work"}, a.config.Config); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestWriteIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	var files []File
	// Many files listed out of order: map iteration inside Write must not
	// leak into the output.
	for _, name := range []string{"z", "a", "m/n/o", "b/c", "m/a"} {
		host := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(host, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, File{Path: "/srv/" + name, Source: host})
	}
	spec := Spec{Ref: "example.test/det:v1", Files: files}
	var first, second bytes.Buffer
	id1, err := Write(&first, spec)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := Write(&second, spec)
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 || !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Errorf("two writes differ: ids %s %s, %d and %d bytes", id1, id2, first.Len(), second.Len())
	}
}

func TestWriteRejectsInvalidSpecs(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "f")
	if err := os.WriteFile(host, []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		spec  Spec
		isErr error
	}{
		{name: "empty ref", spec: Spec{}, isErr: ErrInvalidSpec},
		{name: "ref with space", spec: Spec{Ref: "a b"}, isErr: ErrInvalidSpec},
		{name: "relative path", spec: Spec{Ref: "r", Files: []File{{Path: "bin/x", Data: []byte{}}}}, isErr: ErrInvalidSpec},
		{name: "unclean path", spec: Spec{Ref: "r", Files: []File{{Path: "/bin/../x", Data: []byte{}}}}, isErr: ErrInvalidSpec},
		{name: "root", spec: Spec{Ref: "r", Files: []File{{Path: "/", Mode: fs.ModeDir}}}, isErr: ErrInvalidSpec},
		{name: "listed twice", spec: Spec{Ref: "r", Files: []File{{Path: "/x", Data: []byte{}}, {Path: "/x", Data: []byte{}}}}, isErr: ErrInvalidSpec},
		{name: "two contents", spec: Spec{Ref: "r", Files: []File{{Path: "/x", Data: []byte{}, Symlink: "y"}}}, isErr: ErrInvalidSpec},
		{name: "no content", spec: Spec{Ref: "r", Files: []File{{Path: "/x"}}}, isErr: ErrInvalidSpec},
		{name: "parent is a file", spec: Spec{Ref: "r", Files: []File{{Path: "/x", Data: []byte{}}, {Path: "/x/y", Data: []byte{}}}}, isErr: ErrInvalidSpec},
		{name: "source is a directory", spec: Spec{Ref: "r", Files: []File{{Path: "/x", Source: dir}}}, isErr: ErrInvalidSpec},
		{name: "source missing", spec: Spec{Ref: "r", Files: []File{{Path: "/x", Source: filepath.Join(dir, "missing")}}}, isErr: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			_, err := Write(&buf, tt.spec)
			if !errors.Is(err, tt.isErr) {
				t.Fatalf("Write error = %v, want %v", err, tt.isErr)
			}
			if buf.Len() != 0 {
				t.Errorf("Write wrote %d bytes before failing validation", buf.Len())
			}
		})
	}
}
