package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
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

// Store keeps a rotation's material in its state directory: the backup of
// the originals (which also holds both CA keys), the new CAs, and the
// reissued certificates, sealed with the operator's backup key.
type Store struct {
	Dir *state.Dir
	Key backup.Key
}

const (
	originalsFile = "originals.enc"
	leavesFile    = "leaves.enc"
)

func (s *Store) path(name string) string { return s.Dir.Join(state.BackupDir, name) }

// BackupPath is the sealed backup of every file and object the rotation
// touches.
func (s *Store) BackupPath() string { return s.path(originalsFile) }

// Saved reports whether the material of a rotation is already kept.
func (s *Store) Saved() bool {
	for _, p := range []string{s.path(originalsFile), s.path(leavesFile)} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	for _, k := range []model.CAKind{model.ClusterCA, model.FrontProxyCA} {
		if _, err := s.Dir.LoadCA(k); err != nil {
			return false
		}
	}
	return true
}

// Save keeps m: the backup first (it never changes once written), then
// the new CAs, then the reissued certificates.
func (s *Store) Save(m *Material, now time.Time) error {
	if _, err := os.Stat(s.path(originalsFile)); errors.Is(err, fs.ErrNotExist) {
		c := backup.Contents{CreatedAt: now, RotationID: m.RotationID}
		for _, f := range m.Originals {
			c.Files = append(c.Files, f)
		}
		sort.Slice(c.Files, func(i, j int) bool {
			return c.Files[i].Node+":"+c.Files[i].Path < c.Files[j].Node+":"+c.Files[j].Path
		})
		for _, k := range []model.CAKind{model.ClusterCA, model.FrontProxyCA} {
			keyPEM, err := m.New[k].Key.MarshalPEM()
			if err != nil {
				return err
			}
			c.Files = append(c.Files,
				backup.File{Node: "new-ca", Path: string(k) + ".crt", Mode: 0o644, Content: m.New[k].CertPEM()},
				backup.File{Node: "new-ca", Path: string(k) + ".key", Mode: 0o600, Content: keyPEM})
		}
		for _, o := range m.Objects {
			c.Objects = append(c.Objects, o)
		}
		sort.Slice(c.Objects, func(i, j int) bool { return c.Objects[i].Name < c.Objects[j].Name })
		if err := backup.Write(s.path(originalsFile), s.Key, c); err != nil {
			return fmt.Errorf("write the backup: %w", err)
		}
	}
	for _, k := range []model.CAKind{model.ClusterCA, model.FrontProxyCA} {
		if err := s.Dir.SaveCA(k, m.New[k].CertPEM(), m.New[k].Key); err != nil {
			return err
		}
	}
	return backup.Write(s.path(leavesFile), s.Key, backup.Contents{CreatedAt: now, RotationID: m.RotationID, Files: m.leafFiles()})
}

// Load reads back what Save kept.
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
		if f.Node == "new-ca" {
			continue
		}
		m.Originals[fileKey{f.Node, f.Path}] = f
	}
	for _, o := range orig.Objects {
		m.Objects[objectKey(o.Kind, o.Namespace, o.Name)] = o
	}
	for _, k := range []model.CAKind{model.ClusterCA, model.FrontProxyCA} {
		ca, err := s.Dir.LoadCA(k)
		if err != nil {
			return nil, err
		}
		m.New[k] = ca
	}
	if m.Old, err = oldCAs(m.Originals); err != nil {
		return nil, err
	}
	return m, nil
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
			for _, k := range []model.CAKind{model.ClusterCA, model.FrontProxyCA} {
				diffs = append(diffs, engine.CertDiff("", "new "+string(k)+" CA", r.M.Old[k].Cert, r.M.New[k].Cert))
			}
			return engine.Plan{Summary: fmt.Sprintf("back up %d files and %d objects, sealed, to %s; keep the new CAs and %d reissued certificates",
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
	Now    time.Time
}

// NewMaterial reads every file the rotation may touch on every node and
// the objects it changes, finds the old CAs, makes (or takes) the new ones
// and reissues every leaf certificate. It changes nothing.
func NewMaterial(ctx context.Context, src Source) (*Material, error) {
	m := &Material{RotationID: src.RotationID, Originals: map[fileKey]backup.File{}, Objects: map[string]backup.Object{}, New: map[model.CAKind]*pki.CA{}}
	for _, n := range src.Nodes {
		for _, p := range BackupPaths(n.ControlPlane) {
			if err := m.readOriginal(ctx, n, p); err != nil {
				return nil, err
			}
		}
	}
	for _, o := range BackedUpObjects {
		obj, err := getObject(ctx, src.Client, o[0], o[1], o[2])
		if err != nil {
			return nil, err
		}
		if obj != nil {
			m.Objects[objectKey(o[0], o[1], o[2])] = *obj
		}
	}
	var err error
	if m.Old, err = oldCAs(m.Originals); err != nil {
		return nil, err
	}
	for _, k := range []model.CAKind{model.ClusterCA, model.FrontProxyCA} {
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
	if err := m.ReissueLeaves(src.Nodes, src.Now); err != nil {
		return nil, err
	}
	return m, nil
}

func caFlagPrefix(k model.CAKind) string {
	if k == model.FrontProxyCA {
		return "front-proxy-ca"
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
func oldCAs(orig map[fileKey]backup.File) (map[model.CAKind]*pki.CA, error) {
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
	for _, k := range []model.CAKind{model.ClusterCA, model.FrontProxyCA} {
		crt, key := caCert, caKey
		if k == model.FrontProxyCA {
			crt, key = frontProxyCert, frontProxyKey
		}
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
