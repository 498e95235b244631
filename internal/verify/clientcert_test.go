package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/pki"
	"github.com/google/go-cmp/cmp"
)

func TestMintClientCert(t *testing.T) {
	now := fixedNow()
	root := newTestCA(t, "kubernetes", now)
	inter := newIntermediateCA(t, root, "kubernetes-intermediate", now)
	type summary struct {
		Subject     string
		Org         []string
		NotBefore   time.Time
		NotAfter    time.Time
		KeyUsage    x509.KeyUsage
		ExtKeyUsage []x509.ExtKeyUsage
		IsCA        bool
		Curve       string
		ChainLen    int
	}
	tests := []struct {
		name string
		ca   *pki.CA
		want summary
	}{
		{name: "root ca", ca: root, want: summary{
			Subject: "CN=carotate-probe", NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(10 * time.Minute),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, Curve: "P-256", ChainLen: 1,
		}},
		{name: "intermediate ca sends itself along", ca: inter, want: summary{
			Subject: "CN=carotate-probe", NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(10 * time.Minute),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, Curve: "P-256", ChainLen: 2,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := MintClientCert(tt.ca, "carotate-probe", now)
			if err != nil {
				t.Fatal(err)
			}
			leaf := cert.Leaf
			pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
			if !ok {
				t.Fatalf("public key is %T, want ECDSA", leaf.PublicKey)
			}
			got := summary{
				Subject: leaf.Subject.String(), Org: leaf.Subject.Organization, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
				KeyUsage: leaf.KeyUsage, ExtKeyUsage: leaf.ExtKeyUsage, IsCA: leaf.IsCA, Curve: pub.Curve.Params().Name, ChainLen: len(cert.Certificate),
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("client certificate mismatch (-want +got):\n%s", diff)
			}
			// What the apiserver does with --client-ca-file holding the root.
			roots := x509.NewCertPool()
			roots.AddCert(root.Cert)
			intermediates := x509.NewCertPool()
			for _, c := range parsedChain(t, cert)[1:] {
				intermediates.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates, CurrentTime: now,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("client certificate does not verify against the root: %v", err)
			}
			if !pki.KeyMatchesCertificate(mustKey(t, cert), leaf) {
				t.Error("private key does not match the certificate")
			}
		})
	}
}

func mustKey(t *testing.T, cert tls.Certificate) pki.PrivateKey {
	t.Helper()
	signer, ok := cert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("private key is %T", cert.PrivateKey)
	}
	k, err := pki.NewPrivateKey(signer)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestMintClientCertErrors(t *testing.T) {
	now := fixedNow()
	ca := newTestCA(t, "kubernetes", now)
	tests := []struct {
		name      string
		ca        *pki.CA
		cn        string
		now       time.Time
		fragments []string
	}{
		{name: "no ca", cn: "probe", now: now, fragments: []string{"needs a signing ca"}},
		{name: "no common name", ca: ca, now: now, fragments: []string{"needs a common name"}},
		{name: "no time", ca: ca, cn: "probe", fragments: []string{"client certificate", "current time"}},
		{name: "ca without key", ca: &pki.CA{Cert: ca.Cert}, cn: "probe", now: now, fragments: []string{`"CN=kubernetes"`, "no signing ca"}},
		{name: "ca expired", ca: ca, cn: "probe", now: now.Add(20 * 365 * 24 * time.Hour), fragments: []string{"expired"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := MintClientCert(tt.ca, tt.cn, tt.now)
			wantFragments(t, err, tt.fragments...)
		})
	}
}

func TestClientCertLogMarker(t *testing.T) {
	cert, err := MintClientCert(newTestCA(t, "kubernetes", fixedNow()), "probe", fixedNow())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ClientCertLogMarker(cert)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("SN=%d,", cert.Leaf.SerialNumber)
	if got != want {
		t.Errorf("marker = %q, want %q", got, want)
	}
	// The line kube-apiserver logs for a refused certificate
	// (k8s.io/apiserver/pkg/authentication/request/x509).
	line := fmt.Sprintf(`E1127 21:30:01.123456 1 authentication.go:75] "Unable to authenticate the request" err="verifying certificate SN=%d, SKID=AB:CD, AKID=EF:01 failed: x509: certificate signed by unknown authority"`,
		cert.Leaf.SerialNumber)
	m := lineMatcher{patterns: DefaultTLSErrorPatterns(), ignore: []string{got}}
	if m.match(line) {
		t.Errorf("marker %q does not exclude the apiserver's line %q", got, line)
	}
	bare := cert
	bare.Leaf = nil
	if again, err := ClientCertLogMarker(bare); err != nil || again != want {
		t.Errorf("marker from DER = %q, %v; want %q", again, err, want)
	}
	if _, err := ClientCertLogMarker(tls.Certificate{}); err == nil {
		t.Error("marker of an empty certificate: no error")
	}
}

func TestJudgeAcceptance(t *testing.T) {
	tests := []struct {
		name         string
		status       int
		wantAccepted bool
		fragments    []string
	}{
		{name: "accepted as wanted", status: http.StatusOK, wantAccepted: true},
		{name: "authenticated but forbidden counts as accepted", status: http.StatusForbidden, wantAccepted: true},
		{name: "rejected as wanted", status: http.StatusUnauthorized, wantAccepted: false},
		{name: "new ca not trusted yet", status: http.StatusUnauthorized, wantAccepted: true,
			fragments: []string{"signed by the new CA is rejected by 10.0.0.1:6443 (HTTP 401)", "--client-ca-file", "restarted"}},
		{name: "old ca still trusted", status: http.StatusOK, wantAccepted: false,
			fragments: []string{"signed by the new CA is still accepted by 10.0.0.1:6443 (HTTP 200)", "still in --client-ca-file / extension-apiserver-authentication"}},
		{name: "old ca still trusted, forbidden", status: http.StatusForbidden, wantAccepted: false, fragments: []string{"(HTTP 403)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := judgeAcceptance("10.0.0.1:6443", tt.status, tt.wantAccepted, "the new CA")
			wantFragments(t, err, tt.fragments...)
			if err != nil {
				var ae *AcceptanceError
				if !errors.As(err, &ae) || ae.Status != tt.status {
					t.Errorf("error %v is not an *AcceptanceError with status %d", err, tt.status)
				}
			}
		})
	}
}

// apiserverLike answers /api the way kube-apiserver does for client
// certificates: 401 unless the certificate verifies against clientCAs, 403
// for an authenticated user it will not authorise, and 403 for a request
// without a certificate (anonymous).
func apiserverLike(t *testing.T, clientCAs ...*x509.Certificate) http.Handler {
	pool := x509.NewCertPool()
	for _, c := range clientCAs {
		pool.AddCert(c)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api" {
			t.Errorf("request for %s, want /api", r.URL.Path)
		}
		peers := r.TLS.PeerCertificates
		if len(peers) == 0 {
			http.Error(w, `forbidden: User "system:anonymous"`, http.StatusForbidden)
			return
		}
		intermediates := x509.NewCertPool()
		for _, c := range peers[1:] {
			intermediates.AddCert(c)
		}
		_, err := peers[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		http.Error(w, "forbidden", http.StatusForbidden)
	})
}

func TestClientCertAccepted(t *testing.T) {
	now := time.Now()
	oldCA := newTestCA(t, "kubernetes", now)
	newCA := newTestCA(t, "kubernetes-ca-new", now)
	oldClient, err := MintClientCert(oldCA, "carotate-probe", now)
	if err != nil {
		t.Fatal(err)
	}
	newClient, err := MintClientCert(newCA, "carotate-probe", now)
	if err != nil {
		t.Fatal(err)
	}
	serving := servingCert(t, oldCA, leafSpec{})
	tests := []struct {
		name         string
		clientCAs    []*x509.Certificate
		cert         tls.Certificate
		roots        []*x509.Certificate
		wantAccepted bool
		wantStatus   int
		fragments    []string
	}{
		{name: "trusted", clientCAs: []*x509.Certificate{oldCA.Cert}, cert: oldClient, roots: []*x509.Certificate{oldCA.Cert},
			wantAccepted: true, wantStatus: http.StatusForbidden},
		{name: "not trusted", clientCAs: []*x509.Certificate{oldCA.Cert}, cert: newClient, roots: []*x509.Certificate{oldCA.Cert},
			wantStatus: http.StatusUnauthorized},
		{name: "both trusted", clientCAs: []*x509.Certificate{oldCA.Cert, newCA.Cert}, cert: newClient, roots: []*x509.Certificate{oldCA.Cert},
			wantAccepted: true, wantStatus: http.StatusForbidden},
		{name: "server not trusted", clientCAs: []*x509.Certificate{oldCA.Cert}, cert: oldClient, roots: []*x509.Certificate{newCA.Cert},
			fragments: []string{"accepts a client certificate", "does not chain", "kubernetes-ca-new"}},
		{name: "no server roots", clientCAs: []*x509.Certificate{oldCA.Cert}, cert: oldClient,
			fragments: []string{"no ca given"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Like kube-apiserver, the server names the CAs it accepts
			// client certificates from: a client that only sends a
			// matching certificate would send none and pass as anonymous.
			pool := x509.NewCertPool()
			for _, c := range tt.clientCAs {
				pool.AddCert(c)
			}
			srv := newTestServer(t, serving, apiserverLike(t, tt.clientCAs...), func(c *tls.Config) { c.ClientCAs = pool })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			accepted, status, err := ClientCertAccepted(ctx, srv.endpoint(), tt.roots, tt.cert)
			wantFragments(t, err, tt.fragments...)
			if accepted != tt.wantAccepted || status != tt.wantStatus {
				t.Errorf("ClientCertAccepted = %v, %d; want %v, %d", accepted, status, tt.wantAccepted, tt.wantStatus)
			}
			srv.noHandshakeErrors(t)
		})
	}
}

func TestRequireAcceptedAndRejected(t *testing.T) {
	now := time.Now()
	oldCA := newTestCA(t, "kubernetes", now)
	newCA := newTestCA(t, "kubernetes-ca-new", now)
	oldClient, err := MintClientCert(oldCA, "carotate-probe", now)
	if err != nil {
		t.Fatal(err)
	}
	serving := servingCert(t, newCA, leafSpec{})
	roots := []*x509.Certificate{newCA.Cert}
	// cp-1 has finished the phase (trusts only the new CA); cp-2 still
	// trusts the old one.
	done := newTestServer(t, serving, apiserverLike(t, newCA.Cert))
	behind := newTestServer(t, serving, apiserverLike(t, newCA.Cert, oldCA.Cert))
	endpoints := []string{done.endpoint(), behind.endpoint()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	err = RequireRejected(ctx, endpoints, roots, oldClient, "the old CA")
	wantFragments(t, err, "signed by the old CA is still accepted by "+behind.endpoint(), "the old CA is still in --client-ca-file")
	if strings.Contains(err.Error(), done.endpoint()) {
		t.Errorf("error names %s, which rejects the old CA: %v", done.endpoint(), err)
	}
	err = RequireAccepted(ctx, endpoints, roots, oldClient, "the old CA")
	wantFragments(t, err, "signed by the old CA is rejected by "+done.endpoint())
	if strings.Contains(err.Error(), behind.endpoint()) {
		t.Errorf("error names %s, which accepts the old CA: %v", behind.endpoint(), err)
	}
	if err := RequireAccepted(ctx, endpoints[1:], roots, oldClient, "the old CA"); err != nil {
		t.Errorf("RequireAccepted where it is accepted: %v", err)
	}
	if err := RequireRejected(ctx, endpoints[:1], roots, oldClient, "the old CA"); err != nil {
		t.Errorf("RequireRejected where it is rejected: %v", err)
	}
}
