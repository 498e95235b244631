package rotation

import (
	"crypto/x509"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/carotate/carotate/internal/kubeconfig"
	"github.com/carotate/carotate/internal/manifest"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/state/backup"
)

// The catalogue is every file on a node that holds or trusts a root the
// rotation changes, one row each, in the order the plan lists them. Each
// row says what it is, who reads it and how they pick up a change, where
// it lives, and what it holds at each stage. The runbook (rotation.go)
// builds its node steps from these rows: which files change between two
// stages, which of them are written before the restarts and which after,
// and which restarts a change needs.
//
// The API objects the rotation changes (cluster-info, kube-root-ca.crt,
// extension-apiserver-authentication, kubeadm-certs) have steps of their
// own in the runbook, one file each.

// Role is what an artefact is to its root of trust.
type Role string

const (
	RoleCACert        Role = "CA certificate and trust bundle"
	RoleCAKey         Role = "CA key"
	RoleLeaf          Role = "leaf certificate (key kept)"
	RoleLeafKey       Role = "leaf key (kept)"
	RoleKubeconfig    Role = "kubeconfig: CA data and client credential"
	RoleKubeconfigCA  Role = "kubeconfig: CA data"
	RoleClientCert    Role = "client certificate and key"
	RoleClientLink    Role = "link to the client certificate"
	RoleNewCA         Role = "new CA, staged"
	RoleNewKey        Role = "new key, staged"
	RoleSigningCopy   Role = "signing copy (kubeadm#1350)"
	RoleTrustBundle   Role = "trust bundle"
	RoleStaticPod     Role = "static pod manifest"
	RolePublicKeySet  Role = "public-key set"
	RoleSigningKeyRef Role = "signing key"
)

// Pickup is how a component notices that a file it reads has changed.
type Pickup string

const (
	// Rereads: the component watches the file and reloads it by itself.
	Rereads Pickup = "re-reads"
	// Polls: the component re-reads the file on a timer.
	Polls Pickup = "polls"
	// AtStart: the component reads the file only when it starts, so it
	// must be restarted after a change.
	AtStart Pickup = "restart"
	// ManifestChange: the kubelet restarts the static pod when its
	// manifest changes.
	ManifestChange Pickup = "manifest change"
)

// Kubelet is the kubelet as a reader of files.
const Kubelet = "kubelet"

// Reader is one component that reads an artefact, through which flag or
// field, and how it picks up a change (measured on the lab, v1.37.2; see
// the README).
type Reader struct {
	Component string
	As        string
	Pickup    Pickup
	// Latency is the measured time to pick up a change, where it re-reads
	// or polls.
	Latency time.Duration
}

func (rd Reader) String() string {
	s := rd.Component
	if rd.As != "" {
		s += " " + rd.As
	}
	switch {
	case rd.Pickup == "":
		return s
	case (rd.Pickup == Rereads || rd.Pickup == Polls) && rd.Latency == 0:
		return fmt.Sprintf("%s (%s; not measured)", s, rd.Pickup)
	case rd.Pickup == Rereads || rd.Pickup == Polls:
		return fmt.Sprintf("%s (%s, %s)", s, rd.Pickup, latency(rd.Latency))
	}
	return fmt.Sprintf("%s (%s)", s, rd.Pickup)
}

func latency(d time.Duration) string {
	if d >= time.Minute {
		return "every " + strings.TrimSuffix(d.String(), "0s")
	}
	return "< " + d.String()
}

// Placement is which nodes an artefact lives on.
type Placement int

const (
	ControlPlanes Placement = iota
	EveryNode
)

func (p Placement) String() string {
	if p == EveryNode {
		return "every node"
	}
	return "control planes"
}

func (p Placement) on(n *Node) bool { return p == EveryNode || n.ControlPlane }

// Artefact is one row of the catalogue.
type Artefact struct {
	// Path on the node; {rotation} stands for the rotation's id.
	Path   string
	Roots  []model.CAKind
	Role   Role
	Secret bool
	On     Placement
	// Readers are the components that read the file and how each picks
	// up a change.
	Readers []Reader
	// Kubeadm's files are backed up before the first change; carotate's
	// own files do not exist before the rotation.
	Kubeadm bool
	// Component is the static pod a manifest row defines.
	Component string
	// Holds says what the file holds at each stage, in words, for the
	// plan's reader and the README; the content function computes it.
	Holds [Finalized + 1]string
	// content is what the file holds at a stage, a pure function of the
	// row, the material and the stage.
	content func(c cell) (Want, error)
}

// rotatedWith says whether the row changes in a rotation of roots: a row
// of no root in particular (a manifest restarted in every phase) always
// does.
func (a *Artefact) rotatedWith(roots Roots) bool {
	if len(a.Roots) == 0 {
		return true
	}
	for _, k := range a.Roots {
		if slices.Contains(roots.Kinds(), k) {
			return true
		}
	}
	return false
}

// path is where the row lives in this rotation.
func (a *Artefact) path(m *Material) string {
	return strings.ReplaceAll(a.Path, "{rotation}", m.RotationID)
}

// readAtStartBy says whether a component reads the row only at start, so
// that a change needs it restarted.
func (a *Artefact) readAtStartBy(component string) bool {
	for _, rd := range a.Readers {
		if rd.Component == component && rd.Pickup == AtStart {
			return true
		}
	}
	return false
}

// polledOnlyBy says whether only component reads the row, and re-reads
// it on a timer: a restart of component picks it up sooner than the poll.
func (a *Artefact) polledOnlyBy(component string) bool {
	for _, rd := range a.Readers {
		if rd.Component != component || rd.Pickup != Polls {
			return false
		}
	}
	return len(a.Readers) > 0
}

// catalogueIndex is the row's place in the catalogue, the order of a
// step's writes.
func catalogueIndex(a *Artefact) int { return slices.Index(Catalogue, a) }

// kubeletOnly is a row that only the kubelet itself reads (a manifest is
// read by the kubelet for the pod it runs): on a control-plane node it
// changes in the kubelet's step, after the control plane's.
func (a *Artefact) kubeletOnly() bool {
	for _, rd := range a.Readers {
		if rd.Component != Kubelet || rd.Pickup == ManifestChange {
			return false
		}
	}
	return len(a.Readers) > 0
}

var (
	apiserverReads = func(flag string, d time.Duration) Reader {
		return Reader{Component: manifest.KubeAPIServer, As: flag, Pickup: Rereads, Latency: d}
	}
	kcmAtStart = func(flag string) Reader {
		return Reader{Component: manifest.KubeControllerManager, As: flag, Pickup: AtStart}
	}
	kcmReads = func(flag string) Reader {
		return Reader{Component: manifest.KubeControllerManager, As: flag, Pickup: Rereads}
	}
	kubeletAtStart = func(field string) Reader { return Reader{Component: Kubelet, As: field, Pickup: AtStart} }
	clientsOnly    = Reader{Component: "kubectl and other clients", Pickup: AtStart}
	fullStages     = func(orig, prep, trust, sw, fin string) [Finalized + 1]string {
		return [Finalized + 1]string{orig, prep, trust, sw, fin}
	}
)

func roots(kinds ...model.CAKind) []model.CAKind { return kinds }

// Catalogue is every row, in the order the plan lists them and the
// writes of a step go out.
var Catalogue = []*Artefact{
	{Path: caCert, Roots: roots(model.ClusterCA), Role: RoleCACert, On: EveryNode, Kubeadm: true,
		Readers: []Reader{apiserverReads("--client-ca-file", 100*time.Millisecond), {Component: Kubelet, As: "clientCAFile", Pickup: Rereads, Latency: 150 * time.Millisecond},
			kcmReads("--client-ca-file")},
		Holds: fullStages("old", "old", "old + new", "new + old", "new"), content: caBundleAt(model.ClusterCA)},
	{Path: caKey, Roots: roots(model.ClusterCA), Role: RoleCAKey, Secret: true, Kubeadm: true,
		Readers: []Reader{{Component: "kubeadm", As: "certs renew, join"}},
		Holds:   fullStages("old", "old", "old", "new", "new"), content: caKeyAt(model.ClusterCA)},
	{Path: frontProxyCert, Roots: roots(model.FrontProxyCA), Role: RoleCACert, Kubeadm: true,
		Readers: []Reader{apiserverReads("--requestheader-client-ca-file", 200*time.Millisecond), kcmReads("--requestheader-client-ca-file")},
		Holds:   fullStages("old", "old", "old + new", "new + old", "new"), content: caBundleAt(model.FrontProxyCA)},
	{Path: frontProxyKey, Roots: roots(model.FrontProxyCA), Role: RoleCAKey, Secret: true, Kubeadm: true,
		Readers: []Reader{{Component: "kubeadm", As: "certs renew, join"}},
		Holds:   fullStages("old", "old", "old", "new", "new"), content: caKeyAt(model.FrontProxyCA)},
	leafRow("apiserver", model.ClusterCA, apiserverReads("--tls-cert-file", 300*time.Millisecond)),
	leafKeyRow("apiserver", model.ClusterCA, "--tls-private-key-file"),
	leafRow("apiserver-kubelet-client", model.ClusterCA, Reader{Component: manifest.KubeAPIServer, As: "--kubelet-client-certificate", Pickup: Polls, Latency: 5 * time.Minute}),
	leafKeyRow("apiserver-kubelet-client", model.ClusterCA, "--kubelet-client-key"),
	leafRow("front-proxy-client", model.FrontProxyCA, apiserverReads("--proxy-client-cert-file", 300*time.Millisecond)),
	leafKeyRow("front-proxy-client", model.FrontProxyCA, "--proxy-client-key-file"),
	kubeconfigRow(adminConf, clientsOnly),
	kubeconfigRow(superAdminConf, clientsOnly),
	kubeconfigRow(kcmConf, kcmAtStart("--kubeconfig")),
	kubeconfigRow(schedConf, Reader{Component: manifest.KubeScheduler, As: "--kubeconfig", Pickup: AtStart}),
	{Path: kubeletConf, Roots: roots(model.ClusterCA), Role: RoleKubeconfigCA, Secret: true, On: EveryNode, Kubeadm: true,
		Readers: []Reader{kubeletAtStart("--kubeconfig")},
		Holds:   fullStages("old", "old", "old + new", "new + old", "new"), content: kubeconfigAt},
	{Path: kubeletClientPattern, Roots: roots(model.ClusterCA), Role: RoleClientCert, Secret: true, On: EveryNode,
		Readers: []Reader{kubeletAtStart("through kubelet-client-current.pem")},
		Holds:   fullStages("—", "—", "—", "new", "new"), content: kubeletClientAt},
	{Path: KubeletClientCurrent, Roots: roots(model.ClusterCA), Role: RoleClientLink, Secret: true, On: EveryNode, Kubeadm: true,
		Readers: []Reader{kubeletAtStart("kubelet.conf client-certificate")},
		Holds:   fullStages("→ kubelet's own", "→ kubelet's own", "→ kubelet's own", "→ carotate's", "→ carotate's"), content: kubeletLinkAt},
	stagedRow(newCACert, model.ClusterCA, false),
	stagedRow(newCAKey, model.ClusterCA, true),
	stagedRow(newFrontCert, model.FrontProxyCA, false),
	stagedRow(newFrontKey, model.FrontProxyCA, true),
	signingRow(signingCert, false, false),
	signingRow(signingKey, false, true),
	signingRow(signingNewCert, true, false),
	signingRow(signingNewKey, true, true),
	{Path: rootCAFile, Roots: roots(model.ClusterCA), Role: RoleTrustBundle,
		Readers: []Reader{kcmAtStart("--root-ca-file")},
		Holds:   fullStages("—", "—", "old + new", "old + new", "—"), content: rootCAAt},
	manifestRow(kcmManifest, manifest.KubeControllerManager, "signs with the old CA's copy, root-ca-file old + new", "signs with the new CA's copy, root-ca-file old + new"),
	manifestRow(schedManifest, manifest.KubeScheduler, "", ""),
	saRows[0], saRows[1], saRows[2],
	etcdRows[0], etcdRows[1], etcdRows[2], etcdRows[3], etcdRows[4], etcdRows[5], etcdRows[6], etcdRows[7],
	etcdRows[8], etcdRows[9], etcdRows[10], etcdRows[11], etcdManifestRow,
	apiserverManifestRow,
}

// kubeletClientPattern is where the kubelet client certificate reissued
// at switch goes; kubelet-client-current.pem is pointed at it, as the
// kubelet itself does when it rotates.
const kubeletClientPattern = KubeletPKIDir + "/kubelet-client-carotate-{rotation}.pem"

func leafRow(name string, root model.CAKind, rd Reader) *Artefact {
	return &Artefact{Path: path.Join(PKIDir, name+".crt"), Roots: roots(root), Role: RoleLeaf, Kubeadm: true, Readers: []Reader{rd},
		Holds: fullStages("old", "old", "old", "new", "new"), content: leafAt}
}

// leafKeyRow is the key of a reissued leaf: kept, so the apiserver never
// reloads a certificate and a key that do not match. It is in the
// catalogue for the backup and for ReissueLeaves.
func leafKeyRow(name string, root model.CAKind, flag string) *Artefact {
	return &Artefact{Path: path.Join(PKIDir, name+".key"), Roots: roots(root), Role: RoleLeafKey, Secret: true, Kubeadm: true,
		Readers: []Reader{{Component: manifest.KubeAPIServer, As: flag, Pickup: Rereads}},
		Holds:   fullStages("kept", "kept", "kept", "kept", "kept"), content: keptAt}
}

func kubeconfigRow(p string, rd Reader) *Artefact {
	return &Artefact{Path: p, Roots: roots(model.ClusterCA), Role: RoleKubeconfig, Secret: true, Kubeadm: true, Readers: []Reader{rd},
		Holds: fullStages("CA old; client old", "CA old; client old", "CA old + new; client old", "CA new + old; client new", "CA new; client new"), content: kubeconfigAt}
}

func stagedRow(p string, root model.CAKind, key bool) *Artefact {
	return &Artefact{Path: p, Roots: roots(root), Role: RoleNewCA, Secret: key,
		Holds: fullStages("—", "new", "new", "new", "—"), content: stagedAt(root, key)}
}

func signingRow(p string, newCA, key bool) *Artefact {
	a := &Artefact{Path: p, Roots: roots(model.ClusterCA), Role: RoleSigningCopy, Secret: key,
		Readers: []Reader{kcmReads(map[bool]string{false: "--cluster-signing-cert-file", true: "--cluster-signing-key-file"}[key])},
		Holds:   fullStages("—", "—", "old", "old", "—"), content: signingAt(newCA, key)}
	if newCA {
		a.Holds = fullStages("—", "—", "—", "new", "—")
	}
	return a
}

// manifestRow is a static pod's manifest: kubeadm's outside a rotation;
// during it, restarted once per phase through an annotation, with the
// flags that point at carotate's files.
func manifestRow(p, component, trust, sw string) *Artefact {
	restart := func(what, phase string) string {
		if what != "" {
			what += "; "
		}
		return what + "restarted for " + phase
	}
	return &Artefact{Path: p, Role: RoleStaticPod, Kubeadm: true, Component: component,
		Readers: []Reader{{Component: Kubelet, As: "staticPodPath", Pickup: ManifestChange}},
		Holds:   fullStages("kubeadm's", "kubeadm's", restart(trust, PhaseTrust), restart(sw, PhaseSwitch), "kubeadm's"), content: manifestAt}
}

// cell is one row on one node at one stage: what its content is computed
// from.
type cell struct {
	m    *Material
	n    *Node
	a    *Artefact
	path string
	s    Stage
	orig backup.File
	had  bool
}

// keep is the file as it was before the rotation.
func (c cell) keep() (Want, error) {
	if !c.had {
		return Want{Absent: true}, nil
	}
	if c.orig.Mode&fs.ModeSymlink != 0 {
		return Want{Link: string(c.orig.Content)}, nil
	}
	return Want{Data: c.orig.Content, Mode: c.orig.Mode.Perm(), Secret: c.a.Secret}, nil
}

// need fails when a file the stage is computed from is not in the backup.
func (c cell) need() error {
	if !c.had {
		return fmt.Errorf("node %s: %s: %w; it existed when carotate checked the node, so check that the backup is complete", c.n.Name, c.path, errNoOriginal)
	}
	return nil
}

func (c cell) src() string { return c.n.Name + ":" + c.path }

func certWant(crt *x509.Certificate) Want {
	return Want{Data: pki.EncodeCertificatePEM(crt), Mode: 0o644}
}

func keyWant(ca *pki.CA) (Want, error) {
	b, err := ca.Key.MarshalPEM()
	return Want{Data: b, Mode: 0o600, Secret: true}, err
}

// during is true from trust until finalize: the stages at which
// carotate's files for KCM exist.
func during(s Stage) bool { return s == Trusted || s == Switched }

func keptAt(c cell) (Want, error) { return c.keep() }

func caBundleAt(kind model.CAKind) func(cell) (Want, error) {
	return func(c cell) (Want, error) {
		if err := c.need(); err != nil {
			return Want{}, err
		}
		return Want{Data: c.m.bundle(kind, c.s, c.orig.Content), Mode: c.orig.Mode.Perm()}, nil
	}
}

func caKeyAt(kind model.CAKind) func(cell) (Want, error) {
	return func(c cell) (Want, error) {
		if c.s < Switched || c.m.Renew {
			return c.keep()
		}
		w, err := keyWant(c.m.New[kind])
		w.Mode = c.orig.Mode.Perm()
		return w, err
	}
}

func stagedAt(kind model.CAKind, key bool) func(cell) (Want, error) {
	return func(c cell) (Want, error) {
		if c.s < Prepared || c.s == Finalized {
			return Want{Absent: true}, nil
		}
		if key {
			return keyWant(c.m.New[kind])
		}
		return certWant(c.m.New[kind].Cert), nil
	}
}

func signingAt(newCA, key bool) func(cell) (Want, error) {
	return func(c cell) (Want, error) {
		ca := c.m.Old[model.ClusterCA]
		if c.m.Renew {
			// The same key: KCM signs with the renewed certificate from
			// trust on, so what it issues is not cut short at the old
			// certificate's end.
			ca = c.m.New[model.ClusterCA]
		}
		if newCA {
			if c.s != Switched || c.m.Renew {
				return Want{Absent: true}, nil
			}
			ca = c.m.New[model.ClusterCA]
		} else if !during(c.s) {
			return Want{Absent: true}, nil
		}
		if key {
			return keyWant(ca)
		}
		return certWant(ca.Cert), nil
	}
}

// rootCAAt: KCM publishes this into every namespace's kube-root-ca.crt. It
// stays old+new from trust until finalize, so that the switch does not
// publish a reordered bundle that looks new to every pod.
func rootCAAt(c cell) (Want, error) {
	if !during(c.s) {
		return Want{Absent: true}, nil
	}
	return Want{Data: pki.BuildBundle(c.m.Old[model.ClusterCA].Cert, c.m.New[model.ClusterCA].Cert), Mode: 0o644}, nil
}

// kcmFlags are the flags KCM's manifest points at carotate's files while
// they exist: the single-certificate signing copy of the CA that signs at
// the stage, and the root-ca-file.
func kcmFlags(m *Material, s Stage) [][2]string {
	sc, sk := signingCert, signingKey
	if s == Switched && !m.Renew {
		sc, sk = signingNewCert, signingNewKey
	}
	return [][2]string{{"cluster-signing-cert-file", sc}, {"cluster-signing-key-file", sk}, {"root-ca-file", rootCAFile}}
}

// manifestAt is kubeadm's manifest outside a rotation. During it, the
// restart annotation names the rotation and stage, so every phase
// restarts the pod once, and KCM's flags point at carotate's files.
func manifestAt(c cell) (Want, error) {
	if !during(c.s) {
		return c.keep()
	}
	if err := c.need(); err != nil {
		return Want{}, err
	}
	data := c.orig.Content
	var err error
	if c.a.Component == manifest.KubeControllerManager {
		for _, f := range kcmFlags(c.m, c.s) {
			if data, _, err = manifest.SetFlag(c.src(), data, manifest.KubeControllerManager, f[0], f[1]); err != nil {
				return Want{}, err
			}
		}
	}
	if data, _, err = manifest.SetAnnotation(c.src(), data, RestartAnnotation, c.m.RotationID+"/"+c.m.restartStage(c.a.Component, c.s).String()); err != nil {
		return Want{}, err
	}
	return Want{Data: data, Mode: c.orig.Mode.Perm()}, nil
}

func kubeletLinkAt(c cell) (Want, error) {
	if !c.had || c.orig.Mode&fs.ModeSymlink == 0 || c.s < Switched || c.m.keepsLeaves() {
		return c.keep()
	}
	return Want{Link: c.m.kubeletClientFile()}, nil
}

func kubeletClientAt(c cell) (Want, error) {
	if c.s < Switched || c.m.keepsLeaves() {
		return Want{Absent: true}, nil
	}
	l, ok := c.m.Leaves[fileKey{c.n.Name, KubeletClientCurrent}]
	if !ok {
		return Want{}, fmt.Errorf("node %s: no reissued kubelet client certificate in the rotation's material", c.n.Name)
	}
	return Want{Data: append(append([]byte{}, l.Cert...), l.Key...), Mode: 0o600, Secret: true}, nil
}

// kubeconfigAt trusts the cluster CA's bundle of the stage and, from
// switch, presents the client certificate reissued from the new CA.
func kubeconfigAt(c cell) (Want, error) {
	if c.s < Trusted || !c.had {
		return c.keep()
	}
	cfg, err := kubeconfig.Parse(c.src(), c.orig.Content)
	if err != nil {
		return Want{}, err
	}
	data := c.orig.Content
	if len(cfg.CAData) > 0 {
		if data, _, err = kubeconfig.SetCAData(c.src(), data, c.m.bundle(model.ClusterCA, c.s, nil)); err != nil {
			return Want{}, err
		}
	}
	if l, ok := c.m.Leaves[fileKey{c.n.Name, c.path}]; ok && c.s >= Switched {
		if data, _, err = kubeconfig.SetClientCertAndKey(c.src(), data, l.Cert, l.Key); err != nil {
			return Want{}, err
		}
	}
	return Want{Data: data, Mode: c.orig.Mode.Perm(), Secret: true}, nil
}

func leafAt(c cell) (Want, error) {
	if c.s < Switched || c.m.keepsLeaves() {
		return c.keep()
	}
	l, ok := c.m.Leaves[fileKey{c.n.Name, c.path}]
	if !ok {
		return Want{}, fmt.Errorf("node %s: %s: no reissued certificate in the rotation's material", c.n.Name, c.path)
	}
	return Want{Data: l.Cert, Mode: c.orig.Mode.Perm()}, nil
}

// row finds the catalogue row of a path in this rotation; a row of a root
// the rotation leaves alone is not one.
func (m *Material) row(p string) *Artefact {
	for _, a := range Catalogue {
		if a.path(m) == p && a.rotatedWith(m.roots()) {
			return a
		}
	}
	return nil
}

// rowsOn are the rows that live on a node and change in a rotation of
// roots, in catalogue order.
func rowsOn(n *Node, roots Roots, keep func(*Artefact) bool) []*Artefact {
	var out []*Artefact
	for _, a := range Catalogue {
		if a.On.on(n) && a.rotatedWith(roots) && (keep == nil || keep(a)) {
			out = append(out, a)
		}
	}
	return out
}

// manifestOf is the manifest row of a static pod component.
func manifestOf(component string) *Artefact {
	for _, a := range Catalogue {
		if a.Role == RoleStaticPod && a.Component == component {
			return a
		}
	}
	return nil
}

// BackupPaths are every file the rotation may write or remove on a node
// that exists before it, for the backup taken before the first change:
// kubeadm's rows. Files that do not exist are recorded as absent, so that
// rollback removes what carotate created.
func BackupPaths(controlPlane bool, roots Roots) []string {
	var out []string
	for _, a := range rowsOn(&Node{ControlPlane: controlPlane}, roots, func(a *Artefact) bool { return a.Kubeadm }) {
		out = append(out, a.Path)
	}
	return out
}

// CatalogueTable is the catalogue as a Markdown table, for the README's
// design section (a test keeps the two the same).
func CatalogueTable() string {
	var b strings.Builder
	b.WriteString("| file | root | role | on | read by (how it picks up a change) | original | prepare | trust | switch | finalize |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, a := range Catalogue {
		file := "`" + strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(a.Path, PKIDir+"/"), KubernetesDir+"/"), "/var/lib/") + "`"
		if a.Secret {
			file += " (secret)"
		}
		var roots, readers []string
		for _, r := range a.Roots {
			roots = append(roots, string(r))
		}
		for _, rd := range a.Readers {
			readers = append(readers, rd.String())
		}
		row := []string{file, strings.Join(roots, ", "), string(a.Role), a.On.String(), strings.Join(readers, "; ")}
		row = append(row, a.Holds[:]...)
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	return b.String()
}
