package rotation

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/manifest"
)

// TestSignWithOldKey: a rollback restarts only an apiserver that signs
// with the new key, and it first puts back the original sa.key, then the
// manifest of trust with the rollback's own restart annotation. The fake
// clientset stands for the mirror pod carotate reads; nothing answers
// for the kubelet, so the wait for the restart times out, and the test
// looks at what was written.
func TestSignWithOldKey(t *testing.T) {
	tests := []struct {
		name        string
		one         bool
		restart     string // the running apiserver's annotation, after the id
		ready       bool
		wantRestart bool
	}{
		{"one apiserver at trust signs with the new key", true, "trust", true, true},
		{"HA at trust signs with the old key", false, "trust", true, false},
		{"HA at switch signs with the new key", false, "switch", true, true},
		{"already restarted by a rollback", true, rollbackSigning, true, false},
		{"restarted by a rollback and not Ready yet", true, rollbackSigning, false, true},
		{"not restarted by this rotation", true, "", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := saFixture(t, tt.one)
			m.RotationID = "r-test"
			newKey, _ := m.NewSA.MarshalPEM()
			api := m.Originals[fileKey{"cp-1", apiserverManifest}].Content
			n, root := localNode(t, map[string]string{saKey: string(newKey), apiserverManifest: string(api)})
			annotation := ""
			if tt.restart != "" {
				annotation = m.RotationID + "/" + tt.restart
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-apiserver-cp-1",
				Annotations: map[string]string{RestartAnnotation: annotation, configHashAnnotation: "h1"}}}
			if tt.ready {
				pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			}
			r := &Rotation{M: m, Nodes: []*Node{n}, Client: fake.NewClientset(pod),
				Timeouts: Timeouts{StaticPod: 50 * time.Millisecond, Kubelet: time.Second, RootCA: time.Second, Rollout: time.Second}}
			var ch engine.Change
			did, err := r.signWithOldKey(context.Background(), n, &ch)
			gotKey, _ := os.ReadFile(filepath.Join(root, saKey))
			gotManifest, _ := os.ReadFile(filepath.Join(root, apiserverManifest))
			if !tt.wantRestart {
				if err != nil || did != "" || len(ch.Files) > 0 {
					t.Fatalf("restarted %q, wrote %d file(s), err %v; want nothing done", did, len(ch.Files), err)
				}
				if string(gotKey) != string(newKey) || string(gotManifest) != string(api) {
					t.Error("files changed although the apiserver signs with the old key")
				}
				return
			}
			if err == nil {
				t.Fatal("no error although no kubelet restarted the apiserver")
			}
			if orig := m.Originals[fileKey{"cp-1", saKey}].Content; string(gotKey) != string(orig) {
				t.Error("sa.key is not the original key")
			}
			if v, _ := restartValue("cp-1", gotManifest); v != m.RotationID+"/"+rollbackSigning {
				t.Errorf("manifest restart annotation %q, want %q", v, m.RotationID+"/"+rollbackSigning)
			}
			if !strings.Contains(string(gotManifest), "--"+flagSAKeyFile) || !strings.Contains(err.Error(), manifest.KubeAPIServer) {
				t.Errorf("manifest or error unexpected: %v", err)
			}
		})
	}
}
