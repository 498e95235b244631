package inspect

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/node"
)

func TestStrayManifests(t *testing.T) {
	pod := func(name string) string {
		return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\n  namespace: kube-system\nspec:\n  containers:\n  - name: " + name + "\n    image: x\n"
	}
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"clean", map[string]string{"kube-scheduler.yaml": pod("kube-scheduler"), ".kube-scheduler.yaml.tmp": "x"}, nil},
		{"copy of a pod", map[string]string{"kube-scheduler.yaml": pod("kube-scheduler"), "sched-copy.yaml": pod("kube-scheduler")},
			[]string{"/etc/kubernetes/manifests/sched-copy.yaml"}},
		{"backup extension", map[string]string{"kube-scheduler.yaml": pod("kube-scheduler"), "kube-scheduler.yaml.bak": pod("kube-scheduler")},
			[]string{"/etc/kubernetes/manifests/kube-scheduler.yaml.bak"}},
		{"not a manifest", map[string]string{"notes.txt": "hello"}, []string{"/etc/kubernetes/manifests/notes.txt"}},
		{"another static pod is fine", map[string]string{"kube-scheduler.yaml": pod("kube-scheduler"), "haproxy.yaml": pod("haproxy")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "etc/kubernetes/manifests")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			for name, data := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ex, err := node.NewLocal("cp-1", root)
			if err != nil {
				t.Fatal(err)
			}
			got, err := StrayManifests(context.Background(), ex, "/etc/kubernetes/manifests")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("strays (-want +got):\n%s", diff)
			}
		})
	}
}
