package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/carotate/carotate/internal/check"
	"github.com/carotate/carotate/internal/inventory"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/node"
)

// Environment variables that give node-access defaults (`lab env` prints
// them); a flag on the command line wins.
const (
	EnvSSHUser       = "CAROTATE_SSH_USER"
	EnvSSHKey        = "CAROTATE_SSH_KEY"         // one path, or several separated by ':'
	EnvSSHKnownHosts = "CAROTATE_SSH_KNOWN_HOSTS" // likewise
)

// Output formats.
const (
	OutputText = "text"
	OutputJSON = "json"
)

// ClusterAccess says which cluster to talk to, kubectl-style.
type ClusterAccess struct {
	Kubeconfig string
	Context    string
	// Getenv is used for KUBECONFIG, so that tests never see the real one.
	Getenv func(string) string
	// Config, when set, is used as it is instead of loading the kubeconfig.
	Config *rest.Config
}

// Gatherer observes the cluster. DefaultGather connects for real; tests
// inject a fixture.
type Gatherer func(ctx context.Context, access ClusterAccess, opts inventory.Options) (model.Cluster, error)

// DefaultGather builds the clients from the kubeconfig, as kubectl does,
// and runs inventory.Gather with SSH (or local) node access.
func DefaultGather(ctx context.Context, access ClusterAccess, opts inventory.Options) (model.Cluster, error) {
	cs, dyn, err := newClients(access)
	if err != nil {
		return model.Cluster{}, err
	}
	opts.Clientset, opts.Dynamic = cs, dyn
	if opts.Connect == nil {
		opts.Connect = inventory.Connect(node.HostSSHEnv())
	}
	return inventory.Gather(ctx, opts)
}

// restConfig loads the client configuration the way kubectl does.
func restConfig(a ClusterAccess) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.Precedence = nil
	if a.Getenv != nil {
		if v := a.Getenv(clientcmd.RecommendedConfigPathEnvVar); v != "" {
			rules.Precedence = filepath.SplitList(v)
		}
	}
	if len(rules.Precedence) == 0 {
		rules.Precedence = []string{clientcmd.RecommendedHomeFile}
	}
	rules.ExplicitPath = a.Kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: a.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w; pass --kubeconfig (and --context) or set KUBECONFIG to an admin kubeconfig", err)
	}
	cfg.UserAgent = "carotate/" + Version
	return cfg, nil
}

func newClients(a ClusterAccess) (kubernetes.Interface, dynamic.Interface, error) {
	cfg := a.Config
	if cfg == nil {
		var err error
		if cfg, err = restConfig(a); err != nil {
			return nil, nil, err
		}
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("dynamic client: %w", err)
	}
	return cs, dyn, nil
}

// CheckOptions is `carotate check`: inventory the cluster, report every CA,
// where it lives and what it signed, and what stands in the way of a
// rotation. It only reads.
type CheckOptions struct {
	Out, ErrOut io.Writer

	Kubeconfig string
	Context    string

	SSHUser         string
	SSHKeys         []string
	SSHKnownHosts   []string
	SSHPort         int
	Sudo            bool
	InventoryFile   string
	NodeConcurrency int

	Output          string
	ExpiryThreshold time.Duration
	MaxClockSkew    time.Duration

	// Set by Complete.
	inventory *inventory.File
	gather    Gatherer
	getenv    func(string) string
	now       func() time.Time
	logger    *slog.Logger
}

// NewCheckOptions returns the defaults.
func NewCheckOptions(out, errOut io.Writer) *CheckOptions {
	return &CheckOptions{
		Out: out, ErrOut: errOut,
		Output:          OutputText,
		ExpiryThreshold: check.DefaultExpiryThreshold,
		MaxClockSkew:    check.DefaultMaxClockSkew,
		NodeConcurrency: inventory.DefaultNodeConcurrency,
	}
}

// NewCheckCommand builds `carotate check`.
func NewCheckCommand(env Env) *cobra.Command {
	o := NewCheckOptions(env.Stdout, env.Stderr)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Inventory every CA, certificate and trust reference, and report what blocks a rotation (read-only)",
		Long: `check reads the cluster through the API and every node through SSH (or locally),
and reports every CA with its expiry, every certificate and kubeconfig per node
with its issuer and expiry, where each CA is referenced, and findings with the
action to take. It changes nothing.

Exit codes: 0 no blocking findings, 3 blocking findings, 4 the API or a node
could not be inspected, 1 bad usage.`,
		Example: `  # with the lab's settings
  eval "$(lab env)"; carotate check
  carotate check --kubeconfig admin.conf --ssh-user ubuntu --sudo --ssh-key ~/.ssh/id_ed25519
  carotate check --inventory nodes.yaml --output json`,
		Args: cobra.NoArgs,
		RunE: runOptions(env, o),
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// AddFlags registers the flags: kubectl's for the cluster, then node
// access, then the report.
func (o *CheckOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	f.StringVar(&o.Context, "context", o.Context, "the kubeconfig context to use")
	f.StringVar(&o.SSHUser, "ssh-user", o.SSHUser, "SSH login on the nodes (default: $"+EnvSSHUser+", ~/.ssh/config, then your user)")
	f.StringArrayVar(&o.SSHKeys, "ssh-key", o.SSHKeys, "SSH private key file; repeatable (default: $"+EnvSSHKey+", ~/.ssh/config, the agent)")
	f.StringArrayVar(&o.SSHKnownHosts, "ssh-known-hosts", o.SSHKnownHosts, "known_hosts file the nodes' host keys are checked against; repeatable (default: $"+EnvSSHKnownHosts+", then ~/.ssh/known_hosts)")
	f.IntVar(&o.SSHPort, "ssh-port", o.SSHPort, "SSH port on the nodes (default: ~/.ssh/config, then 22)")
	f.BoolVar(&o.Sudo, "sudo", o.Sudo, "run commands on the nodes through sudo -n, for a login that is not root")
	f.StringVar(&o.InventoryFile, "inventory", o.InventoryFile, "YAML file overriding address, user, port, executor (ssh|local) and sudo per node, or skipping nodes")
	f.IntVar(&o.NodeConcurrency, "node-concurrency", o.NodeConcurrency, "how many nodes to inspect at once")
	f.StringVarP(&o.Output, "output", "o", o.Output, "report format: text or json")
	f.Var((*daysDuration)(&o.ExpiryThreshold), "expiry-threshold", "report certificates that expire sooner than this (e.g. 90d, 720h)")
	f.Var((*daysDuration)(&o.MaxClockSkew), "max-clock-skew", "report nodes whose clock is further off than this (e.g. 60s)")
}

// Complete fills what the flags left unset from the environment and reads
// the inventory file.
func (o *CheckOptions) Complete(env Env, flags *pflag.FlagSet) error {
	env = env.withDefaults()
	o.gather, o.getenv, o.now, o.logger = env.Gather, env.Getenv, env.Now, env.logger()
	var err error
	if o.inventory, err = nodeAccessDefaults(env, flags, &o.SSHUser, &o.SSHKeys, &o.SSHKnownHosts, o.InventoryFile); err != nil {
		return err
	}
	return nil
}

// nodeAccessDefaults fills the SSH settings the command line left unset
// from the environment, and reads the inventory file if one is named.
func nodeAccessDefaults(env Env, flags *pflag.FlagSet, user *string, keys, knownHosts *[]string, inventoryFile string) (*inventory.File, error) {
	if !flags.Changed("ssh-user") {
		*user = env.Getenv(EnvSSHUser)
	}
	if !flags.Changed("ssh-key") {
		*keys = splitPathList(env.Getenv(EnvSSHKey))
	}
	if !flags.Changed("ssh-known-hosts") {
		*knownHosts = splitPathList(env.Getenv(EnvSSHKnownHosts))
	}
	if inventoryFile == "" {
		return nil, nil
	}
	f, err := inventory.LoadFile(inventoryFile)
	if err != nil {
		return nil, fmt.Errorf("--inventory: %w", err)
	}
	return f, nil
}

func splitPathList(s string) []string {
	var out []string
	for _, p := range filepath.SplitList(s) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Validate refuses flag values that cannot work, before anything is read.
func (o *CheckOptions) Validate() error {
	var errs []error
	if o.Output != OutputText && o.Output != OutputJSON {
		errs = append(errs, fmt.Errorf("--output %q is not one of %s or %s", o.Output, OutputText, OutputJSON))
	}
	if o.ExpiryThreshold <= 0 {
		errs = append(errs, fmt.Errorf("--expiry-threshold must be positive, got %s", o.ExpiryThreshold))
	}
	if o.MaxClockSkew <= 0 {
		errs = append(errs, fmt.Errorf("--max-clock-skew must be positive, got %s", o.MaxClockSkew))
	}
	if o.NodeConcurrency < 1 {
		errs = append(errs, fmt.Errorf("--node-concurrency must be at least 1, got %d", o.NodeConcurrency))
	}
	if o.SSHPort < 0 || o.SSHPort > 65535 {
		errs = append(errs, fmt.Errorf("--ssh-port %d is out of range 1-65535", o.SSHPort))
	}
	return errors.Join(errs...)
}

// Run gathers, checks and reports. The report is written even when nodes
// could not be reached, so that the operator sees what was found; the
// returned error then says why the exit code is not 0.
func (o *CheckOptions) Run(ctx context.Context) error {
	sshDefaults := inventory.SSHDefaults{User: o.SSHUser, IdentityFiles: o.SSHKeys, KnownHostsFiles: o.SSHKnownHosts, Sudo: o.Sudo}
	if o.SSHPort != 0 {
		sshDefaults.Port = strconv.Itoa(o.SSHPort)
	}
	start := o.now()
	cluster, err := o.gather(ctx, ClusterAccess{Kubeconfig: o.Kubeconfig, Context: o.Context, Getenv: o.getenv}, inventory.Options{
		Inventory: o.inventory, SSH: sshDefaults, NodeConcurrency: o.NodeConcurrency, Now: o.now, Logger: o.logger,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIncomplete, err)
	}
	o.logger.Info("inventory done", "nodes", len(cluster.Nodes), "cas", len(cluster.CAs), "took", o.now().Sub(start).Round(time.Millisecond))

	findings := check.Run(cluster, check.Options{Now: cluster.ObservedAt, ExpiryThreshold: o.ExpiryThreshold, MaxClockSkew: o.MaxClockSkew})
	report := NewReport(cluster, findings)
	switch o.Output {
	case OutputJSON:
		err = writeJSON(o.Out, report)
	default:
		err = writeText(o.Out, report)
	}
	if err != nil {
		return fmt.Errorf("write the report: %w", err)
	}

	var missed []string
	for _, n := range cluster.Nodes {
		if !n.Reachable && !n.Skipped {
			missed = append(missed, n.Name)
		}
	}
	if len(missed) > 0 {
		return fmt.Errorf("%w: node(s) %s could not be inspected; see the findings for why and what to do", ErrIncomplete, strings.Join(missed, ", "))
	}
	if n := check.Count(findings, check.Blocking); n > 0 {
		return fmt.Errorf("%w: %d blocking finding(s); fix them before rotating", ErrBlocking, n)
	}
	return nil
}

// daysDuration is a time.Duration flag that also takes whole days ("90d"),
// since certificate lifetimes are thought of in days.
type daysDuration time.Duration

func (d *daysDuration) String() string {
	v := time.Duration(*d)
	if v > 0 && v%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(v/(24*time.Hour)), 10) + "d"
	}
	return v.String()
}

func (d *daysDuration) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseUint(n, 10, 32)
		if err != nil {
			return fmt.Errorf("%q is not a number of days like 90d", s)
		}
		*d = daysDuration(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration like 90d, 720h or 60s", s)
	}
	*d = daysDuration(v)
	return nil
}

func (d *daysDuration) Type() string { return "duration" }
