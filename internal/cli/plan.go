package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/carotate/carotate/internal/rotation"
)

// PlanOptions is `carotate plan`: every step rotate and finalize would
// take, with the concrete changes. It only reads.
type PlanOptions struct {
	rotationOptions
	ImportFlags
	Output       string
	AllowUnready []string
	ReloadWait   time.Duration
}

// NewPlanOptions returns the defaults.
func NewPlanOptions(streams IOStreams) *PlanOptions {
	return &PlanOptions{rotationOptions: newRotationOptions(streams), Output: OutputText, ReloadWait: defaultReloadWait}
}

func newPlanCommand(env Env) *cobra.Command {
	return newCommand(env, "plan", "Show every step a rotation would take, per phase and node, with the concrete changes (read-only)",
		"plan gathers the cluster and prints what rotate and finalize would do: each step per phase and node,\nfile diffs (secrets by hash only), certificates before and after, flags, API objects, and restarts.",
		NewPlanOptions(env.streams()))
}

// AddFlags registers the flags: what plan shows depends on each of them.
func (o *PlanOptions) AddFlags(f *pflag.FlagSet) {
	o.rotationOptions.AddFlags(f)
	o.ImportFlags.AddFlags(f)
	addOutputFlag(f, &o.Output)
	addAllowUnreadyFlag(f, &o.AllowUnready)
	addReloadWaitFlag(f, &o.ReloadWait)
}

// Validate refuses flag values that cannot work, before anything is read.
func (o *PlanOptions) Validate() error {
	return errors.Join(validateOutput(o.Output), o.ImportFlags.Validate(), o.NodeFlags.Validate(), o.StateFlags.Validate(), o.RootsFlag.Validate())
}

// Run prints the plan of what is left to do.
func (o *PlanOptions) Run(ctx context.Context) error {
	set := defaultSettings()
	set.imports, set.allowUnready, set.reloadWait = o.ImportFlags, o.AllowUnready, o.ReloadWait
	return o.run(ctx, rotation.Request{Command: rotation.Plan}, set, "", func(ctx context.Context, s *session, sel rotation.Selection) error {
		if !s.lc.Fresh {
			fmt.Fprintf(s.summaryOut(o.Output), "Rotation %s is in progress (last finished phase: %s).\n", s.lc.Record.RotationID, s.lc.State())
		}
		if err := s.rot.Plan(ctx, sel, s.reporter(o.Output)); err != nil {
			return err
		}
		s.outage(o.Output)
		s.printOutside(s.rot.OutsideCredentials(s.cluster, s.o.now()), o.Output)
		s.notRotated(o.Output)
		return nil
	})
}
