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

// status -o json|yaml: one RotationStatus document with the same facts as
// the text, and no file hashes.
func TestStatusDocument(t *testing.T) {
	started := time.Date(2026, 3, 14, 11, 0, 0, 0, time.UTC)
	obs := map[string]rotation.NodeStage{
		"w-1":  {Files: 12, Counts: []rotation.StageCount{{Stage: rotation.Switched, Files: 3}, {Stage: rotation.Trusted, Files: 9}}},
		"cp-1": {At: []rotation.Stage{rotation.Trusted}, Files: 12},
	}
	st := newRotationStatus("r-1", started, rotation.TrustDone, rotation.DefaultRoots(), obs)
	st.addJournal(state.JournalContents{Entries: []state.Entry{
		{Time: started, Phase: "prepare", Step: "generate the new CAs", Action: engine.ActionApplied},
		{Time: started.Add(time.Hour), Phase: "switch", Step: "kubelet client certificate from the new CA", Target: "w-1", Action: engine.ActionApply,
			Files: []state.FileChange{{Target: "w-1:/var/lib/kubelet/pki/kubelet-client-current.pem", Before: "aaaa", After: "bbbb"}}},
	}})
	var out bytes.Buffer
	if err := writeDocument(&out, OutputYAML, st); err != nil {
		t.Fatal(err)
	}
	want := `---
apiVersion: carotate.io/v1alpha1
inProgress: true
journal:
  action: apply
  entries: 2
  interrupted: true
  phase: switch
  step: kubelet client certificate from the new CA
  target: w-1
  time: "2026-03-14T12:00:00Z"
kind: RotationStatus
nodes:
- at:
  - trust
  name: cp-1
  stage: trust
- name: w-1
  stage: 'in transition (12 files: 3 at switch, 9 at trust)'
notAtRecord:
- w-1
record: trust
roots:
- cluster-ca
- front-proxy-ca
rotation: r-1
stage: trust
startedAt: "2026-03-14T11:00:00Z"
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("status -o yaml (-want +got):\n%s", diff)
	}
	out.Reset()
	if err := writeDocument(&out, OutputJSON, RotationStatus{APIVersion: engine.APIVersion, Kind: "RotationStatus"}); err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"apiVersion\": \"carotate.io/v1alpha1\",\n  \"kind\": \"RotationStatus\",\n  \"inProgress\": false\n}\n"; out.String() != want {
		t.Errorf("no rotation: %q, want %q", out.String(), want)
	}
}
