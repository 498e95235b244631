package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/carotate/carotate/internal/rotation"
)

// RotateOptions is `carotate rotate`: prepare, trust and switch, with a
// gate after each, resumed where the record says. It never reaches
// finalize's wait for the apiserver, so it has no --reload-wait.
type RotateOptions struct {
	rotationOptions
	ChangeFlags
	ImportFlags
	KubeletLogCommand string
	Until             string
}

// NewRotateOptions returns the defaults.
func NewRotateOptions(streams IOStreams) *RotateOptions {
	return &RotateOptions{rotationOptions: newRotationOptions(streams), ChangeFlags: newChangeFlags(), KubeletLogCommand: defaultKubeletLog}
}

func newRotateCommand(env Env) *cobra.Command {
	return newCommand(env, "rotate", "Rotate the cluster and front-proxy CAs: prepare, trust old+new, switch to the new CA",
		"rotate runs prepare, trust and switch, with a gate after each. It stops before distrusting the old CA\nand prints what still depends on it and the command to finalize. Rerun it to resume after a crash.",
		NewRotateOptions(env.streams()))
}

// AddFlags registers the flags.
func (o *RotateOptions) AddFlags(f *pflag.FlagSet) {
	o.rotationOptions.AddFlags(f)
	o.ChangeFlags.AddFlags(f)
	o.ImportFlags.AddFlags(f)
	addKubeletLogFlag(f, &o.KubeletLogCommand)
	f.StringVar(&o.Until, "until", o.Until, "stop after this phase (prepare, trust or switch), e.g. to look around before going on; rerun rotate to continue")
}

// Validate refuses flag values that cannot work, before anything is read.
func (o *RotateOptions) Validate() error {
	_, logCmd := splitCommand("kubelet-log-command", o.KubeletLogCommand)
	return o.ChangeFlags.validate(&o.rotationOptions, o.ImportFlags.Validate(), validateUntil(o.Until), logCmd)
}

// validateUntil refuses an --until that names no phase rotate or renew
// stops after.
func validateUntil(until string) error {
	if until == "" {
		return nil
	}
	if _, err := rotation.RotateUntil(until); err != nil {
		return fmt.Errorf("--until %w", err)
	}
	return nil
}

// Run resumes the rotation in progress, or starts one.
func (o *RotateOptions) Run(ctx context.Context) error {
	req := rotation.Request{Command: rotation.Rotate}
	if o.Until != "" {
		req.Until, _ = rotation.RotateUntil(o.Until) // checked by Validate
	}
	set := o.ChangeFlags.settings()
	set.imports, set.kubeletLog = o.ImportFlags, o.KubeletLogCommand
	return o.run(ctx, req, set, o.ForceUnlock, func(ctx context.Context, s *session, sel rotation.Selection) error {
		return s.mutate(ctx, sel, o.ChangeFlags)
	})
}
