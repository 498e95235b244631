package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/carotate/carotate/internal/clusterstatus"
	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/lock"
	"github.com/carotate/carotate/internal/rotation"
	"github.com/carotate/carotate/internal/workload"
)

// Defaults of the flags that say how to drive the nodes.
const (
	defaultParallelism    = 4
	defaultKubeletRestart = "systemctl restart kubelet"
	defaultKubeletLog     = "journalctl -u kubelet --since {since} --no-pager -o cat"
	defaultReloadWait     = 5*time.Minute + 15*time.Second
)

// NewRotationCommands builds plan, rotate, finalize, rollback and status.
func NewRotationCommands(env Env) []*cobra.Command {
	return []*cobra.Command{
		newPlanCommand(env),
		newRotateCommand(env),
		newRenewCommand(env),
		newFinalizeCommand(env),
		newRollbackCommand(env),
		newStatusCommand(env),
	}
}

// newCommand is a command built on o, whose flags AddFlags registers.
func newCommand(env Env, use, short, long string, o interface {
	options
	AddFlags(*pflag.FlagSet)
}) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Long: long, Args: cobra.NoArgs, RunE: runOptions(env, o)}
	o.AddFlags(cmd.Flags())
	return cmd
}

// rotationOptions are what every command on a rotation shares: the
// streams, the cluster, its nodes and the state directory. Each command's
// options embed them and add the flags that command uses.
type rotationOptions struct {
	IOStreams
	ClusterFlags
	NodeFlags
	StateFlags
	RootsFlag

	// Set by Complete.
	gather      Gatherer
	getenv      func(string) string
	now         func() time.Time
	logger      *slog.Logger
	interactive func() bool
	// liveProgress: stdout is a terminal, where a waiting step's line is
	// rewritten in place.
	liveProgress func() bool
	// term is that terminal, which the log shares: set with liveProgress.
	term *engine.LiveTerminal
	// answers reads what is typed at the prompts, one reader for all of
	// them, so that none swallows the next one's line.
	answers *bufio.Reader
}

// readAnswer reads one line typed at a prompt.
func (o *rotationOptions) readAnswer() string {
	if o.answers == nil {
		o.answers = bufio.NewReader(o.In)
	}
	line, _ := o.answers.ReadString('\n')
	return strings.TrimSpace(line)
}

func newRotationOptions(streams IOStreams) rotationOptions {
	return rotationOptions{IOStreams: streams, RootsFlag: newRootsFlag()}
}

// AddFlags registers the cluster, node-access, state and roots flags.
func (o *rotationOptions) AddFlags(f *pflag.FlagSet) {
	o.ClusterFlags.AddFlags(f)
	o.NodeFlags.AddFlags(f)
	o.StateFlags.AddFlags(f)
	o.RootsFlag.AddFlags(f)
}

// Complete fills defaults from the environment.
func (o *rotationOptions) Complete(env Env, flags *pflag.FlagSet) error {
	env = env.withDefaults()
	o.gather, o.getenv, o.now, o.logger = env.Gather, env.Getenv, env.Now, env.logger()
	o.interactive = env.IsTerminal
	o.liveProgress = env.StdoutIsTerminal
	if o.liveProgress != nil && o.liveProgress() && o.Out != nil {
		o.term = engine.NewLiveTerminal(o.Out)
		o.logger = env.loggerTo(o.term.Beside(env.Stderr))
	}
	if o.In == nil {
		o.In = env.Stdin
	}
	o.RootsFlag.Complete(flags)
	if err := o.NodeFlags.Complete(env, flags); err != nil {
		return err
	}
	return o.StateFlags.Complete(o.getenv)
}

// rotationSettings are what a command sets of the rotation it builds. A
// command without a flag for one leaves it at its default: it never runs
// the steps that read it.
type rotationSettings struct {
	imports        ImportFlags
	allowUnready   []string
	kubeletRestart string
	kubeletLog     string
	reloadWait     time.Duration
	// restartOldTokenPods lets finalize restart the pods whose tokens the
	// old service-account key signed.
	restartOldTokenPods bool
	// workloadConcurrency: how many workloads of a tier restart at once.
	workloadConcurrency int
	// certificateKey is kubeadm's, from --certificate-key-file.
	certificateKey []byte
	// renewLeaves and validity are renew's --leaves and --validity.
	renewLeaves bool
	validity    time.Duration
}

func defaultSettings() rotationSettings {
	return rotationSettings{kubeletRestart: defaultKubeletRestart, kubeletLog: defaultKubeletLog, reloadWait: defaultReloadWait}
}

// run is every command on a rotation: open its state, select from the
// record what req runs, take the lock if the command changes the cluster,
// open the cluster, and hand the session to do. A command with nothing to
// do, or one that is refused, returns before it takes the lock, gathers or
// connects to anything.
func (o *rotationOptions) run(ctx context.Context, req rotation.Request, set rotationSettings, forceUnlock string,
	do func(context.Context, *session, rotation.Selection) error) (err error) {
	s, err := o.openState(ctx, req.Command, set)
	if err != nil {
		return err
	}
	req.Roots = o.RootsFlag.roots
	sel, err := s.lc.Select(req)
	if err != nil {
		return err
	}
	if sel.Nothing != "" {
		fmt.Fprintln(o.Out, sel.Nothing)
		return nil
	}
	if req.Command.Mutates() {
		// Not :=, which would declare an err of this block: the deferred
		// Explain must change the err this function returns.
		var lk *rotation.Lock
		lk, err = rotation.TakeLock(ctx, s.lockCS, s.lc.Record.RotationID, rotation.LockOptions{
			ForceUnlock: forceUnlock, Progress: func(msg string) { fmt.Fprintln(o.ErrOut, msg) }, Log: o.logger})
		if err != nil {
			return err
		}
		defer lk.Release()
		defer func() { err = lk.Explain(err) }()
		s.lock, ctx = lk, lk.Context()
		rec := s.lc.Record
		s.pub = &clusterstatus.Publisher{Client: s.statusCS, Rotation: rec.RotationID, Roots: s.lc.Roots().Names(),
			Holder: lock.CurrentHolder(rec.RotationID).String(), StartedAt: rec.StartedAt, Now: o.now, Log: o.logger}
	}
	defer s.close()
	if err := s.openCluster(ctx); err != nil {
		return err
	}
	return do(ctx, s, sel)
}

// ChangeFlags are the flags of the commands that change the cluster:
// rotate, finalize and rollback.
type ChangeFlags struct {
	// Yes counts --yes: finalize needs a second one when it would lock
	// out client certificates issued outside carotate.
	Yes                   Confirmations
	ForceUnlock           string
	Output                string
	Parallelism           int
	WorkloadConcurrency   int
	AllowUnready          []string
	KubeletRestartCommand string
	// CertificateKeyFile holds kubeadm's certificate key; certificateKey
	// is what validate read from it.
	CertificateKeyFile string
	certificateKey     []byte
}

func newChangeFlags() ChangeFlags {
	return ChangeFlags{Output: OutputText, Parallelism: defaultParallelism, WorkloadConcurrency: workload.DefaultConcurrency,
		KubeletRestartCommand: defaultKubeletRestart}
}

// AddFlags registers the flags of a command that changes the cluster.
func (c *ChangeFlags) AddFlags(f *pflag.FlagSet) {
	f.VarPF(&c.Yes, "yes", "y", "do it without asking; finalize needs it twice (--yes --yes, or -yy) when it would lock out client certificates issued outside carotate").NoOptDefVal = "true"
	f.StringVar(&c.ForceUnlock, "force-unlock", c.ForceUnlock, "delete the rotation lock held by this holder (as the refusal names it) first; only once you made sure that process is gone")
	addOutputFlag(f, &c.Output)
	f.IntVar(&c.Parallelism, "parallelism", c.Parallelism, "how many worker nodes to change at once (control-plane nodes are always one at a time)")
	f.IntVar(&c.WorkloadConcurrency, "workload-concurrency", c.WorkloadConcurrency, "how many workloads to restart at once within a tier (kube-proxy and CNI, then DNS, then the rest), and how many bare pods to evict at once; each controller's maxUnavailable and maxSurge still hold")
	addAllowUnreadyFlag(f, &c.AllowUnready)
	f.StringVar(&c.KubeletRestartCommand, "kubelet-restart-command", c.KubeletRestartCommand, "command that restarts the kubelet on a node")
	f.StringVar(&c.CertificateKeyFile, "certificate-key-file", c.CertificateKeyFile, "file (mode 0600) holding kubeadm's certificate key (64 hex digits): switch and finalize then upload kubeadm-certs with the new CAs, encrypted with it, for `kubeadm join --control-plane --certificate-key` in the next 2 hours, instead of deleting it")
}

// validate refuses change flags that cannot work, and the shared flags
// through nodes and state, in the order the refusals have always come.
func (c *ChangeFlags) validate(o *rotationOptions, own ...error) error {
	errs := append([]error{validateOutput(c.Output)}, own...)
	if c.Parallelism < 1 {
		errs = append(errs, fmt.Errorf("--parallelism must be at least 1, got %d", c.Parallelism))
	}
	if c.WorkloadConcurrency < 1 {
		errs = append(errs, fmt.Errorf("--workload-concurrency must be at least 1, got %d", c.WorkloadConcurrency))
	}
	errs = append(errs, o.NodeFlags.Validate())
	if _, err := splitCommand("kubelet-restart-command", c.KubeletRestartCommand); err != nil {
		errs = append(errs, err)
	}
	if c.CertificateKeyFile != "" {
		key, err := loadCertificateKey(c.CertificateKeyFile)
		errs = append(errs, err)
		c.certificateKey = key
	}
	return errors.Join(append(errs, o.StateFlags.Validate(), o.RootsFlag.Validate())...)
}

// settings are the rotation settings the change flags give.
func (c *ChangeFlags) settings() rotationSettings {
	s := defaultSettings()
	s.allowUnready, s.kubeletRestart = c.AllowUnready, c.KubeletRestartCommand
	s.certificateKey = c.certificateKey
	s.workloadConcurrency = c.WorkloadConcurrency
	return s
}

func addOutputFlag(f *pflag.FlagSet, p *string) {
	f.StringVarP(p, "output", "o", *p, "progress format: text, json or yaml (one event per step)")
}

func addAllowUnreadyFlag(f *pflag.FlagSet, p *[]string) {
	f.StringArrayVar(p, "allow-unready", *p, "go on although NODE is NotReady; repeatable")
}

func addKubeletLogFlag(f *pflag.FlagSet, p *string) {
	f.StringVar(p, "kubelet-log-command", *p, "command that prints the kubelet's log since {since}")
}

func addReloadWaitFlag(f *pflag.FlagSet, p *time.Duration) {
	f.DurationVar(p, "reload-wait", *p, "how long kube-apiserver may take to re-read apiserver-kubelet-client.crt before finalize")
}

// Confirmations is a --yes that may be given more than once: each
// --yes (or --yes=true) adds one, --yes=false sets none.
type Confirmations int

func (c *Confirmations) String() string { return strconv.Itoa(int(*c)) }

// Set is called once per --yes on the command line.
func (c *Confirmations) Set(v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("want true or false, or no value")
	}
	if b {
		*c++
	} else {
		*c = 0
	}
	return nil
}

// Type is "bool", so that help shows --yes with no value.
func (c *Confirmations) Type() string { return "bool" }

// confirmOutside is finalize's second confirmation, needed when it would
// lock out n client certificates issued outside carotate: a second --yes,
// or "finalize" typed again on a terminal.
func (o *rotationOptions) confirmOutside(n, yes int, output string) error {
	if n == 0 || yes >= 2 {
		return nil
	}
	if o.interactive == nil || !o.interactive() || yes > 0 {
		what := fmt.Sprintf("the %d client certificates listed above; reissue them from the new CA, or pass --yes twice (--yes --yes) to lock them out", n)
		if n == 1 {
			what = "the client certificate listed above; reissue it from the new CA, or pass --yes twice (--yes --yes) to lock it out"
		}
		return fmt.Errorf("%w: finalize would lock out %s", ErrRefused, what)
	}
	prompt := o.Out
	if structured(output) {
		prompt = o.ErrOut
	}
	fmt.Fprintf(prompt, "Type %q again to lock out those %d client certificates: ", rotation.Finalize, n)
	if o.readAnswer() != string(rotation.Finalize) {
		return fmt.Errorf("%w: not confirmed", ErrRefused)
	}
	return nil
}

// confirm needs --yes, or the command's name typed on a terminal. With
// structured output the prompt goes to stderr, and no plan was shown
// above.
func (o *rotationOptions) confirm(command rotation.Command, yes bool, output string) error {
	if yes {
		return nil
	}
	if o.interactive == nil || !o.interactive() {
		switch {
		case command != rotation.Rollback && !structured(output):
			return fmt.Errorf("%w: %s changes the cluster; review the plan above and pass --yes", ErrRefused, command)
		case command == rotation.Rollback:
			return fmt.Errorf("%w: %s returns the cluster to where it was before the rotation; pass --yes", ErrRefused, command)
		default:
			return fmt.Errorf("%w: %s changes the cluster; review what it does with `carotate plan`, then pass --yes", ErrRefused, command)
		}
	}
	prompt := o.Out
	if structured(output) {
		prompt = o.ErrOut
	}
	fmt.Fprintf(prompt, "Type %q to go on: ", command)
	if o.readAnswer() != string(command) {
		return fmt.Errorf("%w: not confirmed", ErrRefused)
	}
	return nil
}

// loadCertificateKey reads kubeadm's certificate key from path, which
// group and others must not be able to read: the key opens the CA keys
// in kubeadm-certs.
func loadCertificateKey(path string) ([]byte, error) {
	flag := "--certificate-key-file " + path
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", flag)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o lets group or others read it, and the key opens the CA keys in kubeadm-certs; run chmod 600 on it", flag, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return rotation.ParseCertificateKey(flag, data)
}
