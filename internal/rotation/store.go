package rotation

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/state"
	"github.com/carotate/carotate/internal/state/backup"
)

// Store keeps a rotation's material in its state directory, all of it
// sealed with the operator's backup key: the backup of the originals (which
// also holds the old and the new CA keys), the old CAs and the new CAs
// each in a file of their own (so that every CA key has two sealed copies
// until finalize), and the reissued certificates. Nothing in it is a
// private key in the clear.
type Store struct {
	Dir *state.Dir
	Key backup.Key
	// Roots are the rotation's roots (nil: the default); with the
	// service-account key, its old and new keys are kept too.
	Roots Roots
}

const (
	originalsFile = "originals.enc"
	leavesFile    = "leaves.enc"
	newCANode     = "new-ca" // the new CAs' entries in the backup
	saKeysFile    = "service-account-keys.enc"
	// saEntry is the new service-account key's entry in the backup, and
	// the old and new keys' in saKeysFile.
	saEntry = "service-account.key"
)

// caKinds are the CAs a rotation of roots changes, in the order of the
// roots: every root but the service-account key, which is a key pair.
func caKinds(roots Roots) []model.CAKind {
	var out []model.CAKind
	for _, r := range roots {
		if r != RootServiceAccountKey {
			out = append(out, r.Kind())
		}
	}
	return out
}

// caFiles are where kubeadm keeps a CA's certificate and key.
func caFiles(k model.CAKind) (crt, key string) {
	switch k {
	case model.FrontProxyCA:
		return frontProxyCert, frontProxyKey
	case model.EtcdCA:
		return etcdCACert, etcdCAKey
	default:
		return caCert, caKey
	}
}

func (s *Store) caKinds() []model.CAKind {
	if s.Roots == nil {
		return caKinds(DefaultRoots())
	}
	return caKinds(s.Roots)
}

func (s *Store) path(name string) string { return s.Dir.Join(state.BackupDir, name) }

// BackupPath is the sealed backup of every file and object the rotation
// touches.
func (s *Store) BackupPath() string { return s.path(originalsFile) }

// files are everything Save writes, in the order it writes them: the
// backup goes last, so that a crash before it leaves Saved false and the
// material is made again, and a backup once written never changes.
func (s *Store) files() []string {
	out := []string{s.Dir.Join(state.OldCAs.File()), s.Dir.Join(state.NewCAs.File()), s.path(leavesFile)}
	if s.rotatesSA() {
		out = append(out, s.path(saKeysFile))
	}
	return append(out, s.path(originalsFile))
}

func (s *Store) rotatesSA() bool { return s.Roots.Has(RootServiceAccountKey) }

// Saved reports whether the material of a rotation is already kept. It
// only looks for the files: a damaged file, or one sealed with another key,
// makes Load fail rather than a new material be made.
func (s *Store) Saved() bool {
	for _, p := range s.files() {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// Save keeps m, before anything changes on the cluster: first the old
// CAs (their keys are then on the nodes and in the state directory), then
// the new CAs (their keys go nowhere before they are kept), then the
// reissued certificates, and last the backup of the originals, which holds
// both again. A backup already there (the rest of the material went
// missing) is never rewritten, and must hold the same CAs as m.
func (s *Store) Save(m *Material, now time.Time) error {
	for _, k := range s.caKinds() {
		if m.Old[k] == nil || m.New[k] == nil {
			return fmt.Errorf("save the rotation's material: no old or new %s ca", k)
		}
	}
	_, err := os.Stat(s.path(originalsFile))
	haveBackup := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write the backup: %w", err)
	}
	if haveBackup {
		if err := s.checkBackup(m); err != nil {
			return err
		}
	}
	old := map[model.CAKind]*pki.CA{}
	for _, k := range s.caKinds() {
		old[k] = m.Old[k]
	}
	if err := s.Dir.SaveCAs(state.OldCAs, s.Key, old); err != nil {
		return err
	}
	newCAs := map[model.CAKind]*pki.CA{}
	for _, k := range s.caKinds() {
		newCAs[k] = m.New[k]
	}
	if err := s.Dir.SaveCAs(state.NewCAs, s.Key, newCAs); err != nil {
		return err
	}
	if err := backup.Write(s.path(leavesFile), s.Key, backup.Contents{CreatedAt: now, RotationID: m.RotationID, Files: m.leafFiles()}); err != nil {
		return err
	}
	if err := s.saveServiceAccountKeys(m, now); err != nil {
		return err
	}
	if haveBackup {
		return nil
	}
	c := backup.Contents{CreatedAt: now, RotationID: m.RotationID}
	for _, f := range m.Originals {
		c.Files = append(c.Files, f)
	}
	sort.Slice(c.Files, func(i, j int) bool {
		return c.Files[i].Node+":"+c.Files[i].Path < c.Files[j].Node+":"+c.Files[j].Path
	})
	for _, k := range s.caKinds() {
		keyPEM, err := m.New[k].Key.MarshalPEM()
		if err != nil {
			return err
		}
		c.Files = append(c.Files,
			backup.File{Node: newCANode, Path: string(k) + ".crt", Mode: 0o644, Content: m.New[k].CertPEM()},
			backup.File{Node: newCANode, Path: string(k) + ".key", Mode: 0o600, Content: keyPEM})
	}
	if s.rotatesSA() {
		keyPEM, err := m.NewSA.MarshalPEM()
		if err != nil {
			return err
		}
		c.Files = append(c.Files, backup.File{Node: newCANode, Path: saEntry, Mode: 0o600, Content: keyPEM})
	}
	for _, o := range m.Objects {
		c.Objects = append(c.Objects, o)
	}
	sort.Slice(c.Objects, func(i, j int) bool { return c.Objects[i].Name < c.Objects[j].Name })
	if err := backup.Write(s.path(originalsFile), s.Key, c); err != nil {
		return fmt.Errorf("write the backup: %w", err)
	}
	return nil
}

// checkBackup refuses to keep m beside a backup of other CAs.
func (s *Store) checkBackup(m *Material) error {
	orig, err := backup.Read(s.path(originalsFile), s.Key)
	if err != nil {
		return err
	}
	if orig.RotationID != m.RotationID {
		return fmt.Errorf("the backup %s belongs to rotation %s, not %s", s.path(originalsFile), orig.RotationID, m.RotationID)
	}
	fromBackup, old, err := casInBackup(orig, s.caKinds())
	if err != nil {
		return err
	}
	for _, k := range s.caKinds() {
		if fromBackup[k] == nil || !fromBackup[k].Cert.Equal(m.New[k].Cert) || !old[k].Cert.Equal(m.Old[k].Cert) {
			return fmt.Errorf("the backup %s of rotation %s holds other %s CAs than the ones being kept, and some of %v is missing: the state directory was changed by hand; restore the missing files, or roll back from the backup", s.path(originalsFile), m.RotationID, k, s.files()[:3])
		}
	}
	return nil
}

// casInBackup are the new CAs (from the backup's new-ca entries) and the
// old ones (from the nodes' files) in a backup.
func casInBackup(orig backup.Contents, kinds []model.CAKind) (newCAs, old map[model.CAKind]*pki.CA, err error) {
	originals := map[fileKey]backup.File{}
	entries := map[string][]byte{}
	for _, f := range orig.Files {
		if f.Node == newCANode {
			entries[f.Path] = f.Content
			continue
		}
		originals[fileKey{f.Node, f.Path}] = f
	}
	newCAs = map[model.CAKind]*pki.CA{}
	for _, k := range kinds {
		certPEM, keyPEM := entries[string(k)+".crt"], entries[string(k)+".key"]
		if certPEM == nil || keyPEM == nil {
			continue
		}
		cert, err := pki.ParseCertificatePEM("backup new "+string(k)+" ca", certPEM)
		if err != nil {
			return nil, nil, err
		}
		key, err := pki.ParsePrivateKeyPEM("backup new "+string(k)+" ca key", keyPEM)
		if err != nil {
			return nil, nil, err
		}
		newCAs[k] = &pki.CA{Cert: cert, Key: key}
	}
	old, err = oldCAs(originals, kinds)
	return newCAs, old, err
}

// Load reads back what Save kept, cross-checking the sealed CAs against
// the backup.
func (s *Store) Load(rotationID string) (*Material, error) {
	orig, err := backup.Read(s.path(originalsFile), s.Key)
	if err != nil {
		return nil, err
	}
	if orig.RotationID != rotationID {
		return nil, fmt.Errorf("the backup %s belongs to rotation %s, not %s", s.path(originalsFile), orig.RotationID, rotationID)
	}
	leaves, err := backup.Read(s.path(leavesFile), s.Key)
	if err != nil {
		return nil, err
	}
	m := &Material{RotationID: rotationID, Originals: map[fileKey]backup.File{}, Objects: map[string]backup.Object{},
		New: map[model.CAKind]*pki.CA{}, Leaves: leavesFromFiles(leaves.Files)}
	for _, f := range orig.Files {
		if f.Node == newCANode {
			continue
		}
		m.Originals[fileKey{f.Node, f.Path}] = f
	}
	for _, o := range orig.Objects {
		m.Objects[objectKey(o.Kind, o.Namespace, o.Name)] = o
	}
	newCAs, err := s.Dir.LoadCAs(state.NewCAs, s.Key)
	if err != nil {
		return nil, err
	}
	oldSealed, err := s.Dir.LoadCAs(state.OldCAs, s.Key)
	if err != nil {
		return nil, err
	}
	inBackup, _, err := casInBackup(orig, s.caKinds())
	if err != nil {
		return nil, err
	}
	if m.Old, err = oldCAs(m.Originals, s.caKinds()); err != nil {
		return nil, err
	}
	for _, k := range s.caKinds() {
		ca := newCAs[k]
		if ca == nil {
			return nil, fmt.Errorf("%s has no new %s ca: %w", s.Dir.Join(state.NewCAs.File()), k, state.ErrNoCA)
		}
		if b := inBackup[k]; b != nil && !b.Cert.Equal(ca.Cert) {
			return nil, fmt.Errorf("the new %s ca in %s is not the one in the backup %s: the state directory was changed by hand", k, s.Dir.Join(state.NewCAs.File()), s.path(originalsFile))
		}
		if o := oldSealed[k]; o == nil || !o.Cert.Equal(m.Old[k].Cert) {
			return nil, fmt.Errorf("the old %s ca in %s is missing or not the one in the backup %s: the state directory was changed by hand", k, s.Dir.Join(state.OldCAs.File()), s.path(originalsFile))
		}
		m.New[k] = ca
	}
	m.Roots, m.OneAPIServer, m.Renew = s.Roots, oneAPIServer(m.Originals), RenewsCAs(m.Old, m.New)
	if s.rotatesSA() {
		if err := s.loadServiceAccountKeys(m, orig); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// DurableKeyCopies counts, for each CA key of m ("old/cluster",
// "old/front-proxy", "new/cluster", "new/front-proxy"), the sealed files
// in the rotation's state directory that hold it, by unsealing each file
// and comparing the key bytes. A rotation keeps every count at 2 or more
// until finalize is done (the nodes hold more copies; they are not
// counted). A file that is not sealed is not a copy; a sealed file that
// cannot be opened with the key is an error.
func (s *Store) DurableKeyCopies(m *Material) (map[string]int, error) {
	want := map[string][]byte{}
	for _, k := range s.caKinds() {
		for side, cas := range map[string]map[model.CAKind]*pki.CA{"old": m.Old, "new": m.New} {
			if cas[k] == nil {
				return nil, fmt.Errorf("no %s %s ca", side, k)
			}
			b, err := cas[k].Key.MarshalPEM()
			if err != nil {
				return nil, err
			}
			want[side+"/"+string(k)] = b
		}
	}
	if s.rotatesSA() {
		for side, k := range map[string]pki.PrivateKey{"old": m.OldSA, "new": m.NewSA} {
			b, err := k.MarshalPEM()
			if err != nil {
				return nil, fmt.Errorf("the %s service-account key: %w", side, err)
			}
			want[side+"/"+string(model.ServiceAccountCA)] = b
		}
	}
	counts := map[string]int{}
	for name := range want {
		counts[name] = 0
	}
	err := filepath.WalkDir(s.Dir.Path(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		c, err := backup.Read(p, s.Key)
		if errors.Is(err, backup.ErrFormat) {
			return nil
		}
		if err != nil {
			return err
		}
		held := map[string]bool{}
		for _, f := range c.Files {
			k, err := pki.ParsePrivateKeyPEM(p, f.Content)
			if err != nil {
				continue // not a key, or not only a key
			}
			b, err := k.MarshalPEM()
			if err != nil {
				continue
			}
			for name, w := range want {
				if subtle.ConstantTimeCompare(b, w) == 1 {
					held[name] = true
				}
			}
		}
		for name := range held {
			counts[name]++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count the sealed copies of the CA keys in %s: %w", s.Dir.Path(), err)
	}
	return counts, nil
}

func objectKey(kind, ns, name string) string { return kind + " " + ns + "/" + name }

// saveMaterialStep keeps the backup, the new CAs and the reissued
// certificates in the state directory before anything else changes.
func (r *Rotation) saveMaterialStep() engine.Step[*Rotation] {
	return engine.Step[*Rotation]{
		Name:   "back up and keep the new CAs",
		Target: engine.Target{Object: "state directory"},
		NoUndo: true, // the backup stays until the operator removes it
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			if r.Store.Saved() {
				return true, r.Store.BackupPath(), nil
			}
			return false, "", nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			if err := r.Store.Save(r.M, r.now()); err != nil {
				return engine.Change{}, err
			}
			return engine.Change{Changed: true, Detail: fmt.Sprintf("%d files and %d objects backed up to %s", len(r.M.Originals), len(r.M.Objects), r.Store.BackupPath())}, nil
		},
		Describe: func(ctx context.Context, r *Rotation) (engine.Plan, error) {
			var diffs []engine.Diff
			for _, k := range caKinds(r.M.roots()) {
				diffs = append(diffs, engine.CertDiff("", "new "+string(k)+" CA", r.M.Old[k].Cert, r.M.New[k].Cert))
			}
			if r.M.roots().Has(RootServiceAccountKey) {
				diffs = append(diffs, r.M.serviceAccountKeyDiff())
				for _, f := range r.M.extraServiceAccountKeys() {
					diffs = append(diffs, engine.ObjectDiff(f, "kube-apiserver --service-account-key-file", "not carotate's", "kept, still trusted"))
				}
			}
			return engine.Plan{Summary: fmt.Sprintf("back up %d files and %d objects, sealed, to %s; keep the old and new CAs (sealed) and %d reissued certificates",
				len(r.M.Originals), len(r.M.Objects), r.Store.BackupPath(), len(r.M.Leaves)), Diffs: diffs}, nil
		},
	}
}

// Source is what NewMaterial reads and generates a rotation's material from.
type Source struct {
	RotationID string
	Nodes      []*Node
	Client     kubernetes.Interface
	// Import holds CAs the operator brings, by kind; the others are
	// generated.
	Import map[model.CAKind]*pki.CA
	// Roots are the roots the rotation changes; nil means the default.
	Roots Roots
	// ImportSA is a service-account key the operator brings; SAKeyType,
	// when set, is the algorithm of the one generated instead (the old
	// key's by default).
	ImportSA  pki.PrivateKey
	SAKeyType pki.KeyAlgorithm
	Now       time.Time
	// Renew makes each new CA the old one renewed (pki.RenewCA) for
	// Validity, instead of a new key; RenewLeaves reissues the leaves too.
	Renew       bool
	RenewLeaves bool
	Validity    time.Duration
}

// NewMaterial reads every file the rotation may touch on every node and
// the objects it changes, finds the old CAs, makes (or takes) the new ones
// and reissues every leaf certificate. It changes nothing.
func NewMaterial(ctx context.Context, src Source) (*Material, error) {
	m := &Material{RotationID: src.RotationID, Originals: map[fileKey]backup.File{}, Objects: map[string]backup.Object{}, New: map[model.CAKind]*pki.CA{},
		Roots: src.Roots, OneAPIServer: countControlPlanes(src.Nodes) == 1, Renew: src.Renew}
	if src.Renew {
		if err := renewable(m.roots(), src.Import, src.ImportSA); err != nil {
			return nil, err
		}
	}
	for _, n := range src.Nodes {
		for _, p := range BackupPaths(n.ControlPlane, m.roots()) {
			if err := m.readOriginal(ctx, n, p); err != nil {
				return nil, err
			}
		}
	}
	for _, key := range backedUpObjects {
		kind, ns, name := splitObjectKey(key)
		obj, err := getObject(ctx, src.Client, kind, ns, name)
		if err != nil {
			return nil, err
		}
		if obj != nil {
			m.Objects[key] = *obj
		}
	}
	var err error
	if m.Old, err = oldCAs(m.Originals, caKinds(m.roots())); err != nil {
		return nil, err
	}
	if src.Renew {
		if err := m.renewCAs(src); err != nil {
			return nil, err
		}
		return m, nil
	}
	for _, k := range caKinds(m.roots()) {
		if ca := src.Import[k]; ca != nil {
			if err := pki.ValidateCA(ca, pki.ImportOptions{Now: src.Now, Replaces: m.Old[k].Cert, CertSource: "--" + caFlagPrefix(k) + "-cert", KeySource: "--" + caFlagPrefix(k) + "-key"}); err != nil {
				return nil, err
			}
			m.New[k] = ca
			continue
		}
		ca, err := pki.GenerateCA(pki.GenerateOptions{Now: src.Now, Replaces: m.Old[k].Cert})
		if err != nil {
			return nil, err
		}
		m.New[k] = ca
	}
	if m.roots().Has(RootServiceAccountKey) {
		if err := m.newServiceAccountKey(src); err != nil {
			return nil, err
		}
	}
	if err := m.ReissueLeaves(src.Nodes, src.Now); err != nil {
		return nil, err
	}
	return m, nil
}

func countControlPlanes(nodes []*Node) int {
	n := 0
	for _, nd := range nodes {
		if nd.ControlPlane {
			n++
		}
	}
	return n
}

func caFlagPrefix(k model.CAKind) string {
	switch k {
	case model.FrontProxyCA:
		return "front-proxy-ca"
	case model.EtcdCA:
		return "etcd-ca"
	}
	return "ca"
}

func (m *Material) readOriginal(ctx context.Context, n *Node, p string) error {
	w, err := Current(ctx, n.Exec, p)
	if err != nil {
		return fmt.Errorf("back up %s: %w", p, err)
	}
	switch {
	case w.Absent:
		return nil
	case w.Link != "":
		m.Originals[fileKey{n.Name, p}] = backup.File{Node: n.Name, Path: p, Mode: fs.ModeSymlink | 0o777, Content: []byte(w.Link)}
		return m.readOriginal(ctx, n, linkTarget(p, w.Link))
	default:
		m.Originals[fileKey{n.Name, p}] = backup.File{Node: n.Name, Path: p, Mode: w.Mode, Content: w.Data}
		return nil
	}
}

func getObject(ctx context.Context, cs kubernetes.Interface, kind, ns, name string) (*backup.Object, error) {
	var obj runtime.Object
	var err error
	switch kind {
	case "ConfigMap":
		obj, err = cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	case "Secret":
		obj, err = cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	default:
		return nil, fmt.Errorf("cannot back up a %s", kind)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("back up %s: %w", objectKey(kind, ns, name), err)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	return &backup.Object{Kind: kind, Namespace: ns, Name: name, JSON: b}, nil
}

// oldCAs are the CAs in use before the rotation: the certificate and key
// of every control-plane node, which must all be the same.
func oldCAs(orig map[fileKey]backup.File, kinds []model.CAKind) (map[model.CAKind]*pki.CA, error) {
	out := map[model.CAKind]*pki.CA{}
	var nodes []string
	for k := range orig {
		if k.Path == caKey {
			nodes = append(nodes, k.Node)
		}
	}
	sort.Strings(nodes)
	if len(nodes) == 0 {
		return nil, errors.New("no control-plane node has " + caKey + "; carotate needs the CA key on the control-plane nodes (kubeadm's external-CA mode is not supported)")
	}
	for _, k := range kinds {
		crt, key := caFiles(k)
		for _, n := range nodes {
			c, ok1 := orig[fileKey{n, crt}]
			kf, ok2 := orig[fileKey{n, key}]
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("node %s: %s or %s is missing", n, crt, key)
			}
			certs, err := pki.ParseCertificatesPEM(n+":"+crt, c.Content)
			if err != nil {
				return nil, err
			}
			if len(certs) != 1 {
				return nil, fmt.Errorf("node %s: %s holds %d certificates; carotate starts from a single CA certificate (finish or roll back the rotation that left the bundle)", n, crt, len(certs))
			}
			pk, err := pki.ParsePrivateKeyPEM(n+":"+key, kf.Content)
			if err != nil {
				return nil, err
			}
			if !pki.KeyMatchesCertificate(pk, certs[0]) {
				return nil, fmt.Errorf("node %s: %s does not match %s", n, key, crt)
			}
			if prev := out[k]; prev != nil {
				if !prev.Cert.Equal(certs[0]) {
					return nil, fmt.Errorf("node %s: %s differs from the one on %s; every control-plane node must hold the same CA", n, crt, nodes[0])
				}
				continue
			}
			out[k] = &pki.CA{Cert: certs[0], Key: pk}
		}
	}
	return out, nil
}
