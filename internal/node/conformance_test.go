package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// canary stands in for key material: it must never show up in an error.
const canary = "-----BEGIN PRIVATE KEY-----\nCANARY-d1c3b0a7\n-----END PRIVATE KEY-----\n"

// withUmask sets the process umask for one test. The umask is process-wide,
// so tests that call it must not run in parallel.
func withUmask(t *testing.T, mask int) {
	t.Helper()
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

// nodeTree is a scratch directory as both sides see it: base is the node
// path handed to the Executor, host maps a node path to the file that the
// test inspects directly.
type nodeTree struct {
	base string
	host func(nodePath string) string
}

func (tr nodeTree) p(rel string) string { return path.Join(tr.base, rel) }

func (tr nodeTree) mkfile(t *testing.T, rel, data string, perm fs.FileMode) {
	t.Helper()
	h := tr.host(tr.p(rel))
	if err := os.MkdirAll(filepath.Dir(h), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(h, perm); err != nil {
		t.Fatal(err)
	}
}

// dotFiles lists names starting with "." in a host directory: leftovers of
// an atomic write.
func dotFiles(t *testing.T, hostDir string) []string {
	t.Helper()
	entries, err := os.ReadDir(hostDir)
	if err != nil {
		t.Fatal(err)
	}
	var dots []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			dots = append(dots, e.Name())
		}
	}
	return dots
}

func hostMode(t *testing.T, h string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(h)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

// testExecutor is the behaviour every Executor must share. It runs against
// Local and, when sshd is available, against SSH on the same machine, so
// the two cannot drift apart.
func testExecutor(t *testing.T, ex Executor, tr nodeTree) {
	ctx := context.Background()
	withUmask(t, 0)

	t.Run("WriteFile", func(t *testing.T) {
		tests := []struct {
			name     string
			existing string // "" for none
			oldPerm  fs.FileMode
			perm     fs.FileMode
		}{
			{"new key is 0600 under umask 000", "", 0, 0o600},
			{"new cert is 0644", "", 0, 0o644},
			{"replacing a 0644 file with a key tightens it to 0600", "old", 0o644, 0o600},
			{"replacing a 0600 file with a manifest gives 0644", "old", 0o600, 0o644},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				rel := path.Join("write", string(rune('a'+i)), "pki", "ca.key")
				if tc.existing != "" {
					tr.mkfile(t, rel, tc.existing, tc.oldPerm)
				} else if err := os.MkdirAll(filepath.Dir(tr.host(tr.p(rel))), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := ex.WriteFile(ctx, tr.p(rel), []byte(canary), tc.perm); err != nil {
					t.Fatalf("WriteFile: %v", err)
				}
				h := tr.host(tr.p(rel))
				got, err := os.ReadFile(h)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(canary, string(got)); diff != "" {
					t.Errorf("contents (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(tc.perm, hostMode(t, h)); diff != "" {
					t.Errorf("mode (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]string(nil), dotFiles(t, filepath.Dir(h))); diff != "" {
					t.Errorf("temporary files left behind (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("WriteFile refused", func(t *testing.T) {
		tests := []struct {
			name  string
			setup func(t *testing.T) (target string, check func(t *testing.T))
		}{
			{"a directory in the target's place stays intact", func(t *testing.T) (string, func(*testing.T)) {
				tr.mkfile(t, "refused/dir/ca.crt/keep", "keep", 0o644)
				return tr.p("refused/dir/ca.crt"), func(t *testing.T) {
					got, err := os.ReadFile(tr.host(tr.p("refused/dir/ca.crt/keep")))
					if err != nil || string(got) != "keep" {
						t.Errorf("directory contents changed: %q, %v", got, err)
					}
					if diff := cmp.Diff([]string(nil), dotFiles(t, tr.host(tr.p("refused/dir")))); diff != "" {
						t.Errorf("temporary files left behind (-want +got):\n%s", diff)
					}
					if diff := cmp.Diff([]string(nil), dotFiles(t, tr.host(tr.p("refused/dir/ca.crt")))); diff != "" {
						t.Errorf("temporary file moved into the directory (-want +got):\n%s", diff)
					}
				}
			}},
			{"missing parent directory", func(t *testing.T) (string, func(*testing.T)) {
				return tr.p("refused/missing/ca.crt"), func(t *testing.T) {}
			}},
			{"dot-dot path", func(t *testing.T) (string, func(*testing.T)) {
				return tr.base + "/../escaped", func(t *testing.T) {
					if _, err := os.Lstat(filepath.Join(filepath.Dir(tr.host(tr.base)), "escaped")); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("file written outside the tree: %v", err)
					}
				}
			}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				target, check := tc.setup(t)
				err := ex.WriteFile(ctx, target, []byte(canary), 0o600)
				if err == nil {
					t.Fatal("WriteFile succeeded, want an error")
				}
				if strings.Contains(err.Error(), "CANARY") {
					t.Errorf("error leaks file contents: %v", err)
				}
				wantPrefix := "node " + ex.Name() + ": write " + target + ": "
				if !strings.HasPrefix(err.Error(), wantPrefix) {
					t.Errorf("error %q does not start with %q", err, wantPrefix)
				}
				check(t)
			})
		}
	})

	t.Run("ReplaceFile", func(t *testing.T) {
		const old = "old contents\n"
		type setupFunc func(t *testing.T, host string)
		file := func(data string, perm fs.FileMode) setupFunc {
			return func(t *testing.T, host string) {
				if err := os.WriteFile(host, []byte(data), perm); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(host, perm); err != nil {
					t.Fatal(err)
				}
			}
		}
		link := func(target string) setupFunc {
			return func(t *testing.T, host string) {
				if err := os.Symlink(target, host); err != nil {
					t.Fatal(err)
				}
			}
		}
		both := func(fns ...setupFunc) setupFunc {
			return func(t *testing.T, host string) {
				for _, fn := range fns {
					fn(t, host)
				}
			}
		}
		tests := []struct {
			name    string
			setup   setupFunc // nil: no target
			prev    Expect
			wantWhy string // "" for success, else the ErrChanged reason
		}{
			{"absent and missing", nil, Expect{Absent: true}, ""},
			{"absent but there", file(old, 0o644), Expect{Absent: true}, changedExists},
			{"absent but a dangling link is there", link("/nowhere"), Expect{Absent: true}, changedExists},
			{"absent but already the new data", file(canary, 0o644), Expect{Absent: true}, ""},
			{"sha256 of the old content", file(old, 0o644), ExpectContent([]byte(old)), ""},
			{"sha256 but the content differs", file("someone else's\n", 0o644), ExpectContent([]byte(old)), changedContent},
			{"sha256 but missing", nil, ExpectContent([]byte(old)), changedMissing},
			{"sha256 but a link to the old content", func(t *testing.T, host string) {
				file(old, 0o644)(t, host+".real")
				link(filepath.Base(host)+".real")(t, host)
			}, ExpectContent([]byte(old)), changedSymlink},
			{"sha256 but already the new data", file(canary, 0o600), ExpectContent([]byte(old)), ""},
			{"any over a file", file(old, 0o644), Expect{Any: true}, ""},
			{"any over a link replaces the link", both(link("/nowhere")), Expect{Any: true}, ""},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				dir := path.Join("replace", strconv.Itoa(i))
				if err := os.MkdirAll(tr.host(tr.p(dir)), 0o755); err != nil {
					t.Fatal(err)
				}
				target := tr.p(path.Join(dir, "ca.key"))
				h := tr.host(target)
				if tc.setup != nil {
					tc.setup(t, h)
				}
				before := snapshot(t, h)
				err := ex.ReplaceFile(ctx, target, []byte(canary), 0o600, tc.prev)
				if diff := cmp.Diff([]string(nil), dotFiles(t, filepath.Dir(h))); diff != "" {
					t.Errorf("temporary files left behind (-want +got):\n%s", diff)
				}
				if tc.wantWhy == "" {
					if err != nil {
						t.Fatalf("ReplaceFile: %v", err)
					}
					if diff := cmp.Diff("file 0600 "+canary, snapshot(t, h)); diff != "" {
						t.Errorf("target (-want +got):\n%s", diff)
					}
					return
				}
				if !errors.Is(err, ErrChanged) {
					t.Fatalf("ReplaceFile error = %v, want ErrChanged", err)
				}
				want := "node " + ex.Name() + ": write " + target + ": " + ErrChanged.Error() + " (" + tc.wantWhy + ")"
				if err.Error() != want {
					t.Errorf("error = %q, want %q", err, want)
				}
				if diff := cmp.Diff(before, snapshot(t, h)); diff != "" {
					t.Errorf("refused write changed the target (-before +after):\n%s", diff)
				}
			})
		}
	})

	t.Run("ReplaceFile refuses a bad expectation", func(t *testing.T) {
		for i, prev := range []Expect{{}, {Any: true, Absent: true}, {SHA256: "ABC"}, {SHA256: strings.Repeat("A", 64)}} {
			target := tr.p(path.Join("badexpect", strconv.Itoa(i)))
			if err := os.MkdirAll(filepath.Dir(tr.host(target)), 0o755); err != nil {
				t.Fatal(err)
			}
			err := ex.ReplaceFile(ctx, target, []byte(canary), 0o600, prev)
			if err == nil || errors.Is(err, ErrChanged) || !strings.HasPrefix(err.Error(), "node "+ex.Name()+": write "+target+": ") {
				t.Errorf("ReplaceFile with %+v: error = %v, want a refusal naming node and path", prev, err)
			}
			if fileExists(t, tr.host(target)) {
				t.Errorf("ReplaceFile with %+v wrote the file", prev)
			}
		}
	})

	t.Run("ReplaceFiles", func(t *testing.T) { testReplaceFiles(t, ex, tr) })

	t.Run("ReadFile", func(t *testing.T) {
		tr.mkfile(t, "read/ca.crt", "cert", 0o644)
		got, err := ex.ReadFile(ctx, tr.p("read/ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff("cert", string(got)); diff != "" {
			t.Errorf("contents (-want +got):\n%s", diff)
		}
		_, err = ex.ReadFile(ctx, tr.p("read/missing.crt"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
		}
		want := "node " + ex.Name() + ": read " + tr.p("read/missing.crt") + ": no such file or directory"
		if err == nil || err.Error() != want {
			t.Errorf("error = %v, want %q", err, want)
		}
	})

	t.Run("Stat", func(t *testing.T) {
		tr.mkfile(t, "stat/ca.key", "12345", 0o600)
		if err := os.Symlink("ca.key", tr.host(tr.p("stat/current.key"))); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			rel  string
			want FileInfo
		}{
			{"file", "stat/ca.key", FileInfo{Exists: true, Size: 5, Mode: 0o600}},
			{"link is followed", "stat/current.key", FileInfo{Exists: true, Size: 5, Mode: 0o600}},
			{"directory", "stat", FileInfo{Exists: true, Size: -1, Mode: fs.ModeDir | 0o755}},
			{"missing", "stat/missing", FileInfo{}},
			{"below a file", "stat/ca.key/x", FileInfo{}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := ex.Stat(ctx, tr.p(tc.rel))
				if err != nil {
					t.Fatal(err)
				}
				if got.Exists && time.Since(got.ModTime).Abs() > time.Minute {
					t.Errorf("mtime %v is not recent", got.ModTime)
				}
				got.ModTime = time.Time{}
				if tc.want.Size < 0 {
					got.Size = -1 // directory sizes depend on the filesystem
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("Stat (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("ReadDir", func(t *testing.T) {
		tr.mkfile(t, "list/kube-apiserver.yaml", "a", 0o600)
		tr.mkfile(t, "list/.kube-apiserver.yaml.tmp-x", "b", 0o600)
		tr.mkfile(t, "list/with space\nand newline", "c", 0o644)
		tr.mkfile(t, "list/..dotdot", "d", 0o644)
		if err := os.Mkdir(tr.host(tr.p("list/sub")), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/nowhere", tr.host(tr.p("list/dangling"))); err != nil {
			t.Fatal(err)
		}
		got, err := ex.ReadDir(ctx, tr.p("list"))
		if err != nil {
			t.Fatal(err)
		}
		want := []DirEntry{
			{Name: "..dotdot", Mode: 0o644},
			{Name: ".kube-apiserver.yaml.tmp-x", Mode: 0o600},
			{Name: "dangling", Mode: fs.ModeSymlink | 0o777},
			{Name: "kube-apiserver.yaml", Mode: 0o600},
			{Name: "sub", Mode: fs.ModeDir | 0o700},
			{Name: "with space\nand newline", Mode: 0o644},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ReadDir (-want +got):\n%s", diff)
		}
		if _, err := ex.ReadDir(ctx, tr.p("list/missing")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing dir: got %v, want fs.ErrNotExist", err)
		}
	})

	t.Run("MkdirAll", func(t *testing.T) {
		if err := os.MkdirAll(tr.host(tr.p("mkdir/existing")), 0o755); err != nil {
			t.Fatal(err)
		}
		tr.mkfile(t, "mkdir/file", "x", 0o644)
		tests := []struct {
			name    string
			rel     string
			wantErr bool
			want    map[string]fs.FileMode
		}{
			{"new key directories are 0700 under umask 000", "mkdir/existing/a/b", false, map[string]fs.FileMode{
				"mkdir/existing":     fs.ModeDir | 0o755, // left as it was
				"mkdir/existing/a":   fs.ModeDir | 0o700,
				"mkdir/existing/a/b": fs.ModeDir | 0o700,
			}},
			{"existing directory is fine", "mkdir/existing", false, map[string]fs.FileMode{
				"mkdir/existing": fs.ModeDir | 0o755,
			}},
			{"a file in the way", "mkdir/file/sub", true, nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				err := ex.MkdirAll(ctx, tr.p(tc.rel), 0o700)
				if (err != nil) != tc.wantErr {
					t.Fatalf("MkdirAll error = %v, want error %v", err, tc.wantErr)
				}
				got := map[string]fs.FileMode{}
				for rel := range tc.want {
					got[rel] = hostMode(t, tr.host(tr.p(rel)))
				}
				if diff := cmp.Diff(tc.want, got, cmpEmptyMap); diff != "" {
					t.Errorf("modes (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("Remove", func(t *testing.T) {
		tr.mkfile(t, "remove/file", "x", 0o644)
		tr.mkfile(t, "remove/full/x", "x", 0o644)
		if err := os.Mkdir(tr.host(tr.p("remove/empty")), 0o755); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name     string
			rel      string
			wantErr  bool
			wantGone bool
		}{
			{"file", "remove/file", false, true},
			{"already gone", "remove/file", false, true},
			{"empty directory", "remove/empty", false, true},
			{"non-empty directory is refused", "remove/full", true, false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				err := ex.Remove(ctx, tr.p(tc.rel))
				if (err != nil) != tc.wantErr {
					t.Fatalf("Remove error = %v, want error %v", err, tc.wantErr)
				}
				_, err = os.Lstat(tr.host(tr.p(tc.rel)))
				if gone := errors.Is(err, fs.ErrNotExist); gone != tc.wantGone {
					t.Errorf("gone = %v, want %v", gone, tc.wantGone)
				}
			})
		}
	})

	t.Run("Run", func(t *testing.T) {
		tests := []struct {
			name     string
			argv     []string
			stdin    string
			want     Result
			wantCode int // of *ExitError; 0 for no error
		}{
			{"stdout", []string{"printf", "%s", "hello"}, "", Result{Stdout: []byte("hello")}, 0},
			{"stdin", []string{"cat"}, "from stdin", Result{Stdout: []byte("from stdin")}, 0},
			{"stderr and exit code", []string{"sh", "-c", "printf out; printf err >&2; exit 3"}, "",
				Result{Stdout: []byte("out"), Stderr: []byte("err"), ExitCode: 3}, 3},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := ex.Run(ctx, tc.argv, strings.NewReader(tc.stdin))
				var exitErr *ExitError
				switch {
				case tc.wantCode == 0 && err != nil:
					t.Fatalf("Run: %v", err)
				case tc.wantCode != 0 && !errors.As(err, &exitErr):
					t.Fatalf("Run error = %v, want *ExitError", err)
				case tc.wantCode != 0 && exitErr.Code != tc.wantCode:
					t.Errorf("exit code %d, want %d", exitErr.Code, tc.wantCode)
				}
				if diff := cmp.Diff(tc.want, got, cmpNilBytes); diff != "" {
					t.Errorf("Result (-want +got):\n%s", diff)
				}
			})
		}
		t.Run("cancelled", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := ex.Run(ctx, []string{"sleep", "20"}, nil)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Run error = %v, want context.DeadlineExceeded", err)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("cancelled Run took %v", took)
			}
		})
	})

	t.Run("Dial", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = c.Write([]byte("hello from the node\n"))
		}()
		conn, err := ex.Dial(ctx, ln.Addr().String())
		if err != nil {
			t.Fatalf("Dial %s: %v", ln.Addr(), err)
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(conn)
		if err != nil || string(got) != "hello from the node\n" {
			t.Errorf("read %q, %v; want the listener's greeting", got, err)
		}

		closed := ln.Addr().String()
		ln.Close()
		_, err = ex.Dial(ctx, closed)
		if err == nil || errors.Is(err, ErrForwardingRefused) || !strings.Contains(err.Error(), closed) {
			t.Errorf("Dial of a closed port: %v, want an error naming %s that is not a forwarding refusal", err, closed)
		}

	})
}

// cmpNilBytes treats nil and empty output alike: whether a buffer was ever
// written to is not behaviour.
var cmpNilBytes = cmp.Transformer("bytes", func(b []byte) string { return string(b) })

var cmpEmptyMap = cmp.FilterValues(func(a, b map[string]fs.FileMode) bool { return len(a) == 0 && len(b) == 0 }, cmp.Ignore())

// snapshot describes what a host path is: "missing", "link -> target" or
// "file <perm> <content>".
func snapshot(t *testing.T, h string) string {
	t.Helper()
	fi, err := os.Lstat(h)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "missing"
	case err != nil:
		t.Fatal(err)
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(h)
		if err != nil {
			t.Fatal(err)
		}
		return "link -> " + target
	}
	data, err := os.ReadFile(h)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("file %04o %s", fi.Mode().Perm(), data)
}

// testReplaceFiles is testExecutor's part for batches: all or nothing.
func testReplaceFiles(t *testing.T, ex Executor, tr nodeTree) {
	ctx := context.Background()
	const (
		oldCrt = "old cert\n"
		oldKey = "old key\n"
		newCrt = "new cert\n"
		newKey = canary
		newFP  = "new front-proxy cert\n"
	)
	// batch is a CA's certificate and key in pki/, and a new certificate
	// in another directory, each case in a directory of its own.
	type batch struct {
		files []FileWrite
		hosts []string // host path of each target
		dirs  []string // host directories the targets are in
	}
	n := 0
	newBatch := func(t *testing.T) batch {
		t.Helper()
		n++
		dir := path.Join("batch", strconv.Itoa(n))
		tr.mkfile(t, path.Join(dir, "pki/ca.crt"), oldCrt, 0o644)
		tr.mkfile(t, path.Join(dir, "pki/ca.key"), oldKey, 0o600)
		if err := os.MkdirAll(tr.host(tr.p(path.Join(dir, "front"))), 0o755); err != nil {
			t.Fatal(err)
		}
		b := batch{files: []FileWrite{
			{Path: tr.p(path.Join(dir, "pki/ca.crt")), Data: []byte(newCrt), Mode: 0o644, Prev: ExpectContent([]byte(oldCrt))},
			{Path: tr.p(path.Join(dir, "pki/ca.key")), Data: []byte(newKey), Mode: 0o600, Prev: ExpectContent([]byte(oldKey))},
			{Path: tr.p(path.Join(dir, "front/front-proxy-ca.crt")), Data: []byte(newFP), Mode: 0o644, Prev: Expect{Absent: true}},
		}}
		for _, f := range b.files {
			b.hosts = append(b.hosts, tr.host(f.Path))
		}
		b.dirs = []string{filepath.Dir(b.hosts[0]), filepath.Dir(b.hosts[2])}
		return b
	}
	snapshots := func(t *testing.T, b batch) []string {
		t.Helper()
		var out []string
		for _, h := range b.hosts {
			if fi, err := os.Lstat(h); err == nil && fi.IsDir() {
				out = append(out, fmt.Sprintf("directory holding %v", dotFiles(t, h)))
				continue
			}
			out = append(out, snapshot(t, h))
		}
		return out
	}
	noTemps := func(t *testing.T, b batch) {
		t.Helper()
		for _, d := range b.dirs {
			if diff := cmp.Diff([]string(nil), dotFiles(t, d)); diff != "" {
				t.Errorf("temporary files left in %s (-want +got):\n%s", d, diff)
			}
		}
	}
	allNew := []string{"file 0644 " + newCrt, "file 0600 " + newKey, "file 0644 " + newFP}
	noLeak := func(t *testing.T, err error) {
		t.Helper()
		if err != nil && strings.Contains(err.Error(), "CANARY") {
			t.Errorf("error leaks file contents: %v", err)
		}
	}

	t.Run("writes every file", func(t *testing.T) {
		b := newBatch(t)
		if err := ex.ReplaceFiles(ctx, b.files); err != nil {
			t.Fatalf("ReplaceFiles: %v", err)
		}
		if diff := cmp.Diff(allNew, snapshots(t, b)); diff != "" {
			t.Errorf("targets (-want +got):\n%s", diff)
		}
		noTemps(t, b)
		// A rerun, as after an ambiguous failure, converges: targets
		// already holding their new data satisfy their Prev.
		if err := ex.ReplaceFiles(ctx, b.files); err != nil {
			t.Fatalf("rerun: %v", err)
		}
		if diff := cmp.Diff(allNew, snapshots(t, b)); diff != "" {
			t.Errorf("targets after the rerun (-want +got):\n%s", diff)
		}
		noTemps(t, b)
	})

	t.Run("odd file names are only names", func(t *testing.T) {
		dir := tr.p("batch/odd")
		if err := os.MkdirAll(tr.host(dir), 0o755); err != nil {
			t.Fatal(err)
		}
		var files []FileWrite
		for i, name := range []string{"-rf", "with space\nand newline", "'$(touch pwned)'\"`x`", "${IFS}*"} {
			files = append(files, FileWrite{Path: path.Join(dir, name), Data: []byte(strconv.Itoa(i)), Mode: 0o600, Prev: Expect{Absent: true}})
		}
		if err := ex.ReplaceFiles(ctx, files); err != nil {
			t.Fatalf("ReplaceFiles: %v", err)
		}
		entries, err := os.ReadDir(tr.host(dir))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(tr.host(dir), e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			got[e.Name()] = string(data)
		}
		want := map[string]string{"-rf": "0", "with space\nand newline": "1", "'$(touch pwned)'\"`x`": "2", "${IFS}*": "3"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("directory (-want +got):\n%s", diff)
		}
	})

	t.Run("one failing precondition changes nothing", func(t *testing.T) {
		tests := []struct {
			name    string
			index   int
			spoil   func(t *testing.T, b batch)
			wantErr string // after "node N: write PATH: "; "" for ErrChanged with wantWhy
			wantWhy string
		}{
			{"the first file's content differs", 0, func(t *testing.T, b batch) {
				if err := os.WriteFile(b.hosts[0], []byte("someone else's\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}, "", changedContent},
			{"the second file is missing", 1, func(t *testing.T, b batch) {
				if err := os.Remove(b.hosts[1]); err != nil {
					t.Fatal(err)
				}
			}, "", changedMissing},
			{"the last file, expected absent, exists", 2, func(t *testing.T, b batch) {
				if err := os.WriteFile(b.hosts[2], []byte("someone else's\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}, "", changedExists},
			{"a directory is in the last file's place", 2, func(t *testing.T, b batch) {
				if err := os.Mkdir(b.hosts[2], 0o755); err != nil {
					t.Fatal(err)
				}
			}, targetIsDir, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				b := newBatch(t)
				tc.spoil(t, b)
				before := snapshots(t, b)
				err := ex.ReplaceFiles(ctx, b.files)
				noLeak(t, err)
				prefix := "node " + ex.Name() + ": write " + b.files[tc.index].Path + ": "
				switch {
				case tc.wantWhy != "":
					if !errors.Is(err, ErrChanged) {
						t.Fatalf("ReplaceFiles error = %v, want ErrChanged", err)
					}
					if want := prefix + ErrChanged.Error() + " (" + tc.wantWhy + ")"; err.Error() != want {
						t.Errorf("error = %q, want %q", err, want)
					}
				case err == nil || errors.Is(err, ErrChanged) || !strings.HasPrefix(err.Error(), prefix) ||
					!strings.Contains(err.Error(), tc.wantErr):
					t.Errorf("ReplaceFiles error = %v, want %q...%q", err, prefix, tc.wantErr)
				}
				if diff := cmp.Diff(before, snapshots(t, b)); diff != "" {
					t.Errorf("a refused batch changed targets (-before +after):\n%s", diff)
				}
				noTemps(t, b)
			})
		}
	})

	t.Run("refused before anything is touched", func(t *testing.T) {
		tests := []struct {
			name  string
			index int // of the file the error names
			edit  func(files []FileWrite) []FileWrite
			want  error // matched with errors.Is; nil for any error
		}{
			{"the same path twice", 2, func(f []FileWrite) []FileWrite {
				return []FileWrite{f[0], f[1], {Path: f[0].Path, Data: []byte("again"), Mode: 0o644, Prev: Expect{Any: true}}}
			}, errTwice},
			{"the same path twice, spelled differently", 1, func(f []FileWrite) []FileWrite {
				dir, base := path.Split(f[0].Path)
				return []FileWrite{f[0], {Path: dir + "./" + base, Data: []byte("again"), Mode: 0o644, Prev: Expect{Any: true}}}
			}, errTwice},
			{"a bad expectation", 1, func(f []FileWrite) []FileWrite {
				f[1].Prev = Expect{}
				return f
			}, nil},
			{"a dot-dot path", 2, func(f []FileWrite) []FileWrite {
				f[2].Path = path.Dir(f[2].Path) + "/../escaped"
				return f
			}, ErrBadPath},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				b := newBatch(t)
				files := tc.edit(slices.Clone(b.files))
				before := snapshots(t, b)
				err := ex.ReplaceFiles(ctx, files)
				noLeak(t, err)
				prefix := "node " + ex.Name() + ": write " + files[tc.index].Path + ": "
				if err == nil || errors.Is(err, ErrChanged) || !strings.HasPrefix(err.Error(), prefix) {
					t.Errorf("ReplaceFiles error = %v, want a refusal starting %q", err, prefix)
				}
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Errorf("ReplaceFiles error = %v, want %v", err, tc.want)
				}
				if diff := cmp.Diff(before, snapshots(t, b)); diff != "" {
					t.Errorf("a refused batch changed targets (-before +after):\n%s", diff)
				}
				noTemps(t, b)
			})
		}
	})

	t.Run("cancelled ctx changes nothing", func(t *testing.T) {
		b := newBatch(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		before := snapshots(t, b)
		err := ex.ReplaceFiles(cctx, b.files)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("ReplaceFiles error = %v, want context.Canceled", err)
		}
		if want := "node " + ex.Name() + ": write " + batchPaths(b.files) + ": "; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %v does not start with %q", err, want)
		}
		if diff := cmp.Diff(before, snapshots(t, b)); diff != "" {
			t.Errorf("a cancelled batch changed targets (-before +after):\n%s", diff)
		}
		noTemps(t, b)
	})

	t.Run("a batch of one is ReplaceFile", func(t *testing.T) {
		b := newBatch(t)
		f := b.files[0]
		f.Prev = ExpectContent([]byte("not what is there\n"))
		batchErr := ex.ReplaceFiles(ctx, []FileWrite{f})
		singleErr := ex.ReplaceFile(ctx, f.Path, f.Data, f.Mode, f.Prev)
		if !errors.Is(batchErr, ErrChanged) || batchErr.Error() != singleErr.Error() {
			t.Errorf("batch of one: %v; ReplaceFile: %v", batchErr, singleErr)
		}
		if err := ex.ReplaceFiles(ctx, b.files[:1]); err != nil {
			t.Fatalf("batch of one: %v", err)
		}
		if diff := cmp.Diff(allNew[0], snapshot(t, b.hosts[0])); diff != "" {
			t.Errorf("target (-want +got):\n%s", diff)
		}
	})

	t.Run("an empty batch does nothing", func(t *testing.T) {
		if err := ex.ReplaceFiles(ctx, nil); err != nil {
			t.Errorf("ReplaceFiles(nil) = %v", err)
		}
	})
}
