package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/rotation"
)

// status shows each node's stage as observed, and the record and journal.
func (s *session) status(ctx context.Context) error {
	o := s.o
	if s.fresh {
		fmt.Fprintf(o.Out, "No rotation in progress.")
		if s.rec.Phase != "" {
			fmt.Fprintf(o.Out, " Last: %s.", s.rec.Phase)
		}
		fmt.Fprintln(o.Out)
		return nil
	}
	fmt.Fprintf(o.Out, "Rotation %s, started %s; record says: %s\n", s.rec.RotationID, s.rec.StartedAt.Format(time.RFC3339), orNone(s.rec.Phase))
	obs, err := rotation.ObserveStages(ctx, s.rot)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(obs))
	for n := range obs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(o.Out, "  %-20s %s\n", n, obs[n])
	}
	st, err := rotation.ParseRecordState(s.rec.Phase)
	if err != nil {
		return err
	}
	want := st.Stage()
	if off := rotation.NotAt(obs, want); len(off) == 0 {
		fmt.Fprintf(o.Out, "Every node is where the record says (%s).\n", want)
	} else {
		fmt.Fprintf(o.Out, "Not where the record says (%s): %s. A step was interrupted: run the same command again to resume, or `carotate rollback`.\n", want, strings.Join(off, ", "))
	}
	jc, err := s.dir.ReadJournal()
	if err == nil && len(jc.Entries) > 0 {
		e := jc.Entries[len(jc.Entries)-1]
		fmt.Fprintf(o.Out, "Journal: %d entries; last %s %s %s %s at %s\n", len(jc.Entries), e.Phase, e.Step, e.Target, e.Action, e.Time.Format(time.RFC3339))
		if e.Action == engine.ActionApply || e.Action == engine.ActionUndo {
			fmt.Fprintf(o.Out, "The last step started and did not finish: carotate stopped in the middle of it. Run the same command again to resume.\n")
		}
	}
	return nil
}
