package rotation

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/node"
)

// RunOptions are what a Run reports to and checks with.
type RunOptions struct {
	Reporter    engine.Reporter
	Parallelism int
	// Lock, when set, must still be held just before every step changes
	// anything.
	Lock *Lock
	// Hook, when set, is called first around every step's apply and undo;
	// an error fails the step there.
	Hook engine.Hook
	Log  *slog.Logger
}

// Result is where a Run left the rotation.
type Result struct {
	// State is Completed after finalize, RolledBack after rollback, and
	// otherwise the phase rotate stopped after.
	State RecordState
	// Took is how long the phases took.
	Took time.Duration
}

// Run runs the selected phases of a command that changes the cluster:
// applied one at a time, or undone in reverse. Every step's change is
// journaled before and after it happens, and every phase that finishes is
// recorded, so that the next command knows where to go on. The caller has
// shown the plan, had it confirmed, and holds the lock; ctx is cancelled
// if the lock is lost.
func (l *Lifecycle) Run(ctx context.Context, r *Rotation, sel Selection, o RunOptions) (Result, error) {
	if !sel.Command.Mutates() {
		return Result{}, fmt.Errorf("%s does not change the cluster", sel.Command)
	}
	j, err := l.dir.OpenJournal(l.now)
	if err != nil {
		return Result{}, err
	}
	defer j.Close()
	if l.Fresh {
		if err := l.save(r, Started); err != nil {
			return Result{}, err
		}
		l.Fresh = false
	}
	if sel.Command == Finalize && l.Record.FinalizeStartedAt.IsZero() {
		l.Record.FinalizeStartedAt = l.now()
		r.FinalizeStarted = l.Record.FinalizeStartedAt
		if err := l.save(r, l.state); err != nil {
			return Result{}, err
		}
	}
	r.lock = o.Lock
	defer func() { r.lock = nil }()
	runner := r.runner(o.Reporter, o.Parallelism)
	runner.Journal, runner.Hook = j, r.stepHook(ctx, o.Lock, o.Hook)
	if sel.Rollback() {
		return l.rollback(ctx, r, sel, runner)
	}
	return l.apply(ctx, r, sel, runner, o.Log)
}

func (l *Lifecycle) rollback(ctx context.Context, r *Rotation, sel Selection, runner *engine.Runner[*Rotation]) (Result, error) {
	start := l.now()
	if err := runner.Rollback(ctx, r, sel.Phases(r)); err != nil {
		return Result{}, err
	}
	// A restart ends once the component serves; a rollback has no gate
	// to wait for the Ready that follows, so it waits here.
	var cps []string
	for _, n := range r.controlPlanes() {
		if !n.AllowUnready {
			cps = append(cps, n.Name)
		}
	}
	if err := r.waitControlPlaneReady(ctx, cps); err != nil {
		return Result{}, fmt.Errorf("rolled back, but the control plane is not Ready: %w", err)
	}
	if err := l.save(r, RolledBack); err != nil {
		return Result{}, err
	}
	return Result{State: RolledBack, Took: l.now().Sub(start)}, nil
}

// apply applies the phases one at a time, recording each as it finishes.
// A finished finalize closes the rotation.
func (l *Lifecycle) apply(ctx context.Context, r *Rotation, sel Selection, runner *engine.Runner[*Rotation], log *slog.Logger) (Result, error) {
	start := l.now()
	phases := sel.Phases(r)
	for i := range phases {
		pstart := l.now()
		if err := runner.Apply(ctx, r, phases[i:i+1]); err != nil {
			return Result{}, fmt.Errorf("%w\nthe cluster is left at the last good phase (%s); fix the cause and run the same command again to resume, or `carotate rollback`", err, l.state)
		}
		if err := l.save(r, afterPhase(int(sel.From)+i)); err != nil {
			return Result{}, err
		}
		if log != nil {
			log.Info("phase done", "phase", phases[i].Name, "took", l.now().Sub(pstart).Round(100*time.Millisecond))
		}
	}
	took := l.now().Sub(start)
	if l.state == FinalizeDone {
		if err := l.save(r, Completed); err != nil {
			return Result{}, err
		}
	}
	return Result{State: l.state, Took: took}, nil
}

// Plan reports what running the selection would do, step by step, and
// changes nothing. Its checks read the nodes from one snapshot each (see
// node.TakeSnapshot), taken side by side, rather than file by file.
func (r *Rotation) Plan(ctx context.Context, sel Selection, rep engine.Reporter) error {
	restore := r.snapshotNodes(ctx)
	defer restore()
	_, err := r.runner(rep, 1).Plan(ctx, r, sel.Phases(r))
	return err
}

// planRoots are the trees a plan's checks read on a node.
var planRoots = []string{KubernetesDir, KubeletPKIDir, "/var/lib/kubelet/config.yaml"}

// snapshotNodes reads every node's planRoots in one command each, all at
// once, and has the steps read from those snapshots until restore. A node
// that gives none is read directly, as before.
func (r *Rotation) snapshotNodes(ctx context.Context) (restore func()) {
	execs := make([]node.Executor, len(r.Nodes))
	var g sync.WaitGroup
	for i, n := range r.Nodes {
		execs[i] = n.Exec
		g.Go(func() {
			if snap, err := node.TakeSnapshot(ctx, n.Exec, planRoots); err == nil {
				execs[i] = snap
			} else if r.Log != nil {
				r.Log.Debug("reading the node file by file", "node", n.Name, "why", err)
			}
		})
	}
	g.Wait()
	orig := make([]node.Executor, len(r.Nodes))
	for i, n := range r.Nodes {
		orig[i], n.Exec = n.Exec, execs[i]
	}
	return func() {
		for i, n := range r.Nodes {
			n.Exec = orig[i]
		}
	}
}

func (r *Rotation) runner(rep engine.Reporter, parallelism int) *engine.Runner[*Rotation] {
	isCP := map[string]bool{}
	for _, n := range r.Nodes {
		isCP[n.Name] = n.ControlPlane
	}
	return &engine.Runner[*Rotation]{
		Reporter:       rep,
		Parallelism:    parallelism,
		IsControlPlane: func(n string) bool { return isCP[n] },
		Now:            r.now,
	}
}

// stepHook is the runner's hook. After the caller's own, and just before a
// step changes anything, it checks what preflight checked once and a long
// run can lose: the lock, and strays in the manifest directory of the node
// the step changes.
func (r *Rotation) stepHook(ctx context.Context, lk *Lock, first engine.Hook) engine.Hook {
	return func(phase, step string, target engine.Target, when string) error {
		if r.Log != nil {
			r.Log.Debug("step", "phase", phase, "step", step, "node", target.Node, "object", target.Object, "when", when)
		}
		if first != nil {
			if err := first(phase, step, target, when); err != nil {
				return err
			}
		}
		if when != engine.BeforeApply && when != engine.BeforeUndo {
			return nil
		}
		if lk != nil {
			if err := lk.Held(); err != nil {
				return fmt.Errorf("stopped before %q: %w", step, err)
			}
		}
		if target.Node == "" {
			return nil
		}
		if lk != nil {
			lk.Refresh(ctx)
		}
		return r.BeforeStep(ctx, target.Node)
	}
}
