package rotation

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/carotate/carotate/internal/manifest"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// The etcd CA's rows: kubeadm's stacked etcd, one member on each control
// plane. etcd and kube-apiserver read the CA bundle only at start (etcd
// builds its client and peer pools once; so does the apiserver's etcd
// client), and both re-read their own certificate and key at every new
// TLS connection (measured on the lab, etcd v3.7.3; see the README). So
// etcd restarts at trust and at finalize, one member at a time under the
// health gate (etcd.go), and not at switch; the apiserver restarts with
// it, in its own step.
//
// The leaves get new keys, unlike the apiserver's: etcd's server
// certificate is also a client certificate, and any client sees it in the
// handshake, so a kept key that leaked would pair with the reissued
// certificate into a credential etcd accepts.

// RoleLeafNewKey is a leaf reissued with a new key, cert and key written
// in one batch.
const (
	RoleLeafNewKey    Role = "leaf certificate (new key)"
	RoleLeafKeyNewKey Role = "leaf key (new)"
)

// PerConnection: the component reads the file again for every new TLS
// connection it makes or accepts.
const PerConnection Pickup = "re-reads at each new connection"

var (
	etcdAtStart = func(flag string) Reader { return Reader{Component: manifest.Etcd, As: flag, Pickup: AtStart} }
	etcdPerConn = func(flag string) Reader { return Reader{Component: manifest.Etcd, As: flag, Pickup: PerConnection} }
)

var etcdRows = []*Artefact{
	{Path: etcdCACert, Roots: roots(model.EtcdCA), Role: RoleCACert, Kubeadm: true,
		Readers: []Reader{etcdAtStart("--trusted-ca-file"), etcdAtStart("--peer-trusted-ca-file"), apiserverAtStart("etcd-cafile")},
		Holds:   fullStages("old", "old", "old + new", "new + old", "new"), content: caBundleAt(model.EtcdCA)},
	{Path: etcdCAKey, Roots: roots(model.EtcdCA), Role: RoleCAKey, Secret: true, Kubeadm: true,
		Readers: []Reader{{Component: "kubeadm", As: "certs renew, join"}},
		Holds:   fullStages("old", "old", "old", "new", "new"), content: caKeyAt(model.EtcdCA)},
	etcdLeafRow("etcd/server", etcdPerConn("--cert-file")),
	etcdLeafKeyRow("etcd/server", etcdPerConn("--key-file")),
	etcdLeafRow("etcd/peer", etcdPerConn("--peer-cert-file")),
	etcdLeafKeyRow("etcd/peer", etcdPerConn("--peer-key-file")),
	etcdLeafRow("etcd/healthcheck-client", Reader{Component: "etcdctl and other etcd clients", Pickup: AtStart}),
	etcdLeafKeyRow("etcd/healthcheck-client", Reader{Component: "etcdctl and other etcd clients", Pickup: AtStart}),
	etcdLeafRow("apiserver-etcd-client", Reader{Component: manifest.KubeAPIServer, As: "--etcd-certfile", Pickup: PerConnection}),
	etcdLeafKeyRow("apiserver-etcd-client", Reader{Component: manifest.KubeAPIServer, As: "--etcd-keyfile", Pickup: PerConnection}),
	stagedRow(newEtcdCert, model.EtcdCA, false),
	stagedRow(newEtcdKey, model.EtcdCA, true),
}

// etcdManifestRow restarts etcd for trust and for finalize; at switch it
// keeps trust's annotation, since etcd re-reads its leaves by itself and
// only the order of its CA bundle changes.
var etcdManifestRow = func() *Artefact {
	a := manifestRow(etcdManifest, manifest.Etcd, "", "")
	a.Roots = roots(model.EtcdCA)
	a.Holds[Switched] = a.Holds[Trusted]
	return a
}()

func etcdLeafRow(name string, rd Reader) *Artefact {
	return &Artefact{Path: path.Join(PKIDir, name+".crt"), Roots: roots(model.EtcdCA), Role: RoleLeafNewKey, Kubeadm: true, Readers: []Reader{rd},
		Holds: fullStages("old", "old", "old", "new", "new"), content: leafAt}
}

func etcdLeafKeyRow(name string, rd Reader) *Artefact {
	return &Artefact{Path: path.Join(PKIDir, name+".key"), Roots: roots(model.EtcdCA), Role: RoleLeafKeyNewKey, Secret: true, Kubeadm: true, Readers: []Reader{rd},
		Holds: fullStages("old", "old", "old", "new", "new"), content: newKeyLeafKeyAt}
}

// newKeyLeafKeyAt is the key of a leaf reissued with a new key: the old
// one until switch.
func newKeyLeafKeyAt(c cell) (Want, error) {
	if c.s < Switched {
		return c.keep()
	}
	crt := strings.TrimSuffix(c.path, ".key") + ".crt"
	l, ok := c.m.Leaves[fileKey{c.n.Name, crt}]
	if !ok || len(l.Key) == 0 {
		return Want{}, fmt.Errorf("node %s: %s: no reissued key in the rotation's material", c.n.Name, c.path)
	}
	return Want{Data: l.Key, Mode: 0o600, Secret: true}, nil
}

// reissueNewKeyLeaf reissues an etcd leaf from the new etcd CA, with its
// subject, names and usages cloned and a new key of the old one's kind.
func (m *Material) reissueNewKeyLeaf(n *Node, a *Artefact, now time.Time) error {
	crt := a.Path
	oc, ok := m.original(n.Name, crt)
	if !ok {
		return fmt.Errorf("node %s: %s is missing; carotate reissues kubeadm's %s certificate from the new etcd CA and needs the old one to clone", n.Name, crt, strings.TrimSuffix(path.Base(crt), ".crt"))
	}
	old, err := pki.ParseCertificatePEM(n.Name+":"+crt, oc.Content)
	if err != nil {
		return err
	}
	leaf, err := pki.Reissue(old, m.New[model.EtcdCA], pki.ReissueOptions{Now: now, Source: n.Name + ":" + crt, NewKey: true})
	if err != nil {
		return err
	}
	key, err := leaf.Key.MarshalPEM()
	if err != nil {
		return err
	}
	m.Leaves[fileKey{n.Name, crt}] = Leaf{Cert: leaf.CertPEM(), Key: key}
	return nil
}
