package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"k8s.io/client-go/rest"

	"github.com/carotate/carotate/internal/pki"
)

// trustPool is the set of CAs carotate's own API client verifies
// apiservers against, which a fresh rotation extends with its new cluster
// CA as soon as that exists. Without it a run that restarts kube-apiserver
// after the switch (the service-account key's steps do) makes new
// connections to apiservers that serve from a CA the kubeconfig does not
// hold: the lock could no longer be renewed, and the run would stop.
type trustPool struct {
	mu    sync.Mutex
	certs []*x509.Certificate
	host  string // what the server's certificate must name
}

// add trusts c too, from the next handshake on.
func (p *trustPool) add(c *x509.Certificate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.certs = pki.Dedupe(append(p.certs, c))
}

// verify is crypto/tls's own check, against the pool as it is now: the
// chain to one of its CAs, for server authentication, naming the host.
func (p *trustPool) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the apiserver presented no certificate")
	}
	p.mu.Lock()
	roots := x509.NewCertPool()
	for _, c := range p.certs {
		roots.AddCert(c)
	}
	host := p.host
	p.mu.Unlock()
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: host,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, CurrentTime: time.Now()})
	return err
}

// trustLater makes cfg verify apiservers against a pool that starts with
// the kubeconfig's CAs and can grow. A configuration with a transport of
// its own (finalize and rollback present either client certificate, and
// know the new CA already), or one that names no CA (it relies on the
// system's roots), is left as it is, and nil returned.
func trustLater(cfg *rest.Config) (*trustPool, error) {
	if cfg.Insecure || cfg.Transport != nil || len(cfg.TLSClientConfig.CAData) == 0 {
		return nil, nil
	}
	cas, err := pki.ParseCertificatesPEM("kubeconfig certificate-authority", cfg.TLSClientConfig.CAData)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil || tlsCfg == nil {
		return nil, err
	}
	p := &trustPool{certs: cas, host: tlsCfg.ServerName}
	if p.host == "" {
		u, err := url.Parse(cfg.Host)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig server %q: %w", cfg.Host, err)
		}
		p.host = u.Hostname()
	}
	tlsCfg.RootCAs = nil
	tlsCfg.InsecureSkipVerify = true //nolint:gosec // verified by VerifyConnection, against the pool
	tlsCfg.VerifyConnection = p.verify
	cfg.Transport = &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsCfg, TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout: 90 * time.Second, MaxIdleConnsPerHost: 25, ForceAttemptHTTP2: true}
	cfg.TLSClientConfig = rest.TLSClientConfig{}
	return p, nil
}
