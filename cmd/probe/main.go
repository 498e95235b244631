// Command probe is the carotate lab's availability probe. Run as a pod, it
// reads its namespace's kube-root-ca.crt through the in-cluster config
// every interval, each time over a new TLS connection, and logs one JSON
// record per line to stdout (the format is documented in package
// internal/lab/probe). It serves its counters on GET /stats and answers
// GET /healthz.
//
// Usage:
//
//	probe [--interval 500ms] [--timeout 3s] [--summary-every 5s] [--listen :8080]
//	probe idle [--listen :8080]
//	probe webhook [--listen :8443] [--cert /tls/tls.crt] [--key /tls/tls.key]
//
// "idle" only serves /healthz and waits: the image of the workload that a
// PodDisruptionBudget protects in drain tests. "webhook" is a validating
// admission webhook over TLS (POST /validate) that allows everything but
// objects annotated e2e.carotate.io/deny; it reads its certificate and
// key at each handshake.
//
// The pod needs POD_NAMESPACE (or the service account's namespace file),
// NODE_NAME and POD_NAME from the downward API, and a Role that allows get
// on configmaps/kube-root-ca.crt in its namespace. SIGTERM stops it
// cleanly: any open failure window is closed and a stop record written.
//
// Build it static, for an image FROM scratch: CGO_ENABLED=0 go build ./cmd/probe
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/carotate/carotate/internal/lab/probe"
	"k8s.io/client-go/rest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// options are the command line.
type options struct {
	idle         bool
	webhook      bool
	cert, key    string
	listen       string
	interval     time.Duration
	timeout      time.Duration
	summaryEvery time.Duration
}

// parseArgs reads the command line; usage errors are printed to stderr.
func parseArgs(args []string, stderr io.Writer) (options, error) {
	var opts options
	listen := ":8080"
	if len(args) > 0 && args[0] == "idle" {
		opts.idle, args = true, args[1:]
	}
	if len(args) > 0 && args[0] == "webhook" {
		opts.webhook, args, listen = true, args[1:], ":8443"
	}
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opts.listen, "listen", listen, "address for GET /stats and GET /healthz (webhook: POST /validate, over TLS)")
	fs.StringVar(&opts.cert, "cert", "/tls/tls.crt", "webhook: the serving certificate")
	fs.StringVar(&opts.key, "key", "/tls/tls.key", "webhook: its key")
	fs.DurationVar(&opts.interval, "interval", probe.DefaultInterval, "time between attempts")
	fs.DurationVar(&opts.timeout, "timeout", probe.DefaultTimeout, "timeout of one attempt")
	fs.DurationVar(&opts.summaryEvery, "summary-every", probe.DefaultSummaryEvery, "time between summary records")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q: the modes are \"idle\" and \"webhook\"", fs.Arg(0))
		fmt.Fprintln(stderr, err)
		return options{}, err
	}
	for name, d := range map[string]time.Duration{"interval": opts.interval, "timeout": opts.timeout, "summary-every": opts.summaryEvery} {
		if d <= 0 {
			err := fmt.Errorf("--%s %s: must be positive", name, d)
			fmt.Fprintln(stderr, err)
			return options{}, err
		}
	}
	return opts, nil
}

// run is main without the process: it returns the exit code. Records go
// to stdout; diagnostics go to stderr through slog.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	opts, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		logger.Error("cannot listen: check --listen", "listen", opts.listen, "err", err)
		return exitError
	}
	if opts.idle {
		serveHTTP(ctx, ln, probe.HealthMux(), logger)
		return exitOK
	}
	if opts.webhook {
		ln = tls.NewListener(ln, &tls.Config{GetCertificate: probe.FileCertificate(opts.cert, opts.key), MinVersion: tls.VersionTLS12})
		serveHTTP(ctx, ln, probe.WebhookMux(), logger)
		return exitOK
	}
	if err := runProbe(ctx, ln, getenv, stdout, logger, opts); err != nil {
		logger.Error("probe failed", "err", err)
		return exitError
	}
	return exitOK
}

// runProbe wires the in-cluster config into a Prober and serves its stats
// while it runs. It closes ln.
func runProbe(ctx context.Context, ln net.Listener, getenv func(string) string, stdout io.Writer, logger *slog.Logger, opts options) error {
	defer ln.Close()
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return fmt.Errorf("in-cluster config: run the probe in a pod with a service account token: %w", err)
	}
	namespace, err := probe.Namespace(getenv("POD_NAMESPACE"), probe.ServiceAccountNamespaceFile)
	if err != nil {
		return err
	}
	p, err := probe.New(cfg, stdout, probe.Options{
		Namespace:    namespace,
		Node:         getenv("NODE_NAME"),
		Pod:          getenv("POD_NAME"),
		Interval:     opts.interval,
		Timeout:      opts.timeout,
		SummaryEvery: opts.summaryEvery,
	})
	if err != nil {
		return err
	}
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		serveHTTP(httpCtx, ln, p.Handler(), logger)
	}()
	// /stats stays up until Run has written its last record.
	err = p.Run(ctx)
	stopHTTP()
	<-served
	return err
}

// serveHTTP serves h on ln until ctx ends, then shuts down gracefully.
// A failing HTTP server is logged, not fatal: the log on stdout is the
// probe's primary output.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	<-done
}
