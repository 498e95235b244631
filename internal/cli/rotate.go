package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/carotate/carotate/internal/check"
	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/inventory"
	"github.com/carotate/carotate/internal/lock"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/node"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/rotation"
	"github.com/carotate/carotate/internal/state"
	"github.com/carotate/carotate/internal/state/backup"
)

// Record phases besides the rotation's own phase names.
const (
	recordRolledBack = "rolled-back"
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
	f.StringVar(&o.BackupKeyFile, "backup-key", "", "file with the key that seals the backup (created 0600 if missing; default <state-dir>/<cluster>.backup-key)")
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

// session is one command's view of the cluster and its rotation.
type session struct {
	o       *RotateOptions
	cs      kubernetes.Interface
	cluster model.Cluster
	dir     *state.Dir // the cluster's directory: record and journal
	rec     state.Record
	fresh   bool // no rotation in progress: this run would start one
	rot     *rotation.Rotation
	nodes   []*rotation.Node
}

func (s *session) close() {
	for _, n := range s.nodes {
		if n.Exec != nil {
			n.Exec.Close()
		}
	}
}

// open gathers the cluster, finds the rotation in progress (or makes a new
// one), connects to every node and builds the material. It changes
// nothing on the cluster; it may create the state directory and the backup
// key file.
func (o *RotateOptions) open(ctx context.Context) (*session, error) {
	cfg, err := o.rotationAwareConfig()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	s := &session{o: o, cs: cs}
	sshDefaults := inventory.SSHDefaults{User: o.SSHUser, IdentityFiles: o.SSHKeys, KnownHostsFiles: o.SSHKnownHosts, Sudo: o.Sudo}
	if o.SSHPort != 0 {
		sshDefaults.Port = strconv.Itoa(o.SSHPort)
	}
	s.cluster, err = o.gather(ctx, ClusterAccess{Kubeconfig: o.Kubeconfig, Context: o.Context, Getenv: o.getenv, Config: cfg},
		inventory.Options{Inventory: o.inventory, SSH: sshDefaults, Now: o.now, Logger: o.logger})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIncomplete, err)
	}
	ks, err := cs.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read namespace kube-system (its uid names the cluster's state directory): %w", err)
	}
	clusterID := string(ks.UID)
	if s.dir, err = state.Open(o.StateDir, clusterID); err != nil {
		return nil, err
	}
	s.rec, err = s.dir.LoadRecord()
	switch {
	case errors.Is(err, state.ErrNoRecord):
		s.fresh = true
	case err != nil:
		return nil, err
	case s.rec.Phase == rotation.PhaseFinalize+"d" || s.rec.Phase == recordRolledBack:
		s.fresh = true
	}
	if s.fresh {
		s.rec = state.Record{RotationID: state.NewRotationID(), StartedAt: o.now(), ToolVersion: Version}
	}
	keyFile := o.BackupKeyFile
	if keyFile == "" {
		keyFile = filepath.Join(o.StateDir, clusterID+".backup-key")
	}
	key, created, err := backup.LoadOrCreateKey(keyFile)
	if err != nil {
		return nil, err
	}
	if created {
		fmt.Fprintf(o.ErrOut, "Created the backup key %s (0600). Keep it safe and apart from the state directory: without it the backup cannot be read.\n", keyFile)
	}
	rotDir, err := state.Open(s.dir.Path(), s.rec.RotationID)
	if err != nil {
		return nil, err
	}
	store := &rotation.Store{Dir: rotDir, Key: key}

	allow := map[string]bool{}
	for _, n := range o.AllowUnready {
		allow[n] = true
	}
	for _, n := range o.AllowUnready {
		if !hasNode(s.cluster, n) {
			return nil, fmt.Errorf("--allow-unready %s: the cluster has no node of that name (see `kubectl get nodes`)", n)
		}
	}
	connect := inventory.Connect(node.HostSSHEnv())
	var endpoints []string
	for _, mn := range s.cluster.Nodes {
		if mn.Skipped {
			continue
		}
		t, err := inventory.ResolveTarget(mn, sshDefaults, o.inventory)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("node %s: %w", mn.Name, err)
		}
		ex, err := connect(ctx, t)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%w: node %s: %w", ErrIncomplete, mn.Name, err)
		}
		n := &rotation.Node{Name: mn.Name, IP: mn.InternalIP, ControlPlane: inventory.IsControlPlane(mn), Exec: ex, AllowUnready: allow[mn.Name]}
		s.nodes = append(s.nodes, n)
		if n.ControlPlane {
			endpoints = append(endpoints, apiserverEndpoint(mn))
		}
	}
	if u, err := url.Parse(cfg.Host); err == nil && u.Host != "" && !contains(endpoints, u.Host) {
		endpoints = append(endpoints, u.Host)
	}

	var m *rotation.Material
	if !s.fresh && store.Saved() {
		m, err = store.Load(s.rec.RotationID)
	} else {
		imports, ierr := o.imports()
		if ierr != nil {
			s.close()
			return nil, ierr
		}
		m, err = rotation.NewMaterial(ctx, rotation.Source{RotationID: s.rec.RotationID, Nodes: s.nodes, Client: cs, Import: imports, Now: o.now()})
	}
	if err != nil {
		s.close()
		return nil, err
	}
	s.rot = &rotation.Rotation{M: m, Store: store, Nodes: s.nodes, Client: cs, Endpoints: endpoints,
		KubeletRestart: strings.Fields(o.KubeletRestartCommand), KubeletLog: strings.Fields(o.KubeletLogCommand),
		ReloadWait: o.ReloadWait, Clock: o.now, Log: o.logger}
	return s, nil
}

func hasNode(c model.Cluster, name string) bool {
	for _, n := range c.Nodes {
		if n.Name == name {
			return true
		}
	}
	return false
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// apiserverEndpoint is where a control-plane node's kube-apiserver listens,
// from its manifest (kubeadm's --advertise-address and --secure-port).
func apiserverEndpoint(n model.Node) string {
	host, port := n.InternalIP, "6443"
	for _, m := range n.Manifests {
		if m.Component != "kube-apiserver" {
			continue
		}
		if v, ok := m.Value("--advertise-address"); ok && v != "" {
			host = v
		}
		if v, ok := m.Value("--secure-port"); ok && v != "" {
			port = v
		}
	}
	return net.JoinHostPort(host, port)
}

// imports reads the CAs the operator brings, refusing a key that does not
// match before anything else happens.
func (o *RotateOptions) imports() (map[model.CAKind]*pki.CA, error) {
	out := map[model.CAKind]*pki.CA{}
	for _, in := range []struct {
		kind      model.CAKind
		cert, key string
		flag      string
	}{{model.ClusterCA, o.CACert, o.CAKey, "--ca-cert/--ca-key"}, {model.FrontProxyCA, o.FrontCACert, o.FrontCAKey, "--front-proxy-ca-cert/--front-proxy-ca-key"}} {
		if in.cert == "" {
			continue
		}
		certPEM, err := os.ReadFile(in.cert)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRefused, in.flag, err)
		}
		keyPEM, err := os.ReadFile(in.key)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRefused, in.flag, err)
		}
		ca, err := pki.ImportCA(certPEM, keyPEM, pki.ImportOptions{Now: o.now(), CertSource: in.cert, KeySource: in.key})
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRefused, in.flag, err)
		}
		out[in.kind] = ca
	}
	return out, nil
}

// preflight refuses to start (or resume) on what would make the rotation
// unsafe. A fresh rotation needs a clean bill from check; a resumed one
// only the findings it does not cause itself.
func (s *session) preflight() error {
	findings := check.Run(s.cluster, check.Options{Now: s.cluster.ObservedAt, ExpiryThreshold: check.DefaultExpiryThreshold, MaxClockSkew: check.DefaultMaxClockSkew})
	resumeBlocking := map[string]bool{"node-unreachable": true, "node-not-ready": true, "stray-manifest": true, "clock-skew": true, "ca-expired": true}
	var msgs []string
	for _, f := range findings {
		if f.Severity != check.Blocking {
			continue
		}
		if f.ID == "rotation-locked" {
			continue // the lock says who holds it, next
		}
		if f.ID == "node-not-ready" && contains(s.o.AllowUnready, strings.TrimPrefix(f.Subject, "node ")) {
			continue
		}
		if !s.fresh && !resumeBlocking[f.ID] {
			continue
		}
		msg := fmt.Sprintf("  %s: %s", f.Subject, f.Message)
		if f.ID == "node-not-ready" {
			msg += fmt.Sprintf("; bring it back, or pass --allow-unready %s to rotate without waiting for it", strings.TrimPrefix(f.Subject, "node "))
		}
		msgs = append(msgs, msg)
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%w: %d blocking finding(s):\n%s\nfix them (see `carotate check`) and run again", ErrRefused, len(msgs), strings.Join(msgs, "\n"))
	}
	return nil
}

// Run runs the command.
func (o *RotateOptions) Run(ctx context.Context) error {
	s, err := o.open(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	phases := s.rot.Phases()
	// done is how many phases the record says have finished. The next
	// phase may be part way: resume runs it again (its finished steps are
	// skipped) and rollback undoes it too. Phases already finished are never
	// applied again: their steps would take the nodes back a stage.
	done := phaseIndex(s.rec.Phase) + 1
	if s.fresh {
		done = 0
	}
	switch o.command {
	case "status":
		return s.status(ctx, phases)
	case "plan":
		if !s.fresh {
			fmt.Fprintf(o.Out, "Rotation %s is in progress (last finished phase: %s).\n", s.rec.RotationID, orNone(s.rec.Phase))
		}
		_, err := s.runner(nil).Plan(ctx, s.rot, phases[done:])
		return err
	case "rotate":
		if done >= 3 {
			fmt.Fprintf(o.Out, "Rotation %s has already switched to the new CAs; nothing to do. Run `carotate finalize` to distrust the old CAs, or `carotate rollback`.\n", s.rec.RotationID)
			return nil
		}
		last := 3
		if o.Until != "" {
			last = phaseIndex(o.Until) + 1
		}
		if done >= last {
			fmt.Fprintf(o.Out, "Rotation %s has already finished %s; nothing to do.\n", s.rec.RotationID, s.rec.Phase)
			return nil
		}
		return s.mutate(ctx, phases[done:last], false)
	case "finalize":
		if s.fresh || done != 3 {
			return fmt.Errorf("%w: finalize needs a rotation that has switched to the new CA (record: %s); run `carotate rotate` first", ErrRefused, orNone(s.rec.Phase))
		}
		return s.mutate(ctx, phases[3:], false)
	case "rollback":
		if s.fresh {
			return fmt.Errorf("%w: no rotation in progress to roll back (a finalized rotation cannot be rolled back; rotate again instead)", ErrRefused)
		}
		return s.mutate(ctx, phases[:min(done+1, len(phases))], true)
	}
	return fmt.Errorf("unknown command %q", o.command)
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

func (s *session) runner(j engine.Journal) *engine.Runner[*rotation.Rotation] {
	var rep engine.Reporter
	if s.o.Output == OutputJSON {
		rep = &engine.JSONReporter{W: s.o.Out}
	} else {
		rep = &engine.HumanReporter{W: s.o.Out}
	}
	isCP := map[string]bool{}
	for _, n := range s.nodes {
		isCP[n.Name] = n.ControlPlane
	}
	return &engine.Runner[*rotation.Rotation]{
		Reporter: engine.ReporterFunc(func(e engine.Event) {
			if j != nil { // a plan is not a phase beginning
				s.rot.Observe(e)
			}
			rep.Report(e)
		}),
		Journal:        j,
		Parallelism:    s.o.Parallelism,
		IsControlPlane: func(n string) bool { return isCP[n] },
		Now:            s.o.now,
	}
}

// mutate plans, asks, locks, then applies (or rolls back) phase by phase,
// recording each finished phase.
func (s *session) mutate(ctx context.Context, run []engine.Phase[*rotation.Rotation], rollback bool) error {
	o := s.o
	if err := s.preflight(); err != nil {
		return err
	}
	planPhases := run
	if rollback {
		planPhases = nil
	}
	if len(planPhases) > 0 && o.Output != OutputJSON {
		fmt.Fprintf(o.Out, "Plan for rotation %s:\n", s.rec.RotationID)
		if _, err := s.runner(nil).Plan(ctx, s.rot, planPhases); err != nil {
			return err
		}
	}
	if err := o.confirm(); err != nil {
		return err
	}
	if o.ForceUnlock != "" {
		if err := lock.ForceUnlock(ctx, s.cs, o.ForceUnlock); err != nil {
			return err
		}
		fmt.Fprintf(o.ErrOut, "Deleted the rotation lock held by %q.\n", o.ForceUnlock)
	}
	lk, err := lock.Acquire(ctx, s.cs, lock.CurrentHolder(s.rec.RotationID), 2*time.Minute)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	lctx, stopRenew := context.WithCancel(ctx)
	renewDone := make(chan error, 1)
	go func() { renewDone <- renewLoop(lctx, lk, 30*time.Second) }()
	defer func() {
		stopRenew()
		<-renewDone
		if err := lk.Release(context.WithoutCancel(ctx)); err != nil {
			o.logger.Warn("release the rotation lock", "err", err)
		}
	}()
	j, err := s.dir.OpenJournal(o.now)
	if err != nil {
		return err
	}
	defer j.Close()
	if s.fresh {
		s.rec.Phase = ""
		if err := s.saveRecord(); err != nil {
			return err
		}
	}
	r := s.runner(j)
	start := o.now()
	if rollback {
		if err := r.Rollback(lctx, s.rot, run); err != nil {
			return err
		}
		s.rec.Phase = recordRolledBack
		if err := s.saveRecord(); err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "Rolled back rotation %s in %s: the cluster uses the old CAs again. The backup stays in %s.\n", s.rec.RotationID, o.now().Sub(start).Round(time.Second), s.rot.Store.BackupPath())
		return nil
	}
	for i := range run {
		pstart := o.now()
		if err := r.Apply(lctx, s.rot, run[i:i+1]); err != nil {
			return fmt.Errorf("%w\nthe cluster is left at the last good phase (%s); fix the cause and run the same command again to resume, or `carotate rollback`", err, orNone(s.rec.Phase))
		}
		s.rec.Phase = run[i].Name
		if err := s.saveRecord(); err != nil {
			return err
		}
		o.logger.Info("phase done", "phase", run[i].Name, "took", o.now().Sub(pstart).Round(100*time.Millisecond))
	}
	if s.rec.Phase == rotation.PhaseFinalize {
		s.rec.Phase = rotation.PhaseFinalize + "d"
		if err := s.saveRecord(); err != nil {
			return err
		}
		newCA := s.rot.M.New[model.ClusterCA].Cert
		fmt.Fprintf(o.Out, "Finalized rotation %s in %s. The old CAs are distrusted everywhere.\nJoin new nodes with --discovery-token-ca-cert-hash %s\nThe backup stays in %s until you remove it.\n",
			s.rec.RotationID, o.now().Sub(start).Round(time.Second), pki.DiscoveryHash(newCA), s.rot.Store.BackupPath())
		return nil
	}
	if s.rec.Phase != rotation.PhaseSwitch {
		fmt.Fprintf(o.Out, "Rotation %s stopped after %s as asked (%s). Run `carotate rotate` to go on, or `carotate rollback`.\n", s.rec.RotationID, s.rec.Phase, o.now().Sub(start).Round(time.Second))
		return nil
	}
	fmt.Fprintf(o.Out, "Rotation %s has switched to the new CAs in %s. The old CAs are still trusted by every component.\n", s.rec.RotationID, o.now().Sub(start).Round(time.Second))
	fmt.Fprintf(o.Out, "Still depending on the old CA: client certificates issued outside carotate (user kubeconfigs, CSRs signed before the switch) and anything that pins the old CA.\n")
	fmt.Fprintf(o.Out, "When those are replaced, run: carotate finalize\n")
	return nil
}

func (s *session) saveRecord() error {
	s.rec.UpdatedAt = s.o.now()
	s.rec.CAs = map[model.CAKind]state.CAChange{}
	for _, k := range []model.CAKind{model.ClusterCA, model.FrontProxyCA} {
		s.rec.CAs[k] = state.CAChange{Old: pki.SPKIFingerprint(s.rot.M.Old[k].Cert), New: pki.SPKIFingerprint(s.rot.M.New[k].Cert)}
	}
	return s.dir.SaveRecord(s.rec)
}

func renewLoop(ctx context.Context, lk *lock.Lock, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := lk.Renew(ctx); err != nil && ctx.Err() == nil {
				return err
			}
		}
	}
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

// status shows each node's stage as observed, and the record and journal.
func (s *session) status(ctx context.Context, phases []engine.Phase[*rotation.Rotation]) error {
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
	want := s.rec.Phase
	if want == "" {
		want = "original"
	}
	var off []string
	for _, n := range names {
		fmt.Fprintf(o.Out, "  %-20s %s\n", n, obs[n])
		if !strings.Contains(obs[n], want) {
			off = append(off, n)
		}
	}
	if len(off) == 0 {
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
