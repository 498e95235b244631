package kubeletconfig

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// kubeadmLike is the trust part of the KubeletConfiguration kubeadm writes.
const kubeadmLike = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
rotateCertificates: true
cgroupDriver: systemd
someFutureField: ignored
`

func TestParse(t *testing.T) {
	type trust struct {
		ClientCAFile, TLSCertFile, TLSPrivateKeyFile string
		RotateCertificates, ServerTLSBootstrap       bool
	}
	tests := []struct {
		name, source, data string
		want               trust
	}{
		{"kubeadm", "/var/lib/kubelet/config.yaml", kubeadmLike,
			trust{ClientCAFile: "/etc/kubernetes/pki/ca.crt", RotateCertificates: true}},
		{"relative paths resolve against the config's directory", "/var/lib/kubelet/config.yaml",
			"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nauthentication: {x509: {clientCAFile: pki/ca.crt}}\n" +
				"tlsCertFile: pki/kubelet.crt\ntlsPrivateKeyFile: /k/kubelet.key\nserverTLSBootstrap: true\n",
			trust{ClientCAFile: "/var/lib/kubelet/pki/ca.crt", TLSCertFile: "/var/lib/kubelet/pki/kubelet.crt",
				TLSPrivateKeyFile: "/k/kubelet.key", ServerTLSBootstrap: true}},
		{"nothing set", "/var/lib/kubelet/config.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n", trust{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.source, []byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			got := trust{c.ClientCAFile(), c.TLSCertFile(), c.TLSPrivateKeyFile(), c.RotateCertificates(), c.ServerTLSBootstrap()}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	const src = "w-1:/var/lib/kubelet/config.yaml"
	tests := []struct{ name, data, want string }{
		{"empty", "", "is empty"},
		{"garbage yaml", "a: [b\n\t:", "is not valid yaml"},
		{"wrong kind", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeProxyConfiguration\n",
			`is apiVersion "kubelet.config.k8s.io/v1beta1" kind "KubeProxyConfiguration", not kubelet.config.k8s.io/v1beta1 KubeletConfiguration`},
		{"wrong version", "apiVersion: kubelet.config.k8s.io/v1\nkind: KubeletConfiguration\n", `apiVersion "kubelet.config.k8s.io/v1"`},
		{"a pod", "apiVersion: v1\nkind: Pod\n", `kind "Pod"`},
		{"wrong field type", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nrotateCertificates: [1]\n", "is not a valid KubeletConfiguration"},
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
			if msg := err.Error(); !strings.HasPrefix(msg, "kubelet config "+src+": ") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q: want it to start with the source and contain %q", msg, tt.want)
			}
		})
	}
}
