package kubeconfig

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

type testCert struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// newCert makes an ECDSA certificate: a self-signed CA when parent is nil,
// else a client certificate signed by parent.
func newCert(t *testing.T, cn string, parent *testCert) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	signer, signerCert := key, tmpl
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{
		cert: cert, key: key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
}

// kubeadmStyle writes a kubeconfig the way kubeadm does (clientcmd.Write),
// with a second cluster, user and context, preferences and extensions,
// all of which an edit must keep.
func kubeadmStyle(t *testing.T, ca, client *testCert) []byte {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubernetes"] = &clientcmdapi.Cluster{Server: "https://10.0.0.10:6443", CertificateAuthorityData: ca.certPEM,
		Extensions: map[string]runtime.Object{"example.io/x": &runtime.Unknown{Raw: []byte(`{"keep":"me"}`)}}}
	cfg.Clusters["other"] = &clientcmdapi.Cluster{Server: "https://other:6443", CertificateAuthority: "/etc/other/ca.crt", ProxyURL: "http://proxy:3128"}
	cfg.AuthInfos["kubernetes-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: client.certPEM, ClientKeyData: client.keyPEM}
	cfg.AuthInfos["ops"] = &clientcmdapi.AuthInfo{Token: "ops-token", Impersonate: "someone"}
	cfg.Contexts["kubernetes-admin@kubernetes"] = &clientcmdapi.Context{Cluster: "kubernetes", AuthInfo: "kubernetes-admin"}
	cfg.Contexts["ops@other"] = &clientcmdapi.Context{Cluster: "other", AuthInfo: "ops", Namespace: "kube-system"}
	cfg.CurrentContext = "kubernetes-admin@kubernetes"
	cfg.Preferences.Colors = true
	cfg.Extensions["example.io/top"] = &runtime.Unknown{Raw: []byte(`{"a":1}`)}
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// changedLines returns the lines that differ between a and b once their
// common leading and trailing lines are set aside.
func changedLines(a, b []byte) (removed, added []string) {
	x, y := strings.SplitAfter(string(a), "\n"), strings.SplitAfter(string(b), "\n")
	for len(x) > 0 && len(y) > 0 && x[0] == y[0] {
		x, y = x[1:], y[1:]
	}
	for len(x) > 0 && len(y) > 0 && x[len(x)-1] == y[len(y)-1] {
		x, y = x[:len(x)-1], y[:len(y)-1]
	}
	return x, y
}

func load(t *testing.T, data []byte) *clientcmdapi.Config {
	t.Helper()
	cfg, err := clientcmd.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type editFunc func(source string, data []byte) ([]byte, bool, error)

func TestEdits(t *testing.T) {
	oldCA, newCA := newCert(t, "kubernetes", nil), newCert(t, "kubernetes-2", nil)
	oldClient, newClient := newCert(t, "kubernetes-admin", oldCA), newCert(t, "kubernetes-admin", newCA)
	bundle := append(append([]byte(nil), oldCA.certPEM...), newCA.certPEM...)
	in := kubeadmStyle(t, oldCA, oldClient)
	refs := []byte(strings.Replace(fileRefs, "certificate-authority: pki/ca.crt", "certificate-authority: /etc/kubernetes/pki/ca.crt", 1))

	tests := []struct {
		name string
		in   []byte
		edit editFunc
		// clear undoes the intended change on the parsed result, so
		// that everything else can be compared with the input.
		clear       func(*clientcmdapi.Config)
		wantChanged bool
		wantLines   int // lines changed, in the kubeadm-written form
	}{
		{
			name: "CA data becomes a bundle", in: in,
			edit: func(s string, d []byte) ([]byte, bool, error) { return SetCAData(s, d, bundle) },
			clear: func(c *clientcmdapi.Config) {
				if !bytes.Equal(c.Clusters["kubernetes"].CertificateAuthorityData, bundle) {
					t.Error("certificate-authority-data is not the bundle")
				}
				c.Clusters["kubernetes"].CertificateAuthorityData = oldCA.certPEM
			},
			wantChanged: true, wantLines: 1,
		},
		{
			name: "CA data already set", in: in,
			edit: func(s string, d []byte) ([]byte, bool, error) { return SetCAData(s, d, oldCA.certPEM) },
		},
		{
			name: "client certificate and key", in: in,
			edit: func(s string, d []byte) ([]byte, bool, error) {
				return SetClientCertAndKey(s, d, newClient.certPEM, newClient.keyPEM)
			},
			clear: func(c *clientcmdapi.Config) {
				u := c.AuthInfos["kubernetes-admin"]
				if !bytes.Equal(u.ClientCertificateData, newClient.certPEM) || !bytes.Equal(u.ClientKeyData, newClient.keyPEM) {
					t.Error("the client certificate and key are not the new ones")
				}
				u.ClientCertificateData, u.ClientKeyData = oldClient.certPEM, oldClient.keyPEM
			},
			wantChanged: true, wantLines: 2,
		},
		{
			name: "client certificate and key already set", in: in,
			edit: func(s string, d []byte) ([]byte, bool, error) {
				return SetClientCertAndKey(s, d, oldClient.certPEM, oldClient.keyPEM)
			},
		},
		{
			name: "CA file", in: refs,
			edit: func(s string, d []byte) ([]byte, bool, error) {
				return SetCAFile(s, d, "/etc/kubernetes/pki/carotate/ca-bundle.crt")
			},
			clear: func(c *clientcmdapi.Config) {
				if got := c.Clusters["kubernetes"].CertificateAuthority; got != "/etc/kubernetes/pki/carotate/ca-bundle.crt" {
					t.Errorf("certificate-authority is %q", got)
				}
				c.Clusters["kubernetes"].CertificateAuthority = "/etc/kubernetes/pki/ca.crt"
			},
			wantChanged: true,
		},
		{
			name: "CA file already set", in: refs,
			edit: func(s string, d []byte) ([]byte, bool, error) { return SetCAFile(s, d, "/etc/kubernetes/pki/ca.crt") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, changed, err := tt.edit("cp-1:/etc/kubernetes/admin.conf", tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			if !changed && !bytes.Equal(out, tt.in) {
				t.Error("unchanged, but the bytes differ")
			}
			if tt.clear != nil {
				got := load(t, out)
				tt.clear(got)
				if diff := cmp.Diff(load(t, tt.in), got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("other fields changed (-before +after):\n%s", diff)
				}
			}
			if tt.wantLines > 0 {
				if removed, added := changedLines(tt.in, out); len(removed) != tt.wantLines || len(added) != tt.wantLines {
					t.Errorf("changed %d lines for %d, want %d each", len(removed), len(added), tt.wantLines)
				}
			}
			again, changed, err := tt.edit("cp-1:/etc/kubernetes/admin.conf", out)
			if err != nil || changed || !bytes.Equal(again, out) {
				t.Errorf("second edit: changed %v, err %v, same bytes %v", changed, err, bytes.Equal(again, out))
			}
		})
	}
}

func TestEditRefuses(t *testing.T) {
	const src = "cp-1:/etc/kubernetes/admin.conf"
	ca := newCert(t, "kubernetes", nil)
	client := newCert(t, "kubernetes-admin", ca)
	stranger := newCert(t, "stranger", ca)
	in := kubeadmStyle(t, ca, client)
	// A key whose body is a recognisable canary: it must not reach errors.
	canaryKey := []byte("-----BEGIN EC PRIVATE KEY-----\nQ0FOQVJZLUtFWS1NQVRFUklBTA==\n-----END EC PRIVATE KEY-----\n")
	keyInCA := append(append([]byte(nil), ca.certPEM...), client.keyPEM...)
	refsAbs := []byte(strings.Replace(fileRefs, "certificate-authority: pki/ca.crt", "certificate-authority: /etc/kubernetes/pki/ca.crt", 1))
	insecure := []byte(strings.Replace(embedded, "    certificate-authority-data: Q0EtREFUQQ==\n", "    insecure-skip-tls-verify: true\n", 1))
	unknown := []byte(strings.Replace(embedded, "    server: https://10.0.0.10:6443\n", "    server: https://10.0.0.10:6443\n    future-field: x\n", 1))

	tests := []struct {
		name   string
		edit   func() error
		target error // nil: only the message is checked
		want   []string
	}{
		{"CA is a file", func() error { _, _, err := SetCAData(src, refsAbs, ca.certPEM); return err },
			ErrFileReference, []string{"clusters[kubernetes].certificate-authority names the file /etc/kubernetes/pki/ca.crt"}},
		{"CA is embedded", func() error { _, _, err := SetCAFile(src, in, "/x.crt"); return err },
			ErrEmbeddedData, []string{"clusters[kubernetes].certificate-authority-data is set"}},
		{"insecure", func() error { _, _, err := SetCAData(src, insecure, ca.certPEM); return err },
			ErrConflict, []string{"insecure-skip-tls-verify"}},
		{"CA that is not a CA", func() error { _, _, err := SetCAData(src, in, client.certPEM); return err },
			ErrConflict, []string{"certificate 1 (CN=kubernetes-admin) is not a CA"}},
		{"CA that is not PEM", func() error { _, _, err := SetCAData(src, in, []byte("garbage")); return err },
			nil, []string{"new certificate-authority-data"}},
		{"CA with a key in it", func() error { _, _, err := SetCAData(src, in, keyInCA); return err },
			nil, []string{"new certificate-authority-data", "private key"}},
		{"unknown field", func() error { _, _, err := SetCAData(src, unknown, ca.certPEM); return err },
			ErrUnknownFields, []string{"without losing fields", "future-field"}},
		{"not a kubeconfig", func() error { _, _, err := SetCAData(src, []byte("kind: Pod\n"), ca.certPEM); return err },
			ErrInvalid, []string{"cannot be parsed"}},
		{"empty CA file path", func() error { _, _, err := SetCAFile(src, refsAbs, ""); return err },
			ErrConflict, []string{"empty certificate-authority path"}},
		{"client files", func() error {
			_, _, err := SetClientCertAndKey(src, refsAbs, client.certPEM, client.keyPEM)
			return err
		},
			ErrFileReference, []string{"users[default-auth].client-certificate", "/var/lib/kubelet/pki/kubelet-client-current.pem"}},
		{"token user", func() error {
			_, _, err := SetClientCertAndKey(src, []byte(bootstrap), client.certPEM, client.keyPEM)
			return err
		},
			ErrConflict, []string{`user "tls-bootstrap-token-user" authenticates with a bearer token`}},
		{"key of another certificate", func() error { _, _, err := SetClientCertAndKey(src, in, client.certPEM, stranger.keyPEM); return err },
			ErrConflict, []string{"does not match the new client certificate (CN=kubernetes-admin)"}},
		{"malformed key", func() error { _, _, err := SetClientCertAndKey(src, in, client.certPEM, canaryKey); return err },
			nil, []string{"new client-key-data"}},
		{"key where the certificate goes", func() error { _, _, err := SetClientCertAndKey(src, in, client.keyPEM, client.keyPEM); return err },
			nil, []string{"new client-certificate-data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.edit()
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.target != nil && !errors.Is(err, tt.target) {
				t.Errorf("error %v does not match %v", err, tt.target)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "kubeconfig "+src+": ") {
				t.Errorf("error %q does not start with the source", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			for _, secret := range [][]byte{client.keyPEM, stranger.keyPEM} {
				body := strings.Split(string(secret), "\n")[1]
				if strings.Contains(msg, body) {
					t.Errorf("error %q quotes key material", msg)
				}
			}
			if strings.Contains(msg, "Q0FOQVJZ") || strings.Contains(msg, "CANARY") {
				t.Errorf("error %q quotes the canary key", msg)
			}
		})
	}
}

// TestKubeadmKubeconfigs edits every kubeconfig the real kubeadm writes and
// checks that only the edited lines change. It needs root and kubeadm.
func TestKubeadmKubeconfigs(t *testing.T) {
	dir := os.Getenv("CAROTATE_COMPONENTS")
	if dir == "" {
		dir = "/var/cache/carotate/components"
	}
	kubeadm := filepath.Join(dir, "kubeadm")
	if _, err := os.Stat(kubeadm); err != nil || os.Geteuid() != 0 {
		t.Skipf("needs root and %s", kubeadm)
	}
	root := t.TempDir()
	cfg := "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint: {advertiseAddress: 10.0.0.10, bindPort: 6443}\n" +
		"nodeRegistration: {name: cp-1}\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.2\n"
	if err := os.WriteFile(filepath.Join(root, "cfg.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, phase := range []string{"certs", "kubeconfig"} {
		args := []string{"init", "phase", phase, "all", "--config", "/cfg.yaml", "--rootfs", root}
		if out, err := exec.Command(kubeadm, args...).CombinedOutput(); err != nil {
			t.Fatalf("kubeadm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	newCA := newCert(t, "kubernetes-2", nil)
	confs, err := filepath.Glob(filepath.Join(root, "etc/kubernetes/*.conf"))
	if err != nil || len(confs) < 4 {
		t.Fatalf("kubeadm wrote %d kubeconfigs (%v)", len(confs), err)
	}
	for _, path := range confs {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out, changed, err := SetCAData(path, data, newCA.certPEM)
			if err != nil || !changed {
				t.Fatalf("SetCAData: changed %v, %v", changed, err)
			}
			if removed, added := changedLines(data, out); len(removed) != 1 || len(added) != 1 || !strings.Contains(added[0], "certificate-authority-data: ") {
				t.Errorf("SetCAData changed -%d +%d lines, want one", len(removed), len(added))
			}
			client := newCert(t, "client", newCA)
			out, changed, err = SetClientCertAndKey(path, data, client.certPEM, client.keyPEM)
			if err != nil || !changed {
				t.Fatalf("SetClientCertAndKey: changed %v, %v", changed, err)
			}
			if removed, added := changedLines(data, out); len(removed) != 2 || len(added) != 2 {
				t.Errorf("SetClientCertAndKey changed -%d +%d lines, want two", len(removed), len(added))
			}
		})
	}
}
