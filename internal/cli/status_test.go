package cli

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/rotation"
	"github.com/carotate/carotate/internal/state"
)

func TestStatusSaysWhichNodesAreOffTheRecord(t *testing.T) {
	at := func(s rotation.Stage) rotation.NodeStage {
		return rotation.NodeStage{At: []rotation.Stage{s}, Files: 12}
	}
	between := rotation.NodeStage{Files: 12, Counts: []rotation.StageCount{{Stage: rotation.Switched, Files: 3}, {Stage: rotation.Trusted, Files: 9}}}
	tests := []struct {
		name string
		obs  map[string]rotation.NodeStage
		want string
	}{
		{"every node at trust", map[string]rotation.NodeStage{"cp-1": at(rotation.Trusted), "w-1": at(rotation.Trusted)}, `  cp-1                 trust
  w-1                  trust
Every node is where the record says (trust).
`},
		{"a node in transition is not at trust", map[string]rotation.NodeStage{"cp-1": at(rotation.Trusted), "w-1": between}, `  cp-1                 trust
  w-1                  in transition (12 files: 3 at switch, 9 at trust)
Not where the record says (trust): w-1. A step was interrupted: run the same command again to resume, or ` + "`carotate rollback`" + `.
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			writeStages(&out, tt.obs, rotation.TrustDone.Stage())
			if diff := cmp.Diff(tt.want, out.String()); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatusSaysAStepWasLeftHalfDone(t *testing.T) {
	at := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	writeJournal(&out, state.JournalContents{Entries: []state.Entry{
		{Time: at, Phase: "trust", Step: "kubelet trusts old and new", Target: "w-1", Action: engine.ActionApply},
	}})
	want := "Journal: 1 entries; last trust kubelet trusts old and new w-1 apply at 2026-03-14T12:00:00Z\n" +
		"The last step started and did not finish: carotate stopped in the middle of it. Run the same command again to resume.\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("journal (-want +got):\n%s", diff)
	}
}
