package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/carotate/carotate/internal/rotation"
)

// FinalizeOptions is `carotate finalize`: distrust the old CAs once rotate
// has switched.
type FinalizeOptions struct {
	rotationOptions
	ChangeFlags
	KubeletLogCommand string
	ReloadWait        time.Duration
	// RestartOldTokenPods restarts the pods whose service-account tokens
	// the old key signed, instead of refusing to finalize.
	RestartOldTokenPods bool
}

// NewFinalizeOptions returns the defaults.
func NewFinalizeOptions(streams IOStreams) *FinalizeOptions {
	return &FinalizeOptions{rotationOptions: newRotationOptions(streams), ChangeFlags: newChangeFlags(),
		KubeletLogCommand: defaultKubeletLog, ReloadWait: defaultReloadWait}
}

func newFinalizeCommand(env Env) *cobra.Command {
	return newCommand(env, "finalize", "Distrust the old CAs and put the layout back to kubeadm's defaults",
		"finalize removes the old CAs everywhere, once rotate has finished.", NewFinalizeOptions(env.streams()))
}

// AddFlags registers the flags.
func (o *FinalizeOptions) AddFlags(f *pflag.FlagSet) {
	o.rotationOptions.AddFlags(f)
	o.ChangeFlags.AddFlags(f)
	addKubeletLogFlag(f, &o.KubeletLogCommand)
	addReloadWaitFlag(f, &o.ReloadWait)
	f.BoolVar(&o.RestartOldTokenPods, "restart-old-token-pods", false, "restart the pods whose service-account tokens the old key signed (through their workloads, respecting PodDisruptionBudgets) instead of refusing; the kubelet otherwise refreshes them within 80% of their lifetime")
}

// Validate refuses flag values that cannot work, before anything is read.
func (o *FinalizeOptions) Validate() error {
	_, logCmd := splitCommand("kubelet-log-command", o.KubeletLogCommand)
	return o.ChangeFlags.validate(&o.rotationOptions, logCmd)
}

// Run finalizes the rotation that has switched.
func (o *FinalizeOptions) Run(ctx context.Context) error {
	set := o.ChangeFlags.settings()
	set.kubeletLog, set.reloadWait, set.restartOldTokenPods = o.KubeletLogCommand, o.ReloadWait, o.RestartOldTokenPods
	return o.run(ctx, rotation.Request{Command: rotation.Finalize}, set, o.ForceUnlock, func(ctx context.Context, s *session, sel rotation.Selection) error {
		return s.mutate(ctx, sel, o.ChangeFlags)
	})
}

// RollbackOptions is `carotate rollback`: back to the old CAs from any
// point before finalize completes. It runs no gates, so it has no
// --kubelet-log-command, and waits for no reload, so no --reload-wait.
type RollbackOptions struct {
	rotationOptions
	ChangeFlags
}

// NewRollbackOptions returns the defaults.
func NewRollbackOptions(streams IOStreams) *RollbackOptions {
	return &RollbackOptions{rotationOptions: newRotationOptions(streams), ChangeFlags: newChangeFlags()}
}

func newRollbackCommand(env Env) *cobra.Command {
	return newCommand(env, "rollback", "Return to the old CAs from any point before finalize completes",
		"rollback undoes the phases in reverse, node by node, and restores every file byte for byte.", NewRollbackOptions(env.streams()))
}

// AddFlags registers the flags.
func (o *RollbackOptions) AddFlags(f *pflag.FlagSet) {
	o.rotationOptions.AddFlags(f)
	o.ChangeFlags.AddFlags(f)
}

// Validate refuses flag values that cannot work, before anything is read.
func (o *RollbackOptions) Validate() error { return o.ChangeFlags.validate(&o.rotationOptions) }

// Run rolls the rotation in progress back.
func (o *RollbackOptions) Run(ctx context.Context) error {
	return o.run(ctx, rotation.Request{Command: rotation.Rollback}, o.ChangeFlags.settings(), o.ForceUnlock, func(ctx context.Context, s *session, sel rotation.Selection) error {
		return s.mutate(ctx, sel, o.ChangeFlags)
	})
}
