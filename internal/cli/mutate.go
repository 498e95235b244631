package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/lock"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/rotation"
	"github.com/carotate/carotate/internal/state"
)

// lockDuration is the rotation lock's lease. Renewed every quarter of it;
// a run that cannot renew it for half of it stops.
const lockDuration = 2 * time.Minute

// takeLock takes the rotation lock before anything is gathered, so that a
// second carotate is refused in the time of two API calls, before it
// prints a plan or generates a CA. The returned context is cancelled, with
// the lock's error as its cause, as soon as the lock cannot be relied on:
// the step running then stops at its next check, and no further step
// starts. release stops renewing and deletes the lease if it is ours.
func (s *session) takeLock(ctx context.Context) (context.Context, func(), error) {
	o := s.o
	if o.ForceUnlock != "" {
		if err := lock.ForceUnlock(ctx, s.cs, o.ForceUnlock); err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(o.ErrOut, "Deleted the rotation lock held by %q.\n", o.ForceUnlock)
	}
	lk, err := lock.AcquireWith(ctx, s.cs, lock.CurrentHolder(s.rec.RotationID), lockDuration,
		lock.Options{Progress: func(msg string) { fmt.Fprintln(o.ErrOut, msg) }})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	s.lock = lk
	lctx, cancel := context.WithCancelCause(ctx)
	keepCtx, stopKeep := context.WithCancel(context.WithoutCancel(ctx))
	lost := lk.Keep(keepCtx, lockDuration/4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err, ok := <-lost; ok && err != nil {
			cancel(err)
		}
	}()
	release := func() {
		stopKeep()
		<-done
		cancel(nil)
		if err := lk.Release(context.WithoutCancel(ctx)); err != nil {
			o.logger.Warn("release the rotation lock", "err", err)
		}
	}
	return lctx, release, nil
}

// beforeStep is the runner's hook. Just before a step changes anything it
// checks what preflight checked once and a long run can lose: the lock,
// and strays in the manifest directory of the node the step changes. It
// also tells the failpoints which phase the run is in.
func (s *session) beforeStep(ctx context.Context) engine.Hook {
	return func(phase, step string, target engine.Target, when string) error {
		if when != engine.BeforeApply && when != engine.BeforeUndo {
			return nil
		}
		s.fail.EnterPhase(phase)
		if s.lock != nil {
			if err := s.lock.Held(); err != nil {
				return fmt.Errorf("stopped before %q: %w", step, err)
			}
		}
		if target.Node == "" {
			return nil
		}
		return s.rot.BeforeStep(ctx, target.Node)
	}
}

func (s *session) runner(ctx context.Context, j engine.Journal) *engine.Runner[*rotation.Rotation] {
	var rep engine.Reporter
	if s.o.Output == OutputJSON {
		rep = &engine.JSONReporter{W: s.o.Out}
	} else {
		rep = &engine.HumanReporter{W: s.o.Out}
	}
	isCP := map[string]bool{}
	for _, n := range s.nodes {
		isCP[n.Name] = n.ControlPlane
	}
	r := &engine.Runner[*rotation.Rotation]{
		Reporter:       rep,
		Journal:        j,
		Parallelism:    s.o.Parallelism,
		IsControlPlane: func(n string) bool { return isCP[n] },
		Now:            s.o.now,
	}
	if j != nil {
		r.Hook = s.beforeStep(ctx)
	}
	return r
}

// mutate plans, asks, then applies (or rolls back) phase by phase,
// recording each finished phase. The caller holds the lock; ctx is
// cancelled if it is lost.
func (s *session) mutate(ctx context.Context, run []engine.Phase[*rotation.Rotation], rollback bool) error {
	o := s.o
	if err := s.preflight(); err != nil {
		return err
	}
	if !rollback && len(run) > 0 && o.Output != OutputJSON {
		fmt.Fprintf(o.Out, "Plan for rotation %s:\n", s.rec.RotationID)
		if _, err := s.runner(ctx, nil).Plan(ctx, s.rot, run); err != nil {
			return err
		}
	}
	if err := o.confirm(); err != nil {
		return err
	}
	j, err := s.dir.OpenJournal(o.now)
	if err != nil {
		return err
	}
	defer j.Close()
	if s.fresh {
		s.rec.Phase = ""
		if err := s.saveRecord(); err != nil {
			return err
		}
	}
	if !rollback && run[0].Name == rotation.PhaseFinalize && s.rec.FinalizeStartedAt.IsZero() {
		s.rec.FinalizeStartedAt = o.now()
		s.rot.FinalizeStarted = s.rec.FinalizeStartedAt
		if err := s.saveRecord(); err != nil {
			return err
		}
	}
	r := s.runner(ctx, j)
	start := o.now()
	if rollback {
		if err := r.Rollback(ctx, s.rot, run); err != nil {
			return err
		}
		s.rec.Phase = recordRolledBack
		if err := s.saveRecord(); err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "Rolled back rotation %s in %s: the cluster uses the old CAs again. The backup stays in %s.\n", s.rec.RotationID, o.now().Sub(start).Round(time.Second), s.rot.Store.BackupPath())
		return nil
	}
	for i := range run {
		pstart := o.now()
		if err := r.Apply(ctx, s.rot, run[i:i+1]); err != nil {
			return fmt.Errorf("%w\nthe cluster is left at the last good phase (%s); fix the cause and run the same command again to resume, or `carotate rollback`", err, orNone(s.rec.Phase))
		}
		s.rec.Phase = run[i].Name
		if err := s.saveRecord(); err != nil {
			return err
		}
		o.logger.Info("phase done", "phase", run[i].Name, "took", o.now().Sub(pstart).Round(100*time.Millisecond))
	}
	return s.finished(start)
}

// finished says where the rotation stands after the phases ran.
func (s *session) finished(start time.Time) error {
	o := s.o
	took := o.now().Sub(start).Round(time.Second)
	switch s.rec.Phase {
	case rotation.PhaseFinalize:
		s.rec.Phase = recordFinalized
		if err := s.saveRecord(); err != nil {
			return err
		}
		newCA := s.rot.M.New[model.ClusterCA].Cert
		fmt.Fprintf(o.Out, "Finalized rotation %s in %s. The old CAs are distrusted everywhere.\nJoin new nodes with --discovery-token-ca-cert-hash %s\nThe backup stays in %s until you remove it.\n",
			s.rec.RotationID, took, pki.DiscoveryHash(newCA), s.rot.Store.BackupPath())
	case rotation.PhaseSwitch:
		fmt.Fprintf(o.Out, "Rotation %s has switched to the new CAs in %s. The old CAs are still trusted by every component.\n", s.rec.RotationID, took)
		fmt.Fprintf(o.Out, "Still depending on the old CA: client certificates issued outside carotate (user kubeconfigs, CSRs signed before the switch) and anything that pins the old CA.\n")
		fmt.Fprintf(o.Out, "When those are replaced, run: carotate finalize\n")
	default:
		fmt.Fprintf(o.Out, "Rotation %s stopped after %s as asked (%s). Run `carotate rotate` to go on, or `carotate rollback`.\n", s.rec.RotationID, s.rec.Phase, took)
	}
	return nil
}

func (s *session) saveRecord() error {
	s.rec.UpdatedAt = s.o.now()
	s.rec.CAs = map[model.CAKind]state.CAChange{}
	for _, k := range []model.CAKind{model.ClusterCA, model.FrontProxyCA} {
		s.rec.CAs[k] = state.CAChange{Old: pki.SPKIFingerprint(s.rot.M.Old[k].Cert), New: pki.SPKIFingerprint(s.rot.M.New[k].Cert)}
	}
	return s.dir.SaveRecord(s.rec)
}
