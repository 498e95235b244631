package verify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
)

// Readyz asks a kube-apiserver's /readyz, as an anonymous client that
// trusts roots (kubeadm lets anyone read it), and returns an error unless
// it answers 200. Every call makes a new connection.
func Readyz(ctx context.Context, endpoint string, roots []*x509.Certificate) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	host, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		return fmt.Errorf("endpoint %s: %w", endpoint, err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+endpoint+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("endpoint %s: /readyz: %w", endpoint, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("endpoint %s: /readyz answered %s", endpoint, resp.Status)
	}
	return nil
}

// ServedLeaf is the certificate endpoint presents to a new client now.
func ServedLeaf(ctx context.Context, endpoint string) (*x509.Certificate, error) {
	conn, err := handshake(ctx, endpoint, "", nil)
	if err != nil {
		return nil, err
	}
	defer closeGracefully(conn)
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("endpoint %s: presented no certificate", endpoint)
	}
	return certs[0], nil
}
