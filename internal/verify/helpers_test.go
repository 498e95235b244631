package verify

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/pki"
)

// fixedNow is the "current time" of the pure tests.
func fixedNow() time.Time { return time.Date(2026, 11, 27, 21, 30, 0, 0, time.UTC) }

func newTestCA(t *testing.T, cn string, now time.Time) *pki.CA {
	t.Helper()
	ca, err := pki.GenerateCA(pki.GenerateOptions{Now: now, CommonName: cn, Algorithm: pki.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func newKey(t *testing.T) pki.PrivateKey {
	t.Helper()
	k, err := pki.SystemKeyGenerator{}.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newIntermediateCA signs an intermediate CA with root.
func newIntermediateCA(t *testing.T, root *pki.CA, cn string, now time.Time) *pki.CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.Cert, key.Public(), root.Key.Signer())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &pki.CA{Cert: cert, Key: key, Chain: append([]*x509.Certificate{root.Cert}, root.Chain...)}
}

// leafSpec describes a serving certificate for the tests.
type leafSpec struct {
	cn        string
	dns       []string
	ips       []net.IP
	notBefore time.Time
	notAfter  time.Time
}

// servingCert signs a serving certificate with ca and returns it with its
// chain up to, not including, the root, as a server presents it.
func servingCert(t *testing.T, ca *pki.CA, spec leafSpec) tls.Certificate {
	t.Helper()
	if spec.cn == "" {
		spec.cn = "kube-apiserver"
	}
	if spec.notBefore.IsZero() {
		spec.notBefore = time.Now().Add(-time.Hour)
	}
	if spec.notAfter.IsZero() {
		spec.notAfter = time.Now().Add(time.Hour)
	}
	if spec.dns == nil && spec.ips == nil {
		spec.ips = []net.IP{net.ParseIP("127.0.0.1")}
		spec.dns = []string{"localhost"}
	}
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: spec.cn},
		NotBefore:    spec.notBefore,
		NotAfter:     spec.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     spec.dns,
		IPAddresses:  spec.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key.Signer())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	chain := [][]byte{der}
	if len(ca.Chain) > 0 {
		chain = append(chain, ca.Cert.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key.Signer(), Leaf: leaf}
}

func parsedChain(t *testing.T, c tls.Certificate) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, der := range c.Certificate {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cert)
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is a TLS server on 127.0.0.1 that records what a gate must
// not cause: its error log (where net/http reports failed handshakes), its
// connections and whether any handshake resumed a session.
type testServer struct {
	*httptest.Server
	errorLog    syncBuffer
	connections atomic.Int64
	closed      atomic.Int64
	resumed     atomic.Int64
}

// newTestServer serves cert. It asks for a client certificate without
// verifying it, as kube-apiserver does; the handler decides. configure
// adjusts the TLS configuration before the server starts.
func newTestServer(t *testing.T, cert tls.Certificate, handler http.Handler, configure ...func(*tls.Config)) *testServer {
	t.Helper()
	if handler == nil {
		handler = http.NotFoundHandler()
	}
	s := &testServer{Server: httptest.NewUnstartedServer(handler)}
	s.TLS = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.DidResume {
				s.resumed.Add(1)
			}
			return nil
		},
	}
	for _, c := range configure {
		c(s.TLS)
	}
	s.Config.ErrorLog = log.New(&s.errorLog, "", 0)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.connections.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed.Add(1)
		}
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *testServer) endpoint() string { return s.Listener.Addr().String() }

// settle waits (at most 5 s) until the server has finished with every
// connection it accepted, so that anything it would log is logged.
func (s *testServer) settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.closed.Load() < s.connections.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("server still has %d open connections after 5s", s.connections.Load()-s.closed.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noHandshakeErrors fails the test if the server logged a TLS error.
func (s *testServer) noHandshakeErrors(t *testing.T) {
	t.Helper()
	s.settle(t)
	if log := s.errorLog.String(); strings.Contains(log, "TLS handshake error") || strings.Contains(log, "tls:") {
		t.Errorf("our check made the server log a TLS error:\n%s", log)
	}
}

// closedEndpoint returns a loopback address nothing listens on.
func closedEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// wantFragments fails unless err's message holds every fragment; with no
// fragments it wants no error.
func wantFragments(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if len(fragments) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one containing %q", fragments)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not contain %q", err.Error(), f)
		}
	}
}
