// Package engine runs a rotation: phases of steps, each an idempotent
// ensure with a check, an apply and, where it can, an undo. The same list of
// phases drives plan, apply, resume and rollback, so that the plan is what
// apply does.
//
// The engine knows nothing about certificates or nodes beyond a node's name
// and whether it is a control-plane node. The steps close over the seams
// (Executor, API client, clock, key source) through the data D that the
// runner hands each of them; the engine only decides what to call, in which
// order and how many at a time, and reports what happened.
//
// Resume is apply again: a finished step is skipped because its Check says
// so, not because a journal remembers it. The journal records intent and
// explains; it never decides.
package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/carotate/carotate/internal/state"
)

// Target is what a step touches: a node, an API object, or both (a file on
// a node that names an object is still the node's). It is shown in progress
// output, and a node target decides the control-plane concurrency rule.
type Target struct {
	Node   string `json:"node,omitempty"`
	Object string `json:"object,omitempty"` // e.g. "ConfigMap kube-public/cluster-info"
}

// String is the target as progress output shows it: the node, the object,
// or "node object" when a step names both.
func (t Target) String() string {
	switch {
	case t.Node != "" && t.Object != "":
		return t.Node + " " + t.Object
	case t.Node != "":
		return t.Node
	default:
		return t.Object
	}
}

// Change is what an Apply or an Undo did. A step that found everything
// already as it should be returns Changed false; the runner then reports it
// as unchanged, which is how a rerun proves it did nothing.
type Change struct {
	Changed bool
	// Detail is the human summary of what happened, e.g.
	// "kube-controller-manager restarted, kube-root-ca.crt in 37/37 namespaces".
	Detail string
	// Files are the files the step wrote or removed, with the sha256 of their
	// content before and after, for the journal.
	Files []state.FileChange
}

// Step is one idempotent ensure. D is whatever the steps need to reach the
// cluster (seams, the gathered model, the new CA); the runner passes it
// through untouched.
type Step[D any] struct {
	Name   string
	Target Target
	// ControlPlane marks a step that touches a control-plane node. The
	// runner also asks its IsControlPlane resolver about Target.Node, so a
	// step built from the inventory need not set it.
	ControlPlane bool
	// Wave groups steps that may run in parallel: consecutive steps of a
	// phase with the same non-empty Wave run together, bounded by the
	// runner's Parallelism, with at most one control-plane step at a time.
	Wave string

	// Check reports whether the step's end state is already there, with a
	// short detail for the operator. It must not change anything: plan runs
	// it.
	Check func(ctx context.Context, d D) (done bool, detail string, err error)
	// Apply brings the end state about and reports whether it had to change
	// anything. It must be safe to run again after a crash at any point in it.
	Apply func(ctx context.Context, d D) (Change, error)
	// Undo returns what Apply touched to how it was before the rotation. It
	// is an ensure too: rollback runs it whenever it is set, also for steps
	// whose Apply never ran or stopped half way, and it must then report
	// Changed false and touch nothing it need not.
	Undo func(ctx context.Context, d D) (Change, error)
	// NoUndo says the step needs no undo (it only waits or verifies, or an
	// earlier step's undo covers it). A step with neither Undo nor NoUndo
	// stops a rollback that reaches it while its Check says done.
	NoUndo bool
	// Describe says what Apply would change, for the plan. Optional; a step
	// without it is planned with its name only.
	Describe func(ctx context.Context, d D) (Plan, error)
}

// Gate verifies the cluster after a phase; a failing gate stops the run and
// leaves later phases untouched.
type Gate[D any] struct {
	Name string
	// Verify gets the time the phase began in this run, so that it can look
	// for what went wrong since then (errors in logs) and nothing older.
	Verify func(ctx context.Context, d D, phaseBegan time.Time) (detail string, err error)
}

// Phase is a named, ordered list of steps and an optional gate run after
// them.
type Phase[D any] struct {
	Name  string
	Steps []Step[D]
	Gate  *Gate[D]
}

// Validate refuses step lists the runner cannot run safely: missing names,
// checks or applies, and the same step on the same target twice within a
// phase (the journal and progress address steps by phase, name and target). Run it where the phases
// are built; the runner runs it too.
func Validate[D any](phases []Phase[D]) error {
	seenPhase := map[string]bool{}
	for _, p := range phases {
		if p.Name == "" {
			return fmt.Errorf("a phase has no name")
		}
		if seenPhase[p.Name] {
			return fmt.Errorf("phase %q is listed twice", p.Name)
		}
		seenPhase[p.Name] = true
		seen := map[[2]string]bool{}
		for i, s := range p.Steps {
			switch {
			case s.Name == "":
				return fmt.Errorf("phase %s: step %d has no name", p.Name, i)
			case seen[[2]string{s.Name, s.Target.String()}]:
				return fmt.Errorf("phase %s: step %q on %q is listed twice", p.Name, s.Name, s.Target)
			case s.Check == nil:
				return fmt.Errorf("phase %s: step %s has no check", p.Name, s.Name)
			case s.Apply == nil:
				return fmt.Errorf("phase %s: step %s has no apply", p.Name, s.Name)
			case s.Undo != nil && s.NoUndo:
				return fmt.Errorf("phase %s: step %s has an undo and is marked as needing none", p.Name, s.Name)
			}
			seen[[2]string{s.Name, s.Target.String()}] = true
		}
		if p.Gate != nil && p.Gate.Verify == nil {
			return fmt.Errorf("phase %s: gate %s has no verify", p.Name, p.Gate.Name)
		}
	}
	return nil
}
