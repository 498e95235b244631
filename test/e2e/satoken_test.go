package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/carotate/carotate/internal/lab"
	"github.com/carotate/carotate/internal/lab/labtest"
)

// saRoots rotates the service-account key with the two CAs.
const saRoots = "--roots=cluster-ca,front-proxy-ca,service-account-key"

// createToken asks the apiserver for a token of the default service
// account, as `kubectl create token` does, with kubeconfig.
func createToken(t *testing.T, kubeconfig string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(labtest.Components(), "kubectl"), "--kubeconfig", kubeconfig,
		"-n", "default", "create", "token", "default", "--duration", "2h").Output()
	if err != nil {
		t.Fatalf("kubectl create token: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// tokenAuthenticates reports whether the apiserver behind kubeconfig
// authenticates token: a 401 is false; anything the token is merely not
// allowed to do (403) is true.
func tokenAuthenticates(t *testing.T, kubeconfig, token string) bool {
	t.Helper()
	return authenticates(t, kubeconfig, "a token", func(cfg *rest.Config) { cfg.BearerToken = token })
}

// authenticates reports whether the apiserver behind kubeconfig
// authenticates the credential as sets it, in place of the kubeconfig's
// client certificate: a 401 is false; anything the user is merely not
// allowed to do (403) is true.
func authenticates(t *testing.T, kubeconfig, what string, as func(*rest.Config)) bool {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.CertData, cfg.KeyData, cfg.CertFile, cfg.KeyFile = nil, nil, "", ""
	cfg.Timeout = 10 * time.Second
	as(cfg)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().ServiceAccounts("default").List(context.Background(), metav1.ListOptions{})
	switch {
	case err == nil || apierrors.IsForbidden(err):
		return true
	case apierrors.IsUnauthorized(err):
		return false
	}
	t.Fatalf("list service accounts with %s: %v", what, err)
	return false
}

// checkServiceAccountKeyRotated: a token the old key signed is rejected,
// a new one works.
func checkServiceAccountKeyRotated(t *testing.T, l *lab.Lab, oldToken string) {
	newAdmin, _ := l.NodePath(l.ControlPlaneNodes()[0].Name, "/etc/kubernetes/admin.conf")
	t.Run("a token signed by the old service-account key is rejected", func(t *testing.T) {
		if tokenAuthenticates(t, newAdmin, oldToken) {
			t.Error("the apiserver still accepts a token signed by the old sa.key")
		}
	})
	t.Run("a token from kubectl create token works", func(t *testing.T) {
		if !tokenAuthenticates(t, newAdmin, createToken(t, newAdmin)) {
			t.Error("the apiserver rejects a token it just issued")
		}
	})
}

// checkProbesSucceedNow wants every probe to succeed now, not only to
// have succeeded once: over 12 s its successes grow and its failures do
// not. A pod whose token no apiserver verifies any more fails every
// request. It retries, within two minutes, a probe whose pod restarted
// in between.
func checkProbesSucceedNow(t *testing.T, l *lab.Lab) {
	t.Helper()
	for _, n := range l.Nodes {
		for _, workload := range []string{lab.ProbeDaemonSet, lab.ProbeDeployment} {
			var why string
			ok := false
			for deadline := time.Now().Add(2 * time.Minute); !ok && time.Now().Before(deadline); {
				a, err := l.ProbeReport(n.Name, workload)
				if err != nil {
					why = err.Error()
					time.Sleep(2 * time.Second)
					continue
				}
				time.Sleep(12 * time.Second)
				b, err := l.ProbeReport(n.Name, workload)
				switch {
				case err != nil:
					why = err.Error()
				case b.Pod != a.Pod || b.Runs != a.Runs:
					why = "the probe's pod restarted"
				case b.Failed > a.Failed:
					why = fmt.Sprintf("%d request(s) failed in 12 s", b.Failed-a.Failed)
				case b.OK <= a.OK:
					why = "no request succeeded in 12 s"
				default:
					ok = true
				}
			}
			if !ok {
				t.Errorf("node %s: probe %s does not succeed now: %s", n.Name, workload, why)
			}
		}
	}
}
