package rotation

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"time"

	"github.com/carotate/carotate/internal/kubeconfig"
	"github.com/carotate/carotate/internal/manifest"
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
// switch goes; kubelet-client-current.pem is pointed at it, as the kubelet
// itself does when it rotates.
func (m *Material) kubeletClientFile() string {
	return path.Join(KubeletPKIDir, "kubelet-client-carotate-"+m.RotationID+".pem")
}

// bundle is what a CA trust file holds at stage s: the old CA until
// trust; old then new during trust (the first certificate is the one
// matching the key beside it, which kubeadm relies on); new then old from
// switch; new alone once finalized.
func (m *Material) bundle(kind model.CAKind, s Stage, orig []byte) []byte {
	o, n := m.Old[kind].Cert, m.New[kind].Cert
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

// At is the content of path on node n at stage s.
func (m *Material) At(n *Node, p string, s Stage) (Want, error) {
	w, err := m.content(n, p, s)
	if err != nil || s == Original || w.Absent || w.Link != "" {
		return w, err
	}
	if w.Secret || isSecretPath(p) {
		w.Secret, w.Mode = true, SecretMode
	}
	return w, nil
}

// content is what path holds at stage s, before the secret mode rule.
func (m *Material) content(n *Node, p string, s Stage) (Want, error) {
	orig, had := m.original(n.Name, p)
	keep := func() (Want, error) {
		if !had {
			return Want{Absent: true}, nil
		}
		if orig.Mode&fs.ModeSymlink != 0 {
			return Want{Link: string(orig.Content)}, nil
		}
		return Want{Data: orig.Content, Mode: orig.Mode.Perm(), Secret: isSecretPath(p)}, nil
	}
	need := func() error {
		if !had {
			return fmt.Errorf("node %s: %s: %w; it existed when carotate checked the node, so check that the backup is complete", n.Name, p, errNoOriginal)
		}
		return nil
	}
	cert := func(c *x509.Certificate) Want { return Want{Data: pki.EncodeCertificatePEM(c), Mode: 0o644} }
	key := func(ca *pki.CA) (Want, error) {
		b, err := ca.Key.MarshalPEM()
		return Want{Data: b, Mode: 0o600, Secret: true}, err
	}
	switch p {
	case caCert, frontProxyCert:
		if err := need(); err != nil {
			return Want{}, err
		}
		kind := model.ClusterCA
		if p == frontProxyCert {
			kind = model.FrontProxyCA
		}
		return Want{Data: m.bundle(kind, s, orig.Content), Mode: orig.Mode.Perm()}, nil
	case caKey, frontProxyKey:
		if s < Switched {
			return keep()
		}
		kind := model.ClusterCA
		if p == frontProxyKey {
			kind = model.FrontProxyCA
		}
		w, err := key(m.New[kind])
		w.Mode = orig.Mode.Perm()
		return w, err
	case newCACert, newFrontCert, newCAKey, newFrontKey:
		if s < Prepared || s == Finalized {
			return Want{Absent: true}, nil
		}
		kind := model.ClusterCA
		if p == newFrontCert || p == newFrontKey {
			kind = model.FrontProxyCA
		}
		if p == newCAKey || p == newFrontKey {
			return key(m.New[kind])
		}
		return cert(m.New[kind].Cert), nil
	case signingCert, signingKey, signingNewCert, signingNewKey:
		ca := m.Old[model.ClusterCA]
		if p == signingNewCert || p == signingNewKey {
			if s != Switched {
				return Want{Absent: true}, nil
			}
			ca = m.New[model.ClusterCA]
		} else if s != Trusted && s != Switched {
			return Want{Absent: true}, nil
		}
		if p == signingKey || p == signingNewKey {
			return key(ca)
		}
		return cert(ca.Cert), nil
	case rootCAFile:
		if s != Trusted && s != Switched {
			return Want{Absent: true}, nil
		}
		// KCM publishes this into every namespace's kube-root-ca.crt. It
		// stays old+new from trust until finalize, so that the switch does
		// not publish a reordered bundle that looks new to every pod.
		return Want{Data: pki.BuildBundle(m.Old[model.ClusterCA].Cert, m.New[model.ClusterCA].Cert), Mode: 0o644}, nil
	case kcmManifest, schedManifest:
		if s != Trusted && s != Switched {
			return keep()
		}
		if err := need(); err != nil {
			return Want{}, err
		}
		data := orig.Content
		src := n.Name + ":" + p
		var err error
		if p == kcmManifest {
			sc, sk := signingCert, signingKey
			if s == Switched {
				sc, sk = signingNewCert, signingNewKey
			}
			if data, _, err = manifest.SetFlag(src, data, "kube-controller-manager", "cluster-signing-cert-file", sc); err != nil {
				return Want{}, err
			}
			if data, _, err = manifest.SetFlag(src, data, "kube-controller-manager", "cluster-signing-key-file", sk); err != nil {
				return Want{}, err
			}
			if data, _, err = manifest.SetFlag(src, data, "kube-controller-manager", "root-ca-file", rootCAFile); err != nil {
				return Want{}, err
			}
		}
		if data, _, err = manifest.SetAnnotation(src, data, RestartAnnotation, m.RotationID+"/"+s.String()); err != nil {
			return Want{}, err
		}
		return Want{Data: data, Mode: orig.Mode.Perm()}, nil
	case KubeletClientCurrent:
		if !had || orig.Mode&fs.ModeSymlink == 0 || s < Switched {
			return keep()
		}
		return Want{Link: m.kubeletClientFile()}, nil
	case m.kubeletClientFile():
		if s < Switched {
			return Want{Absent: true}, nil
		}
		l, ok := m.Leaves[fileKey{n.Name, KubeletClientCurrent}]
		if !ok {
			return Want{}, fmt.Errorf("node %s: no reissued kubelet client certificate in the rotation's material", n.Name)
		}
		return Want{Data: append(append([]byte{}, l.Cert...), l.Key...), Mode: 0o600, Secret: true}, nil
	}
	if isKubeconfig(p) {
		if s < Trusted || !had {
			return keep()
		}
		src := n.Name + ":" + p
		cfg, err := kubeconfig.Parse(src, orig.Content)
		if err != nil {
			return Want{}, err
		}
		data := orig.Content
		if len(cfg.CAData) > 0 {
			if data, _, err = kubeconfig.SetCAData(src, data, m.bundle(model.ClusterCA, s, nil)); err != nil {
				return Want{}, err
			}
		}
		if l, ok := m.Leaves[fileKey{n.Name, p}]; ok && s >= Switched {
			if data, _, err = kubeconfig.SetClientCertAndKey(src, data, l.Cert, l.Key); err != nil {
				return Want{}, err
			}
		}
		return Want{Data: data, Mode: orig.Mode.Perm(), Secret: len(cfg.ClientCertData) > 0}, nil
	}
	for _, name := range apiserverLeaves {
		if p == path.Join(PKIDir, name+".crt") {
			if s < Switched {
				return keep()
			}
			l, ok := m.Leaves[fileKey{n.Name, p}]
			if !ok {
				return Want{}, fmt.Errorf("node %s: %s: no reissued certificate in the rotation's material", n.Name, p)
			}
			return Want{Data: l.Cert, Mode: orig.Mode.Perm()}, nil
		}
	}
	return keep()
}

func isKubeconfig(p string) bool {
	return path.Dir(p) == KubernetesDir && path.Ext(p) == ".conf"
}

func isSecretPath(p string) bool {
	return path.Ext(p) == ".key" || path.Base(p) == "kubelet-client-current.pem" || isKubeconfig(p)
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
		if n.ControlPlane {
			for _, name := range apiserverLeaves {
				crt, key := path.Join(PKIDir, name+".crt"), path.Join(PKIDir, name+".key")
				oc, ok1 := m.original(n.Name, crt)
				ok, ok2 := m.original(n.Name, key)
				if !ok1 || !ok2 {
					return fmt.Errorf("node %s: %s or its key is missing; carotate reissues kubeadm's %s certificate and needs both", n.Name, crt, name)
				}
				old, err := pki.ParseCertificatePEM(n.Name+":"+crt, oc.Content)
				if err != nil {
					return err
				}
				k, err := pki.ParsePrivateKeyPEM(n.Name+":"+key, ok.Content)
				if err != nil {
					return err
				}
				kind := model.ClusterCA
				if leafIssuer(name) == "front-proxy" {
					kind = model.FrontProxyCA
				}
				leaf, err := pki.Reissue(old, m.New[kind], pki.ReissueOptions{Now: now, Source: n.Name + ":" + crt, Key: k})
				if err != nil {
					return err
				}
				m.Leaves[fileKey{n.Name, crt}] = Leaf{Cert: leaf.CertPEM()}
			}
		}
		for _, p := range append(append([]string{}, controlPlaneKubeconfigs...), kubeletConf) {
			f, ok := m.original(n.Name, p)
			if !ok {
				continue
			}
			cfg, err := kubeconfig.Parse(n.Name+":"+p, f.Content)
			if err != nil {
				return err
			}
			if len(cfg.ClientCertData) == 0 {
				continue
			}
			if err := m.reissueClient(n.Name, p, cfg.ClientCertData, now, false); err != nil {
				return err
			}
		}
		if link, ok := m.original(n.Name, KubeletClientCurrent); ok && link.Mode&fs.ModeSymlink != 0 {
			target := linkTarget(KubeletClientCurrent, string(link.Content))
			f, ok := m.original(n.Name, target)
			if !ok {
				return fmt.Errorf("node %s: %s points at %s, which carotate could not read", n.Name, KubeletClientCurrent, target)
			}
			if err := m.reissueClient(n.Name, KubeletClientCurrent, f.Content, now, true); err != nil {
				return err
			}
		}
	}
	return nil
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
