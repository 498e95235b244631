package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/carotate/carotate/internal/lab"
)

// checkKubeadmRenders wants each control plane's kube-apiserver and
// kube-controller-manager manifests to equal, byte for byte, what
// `kubeadm init phase control-plane all --dry-run` renders on that node
// from the cluster's own ClusterConfiguration (the kubeadm-config
// ConfigMap) and the node's address: after finalize the layout is
// kubeadm's, so a later `kubeadm upgrade` finds what it would write.
func checkKubeadmRenders(t *testing.T, l *lab.Lab) {
	t.Helper()
	ctx := context.Background()
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	cm, err := c.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubeadm-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cluster := cm.Data["ClusterConfiguration"]
	if cluster == "" {
		t.Fatal("ConfigMap kube-system/kubeadm-config has no ClusterConfiguration")
	}
	const cfgPath, outDir = "/root/carotate-render.yaml", "/root/carotate-render"
	for _, n := range l.ControlPlaneNodes() {
		cfgHost, err := l.NodePath(n.Name, cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		outHost, _ := l.NodePath(n.Name, outDir)
		t.Cleanup(func() { os.Remove(cfgHost); os.RemoveAll(outHost) })
		cfg := fmt.Sprintf("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: %s\n  bindPort: 6443\nnodeRegistration:\n  name: %s\n---\n%s", n.IP, n.Name, cluster)
		if err := os.WriteFile(cfgHost, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(outHost, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := l.Exec(ctx, n.Name, "env", "KUBEADM_INIT_DRYRUN_DIR="+outDir, "kubeadm", "init", "phase", "control-plane", "all", "--dry-run", "--config", cfgPath); err != nil {
			t.Fatalf("node %s: kubeadm init phase control-plane all --dry-run: %v\n%s", n.Name, err, out)
		}
		for _, f := range []string{"kube-apiserver.yaml", "kube-controller-manager.yaml"} {
			rendered, err := os.ReadFile(filepath.Join(outHost, f))
			if err != nil {
				t.Fatalf("node %s: kubeadm rendered no %s: %v", n.Name, f, err)
			}
			onNode, _ := l.NodePath(n.Name, "/etc/kubernetes/manifests/"+f)
			have, err := os.ReadFile(onNode)
			if err != nil {
				t.Fatal(err)
			}
			if string(have) != string(rendered) {
				t.Errorf("node %s: /etc/kubernetes/manifests/%s is not what kubeadm renders from the cluster's config:\n%s", n.Name, f, cmp.Diff(strings.Split(string(rendered), "\n"), strings.Split(string(have), "\n")))
			}
		}
	}
}
