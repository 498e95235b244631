package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/carotate/carotate/internal/pki"
)

// TestPresentEither is a server that, like kube-apiserver, lists the CAs
// it accepts client certificates from and authenticates each request
// against its current list: the client keeps working when that list moves
// from one CA to the other, on a connection opened before the move too.
func TestPresentEither(t *testing.T) {
	now := time.Now()
	mk := func(cn string) *pki.CA {
		ca, err := pki.GenerateCA(pki.GenerateOptions{Now: now, CommonName: cn, Algorithm: pki.ECDSAP256})
		if err != nil {
			t.Fatal(err)
		}
		return ca
	}
	oldCA, newCA, serving := mk("old-ca"), mk("new-ca"), mk("serving-ca")
	client := func(ca *pki.CA) tls.Certificate {
		tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "kubernetes-admin", Organization: []string{"kubeadm:cluster-admins"}},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
		leaf, err := pki.Reissue(tmpl, ca, pki.ReissueOptions{Now: now, Source: "test", NewKey: true})
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, _ := leaf.Key.MarshalPEM()
		pair, err := tls.X509KeyPair(leaf.CertPEM(), keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return pair
	}
	var accepted atomic.Pointer[x509.CertPool]
	pool := func(ca *pki.CA) *x509.CertPool { p := x509.NewCertPool(); p.AddCert(ca.Cert); return p }
	accepted.Store(pool(oldCA))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusUnauthorized)
			return
		}
		if _, err := r.TLS.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: accepted.Load(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		w.Write([]byte("ok"))
	}))
	servingTmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	servingTmpl.SerialNumber = big.NewInt(7)
	sk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, servingTmpl, serving.Cert, &sk.PublicKey, serving.Key.Signer())
	if err != nil {
		t.Fatal(err)
	}
	sp := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: sk}
	srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{Certificates: []tls.Certificate{sp}, ClientAuth: tls.RequestClientCert, ClientCAs: accepted.Load()}, nil
	}}
	srv.StartTLS()
	defer srv.Close()

	cfg := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: serving.CertPEM()}}
	if err := presentEither(cfg, client(newCA), client(oldCA)); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: cfg.Transport, Timeout: 10 * time.Second}
	get := func(what string) {
		t.Helper()
		resp, err := hc.Get(srv.URL)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body) // read to the end, so the connection is reused
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", what, resp.Status)
		}
	}
	get("accepting the old CA")
	accepted.Store(pool(newCA))
	get("accepting the new CA, on the connection opened before")
	accepted.Store(pool(oldCA))
	get("accepting the old CA again (a rollback)")
}
