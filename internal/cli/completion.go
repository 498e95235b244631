package cli

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/carotate/carotate/internal/rotation"
)

// completionTimeout bounds the API request that completes node names.
const completionTimeout = 5 * time.Second

// registerCompletions completes flag values in every command that has
// the flag (`carotate completion bash|zsh|fish|powershell` prints the
// script): formats, roots, phases, the kubeconfig's contexts and the
// cluster's nodes.
func registerCompletions(root *cobra.Command, env Env) {
	fixed := func(values ...string) cobra.CompletionFunc {
		return cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp)
	}
	byFlag := map[string]cobra.CompletionFunc{
		"output": fixed(OutputText, OutputJSON, OutputYAML),
		"until":  fixed(rotation.PhasePrepare, rotation.PhaseTrust, rotation.PhaseSwitch),
		"roots":  completeRoots,
		"context": func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
			return completeContexts(cmd, env)
		},
		"allow-unready": func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
			return completeNodes(cmd, env)
		},
	}
	root.RegisterFlagCompletionFunc("log-format", fixed(LogText, LogJSON))
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for name, fn := range byFlag {
			if c.Flags().Lookup(name) != nil {
				c.RegisterFlagCompletionFunc(name, fn)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completeRoots completes the last name of a comma-separated list, with
// the names not yet in it.
func completeRoots(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	done, _ := cutLast(toComplete, ",")
	have := strings.Split(done, ",")
	var out []string
	for _, r := range append(rotation.AllRoots().Names(), rotation.RootsAll) {
		if slices.Contains(have, r) || (done != "" && r == rotation.RootsAll) {
			continue
		}
		if done != "" {
			r = done + "," + r
		}
		out = append(out, r)
	}
	return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
}

// cutLast splits s at its last sep: "a,b,c" gives "a,b" and "c".
func cutLast(s, sep string) (before, after string) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):]
	}
	return "", s
}

// loadingRules find the kubeconfig from the command's --kubeconfig, as
// the command itself will.
func loadingRules(cmd *cobra.Command, env Env) *clientcmd.ClientConfigLoadingRules {
	a := ClusterAccess{Getenv: env.Getenv}
	if f := cmd.Flags().Lookup("kubeconfig"); f != nil {
		a.Kubeconfig = f.Value.String()
	}
	return kubeconfigRules(a)
}

// completeContexts lists the kubeconfig's contexts.
func completeContexts(cmd *cobra.Command, env Env) ([]string, cobra.ShellCompDirective) {
	cfg, err := loadingRules(cmd, env).Load()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var names []string
	for n := range cfg.Contexts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeNodes lists the cluster's nodes, with one request bounded by
// completionTimeout.
func completeNodes(cmd *cobra.Command, env Env) ([]string, cobra.ShellCompDirective) {
	var ctxName string
	if f := cmd.Flags().Lookup("context"); f != nil {
		ctxName = f.Value.String()
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loadingRules(cmd, env), &clientcmd.ConfigOverrides{CurrentContext: ctxName}).ClientConfig()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	cfg.Timeout = completionTimeout
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	defer cancel()
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	names := make([]string, 0, len(list.Items))
	for _, n := range list.Items {
		names = append(names, n.Name)
	}
	sort.Strings(names)
	return names, cobra.ShellCompDirectiveNoFileComp
}
