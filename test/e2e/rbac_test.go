package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/carotate/carotate/internal/lab"
	"github.com/carotate/carotate/internal/lab/labtest"
)

// runAsRotateRole binds deploy/rbac/rotate.yaml, and nothing else, to the
// user of a client certificate (its CN), and has r run carotate with a
// kubeconfig that holds that certificate from then on: every command the
// rotation runs must need no more than the role grants.
func runAsRotateRole(t *testing.T, r *rotator, user string, certPEM, keyPEM []byte) {
	t.Helper()
	l := r.l
	kubectl := func(args ...string) {
		t.Helper()
		out, err := exec.Command(filepath.Join(labtest.Components(), "kubectl"), append([]string{"--kubeconfig", l.Kubeconfig()}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	manifest, err := filepath.Abs("../../deploy/rbac/rotate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kubectl("apply", "-f", manifest)
	kubectl("create", "clusterrolebinding", "carotate-rotate", "--clusterrole", "carotate-rotate", "--user", user)
	r.kubeconfig = kubeconfigAs(t, l, user, clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM})
}

// kubeconfigAs is the lab's kubeconfig with auth in place of the admin's
// credentials, written to a file of the test's named after user.
func kubeconfigAs(t *testing.T, l *lab.Lab, user string, auth clientcmdapi.AuthInfo) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(l.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range cfg.AuthInfos {
		*a = auth
	}
	path := filepath.Join(t.TempDir(), user+".conf")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}
