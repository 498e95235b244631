package node

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// counting passes every call to the node and counts the reads.
type counting struct {
	Executor
	reads map[string]int
}

func (c *counting) ReadFile(ctx context.Context, p string) ([]byte, error) {
	c.reads["read "+p]++
	return c.Executor.ReadFile(ctx, p)
}

func (c *counting) Stat(ctx context.Context, p string) (FileInfo, error) {
	c.reads["stat "+p]++
	return c.Executor.Stat(ctx, p)
}

func (c *counting) ReadDir(ctx context.Context, p string) ([]DirEntry, error) {
	c.reads["list "+p]++
	return c.Executor.ReadDir(ctx, p)
}

// snapshotTree builds, under a fresh directory, a tree with what a node's
// /etc/kubernetes may hold: keys, nested directories, dot files, relative
// and absolute links, a link to a directory, a link out of the tree, a
// dangling link, a hard link and an odd name. It returns the tree's root
// and a directory outside it.
func snapshotTree(t *testing.T) (root, outside string) {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root, outside = filepath.Join(base, "kubernetes"), filepath.Join(base, "elsewhere")
	for _, d := range []string{"pki/etcd", "manifests", "empty", "../elsewhere"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]fs.FileMode{
		"pki/ca.crt": 0o644, "pki/ca.key": 0o600, "pki/etcd/ca.crt": 0o644, "admin.conf": 0o600,
		"manifests/kube-apiserver.yaml": 0o600, "manifests/.kube-apiserver.yaml.tmp-x": 0o600, "odd name\nwith newline": 0o640,
		"../elsewhere/outside.crt": 0o644,
	}
	for name, mode := range files {
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, []byte("content of "+name+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"pki/current.pem": "ca.crt", "abs.crt": filepath.Join(root, "pki/ca.crt"), "pki-link": "pki",
		"out.crt": filepath.Join(outside, "outside.crt"), "out-dir": outside, "dangling": "nowhere", "loop": "loop",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(root, "pki/ca.crt"), filepath.Join(root, "pki/hard.crt")); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(root, "pki/ca.key"), old, old); err != nil {
		t.Fatal(err)
	}
	return root, outside
}

// TestSnapshotAnswersAsTheNode: over a real sshd, a snapshot answers every
// read under its roots exactly as the node does, without asking the node,
// and sends what lies outside them to the node.
func TestSnapshotAnswersAsTheNode(t *testing.T) {
	d := startSSHD(t, "ed25519")
	s := d.dial(t, d.config(d.knownHosts(t, d.hostKeys[0])))
	root, outside := snapshotTree(t)
	missing := filepath.Join(filepath.Dir(root), "missing-root")
	ctx := context.Background()

	c := &counting{Executor: s, reads: map[string]int{}}
	snap, err := takeSnapshot(ctx, c, []string{root, missing})
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{root, missing, missing + "/x", outside + "/outside.crt"}
	for _, rel := range []string{"pki", "pki/ca.crt", "pki/ca.key", "pki/etcd", "pki/etcd/ca.crt", "pki/hard.crt", "pki/current.pem",
		"pki/nope", "admin.conf", "manifests", "manifests/kube-apiserver.yaml", "empty", "odd name\nwith newline",
		"abs.crt", "pki-link", "pki-link/ca.key", "pki-link/etcd/ca.crt", "out.crt", "out-dir", "out-dir/outside.crt",
		"dangling", "dangling/x", "loop", "pki/ca.crt/x", "nope/deeper"} {
		paths = append(paths, filepath.Join(root, rel))
	}
	errKind := func(err error) string {
		switch {
		case err == nil:
			return ""
		case errors.Is(err, fs.ErrNotExist):
			return "not exist"
		}
		return "error"
	}
	for _, p := range paths {
		wantData, wantErr := s.ReadFile(ctx, p)
		gotData, gotErr := snap.ReadFile(ctx, p)
		if errKind(gotErr) != errKind(wantErr) || string(gotData) != string(wantData) {
			t.Errorf("ReadFile(%q) = %q, %v; the node says %q, %v", p, gotData, gotErr, wantData, wantErr)
		}
		wantFI, wantErr := s.Stat(ctx, p)
		gotFI, gotErr := snap.Stat(ctx, p)
		if diff := cmp.Diff(wantFI, gotFI); diff != "" || errKind(gotErr) != errKind(wantErr) {
			t.Errorf("Stat(%q): %v, the node says %v (-node +snapshot):\n%s", p, gotErr, wantErr, diff)
		}
		wantDir, wantErr := s.ReadDir(ctx, p)
		gotDir, gotErr := snap.ReadDir(ctx, p)
		if diff := cmp.Diff(wantDir, gotDir); diff != "" || errKind(gotErr) != errKind(wantErr) {
			t.Errorf("ReadDir(%q): %v, the node says %v (-node +snapshot):\n%s", p, gotErr, wantErr, diff)
		}
	}
	// Only what lies outside the roots (through a link, or too many
	// links), and directories' Stat, went to the node.
	for call := range c.reads {
		_, p, _ := strings.Cut(call, " ")
		leadsOut := strings.HasPrefix(p, filepath.Join(root, "out")) || p == filepath.Join(root, "loop")
		if strings.HasPrefix(p, outside) || leadsOut || strings.HasPrefix(call, "stat ") {
			continue
		}
		t.Errorf("the snapshot asked the node: %s", call)
	}
	if c.reads["read "+filepath.Join(root, "out.crt")] != 1 {
		t.Errorf("a link out of the roots was not read from the node: %v", c.reads)
	}

	for _, err := range []error{
		snap.WriteFile(ctx, root+"/pki/ca.crt", []byte("x"), 0o644),
		snap.Remove(ctx, root+"/pki/ca.crt"),
		snap.MkdirAll(ctx, root+"/new", 0o700),
	} {
		if !errors.Is(err, errReadOnly) {
			t.Errorf("a write through a snapshot: %v, want it refused", err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(root, "pki/ca.crt")); string(got) != "content of pki/ca.crt\n" {
		t.Errorf("ca.crt now holds %q", got)
	}
}

// A tree larger than MaxSnapshot, or an executor that reads files
// cheaply, gets no snapshot, and says why.
func TestNoSnapshot(t *testing.T) {
	d := startSSHD(t, "ed25519")
	s := d.dial(t, d.config(d.knownHosts(t, d.hostKeys[0])))
	root, _ := snapshotTree(t)
	defer func(n int) { MaxSnapshot = n }(MaxSnapshot)
	MaxSnapshot = 0
	if _, err := TakeSnapshot(context.Background(), s, []string{root}); !errors.Is(err, ErrNoSnapshot) || !strings.Contains(err.Error(), "more than 0 KiB") {
		t.Errorf("a tree over the limit: %v", err)
	}
	local, err := NewLocal("cp-1", "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TakeSnapshot(context.Background(), local, []string{root}); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("a local executor: %v, want ErrNoSnapshot", err)
	}
	if _, err := TakeSnapshot(context.Background(), s, []string{"relative/path"}); err == nil || errors.Is(err, ErrNoSnapshot) {
		t.Errorf("a relative root: %v, want it refused", err)
	}
}
