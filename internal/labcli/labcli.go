// Package labcli is the `lab` command: up, down, status, exec and env for
// the lab clusters carotate is demonstrated and tested on.
package labcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/carotate/carotate/internal/lab"
	"github.com/carotate/carotate/internal/lab/agent"
)

// exitError carries a command's own exit code (from `lab exec`).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Main runs the lab command and returns its exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		fmt.Fprintf(stderr, "lab: %v\n", err)
		return 1
	}
	return 0
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	var stateDir string
	root := &cobra.Command{
		Use:           "lab",
		Short:         "Real kubeadm clusters on one Linux host, for carotate's demo and tests",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&stateDir, "state-dir", envOr("CAROTATE_LAB_DIR", "/var/lib/carotate-lab"),
		"directory that holds everything of the lab ($CAROTATE_LAB_DIR)")

	root.AddCommand(newUp(&stateDir), newDown(&stateDir), newStatus(&stateDir), newExec(&stateDir), newEnv(&stateDir), newAgent())
	return root
}

func newUp(stateDir *string) *cobra.Command {
	self, _ := os.Executable()
	o := lab.Options{Name: "lab"}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Stand up a cluster: kubeadm init, kubeadm join, kube-proxy, CoreDNS and the probe workloads",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.StateDir = *stateDir
			o.Progress = cmd.OutOrStdout()
			var err error
			if o.LabBinary, err = filepath.Abs(o.LabBinary); err != nil {
				return err
			}
			_, err = lab.Up(cmd.Context(), o)
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.ControlPlanes, "control-planes", 1, "number of control-plane nodes (more than one puts haproxy in front)")
	f.IntVar(&o.Workers, "workers", 2, "number of worker nodes")
	f.StringVar(&o.Name, "name", "lab", "lab name (1-8 letters and digits), for cgroups and interface names")
	f.StringVar(&o.Subnet, "subnet", "213.0", "node network 10.X.Y.0/24, given as X.Y")
	f.IntVar(&o.MaxPods, "max-pods", 0, "the kubelets' maxPods, 10 to 250 (0: the kubelet's 110)")
	f.StringVar(&o.Components, "components", envOr("CAROTATE_COMPONENTS", "/var/cache/carotate/components"),
		"directory of the built upstream binaries ($CAROTATE_COMPONENTS; hack/build-components)")
	f.StringVar(&o.ImageCache, "image-cache", envOr("CAROTATE_IMAGE_CACHE", "/var/cache/carotate/images"), "where built image tarballs are kept")
	f.StringVar(&o.LabBinary, "lab-binary", self, "this lab binary, which runs each node's agent")
	f.StringVar(&o.ProbeBinary, "probe-binary", filepath.Join(filepath.Dir(self), "probe"), "the static probe binary")
	return cmd
}

func newDown(stateDir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Tear the lab down completely (idempotent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return lab.Down(cmd.Context(), *stateDir, func(s string) { fmt.Fprintln(cmd.OutOrStdout(), "lab: "+s) })
		},
	}
}

func newExec(stateDir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "exec NODE -- COMMAND [ARG...]",
		Short: "Run a command inside a node",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := lab.Load(*stateDir)
			if err != nil {
				return err
			}
			c, err := l.ExecCommand(args[0], args[1:]...)
			if err != nil {
				return err
			}
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()
			if err := c.Run(); err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return exitError{ee.ExitCode()}
				}
				return err
			}
			return nil
		},
	}
}

func newEnv(stateDir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "env",
		Short: "Print what an operator needs to point carotate at the lab",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Load(*stateDir)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "export KUBECONFIG=%s\n", l.Kubeconfig())
			fmt.Fprintf(w, "export CAROTATE_SSH_USER=root\n")
			fmt.Fprintf(w, "export CAROTATE_SSH_KEY=%s\n", l.SSHKey())
			fmt.Fprintf(w, "export CAROTATE_SSH_KNOWN_HOSTS=%s\n", l.KnownHosts())
			fmt.Fprintf(w, "# control-plane endpoint: %s\n", l.Endpoint)
			for _, n := range l.Nodes {
				role := "worker"
				if n.ControlPlane {
					role = "control-plane"
				}
				fmt.Fprintf(w, "# node %-10s %-14s %s  (ssh -i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes root@%s)\n",
					n.Name, role, n.IP, l.SSHKey(), l.KnownHosts(), n.IP)
			}
			return nil
		},
	}
}

func newStatus(stateDir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the nodes, their addresses, and whether components and workloads are healthy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Load(*stateDir)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NODE\tROLE\tIP\tAGENT\tUNITS")
			for _, n := range l.Nodes {
				role := "worker"
				if n.ControlPlane {
					role = "control-plane"
				}
				units, err := l.Systemctl(n.Name, "list-units")
				agentState := fmt.Sprintf("pid %d", n.AgentPID)
				if err != nil {
					agentState = "down"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", n.Name, role, n.IP, agentState, unitSummary(units))
			}
			w.Flush()
			fmt.Fprintf(cmd.OutOrStdout(), "endpoint %s, kubeconfig %s\n", l.Endpoint, l.Kubeconfig())
			u := l.Usage()
			fmt.Fprintf(cmd.OutOrStdout(), "host: %d processes, %d MiB resident, %d MiB on disk in %s\n",
				u.Processes, u.RSS>>20, l.DiskUsage()>>20, l.StateDir)
			ctx, cancel := context.WithTimeout(cmd.Context(), 20*time.Second)
			defer cancel()
			h, err := l.CheckHealth(ctx)
			if err != nil {
				return fmt.Errorf("cluster: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster: %s\n", h)
			for _, n := range l.Nodes {
				for _, workload := range []string{lab.ProbeDaemonSet, lab.ProbeDeployment} {
					r, err := l.ProbeReport(n.Name, workload)
					if err != nil {
						fmt.Fprintf(cmd.OutOrStdout(), "probe %s on %s: %v\n", workload, n.Name, err)
						continue
					}
					fmt.Fprintf(cmd.OutOrStdout(), "probe %s on %s: %d ok, %d failed, %d failure windows\n", workload, n.Name, r.OK, r.Failed, len(r.Windows))
				}
			}
			return nil
		},
	}
}

func newAgent() *cobra.Command {
	var config string
	cmd := &cobra.Command{
		Use:    "agent",
		Short:  "Run a node's agent (started by lab up, inside the node's namespaces)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			return agent.Run(config, log)
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "agent config file")
	return cmd
}

// unitSummary turns the agent's "name state" lines into "name=state ...".
func unitSummary(listing string) string {
	var parts []string
	for _, line := range strings.Split(strings.TrimSpace(listing), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			parts = append(parts, f[0]+"="+f[1])
		}
	}
	return strings.Join(parts, " ")
}
