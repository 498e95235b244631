package node

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func newTestLocal(t *testing.T, root string) *Local {
	t.Helper()
	l, err := NewLocal("cp-1", root)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLocalConformance(t *testing.T) {
	t.Run("rooted at a copied tree", func(t *testing.T) {
		root := t.TempDir()
		l := newTestLocal(t, root)
		if err := os.Mkdir(filepath.Join(l.Root(), "scratch"), 0o755); err != nil {
			t.Fatal(err)
		}
		testExecutor(t, l, nodeTree{base: "/scratch", host: func(p string) string { return filepath.Join(l.Root(), p) }})
	})
	t.Run("rooted at /", func(t *testing.T) {
		dir, err := filepath.EvalSymlinks(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		testExecutor(t, newTestLocal(t, "/"), nodeTree{base: dir, host: func(p string) string { return p }})
	})
}

// syncSpy stands in for fsync: it records what was synced, what the file
// looked like at that moment, and fails where told to.
type syncSpy struct {
	calls  []syncCall
	failOn func(fi fs.FileInfo) error
}

type syncCall struct {
	Name string
	Mode fs.FileMode
}

func (s *syncSpy) sync(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	s.calls = append(s.calls, syncCall{Name: f.Name(), Mode: fi.Mode()})
	if s.failOn != nil {
		return s.failOn(fi)
	}
	return nil
}

func TestLocalWriteFileSteps(t *testing.T) {
	withUmask(t, 0)
	eio := func(fs.FileInfo) error { return syscall.EIO }
	eioOnDir := func(fi fs.FileInfo) error {
		if fi.IsDir() {
			return syscall.EIO
		}
		return nil
	}
	tests := []struct {
		name      string
		failOn    func(fs.FileInfo) error
		wantErr   string // "" for success
		wantData  string
		wantSyncs int
	}{
		{
			name:      "temp file then directory are synced",
			wantData:  "new",
			wantSyncs: 2,
		},
		{
			name:      "fsync error on the temp file keeps the old file",
			failOn:    eio,
			wantErr:   "node cp-1: write /etc/kubernetes/manifests/kube-apiserver.yaml: fsync temporary file: input/output error",
			wantData:  "old",
			wantSyncs: 1,
		},
		{
			name:      "fsync error on the directory is reported",
			failOn:    eioOnDir,
			wantErr:   "node cp-1: write /etc/kubernetes/manifests/kube-apiserver.yaml: new file is in place but its directory could not be synced, so it may not survive a crash: fsync directory: input/output error",
			wantData:  "new",
			wantSyncs: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLocal(t, t.TempDir())
			spy := &syncSpy{failOn: tc.failOn}
			l.syncFile = spy.sync
			dir := filepath.Join(l.Root(), "etc/kubernetes/manifests")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(dir, "kube-apiserver.yaml")
			if err := os.WriteFile(target, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}

			err := l.WriteFile(context.Background(), "/etc/kubernetes/manifests/kube-apiserver.yaml", []byte("new"), 0o600)

			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff(tc.wantErr, gotErr); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if tc.wantErr != "" && !errors.Is(err, syscall.EIO) {
				t.Errorf("error %v does not wrap EIO", err)
			}
			got, _ := os.ReadFile(target)
			if diff := cmp.Diff(tc.wantData, string(got)); diff != "" {
				t.Errorf("target contents (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string(nil), dotFiles(t, dir)); diff != "" {
				t.Errorf("temporary files left behind (-want +got):\n%s", diff)
			}
			if len(spy.calls) != tc.wantSyncs {
				t.Fatalf("fsync calls %+v, want %d", spy.calls, tc.wantSyncs)
			}
			// The first fsync is of the temporary file: next to the target,
			// dot-prefixed so that the kubelet ignores it, already at its
			// final mode.
			tmp := spy.calls[0]
			if filepath.Dir(tmp.Name) != dir || !strings.HasPrefix(filepath.Base(tmp.Name), ".kube-apiserver.yaml.") {
				t.Errorf("temporary file %s is not a dot file in %s", tmp.Name, dir)
			}
			if diff := cmp.Diff(fs.FileMode(0o600), tmp.Mode); diff != "" {
				t.Errorf("temporary file mode at fsync (-want +got):\n%s", diff)
			}
			if tc.wantSyncs == 2 {
				want := syncCall{Name: dir, Mode: fs.ModeDir | 0o755}
				if diff := cmp.Diff(want, spy.calls[1]); diff != "" {
					t.Errorf("second fsync (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestLocalWriteFileKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	l := newTestLocal(t, t.TempDir())
	target := filepath.Join(l.Root(), "admin.conf")
	if err := os.WriteFile(target, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(target, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	if err := l.WriteFile(context.Background(), "/admin.conf", []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if diff := cmp.Diff([2]uint32{1234, 5678}, [2]uint32{st.Uid, st.Gid}); diff != "" {
		t.Errorf("owner (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(fs.FileMode(0o600), fi.Mode()); diff != "" {
		t.Errorf("mode after chown (-want +got):\n%s", diff)
	}
}

func TestLocalPathsStayUnderRoot(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	for _, d := range []string{"root/var/lib/kubelet/pki", "root/etc", "outside"} {
		if err := os.MkdirAll(filepath.Join(parent, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel, data string) {
		if err := os.WriteFile(filepath.Join(parent, rel), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, rel string) {
		if err := os.Symlink(target, filepath.Join(parent, rel)); err != nil {
			t.Fatal(err)
		}
	}
	write("root/var/lib/kubelet/pki/kubelet-client-2026.pem", "in tree")
	write("outside/secret", "outside")
	// kubelet writes its current client certificate as an absolute link.
	link("/var/lib/kubelet/pki/kubelet-client-2026.pem", "root/var/lib/kubelet/pki/kubelet-client-current.pem")
	link("../../../outside", "root/etc/up")
	link(filepath.Join(parent, "outside"), "root/etc/host-abs")
	l := newTestLocal(t, root)
	ctx := context.Background()

	reads := []struct {
		name    string
		path    string
		want    string
		wantErr error
	}{
		{"absolute link resolves inside the tree", "/var/lib/kubelet/pki/kubelet-client-current.pem", "in tree", nil},
		{"dot-dot is refused", "/../outside/secret", "", ErrBadPath},
		{"dot-dot in the middle is refused", "/etc/../../outside/secret", "", ErrBadPath},
		{"relative path is refused", "outside/secret", "", ErrBadPath},
		{"empty path is refused", "", "", ErrBadPath},
		{"relative link stops at the root", "/etc/up/secret", "", fs.ErrNotExist},
		{"host-absolute link is re-rooted", "/etc/host-abs/secret", "", fs.ErrNotExist},
	}
	for _, tc := range reads {
		t.Run("read/"+tc.name, func(t *testing.T) {
			got, err := l.ReadFile(ctx, tc.path)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ReadFile(%q) error = %v, want %v", tc.path, err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("contents (-want +got):\n%s", diff)
			}
			if err != nil && strings.Contains(err.Error(), parent) {
				t.Errorf("error %q shows the host path instead of the node path", err)
			}
		})
	}

	t.Run("writes through an escaping link land inside the tree", func(t *testing.T) {
		if err := os.MkdirAll(filepath.Join(root, "outside"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := l.WriteFile(ctx, "/etc/up/secret", []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(parent, "outside/secret"))
		if err != nil || string(got) != "outside" {
			t.Errorf("file outside the root changed: %q, %v", got, err)
		}
		got, err = os.ReadFile(filepath.Join(root, "outside/secret"))
		if err != nil || string(got) != "mine" {
			t.Errorf("file inside the root: %q, %v", got, err)
		}
	})

	ops := map[string]func(p string) error{
		"write":  func(p string) error { return l.WriteFile(ctx, p, []byte("x"), 0o600) },
		"stat":   func(p string) error { _, err := l.Stat(ctx, p); return err },
		"list":   func(p string) error { _, err := l.ReadDir(ctx, p); return err },
		"mkdir":  func(p string) error { return l.MkdirAll(ctx, p, 0o700) },
		"remove": func(p string) error { return l.Remove(ctx, p) },
	}
	for name, op := range ops {
		t.Run(name+" refuses dot-dot", func(t *testing.T) {
			if err := op("/../outside/new"); !errors.Is(err, ErrBadPath) {
				t.Errorf("error = %v, want ErrBadPath", err)
			}
			if _, err := os.Lstat(filepath.Join(parent, "outside/new")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("something was created outside the root: %v", err)
			}
		})
	}
}

func TestLocalRunNotFound(t *testing.T) {
	l := newTestLocal(t, t.TempDir())
	_, err := l.Run(context.Background(), []string{"/nonexistent/carotate-test-binary"}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "node cp-1: run /nonexistent/carotate-test-binary: ") {
		t.Errorf("error = %v, want one naming the node and the command", err)
	}
}

func TestNewLocalRefusesBadRoot(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, root := range map[string]string{"missing": filepath.Join(t.TempDir(), "missing"), "a file": file} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewLocal("cp-1", root); err == nil {
				t.Errorf("NewLocal(%q) succeeded, want an error", root)
			}
		})
	}
}

// TestLocalReplaceFileChecks covers what ReplaceFile checks around the
// rename, by acting from inside fsync: just before the rename (ctx, the
// target's content) and just after it (the read-back).
func TestLocalReplaceFileChecks(t *testing.T) {
	const p = "/etc/kubernetes/pki/ca.crt"
	tests := []struct {
		name string
		// during runs at each fsync; file is false for the directory.
		during   func(cancel context.CancelFunc, target string, file bool)
		wantIs   error
		wantErr  string
		wantData string
	}{
		{
			name: "ctx ends before the rename",
			during: func(cancel context.CancelFunc, _ string, file bool) {
				if file {
					cancel()
				}
			},
			wantIs:   context.Canceled,
			wantErr:  "node cp-1: write " + p + ": context canceled",
			wantData: "old",
		},
		{
			name: "target changed while the data was written",
			during: func(_ context.CancelFunc, target string, file bool) {
				if file {
					_ = os.WriteFile(target, []byte("someone else's"), 0o644)
				}
			},
			wantIs:   ErrChanged,
			wantErr:  "node cp-1: write " + p + ": " + ErrChanged.Error() + " (its content differs)",
			wantData: "someone else's",
		},
		{
			name: "read-back finds other content",
			during: func(_ context.CancelFunc, target string, file bool) {
				if !file {
					_ = os.WriteFile(target, []byte("tampered"), 0o600)
				}
			},
			wantErr:  "node cp-1: write " + p + ": read back after the write: the file does not hold the data written",
			wantData: "tampered",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLocal(t, t.TempDir())
			target := filepath.Join(l.Root(), p)
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(target, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			l.syncFile = func(f *os.File) error {
				fi, err := f.Stat()
				if err != nil {
					return err
				}
				tc.during(cancel, target, !fi.IsDir())
				return f.Sync()
			}

			err := l.ReplaceFile(ctx, p, []byte(canary), 0o644, ExpectContent([]byte("old")))

			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v does not match %v", err, tc.wantIs)
			}
			got, _ := os.ReadFile(target)
			if diff := cmp.Diff(tc.wantData, string(got)); diff != "" {
				t.Errorf("target contents (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string(nil), dotFiles(t, filepath.Dir(target))); diff != "" {
				t.Errorf("temporary files left behind (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLocalReplaceFilesSteps checks the order of a batch: every temporary
// file is synced before the first rename, the renames follow one another in
// the order given, and the directories are synced last, once each.
func TestLocalReplaceFilesSteps(t *testing.T) {
	withUmask(t, 0)
	l := newTestLocal(t, t.TempDir())
	pki := filepath.Join(l.Root(), "etc/kubernetes/pki")
	if err := os.MkdirAll(filepath.Join(pki, "etcd"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ca.crt", "ca.key", "etcd/ca.crt"} {
		if err := os.WriteFile(filepath.Join(pki, name), []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var steps []string
	rel := func(h string) string { return strings.TrimPrefix(h, l.Root()) }
	l.syncFile = func(f *os.File) error {
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if fi.IsDir() {
			steps = append(steps, "sync dir "+rel(f.Name()))
		} else {
			steps = append(steps, "sync temp of "+strings.SplitN(filepath.Base(f.Name()), ".tmp-", 2)[0])
		}
		return nil
	}
	var failRename string // host target whose rename fails
	l.rename = func(oldpath, newpath string) error {
		if newpath == failRename {
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EIO}
		}
		steps = append(steps, "rename to "+rel(newpath))
		return os.Rename(oldpath, newpath)
	}
	files := []FileWrite{
		{Path: "/etc/kubernetes/pki/ca.crt", Data: []byte("new crt"), Mode: 0o644, Prev: ExpectContent([]byte("old"))},
		{Path: "/etc/kubernetes/pki/ca.key", Data: []byte("new key"), Mode: 0o600, Prev: ExpectContent([]byte("old"))},
		{Path: "/etc/kubernetes/pki/etcd/ca.crt", Data: []byte("new etcd"), Mode: 0o644, Prev: ExpectContent([]byte("old"))},
	}

	if err := l.ReplaceFiles(context.Background(), files); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"sync temp of .ca.crt",
		"sync temp of .ca.key",
		"sync temp of .ca.crt", // etcd/
		"rename to /etc/kubernetes/pki/ca.crt",
		"rename to /etc/kubernetes/pki/ca.key",
		"rename to /etc/kubernetes/pki/etcd/ca.crt",
		"sync dir /etc/kubernetes/pki",
		"sync dir /etc/kubernetes/pki/etcd",
	}
	if diff := cmp.Diff(want, steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}

	t.Run("a rename failing mid-batch says what was replaced", func(t *testing.T) {
		for i := range files {
			files[i].Prev = ExpectContent(files[i].Data)
			files[i].Data = []byte("newer " + string(files[i].Data))
		}
		failRename = filepath.Join(pki, "ca.key")
		err := l.ReplaceFiles(context.Background(), files)
		wantErr := "node cp-1: write /etc/kubernetes/pki/ca.key: rename temporary file into place: input/output error; " +
			"the 1 before it in the batch were replaced, the rest left as they were"
		if err == nil || err.Error() != wantErr {
			t.Errorf("error = %v, want %q", err, wantErr)
		}
		got := map[string]string{}
		for _, name := range []string{"ca.crt", "ca.key", "etcd/ca.crt"} {
			data, _ := os.ReadFile(filepath.Join(pki, name))
			got[name] = string(data)
		}
		wantData := map[string]string{"ca.crt": "newer new crt", "ca.key": "new key", "etcd/ca.crt": "new etcd"}
		if diff := cmp.Diff(wantData, got); diff != "" {
			t.Errorf("targets (-want +got):\n%s", diff)
		}
		for _, d := range []string{pki, filepath.Join(pki, "etcd")} {
			if dots := dotFiles(t, d); len(dots) > 0 {
				t.Errorf("temporary files left in %s: %v", d, dots)
			}
		}
	})
}
