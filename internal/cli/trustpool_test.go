package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/carotate/carotate/internal/pki"
)

func testCA(t *testing.T, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k
}

func servingCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, ip string) tls.Certificate {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

// TestTrustLater: carotate's client verifies apiservers against the
// kubeconfig's CA, and against the rotation's new CA once it is added: an
// apiserver that serves from the new CA is refused before and accepted
// after, on a new connection, and a certificate for another address is
// refused whatever the pool holds.
func TestTrustLater(t *testing.T) {
	oldCA, _ := testCA(t, "old")
	newCA, newKey := testCA(t, "new")
	for _, tc := range []struct {
		name, ip string
		ok       bool
	}{{"names the server", "127.0.0.1", true}, {"names another address", "127.0.0.2", false}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"kube-system","uid":"u"}}`))
			}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{servingCert(t, newCA, newKey, tc.ip)}}
			srv.StartTLS()
			defer srv.Close()
			cfg := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: pki.EncodeCertificatePEM(oldCA)}}
			pool, err := trustLater(cfg)
			if err != nil || pool == nil {
				t.Fatalf("trustLater: %v, %v", pool, err)
			}
			get := func() error {
				cs, err := kubernetes.NewForConfig(cfg)
				if err != nil {
					t.Fatal(err)
				}
				_, err = cs.CoreV1().Namespaces().Get(t.Context(), "kube-system", metav1.GetOptions{})
				return err
			}
			if err := get(); err == nil || !strings.Contains(err.Error(), "x509") {
				t.Errorf("before the new CA is trusted: %v, want an x509 error", err)
			}
			pool.add(newCA)
			err = get()
			if tc.ok && err != nil {
				t.Errorf("after the new CA is trusted: %v", err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "127.0.0.1")) {
				t.Errorf("a certificate for %s: %v, want a refusal naming the address", tc.ip, err)
			}
		})
	}
}
