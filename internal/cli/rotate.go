package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/carotate/carotate/internal/inventory"
	"github.com/carotate/carotate/internal/rotation"
	"github.com/carotate/carotate/internal/state"
)

// Record phases besides the rotation's own phase names.
const (
	recordRolledBack = "rolled-back"
	recordFinalized  = "finalized"
)

// ErrRefused is returned (wrapped) when a preflight check refuses to start.
var ErrRefused = errors.New("refused before any change")

// RotateOptions is every command that plans, runs or undoes a rotation:
// plan, rotate, finalize, rollback and status.
type RotateOptions struct {
	Out, ErrOut io.Writer
	In          io.Reader
	command     string

	Kubeconfig, Context string
	SSHUser             string
	SSHKeys             []string
	SSHKnownHosts       []string
	SSHPort             int
	Sudo                bool
	InventoryFile       string

	StateDir              string
	BackupKeyFile         string
	CACert                string
	CAKey                 string
	FrontCACert           string
	FrontCAKey            string
	Yes                   bool
	Output                string
	AllowUnready          []string
	Parallelism           int
	KubeletRestartCommand string
	KubeletLogCommand     string
	ReloadWait            time.Duration
	Until                 string
	ForceUnlock           string

	inventory   *inventory.File
	gather      Gatherer
	getenv      func(string) string
	now         func() time.Time
	logger      *slog.Logger
	interactive func() bool
}

func newRotationCommand(env Env, name, short, long string) *cobra.Command {
	o := &RotateOptions{Out: env.Stdout, ErrOut: env.Stderr, In: env.Stdin, command: name, Output: OutputText,
		Parallelism: 4, KubeletRestartCommand: "systemctl restart kubelet",
		KubeletLogCommand: "journalctl -u kubelet --since {since} --no-pager -o cat", ReloadWait: 5*time.Minute + 15*time.Second}
	cmd := &cobra.Command{
		Use: name, Short: short, Long: long, Args: cobra.NoArgs,
		RunE: runOptions(env, o),
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// NewRotationCommands builds plan, rotate, finalize, rollback and status.
func NewRotationCommands(env Env) []*cobra.Command {
	return []*cobra.Command{
		newRotationCommand(env, "plan", "Show every step a rotation would take, per phase and node, with the concrete changes (read-only)",
			"plan gathers the cluster and prints what rotate and finalize would do: each step per phase and node,\nfile diffs (secrets by hash only), certificates before and after, flags, API objects, and restarts."),
		newRotationCommand(env, "rotate", "Rotate the cluster and front-proxy CAs: prepare, trust old+new, switch to the new CA",
			"rotate runs prepare, trust and switch, with a gate after each. It stops before distrusting the old CA\nand prints what still depends on it and the command to finalize. Rerun it to resume after a crash."),
		newRotationCommand(env, "finalize", "Distrust the old CAs and put the layout back to kubeadm's defaults", "finalize removes the old CAs everywhere, once rotate has finished."),
		newRotationCommand(env, "rollback", "Return to the old CAs from any point before finalize completes", "rollback undoes the phases in reverse, node by node, and restores every file byte for byte."),
		newRotationCommand(env, "status", "Show where a rotation stands, observed on the nodes and cross-checked with the journal (read-only)", ""),
	}
}

// AddFlags registers the flags.
func (o *RotateOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	f.StringVar(&o.Context, "context", "", "the kubeconfig context to use")
	f.StringVar(&o.SSHUser, "ssh-user", "", "SSH login on the nodes (default: $"+EnvSSHUser+", ~/.ssh/config, then your user)")
	f.StringArrayVar(&o.SSHKeys, "ssh-key", nil, "SSH private key file; repeatable (default: $"+EnvSSHKey+")")
	f.StringArrayVar(&o.SSHKnownHosts, "ssh-known-hosts", nil, "known_hosts file for the nodes' host keys; repeatable (default: $"+EnvSSHKnownHosts+", then ~/.ssh/known_hosts)")
	f.IntVar(&o.SSHPort, "ssh-port", 0, "SSH port on the nodes (default 22)")
	f.BoolVar(&o.Sudo, "sudo", false, "run commands on the nodes through sudo -n")
	f.StringVar(&o.InventoryFile, "inventory", "", "YAML file overriding how to reach each node, or skipping nodes")
	f.StringVar(&o.StateDir, "state-dir", "", "where rotation state, journal and backups live (default $XDG_STATE_HOME/carotate or ~/.local/state/carotate)")
	f.StringVar(&o.BackupKeyFile, "backup-key", "", "file with the key that seals the backup and the CA keys, kept apart from --state-dir; a new rotation creates it 0600 if missing, a rotation in progress uses the one it was started with")
	f.StringVar(&o.Output, "output", OutputText, "progress format: text or json (one event per step)")
	f.IntVar(&o.Parallelism, "parallelism", o.Parallelism, "how many worker nodes to change at once (control-plane nodes are always one at a time)")
	if o.command == "status" {
		return
	}
	f.StringVar(&o.CACert, "ca-cert", "", "import this new cluster CA certificate instead of generating one (with --ca-key)")
	f.StringVar(&o.CAKey, "ca-key", "", "the new cluster CA's private key")
	f.StringVar(&o.FrontCACert, "front-proxy-ca-cert", "", "import this new front-proxy CA certificate (with --front-proxy-ca-key)")
	f.StringVar(&o.FrontCAKey, "front-proxy-ca-key", "", "the new front-proxy CA's private key")
	f.StringArrayVar(&o.AllowUnready, "allow-unready", nil, "go on although NODE is NotReady; repeatable")
	f.StringVar(&o.KubeletRestartCommand, "kubelet-restart-command", o.KubeletRestartCommand, "command that restarts the kubelet on a node")
	f.StringVar(&o.KubeletLogCommand, "kubelet-log-command", o.KubeletLogCommand, "command that prints the kubelet's log since {since}")
	f.DurationVar(&o.ReloadWait, "reload-wait", o.ReloadWait, "how long kube-apiserver may take to re-read apiserver-kubelet-client.crt before finalize")
	if o.command != "plan" {
		f.BoolVarP(&o.Yes, "yes", "y", false, "do it without asking")
	}
	if o.command != "plan" {
		f.StringVar(&o.ForceUnlock, "force-unlock", "", "delete the rotation lock held by this holder (as the refusal names it) first; only once you made sure that process is gone")
	}
	if o.command == "rotate" {
		f.StringVar(&o.Until, "until", "", "stop after this phase (prepare, trust or switch), e.g. to look around before going on; rerun rotate to continue")
	}
}

// Complete fills defaults from the environment.
func (o *RotateOptions) Complete(env Env, flags *pflag.FlagSet) error {
	env = env.withDefaults()
	o.gather, o.getenv, o.now, o.logger = env.Gather, env.Getenv, env.Now, env.logger()
	o.interactive = env.IsTerminal
	if o.In == nil {
		o.In = env.Stdin
	}
	var err error
	if o.inventory, err = nodeAccessDefaults(env, flags, &o.SSHUser, &o.SSHKeys, &o.SSHKnownHosts, o.InventoryFile); err != nil {
		return err
	}
	if o.StateDir == "" {
		d, err := state.DefaultRoot()
		if err != nil {
			return err
		}
		o.StateDir = d
	}
	return nil
}

// Validate refuses flag values that cannot work, before anything is read.
func (o *RotateOptions) Validate() error {
	var errs []error
	if o.Output != OutputText && o.Output != OutputJSON {
		errs = append(errs, fmt.Errorf("--output %q is not one of %s or %s", o.Output, OutputText, OutputJSON))
	}
	if (o.CACert == "") != (o.CAKey == "") {
		errs = append(errs, errors.New("--ca-cert and --ca-key go together: give both or neither"))
	}
	if (o.FrontCACert == "") != (o.FrontCAKey == "") {
		errs = append(errs, errors.New("--front-proxy-ca-cert and --front-proxy-ca-key go together: give both or neither"))
	}
	if o.Until != "" && (phaseIndex(o.Until) < 0 || o.Until == rotation.PhaseFinalize) {
		errs = append(errs, fmt.Errorf("--until %q is not one of prepare, trust or switch", o.Until))
	}
	if o.Parallelism < 1 {
		errs = append(errs, fmt.Errorf("--parallelism must be at least 1, got %d", o.Parallelism))
	}
	if o.SSHPort < 0 || o.SSHPort > 65535 {
		errs = append(errs, fmt.Errorf("--ssh-port %d is out of range 1-65535", o.SSHPort))
	}
	if len(strings.Fields(o.KubeletRestartCommand)) == 0 {
		errs = append(errs, errors.New("--kubelet-restart-command is empty"))
	}
	if !filepath.IsAbs(o.StateDir) {
		errs = append(errs, fmt.Errorf("--state-dir %q must be an absolute path", o.StateDir))
	}
	return errors.Join(errs...)
}

// Run runs the command. The phases to run are decided from the record
// alone, so that a command with nothing to do, or one that is refused,
// returns before it takes the lock, gathers or connects to anything.
func (o *RotateOptions) Run(ctx context.Context) (err error) {
	s, err := o.openState(ctx)
	if err != nil {
		return err
	}
	// done is how many phases the record says have finished. The next
	// phase may be part way: resume runs it again (its finished steps are
	// skipped) and rollback undoes it too. Phases already finished are never
	// applied again: their steps would take the nodes back a stage.
	done := phaseIndex(s.rec.Phase) + 1
	if s.fresh {
		done = 0
	}
	from, to := done, 4
	switch o.command {
	case "rotate":
		if done >= 3 {
			fmt.Fprintf(o.Out, "Rotation %s has already switched to the new CAs; nothing to do. Run `carotate finalize` to distrust the old CAs, or `carotate rollback`.\n", s.rec.RotationID)
			return nil
		}
		to = 3
		if o.Until != "" {
			to = phaseIndex(o.Until) + 1
		}
		if done >= to {
			fmt.Fprintf(o.Out, "Rotation %s has already finished %s; nothing to do.\n", s.rec.RotationID, s.rec.Phase)
			return nil
		}
	case "finalize":
		if s.fresh || done != 3 {
			return fmt.Errorf("%w: finalize needs a rotation that has switched to the new CA (record: %s); run `carotate rotate` first", ErrRefused, orNone(s.rec.Phase))
		}
	case "rollback":
		if s.fresh {
			return fmt.Errorf("%w: no rotation in progress to roll back (a finalized rotation cannot be rolled back; rotate again instead)", ErrRefused)
		}
		from, to = 0, min(done+1, 4)
	}
	if o.mutates() {
		lctx, release, err := s.takeLock(ctx)
		if err != nil {
			return err
		}
		defer release()
		defer func() {
			if cause := context.Cause(lctx); err != nil && cause != nil && !errors.Is(err, cause) {
				err = fmt.Errorf("%w\nstopped: %w", err, cause)
			}
		}()
		ctx = lctx
	}
	defer s.close()
	if err := s.openCluster(ctx); err != nil {
		return err
	}
	phases := s.rot.Phases()[from:to]
	switch o.command {
	case "status":
		return s.status(ctx)
	case "plan":
		if !s.fresh {
			fmt.Fprintf(o.Out, "Rotation %s is in progress (last finished phase: %s).\n", s.rec.RotationID, orNone(s.rec.Phase))
		}
		_, err := s.runner(ctx, nil).Plan(ctx, s.rot, phases)
		return err
	case "rotate", "finalize", "rollback":
		return s.mutate(ctx, phases, o.command == "rollback")
	}
	return fmt.Errorf("unknown command %q", o.command)
}

// mutates says whether the command changes the cluster, and so takes the
// lock and may start a rotation.
func (o *RotateOptions) mutates() bool {
	return o.command == "rotate" || o.command == "finalize" || o.command == "rollback"
}

// phaseIndex is the position of a recorded phase, -1 for none.
func phaseIndex(phase string) int {
	for i, p := range []string{rotation.PhasePrepare, rotation.PhaseTrust, rotation.PhaseSwitch, rotation.PhaseFinalize} {
		if p == phase {
			return i
		}
	}
	return -1
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// confirm needs --yes, or the command name typed on a terminal.
func (o *RotateOptions) confirm() error {
	if o.Yes {
		return nil
	}
	if o.interactive == nil || !o.interactive() {
		return fmt.Errorf("%w: %s changes the cluster; review the plan above and pass --yes", ErrRefused, o.command)
	}
	fmt.Fprintf(o.Out, "Type %q to go on: ", o.command)
	line, _ := bufio.NewReader(o.In).ReadString('\n')
	if strings.TrimSpace(line) != o.command {
		return fmt.Errorf("%w: not confirmed", ErrRefused)
	}
	return nil
}
