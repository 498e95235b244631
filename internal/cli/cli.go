// Package cli wires carotate's commands together. Each command is an options
// struct with Complete, Validate and Run, and writes through injected streams
// so that it can be tested without a terminal.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/carotate/carotate/internal/rotation"
)

// Exit codes. They are decided in one place, exitCode, from the error a
// command returns.
const (
	ExitOK         = 0
	ExitError      = 1 // bad usage or input, or anything unforeseen
	ExitBlocking   = 3 // the cluster has blocking findings
	ExitIncomplete = 4 // the API or a node could not be inspected
)

// ErrBlocking is returned (wrapped) when the report has blocking findings.
var ErrBlocking = errors.New("blocking findings")

// ErrIncomplete is returned (wrapped) when carotate could not inspect the
// whole cluster: the API could not be read, or a node could not be reached.
var ErrIncomplete = errors.New("could not inspect the whole cluster")

// ErrRefused is returned (wrapped) when a command is refused before it
// changes anything: by the record, preflight, the lock, the backup key or
// the operator.
var ErrRefused = rotation.ErrRefused

// IOStreams are a command's streams, as kubectl's genericiooptions has
// them: In is read for a typed confirmation, Out gets the report or the
// progress, ErrOut diagnostics.
type IOStreams struct {
	In          io.Reader
	Out, ErrOut io.Writer
}

// Env is everything a command touches outside itself. Main fills it from
// the process; tests inject their own.
type Env struct {
	Stdout, Stderr io.Writer
	// Stdin is read for a typed confirmation when IsTerminal says so.
	Stdin      io.Reader
	IsTerminal func() bool
	// StdoutIsTerminal says whether progress may rewrite a line in place
	// to show what a step waits for.
	StdoutIsTerminal func() bool
	// Getenv reads the environment (CAROTATE_SSH_*, KUBECONFIG).
	Getenv func(string) string
	// Now is the clock.
	Now func() time.Time
	// Gather observes the cluster; DefaultGather when nil.
	Gather Gatherer
	// Program is the name help shows: "carotate", or "kubectl carotate"
	// when kubectl runs the binary as its plugin (see ProgramName).
	Program string
	// log holds the root's -v and --log-format, which every command's
	// logger follows; NewRootCommand sets it.
	log *LogFlags
}

// Main runs carotate with args and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if s, ok := <-sigs; ok {
			cancel(&SignalError{Signal: s})
		}
	}()
	return Execute(ctx, args, Env{Stdout: stdout, Stderr: stderr, Stdin: os.Stdin, IsTerminal: stdinIsTerminal,
		StdoutIsTerminal: func() bool { return term.IsTerminal(int(os.Stdout.Fd())) }, Getenv: os.Getenv, Now: time.Now, Program: ProgramName(os.Args[0])})
}

// ProgramName is what carotate is called when run as argv0: kubectl runs
// a plugin as kubectl-NAME on $PATH, and its help then reads "kubectl
// carotate" (bin/kubectl-carotate, which `make build` links).
func ProgramName(argv0 string) string {
	if strings.TrimSuffix(filepath.Base(argv0), ".exe") == "kubectl-carotate" {
		return "kubectl carotate"
	}
	return "carotate"
}

// SignalError is why a run stopped when a signal stopped it: the error a
// cancelled step returns says only "context canceled".
type SignalError struct{ Signal os.Signal }

func (e *SignalError) Error() string {
	return fmt.Sprintf("stopped by %s; run the same command again to resume", e.Signal)
}

// Execute runs carotate with args in env and returns the exit code: the
// single place where errors become exit codes.
func Execute(ctx context.Context, args []string, env Env) int {
	env = env.withDefaults()
	root := NewRootCommand(env)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(err, cause) && !errors.Is(cause, context.Canceled) {
		err = fmt.Errorf("%w\n%w", err, cause)
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "error: %v\n", err)
	}
	return exitCode(err)
}

func exitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrIncomplete):
		return ExitIncomplete
	case errors.Is(err, ErrBlocking), errors.Is(err, ErrRefused):
		return ExitBlocking
	default:
		return ExitError
	}
}

func (e Env) withDefaults() Env {
	if e.Stdout == nil {
		e.Stdout = io.Discard
	}
	if e.Stderr == nil {
		e.Stderr = io.Discard
	}
	if e.Getenv == nil {
		e.Getenv = func(string) string { return "" }
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.Gather == nil {
		e.Gather = DefaultGather
	}
	if e.Program == "" {
		e.Program = "carotate"
	}
	if e.log == nil {
		e.log = &LogFlags{Format: LogText}
	}
	return e
}

func (e Env) streams() IOStreams { return IOStreams{In: e.Stdin, Out: e.Stdout, ErrOut: e.Stderr} }

// logger writes diagnostics to stderr; the report goes to stdout.
func (e Env) logger() *slog.Logger { return e.loggerTo(e.Stderr) }

// loggerTo is the logger of the flags, writing to w.
func (e Env) loggerTo(w io.Writer) *slog.Logger {
	if e.log == nil {
		return (&LogFlags{Format: LogText}).Logger(w)
	}
	return e.log.Logger(w)
}

// NewRootCommand builds the carotate command tree.
func NewRootCommand(env Env) *cobra.Command {
	env = env.withDefaults()
	root := &cobra.Command{
		Use:           "carotate",
		Short:         "Rotate the certificate authorities of a kubeadm-style Kubernetes cluster",
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: env.Program},
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return env.log.Validate()
		},
	}
	env.log.AddFlags(root.PersistentFlags())
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.AddCommand(newVersionCommand())
	root.AddCommand(NewCheckCommand(env))
	root.AddCommand(NewRotationCommands(env)...)
	registerCompletions(root, env)
	return root
}

// stdinIsTerminal: a terminal, not merely a character device (/dev/null
// is one, and a cron job's stdin must never count as an operator typing).
func stdinIsTerminal() bool {
	return term.IsTerminal(int(os.Stdin.Fd()))
}

// options is a command in kubectl's shape: Complete fills defaults from the
// environment, Validate refuses bad flags before anything is contacted,
// Run does the work.
type options interface {
	Complete(env Env, flags *pflag.FlagSet) error
	Validate() error
	Run(ctx context.Context) error
}

// runOptions is the RunE of a command built on o.
func runOptions(env Env, o options) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if err := o.Complete(env, cmd.Flags()); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return err
		}
		return o.Run(cmd.Context())
	}
}
