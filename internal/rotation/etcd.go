package rotation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/carotate/carotate/internal/etcd"
	"github.com/carotate/carotate/internal/manifest"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/verify"
)

// The etcd health gate. A member restarts only from a healthy cluster
// (every member voting and answering, one leader), and the next step
// waits until the cluster is healthy again, so that with three members
// no more than one is ever down. carotate is a client of every member, at
// the client URL its manifest advertises, with a short-lived client
// certificate it mints from the CA that member signs with at the moment:
// the first certificate of the member's etcd/ca.crt, which etcd trusts
// at every stage of the rotation and of its rollback.

// etcdPoll is how often the health wait asks.
const etcdPoll = time.Second

// rotatesEtcd says whether the rotation changes the etcd CA.
func (r *Rotation) rotatesEtcd() bool { return r.M.roots().Has(RootEtcdCA) }

// etcdMember is one control plane's etcd as carotate reaches it.
type etcdMember struct {
	node      *Node
	clientURL string
	peerURL   string
	signing   *pki.CA // the CA its etcd/ca.crt starts with
}

// etcdMembers reads every control plane's etcd manifest and CA bundle.
func (r *Rotation) etcdMembers(ctx context.Context) ([]etcdMember, error) {
	var out []etcdMember
	for _, n := range r.controlPlanes() {
		m := etcdMember{node: n}
		data, err := n.Exec.ReadFile(ctx, etcdManifest)
		if err != nil {
			return nil, fmt.Errorf("node %s: read etcd's manifest: %w", n.Name, err)
		}
		src := n.Name + ":" + etcdManifest
		for flag, dst := range map[string]*string{"advertise-client-urls": &m.clientURL, "initial-advertise-peer-urls": &m.peerURL} {
			v, found, err := manifest.FlagValue(src, data, manifest.Etcd, flag)
			if err != nil {
				return nil, err
			}
			if !found || v == "" {
				return nil, fmt.Errorf("%s: etcd has no --%s; carotate rotates kubeadm's stacked etcd, whose manifest sets it", src, flag)
			}
			*dst = strings.Split(v, ",")[0]
		}
		bundle, err := n.Exec.ReadFile(ctx, etcdCACert)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		certs, err := pki.ParseCertificatesPEM(n.Name+":"+etcdCACert, bundle)
		if err != nil {
			return nil, err
		}
		for _, ca := range []*pki.CA{r.M.Old[model.EtcdCA], r.M.New[model.EtcdCA]} {
			if ca != nil && certs[0].Equal(ca.Cert) {
				m.signing = ca
			}
		}
		if m.signing == nil {
			return nil, fmt.Errorf("node %s: %s starts with a certificate that is neither the old nor the new etcd CA (%s); it was changed outside carotate", n.Name, etcdCACert, certs[0].Subject)
		}
		out = append(out, m)
	}
	return out, nil
}

// etcdTLS is the client configuration for one member: a fresh client
// certificate from ca, and the old and new etcd CAs to verify it by.
func (r *Rotation) etcdTLS(ca *pki.CA, name string) (*tls.Config, error) {
	cert, err := verify.MintClientCert(ca, name, r.now())
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(r.M.Old[model.EtcdCA].Cert)
	pool.AddCert(r.M.New[model.EtcdCA].Cert)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func (r *Rotation) etcdEndpoints(ctx context.Context) ([]etcd.Endpoint, []etcdMember, error) {
	members, err := r.etcdMembers(ctx)
	if err != nil {
		return nil, nil, err
	}
	eps := make([]etcd.Endpoint, len(members))
	for i, m := range members {
		cfg, err := r.etcdTLS(m.signing, "carotate:etcd-health")
		if err != nil {
			return nil, nil, err
		}
		eps[i] = etcd.Endpoint{Node: m.node.Name, URL: m.clientURL, TLS: cfg}
	}
	return eps, members, nil
}

// etcdHealthy refuses to go on from an etcd cluster that is not healthy:
// before a member restarts, so that no two are ever down at once.
func (r *Rotation) etcdHealthy(ctx context.Context, before string) error {
	eps, _, err := r.etcdEndpoints(ctx)
	if err != nil {
		return err
	}
	h, err := etcd.Check(ctx, eps)
	if err == nil {
		err = h.Problem()
	}
	if err != nil {
		return fmt.Errorf("etcd is not healthy, so carotate does not %s: %w", before, err)
	}
	return nil
}

// waitEtcdHealthy waits, after a member restarted, until the cluster is
// healthy again with every member voting.
func (r *Rotation) waitEtcdHealthy(ctx context.Context, n *Node) error {
	eps, _, err := r.etcdEndpoints(ctx)
	if err != nil {
		return err
	}
	if _, err := etcd.WaitHealthy(ctx, eps, r.timeouts().StaticPod, etcdPoll); err != nil {
		return fmt.Errorf("node %s: etcd restarted, but the cluster is not healthy again: %w", n.Name, err)
	}
	return nil
}

// verifyEtcd is the gate's part for etcd at stage s: the cluster healthy;
// every member serving (clients and peers) a certificate from the CA the
// stage serves with, to a fresh handshake; once finalized, a client
// certificate from the old etcd CA refused by every member, and one from
// the new accepted.
func (r *Rotation) verifyEtcd(ctx context.Context, s Stage) ([]string, error) {
	eps, members, err := r.etcdEndpoints(ctx)
	if err != nil {
		return nil, err
	}
	h, err := etcd.Check(ctx, eps)
	if err == nil {
		err = h.Problem()
	}
	if err != nil {
		return nil, err
	}
	done := []string{fmt.Sprintf("etcd healthy (%d voting members, one leader)", len(h.Members))}
	served, which := r.M.Old[model.EtcdCA], "old"
	if s >= Switched {
		served, which = r.M.New[model.EtcdCA], "new"
	}
	for i, m := range members {
		host := hostOf(m.clientURL)
		if _, err := verify.ServingCAWith(ctx, host, []*x509.Certificate{served.Cert}, verify.ServingOptions{ClientCert: &eps[i].TLS.Certificates[0]}); err != nil {
			return nil, fmt.Errorf("node %s: etcd's client port: %w", m.node.Name, err)
		}
		leaf, err := etcd.PeerHandshake(ctx, m.peerURL, eps[i].TLS)
		if err != nil {
			return nil, fmt.Errorf("node %s: etcd's peer port: %w", m.node.Name, err)
		}
		if leaf.CheckSignatureFrom(served.Cert) != nil {
			return nil, fmt.Errorf("node %s: etcd's peer port %s serves %q issued by %q, not by the %s etcd CA; check %s on the node", m.node.Name, m.peerURL, leaf.Subject, leaf.Issuer, which, PKIDir+"/etcd/peer.crt")
		}
	}
	done = append(done, fmt.Sprintf("%d etcd members serve from the %s etcd CA (clients and peers)", len(members), which))
	if s == Finalized {
		for _, m := range members {
			old, err := r.etcdTLS(r.M.Old[model.EtcdCA], "carotate:verify-old-etcd")
			if err != nil {
				return nil, err
			}
			if err := etcd.Rejects(ctx, etcd.Endpoint{Node: m.node.Name, URL: m.clientURL, TLS: old}); err != nil {
				return nil, fmt.Errorf("node %s: a client certificate from the old etcd CA: %w", m.node.Name, err)
			}
		}
		done = append(done, "old-etcd-CA client certificate rejected")
	}
	return done, nil
}

func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Host
}

// EtcdPreflight refuses a rotation of the etcd CA from an etcd cluster a
// restart could break: one that is not healthy, has a learner, or whose
// members are not the control planes' manifests one to one; and one
// where a kube-apiserver's --etcd-servers names an etcd that is not one
// of those members. It does nothing when the etcd CA is not rotated.
func (r *Rotation) EtcdPreflight(ctx context.Context) error {
	if !r.rotatesEtcd() {
		return nil
	}
	eps, members, err := r.etcdEndpoints(ctx)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, m := range members {
		known[hostOf(m.clientURL)] = true
	}
	for _, n := range r.controlPlanes() {
		data, err := n.Exec.ReadFile(ctx, apiserverManifest)
		if err != nil {
			return fmt.Errorf("node %s: read kube-apiserver's manifest: %w", n.Name, err)
		}
		v, _, err := manifest.FlagValue(n.Name+":"+apiserverManifest, data, manifest.KubeAPIServer, "etcd-servers")
		if err != nil {
			return err
		}
		for _, s := range strings.Split(v, ",") {
			h := hostOf(s)
			host := h
			if i := strings.LastIndex(h, ":"); i > 0 {
				host = h[:i]
			}
			if host == "127.0.0.1" || host == "localhost" || host == "[::1]" || known[h] {
				continue
			}
			return fmt.Errorf("node %s: kube-apiserver's --etcd-servers names %s, which is not the etcd member of any control plane; carotate rotates kubeadm's stacked etcd only, where each apiserver talks to the members on the control planes", n.Name, s)
		}
	}
	h, err := etcd.Check(ctx, eps)
	if err == nil {
		err = h.Problem()
	}
	if err != nil {
		return fmt.Errorf("etcd: %w; carotate restarts its members one at a time and needs every one healthy first", err)
	}
	return nil
}

// What a restart costs with one control plane, measured on carotate's
// lab (README: the service-account key, the etcd CA): how long
// kube-apiserver's /readyz is not 200 while it restarts, and while its
// only etcd does.
const (
	measuredAPIServerRestart = 43 * time.Second
	measuredEtcdRestart      = 66 * time.Second
)

// OutageNote says, for a cluster with one control plane and roots that
// restart kube-apiserver or etcd, that the API will be away, how often
// and for how long each time; "" otherwise. Each restarts once in trust
// and once in finalize (with one control plane, trust and switch share
// the apiserver's restart).
func (r *Rotation) OutageNote() string {
	if !r.M.OneAPIServer {
		return ""
	}
	var parts []string
	if r.M.roots().Has(RootServiceAccountKey) || r.rotatesEtcd() {
		parts = append(parts, fmt.Sprintf("kube-apiserver restarts twice (about %s each without /readyz 200)", measuredAPIServerRestart))
	}
	if r.rotatesEtcd() {
		parts = append(parts, fmt.Sprintf("etcd twice (about %s each, while the apiserver cannot reach its only etcd)", measuredEtcdRestart))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("With one control plane the API is unavailable during this rotation: %s, once in trust and once in finalize (measured on carotate's lab). The default --roots restart neither.", andList(parts))
}
