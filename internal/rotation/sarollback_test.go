package rotation

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/lock"
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

// TestOutageLengthensTheLock: with one control plane, the apiserver's
// restart runs under a 10-minute lease, which is back to 2 minutes once
// the step ends; a lease that cannot be lengthened stops the step before
// it changes a file. The fake clientset stands for the lease and the
// mirror pod; the lease is read whenever carotate reads the pod.
func TestOutageLengthensTheLock(t *testing.T) {
	for _, tt := range []struct {
		name        string
		one         bool
		failUpdates bool
		wantMax     int32 // the longest lease seen while the step read the pod
		wantErr     string
	}{
		{name: "one apiserver: lengthened for the restart", one: true, wantMax: 600},
		{name: "HA: the apiserver's restart keeps the API, the lease stays", one: false, wantMax: 120},
		{name: "one apiserver, the lease cannot be lengthened: nothing changes", one: true, failUpdates: true, wantMax: 120,
			wantErr: "before restarting kube-apiserver on cp-1, which takes the API away: could not lengthen the rotation lock's lease to 10m0s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := saFixture(t, tt.one)
			m.RotationID = "r-test"
			newKey, _ := m.NewSA.MarshalPEM()
			api := m.Originals[fileKey{"cp-1", apiserverManifest}].Content
			n, root := localNode(t, map[string]string{saKey: string(newKey), apiserverManifest: string(api)})
			restart := "switch"
			if tt.one {
				restart = "trust"
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-apiserver-cp-1",
				Annotations: map[string]string{RestartAnnotation: m.RotationID + "/" + restart, configHashAnnotation: "h1"}},
				Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
			c := fake.NewClientset(pod)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			lk, err := TakeLock(ctx, c, m.RotationID, LockOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer lk.Release()
			leaseSeconds := func() int32 {
				o, err := c.Tracker().Get(coordinationv1.SchemeGroupVersion.WithResource("leases"), lock.Namespace, lock.Name)
				if err != nil {
					t.Errorf("read the lease: %v", err)
					return 0
				}
				return *o.(*coordinationv1.Lease).Spec.LeaseDurationSeconds
			}
			var seen int32
			c.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
				seen = max(seen, leaseSeconds())
				return false, nil, nil
			})
			if tt.failUpdates {
				c.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewServiceUnavailable("etcdserver: request timed out")
				})
			}
			r := &Rotation{M: m, Nodes: []*Node{n}, Client: c, lock: lk,
				Timeouts: Timeouts{StaticPod: 50 * time.Millisecond, Kubelet: time.Second, RootCA: time.Second, Rollout: time.Second}}
			var ch engine.Change
			_, err = r.signWithOldKey(ctx, n, &ch)
			if err == nil {
				t.Fatal("no error although no kubelet restarted the apiserver")
			}
			if seen != tt.wantMax {
				t.Errorf("longest lease while the step ran = %ds, want %ds", seen, tt.wantMax)
			}
			if got := leaseSeconds(); got != 120 {
				t.Errorf("lease after the step = %ds, want 120", got)
			}
			if tt.wantErr == "" {
				if strings.Contains(err.Error(), "lengthen") {
					t.Errorf("error %v, want the restart's", err)
				}
				return
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "etcdserver: request timed out") {
				t.Errorf("error %v, want it to say %q and give the renewal's error", err, tt.wantErr)
			}
			gotKey, _ := os.ReadFile(filepath.Join(root, saKey))
			gotManifest, _ := os.ReadFile(filepath.Join(root, apiserverManifest))
			if string(gotKey) != string(newKey) || string(gotManifest) != string(api) || len(ch.Files) > 0 {
				t.Error("files changed although the lease could not be lengthened")
			}
		})
	}
}
