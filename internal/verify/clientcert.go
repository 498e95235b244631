package verify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/carotate/carotate/internal/pki"
)

// clientCertLifetime is how long a minted client certificate stays usable
// after it is minted: long enough for one gate, short enough that a copy
// left behind is worthless.
const clientCertLifetime = 10 * time.Minute

// MintClientCert signs a throwaway client certificate with ca: a fresh ECDSA
// P-256 key, CN=commonName and no organisation (so no groups and no
// permissions beyond those of any authenticated user), usable for client
// authentication only, valid from pki.Backdate before now until
// clientCertLifetime after. It goes through pki.Reissue, so it is verified
// against ca's chain and linted before it is returned, like every
// certificate carotate makes. When ca is an intermediate, the certificate
// chain carries ca and its chain up to, but not including, the root.
//
// The returned tls.Certificate holds the private key: never print it.
func MintClientCert(ca *pki.CA, commonName string, now time.Time) (tls.Certificate, error) {
	if ca == nil || ca.Cert == nil {
		return tls.Certificate{}, errors.New("minting a client certificate needs a signing ca")
	}
	if commonName == "" {
		return tls.Certificate{}, errors.New("minting a client certificate needs a common name")
	}
	subject, err := asn1.Marshal(pkix.Name{CommonName: commonName}.ToRDNSequence())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("encoding client certificate subject %q: %w", commonName, err)
	}
	// Reissue clones a certificate it is given; this template describes
	// the certificate we want, so that signing, verification and lint stay
	// in one place.
	template := &x509.Certificate{
		RawSubject:  subject,
		NotBefore:   now.Add(-pki.Backdate),
		NotAfter:    now.Add(clientCertLifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	leaf, err := pki.Reissue(template, ca, pki.ReissueOptions{
		Now:       now,
		Source:    fmt.Sprintf("client certificate %q", commonName),
		NewKey:    true,
		Algorithm: pki.ECDSAP256,
	})
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("minting a client certificate signed by %s: %w", describeCA(ca.Cert), err)
	}
	chain := [][]byte{leaf.Cert.Raw}
	if len(ca.Chain) > 0 {
		chain = append(chain, ca.Cert.Raw)
		for _, c := range ca.Chain[:len(ca.Chain)-1] {
			chain = append(chain, c.Raw)
		}
	}
	return tls.Certificate{Certificate: chain, PrivateKey: leaf.Key.Signer(), Leaf: leaf.Cert}, nil
}

// ClientCertLogMarker returns the text by which kube-apiserver names cert
// when it refuses it ("Unable to authenticate the request" err="verifying
// certificate SN=<serial>, SKID=…"). Each check with a rejected client
// certificate makes the apiserver log that line, which contains "x509:";
// pass the marker in ScanOptions.Ignore so that the log gate does not
// report our own probe. The trailing comma keeps serial 12 from matching
// serial 123.
func ClientCertLogMarker(cert tls.Certificate) (string, error) {
	leaf, err := leafOf(cert)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("SN=%d,", leaf.SerialNumber), nil
}

func leafOf(cert tls.Certificate) (*x509.Certificate, error) {
	if cert.Leaf != nil {
		return cert.Leaf, nil
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("client certificate holds no certificate")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parsing client certificate: %w", err)
	}
	return leaf, nil
}

// ClientCertAccepted sends GET https://endpoint/api with cert as the client
// certificate over a fresh connection (no keep-alive, no proxy) and reports
// whether the apiserver authenticated it. Only 401 means rejected: 403 is an
// authenticated user without permission, and /api is open to every
// authenticated user anyway. The server must present a certificate that
// chains to serverRoots and is valid for the endpoint's host; as with
// ServingCA, that is checked after the handshake, so a mismatch never shows
// up as a handshake error in the apiserver's log.
func ClientCertAccepted(ctx context.Context, endpoint string, serverRoots []*x509.Certificate, cert tls.Certificate) (accepted bool, status int, err error) {
	host, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		return false, 0, fmt.Errorf("endpoint %q is not host:port: %w", endpoint, err)
	}
	if len(serverRoots) == 0 {
		return false, 0, fmt.Errorf("endpoint %s: no ca given to verify its serving certificate with", endpoint)
	}
	transport := &http.Transport{
		// A proxy would terminate or reroute the very connection we test.
		Proxy: nil,
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			conn, err := handshake(ctx, addr, host, &cert)
			if err != nil {
				return nil, err
			}
			served := summarize(endpoint, conn.ConnectionState().PeerCertificates)
			if err := judgeServing(served, host, serverRoots, time.Now()); err != nil {
				closeGracefully(conn)
				return nil, err
			}
			return conn, nil
		},
		DisableKeepAlives:      true,
		ResponseHeaderTimeout:  probeTimeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport: transport,
		Timeout:   2 * probeTimeout,
		// A redirect would be answered by something other than the
		// endpoint we mean to test.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+endpoint+"/api", nil)
	if err != nil {
		return false, 0, fmt.Errorf("endpoint %s: building request: %w", endpoint, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		// Our own verdict on the serving certificate reads better without
		// the url.Error around it.
		var serving *ServingError
		if errors.As(err, &serving) {
			err = serving
		}
		return false, 0, fmt.Errorf("checking whether endpoint %s accepts a client certificate: %w", endpoint, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	return clientCertAccepted(resp.StatusCode), resp.StatusCode, nil
}

// clientCertAccepted judges an apiserver's answer to a request made with a
// client certificate: anything but 401 means the certificate authenticated.
func clientCertAccepted(status int) bool { return status != http.StatusUnauthorized }

// AcceptanceError reports an endpoint that accepted a client certificate it
// should have rejected, or the other way round.
type AcceptanceError struct {
	Endpoint string
	// CA names the CA that signed the client certificate ("the old CA").
	CA           string
	Status       int
	WantAccepted bool
}

func (e *AcceptanceError) Error() string {
	if e.WantAccepted {
		return fmt.Sprintf("a client certificate signed by %s is rejected by %s (HTTP %d): %s is not yet in the apiserver's --client-ca-file; "+
			"check that the bundle was written and that kube-apiserver was restarted since", e.CA, e.Endpoint, e.Status, e.CA)
	}
	return fmt.Sprintf("a client certificate signed by %s is still accepted by %s (HTTP %d): %s is still in --client-ca-file / extension-apiserver-authentication; "+
		"check that it was removed from the bundle and that kube-apiserver was restarted since", e.CA, e.Endpoint, e.Status, e.CA)
}

// judgeAcceptance turns an endpoint's answer into a gate error, or nil when
// the answer is the one the phase expects.
func judgeAcceptance(endpoint string, status int, wantAccepted bool, caName string) error {
	if clientCertAccepted(status) == wantAccepted {
		return nil
	}
	return &AcceptanceError{Endpoint: endpoint, CA: caName, Status: status, WantAccepted: wantAccepted}
}

// RequireAccepted checks that every endpoint authenticates cert, a client
// certificate signed by the CA named caName ("the new CA"). serverRoots
// verifies the endpoints' serving certificates.
func RequireAccepted(ctx context.Context, endpoints []string, serverRoots []*x509.Certificate, cert tls.Certificate, caName string) error {
	return requireAcceptance(ctx, endpoints, serverRoots, cert, caName, true)
}

// RequireRejected checks that no endpoint authenticates cert, a client
// certificate signed by the CA named caName ("the old CA"). Each rejection
// makes kube-apiserver log an x509 error naming the certificate; see
// ClientCertLogMarker.
func RequireRejected(ctx context.Context, endpoints []string, serverRoots []*x509.Certificate, cert tls.Certificate, caName string) error {
	return requireAcceptance(ctx, endpoints, serverRoots, cert, caName, false)
}

func requireAcceptance(ctx context.Context, endpoints []string, serverRoots []*x509.Certificate, cert tls.Certificate, caName string, want bool) error {
	return forEachEndpoint(endpoints, func(endpoint string) error {
		_, status, err := ClientCertAccepted(ctx, endpoint, serverRoots, cert)
		if err != nil {
			return err
		}
		return judgeAcceptance(endpoint, status, want, caName)
	})
}
