package verify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/carotate/carotate/internal/pki"
)

const (
	// probeTimeout bounds one connection: dial and TLS handshake together,
	// and, for HTTP checks, waiting for the response headers.
	probeTimeout = 5 * time.Second
	// drainTimeout bounds the polite close after a handshake (see
	// closeGracefully); it only matters for a server that never answers our
	// close_notify.
	drainTimeout = time.Second
	// maxDrain bounds what we read from a server while closing.
	maxDrain = 64 << 10
	// fingerprintShown is how many hex digits of an SPKI fingerprint errors
	// show: enough to tell CAs apart, short enough to read.
	fingerprintShown = 16
)

// ServedCert summarises the certificate an endpoint served in one handshake.
type ServedCert struct {
	Endpoint   string
	Subject    string
	Issuer     string
	SPKISHA256 string
	NotBefore  time.Time
	NotAfter   time.Time
	// Chain is what the server presented, leaf first.
	Chain []*x509.Certificate
}

// String names the certificate for humans: subject, issuer and the start of
// its key's fingerprint.
func (s ServedCert) String() string {
	return fmt.Sprintf("subject %q, issued by %q, spki sha256 %s", s.Subject, s.Issuer, shortFingerprint(s.SPKISHA256))
}

func summarize(endpoint string, chain []*x509.Certificate) ServedCert {
	s := ServedCert{Endpoint: endpoint, Chain: chain}
	if len(chain) > 0 {
		leaf := chain[0]
		s.Subject = leaf.Subject.String()
		s.Issuer = leaf.Issuer.String()
		s.SPKISHA256 = pki.SPKIFingerprint(leaf)
		s.NotBefore, s.NotAfter = leaf.NotBefore, leaf.NotAfter
	}
	return s
}

// ServingOptions adjusts ServingCAWith. The zero value is what ServingCA
// uses.
type ServingOptions struct {
	// ServerName is sent as SNI (unless it is an IP address) and checked
	// against the certificate's names. Default: the endpoint's host.
	ServerName string
	// ClientCert is presented if the server asks for one. Servers that
	// require one (etcd) reject a handshake without it and log that
	// rejection, which the log gate would then find.
	ClientCert *tls.Certificate
	// Now is when the chain is verified. Default: time.Now().
	Now time.Time
}

// ServingCA makes a fresh TLS handshake with endpoint (host:port) and checks
// that the certificate it serves chains to one of want, the CAs the current
// phase expects, and is valid for the endpoint's host.
//
// The handshake itself accepts any certificate and the chain is verified
// afterwards, so that a mismatch is reported by us and never as a failed
// handshake in the server's log: the log gate looks for exactly those
// errors and must not find our own probe.
func ServingCA(ctx context.Context, endpoint string, want []*x509.Certificate) (ServedCert, error) {
	return ServingCAWith(ctx, endpoint, want, ServingOptions{})
}

// ServingCAWith is ServingCA with options.
func ServingCAWith(ctx context.Context, endpoint string, want []*x509.Certificate, opts ServingOptions) (ServedCert, error) {
	host, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		return ServedCert{}, fmt.Errorf("endpoint %q is not host:port: %w", endpoint, err)
	}
	if len(want) == 0 {
		return ServedCert{}, fmt.Errorf("endpoint %s: no expected ca given to check its serving certificate against", endpoint)
	}
	name := opts.ServerName
	if name == "" {
		name = host
	}
	conn, err := handshake(ctx, endpoint, name, opts.ClientCert)
	if err != nil {
		return ServedCert{}, err
	}
	chain := conn.ConnectionState().PeerCertificates
	closeGracefully(conn)
	served := summarize(endpoint, chain)
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	return served, judgeServing(served, name, want, now)
}

// ServingCAAll runs ServingCA against every endpoint at once and joins the
// errors, in the order of endpoints.
func ServingCAAll(ctx context.Context, endpoints []string, want []*x509.Certificate) error {
	return forEachEndpoint(endpoints, func(endpoint string) error {
		_, err := ServingCA(ctx, endpoint, want)
		return err
	})
}

// forEachEndpoint runs check for every endpoint concurrently (each check is
// bounded by probeTimeout) and joins the errors in the order given.
func forEachEndpoint(endpoints []string, check func(endpoint string) error) error {
	errs := make([]error, len(endpoints))
	var wg sync.WaitGroup
	for i, ep := range endpoints {
		wg.Go(func() { errs[i] = check(ep) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// handshake dials endpoint and completes a full TLS handshake without
// verifying the server. Every call uses a new dialer and configuration
// without a session cache, so nothing is resumed: what the server presents
// is what it serves now, to a new client.
func handshake(ctx context.Context, endpoint, serverName string, clientCert *tls.Certificate) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conf := &tls.Config{
		// Verified by judgeServing after the handshake: a client that
		// refuses the certificate inside the handshake sends an alert that
		// the server logs as a TLS handshake error.
		InsecureSkipVerify: true, //nolint:gosec // verified after the handshake, see above
		ServerName:         serverName,
		MinVersion:         tls.VersionTLS12,
	}
	if clientCert != nil {
		// Always present it. With Certificates, crypto/tls sends nothing
		// when the certificate does not chain to a CA the server lists as
		// acceptable, and the request goes on as anonymous: after
		// finalize an old-CA certificate would then look accepted (403
		// for system:anonymous) although the server never saw it.
		cert := *clientCert
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: probeTimeout}, Config: conf}
	conn, err := dialer.DialContext(ctx, "tcp", endpoint)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: tls handshake failed; check that the component is running and listening there: %w", endpoint, err)
	}
	return conn.(*tls.Conn), nil
}

// closeGracefully ends a connection the way a well-behaved client does: it
// sends close_notify, reads what the server still sends (TLS 1.3 session
// tickets, the server's own close_notify) and only then closes. Closing
// with unread data would send a TCP reset, which a server still finishing
// its side of the handshake may log as a handshake error.
func closeGracefully(conn *tls.Conn) {
	_ = conn.SetDeadline(time.Now().Add(drainTimeout))
	if conn.CloseWrite() == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(conn, maxDrain))
	}
	_ = conn.Close()
}

// ServingError reports an endpoint whose certificate does not verify
// against the CAs the phase expects. Err is the crypto/x509 error.
type ServingError struct {
	Endpoint string
	Served   ServedCert
	Want     []*x509.Certificate
	Err      error
}

func (e *ServingError) Error() string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		what     string
		hint     string
	)
	switch {
	case len(e.Served.Chain) == 0:
		return fmt.Sprintf("endpoint %s presented no certificate; check what listens there", e.Endpoint)
	case errors.As(e.Err, &unknown):
		what = fmt.Sprintf("serves a certificate (%s) that does not chain to the ca this phase expects (%s)", e.Served, describeCAs(e.Want))
		hint = "it still serves a certificate from another ca: check that its certificate was reissued and that the component was restarted since"
	case errors.As(e.Err, &hostname):
		what = fmt.Sprintf("serves a certificate (%s) that is not valid for %q", e.Served, hostname.Host)
		hint = "its subject alternative names lack the address clients use: compare the certificate with the one it replaced"
	case errors.As(e.Err, &invalid) && invalid.Reason == x509.Expired:
		what = fmt.Sprintf("serves a certificate (%s, valid %s to %s) outside its validity period", e.Served,
			e.Served.NotBefore.UTC().Format(time.RFC3339), e.Served.NotAfter.UTC().Format(time.RFC3339))
		hint = "check the node's clock and that the component was restarted after its certificate was renewed"
	default:
		what = fmt.Sprintf("serves a certificate (%s) that does not verify against the ca this phase expects (%s)", e.Served, describeCAs(e.Want))
		hint = "inspect it with openssl s_client and compare it with the expected ca"
	}
	return fmt.Sprintf("endpoint %s %s: %v; %s", e.Endpoint, what, e.Err, hint)
}

func (e *ServingError) Unwrap() error { return e.Err }

// judgeServing decides whether the served chain is acceptable: the leaf
// chains to one of want, using the rest of the served chain as
// intermediates, and is valid for name at now. The chain is checked before
// the name so that a certificate from the wrong CA is reported as such even
// when its names are wrong too.
func judgeServing(served ServedCert, name string, want []*x509.Certificate, now time.Time) error {
	fail := func(err error) error {
		return &ServingError{Endpoint: served.Endpoint, Served: served, Want: want, Err: err}
	}
	if len(served.Chain) == 0 {
		return fail(errors.New("no certificate presented"))
	}
	roots := x509.NewCertPool()
	for _, c := range want {
		roots.AddCert(c)
	}
	intermediates := x509.NewCertPool()
	for _, c := range served.Chain[1:] {
		intermediates.AddCert(c)
	}
	leaf := served.Chain[0]
	opts := x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if _, err := leaf.Verify(opts); err != nil {
		return fail(err)
	}
	if err := leaf.VerifyHostname(name); err != nil {
		return fail(err)
	}
	return nil
}

func describeCAs(cas []*x509.Certificate) string {
	parts := make([]string, len(cas))
	for i, c := range cas {
		parts[i] = describeCA(c)
	}
	return strings.Join(parts, " or ")
}

func describeCA(c *x509.Certificate) string {
	return fmt.Sprintf("%q, spki sha256 %s", c.Subject.String(), shortFingerprint(pki.SPKIFingerprint(c)))
}

func shortFingerprint(fp string) string {
	if len(fp) <= fingerprintShown {
		return fp
	}
	return fp[:fingerprintShown] + "…"
}
