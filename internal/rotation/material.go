package rotation

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/carotate/carotate/internal/kubeconfig"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/state/backup"
)

// Material is everything the content of a file at a stage is computed
// from: the files as they were before the rotation (from the backup), the
// old and new CAs, and the leaf certificates reissued from the new CAs.
// Given the same material, every stage of every file is the same bytes,
// which is what makes resume and byte-for-byte rollback work.
type Material struct {
	RotationID string
	Old, New   map[model.CAKind]*pki.CA
	// Originals are the files before the rotation, keyed by node and path.
	// A symbolic link has fs.ModeSymlink in Mode and its target as Content.
	// A path that did not exist has no entry.
	Originals map[fileKey]backup.File
	// Objects are the API objects before the rotation, keyed "Kind ns/name".
	Objects map[string]backup.Object
	// Leaves are the reissued certificates (and new keys) by node and path.
	Leaves map[fileKey]Leaf
	// Roots are the roots the rotation changes; nil means the default.
	Roots Roots
	// OldSA and NewSA are the service-account key pair before and after,
	// when Roots has the service-account key.
	OldSA, NewSA pki.PrivateKey
	// OneAPIServer: the cluster has a single kube-apiserver, the only
	// verifier of tokens, so the service-account key's trust and switch
	// share one restart.
	OneAPIServer bool
	// Renew: each new CA is the old one renewed, a new certificate over
	// the same key and subject (see RenewsCAs), so nothing it signed needs
	// reissuing. Leaves are then reissued only when asked (--leaves).
	Renew bool
}

// keepsLeaves says the switch leaves every leaf as it is: a renewal made
// without --leaves, whose switch then changes nothing.
func (m *Material) keepsLeaves() bool { return m.Renew && len(m.Leaves) == 0 }

// RenewsCAs says whether every new CA has the key of the old one it
// replaces: the material of a renewal.
func RenewsCAs(old, new map[model.CAKind]*pki.CA) bool {
	if len(new) == 0 {
		return false
	}
	for k, n := range new {
		if o := old[k]; o == nil || n == nil || !pki.KeyMatchesCertificate(n.Key, o.Cert) {
			return false
		}
	}
	return true
}

// roots are the roots the rotation changes.
func (m *Material) roots() Roots {
	if m.Roots == nil {
		return DefaultRoots()
	}
	return m.Roots
}

// Leaf is a reissued certificate; Key is empty when the old key is kept.
type Leaf struct {
	Cert []byte
	Key  []byte
}

type fileKey struct{ Node, Path string }

func (k fileKey) String() string { return k.Node + ":" + k.Path }

// Want is what a path holds at a stage.
type Want struct {
	Absent bool
	Data   []byte
	Mode   fs.FileMode
	// Link, when set, makes the path a symbolic link to it.
	Link   string
	Secret bool
}

func (w Want) equal(o Want) bool {
	return w.Absent == o.Absent && w.Link == o.Link && bytes.Equal(w.Data, o.Data)
}

var errNoOriginal = errors.New("not in the backup")

func (m *Material) original(nodeName, p string) (backup.File, bool) {
	f, ok := m.Originals[fileKey{nodeName, p}]
	return f, ok
}

// kubeletClientFile is where the kubelet client certificate reissued at
// switch goes in this rotation.
func (m *Material) kubeletClientFile() string {
	return strings.ReplaceAll(kubeletClientPattern, "{rotation}", m.RotationID)
}

// bundle is what a CA trust file holds at stage s: the old CA until
// trust; old then new during trust (the first certificate is the one
// matching the key beside it, which kubeadm relies on); new then old from
// switch; new alone once finalized.
func (m *Material) bundle(kind model.CAKind, s Stage, orig []byte) []byte {
	o, n := m.Old[kind].Cert, m.New[kind].Cert
	if s == Switched && m.keepsLeaves() {
		s = Trusted // a renewal's switch changes nothing
	}
	switch s {
	case Trusted:
		return pki.BuildBundle(o, n)
	case Switched:
		return pki.BuildBundle(n, o)
	case Finalized:
		return pki.BuildBundle(n)
	default:
		return orig
	}
}

// SecretMode is the mode of every secret carotate writes, whatever the
// mode of the file it replaces: a ca.key found at 0644 is not kept at 0644.
// Rolled back to the original stage, a file gets its original mode again,
// since rollback restores what was there byte for byte.
const SecretMode fs.FileMode = 0o600

// At is the content of path on node n at stage s: its catalogue row's
// content, and for a path outside the catalogue what it was before the
// rotation. Every secret gets SecretMode, but at the original stage, which
// is the backup byte for byte.
func (m *Material) At(n *Node, p string, s Stage) (Want, error) {
	a := m.row(p)
	if a == nil {
		a = &Artefact{Path: p, content: keptAt}
	}
	orig, had := m.original(n.Name, p)
	w, err := a.content(cell{m: m, n: n, a: a, path: p, s: s, orig: orig, had: had})
	if err != nil || s == Original || w.Absent || w.Link != "" {
		return w, err
	}
	if w.Secret || a.Secret {
		w.Secret, w.Mode = true, SecretMode
	}
	return w, nil
}

// ReissueLeaves makes every leaf certificate the switch needs, from the
// originals and the new CAs: the apiserver's serving and client
// certificates keep their keys (so the apiserver never sees a certificate
// and key that do not match while it reloads them); kubeconfig and kubelet
// client certificates get new keys, so that a leaked admin.conf is revoked
// by the rotation.
func (m *Material) ReissueLeaves(nodes []*Node, now time.Time) error {
	m.Leaves = map[fileKey]Leaf{}
	for _, n := range nodes {
		for _, a := range rowsOn(n, m.roots(), nil) {
			var err error
			switch a.Role {
			case RoleLeaf:
				err = m.reissueServerLeaf(n, a, now)
			case RoleLeafNewKey:
				err = m.reissueNewKeyLeaf(n, a, now)
			case RoleKubeconfig, RoleKubeconfigCA:
				err = m.reissueKubeconfigClient(n, a.Path, now)
			case RoleClientLink:
				err = m.reissueKubeletClient(n, now)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// reissueServerLeaf reissues one of the apiserver's certificates from the
// new CA of its root, with its key kept.
func (m *Material) reissueServerLeaf(n *Node, a *Artefact, now time.Time) error {
	crt, key := a.Path, strings.TrimSuffix(a.Path, ".crt")+".key"
	oc, ok1 := m.original(n.Name, crt)
	ok, ok2 := m.original(n.Name, key)
	if !ok1 || !ok2 {
		return fmt.Errorf("node %s: %s or its key is missing; carotate reissues kubeadm's %s certificate and needs both", n.Name, crt, strings.TrimSuffix(path.Base(crt), ".crt"))
	}
	old, err := pki.ParseCertificatePEM(n.Name+":"+crt, oc.Content)
	if err != nil {
		return err
	}
	k, err := pki.ParsePrivateKeyPEM(n.Name+":"+key, ok.Content)
	if err != nil {
		return err
	}
	ca := m.New[a.Roots[0]]
	leaf, err := pki.Reissue(old, ca, pki.ReissueOptions{Now: now, Source: n.Name + ":" + crt, Key: k})
	if err != nil {
		return err
	}
	certPEM := leaf.CertPEM()
	if servesChain[a.Path] {
		certPEM = append(certPEM, intermediates(ca)...)
	}
	m.Leaves[fileKey{n.Name, crt}] = Leaf{Cert: certPEM}
	return nil
}

// servesChain are the leaves kube-apiserver presents to clients that may
// trust only an imported intermediate's root: its serving certificate, and
// its client certificate to aggregated API servers.
var servesChain = map[string]bool{PKIDir + "/apiserver.crt": true, PKIDir + "/front-proxy-client.crt": true}

// intermediates is what a leaf of ca carries after itself so that a client
// trusting the root can build the path: ca and its chain without the root,
// PEM. A self-signed CA needs nothing.
func intermediates(ca *pki.CA) []byte {
	if len(ca.Chain) == 0 {
		return nil
	}
	return pki.BuildBundle(append([]*x509.Certificate{ca.Cert}, ca.Chain[:len(ca.Chain)-1]...)...)
}

// reissueKubeconfigClient reissues a kubeconfig's embedded client
// certificate, if it has one, with a new key.
func (m *Material) reissueKubeconfigClient(n *Node, p string, now time.Time) error {
	f, ok := m.original(n.Name, p)
	if !ok {
		return nil
	}
	cfg, err := kubeconfig.Parse(n.Name+":"+p, f.Content)
	if err != nil || len(cfg.ClientCertData) == 0 {
		return err
	}
	return m.reissueClient(n.Name, p, cfg.ClientCertData, now, false)
}

// reissueKubeletClient reissues the certificate kubelet-client-current.pem
// points at, when it is a link as the kubelet makes it.
func (m *Material) reissueKubeletClient(n *Node, now time.Time) error {
	link, ok := m.original(n.Name, KubeletClientCurrent)
	if !ok || link.Mode&fs.ModeSymlink == 0 {
		return nil
	}
	target := linkTarget(KubeletClientCurrent, string(link.Content))
	f, ok := m.original(n.Name, target)
	if !ok {
		return fmt.Errorf("node %s: %s points at %s, which carotate could not read", n.Name, KubeletClientCurrent, target)
	}
	return m.reissueClient(n.Name, KubeletClientCurrent, f.Content, now, true)
}

func (m *Material) reissueClient(nodeName, p string, pemData []byte, now time.Time, combined bool) error {
	src := nodeName + ":" + p
	var certs []*x509.Certificate
	var err error
	if combined {
		certs, _, err = pki.ParseCertificateAndKeyPEM(src, pemData)
	} else {
		certs, err = pki.ParseCertificatesPEM(src, pemData)
	}
	if err != nil {
		return err
	}
	leaf, err := pki.Reissue(certs[0], m.New[model.ClusterCA], pki.ReissueOptions{Now: now, Source: src, NewKey: true})
	if err != nil {
		return err
	}
	key, err := leaf.Key.MarshalPEM()
	if err != nil {
		return err
	}
	m.Leaves[fileKey{nodeName, p}] = Leaf{Cert: leaf.CertPEM(), Key: key}
	return nil
}

// linkTarget resolves a link's target relative to the link's directory.
func linkTarget(link, target string) string {
	if path.IsAbs(target) {
		return path.Clean(target)
	}
	return path.Join(path.Dir(link), target)
}

// leafFiles and its inverse store the reissued leaves in a sealed file of
// the state directory, next to the backup.
func (m *Material) leafFiles() []backup.File {
	var out []backup.File
	for k, l := range m.Leaves {
		out = append(out, backup.File{Node: k.Node, Path: k.Path + "#cert", Mode: 0o600, Content: l.Cert})
		if len(l.Key) > 0 {
			out = append(out, backup.File{Node: k.Node, Path: k.Path + "#key", Mode: 0o600, Content: l.Key})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].Path < out[j].Path
	})
	return out
}

func leavesFromFiles(fs []backup.File) map[fileKey]Leaf {
	out := map[fileKey]Leaf{}
	for _, f := range fs {
		p, part := splitPart(f.Path)
		k := fileKey{f.Node, p}
		l := out[k]
		if part == "key" {
			l.Key = f.Content
		} else {
			l.Cert = f.Content
		}
		out[k] = l
	}
	return out
}

func splitPart(p string) (string, string) {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '#' {
			return p[:i], p[i+1:]
		}
	}
	return p, ""
}
