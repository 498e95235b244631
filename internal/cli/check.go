package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/carotate/carotate/internal/check"
	"github.com/carotate/carotate/internal/inventory"
	"github.com/carotate/carotate/internal/metrics"
)

// CheckOptions is `carotate check`: inventory the cluster, report every CA,
// where it lives and what it signed, and what stands in the way of a
// rotation. It only reads.
type CheckOptions struct {
	IOStreams
	ClusterFlags
	NodeFlags
	NodeConcurrency int

	Output          string
	ExpiryThreshold time.Duration
	MaxClockSkew    time.Duration

	// MetricsListen, when set, keeps check running: it serves Prometheus
	// metrics at http://MetricsListen/metrics and checks again every
	// MetricsInterval.
	MetricsListen   string
	MetricsInterval time.Duration

	// Set by Complete.
	gather Gatherer
	getenv func(string) string
	now    func() time.Time
	logger *slog.Logger
}

// NewCheckOptions returns the defaults.
func NewCheckOptions(streams IOStreams) *CheckOptions {
	return &CheckOptions{
		IOStreams:       streams,
		Output:          OutputText,
		ExpiryThreshold: check.DefaultExpiryThreshold,
		MaxClockSkew:    check.DefaultMaxClockSkew,
		NodeConcurrency: inventory.DefaultNodeConcurrency,
		MetricsInterval: defaultMetricsInterval,
	}
}

// NewCheckCommand builds `carotate check`.
func NewCheckCommand(env Env) *cobra.Command {
	o := NewCheckOptions(env.streams())
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
  carotate check --inventory nodes.yaml -o yaml`,
		Args: cobra.NoArgs,
		RunE: runOptions(env, o),
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// AddFlags registers the flags: kubectl's for the cluster, then node
// access, then the report.
func (o *CheckOptions) AddFlags(f *pflag.FlagSet) {
	o.ClusterFlags.AddFlags(f)
	o.NodeFlags.AddFlags(f)
	f.IntVar(&o.NodeConcurrency, "node-concurrency", o.NodeConcurrency, "how many nodes to inspect at once")
	f.StringVarP(&o.Output, "output", "o", o.Output, "report format: text, json or yaml")
	f.Var((*daysDuration)(&o.ExpiryThreshold), "expiry-threshold", "report certificates that expire sooner than this (e.g. 90d, 720h)")
	f.Var((*daysDuration)(&o.MaxClockSkew), "max-clock-skew", "report nodes whose clock is further off than this (e.g. 60s)")
	f.StringVar(&o.MetricsListen, "metrics-listen", o.MetricsListen, "serve Prometheus metrics (expiry of every certificate) at http://ADDR/metrics, checking again every --metrics-interval, until stopped")
	f.DurationVar(&o.MetricsInterval, "metrics-interval", o.MetricsInterval, "with --metrics-listen, how often to check again")
}

// Complete fills what the flags left unset from the environment and reads
// the inventory file.
func (o *CheckOptions) Complete(env Env, flags *pflag.FlagSet) error {
	env = env.withDefaults()
	o.gather, o.getenv, o.now, o.logger = env.Gather, env.Getenv, env.Now, env.logger()
	return o.NodeFlags.Complete(env, flags)
}

// Validate refuses flag values that cannot work, before anything is read.
func (o *CheckOptions) Validate() error {
	var errs []error
	if err := validateOutput(o.Output); err != nil {
		errs = append(errs, err)
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
	if err := o.NodeFlags.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(o.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-listen %q is not HOST:PORT (e.g. :9637 or 127.0.0.1:9637): %w", o.MetricsListen, err))
		}
		if o.MetricsInterval < minMetricsInterval {
			errs = append(errs, fmt.Errorf("--metrics-interval must be at least %s (each check reads every node), got %s", minMetricsInterval, o.MetricsInterval))
		}
	}
	return errors.Join(errs...)
}

// Run gathers, checks and reports. The report is written even when nodes
// could not be reached, so that the operator sees what was found; the
// returned error then says why the exit code is not 0.
func (o *CheckOptions) Run(ctx context.Context) error {
	if o.MetricsListen != "" {
		return o.serveMetrics(ctx)
	}
	_, err := o.checkOnce(ctx, o.Out)
	return err
}

// checkOnce gathers and checks, writes the report to out (nil: none) and
// returns the result with the error that sets the exit code.
func (o *CheckOptions) checkOnce(ctx context.Context, out io.Writer) (metrics.Result, error) {
	start := o.now()
	cluster, err := o.gather(ctx, o.access(o.getenv, o.logger), inventory.Options{
		Inventory: o.inventory, SSH: o.sshDefaults(), NodeConcurrency: o.NodeConcurrency, Now: o.now, Logger: o.logger,
	})
	if kerr := (*KubeconfigError)(nil); errors.As(err, &kerr) {
		return metrics.Result{Ended: o.now(), Took: o.now().Sub(start)}, kerr // bad input: exit 1
	}
	if err != nil {
		return metrics.Result{Ended: o.now(), Took: o.now().Sub(start)}, fmt.Errorf("%w: %w", ErrIncomplete, err)
	}
	o.logger.Info("inventory done", "nodes", len(cluster.Nodes), "cas", len(cluster.CAs), "took", o.now().Sub(start).Round(time.Millisecond))

	findings := check.Run(cluster, check.Options{Now: cluster.ObservedAt, ExpiryThreshold: o.ExpiryThreshold, MaxClockSkew: o.MaxClockSkew})
	res := metrics.Result{Cluster: cluster, Findings: findings, Ended: o.now(), Took: o.now().Sub(start)}
	if out != nil {
		report := NewReport(cluster, findings)
		if structured(o.Output) {
			err = writeDocument(out, o.Output, report)
		} else {
			err = writeText(out, report)
		}
		if err != nil {
			return res, fmt.Errorf("write the report: %w", err)
		}
	}

	var missed []string
	for _, n := range cluster.Nodes {
		if !n.Reachable && !n.Skipped {
			missed = append(missed, n.Name)
		}
	}
	if len(missed) > 0 {
		return res, fmt.Errorf("%w: node(s) %s could not be inspected; see the findings for why and what to do", ErrIncomplete, strings.Join(missed, ", "))
	}
	res.Complete = true
	if n := check.Count(findings, check.Blocking); n > 0 {
		return res, fmt.Errorf("%w: %d blocking finding(s); fix them before rotating", ErrBlocking, n)
	}
	return res, nil
}

// keepLastGathered: a check that gathered nothing (the API is away) shows
// the last expiries found, so that alerts on them do not go quiet, with
// carotate_check_up 0 saying they are old. It returns what to show and
// the last check that gathered anything.
func keepLastGathered(res metrics.Result, last *metrics.Result) (metrics.Result, *metrics.Result) {
	if res.Cluster.ObservedAt.IsZero() {
		if last != nil {
			res.Cluster, res.Findings = last.Cluster, last.Findings
		}
		return res, last
	}
	return res, &res
}

const (
	defaultMetricsInterval = 5 * time.Minute
	minMetricsInterval     = 10 * time.Second
)

// serveMetrics listens first (a taken address fails at once), then checks
// every MetricsInterval and serves the last result's metrics, until ctx
// ends; then it stops serving and returns nil. A check that fails shows as
// carotate_check_up 0 and is logged; the next one tries again.
func (o *CheckOptions) serveMetrics(ctx context.Context) error {
	ln, err := net.Listen("tcp", o.MetricsListen)
	if err != nil {
		return fmt.Errorf("--metrics-listen %s: %w; pick a free address", o.MetricsListen, err)
	}
	col := metrics.NewCollector(o.now)
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(o.ErrOut, "serving metrics on http://%s/metrics, checking every %s\n", ln.Addr(), o.MetricsInterval)

	tick := time.NewTicker(o.MetricsInterval)
	defer tick.Stop()
	var last *metrics.Result
	for ctx.Err() == nil {
		res, err := o.checkOnce(ctx, nil)
		if ctx.Err() != nil {
			break
		}
		if kerr := (*KubeconfigError)(nil); errors.As(err, &kerr) {
			srv.Close()
			return kerr // no later check can do better
		}
		res, last = keepLastGathered(res, last)
		col.Set(res)
		if err != nil && !errors.Is(err, ErrBlocking) {
			o.logger.Warn("check failed; its metrics say carotate_check_up 0", "err", err)
		} else {
			o.logger.Info("check done", "blocking", check.Count(res.Findings, check.Blocking), "took", res.Took.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
		case err := <-served:
			return fmt.Errorf("--metrics-listen %s: %w", o.MetricsListen, err)
		case <-tick.C:
		}
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		return fmt.Errorf("stop serving metrics: %w", err)
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
