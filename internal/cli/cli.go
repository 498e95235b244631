// Package cli wires carotate's commands together. Each command is an options
// struct with Complete, Validate and Run, and writes through injected streams
// so that it can be tested without a terminal.
package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Version is carotate's version, set at build time with
// -ldflags "-X github.com/carotate/carotate/internal/cli.Version=…".
var Version = "v0.1.0-dev"

// Main runs carotate with args and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	root := NewRootCommand(stdout, stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	return 0
}

// NewRootCommand builds the carotate command tree.
func NewRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "carotate",
		Short:         "Rotate the certificate authorities of a kubeadm-style Kubernetes cluster",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newVersionCommand())
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print carotate's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "carotate %s\n", Version)
			return err
		},
	}
}
