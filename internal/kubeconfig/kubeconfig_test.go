package kubeconfig

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const embedded = `apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster:
    server: https://10.0.0.10:6443
    certificate-authority-data: Q0EtREFUQQ==
contexts:
- name: kubernetes-admin@kubernetes
  context: {cluster: kubernetes, user: kubernetes-admin}
current-context: kubernetes-admin@kubernetes
users:
- name: kubernetes-admin
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: U0VDUkVULUtFWS1NQVRFUklBTA==
`

const fileRefs = `apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster:
    server: https://10.0.0.10:6443
    certificate-authority: pki/ca.crt
contexts:
- name: system:node:w-1@kubernetes
  context: {cluster: kubernetes, user: default-auth}
current-context: system:node:w-1@kubernetes
users:
- name: default-auth
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
`

const bootstrap = `apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster: {server: "https://lb:6443", certificate-authority-data: Q0E=}
contexts:
- name: tls-bootstrap-token-user@kubernetes
  context: {cluster: kubernetes, user: tls-bootstrap-token-user}
current-context: tls-bootstrap-token-user@kubernetes
users:
- name: tls-bootstrap-token-user
  user: {token: abcdef.0123456789abcdef}
`

func TestParse(t *testing.T) {
	tests := []struct {
		name   string
		source string
		data   string
		want   *Config
	}{
		{
			name:   "embedded data",
			source: "/etc/kubernetes/admin.conf",
			data:   embedded,
			want: &Config{
				Source: "/etc/kubernetes/admin.conf", Role: RoleAdmin, CurrentContext: "kubernetes-admin@kubernetes",
				Cluster: "kubernetes", User: "kubernetes-admin", Server: "https://10.0.0.10:6443",
				CAData: []byte("CA-DATA"), ClientCertData: []byte("CERT"), HasClientKeyData: true,
			},
		},
		{
			name:   "file references, relative made absolute",
			source: "/etc/kubernetes/kubelet.conf",
			data:   fileRefs,
			want: &Config{
				Source: "/etc/kubernetes/kubelet.conf", Role: RoleKubelet, CurrentContext: "system:node:w-1@kubernetes",
				Cluster: "kubernetes", User: "default-auth", Server: "https://10.0.0.10:6443",
				CAFile:         "/etc/kubernetes/pki/ca.crt",
				ClientCertFile: "/var/lib/kubelet/pki/kubelet-client-current.pem",
				ClientKeyFile:  "/var/lib/kubelet/pki/kubelet-client-current.pem",
			},
		},
		{
			name:   "bootstrap token",
			source: "/etc/kubernetes/bootstrap-kubelet.conf",
			data:   bootstrap,
			want: &Config{
				Source: "/etc/kubernetes/bootstrap-kubelet.conf", Role: RoleBootstrapKubelet,
				CurrentContext: "tls-bootstrap-token-user@kubernetes", Cluster: "kubernetes",
				User: "tls-bootstrap-token-user", Server: "https://lb:6443", CAData: []byte("CA"), Token: true,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.source, []byte(tt.data))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFileRefs(t *testing.T) {
	cfg, err := Parse("/etc/kubernetes/kubelet.conf", []byte(fileRefs))
	if err != nil {
		t.Fatal(err)
	}
	want := []FileRef{
		{Field: "clusters[kubernetes].certificate-authority", Path: "/etc/kubernetes/pki/ca.crt"},
		{Field: "users[default-auth].client-certificate", Path: "/var/lib/kubelet/pki/kubelet-client-current.pem"},
		{Field: "users[default-auth].client-key", Path: "/var/lib/kubelet/pki/kubelet-client-current.pem"},
	}
	if diff := cmp.Diff(want, cfg.FileRefs()); diff != "" {
		t.Errorf("FileRefs (-want +got):\n%s", diff)
	}
}

func TestParseRefuses(t *testing.T) {
	const src = "cp-1:/etc/kubernetes/admin.conf"
	tests := []struct {
		name string
		data string
		want string // fragment of the error, after the source
	}{
		{"empty", "  \n", "is empty"},
		{"garbage yaml", "clusters: [unterminated\n\t:", "cannot be parsed"},
		{"not a kubeconfig", "apiVersion: v1\nkind: Pod\n", `cannot be parsed: no kind "Pod"`},
		{"no cluster", strings.Replace(embedded, "clusters:\n- name: kubernetes\n  cluster:\n    server: https://10.0.0.10:6443\n    certificate-authority-data: Q0EtREFUQQ==\n", "", 1), "has no cluster"},
		{"no current-context", strings.Replace(embedded, "current-context: kubernetes-admin@kubernetes\n", "", 1), "has no current-context"},
		{"current-context names no context", strings.Replace(embedded, "current-context: kubernetes-admin@kubernetes", "current-context: nope", 1), `current-context "nope" names a context that does not exist`},
		{"context names no cluster", strings.Replace(embedded, "{cluster: kubernetes,", "{cluster: other,", 1), `names cluster "other", which does not exist`},
		{"context names no user", strings.Replace(embedded, "user: kubernetes-admin}", "user: ghost}", 1), `names user "ghost", which does not exist`},
		{"cluster without server", strings.Replace(embedded, "    server: https://10.0.0.10:6443\n", "", 1), `cluster "kubernetes" has no server`},
		{"too large", strings.Repeat("#", MaxSize+1), "more than the"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(src, []byte(tt.data))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not match ErrInvalid", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "kubeconfig "+src+": ") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q: want it to start with the source and contain %q", msg, tt.want)
			}
			if strings.Contains(msg, "U0VDUkVU") || strings.Contains(msg, "SECRET") {
				t.Errorf("error %q quotes key material", msg)
			}
		})
	}
}

func TestRoleOf(t *testing.T) {
	for path, want := range map[string]string{
		"/etc/kubernetes/admin.conf":              RoleAdmin,
		"/etc/kubernetes/super-admin.conf":        RoleSuperAdmin,
		"/etc/kubernetes/controller-manager.conf": RoleControllerManager,
		"/etc/kubernetes/scheduler.conf":          RoleScheduler,
		"/etc/kubernetes/kubelet.conf":            RoleKubelet,
		"/etc/kubernetes/bootstrap-kubelet.conf":  RoleBootstrapKubelet,
		"/etc/kubernetes/ops.conf":                RoleOther,
	} {
		if got := RoleOf(path); got != want {
			t.Errorf("RoleOf(%q) = %q, want %q", path, got, want)
		}
	}
}
