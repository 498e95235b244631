package rotation

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/carotate/carotate/internal/node"
	"github.com/carotate/carotate/internal/verify"
)

// schedulerManifest is kubeadm's kube-scheduler manifest, trimmed, with
// probe as the container's probes and the restart annotation "r1/trust".
func schedulerManifest(probes string) []byte {
	return []byte(`apiVersion: v1
kind: Pod
metadata:
  name: kube-scheduler
  namespace: kube-system
  annotations:
    ` + RestartAnnotation + `: r1/trust
spec:
  hostNetwork: true
  containers:
  - name: kube-scheduler
    image: registry.k8s.io/kube-scheduler:v1.37.2
    command:
    - kube-scheduler
    - --bind-address=127.0.0.1
` + probes)
}

func httpsProbe(kind, addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf(`    %s:
      failureThreshold: 24
      httpGet:
        host: %s
        path: /healthz
        port: %s
        scheme: HTTPS
      initialDelaySeconds: 10
      periodSeconds: 10
`, kind, host, port)
}

// kubeadmProbe is the startup probe as kubeadm v1.31 and later writes it:
// on a named container port.
func kubeadmProbe(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf(`    ports:
    - containerPort: %s
      name: probe-port
      protocol: TCP
    startupProbe:
      failureThreshold: 24
      httpGet:
        host: %s
        path: /healthz
        port: probe-port
        scheme: HTTPS
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
`, port, host)
}

func TestProbeOf(t *testing.T) {
	tests := []struct {
		name, probes, want string
	}{
		{"kubeadm's startup probe", httpsProbe("startupProbe", "127.0.0.1:10259") + httpsProbe("livenessProbe", "127.0.0.1:1"), "https://127.0.0.1:10259/healthz"},
		{"liveness when there is no startup probe", httpsProbe("livenessProbe", "127.0.0.1:10259"), "https://127.0.0.1:10259/healthz"},
		{"http, path without a slash", "    livenessProbe:\n      httpGet:\n        host: 127.0.0.1\n        path: livez\n        port: 8080\n", "http://127.0.0.1:8080/livez"},
		{"kubeadm's named port", "    ports:\n    - containerPort: 10259\n      name: probe-port\n      protocol: TCP\n" +
			"    startupProbe:\n      httpGet:\n        host: 127.0.0.1\n        path: /healthz\n        port: probe-port\n        scheme: HTTPS\n", "https://127.0.0.1:10259/healthz"},
		{"a port name the container does not declare", "    livenessProbe:\n      httpGet:\n        host: 127.0.0.1\n        path: /healthz\n        port: https\n", ""},
		{"no host: the pod's IP", "    livenessProbe:\n      httpGet:\n        path: /healthz\n        port: 10259\n", ""},
		{"an exec probe", "    livenessProbe:\n      exec:\n        command: [true]\n", ""},
		{"no probe", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := probeOf("cp-1:kube-scheduler", schedulerManifest(tt.probes))
			if ok != (tt.want != "") || p.url != tt.want {
				t.Errorf("probeOf = %q, %v; want %q", p.url, ok, tt.want)
			}
		})
	}
}

// mirrorPod is kube-scheduler's mirror pod on cp-1 after the restart: the
// new hash and annotation, its container running, and Ready as given.
func mirrorPod(ready bool) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-scheduler-cp-1",
			Annotations: map[string]string{RestartAnnotation: "r1/trust", configHashAnnotation: "new"}},
		Status: corev1.PodStatus{
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "kube-scheduler",
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}},
		},
	}
}

// refusingExec is a node whose sshd forwards nothing.
type refusingExec struct{ node.Executor }

func (refusingExec) Dial(context.Context, string) (net.Conn, error) {
	return nil, fmt.Errorf("node cp-1: dial: %w", node.ErrForwardingRefused)
}

// A restarted kube-scheduler counts as back once it serves its health
// endpoint, before its mirror pod is Ready; one that answers an error, or
// a node that cannot be probed, leaves the wait to Ready.
func TestWaitStaticPodEndsWhenServing(t *testing.T) {
	healthy := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer healthy.Close()
	failing := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "[-]informer-sync failed", http.StatusInternalServerError)
	}))
	defer failing.Close()
	local, err := node.NewLocal("cp-1", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		server  *httptest.Server
		exec    node.Executor
		ready   bool
		wantErr string
	}{
		{"serving, not Ready", healthy, local, false, ""},
		{"answering 500, not Ready", failing, local, false, "did not come back Ready"},
		{"not probed, not Ready", healthy, refusingExec{local}, false, "did not come back Ready"},
		{"not probed, Ready", healthy, refusingExec{local}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Rotation{Client: fake.NewClientset(mirrorPod(tt.ready)), Nodes: []*Node{{Name: "cp-1", ControlPlane: true, Exec: tt.exec}},
				Timeouts: Timeouts{StaticPod: 1500 * time.Millisecond}}
			addr := strings.TrimPrefix(tt.server.URL, "https://")
			start := time.Now()
			err := r.waitStaticPod(context.Background(), "kube-scheduler", "cp-1", "old", schedulerManifest(kubeadmProbe(addr)))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("waitStaticPod: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("waitStaticPod: %v, want an error saying %q", err, tt.wantErr)
			case tt.wantErr == "" && time.Since(start) > time.Second:
				t.Errorf("waitStaticPod took %s", time.Since(start))
			}
		})
	}
}

// The gate waits for the Ready that a restart no longer waits for, and
// names what is still not Ready when that does not come.
func TestWaitControlPlaneReady(t *testing.T) {
	pods := map[string]*corev1.Pod{}
	cs := fake.NewClientset()
	for _, c := range verify.DefaultControlPlaneComponents() {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: verify.MirrorPodName(c, "cp-1")},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
		if c == "kube-scheduler" {
			p.Status.Conditions[0].Status = corev1.ConditionFalse
		}
		pods[c] = p
		if err := cs.Tracker().Add(p); err != nil {
			t.Fatal(err)
		}
	}
	r := &Rotation{Client: cs, Timeouts: Timeouts{StaticPod: 300 * time.Millisecond}}
	err := r.waitControlPlaneReady(context.Background(), []string{"cp-1"})
	if err == nil || !strings.Contains(err.Error(), "after 300ms") || !strings.Contains(err.Error(), "node cp-1: kube-scheduler (pod kube-system/kube-scheduler-cp-1) is Running but not Ready") {
		t.Errorf("waitControlPlaneReady with kube-scheduler never Ready: %v", err)
	}

	r.Timeouts.StaticPod = 5 * time.Second
	go func() {
		time.Sleep(200 * time.Millisecond) // the startup probe passes
		p := pods["kube-scheduler"].DeepCopy()
		p.Status.Conditions[0].Status = corev1.ConditionTrue
		if err := cs.Tracker().Update(corev1.SchemeGroupVersion.WithResource("pods"), p, "kube-system"); err != nil {
			t.Error(err)
		}
	}()
	if err := r.waitControlPlaneReady(context.Background(), []string{"cp-1"}); err != nil {
		t.Errorf("waitControlPlaneReady with kube-scheduler Ready after 200ms: %v", err)
	}
}
