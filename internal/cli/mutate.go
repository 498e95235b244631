package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/carotate/carotate/internal/clusterstatus"
	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/rotation"
)

// mutate is rotate, finalize and rollback once the session is open: it
// checks, shows the plan, asks, then has the lifecycle run the phases.
// The caller holds the lock; ctx is cancelled if it is lost.
func (s *session) mutate(ctx context.Context, sel rotation.Selection, c ChangeFlags) error {
	o := s.o
	cmd := string(sel.Command)
	if err := s.lc.Preflight(s.cluster, c.AllowUnready); err != nil {
		s.pub.Event(ctx, corev1.EventTypeWarning, "Refused", cmd, cmd+" refused: "+err.Error())
		return err
	}
	if err := s.rot.KubeadmCertsPreflight(ctx, sel.Command); err != nil {
		s.pub.Event(ctx, corev1.EventTypeWarning, "Refused", cmd, cmd+" refused: "+err.Error())
		return fmt.Errorf("%w: %w", rotation.ErrRefused, err)
	}
	if !sel.Rollback() {
		if err := s.rot.EtcdPreflight(ctx); err != nil {
			s.pub.Event(ctx, corev1.EventTypeWarning, "Refused", cmd, cmd+" refused: "+err.Error())
			return fmt.Errorf("%w: %w", rotation.ErrRefused, err)
		}
	}
	if !sel.Rollback() && !structured(c.Output) {
		if s.lc.Record.Renew {
			s.renewalNote()
		}
		fmt.Fprintf(o.Out, "Plan for %s %s:\n", s.what(), s.lc.Record.RotationID)
		if err := s.rot.Plan(ctx, sel, s.reporter(c.Output)); err != nil {
			return err
		}
		s.outage(c.Output)
	}
	var outside []rotation.OutsideCredential
	if sel.Command == rotation.Finalize {
		outside = s.rot.OutsideCredentials(s.cluster, o.now())
		s.printOutside(outside, c.Output)
	}
	if err := o.confirm(sel.Command, c.Yes > 0, c.Output); err != nil {
		return err
	}
	if err := o.confirmOutside(len(outside), int(c.Yes), c.Output); err != nil {
		s.pub.Event(ctx, corev1.EventTypeWarning, "Refused", cmd, fmt.Sprintf("%s refused: %d client certificates issued outside carotate still depend on the old CA", cmd, len(outside)))
		return err
	}
	if err := s.createLocal(); err != nil {
		return err
	}
	s.pub.Set(ctx, cmd, clusterstatus.Running, s.lc.State().String(), fmt.Sprintf("%s started by %s", cmd, s.pub.Who()))
	s.pub.Event(ctx, corev1.EventTypeNormal, "Started", cmd, fmt.Sprintf("%s of rotation %s started (roots %s; the record says %s)", cmd, s.lc.Record.RotationID, s.lc.Roots(), s.lc.State()))
	res, err := s.lc.Run(ctx, s.rot, sel, rotation.RunOptions{
		Reporter:    s.pub.Reporter(ctx, cmd, s.reporter(c.Output)),
		Parallelism: c.Parallelism,
		Lock:        s.lock,
		Hook:        s.failpoints(),
		Log:         o.logger,
	})
	if err != nil {
		s.pub.Set(ctx, cmd, clusterstatus.Failed, s.lc.State().String(), err.Error())
		s.pub.Event(ctx, corev1.EventTypeWarning, "Stopped", cmd, fmt.Sprintf("%s stopped; the record says %s: %v", cmd, s.lc.State(), err))
		return err
	}
	if res.State == rotation.Completed && !s.lc.Record.Renew {
		s.pub.Retired = s.retiredCAs()
	}
	s.pub.Set(ctx, cmd, clusterstatus.Done, res.State.String(), fmt.Sprintf("%s done in %s", cmd, res.Took.Round(time.Second)))
	s.pub.Event(ctx, corev1.EventTypeNormal, "Finished", cmd, fmt.Sprintf("%s of rotation %s done in %s; the record says %s", cmd, s.lc.Record.RotationID, res.Took.Round(time.Second), res.State))
	s.finished(res, c.Output)
	if sel.Command == rotation.Rotate || sel.Command == rotation.Renew {
		s.notRotated(c.Output)
	}
	return nil
}

// notRotated says which roots the rotation leaves alone.
func (s *session) notRotated(output string) {
	note := rotation.NotRotatedNote(s.lc.Roots())
	if s.lc.Record.Renew {
		note = rotation.NotRenewedNote(s.lc.Roots())
	}
	if note == "" {
		return
	}
	fmt.Fprintln(s.summaryOut(output), note)
}

// outage says, before --yes, when the rotation will make the API
// unavailable (one control plane, and kube-apiserver or etcd restarts).
func (s *session) outage(output string) {
	if note := s.rot.OutageNote(); note != "" {
		fmt.Fprintln(s.summaryOut(output), note)
	}
}

// summaryOut is where the lines after the steps go: stdout with the text
// output, stderr with JSON or YAML, whose stdout is events only.
func (s *session) summaryOut(output string) io.Writer {
	if structured(output) {
		return s.o.ErrOut
	}
	return s.o.Out
}

// reporter prints progress on stdout as text, or as one JSON event per
// line (one YAML document each) that names the rotation.
func (s *session) reporter(output string) engine.Reporter {
	if structured(output) {
		return &engine.JSONReporter{W: s.o.Out, Rotation: s.lc.Record.RotationID, Now: s.o.now, YAML: output == OutputYAML}
	}
	return &engine.HumanReporter{W: s.o.Out, Live: s.o.liveProgress != nil && s.o.liveProgress(), Term: s.o.term}
}

// failpoints tells the failpoints which phase the run is in, just before
// a step changes anything: they count side effects per phase.
func (s *session) failpoints() engine.Hook {
	return func(phase, _ string, _ engine.Target, when string) error {
		if when == engine.BeforeApply || when == engine.BeforeUndo {
			s.fail.EnterPhase(phase)
		}
		return nil
	}
}

// rotated names what the rotation replaces, for the summary.
func (s *session) rotated() string {
	if s.lc.Roots().Has(rotation.RootServiceAccountKey) {
		return "CAs and service-account key"
	}
	return "CAs"
}

// finished says where the rotation stands after the phases ran.
func (s *session) finished(res rotation.Result, output string) {
	out, id, took := s.summaryOut(output), s.lc.Record.RotationID, res.Took.Round(time.Second)
	if s.lc.Record.Renew {
		s.renewFinished(out, res, took)
		return
	}
	switch res.State {
	case rotation.RolledBack:
		fmt.Fprintf(out, "Rolled back rotation %s in %s: the cluster uses the old %s again. The backup stays in %s.\n", id, took, s.rotated(), s.rot.Store.BackupPath())
	case rotation.Completed:
		newCA := s.rot.M.New[model.ClusterCA].Cert
		fmt.Fprintf(out, "Finalized rotation %s in %s. The old %s are distrusted everywhere.\nJoin new nodes with --discovery-token-ca-cert-hash %s\nThe backup stays in %s until you remove it.\n",
			id, took, s.rotated(), pki.DiscoveryHash(newCA), s.rot.Store.BackupPath())
	case rotation.SwitchDone:
		fmt.Fprintf(out, "Rotation %s has switched to the new CAs in %s. The old CAs are still trusted by every component.\n", id, took)
		if !s.printOutside(s.rot.OutsideCredentials(s.cluster, s.o.now()), output) {
			fmt.Fprintf(out, "No client certificate from the old CA issued outside carotate is on record (approved CSRs of the last hour or two, kubeconfigs in /etc/kubernetes).\n")
		}
		fmt.Fprintf(out, "Anything else that holds a certificate from the old CA, or pins it, must be replaced too (user kubeconfigs elsewhere, older CSRs).\n")
		fmt.Fprintf(out, "When those are replaced, run: carotate finalize\n")
	default:
		fmt.Fprintf(out, "Rotation %s stopped after %s as asked (%s). Run `carotate rotate` to go on, or `carotate rollback`.\n", id, res.State, took)
	}
}

// printOutside lists the client certificates issued outside carotate that
// the old CA signed, which every apiserver rejects after finalize. It
// reports whether there were any.
func (s *session) printOutside(creds []rotation.OutsideCredential, output string) bool {
	if len(creds) == 0 {
		return false
	}
	out := s.summaryOut(output)
	if len(creds) == 1 {
		fmt.Fprintf(out, "1 client certificate issued outside carotate still depends on the old CA; every apiserver rejects it once finalize distrusts that CA:\n")
	} else {
		fmt.Fprintf(out, "%d client certificates issued outside carotate still depend on the old CA; every apiserver rejects them once finalize distrusts that CA:\n", len(creds))
	}
	for _, c := range creds {
		fmt.Fprintf(out, "  %s\n", c)
	}
	fmt.Fprintf(out, "Reissue each from the new CA (a CSR approved now is signed by it), or accept that it stops working.\n")
	return true
}

// retiredCAs are the CAs a finalized rotation distrusted, by kind and
// public-key hash, for the status in the cluster.
func (s *session) retiredCAs() []clusterstatus.RetiredCA {
	var out []clusterstatus.RetiredCA
	for _, k := range slices.Sorted(maps.Keys(s.rot.M.Old)) {
		if ca := s.rot.M.Old[k]; ca != nil && ca.Cert != nil {
			out = append(out, clusterstatus.RetiredCA{Kind: string(k), SPKISHA256: pki.SPKIFingerprint(ca.Cert)})
		}
	}
	return out
}
