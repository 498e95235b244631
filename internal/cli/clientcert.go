package cli

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"time"

	"k8s.io/client-go/rest"
)

// presentEither makes cfg present, in each TLS handshake, the first of
// certs whose issuer the apiserver lists as a CA it accepts client
// certificates from. finalize and rollback need that: finalize makes the
// apiservers accept only the new CA's clients, and a rollback from a
// partly run finalize goes from there back to the old CA's only, so
// neither the operator's kubeconfig certificate (old CA) nor one
// reissued from the new CA works from start to end. crypto/tls sends no
// certificate at all when none fits the server's list, so the choice is
// made from that list.
//
// A connection is authenticated by its handshake, so when the apiserver
// changes the CAs it accepts, a request on an open connection gets 401:
// it is retried once on a new connection, which picks the other
// certificate. HTTP/2 is off, since it would carry every request, watches
// included, on one connection that is never idle to be closed.
func presentEither(cfg *rest.Config, certs ...tls.Certificate) error {
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return fmt.Errorf("kubeconfig TLS settings: %w", err)
	}
	if tlsCfg == nil {
		return fmt.Errorf("kubeconfig has no TLS settings")
	}
	tlsCfg.Certificates = nil
	tlsCfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		for i := range certs {
			if cri.SupportsCertificate(&certs[i]) == nil {
				return &certs[i], nil
			}
		}
		return &certs[0], nil
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 25,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	cfg.Transport = retryUnauthorized{tr}
	cfg.TLSClientConfig = rest.TLSClientConfig{}
	return nil
}

type retryUnauthorized struct{ tr *http.Transport }

func (r retryUnauthorized) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.GetBody == nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	resp, err := r.tr.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	r.tr.CloseIdleConnections()
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	return r.tr.RoundTrip(retry)
}

func (r retryUnauthorized) CloseIdleConnections() { r.tr.CloseIdleConnections() }
