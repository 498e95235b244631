package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/carotate/carotate/internal/state"
)

// Journal records every side effect before and after it happens.
// *state.Journal implements it.
type Journal interface {
	Append(state.Entry) error
}

// Journal actions the runner writes.
const (
	ActionApply       = "apply"        // about to apply
	ActionApplied     = "applied"      // apply returned
	ActionApplyFailed = "apply-failed" // apply returned an error
	ActionUndo        = "undo"
	ActionUndone      = "undone"
	ActionUndoFailed  = "undo-failed"
)

// Hook points, the when argument of a Hook.
const (
	BeforeApply = "before-apply"
	AfterApply  = "after-apply"
	BeforeUndo  = "before-undo"
	AfterUndo   = "after-undo"
)

// Hook is called around every Apply and Undo; an error fails the step
// there. It is the seam through which tests fail a run at any step
// ("after-apply" fails a step whose change is already made), and through
// which the CLI re-checks, just before a step changes a node, what
// preflight checked once: that the lock is still held and that the node's
// manifest directory has no strays.
type Hook func(phase, step string, target Target, when string) error

// Runner drives phases of steps. The zero value runs one step at a time,
// reports nothing and keeps no journal.
type Runner[D any] struct {
	Reporter Reporter
	// Journal gets an entry before and after every Apply and Undo. Plan
	// never writes to it.
	Journal Journal
	Hook    Hook
	// Parallelism bounds how many steps of a wave run at once; below 1
	// means 1.
	Parallelism int
	// IsControlPlane says whether a node is a control-plane node. Steps on
	// such nodes (and steps marked ControlPlane) run one at a time, whatever
	// Parallelism says: an HA control plane must never lose two members at
	// once.
	IsControlPlane func(node string) bool
	// Now is the clock for durations and journal times; nil means time.Now.
	Now func() time.Time
	// HeartbeatAfter and HeartbeatEvery: a step or gate that runs longer
	// than HeartbeatAfter is reported Waiting every HeartbeatEvery until
	// it ends (DefaultHeartbeatAfter, DefaultHeartbeatEvery when zero).
	HeartbeatAfter, HeartbeatEvery time.Duration

	mu sync.Mutex // serialises Reporter calls
}

// Plan runs every step's Check and, for those not done, its Describe, and
// reports what apply would do, in apply's order. It has no side effects. It
// returns the events it reported.
func (r *Runner[D]) Plan(ctx context.Context, d D, phases []Phase[D]) ([]Event, error) {
	if err := Validate(phases); err != nil {
		return nil, err
	}
	var events []Event
	emit := func(e Event) {
		events = append(events, e)
		r.report(e)
	}
	for _, p := range phases {
		for _, s := range p.Steps {
			if err := ctx.Err(); err != nil {
				return events, err
			}
			start := r.now()
			e := Event{Phase: p.Name, Step: s.Name, Target: s.Target}
			done, detail, err := s.Check(ctx, d)
			if err != nil {
				e.Outcome, e.Err, e.Duration = Failed, err, r.since(start)
				emit(e)
				return events, &StepError{Phase: p.Name, Step: s.Name, Target: s.Target, Op: "check", Err: err}
			}
			e.Detail = detail
			if done {
				e.Outcome, e.Duration = Unchanged, r.since(start)
				emit(e)
				continue
			}
			e.Outcome = Planned
			if s.Describe != nil {
				plan, err := s.Describe(ctx, d)
				if err != nil {
					e.Outcome, e.Err, e.Duration = Failed, err, r.since(start)
					emit(e)
					return events, &StepError{Phase: p.Name, Step: s.Name, Target: s.Target, Op: "describe", Err: err}
				}
				e.Plan = &plan
			}
			e.Duration = r.since(start)
			emit(e)
		}
		if p.Gate != nil {
			emit(Event{Phase: p.Name, Step: p.Gate.Name, Gate: true, Outcome: Planned, Detail: "verify"})
		}
	}
	return events, nil
}

// Apply brings every step about, phase by phase, running each phase's gate
// after its steps. A step whose Check says done is skipped and reported
// unchanged, so running Apply again after a crash or a failure resumes
// where it stopped, and running it after success changes nothing. It stops
// at the first failing step or gate, letting steps already running in the
// same wave finish. Each gate is told when its phase began in this run.
func (r *Runner[D]) Apply(ctx context.Context, d D, phases []Phase[D]) error {
	if err := Validate(phases); err != nil {
		return err
	}
	for _, p := range phases {
		began := r.now()
		for _, g := range waves(p.Steps) {
			if err := r.runWave(ctx, g, func(s Step[D]) error { return r.applyStep(ctx, d, p.Name, s) }); err != nil {
				return err
			}
		}
		if p.Gate != nil {
			if err := r.runGate(ctx, d, p.Name, p.Gate, began); err != nil {
				return err
			}
		}
	}
	return nil
}

// Rollback walks the phases and their steps in reverse and undoes them. A
// step with an Undo has it run (it is an ensure, so steps never applied, or
// applied half way, are handled by the Undo itself). A step without one is
// skipped when it needs none or its Check says it is not done; otherwise
// rollback stops there with a *NoUndoError, because going on would undo
// earlier steps under a later one that still depends on them.
func (r *Runner[D]) Rollback(ctx context.Context, d D, phases []Phase[D]) error {
	if err := Validate(phases); err != nil {
		return err
	}
	for i := len(phases) - 1; i >= 0; i-- {
		p := phases[i]
		gs := waves(p.Steps)
		for j := len(gs) - 1; j >= 0; j-- {
			g := reversed(gs[j])
			if err := r.runWave(ctx, g, func(s Step[D]) error { return r.undoStep(ctx, d, p.Name, s) }); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Runner[D]) applyStep(ctx context.Context, d D, phase string, s Step[D]) error {
	start := r.now()
	e := Event{Phase: phase, Step: s.Name, Target: s.Target}
	fail := func(op string, err error) error {
		e.Outcome, e.Err, e.Duration = Failed, err, r.since(start)
		r.report(e)
		return &StepError{Phase: phase, Step: s.Name, Target: s.Target, Op: op, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return fail("check", err)
	}
	done, detail, err := s.Check(ctx, d)
	if err != nil {
		return fail("check", err)
	}
	if done {
		e.Outcome, e.Detail, e.Duration = Unchanged, detail, r.since(start)
		r.report(e)
		return nil
	}
	change, failure := r.perform(ctx, d, phase, s, applying, s.Apply)
	if failure != nil {
		return fail(failure.op, failure.err)
	}
	e.Outcome, e.Detail, e.Duration = outcome(change, Changed), change.Detail, r.since(start)
	r.report(e)
	return nil
}

func (r *Runner[D]) undoStep(ctx context.Context, d D, phase string, s Step[D]) error {
	start := r.now()
	e := Event{Phase: phase, Step: s.Name, Target: s.Target}
	fail := func(op string, err error) error {
		e.Outcome, e.Err, e.Duration = Failed, err, r.since(start)
		r.report(e)
		return &StepError{Phase: phase, Step: s.Name, Target: s.Target, Op: op, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return fail("undo", err)
	}
	if s.Undo == nil {
		if s.NoUndo {
			e.Outcome, e.Detail, e.Duration = Unchanged, "needs no undo", r.since(start)
			r.report(e)
			return nil
		}
		done, _, err := s.Check(ctx, d)
		if err != nil {
			return fail("check", err)
		}
		if !done {
			e.Outcome, e.Detail, e.Duration = Unchanged, "not applied", r.since(start)
			r.report(e)
			return nil
		}
		err = &NoUndoError{Phase: phase, Step: s.Name, Target: s.Target}
		e.Outcome, e.Err, e.Duration = Failed, err, r.since(start)
		r.report(e)
		return err
	}
	change, failure := r.perform(ctx, d, phase, s, undoing, s.Undo)
	if failure != nil {
		return fail(failure.op, failure.err)
	}
	e.Outcome, e.Detail, e.Duration = outcome(change, Undone), change.Detail, r.since(start)
	r.report(e)
	return nil
}

// direction names one way of running a step in the journal, the hooks and
// errors.
type direction struct {
	op                    string // "apply" or "undo", for errors
	begin, failed, done   string // journal actions
	hookBefore, hookAfter string
}

var (
	applying = direction{op: "apply", begin: ActionApply, failed: ActionApplyFailed, done: ActionApplied, hookBefore: BeforeApply, hookAfter: AfterApply}
	undoing  = direction{op: "undo", begin: ActionUndo, failed: ActionUndoFailed, done: ActionUndone, hookBefore: BeforeUndo, hookAfter: AfterUndo}
)

// stepFailure says where in perform a step failed.
type stepFailure struct {
	op  string
	err error
}

// perform journals the intent, calls the hooks around run and journals
// what run changed (or why it failed).
func (r *Runner[D]) perform(ctx context.Context, d D, phase string, s Step[D], dir direction, run func(context.Context, D) (Change, error)) (Change, *stepFailure) {
	if err := r.journal(phase, s, dir.begin, Change{}, nil); err != nil {
		return Change{}, &stepFailure{"journal", err}
	}
	if err := r.hook(phase, s, dir.hookBefore); err != nil {
		return Change{}, &stepFailure{dir.hookBefore, err}
	}
	ctx, stop := r.beat(ctx, Event{Phase: phase, Step: s.Name, Target: s.Target}, r.now())
	change, err := run(ctx, d)
	stop()
	if err != nil {
		if jerr := r.journal(phase, s, dir.failed, change, err); jerr != nil {
			err = errors.Join(err, jerr)
		}
		return change, &stepFailure{dir.op, err}
	}
	if err := r.journal(phase, s, dir.done, change, nil); err != nil {
		return change, &stepFailure{"journal", err}
	}
	if err := r.hook(phase, s, dir.hookAfter); err != nil {
		return change, &stepFailure{dir.hookAfter, err}
	}
	return change, nil
}

func (r *Runner[D]) runGate(ctx context.Context, d D, phase string, g *Gate[D], phaseBegan time.Time) error {
	start := r.now()
	e := Event{Phase: phase, Step: g.Name, Gate: true}
	ctx, stop := r.beat(ctx, e, start)
	detail, err := g.Verify(ctx, d, phaseBegan)
	stop()
	e.Detail, e.Duration = detail, r.since(start)
	if err != nil {
		e.Outcome, e.Err = Failed, err
		r.report(e)
		return &GateError{Phase: phase, Gate: g.Name, Err: err}
	}
	e.Outcome = Passed
	r.report(e)
	return nil
}

// runWave runs one group of steps. A group of one is just that step. In a
// larger group the control-plane steps run one after another in a single
// lane while the other steps run beside it, all within Parallelism. After a
// failure no further step starts; those already running finish, since
// cancelling a restart half way leaves a node worse off than letting it
// complete.
func (r *Runner[D]) runWave(ctx context.Context, steps []Step[D], run func(Step[D]) error) error {
	if len(steps) == 1 {
		return run(steps[0])
	}
	var cp, other []Step[D]
	for _, s := range steps {
		if r.controlPlane(s) {
			cp = append(cp, s)
		} else {
			other = append(other, s)
		}
	}
	var (
		g    errgroup.Group
		stop atomic.Bool
		mu   sync.Mutex
		errs []error
	)
	g.SetLimit(max(r.Parallelism, 1))
	do := func(s Step[D]) bool {
		if stop.Load() || ctx.Err() != nil {
			return false
		}
		if err := run(s); err != nil {
			stop.Store(true)
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
			return false
		}
		return true
	}
	if len(cp) > 0 {
		g.Go(func() error {
			for _, s := range cp {
				if !do(s) {
					break
				}
			}
			return nil
		})
	}
	for _, s := range other {
		if stop.Load() {
			break
		}
		g.Go(func() error { do(s); return nil })
	}
	_ = g.Wait()
	if len(errs) == 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

func (r *Runner[D]) controlPlane(s Step[D]) bool {
	if s.ControlPlane {
		return true
	}
	return s.Target.Node != "" && r.IsControlPlane != nil && r.IsControlPlane(s.Target.Node)
}

func (r *Runner[D]) journal(phase string, s Step[D], action string, c Change, stepErr error) error {
	if r.Journal == nil {
		return nil
	}
	e := state.Entry{
		Time:   r.now(),
		Phase:  phase,
		Step:   s.Name,
		Target: s.Target.String(),
		Action: action,
		Detail: c.Detail,
		Files:  c.Files,
	}
	if stepErr != nil {
		e.Error = stepErr.Error()
	}
	if err := r.Journal.Append(e); err != nil {
		return fmt.Errorf("journal %s of %s: %w", action, s.Name, err)
	}
	return nil
}

func (r *Runner[D]) hook(phase string, s Step[D], when string) error {
	if r.Hook == nil {
		return nil
	}
	return r.Hook(phase, s.Name, s.Target, when)
}

func (r *Runner[D]) report(e Event) {
	if r.Reporter == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Reporter.Report(e)
}

func (r *Runner[D]) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner[D]) since(t time.Time) time.Duration { return r.now().Sub(t) }

func outcome(c Change, changed Outcome) Outcome {
	if c.Changed {
		return changed
	}
	return Unchanged
}

// waves splits steps into runs: consecutive steps sharing a non-empty Wave
// form one group; every other step is a group of its own.
func waves[D any](steps []Step[D]) [][]Step[D] {
	var out [][]Step[D]
	for i := 0; i < len(steps); {
		j := i + 1
		if w := steps[i].Wave; w != "" {
			for j < len(steps) && steps[j].Wave == w {
				j++
			}
		}
		out = append(out, steps[i:j])
		i = j
	}
	return out
}

func reversed[T any](s []T) []T {
	out := make([]T, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

var _ Journal = (*state.Journal)(nil)
