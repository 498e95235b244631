package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/carotate/carotate/internal/clusterstatus"
	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/rotation"
	"github.com/carotate/carotate/internal/state"
)

// StatusOptions is `carotate status`: where a rotation stands, observed on
// the nodes and checked against the record and the journal. It only
// reads; -o json or yaml prints one RotationStatus document. --backup-key
// is there because the material it compares the nodes with is sealed.
type StatusOptions struct {
	rotationOptions
	Output string
}

// NewStatusOptions returns the defaults.
func NewStatusOptions(streams IOStreams) *StatusOptions {
	return &StatusOptions{rotationOptions: newRotationOptions(streams), Output: OutputText}
}

// AddFlags registers the flags.
func (o *StatusOptions) AddFlags(f *pflag.FlagSet) {
	o.rotationOptions.AddFlags(f)
	f.StringVarP(&o.Output, "output", "o", o.Output, "format: text, json or yaml")
}

func newStatusCommand(env Env) *cobra.Command {
	return newCommand(env, "status", "Show where a rotation stands, observed on the nodes and cross-checked with the journal (read-only)", "",
		NewStatusOptions(env.streams()))
}

// Validate refuses flag values that cannot work, before anything is read.
func (o *StatusOptions) Validate() error {
	return errors.Join(validateOutput(o.Output), o.NodeFlags.Validate(), o.StateFlags.Validate(), o.RootsFlag.Validate())
}

// Run shows the rotation in progress.
func (o *StatusOptions) Run(ctx context.Context) error {
	return o.run(ctx, rotation.Request{Command: rotation.Status}, defaultSettings(), "", func(ctx context.Context, s *session, _ rotation.Selection) error {
		return s.status(ctx, o.Output)
	})
}

// status shows each node's stage as observed, and the record and journal.
func (s *session) status(ctx context.Context, output string) error {
	out := s.o.Out
	inCluster := s.clusterStatus(ctx)
	if s.lc.Fresh {
		if structured(output) {
			return writeDocument(out, output, RotationStatus{APIVersion: engine.APIVersion, Kind: "RotationStatus", Cluster: inCluster})
		}
		fmt.Fprintf(out, "No rotation in progress in %s.\n", s.dir.Path())
		writeClusterStatus(out, inCluster)
		return nil
	}
	rec := s.lc.Record
	obs, err := rotation.ObserveStages(ctx, s.rot)
	if err != nil {
		return err
	}
	jc, jerr := s.dir.ReadJournal()
	outside := s.rot.OutsideCredentials(s.cluster, s.o.now())
	if structured(output) {
		st := newRotationStatus(rec.RotationID, rec.StartedAt, s.lc.State(), s.lc.Roots(), obs)
		if jerr == nil {
			st.addJournal(jc)
		}
		st.Cluster, st.OutsideCredentials = inCluster, outside
		return writeDocument(out, output, st)
	}
	fmt.Fprintf(out, "Rotation %s, started %s; record says: %s\n", rec.RotationID, rec.StartedAt.Format(time.RFC3339), s.lc.State())
	writeStages(out, obs, s.lc.State().Stage())
	if jerr == nil {
		writeJournal(out, jc)
	}
	s.printOutside(outside, output)
	writeClusterStatus(out, inCluster)
	return nil
}

// ClusterStatus is what the ConfigMap kube-system/carotate-status says:
// the last command any carotate ran on this cluster, from any machine.
type ClusterStatus struct {
	Rotation  string    `json:"rotation"`
	Roots     []string  `json:"roots,omitempty"`
	Command   string    `json:"command"`
	State     string    `json:"state"`
	Record    string    `json:"record"`
	Holder    string    `json:"holder"`
	Message   string    `json:"message,omitempty"`
	StartedAt time.Time `json:"startedAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// clusterStatus reads the ConfigMap; nil when there is none or it cannot
// be read (the local record is the truth; this is what others see).
func (s *session) clusterStatus(ctx context.Context) *ClusterStatus {
	st, ok, err := clusterstatus.Read(ctx, s.cs)
	if err != nil {
		s.o.logger.Warn("could not read the rotation's status in the cluster", "configmap", clusterstatus.Namespace+"/"+clusterstatus.Name, "err", err)
	}
	if !ok {
		return nil
	}
	return &ClusterStatus{Rotation: st.Rotation, Roots: st.Roots, Command: st.Command, State: st.State, Record: st.Record,
		Holder: st.Holder, Message: st.Message, StartedAt: st.StartedAt, UpdatedAt: st.UpdatedAt}
}

// writeClusterStatus says what the cluster's status ConfigMap says.
func writeClusterStatus(w io.Writer, c *ClusterStatus) {
	if c == nil {
		return
	}
	fmt.Fprintf(w, "The cluster (ConfigMap %s/%s) says: rotation %s (roots %s): %s %s at %s, the record then at %q, run by %s.\n",
		clusterstatus.Namespace, clusterstatus.Name, c.Rotation, strings.Join(c.Roots, ","), c.Command, c.State,
		c.UpdatedAt.Format(time.RFC3339), c.Record, c.Holder)
	if c.State == clusterstatus.Running || c.State == clusterstatus.Failed {
		fmt.Fprintf(w, "  %s\n", c.Message)
	}
}

// RotationStatus is what `carotate status -o json|yaml` prints: the
// record, each node's stage as observed, and the journal's last entry.
// With no rotation in progress only apiVersion, kind and inProgress
// (false) are set. It holds names, stages and times, never key material
// or file hashes.
type RotationStatus struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	InProgress bool   `json:"inProgress"`
	Rotation   string `json:"rotation,omitempty"`
	// StartedAt is when the rotation's record was written first.
	StartedAt *time.Time `json:"startedAt,omitempty"`
	// Record is what the record says ("trust done", …), and Stage the
	// stage every node should be at for it.
	Record string       `json:"record,omitempty"`
	Stage  string       `json:"stage,omitempty"`
	Roots  []string     `json:"roots,omitempty"`
	Nodes  []NodeStatus `json:"nodes,omitempty"`
	// NotAtRecord are the nodes whose files are not at Stage: a step on
	// them was interrupted, or someone changed them.
	NotAtRecord []string       `json:"notAtRecord,omitempty"`
	Journal     *JournalStatus `json:"journal,omitempty"`
	// Cluster is what the cluster's status ConfigMap says, from whichever
	// machine ran carotate last.
	Cluster *ClusterStatus `json:"cluster,omitempty"`
	// OutsideCredentials are the client certificates issued outside
	// carotate that the old cluster CA signed: finalize locks them out.
	OutsideCredentials []rotation.OutsideCredential `json:"outsideCredentials,omitempty"`
}

// NodeStatus is one node's observed stage.
type NodeStatus struct {
	Name string `json:"name"`
	// Stage is status's text for it: "trust", "in transition (…)", …
	Stage string `json:"stage"`
	// At are the stages all its files are at; empty in transition.
	At []string `json:"at,omitempty"`
	// Changed are files at no stage: changed outside carotate.
	Changed []string `json:"changed,omitempty"`
}

// JournalStatus is the journal's length and its last entry.
type JournalStatus struct {
	Entries int       `json:"entries"`
	Time    time.Time `json:"time"`
	Phase   string    `json:"phase,omitempty"`
	Step    string    `json:"step,omitempty"`
	Target  string    `json:"target,omitempty"`
	Action  string    `json:"action"`
	// Interrupted says the last step started and did not finish: run the
	// same command again to resume.
	Interrupted bool `json:"interrupted"`
}

func newRotationStatus(id string, started time.Time, rec rotation.RecordState, roots rotation.Roots, obs map[string]rotation.NodeStage) RotationStatus {
	st := RotationStatus{
		APIVersion: engine.APIVersion, Kind: "RotationStatus", InProgress: true,
		Rotation: id, StartedAt: &started, Record: rec.String(), Stage: rec.Stage().String(), Roots: roots.Names(),
		NotAtRecord: rotation.NotAt(obs, rec.Stage()),
	}
	for _, n := range slices.Sorted(maps.Keys(obs)) {
		ns := NodeStatus{Name: n, Stage: obs[n].String(), Changed: obs[n].Changed}
		for _, s := range obs[n].At {
			ns.At = append(ns.At, s.String())
		}
		st.Nodes = append(st.Nodes, ns)
	}
	return st
}

func (st *RotationStatus) addJournal(jc state.JournalContents) {
	if len(jc.Entries) == 0 {
		return
	}
	e := jc.Entries[len(jc.Entries)-1]
	st.Journal = &JournalStatus{
		Entries: len(jc.Entries), Time: e.Time, Phase: e.Phase, Step: e.Step, Target: e.Target, Action: e.Action,
		Interrupted: e.Action == engine.ActionApply || e.Action == engine.ActionUndo,
	}
}

// writeStages lists each node's observed stage, and says which nodes are
// not at the stage the record says.
func writeStages(w io.Writer, obs map[string]rotation.NodeStage, want rotation.Stage) {
	names := make([]string, 0, len(obs))
	for n := range obs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-20s %s\n", n, obs[n])
	}
	if off := rotation.NotAt(obs, want); len(off) == 0 {
		fmt.Fprintf(w, "Every node is where the record says (%s).\n", want)
	} else {
		fmt.Fprintf(w, "Not where the record says (%s): %s. A step was interrupted: run the same command again to resume, or `carotate rollback`.\n", want, strings.Join(off, ", "))
	}
}

// writeJournal says what the journal saw last, and whether that step was
// left half done.
func writeJournal(w io.Writer, jc state.JournalContents) {
	if len(jc.Entries) == 0 {
		return
	}
	e := jc.Entries[len(jc.Entries)-1]
	fmt.Fprintf(w, "Journal: %d entries; last %s %s %s %s at %s\n", len(jc.Entries), e.Phase, e.Step, e.Target, e.Action, e.Time.Format(time.RFC3339))
	if e.Action == engine.ActionApply || e.Action == engine.ActionUndo {
		fmt.Fprintf(w, "The last step started and did not finish: carotate stopped in the middle of it. Run the same command again to resume.\n")
	}
}
