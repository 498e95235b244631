package rotation

import (
	"testing"
)

// TestRecordStates: every phase carotate has ever stored in a record reads
// back as its state and is stored again as the same word, and each state
// says how far the rotation came.
func TestRecordStates(t *testing.T) {
	tests := []struct {
		stored     string
		want       RecordState
		shown      string
		phasesDone int
		stage      Stage
		closed     bool
	}{
		{"", Started, "none", 0, Original, false},
		{"prepare", PrepareDone, "prepare", 1, Prepared, false},
		{"trust", TrustDone, "trust", 2, Trusted, false},
		{"switch", SwitchDone, "switch", 3, Switched, false},
		{"finalize", FinalizeDone, "finalize", 4, Finalized, false},
		{"finalized", Completed, "finalized", 4, Finalized, true},
		{"rolled-back", RolledBack, "rolled-back", 0, Original, true},
	}
	for _, tt := range tests {
		t.Run(tt.shown, func(t *testing.T) {
			got, err := ParseRecordState(tt.stored)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("ParseRecordState(%q) = %v, want %v", tt.stored, got, tt.want)
			}
			if got.Phase() != tt.stored {
				t.Errorf("%v is stored as %q, want %q", got, got.Phase(), tt.stored)
			}
			if got.String() != tt.shown {
				t.Errorf("%v is shown as %q, want %q", got, got.String(), tt.shown)
			}
			if got.PhasesDone() != tt.phasesDone || got.Stage() != tt.stage || got.Closed() != tt.closed {
				t.Errorf("%v: %d phases done, stage %s, closed %v; want %d, %s, %v",
					got, got.PhasesDone(), got.Stage(), got.Closed(), tt.phasesDone, tt.stage, tt.closed)
			}
		})
	}
	for _, bad := range []string{"finalised", "Prepare", "switched", "original"} {
		if s, err := ParseRecordState(bad); err == nil {
			t.Errorf("ParseRecordState(%q) = %v, want an error", bad, s)
		}
	}
}

// TestRecordStatesFollowThePhases: the state recorded after phase i of the
// runbook is stored as that phase's name, and says the cluster reached the
// stage that phase ends in.
func TestRecordStatesFollowThePhases(t *testing.T) {
	m, nodes := fixture(t)
	r := &Rotation{M: m, Nodes: nodes}
	for i, p := range r.Phases() {
		s := afterPhase(i)
		if s.Phase() != p.Name {
			t.Errorf("after phase %d (%s) the record says %q", i, p.Name, s.Phase())
		}
		if want, _ := StageOfPhase(p.Name); s.Stage() != want {
			t.Errorf("after phase %s the record's stage is %s, want %s", p.Name, s.Stage(), want)
		}
	}
}
