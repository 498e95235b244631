package cli

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// complete runs cobra's hidden __complete command, as a shell's
// completion script does, and returns the candidates (the last line is
// the directive).
func complete(t *testing.T, env map[string]string, args ...string) []string {
	t.Helper()
	code, stdout, stderr := run(t, &fakeGather{}, env, append([]string{"__complete"}, args...)...)
	if code != ExitOK {
		t.Fatalf("__complete %v: exit %d, %s", args, code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	return lines[:len(lines)-1]
}

func TestFlagCompletion(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/nodes" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"kind":"NodeList","apiVersion":"v1","items":[{"metadata":{"name":"worker-1"}},{"metadata":{"name":"cp-1"}}]}`))
	}))
	defer srv.Close()
	kubeconfig := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {server: "`+srv.URL+`"}
users:
- name: admin
  user: {token: t}
contexts:
- name: lab
  context: {cluster: lab, user: admin}
- name: prod
  context: {cluster: lab, user: admin}
current-context: lab
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KUBECONFIG": kubeconfig}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"plan", "--roots", ""}, []string{"cluster-ca", "front-proxy-ca", "service-account-key", "etcd-ca", "all"}},
		{[]string{"rotate", "--roots", "cluster-ca,front-proxy-ca,"}, []string{"cluster-ca,front-proxy-ca,service-account-key", "cluster-ca,front-proxy-ca,etcd-ca"}},
		{[]string{"rotate", "--until", ""}, []string{"prepare", "trust", "switch"}},
		{[]string{"status", "-o", ""}, []string{"text", "json", "yaml"}},
		{[]string{"check", "--log-format", ""}, []string{"text", "json"}},
		{[]string{"check", "--context", ""}, []string{"lab", "prod"}},
		{[]string{"finalize", "--kubeconfig", kubeconfig, "--allow-unready", ""}, []string{"cp-1", "worker-1"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, complete(t, env, tt.args...)); diff != "" {
			t.Errorf("complete %v (-want +got):\n%s", tt.args, diff)
		}
	}
}
