package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/rotation"
	"github.com/carotate/carotate/internal/state"
)

// StatusOptions is `carotate status`: where a rotation stands, observed on
// the nodes and checked against the record and the journal. It only
// reads, and prints text only. --backup-key is there because the material
// it compares the nodes with is sealed.
type StatusOptions struct {
	rotationOptions
}

// NewStatusOptions returns the defaults.
func NewStatusOptions(streams IOStreams) *StatusOptions {
	return &StatusOptions{rotationOptions: newRotationOptions(streams)}
}

func newStatusCommand(env Env) *cobra.Command {
	return newCommand(env, "status", "Show where a rotation stands, observed on the nodes and cross-checked with the journal (read-only)", "",
		NewStatusOptions(env.streams()))
}

// Validate refuses flag values that cannot work, before anything is read.
func (o *StatusOptions) Validate() error {
	return errors.Join(o.NodeFlags.Validate(), o.StateFlags.Validate(), o.RootsFlag.Validate())
}

// Run shows the rotation in progress.
func (o *StatusOptions) Run(ctx context.Context) error {
	return o.run(ctx, rotation.Request{Command: rotation.Status}, defaultSettings(), "", func(ctx context.Context, s *session, _ rotation.Selection) error {
		return s.status(ctx)
	})
}

// status shows each node's stage as observed, and the record and journal.
func (s *session) status(ctx context.Context) error {
	out := s.o.Out
	if s.lc.Fresh {
		fmt.Fprintln(out, "No rotation in progress.")
		return nil
	}
	rec := s.lc.Record
	fmt.Fprintf(out, "Rotation %s, started %s; record says: %s\n", rec.RotationID, rec.StartedAt.Format(time.RFC3339), s.lc.State())
	obs, err := rotation.ObserveStages(ctx, s.rot)
	if err != nil {
		return err
	}
	writeStages(out, obs, s.lc.State().Stage())
	if jc, err := s.dir.ReadJournal(); err == nil {
		writeJournal(out, jc)
	}
	return nil
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
