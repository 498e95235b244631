package verify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/pki"
	"github.com/google/go-cmp/cmp"
)

func TestJudgeServing(t *testing.T) {
	now := fixedNow()
	oldCA := newTestCA(t, "kubernetes", now)
	newCA := newTestCA(t, "kubernetes-ca-20261127-0a1b2c3d", now)
	inter := newIntermediateCA(t, newCA, "kubernetes-intermediate", now)
	in := func(d time.Duration) time.Time { return now.Add(d) }
	byOld := servingCert(t, oldCA, leafSpec{notBefore: in(-time.Hour), notAfter: in(time.Hour)})
	byNew := servingCert(t, newCA, leafSpec{notBefore: in(-time.Hour), notAfter: in(time.Hour)})
	byInter := servingCert(t, inter, leafSpec{notBefore: in(-time.Hour), notAfter: in(time.Hour)})
	expired := servingCert(t, newCA, leafSpec{notBefore: in(-2 * time.Hour), notAfter: in(-time.Hour)})
	wrongName := servingCert(t, newCA, leafSpec{dns: []string{"elsewhere.example"}, notBefore: in(-time.Hour), notAfter: in(time.Hour)})
	wrongNameOldCA := servingCert(t, oldCA, leafSpec{dns: []string{"elsewhere.example"}, notBefore: in(-time.Hour), notAfter: in(time.Hour)})

	tests := []struct {
		name      string
		chain     []*x509.Certificate
		host      string
		want      []*x509.Certificate
		wantErr   any // nil, or a pointer to the x509 error type expected inside
		fragments []string
	}{
		{name: "served by the expected ca", chain: parsedChain(t, byNew), host: "127.0.0.1", want: []*x509.Certificate{newCA.Cert}},
		{name: "either of two expected cas", chain: parsedChain(t, byOld), host: "127.0.0.1", want: []*x509.Certificate{newCA.Cert, oldCA.Cert}},
		{name: "dns name", chain: parsedChain(t, byNew), host: "localhost", want: []*x509.Certificate{newCA.Cert}},
		{name: "through a served intermediate to the root", chain: parsedChain(t, byInter), host: "127.0.0.1", want: []*x509.Certificate{newCA.Cert}},
		{name: "intermediate itself expected", chain: parsedChain(t, byInter), host: "127.0.0.1", want: []*x509.Certificate{inter.Cert}},
		{
			name: "served by the other ca", chain: parsedChain(t, byOld), host: "127.0.0.1", want: []*x509.Certificate{newCA.Cert},
			wantErr: &x509.UnknownAuthorityError{},
			fragments: []string{"endpoint 10.0.0.1:6443", `issued by "CN=kubernetes"`, `subject "CN=kube-apiserver"`,
				"does not chain to the ca this phase expects", `"CN=kubernetes-ca-20261127-0a1b2c3d", spki sha256 ` + pki.SPKIFingerprint(newCA.Cert)[:16],
				"spki sha256 " + pki.SPKIFingerprint(byOld.Leaf)[:16], "restarted"},
		},
		{
			name: "intermediate not served", chain: parsedChain(t, byInter)[:1], host: "127.0.0.1", want: []*x509.Certificate{newCA.Cert},
			wantErr: &x509.UnknownAuthorityError{}, fragments: []string{`issued by "CN=kubernetes-intermediate"`},
		},
		{
			name: "name not in the certificate", chain: parsedChain(t, wrongName), host: "10.0.0.1", want: []*x509.Certificate{newCA.Cert},
			wantErr: &x509.HostnameError{}, fragments: []string{`not valid for "10.0.0.1"`, "subject alternative names"},
		},
		{
			name: "wrong ca reported before wrong name", chain: parsedChain(t, wrongNameOldCA), host: "10.0.0.1", want: []*x509.Certificate{newCA.Cert},
			wantErr: &x509.UnknownAuthorityError{}, fragments: []string{"does not chain"},
		},
		{
			name: "expired", chain: parsedChain(t, expired), host: "127.0.0.1", want: []*x509.Certificate{newCA.Cert},
			wantErr: &x509.CertificateInvalidError{}, fragments: []string{"outside its validity period", "clock"},
		},
		{name: "nothing presented", chain: nil, host: "127.0.0.1", want: []*x509.Certificate{newCA.Cert}, fragments: []string{"presented no certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			served := summarize("10.0.0.1:6443", tt.chain)
			err := judgeServing(served, tt.host, tt.want, now)
			wantFragments(t, err, tt.fragments...)
			if err == nil {
				return
			}
			var se *ServingError
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not a *ServingError", err)
			}
			if tt.wantErr != nil && !errors.As(err, tt.wantErr) {
				t.Errorf("error %v does not wrap %T", err, tt.wantErr)
			}
		})
	}
}

func TestServingCA(t *testing.T) {
	now := time.Now()
	oldCA := newTestCA(t, "kubernetes", now)
	newCA := newTestCA(t, "kubernetes-ca-new", now)
	cert := servingCert(t, oldCA, leafSpec{})
	tests := []struct {
		name      string
		want      []*x509.Certificate
		fragments []string
	}{
		{name: "expected ca", want: []*x509.Certificate{oldCA.Cert}},
		{name: "old and new expected", want: []*x509.Certificate{newCA.Cert, oldCA.Cert}},
		{name: "phase expects the new ca", want: []*x509.Certificate{newCA.Cert},
			fragments: []string{`issued by "CN=kubernetes"`, "kubernetes-ca-new", "does not chain"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, cert, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := ServingCA(ctx, srv.endpoint(), tt.want)
			fragments := tt.fragments
			if len(fragments) > 0 {
				fragments = append(fragments, "endpoint "+srv.endpoint())
			}
			wantFragments(t, err, fragments...)
			wantServed := ServedCert{
				Endpoint:   srv.endpoint(),
				Subject:    "CN=kube-apiserver",
				Issuer:     "CN=kubernetes",
				SPKISHA256: pki.SPKIFingerprint(cert.Leaf),
				NotBefore:  cert.Leaf.NotBefore,
				NotAfter:   cert.Leaf.NotAfter,
			}
			if diff := cmp.Diff(wantServed, got, cmpServed); diff != "" {
				t.Errorf("ServedCert mismatch (-want +got):\n%s", diff)
			}
			// The point of verifying after the handshake: a mismatch is
			// ours to report, not a handshake error in the server's log.
			srv.noHandshakeErrors(t)
		})
	}
}

// cmpServed compares ServedCert without the parsed chain.
var cmpServed = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Chain" }, cmp.Ignore())

// TestServerLogSeesVerifyingClients shows that the server in these tests
// would catch a handshake error: a client that verifies inside the
// handshake and refuses the certificate makes it log one.
func TestServerLogSeesVerifyingClients(t *testing.T) {
	now := time.Now()
	srv := newTestServer(t, servingCert(t, newTestCA(t, "kubernetes", now), leafSpec{}), nil)
	roots := x509.NewCertPool()
	roots.AddCert(newTestCA(t, "other", now).Cert)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", srv.endpoint(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err == nil {
		conn.Close()
		t.Fatal("handshake with an untrusted server succeeded")
	}
	srv.settle(t)
	if !strings.Contains(srv.errorLog.String(), "TLS handshake error") {
		t.Errorf("server log %q has no handshake error; the tests could not see one either", srv.errorLog.String())
	}
}

func TestServingCAHandshakesEveryTime(t *testing.T) {
	ca := newTestCA(t, "kubernetes", time.Now())
	srv := newTestServer(t, servingCert(t, ca, leafSpec{}), nil)
	const n = 3
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := ServingCA(ctx, srv.endpoint(), []*x509.Certificate{ca.Cert})
		cancel()
		if err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
	}
	srv.noHandshakeErrors(t)
	if got := srv.connections.Load(); got != n {
		t.Errorf("%d checks made %d connections, want one each", n, got)
	}
	if got := srv.resumed.Load(); got != 0 {
		t.Errorf("%d of %d handshakes resumed a session, want full handshakes", got, n)
	}
}

func TestServingCAWithClientCert(t *testing.T) {
	ca := newTestCA(t, "etcd-ca", time.Now())
	client, err := MintClientCert(ca, "carotate-probe", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Like etcd: the handshake fails without a client certificate from ca.
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv := newTestServer(t, servingCert(t, ca, leafSpec{}), nil, func(c *tls.Config) {
		c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, pool
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ServingCAWith(ctx, srv.endpoint(), []*x509.Certificate{ca.Cert}, ServingOptions{ClientCert: &client}); err != nil {
		t.Fatal(err)
	}
	srv.noHandshakeErrors(t)
}

func TestServingCAErrors(t *testing.T) {
	ca := newTestCA(t, "kubernetes", time.Now())
	closed := closedEndpoint(t)
	tests := []struct {
		name      string
		endpoint  string
		want      []*x509.Certificate
		fragments []string
	}{
		{name: "nothing listening", endpoint: closed, want: []*x509.Certificate{ca.Cert}, fragments: []string{"endpoint " + closed, "tls handshake failed", "listening"}},
		{name: "not host:port", endpoint: "10.0.0.1", want: []*x509.Certificate{ca.Cert}, fragments: []string{`"10.0.0.1" is not host:port`}},
		{name: "no expected ca", endpoint: closed, fragments: []string{"no expected ca"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := ServingCA(ctx, tt.endpoint, tt.want)
			wantFragments(t, err, tt.fragments...)
		})
	}
}

func TestServingCAAll(t *testing.T) {
	now := time.Now()
	oldCA := newTestCA(t, "kubernetes", now)
	newCA := newTestCA(t, "kubernetes-ca-new", now)
	good := newTestServer(t, servingCert(t, newCA, leafSpec{}), nil)
	stale1 := newTestServer(t, servingCert(t, oldCA, leafSpec{}), nil)
	stale2 := newTestServer(t, servingCert(t, oldCA, leafSpec{}), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := ServingCAAll(ctx, []string{stale1.endpoint(), good.endpoint(), stale2.endpoint()}, []*x509.Certificate{newCA.Cert})
	wantFragments(t, err, stale1.endpoint(), stale2.endpoint())
	if strings.Contains(err.Error(), good.endpoint()) {
		t.Errorf("error names the endpoint that serves the right certificate: %v", err)
	}
	if i, j := strings.Index(err.Error(), stale1.endpoint()), strings.Index(err.Error(), stale2.endpoint()); i > j {
		t.Errorf("errors not in the order of the endpoints: %v", err)
	}
	if err := ServingCAAll(ctx, []string{good.endpoint()}, []*x509.Certificate{newCA.Cert}); err != nil {
		t.Errorf("all good: %v", err)
	}
	for _, s := range []*testServer{good, stale1, stale2} {
		s.noHandshakeErrors(t)
	}
}

// TestServingCAWithoutRequiredClientCert documents why ServingOptions has a
// ClientCert: a server that requires one (etcd) still shows us its
// certificate, but logs the handshake as failed.
func TestServingCAWithoutRequiredClientCert(t *testing.T) {
	ca := newTestCA(t, "etcd-ca", time.Now())
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv := newTestServer(t, servingCert(t, ca, leafSpec{}), nil, func(c *tls.Config) {
		c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, pool
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ServingCA(ctx, srv.endpoint(), []*x509.Certificate{ca.Cert}); err != nil {
		t.Fatal(err)
	}
	srv.settle(t)
	if !strings.Contains(srv.errorLog.String(), "TLS handshake error") {
		t.Errorf("server log %q has no handshake error for a missing client certificate", srv.errorLog.String())
	}
}
