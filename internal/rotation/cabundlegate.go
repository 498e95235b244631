package rotation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/carotate/carotate/internal/engine"
)

// handshakeTimeout bounds one handshake with a webhook or aggregated API
// server, dial included.
const handshakeTimeout = 10 * time.Second

// serverCheck is what a handshake with one caBundle's server found.
type serverCheck struct {
	field bundleField
	// problem, when set, is why finalize must not take the old CA out of
	// the field yet.
	problem string
	// note says why the server was not asked ("no such service").
	note string
}

// bundleServers makes, for every caBundle field that finalize takes a
// rotated CA out of, a fresh TLS handshake with its server, the way
// kube-apiserver calls it: from a control plane, to the service's
// cluster IP or the URL's host, with the server name
// <service>.<namespace>.svc, verified with the bundle finalize leaves.
func (r *Rotation) bundleServers(ctx context.Context) ([]serverCheck, error) {
	carried, _, err := r.bundleChanges(ctx, Finalized)
	if err != nil {
		return nil, err
	}
	var via *Node
	if cps := r.controlPlanes(); len(cps) > 0 {
		via = cps[0]
	}
	var out []serverCheck
	for _, c := range carried {
		if !removesAny(c.cur, c.want) {
			continue
		}
		sc := serverCheck{field: c.field}
		addr, serverName, note, err := r.serverAddress(ctx, c.field)
		switch {
		case err != nil:
			sc.problem = err.Error()
		case note != "":
			sc.note = note
		case via == nil || via.Exec == nil:
			sc.problem = "no control plane to make the handshake from"
		default:
			if err := handshake(ctx, via, addr, serverName, c.want); err != nil {
				sc.problem = err.Error()
			}
		}
		out = append(out, sc)
	}
	return out, nil
}

// removesAny says whether want lacks a certificate cur holds.
func removesAny(cur, want []*x509.Certificate) bool {
	for _, c := range cur {
		if indexOf(want, c) < 0 {
			return true
		}
	}
	return false
}

// serverAddress is where the field's server listens, as kube-apiserver
// reaches it. A service that does not exist gives a note and no address:
// kube-apiserver cannot call it with either bundle.
func (r *Rotation) serverAddress(ctx context.Context, f bundleField) (addr, serverName, note string, err error) {
	if f.Service == nil {
		u, err := url.Parse(f.URL)
		if err != nil || u.Hostname() == "" {
			return "", "", "", fmt.Errorf("url %q is not one kube-apiserver can call", f.URL)
		}
		port := u.Port()
		if port == "" {
			port = "443"
		}
		return net.JoinHostPort(u.Hostname(), port), u.Hostname(), "", nil
	}
	ns, name, port := f.Service.Namespace, f.Service.Name, servicePort(f.Service)
	svc, err := r.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", "", fmt.Sprintf("service %s/%s does not exist, so nothing can be called with either bundle", ns, name), nil
	}
	if err != nil {
		return "", "", "", fmt.Errorf("read service %s/%s: %w", ns, name, err)
	}
	serverName = name + "." + ns + ".svc"
	host := svc.Spec.ClusterIP
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		host = svc.Spec.ExternalName
	}
	if host == "" || host == corev1.ClusterIPNone {
		return "", "", "", fmt.Errorf("service %s/%s has no cluster IP to make the handshake with", ns, name)
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port))), serverName, "", nil
}

// handshake dials addr from n and makes a TLS handshake that verifies the
// server's chain with roots and serverName, as kube-apiserver would.
func handshake(ctx context.Context, n *Node, addr, serverName string, roots []*x509.Certificate) error {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	conn, err := n.Exec.Dial(ctx, addr)
	if err != nil {
		return fmt.Errorf("could not reach %s from %s: %w", addr, n.Name, err)
	}
	defer conn.Close()
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	var presented *x509.Certificate
	cfg := &tls.Config{
		ServerName: serverName,
		MinVersion: tls.VersionTLS12,
		// Verified below, so that the error can name who issued what
		// the server presents.
		InsecureSkipVerify: true, //nolint:gosec // VerifyConnection verifies the chain with roots
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server presented no certificate")
			}
			presented = cs.PeerCertificates[0]
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := presented.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: serverName})
			return err
		},
	}
	tc := tls.Client(conn, cfg)
	err = tc.HandshakeContext(ctx)
	if err == nil {
		return nil
	}
	if presented != nil {
		return fmt.Errorf("%s presents a certificate issued by %q that the bundle finalize leaves (%s) does not verify: %w",
			addr, presented.Issuer.String(), subjects(roots), err)
	}
	return fmt.Errorf("TLS handshake with %s: %w", addr, err)
}

// bundleServersStep stands before anything finalize changes: it refuses
// while a server behind a carried caBundle presents a certificate the
// bundle finalize leaves does not verify, since from then on every call
// kube-apiserver makes to it would fail (a webhook's failurePolicy Fail
// would block writes).
func (r *Rotation) bundleServersStep() engine.Step[*Rotation] {
	return engine.Step[*Rotation]{
		Name:   "webhook and aggregated API servers verify with the new CA",
		Target: engine.Target{Object: "servers behind the carried caBundles"},
		NoUndo: true,
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			checks, err := r.bundleServers(ctx)
			if err != nil {
				return false, "", err
			}
			bad := problems(checks)
			if len(bad) > 0 {
				return false, strings.Join(bad, "; "), nil
			}
			return true, serversDetail(checks), nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			checks, err := r.bundleServers(ctx)
			if err != nil {
				return engine.Change{}, err
			}
			if bad := problems(checks); len(bad) > 0 {
				return engine.Change{}, fmt.Errorf("finalize would take the old CA out of these caBundles, and then every call kube-apiserver makes to their servers would fail:\n  %s\n"+
					"reissue each server's certificate from the new CA (or from a CA the bundle keeps) and restart it, then run carotate finalize again", strings.Join(bad, "\n  "))
			}
			return engine.Change{Detail: serversDetail(checks)}, nil
		},
	}
}

func problems(checks []serverCheck) []string {
	var out []string
	for _, c := range checks {
		if c.problem != "" {
			out = append(out, fmt.Sprintf("%s (%s): %s", c.field, c.field.server(), c.problem))
		}
	}
	return out
}

func serversDetail(checks []serverCheck) string {
	if len(checks) == 0 {
		return "no caBundle loses a CA"
	}
	var notes []string
	ok := 0
	for _, c := range checks {
		if c.note != "" {
			notes = append(notes, c.field.object()+": "+c.note)
		} else {
			ok++
		}
	}
	s := fmt.Sprintf("%d server(s) verify with the new bundle", ok)
	if len(notes) > 0 {
		s += "; not asked: " + strings.Join(notes, "; ")
	}
	return s
}
