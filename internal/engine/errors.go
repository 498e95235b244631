package engine

import "fmt"

// StepError is a step that failed. Op is where: "check", "describe",
// "apply", "undo", "journal", or a hook point such as "after-apply".
type StepError struct {
	Phase  string
	Step   string
	Target Target
	Op     string
	Err    error
}

func (e *StepError) Error() string {
	on := ""
	if t := e.Target.String(); t != "" {
		on = " on " + t
	}
	return fmt.Sprintf("phase %s: step %s%s: %s: %v", e.Phase, e.Step, on, e.Op, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// GateError is a gate that did not pass. The phase's steps are done and
// nothing after the phase was touched.
type GateError struct {
	Phase string
	Gate  string
	Err   error
}

func (e *GateError) Error() string {
	return fmt.Sprintf("phase %s: gate %s failed, nothing after this phase was changed; fix the cause and rerun to resume, or roll back: %v",
		e.Phase, e.Gate, e.Err)
}

func (e *GateError) Unwrap() error { return e.Err }

// NoUndoError stops a rollback at a step that is done and has no undo.
type NoUndoError struct {
	Phase  string
	Step   string
	Target Target
}

func (e *NoUndoError) Error() string {
	on := ""
	if t := e.Target.String(); t != "" {
		on = " on " + t
	}
	return fmt.Sprintf("rollback stopped at phase %s, step %s%s: it is done and has no automatic undo; restore what it changed from the backup, then rerun the rollback",
		e.Phase, e.Step, on)
}
