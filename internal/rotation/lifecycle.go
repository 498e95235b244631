package rotation

import (
	"errors"
	"fmt"
	"time"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/state"
)

// ErrRefused is returned (wrapped) when a command is refused before it
// changes anything: by its record, by preflight, by the lock.
var ErrRefused = errors.New("refused before any change")

// Command is one of the commands on a rotation.
type Command string

const (
	Plan   Command = "plan"
	Rotate Command = "rotate"
	// Renew is rotate with the same keys: each CA gets a new certificate
	// over its key and subject (see renew.go).
	Renew    Command = "renew"
	Finalize Command = "finalize"
	Rollback Command = "rollback"
	Status   Command = "status"
)

// Mutates says whether the command changes the cluster, and so takes the
// lock and may start a rotation.
func (c Command) Mutates() bool { return c == Rotate || c == Renew || c == Finalize || c == Rollback }

// Request is what the operator asked for.
type Request struct {
	Command Command
	// Until is the stage rotate stops at; Switched when left Original.
	Until Stage
	// Roots are the roots the operator named (--roots); nil when not
	// named: the record's for a rotation in progress, else the default.
	Roots Roots
	// Reason is recorded with a new renewal (renew --reason).
	Reason string
}

// RotateUntil is the stage `rotate --until phase` stops at: rotate runs
// prepare, trust and switch, and can stop after any of them.
func RotateUntil(phase string) (Stage, error) {
	s, ok := StageOfPhase(phase)
	if !ok || s == Finalized {
		return Original, fmt.Errorf("%q is not one of %s, %s or %s", phase, PhasePrepare, PhaseTrust, PhaseSwitch)
	}
	return s, nil
}

// Selection is what a command runs: the phases that move the cluster from
// stage From to stage To (applied in order, or undone in reverse), or
// nothing, and why.
type Selection struct {
	Command  Command
	From, To Stage
	// Nothing, when set, says why the command has nothing to do.
	Nothing string
}

// Rollback says the phases are undone, last first.
func (s Selection) Rollback() bool { return s.Command == Rollback }

// Phases are the selected phases of r's runbook.
func (s Selection) Phases(r *Rotation) []engine.Phase[*Rotation] {
	return r.Phases()[s.From:s.To]
}

// Lifecycle is a rotation's life as its record tells it: the rotation in
// progress on a cluster (or the one a command would start), which phases a
// command runs, and the record of every phase that finished.
type Lifecycle struct {
	// Record is the rotation's record. The caller may amend it (where the
	// backup key is kept) before Run, which saves it.
	Record state.Record
	// Fresh says no rotation is in progress: Record is a new one, saved
	// once a command starts changing the cluster.
	Fresh bool

	dir   *state.Dir
	state RecordState
	now   func() time.Time
	// finalized is the record of the last rotation when it was
	// finalized, which a rerun of finalize reports.
	finalized *state.Record
}

// OpenLifecycle reads the record in a cluster's state directory. With no
// record, or one whose rotation is closed, the lifecycle is fresh: a new
// rotation with a new id.
func OpenLifecycle(dir *state.Dir, now func() time.Time, toolVersion string) (*Lifecycle, error) {
	l := &Lifecycle{dir: dir, now: now}
	rec, err := dir.LoadRecord()
	switch {
	case errors.Is(err, state.ErrNoRecord):
		l.Fresh = true
	case err != nil:
		return nil, err
	default:
		st, err := ParseRecordState(rec.Phase)
		if err != nil {
			return nil, fmt.Errorf("load rotation record %s: %w", dir.Join(state.RecordFile), err)
		}
		l.Record, l.state, l.Fresh = rec, st, st.Closed()
		if st == Completed {
			l.finalized = &rec
		}
	}
	if l.Fresh {
		l.Record = state.Record{RotationID: state.NewRotationID(), StartedAt: now(), ToolVersion: toolVersion}
		l.state = Started
	}
	return l, nil
}

// UseDir moves the lifecycle to d: the state directory a new rotation
// created once it was confirmed, in place of the one OpenLifecycle found
// missing.
func (l *Lifecycle) UseDir(d *state.Dir) { l.dir = d }

// State is where the record says the rotation stands; Started when fresh.
func (l *Lifecycle) State() RecordState { return l.state }

// Select decides from the record alone which phases a command runs, so
// that a command with nothing to do, or one that is refused, returns
// before it takes the lock, gathers or connects to anything.
//
// The phases the record says have finished are never applied again: their
// steps would take the nodes back a stage. The next one may be part way:
// a resume runs it again (its finished steps are skipped), and rollback
// undoes it too.
func (l *Lifecycle) Select(req Request) (Selection, error) {
	if err := l.selectRoots(req.Roots); err != nil {
		return Selection{}, err
	}
	done := Stage(l.state.PhasesDone())
	sel := Selection{Command: req.Command, From: done, To: Finalized}
	id := l.Record.RotationID
	switch req.Command {
	case Rotate, Renew:
		if err := l.selectRenew(req); err != nil {
			return Selection{}, err
		}
		if done >= Switched && l.Record.Renew {
			sel.Nothing = fmt.Sprintf("Renewal %s has already switched to the renewed CA certificates; nothing to do. Run `carotate finalize` to remove the old certificates from every bundle, or `carotate rollback`.", id)
			return sel, nil
		}
		if done >= Switched {
			sel.Nothing = fmt.Sprintf("Rotation %s has already switched to the new CAs; nothing to do. Run `carotate finalize` to distrust the old CAs, or `carotate rollback`.", id)
			return sel, nil
		}
		sel.To = Switched
		if req.Until != Original {
			sel.To = req.Until
		}
		if done >= sel.To {
			sel.Nothing = fmt.Sprintf("Rotation %s has already finished %s; nothing to do.", id, l.state)
		}
	case Finalize:
		if f := l.finalized; f != nil {
			sel.Nothing = fmt.Sprintf("Rotation %s was finalized at %s; nothing to do.", f.RotationID, f.UpdatedAt.UTC().Format(time.RFC3339))
			return sel, nil
		}
		// After finalize's phase, only closing the record is left: a
		// run that stopped between the two saves resumes to it.
		if l.Fresh || (done != Switched && done != Finalized) {
			return Selection{}, fmt.Errorf("%w: finalize needs a rotation that has switched to the new CA (record: %s); run `carotate rotate` first", ErrRefused, l.state)
		}
	case Rollback:
		if l.Fresh {
			return Selection{}, fmt.Errorf("%w: no rotation in progress to roll back (a finalized rotation cannot be rolled back; rotate again instead)", ErrRefused)
		}
		sel.From, sel.To = Original, min(done+1, Finalized)
	}
	return sel, nil
}

// selectRenew records whether a fresh rotation renews, and refuses to
// resume a renewal with rotate or a rotation with renew: their material
// differs from the first step.
func (l *Lifecycle) selectRenew(req Request) error {
	renew := req.Command == Renew
	if l.Fresh && renew {
		if err := RenewableRoots(l.Roots()); err != nil {
			return fmt.Errorf("%w: %w", ErrRefused, err)
		}
	}
	if l.Fresh {
		l.Record.Renew, l.Record.Reason = renew, req.Reason
		return nil
	}
	id := l.Record.RotationID
	switch {
	case l.Record.Renew && !renew:
		return fmt.Errorf("%w: %s is a renewal (the same keys, new certificates); run `carotate renew` to resume it, `carotate finalize` once it has switched, or `carotate rollback`", ErrRefused, id)
	case !l.Record.Renew && renew:
		return fmt.Errorf("%w: rotation %s is in progress with new keys; finish it with `carotate rotate` and `carotate finalize`, or roll it back, before renewing", ErrRefused, id)
	}
	return nil
}

// selectRoots settles which roots the rotation changes: the ones named
// for a fresh rotation (the default when none are), the record's for one
// in progress. A command that names other roots than the record holds is
// refused: the rotation's steps, backup and sealed material are those of
// the roots it was started with.
func (l *Lifecycle) selectRoots(named Roots) error {
	if l.Fresh {
		if named == nil {
			named = DefaultRoots()
		}
		l.Record.Roots = named.Names()
		return nil
	}
	recorded, err := RecordedRoots(l.Record.Roots)
	if err != nil {
		return fmt.Errorf("rotation %s: %w", l.Record.RotationID, err)
	}
	if named != nil && !named.Equal(recorded) {
		return fmt.Errorf("%w: --roots %s: rotation %s was started with --roots %s, which its record holds; give --roots %s or leave --roots out, or roll the rotation back first",
			ErrRefused, named, l.Record.RotationID, recorded, recorded)
	}
	return nil
}

// Roots are the roots the rotation changes, as Select settled them.
func (l *Lifecycle) Roots() Roots {
	r, err := RecordedRoots(l.Record.Roots)
	if err != nil {
		return DefaultRoots() // Select refused such a record already
	}
	return r
}

// save records that the rotation is at s, with the CAs it moves between.
func (l *Lifecycle) save(r *Rotation, s RecordState) error {
	l.state = s
	l.Record.Phase = s.Phase()
	l.Record.UpdatedAt = l.now()
	l.Record.CAs = map[model.CAKind]state.CAChange{}
	for _, k := range caKinds(r.M.roots()) {
		l.Record.CAs[k] = state.CAChange{Old: pki.SPKIFingerprint(r.M.Old[k].Cert), New: pki.SPKIFingerprint(r.M.New[k].Cert)}
	}
	return l.dir.SaveRecord(l.Record)
}
