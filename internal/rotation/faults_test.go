package rotation

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/node"
)

// TestSecretsAre0600 checks that a secret found looser than 0600 is not
// written back that loose at any stage that changes it, and that only the
// original stage (rollback) keeps its original mode.
func TestSecretsAre0600(t *testing.T) {
	m, nodes := fixture(t)
	cp := nodes[0]
	for _, p := range []string{caKey, frontProxyKey, adminConf} {
		f := m.Originals[fileKey{cp.Name, p}]
		f.Mode = 0o644
		m.Originals[fileKey{cp.Name, p}] = f
	}
	for _, p := range []string{caKey, frontProxyKey, adminConf, newCAKey, signingKey} {
		for _, s := range stages {
			w, err := m.At(cp, p, s)
			if err != nil {
				t.Fatal(err)
			}
			if w.Absent {
				continue
			}
			want := SecretMode
			if s == Original {
				want = m.Originals[fileKey{cp.Name, p}].Mode
			}
			if w.Mode != want {
				t.Errorf("%s at %s: mode %04o, want %04o", p, s, w.Mode, want)
			}
		}
	}
}

func localNode(t *testing.T, files map[string]string) (*Node, string) {
	t.Helper()
	root := t.TempDir()
	for p, data := range files {
		host := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(host), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(host, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ex, err := node.NewLocal("cp-1", root)
	if err != nil {
		t.Fatal(err)
	}
	return &Node{Name: "cp-1", ControlPlane: true, Exec: ex}, root
}

func TestBeforeStepRefusesStrays(t *testing.T) {
	tests := []struct {
		name  string
		extra map[string]string
		want  string
	}{
		{"clean", nil, ""},
		{"a copy of the scheduler's manifest", map[string]string{ManifestsDir + "/kube-scheduler-copy.yaml": schedYAML}, ManifestsDir + "/kube-scheduler-copy.yaml"},
		{"a backup beside it", map[string]string{ManifestsDir + "/kube-scheduler.yaml.orig": schedYAML}, ManifestsDir + "/kube-scheduler.yaml.orig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{kcmManifest: kcmYAML, schedManifest: schedYAML}
			for p, d := range tt.extra {
				files[p] = d
			}
			n, _ := localNode(t, files)
			r := &Rotation{Nodes: []*Node{n}}
			err := r.BeforeStep(context.Background(), "cp-1")
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var stray *StrayManifestError
			if !errors.As(err, &stray) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "node cp-1") {
				t.Fatalf("BeforeStep = %v, want a StrayManifestError naming cp-1 and %s", err, tt.want)
			}
		})
	}
}

func TestStaticPodTimeoutSaysWhatItSaw(t *testing.T) {
	timeout := errors.New("context deadline exceeded")
	last := staticPodState{Exists: true, Restart: "r-1/trust", Hash: "abc", Ready: false, Containers: []string{"kube-scheduler waiting: CrashLoopBackOff back-off"}}
	t.Run("a duplicate definition is named as the cause", func(t *testing.T) {
		n, _ := localNode(t, map[string]string{schedManifest: schedYAML, ManifestsDir + "/sched.yaml": schedYAML})
		r := &Rotation{Nodes: []*Node{n}}
		err := r.staticPodTimeout(context.Background(), "kube-scheduler", "cp-1", "abc", "r-1/switch", last, timeout)
		var stray *StrayManifestError
		if !errors.As(err, &stray) || !strings.Contains(err.Error(), ManifestsDir+"/sched.yaml") {
			t.Fatalf("got %v, want the stray named as the cause", err)
		}
	})
	t.Run("otherwise the mirror pod and its containers", func(t *testing.T) {
		n, _ := localNode(t, map[string]string{schedManifest: schedYAML})
		r := &Rotation{Nodes: []*Node{n}}
		err := r.staticPodTimeout(context.Background(), "kube-scheduler", "cp-1", "abc", "r-1/switch", last, timeout)
		for _, want := range []string{`annotation "r-1/trust" (want "r-1/switch")`, "config hash unchanged (abc)", "ready false", "CrashLoopBackOff", "node cp-1"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v\ndoes not say %q", err, want)
			}
		}
		if !errors.Is(err, timeout) {
			t.Errorf("%v does not wrap the wait's error", err)
		}
	})
}

// recorder records the commands run through it and runs none: it checks
// which calls are made, not what they do.
type recorder struct {
	node.Executor
	ran [][]string
}

func (r *recorder) Run(ctx context.Context, argv []string, stdin io.Reader) (node.Result, error) {
	r.ran = append(r.ran, argv)
	return node.Result{}, nil
}

// TestSymlinkSyncsItsDirectory: the rename of the link is durable only
// once its directory is synced, as for every other write; link, rename and
// sync are one command, so a resume never repeats half of them (the soak
// found a resume redoing the ln forever when each run died after it).
func TestSymlinkSyncsItsDirectory(t *testing.T) {
	n, _ := localNode(t, nil)
	rec := &recorder{Executor: n.Exec}
	if err := symlink(context.Background(), rec, KubeletPKIDir+"/kubelet-client-new.pem", KubeletClientCurrent); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"sh", "-c", symlinkScript, "sh", KubeletPKIDir + "/kubelet-client-new.pem",
		KubeletPKIDir + "/.carotate-kubelet-client-current.pem", KubeletClientCurrent, KubeletPKIDir}}
	if diff := cmp.Diff(want, rec.ran); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
}

// batcher records the batches written through it.
type batcher struct {
	node.Executor
	ops []string
}

func (b *batcher) ReplaceFiles(ctx context.Context, files []node.FileWrite) error {
	var ps []string
	for _, f := range files {
		ps = append(ps, f.Path)
	}
	b.ops = append(b.ops, "write "+strings.Join(ps, " "))
	return b.Executor.ReplaceFiles(ctx, files)
}

func (b *batcher) Run(ctx context.Context, argv []string, stdin io.Reader) (node.Result, error) {
	b.ops = append(b.ops, "run "+argv[0])
	return node.Result{}, nil
}

// TestWritesGoAsOneBatch: a CA certificate and its key change in one
// batch, so a crash of carotate never leaves the first certificate of
// ca.crt without its key; a link ends a batch.
func TestWritesGoAsOneBatch(t *testing.T) {
	n, root := localNode(t, map[string]string{caCert: "old cert", caKey: "old key", kubeletConf: "old conf"})
	b := &batcher{Executor: n.Exec}
	paths := []string{caCert, caKey, KubeletClientCurrent, kubeletConf}
	wants := []Want{{Data: []byte("new cert"), Mode: 0o644}, {Data: []byte("new key"), Mode: 0o600, Secret: true},
		{Link: "/x.pem"}, {Data: []byte("new conf"), Mode: 0o600}}
	fcs, err := ensureAll(context.Background(), b, paths, wants)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"write " + caCert + " " + caKey, "run sh", "write " + kubeletConf}
	if diff := cmp.Diff(want, b.ops); diff != "" {
		t.Errorf("operations (-want +got):\n%s", diff)
	}
	if len(fcs) != 4 {
		t.Errorf("%d changes reported, want 4", len(fcs))
	}
	for p, data := range map[string]string{caCert: "new cert", caKey: "new key"} {
		if got, _ := os.ReadFile(filepath.Join(root, p)); string(got) != data {
			t.Errorf("%s = %q, want %q", p, got, data)
		}
	}
	b.ops = nil
	if fcs, err := ensureAll(context.Background(), b, paths[:2], wants[:2]); err != nil || len(fcs) != 0 || len(b.ops) != 0 {
		t.Errorf("a rerun changed %v (%v, ops %v), want nothing", fcs, err, b.ops)
	}
}
