package rotation

import "fmt"

// RecordState is where a rotation's record says the rotation stands: how
// many of its phases have finished, or how it ended. The record is what
// carotate last wrote, not the truth (that is observed on the nodes, see
// ObserveStages); it decides which phases a command runs.
//
// It is stored as the record's phase (state.Record.Phase), in the words
// carotate has always written there, so that every record still loads.
type RecordState int

const (
	Started      RecordState = iota // "": a command began changing the cluster; no phase has finished
	PrepareDone                     // "prepare"
	TrustDone                       // "trust"
	SwitchDone                      // "switch"
	FinalizeDone                    // "finalize": finalize's steps and gate passed, the rotation is not closed yet
	Completed                       // "finalized": closed, the old CAs are gone
	RolledBack                      // "rolled-back": closed, the old CAs are back
)

// recordPhases are the words stored for each state.
var recordPhases = [...]string{
	Started:      "",
	PrepareDone:  PhasePrepare,
	TrustDone:    PhaseTrust,
	SwitchDone:   PhaseSwitch,
	FinalizeDone: PhaseFinalize,
	Completed:    "finalized",
	RolledBack:   "rolled-back",
}

// ParseRecordState reads the phase stored in a record.
func ParseRecordState(phase string) (RecordState, error) {
	for s, p := range recordPhases {
		if p == phase {
			return RecordState(s), nil
		}
	}
	return 0, fmt.Errorf("the record's phase %q is none carotate writes; it was changed by hand", phase)
}

// Phase is the word stored in the record for s.
func (s RecordState) Phase() string {
	if s < 0 || int(s) >= len(recordPhases) {
		return fmt.Sprintf("state(%d)", int(s))
	}
	return recordPhases[s]
}

// String is the state as the operator reads it: the last phase finished,
// "none" before any.
func (s RecordState) String() string {
	if s == Started {
		return "none"
	}
	return s.Phase()
}

// Closed says the rotation has ended, finalized or rolled back: the next
// command that changes the cluster starts a new one.
func (s RecordState) Closed() bool { return s == Completed || s == RolledBack }

// PhasesDone is how many phases, in the order of Phases, have finished:
// the phases a resume must not apply again, since their steps would take
// the nodes back a stage.
func (s RecordState) PhasesDone() int {
	switch {
	case s == RolledBack:
		return 0
	case s >= FinalizeDone:
		return int(FinalizeDone)
	default:
		return int(s)
	}
}

// Stage is the stage the record says every node is at.
func (s RecordState) Stage() Stage {
	return Stage(s.PhasesDone())
}

// afterPhase is the state once phase i (an index into Phases) has
// finished: phase i moves the cluster to Stage(i+1).
func afterPhase(i int) RecordState { return RecordState(i + 1) }
