package rotation

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/client-go/util/keyutil"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/manifest"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/state/backup"
)

// The service-account key is a key pair, not a CA: sa.key signs tokens
// (kube-apiserver's --service-account-signing-key-file, and
// kube-controller-manager's --service-account-private-key-file for legacy
// Secret tokens), and sa.pub verifies them (kube-apiserver's
// --service-account-key-file). All three are read only when the component
// starts (measured on the lab, see the README), so every change to them is
// followed by a restart of the apiserver through its manifest.
//
// Its stages follow the CAs': trust puts the new public key beside the old
// in sa.pub; switch makes sa.key the new key; finalize leaves only the new
// public key. With one apiserver, the only verifier, trust and switch
// share one restart: sa.key is new from trust.
var (
	saPub             = path.Join(PKIDir, "sa.pub")
	saKey             = path.Join(PKIDir, "sa.key")
	newSAKey          = path.Join(CarotateDir, "sa.key")
	apiserverManifest = path.Join(ManifestsDir, "kube-apiserver.yaml")
)

// The flags that name the service-account key files, by component.
const (
	flagSAKeyFile        = "service-account-key-file"
	flagSASigningKeyFile = "service-account-signing-key-file"
	flagSAPrivateKeyFile = "service-account-private-key-file"
	flagSASigningEnd     = "service-account-signing-endpoint"
)

func apiserverAtStart(flag string) Reader {
	return Reader{Component: manifest.KubeAPIServer, As: "--" + flag, Pickup: AtStart}
}

var saRows = []*Artefact{
	{Path: saPub, Roots: roots(model.ServiceAccountCA), Role: RolePublicKeySet, Kubeadm: true,
		Readers: []Reader{apiserverAtStart(flagSAKeyFile)},
		Holds:   fullStages("old", "old", "old + new", "old + new", "new"), content: saPubAt},
	{Path: saKey, Roots: roots(model.ServiceAccountCA), Role: RoleSigningKeyRef, Secret: true, Kubeadm: true,
		Readers: []Reader{apiserverAtStart(flagSASigningKeyFile), kcmAtStart("--" + flagSAPrivateKeyFile)},
		Holds:   fullStages("old", "old", "old (new with one control plane)", "new", "new"), content: saKeyAt},
	{Path: newSAKey, Roots: roots(model.ServiceAccountCA), Role: RoleNewKey, Secret: true,
		Holds: fullStages("—", "new", "new", "new", "—"), content: stagedSAKeyAt},
}

// apiserverManifestRow restarts kube-apiserver once in each phase that
// changes what it reads at start; with one apiserver, not in switch.
var apiserverManifestRow = func() *Artefact {
	a := manifestRow(apiserverManifest, manifest.KubeAPIServer, "", "")
	a.Roots = roots(model.ServiceAccountCA, model.EtcdCA)
	a.Holds[Switched] += " (not with one control plane)"
	return a
}()

// saKeyUsed is the key a stage signs with: the new one from switch, and
// from trust when one apiserver is the only verifier.
func (m *Material) saKeyUsed(s Stage) pki.PrivateKey {
	if s >= Switched || s == Trusted && m.OneAPIServer {
		return m.NewSA
	}
	return m.OldSA
}

// restartStage is the stage a static pod's restart annotation names. etcd
// does not restart for switch (it re-reads its leaves), nor does the
// apiserver unless the service-account key rotates on several control
// planes: with one, it restarts once for trust and switch.
func (m *Material) restartStage(component string, s Stage) Stage {
	if s != Switched {
		return s
	}
	switch {
	case m.keepsLeaves():
		return Trusted // a renewal's switch changes nothing
	case component == manifest.Etcd,
		component == manifest.KubeAPIServer && (m.OneAPIServer || !m.roots().Has(RootServiceAccountKey)):
		return Trusted
	}
	return s
}

func saPubAt(c cell) (Want, error) {
	if c.s < Trusted {
		return c.keep()
	}
	if err := c.need(); err != nil {
		return Want{}, err
	}
	newPub, err := publicKeyPEM(c.m.NewSA.Public())
	if err != nil {
		return Want{}, err
	}
	if c.s == Finalized {
		return Want{Data: newPub, Mode: c.orig.Mode.Perm()}, nil
	}
	data := append(bytes.TrimRight(slices.Clone(c.orig.Content), "\n"), '\n')
	return Want{Data: append(data, newPub...), Mode: c.orig.Mode.Perm()}, nil
}

func saKeyAt(c cell) (Want, error) {
	if c.s < Trusted || c.m.saKeyUsed(c.s).Equal(c.m.OldSA) {
		return c.keep()
	}
	b, err := c.m.NewSA.MarshalPEM()
	return Want{Data: b, Mode: SecretMode, Secret: true}, err
}

func stagedSAKeyAt(c cell) (Want, error) {
	if c.s < Prepared || c.s == Finalized {
		return Want{Absent: true}, nil
	}
	b, err := c.m.NewSA.MarshalPEM()
	return Want{Data: b, Mode: SecretMode, Secret: true}, err
}

// publicKeyPEM is a public key as kubeadm writes sa.pub: PKIX, "PUBLIC KEY".
func publicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode the service-account public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// oldServiceAccountKey is the key pair in use before the rotation: sa.key
// of every control-plane node, which must all be the same, and whose
// public key sa.pub must hold.
func oldServiceAccountKey(orig map[fileKey]backup.File) (pki.PrivateKey, error) {
	var nodes []string
	for k := range orig {
		if k.Path == saKey {
			nodes = append(nodes, k.Node)
		}
	}
	sort.Strings(nodes)
	if len(nodes) == 0 {
		return pki.PrivateKey{}, fmt.Errorf("no control-plane node has %s; carotate rotates kubeadm's service-account key pair and needs it on the control planes", saKey)
	}
	var first pki.PrivateKey
	for i, n := range nodes {
		k, err := pki.ParsePrivateKeyPEM(n+":"+saKey, orig[fileKey{n, saKey}].Content)
		if err != nil {
			return pki.PrivateKey{}, err
		}
		pub, ok := orig[fileKey{n, saPub}]
		if !ok {
			return pki.PrivateKey{}, fmt.Errorf("node %s: %s is missing; kube-apiserver verifies tokens with it", n, saPub)
		}
		if err := saPubHolds(n, pub.Content, k.Public()); err != nil {
			return pki.PrivateKey{}, err
		}
		if i == 0 {
			first = k
		} else if !k.Equal(first) {
			return pki.PrivateKey{}, fmt.Errorf("node %s: %s is not the key on node %s; every control plane must sign tokens with the same key: copy one to the others (as kubeadm join does) before rotating", n, saKey, nodes[0])
		}
	}
	return first, nil
}

// saPubHolds checks that a node's sa.pub verifies what its sa.key signs.
func saPubHolds(nodeName string, pubPEM []byte, pub crypto.PublicKey) error {
	keys, err := keyutil.ParsePublicKeysPEM(pubPEM)
	if err != nil {
		return fmt.Errorf("node %s: %s: %w", nodeName, saPub, err)
	}
	want, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if der, err := x509.MarshalPKIXPublicKey(k); err == nil && bytes.Equal(der, want) {
			return nil
		}
	}
	return fmt.Errorf("node %s: %s does not hold the public key of %s, so tokens the apiserver signs would not verify; fix the pair before rotating", nodeName, saPub, saKey)
}

// ServiceAccountFlags are what the control plane's manifests say about
// the service-account key files.
type ServiceAccountFlags struct {
	// ExtraKeyFiles are --service-account-key-file values other than
	// sa.pub: keys carotate did not write, which it keeps.
	ExtraKeyFiles []string
}

// checkServiceAccountFlags refuses a control plane whose tokens carotate
// cannot rotate by rewriting kubeadm's files: an external signer, or
// signing and verifying files elsewhere than sa.key and sa.pub.
func checkServiceAccountFlags(nodeName string, apiserver, kcm []byte) (ServiceAccountFlags, error) {
	var out ServiceAccountFlags
	src := nodeName + ":" + apiserverManifest
	if v, ok, err := manifest.FlagValue(src, apiserver, "", flagSASigningEnd); err != nil {
		return out, err
	} else if ok {
		return out, fmt.Errorf("node %s: kube-apiserver signs tokens through --%s=%s, an external signer; carotate rotates only kubeadm's sa.key and sa.pub, so rotate that signer's key with it and leave service-account-key out of --roots", nodeName, flagSASigningEnd, v)
	}
	if v, _, err := manifest.FlagValue(src, apiserver, "", flagSASigningKeyFile); err != nil {
		return out, err
	} else if v != saKey {
		return out, fmt.Errorf("node %s: kube-apiserver --%s=%q, not kubeadm's %s; carotate rotates only kubeadm's key files, so leave service-account-key out of --roots", nodeName, flagSASigningKeyFile, v, saKey)
	}
	files, err := manifest.FlagValues(src, apiserver, "", flagSAKeyFile)
	if err != nil {
		return out, err
	}
	if !slices.Contains(files, saPub) {
		return out, fmt.Errorf("node %s: kube-apiserver's --%s (%s) does not name kubeadm's %s; carotate rotates only kubeadm's key files, so leave service-account-key out of --roots", nodeName, flagSAKeyFile, strings.Join(files, ", "), saPub)
	}
	for _, f := range files {
		if f != saPub {
			out.ExtraKeyFiles = append(out.ExtraKeyFiles, f)
		}
	}
	if v, _, err := manifest.FlagValue(nodeName+":"+kcmManifest, kcm, "", flagSAPrivateKeyFile); err != nil {
		return out, err
	} else if v != saKey {
		return out, fmt.Errorf("node %s: kube-controller-manager --%s=%q, not kubeadm's %s; carotate rotates only kubeadm's key files, so leave service-account-key out of --roots", nodeName, flagSAPrivateKeyFile, v, saKey)
	}
	return out, nil
}

// newServiceAccountKey finds the key pair in use, checks that the control
// plane uses kubeadm's files for it, and makes (or takes) the new one.
func (m *Material) newServiceAccountKey(src Source) error {
	for _, n := range src.Nodes {
		if !n.ControlPlane {
			continue
		}
		api, ok1 := m.original(n.Name, apiserverManifest)
		kcm, ok2 := m.original(n.Name, kcmManifest)
		if !ok1 || !ok2 {
			return fmt.Errorf("node %s: %s or %s is missing; carotate restarts kube-apiserver and kube-controller-manager through them to change the service-account key", n.Name, apiserverManifest, kcmManifest)
		}
		if _, err := checkServiceAccountFlags(n.Name, api.Content, kcm.Content); err != nil {
			return err
		}
	}
	old, err := oldServiceAccountKey(m.Originals)
	if err != nil {
		return err
	}
	m.OldSA = old
	if !src.ImportSA.IsZero() {
		if err := CheckServiceAccountKey("--service-account-key", src.ImportSA, old); err != nil {
			return err
		}
		m.NewSA = src.ImportSA
		return nil
	}
	alg := src.SAKeyType
	if alg == "" {
		if alg, err = pki.KeyAlgorithmOf(old.Public()); err != nil {
			return err
		}
	}
	if err := CheckServiceAccountKeyType("--service-account-key-type", alg); err != nil {
		return err
	}
	m.NewSA, err = pki.SystemKeyGenerator{}.GenerateKey(alg)
	return err
}

// serviceAccountKeyTypes are what kube-apiserver signs tokens with: RSA
// and ECDSA (its JWT signer has no Ed25519).
var serviceAccountKeyTypes = []pki.KeyAlgorithm{pki.RSA2048, pki.RSA3072, pki.RSA4096, pki.ECDSAP256, pki.ECDSAP384}

// CheckServiceAccountKeyType refuses an algorithm kube-apiserver cannot
// sign tokens with, or that carotate will not put into a cluster.
func CheckServiceAccountKeyType(source string, alg pki.KeyAlgorithm) error {
	if slices.Contains(serviceAccountKeyTypes, alg) {
		return nil
	}
	names := make([]string, len(serviceAccountKeyTypes))
	for i, a := range serviceAccountKeyTypes {
		names[i] = string(a)
	}
	return fmt.Errorf("%s: %s is not a key type for service-account tokens; use one of %s", source, alg, strings.Join(names, ", "))
}

// CheckServiceAccountKey refuses an imported service-account key that is
// weak, of a type kube-apiserver cannot sign with, or the key in use.
func CheckServiceAccountKey(source string, k, old pki.PrivateKey) error {
	if err := pki.CheckKeyStrength(source, k.Public()); err != nil {
		return err
	}
	alg, err := pki.KeyAlgorithmOf(k.Public())
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	if err := CheckServiceAccountKeyType(source, alg); err != nil {
		return err
	}
	if k.Equal(old) {
		return fmt.Errorf("%s: this is the service-account key in use (sa.key); a rotation needs a new one: generate one, or leave the flag out", source)
	}
	return nil
}

// saveServiceAccountKeys keeps the old and new service-account keys
// sealed in a file of their own, so that each has a second sealed copy
// beside the backup (which holds the old one as a node's sa.key and the
// new one as an entry of its own).
func (s *Store) saveServiceAccountKeys(m *Material, now time.Time) error {
	if !s.rotatesSA() {
		return nil
	}
	if m.OldSA.IsZero() || m.NewSA.IsZero() {
		return errors.New("save the rotation's material: no old or new service-account key")
	}
	c := backup.Contents{CreatedAt: now, RotationID: m.RotationID}
	for side, k := range map[string]pki.PrivateKey{"old": m.OldSA, "new": m.NewSA} {
		b, err := k.MarshalPEM()
		if err != nil {
			return err
		}
		c.Files = append(c.Files, backup.File{Node: side, Path: saEntry, Mode: 0o600, Content: b})
	}
	sort.Slice(c.Files, func(i, j int) bool { return c.Files[i].Node < c.Files[j].Node })
	return backup.Write(s.path(saKeysFile), s.Key, c)
}

// loadServiceAccountKeys reads back the keys, cross-checked against the
// backup: the old one is the nodes' sa.key, the new one its own entry.
func (s *Store) loadServiceAccountKeys(m *Material, orig backup.Contents) error {
	c, err := backup.Read(s.path(saKeysFile), s.Key)
	if err != nil {
		return err
	}
	keys := map[string]pki.PrivateKey{}
	for _, f := range c.Files {
		if keys[f.Node], err = pki.ParsePrivateKeyPEM(s.path(saKeysFile)+" "+f.Node, f.Content); err != nil {
			return err
		}
	}
	var inBackup pki.PrivateKey
	for _, f := range orig.Files {
		if f.Node == newCANode && f.Path == saEntry {
			if inBackup, err = pki.ParsePrivateKeyPEM(s.BackupPath()+" "+saEntry, f.Content); err != nil {
				return err
			}
		}
	}
	if m.OldSA, err = oldServiceAccountKey(m.Originals); err != nil {
		return err
	}
	if !keys["old"].Equal(m.OldSA) || keys["new"].IsZero() || !keys["new"].Equal(inBackup) {
		return fmt.Errorf("the service-account keys in %s are not the ones in the backup %s: the state directory was changed by hand; restore it, or roll back from the backup", s.path(saKeysFile), s.BackupPath())
	}
	m.NewSA = keys["new"]
	return nil
}

// oneAPIServer says whether the originals are of a single control plane.
func oneAPIServer(orig map[fileKey]backup.File) bool {
	nodes := map[string]bool{}
	for k := range orig {
		if k.Path == caKey {
			nodes[k.Node] = true
		}
	}
	return len(nodes) == 1
}

// extraServiceAccountKeys are the --service-account-key-file values other
// than sa.pub on each control plane, "node:path": keys carotate did not
// write, which stay trusted through and after the rotation.
func (m *Material) extraServiceAccountKeys() []string {
	var out []string
	for k, f := range m.Originals {
		if k.Path != apiserverManifest {
			continue
		}
		files, err := manifest.FlagValues(k.Node+":"+k.Path, f.Content, "", flagSAKeyFile)
		if err != nil {
			continue // NewMaterial refused such a manifest already
		}
		for _, p := range files {
			if p != saPub {
				out = append(out, k.Node+":"+p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// serviceAccountKeyDiff shows the key change by type and fingerprint.
func (m *Material) serviceAccountKeyDiff() engine.Diff {
	describe := func(k pki.PrivateKey) string {
		alg, _ := pki.KeyAlgorithmOf(k.Public())
		fp, _ := pki.PublicKeyFingerprint(k.Public())
		if len(fp) > 12 {
			fp = fp[:12]
		}
		return fmt.Sprintf("%s, spki %s", alg, fp)
	}
	return engine.ObjectDiff("", "new service-account key", describe(m.OldSA), describe(m.NewSA))
}
