package rotation

import (
	"context"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/carotate/carotate/internal/model"
)

// TestPolledRowsMoveIntoTheAPIServerRestart: where switch restarts
// kube-apiserver (every root rotating, several control planes), the new
// apiserver-kubelet-client.crt is written in that step, so the restart
// reads it; with the default roots nothing restarts kube-apiserver and
// the file stays in the control plane's step.
func TestPolledRowsMoveIntoTheAPIServerRestart(t *testing.T) {
	cert := PKIDir + "/apiserver-kubelet-client.crt"
	paths := func(rows []*Artefact) []string {
		var out []string
		for _, a := range rows {
			out = append(out, a.Path)
		}
		return out
	}

	m, nodes := allFixture(t, false)
	g := groupRows(nodes[0], Switched, m)
	if !slices.Contains(paths(g[groupAPIServer]), cert) {
		t.Errorf("all roots, switch: kube-apiserver's step %v lacks %s", paths(g[groupAPIServer]), cert)
	}
	if slices.Contains(paths(g[groupControlPlane]), cert) {
		t.Errorf("all roots, switch: %s is also in the control plane's step", cert)
	}
	if got := (transition{node: nodes[0], to: Switched, rows: g[groupAPIServer]}).pods(); !slices.Equal(got, []string{"kube-apiserver"}) {
		t.Errorf("all roots, switch: kube-apiserver's step restarts %v", got)
	}
	for i := 1; i < len(g[groupAPIServer]); i++ {
		if catalogueIndex(g[groupAPIServer][i-1]) > catalogueIndex(g[groupAPIServer][i]) {
			t.Errorf("kube-apiserver's step is not in catalogue order: %v", paths(g[groupAPIServer]))
		}
	}

	m, nodes = fixture(t)
	g = groupRows(nodes[0], Switched, m)
	if len(g[groupAPIServer]) != 0 {
		t.Errorf("default roots, switch: kube-apiserver has a step of its own: %v", paths(g[groupAPIServer]))
	}
	if !slices.Contains(paths(g[groupControlPlane]), cert) {
		t.Errorf("default roots, switch: the control plane's step %v lacks %s", paths(g[groupControlPlane]), cert)
	}
}

// TestReloadWaitCountsARestart: finalize waits for the 5-minute poll of
// apiserver-kubelet-client.crt unless the apiserver's container started
// after the file was written; a start in the same second still waits.
func TestReloadWaitCountsARestart(t *testing.T) {
	written := time.Date(2026, 12, 3, 10, 0, 0, 500_000_000, time.UTC)
	now := written.Add(time.Minute)
	m, _ := fixture(t)
	oldCert, _ := issue(t, m.Old[model.ClusterCA], "kube-apiserver-kubelet-client", []string{"kubeadm:cluster-admins"}, x509.ExtKeyUsageClientAuth)
	newCert, _ := issue(t, m.New[model.ClusterCA], "kube-apiserver-kubelet-client", []string{"kubeadm:cluster-admins"}, x509.ExtKeyUsageClientAuth)
	tests := []struct {
		name    string
		cert    []byte
		started time.Time // zero: no mirror pod
		done    bool
		detail  string
	}{
		{"no mirror pod", newCert, time.Time{}, false, "4m0s to wait"},
		{"started before the write", newCert, written.Add(-time.Hour), false, "4m0s to wait"},
		{"started in the same second", newCert, written.Truncate(time.Second), false, "4m0s to wait"},
		{"started after the write", newCert, written.Add(time.Second), true, "re-read"},
		// A plan before rotate: the file switch writes is still to come,
		// however long ago kubeadm wrote this one.
		{"not yet from the new CA", oldCert, written.Add(time.Second), false, PKIDir + "/apiserver-kubelet-client.crt on cp-1 is not yet from the new CA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, root := localNode(t, map[string]string{PKIDir + "/apiserver-kubelet-client.crt": string(tc.cert)})
			if err := os.Chtimes(filepath.Join(root, PKIDir, "apiserver-kubelet-client.crt"), written, written); err != nil {
				t.Fatal(err)
			}
			cs := fake.NewClientset()
			if !tc.started.IsZero() {
				pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kube-apiserver-cp-1", Namespace: "kube-system"},
					Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "kube-apiserver",
						State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(tc.started)}}}}}}
				if _, err := cs.CoreV1().Pods("kube-system").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			r := &Rotation{M: m, Nodes: []*Node{n}, Client: cs, ReloadWait: 5 * time.Minute, Clock: func() time.Time { return now }}
			done, detail, err := r.reloadWaitStep().Check(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			if done != tc.done {
				t.Errorf("done %v (%s), want %v", done, detail, tc.done)
			}
			if detail != tc.detail {
				t.Errorf("detail %q, want %q", detail, tc.detail)
			}
		})
	}
}

// A long wait says what it waits for, at its start and then every
// progressEvery, and ends early with its context.
func TestWaitSaysItIsWaiting(t *testing.T) {
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = 20 * time.Millisecond
	var log strings.Builder
	r := &Rotation{Log: slog.New(slog.NewTextHandler(&log, nil))}
	if err := r.waitSaying(context.Background(), 110*time.Millisecond, "the test"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(log.String(), `msg=waiting for="the test" left=`); n < 3 {
		t.Errorf("%d progress lines in a wait of 5 periods, want at least 3:\n%s", n, log.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := r.waitSaying(ctx, time.Hour, "nothing"); err == nil || time.Since(start) > time.Second {
		t.Errorf("a cancelled wait returned %v after %s", err, time.Since(start))
	}
	if err := (&Rotation{}).waitSaying(context.Background(), 0, "no wait"); err != nil {
		t.Error(err)
	}
}

// A static pod that does not come back says, while it is waited for,
// which component on which node, and then times out naming it.
func TestStaticPodWaitSaysWhatItWaitsFor(t *testing.T) {
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = 500 * time.Millisecond
	var log strings.Builder
	r := &Rotation{Client: fake.NewClientset(), Log: slog.New(slog.NewTextHandler(&log, nil)),
		Timeouts: Timeouts{StaticPod: 2500 * time.Millisecond}}
	manifestData := []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-scheduler\n  namespace: kube-system\nspec:\n  containers:\n  - name: kube-scheduler\n    image: registry.k8s.io/kube-scheduler:v1.37.2\n")
	err := r.waitStaticPod(context.Background(), "kube-scheduler", "cp-1", "", manifestData)
	if err == nil || !strings.Contains(err.Error(), "node cp-1: kube-scheduler did not come back Ready") {
		t.Errorf("waitStaticPod: %v", err)
	}
	if n := strings.Count(log.String(), `msg=waiting for="kube-scheduler on cp-1 to come back from its new manifest"`); n < 2 {
		t.Errorf("%d progress lines in a wait of 2.5 s at one every 0.5 s:\n%s", n, log.String())
	}
}
