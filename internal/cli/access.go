package cli

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/carotate/carotate/internal/inventory"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/node"
)

// ClusterAccess says which cluster to talk to, kubectl-style.
type ClusterAccess struct {
	Kubeconfig string
	Context    string
	// Getenv is used for KUBECONFIG, so that tests never see the real one.
	Getenv func(string) string
	// Config, when set, is used as it is instead of loading the kubeconfig.
	Config *rest.Config
	// Logger, at -v 6, logs each request of a client built from the
	// kubeconfig (a Config given is used as it is).
	Logger *slog.Logger
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

// kubeconfigRules find the kubeconfig as kubectl does: --kubeconfig, then
// $KUBECONFIG (a list), then ~/.kube/config.
func kubeconfigRules(a ClusterAccess) *clientcmd.ClientConfigLoadingRules {
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
	return rules
}

// KubeconfigError is a kubeconfig that could not be loaded: bad input
// (exit 1), not a cluster that could not be inspected.
type KubeconfigError struct {
	Err      error
	Searched string // where it was looked for
}

func (e *KubeconfigError) Error() string {
	if clientcmd.IsEmptyConfig(e.Err) {
		// client-go's own text suggests KUBERNETES_MASTER, which nothing reads any more.
		return fmt.Sprintf("no kubeconfig: %s gave none; pass --kubeconfig (and --context) or set KUBECONFIG to an admin kubeconfig", e.Searched)
	}
	return fmt.Sprintf("load kubeconfig: %v; pass --kubeconfig (and --context) or set KUBECONFIG to an admin kubeconfig", e.Err)
}

func (e *KubeconfigError) Unwrap() error { return e.Err }

// searched says where kubeconfigRules looked, for an error.
func searched(a ClusterAccess, rules *clientcmd.ClientConfigLoadingRules) string {
	if a.Kubeconfig != "" {
		return "--kubeconfig " + a.Kubeconfig
	}
	return strings.Join(rules.Precedence, ", ")
}

// restConfig loads the client configuration the way kubectl does.
func restConfig(a ClusterAccess) (*rest.Config, error) {
	rules := kubeconfigRules(a)
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: a.Context}).ClientConfig()
	if err != nil {
		return nil, &KubeconfigError{Err: err, Searched: searched(a, rules)}
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
		logRequests(cfg, a.Logger)
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
