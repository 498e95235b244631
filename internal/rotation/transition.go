package rotation

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/kubeconfig"
	"github.com/carotate/carotate/internal/manifest"
	"github.com/carotate/carotate/internal/pki"
)

// transition moves one node's files from the stage before to to, then
// restarts what reads them only at start. It is one engine step: Apply
// goes forward, Undo goes back, Check says whether the node is already at
// to.
//
// Its files are the catalogue rows whose content differs between the two
// stages, and the order of the writes follows from what each row holds at
// the stage being moved to: a file that exists there is written before the
// restarts (a component must find what its new flags point at), one that
// does not is removed after them (the running component may still read
// it). That is what keeps ca.crt single again before
// kube-controller-manager restarts with it as its signing file on the way
// back (kubeadm#1350), and carotate's files in place until nothing reads
// them. Within each group the writes go in catalogue order, which puts a
// link after the file it points at.
type transition struct {
	node *Node
	to   Stage
	rows []*Artefact // in catalogue order, manifests included
}

// rowsChanging are the rows of a node that change between stage to-1 and
// to, by what they hold at each (Artefact.Holds), so that the steps are
// the same for every cluster and every resume.
func rowsChanging(n *Node, to Stage, m *Material, keep func(*Artefact) bool) []*Artefact {
	return rowsOn(n, m.roots(), func(a *Artefact) bool {
		h := m.holds(a)
		return h[to] != h[to-1] && (keep == nil || keep(a))
	})
}

// files are the step's non-manifest files at stage s: those that exist at
// s, then those that do not.
func (t transition) files(m *Material, s Stage) (before, after []string, err error) {
	for _, a := range t.rows {
		if a.Role == RoleStaticPod {
			continue
		}
		p := a.path(m)
		w, err := m.At(t.node, p, s)
		if err != nil {
			return nil, nil, err
		}
		if w.Absent {
			after = append(after, p)
		} else {
			before = append(before, p)
		}
	}
	return before, after, nil
}

// pods are the static pods the step restarts: those whose manifest
// changes, in catalogue order.
func (t transition) pods() []string {
	var out []string
	for _, a := range t.rows {
		if a.Role == RoleStaticPod {
			out = append(out, a.Component)
		}
	}
	return out
}

// kubeletFiles are the step's files the kubelet reads only at start; the
// kubelet is restarted when one is newer than the running kubelet.
func (t transition) kubeletFiles(m *Material) []string {
	var out []string
	for _, a := range t.rows {
		if a.readAtStartBy(Kubelet) {
			out = append(out, a.path(m))
		}
	}
	return out
}

func (t transition) allFiles(m *Material) []string {
	out := make([]string, len(t.rows))
	for i, a := range t.rows {
		out[i] = a.path(m)
	}
	return out
}

func (t transition) step(name string) engine.Step[*Rotation] {
	return engine.Step[*Rotation]{
		Name:         name,
		Target:       engine.Target{Node: t.node.Name},
		ControlPlane: t.node.ControlPlane,
		Wave:         waveOf(t.node),
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			return r.at(ctx, t, t.to)
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			return r.move(ctx, t, t.to)
		},
		Undo: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			return r.move(ctx, t, t.to-1)
		},
		Describe: func(ctx context.Context, r *Rotation) (engine.Plan, error) {
			return r.describe(ctx, t)
		},
	}
}

func waveOf(n *Node) string {
	if n.ControlPlane {
		return ""
	}
	return "workers"
}

// at reports whether the node is at stage s for this transition.
func (r *Rotation) at(ctx context.Context, t transition, s Stage) (bool, string, error) {
	ex := t.node.Exec
	var pending []string
	for _, p := range t.allFiles(r.M) {
		w, err := r.M.At(t.node, p, s)
		if err != nil {
			return false, "", err
		}
		ok, err := matches(ctx, ex, p, w)
		if err != nil {
			return false, "", err
		}
		if !ok {
			pending = append(pending, p)
		}
	}
	if len(pending) > 0 {
		return false, fmt.Sprintf("%d file(s) to change", len(pending)), nil
	}
	for _, c := range t.pods() {
		w, err := r.M.At(t.node, manifestOf(c).Path, s)
		if err != nil {
			return false, "", err
		}
		ok, why, err := r.staticPodRunning(ctx, c, t.node.Name, w.Data)
		if err != nil {
			return false, "", err
		}
		if !ok {
			return false, why, nil
		}
	}
	if len(t.kubeletFiles(r.M)) > 0 {
		stale, err := r.kubeletStale(ctx, t)
		if err != nil {
			return false, "", err
		}
		if stale {
			return false, "the kubelet runs with older files", nil
		}
	}
	return true, "at " + s.String(), nil
}

// kubeletStale reports whether a file the kubelet reads only at start is
// newer than the running kubelet.
func (r *Rotation) kubeletStale(ctx context.Context, t transition) (bool, error) {
	var newest time.Time
	for _, p := range t.kubeletFiles(r.M) {
		st, err := t.node.Exec.Stat(ctx, p)
		if err != nil {
			return false, err
		}
		if st.Exists && st.ModTime.After(newest) {
			newest = st.ModTime
		}
	}
	started, err := r.kubeletStart(ctx, t.node.Name)
	if err != nil {
		if t.node.AllowUnready {
			return false, nil
		}
		// Without the kubelet's word, restart it: one restart too many
		// costs seconds, one too few leaves it on the old trust.
		return true, nil
	}
	// process_start_time_seconds comes from the boot time in whole
	// seconds plus clock ticks, so it reads up to a second early: measured
	// 0.75 s before the write that preceded the restart. A kubelet that
	// missed a change started minutes before it.
	return started.Before(newest.Add(-startTimeSlack)), nil
}

const startTimeSlack = 3 * time.Second

// move writes the files that exist at stage s, restarts the static pods
// and the kubelet as needed, then removes the files that do not.
func (r *Rotation) move(ctx context.Context, t transition, s Stage) (engine.Change, error) {
	var ch engine.Change
	files, after, err := t.files(r.M, s)
	if err != nil {
		return ch, err
	}
	if err := r.write(ctx, t.node, s, files, &ch); err != nil {
		return ch, err
	}
	did, err := r.restartPods(ctx, t, s, &ch)
	if err != nil {
		return ch, err
	}
	if len(t.kubeletFiles(r.M)) > 0 {
		stale, err := r.kubeletStale(ctx, t)
		if err != nil {
			return ch, err
		}
		if stale {
			start := r.now()
			if err := r.restartKubelet(ctx, t.node); err != nil {
				return ch, err
			}
			ch.Changed = true
			did = append(did, fmt.Sprintf("kubelet restarted (%s)", r.since(start)))
		}
	}
	if err := r.write(ctx, t.node, s, after, &ch); err != nil {
		return ch, err
	}
	if s == Original || s == Finalized {
		// The directory is carotate's own; remove it once it is empty.
		// A directory that still holds files is left alone: Remove fails.
		if st, err := t.node.Exec.Stat(ctx, CarotateDir); err == nil && st.Exists && t.node.ControlPlane {
			_ = t.node.Exec.Remove(ctx, CarotateDir)
		}
	}
	parts := []string{fmt.Sprintf("%d file(s) written", len(ch.Files))}
	ch.Detail = strings.Join(append(parts, did...), ", ")
	return ch, nil
}

// write makes the paths hold what they hold at stage s, in order, and
// adds what changed to ch.
func (r *Rotation) write(ctx context.Context, n *Node, s Stage, ps []string, ch *engine.Change) error {
	wants := make([]Want, len(ps))
	for i, p := range ps {
		w, err := r.M.At(n, p, s)
		if err != nil {
			return err
		}
		wants[i] = w
	}
	return r.ensureOn(ctx, n, ps, wants, ch)
}

// ensureOn makes the paths on n hold wants and adds what changed to ch,
// noting a certificate replaced together with its key for the gate.
func (r *Rotation) ensureOn(ctx context.Context, n *Node, ps []string, wants []Want, ch *engine.Change) error {
	start := r.now()
	fcs, err := ensureAll(ctx, n.Exec, ps, wants)
	if replacesPair(fcs) {
		r.pairs.add(pairWrite{node: n.Name, from: start, to: r.now()})
	}
	if len(fcs) > 0 {
		ch.Changed = true
		ch.Files = append(ch.Files, fcs...)
	}
	return err
}

// restartPods writes every manifest of the step first, then waits for
// each pod: the kubelet restarts the static pods side by side, which
// halves the time KCM and the scheduler are away on a node (the apiserver
// is not touched). It returns what it restarted, with how long each took.
func (r *Rotation) restartPods(ctx context.Context, t transition, s Stage, ch *engine.Change) ([]string, error) {
	type pending struct {
		component, hash string
		data            []byte
		start           time.Time
	}
	var waits []pending
	var endOutage func()
	defer func() {
		if endOutage != nil {
			endOutage()
		}
	}()
	for _, c := range t.pods() {
		p := manifestOf(c).Path
		w, err := r.M.At(t.node, p, s)
		if err != nil {
			return nil, err
		}
		before, err := r.staticPod(ctx, c, t.node.Name)
		if err != nil {
			return nil, err
		}
		if c == manifest.Etcd || r.takesAPIAway(c) {
			cur, err := Current(ctx, t.node.Exec, p)
			if err != nil {
				return nil, err
			}
			if !cur.equal(w) && c == manifest.Etcd {
				// Only from a healthy cluster: with three members, never
				// two down at once.
				if err := r.etcdHealthy(ctx, "restart etcd on "+t.node.Name); err != nil {
					return nil, err
				}
			}
			if !cur.equal(w) && r.takesAPIAway(c) && endOutage == nil {
				if endOutage, err = r.lock.Outage(ctx, c+" on "+t.node.Name); err != nil {
					return nil, err
				}
			}
		}
		fc, changed, err := ensure(ctx, t.node.Exec, p, w)
		if err != nil {
			return nil, err
		}
		if changed {
			// No read of the mirror pod here: with one control plane the
			// apiserver that would answer is kube-apiserver itself, which
			// the kubelet may already be stopping (the wait rides that out).
			ch.Changed, ch.Files = true, append(ch.Files, fc)
			waits = append(waits, pending{component: c, hash: before.Hash, data: w.Data, start: r.now()})
			continue
		}
		running, _, err := r.staticPodRunning(ctx, c, t.node.Name, w.Data)
		if err != nil {
			return nil, err
		}
		if !running {
			waits = append(waits, pending{component: c, data: w.Data, start: r.now()})
		}
	}
	var did []string
	for _, p := range waits {
		if err := r.waitStaticPod(ctx, p.component, t.node.Name, p.hash, p.data); err != nil {
			return did, err
		}
		if p.component == manifest.KubeAPIServer {
			if err := r.waitAPIServerServing(ctx, t.node, s); err != nil {
				return did, err
			}
		}
		if p.component == manifest.Etcd {
			if err := r.waitEtcdHealthy(ctx, t.node); err != nil {
				return did, err
			}
		}
		ch.Changed = true
		did = append(did, fmt.Sprintf("%s restarted (%s)", p.component, r.since(p.start)))
	}
	return did, nil
}

// takesAPIAway says whether restarting component leaves the cluster
// without an API for a while: kube-apiserver or etcd, with one control
// plane.
func (r *Rotation) takesAPIAway(component string) bool {
	return r.M.OneAPIServer && (component == manifest.KubeAPIServer || component == manifest.Etcd)
}

// describe is the plan of a transition: each file's change and the
// restarts it causes.
func (r *Rotation) describe(ctx context.Context, t transition) (engine.Plan, error) {
	var pl engine.Plan
	var n int
	for _, a := range t.rows {
		p := a.path(r.M)
		w, err := r.M.At(t.node, p, t.to)
		if err != nil {
			return pl, err
		}
		cur, err := Current(ctx, t.node.Exec, p)
		if err != nil {
			return pl, err
		}
		if w.Secret && !cur.Absent && cur.Link == "" && cur.Mode&^SecretMode != 0 {
			pl.Diffs = append(pl.Diffs, engine.ObjectDiff(t.node.Name+":"+p, "mode (too loose for a secret)",
				fmt.Sprintf("%04o", cur.Mode), fmt.Sprintf("%04o", SecretMode)))
		}
		if cur.equal(w) {
			continue
		}
		n++
		pl.Diffs = append(pl.Diffs, diffsOf(t.node.Name, a, p, cur, w)...)
	}
	for _, c := range t.pods() {
		// A manifest that holds the same at both stages restarts nothing
		// (kube-apiserver's at switch with one control plane).
		p := manifestOf(c).Path
		prev, err := r.M.At(t.node, p, t.to-1)
		if err != nil {
			return pl, err
		}
		next, err := r.M.At(t.node, p, t.to)
		if err != nil {
			return pl, err
		}
		if !prev.equal(next) {
			pl.Restarts = append(pl.Restarts, engine.Restart{Component: c, Node: t.node.Name})
		}
	}
	if len(t.kubeletFiles(r.M)) > 0 {
		pl.Restarts = append(pl.Restarts, engine.Restart{Component: Kubelet, Node: t.node.Name})
	}
	var rs []string
	for _, x := range pl.Restarts {
		rs = append(rs, x.Component)
	}
	pl.Summary = fmt.Sprintf("%d file(s)", n)
	if len(rs) > 0 {
		pl.Summary += "; restart " + strings.Join(rs, ", ")
	}
	return pl, nil
}

// diffsOf shows a file change without ever showing a secret: certificates
// by subject, issuer and fingerprints; manifests by flag; secret files by
// hash only.
func diffsOf(nodeName string, a *Artefact, p string, cur, w Want) []engine.Diff {
	if cur.Link != "" || w.Link != "" {
		return []engine.Diff{engine.ObjectDiff(nodeName+":"+p, "link", describeWant(cur), describeWant(w))}
	}
	if a.Role == RoleStaticPod {
		var ds []engine.Diff
		for _, f := range flagChanges(nodeName, a.Component, p, cur.Data, w.Data) {
			ds = append(ds, f)
		}
		if a, b := annotationOf(nodeName, p, cur.Data), annotationOf(nodeName, p, w.Data); a != b {
			ds = append(ds, engine.ObjectDiff(nodeName+":"+p, "metadata.annotations["+RestartAnnotation+"]", a, b))
		}
		return ds
	}
	if strings.HasSuffix(p, ".crt") && !w.Absent && !cur.Absent {
		bc, _ := pki.ParseCertificatesPEM(p, cur.Data)
		ac, _ := pki.ParseCertificatesPEM(p, w.Data)
		var ds []engine.Diff
		for i := 0; i < max(len(bc), len(ac)); i++ {
			var b, a *x509.Certificate
			if i < len(bc) {
				b = bc[i]
			}
			if i < len(ac) {
				a = ac[i]
			}
			ds = append(ds, engine.CertDiff(nodeName, fmt.Sprintf("%s[%d]", p, i), b, a))
		}
		return ds
	}
	if (a.Role == RoleKubeconfig || a.Role == RoleKubeconfigCA) && !cur.Absent && !w.Absent {
		ds := []engine.Diff{engine.ObjectDiff(nodeName+":"+p, "certificate-authority-data", kubeconfigCAs(cur.Data), kubeconfigCAs(w.Data))}
		if b, a := kubeconfigClient(cur.Data), kubeconfigClient(w.Data); b != nil && a != nil && !b.Equal(a) {
			ds = append(ds, engine.CertDiff(nodeName, p+" client-certificate-data", b, a))
		}
		return ds
	}
	var before, after []byte
	if !cur.Absent {
		before = cur.Data
	}
	if !w.Absent {
		after = w.Data
	}
	if w.Secret || cur.Secret || a.Secret {
		return []engine.Diff{engine.SecretFileDiff(nodeName, p, before, after)}
	}
	return []engine.Diff{engine.FileDiff(nodeName, p, before, after)}
}

func flagChanges(nodeName, comp, p string, before, after []byte) []engine.Diff {
	var out []engine.Diff
	for _, f := range []string{"cluster-signing-cert-file", "cluster-signing-key-file", "root-ca-file", "client-ca-file", "requestheader-client-ca-file"} {
		b, _, _ := manifest.FlagValue(p, before, comp, f)
		a, _, _ := manifest.FlagValue(p, after, comp, f)
		if a != b {
			out = append(out, engine.FlagDiff(nodeName, comp, f, b, a))
		}
	}
	return out
}

func annotationOf(nodeName, p string, data []byte) string {
	if len(data) == 0 {
		return ""
	}
	v, _ := restartValue(nodeName+":"+p, data)
	return v
}

func kubeconfigCAs(data []byte) string {
	cfg, err := kubeconfig.Parse("kubeconfig", data)
	if err != nil || len(cfg.CAData) == 0 {
		return ""
	}
	certs, err := pki.ParseCertificatesPEM("kubeconfig", cfg.CAData)
	if err != nil {
		return ""
	}
	var out []string
	for _, c := range certs {
		out = append(out, c.Subject.String())
	}
	return strings.Join(out, " + ")
}

func kubeconfigClient(data []byte) *x509.Certificate {
	cfg, err := kubeconfig.Parse("kubeconfig", data)
	if err != nil || len(cfg.ClientCertData) == 0 {
		return nil
	}
	c, err := pki.ParseCertificatePEM("kubeconfig", cfg.ClientCertData)
	if err != nil {
		return nil
	}
	return c
}
