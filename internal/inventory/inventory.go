// Package inventory gathers carotate's picture of a cluster: the nodes the
// API lists, what each node holds (through internal/inspect, over one
// node.Executor per node) and every API object that carries or names a CA,
// assembled into a model.Cluster.
//
// Every side effect is a seam in Options: the clientsets, how a node is
// connected to, and the clock. Gather only reads.
package inventory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/carotate/carotate/internal/inspect"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/node"
)

// DefaultNodeConcurrency bounds how many nodes are inspected at once.
const DefaultNodeConcurrency = 8

// SSHDefaults are the node-access settings from the command line; an
// inventory file entry overrides them per node.
type SSHDefaults struct {
	User            string
	IdentityFiles   []string
	KnownHostsFiles []string
	// Port is used when neither the inventory file nor ~/.ssh/config gives
	// one; empty for 22.
	Port string
	Sudo bool
	// Jump are the jump hosts to every node (--ssh-jump): nil to follow
	// ~/.ssh/config's ProxyJump, empty to go direct.
	Jump []node.SSHConfig
}

// Target says how to reach one node, resolved from the defaults and the
// inventory file.
type Target struct {
	Node string
	// Executor is ExecutorSSH or ExecutorLocal.
	Executor string
	// SSH is set for ExecutorSSH, not yet completed from ~/.ssh/config.
	SSH node.SSHConfig
}

// ConnectFunc opens an executor for a target. Tests inject one; Connect
// is the real thing.
type ConnectFunc func(ctx context.Context, t Target) (node.Executor, error)

// Connect returns the real ConnectFunc: the local executor rooted at "/",
// or SSH completed from env (~/.ssh/config, agent) with host keys always
// verified.
func Connect(env node.SSHEnv) ConnectFunc {
	return func(ctx context.Context, t Target) (node.Executor, error) {
		if t.Executor == ExecutorLocal {
			return node.NewLocal(t.Node, "/")
		}
		cfg, err := t.SSH.Complete(env)
		if err != nil {
			return nil, err
		}
		return node.DialSSH(ctx, cfg)
	}
}

// Options are Gather's inputs and seams.
type Options struct {
	Clientset kubernetes.Interface
	Dynamic   dynamic.Interface
	// Inventory is the parsed inventory file; nil for none.
	Inventory *File
	SSH       SSHDefaults
	Connect   ConnectFunc
	// NodeConcurrency bounds parallel node inspections; 0 for the default.
	NodeConcurrency int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Inspect defaults to inspect.Node.
	Inspect func(ctx context.Context, ex node.Executor, opts inspect.Options) model.Node
	// Logger receives progress; slog.Default() when nil.
	Logger *slog.Logger
}

// Gather observes the whole cluster:
//
//  1. list the nodes from the API;
//  2. resolve how to reach each (defaults, then the inventory file);
//  3. connect to and inspect the nodes in parallel, up to NodeConcurrency;
//     a node that cannot be reached, or whose host key is unknown, is
//     recorded with Reachable=false and the error, and the others go on;
//  4. read the API objects that carry or name a CA;
//  5. assemble the model.
//
// It fails only when the API cannot be read or the inventory file names a
// node the cluster does not have.
func Gather(ctx context.Context, o Options) (model.Cluster, error) {
	o = o.withDefaults()
	log := o.Logger
	nodes, err := DiscoverNodes(ctx, o.Clientset)
	if err != nil {
		return model.Cluster{}, err
	}
	if err := checkInventoryNames(o.Inventory, nodes); err != nil {
		return model.Cluster{}, err
	}
	log.Info("found nodes", "count", len(nodes))

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.NodeConcurrency)
	for i := range nodes {
		if e, ok := o.Inventory.entry(nodes[i].Name); ok && e.Skip {
			nodes[i].Skipped = true
			log.Info("skipping node, as the inventory file says", "node", nodes[i].Name, "file", o.Inventory.Source)
			continue
		}
		g.Go(func() error {
			nodes[i] = inspectNode(gctx, o, nodes[i])
			return nil
		})
	}
	_ = g.Wait() // the goroutines record their failures in the nodes

	log.Info("reading API objects")
	api, err := GatherAPI(ctx, o.Clientset, o.Dynamic)
	if err != nil {
		return model.Cluster{}, err
	}
	return inspect.Assemble(nodes, api, o.Now()), nil
}

func (o Options) withDefaults() Options {
	if o.NodeConcurrency <= 0 {
		o.NodeConcurrency = DefaultNodeConcurrency
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Inspect == nil {
		o.Inspect = inspect.Node
	}
	if o.Connect == nil {
		o.Connect = Connect(node.HostSSHEnv())
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// inspectNode connects to one node and inspects it, keeping what the API
// said about it (roles, address, readiness).
func inspectNode(ctx context.Context, o Options, discovered model.Node) model.Node {
	start := o.Now()
	t, err := ResolveTarget(discovered, o.SSH, o.Inventory)
	if err != nil {
		return unreachable(discovered, "", err)
	}
	o.Logger.Debug("connecting to node", "node", discovered.Name, "executor", t.Executor, "address", t.SSH.Address, "user", t.SSH.User)
	ex, err := o.Connect(ctx, t)
	if err == nil {
		o.Logger.Debug("connected to node", "node", discovered.Name, "took", o.Now().Sub(start).Round(time.Millisecond))
	}
	if err != nil {
		o.Logger.Warn("node unreachable", "node", discovered.Name, "executor", t.Executor, "err", err)
		return unreachable(discovered, t.Executor, err)
	}
	defer ex.Close()
	n := o.Inspect(ctx, ex, inspect.Options{Name: discovered.Name, Now: o.Now})
	n.Name = discovered.Name
	n.Roles, n.InternalIP, n.Ready = discovered.Roles, discovered.InternalIP, discovered.Ready
	n.Executor = t.Executor
	o.Logger.Info("inspected node", "node", n.Name, "executor", n.Executor, "reachable", n.Reachable,
		"files", len(n.Files), "took", o.Now().Sub(start).Round(time.Millisecond))
	return n
}

func unreachable(n model.Node, executor string, err error) model.Node {
	n.Reachable = false
	n.Executor = executor
	n.Error = fmt.Sprintf("node %s could not be reached: %v", n.Name, err)
	return n
}

// ResolveTarget says how to reach node n: SSH to its InternalIP with the
// defaults, unless the inventory file says otherwise.
func ResolveTarget(n model.Node, d SSHDefaults, inv *File) (Target, error) {
	e, _ := inv.entry(n.Name)
	if e.Executor == ExecutorLocal {
		return Target{Node: n.Name, Executor: ExecutorLocal}, nil
	}
	cfg := node.SSHConfig{
		Name:            n.Name,
		User:            d.User,
		IdentityFiles:   append([]string(nil), d.IdentityFiles...),
		KnownHostsFiles: append([]string(nil), d.KnownHostsFiles...),
		Sudo:            d.Sudo,
	}
	jump := d.Jump
	if e.Jump != "" {
		hops, err := node.ParseJump(e.Jump) // checked by LoadFile
		if err != nil {
			return Target{}, fmt.Errorf("inventory jump %q: %w", e.Jump, err)
		}
		jump = append([]node.SSHConfig{}, hops...) // none: empty, not nil
	}
	if jump != nil {
		// A copy per node: completing it fills each hop in place.
		cfg.Jump = append(make([]node.SSHConfig, 0, len(jump)), jump...)
		for i := range cfg.Jump {
			// --ssh-key and --ssh-known-hosts serve the hops too; the
			// login is the hop's own (ssh -J's user@, ~/.ssh/config).
			if len(cfg.Jump[i].IdentityFiles) == 0 {
				cfg.Jump[i].IdentityFiles = append([]string(nil), d.IdentityFiles...)
			}
			if len(cfg.Jump[i].KnownHostsFiles) == 0 {
				cfg.Jump[i].KnownHostsFiles = append([]string(nil), d.KnownHostsFiles...)
			}
		}
	}
	host, port := n.InternalIP, d.Port
	if e.Address != "" {
		host = e.Address
		if h, p, err := net.SplitHostPort(e.Address); err == nil {
			host, port = h, p
		}
	}
	if e.Port != 0 {
		port = strconv.Itoa(e.Port)
	}
	if e.User != "" {
		cfg.User = e.User
	}
	if e.Sudo != nil {
		cfg.Sudo = *e.Sudo
	}
	if host == "" {
		return Target{}, errors.New("the API lists no InternalIP for it; give its address in an inventory file (--inventory)")
	}
	cfg.Address = host
	if port != "" {
		cfg.Address = net.JoinHostPort(host, port)
	}
	return Target{Node: n.Name, Executor: ExecutorSSH, SSH: cfg}, nil
}

// checkInventoryNames refuses an inventory file entry for a node the API
// does not list: most likely a typo, which would otherwise leave that node
// on the defaults without a word.
func checkInventoryNames(inv *File, nodes []model.Node) error {
	if inv == nil {
		return nil
	}
	known := map[string]bool{}
	for _, n := range nodes {
		known[n.Name] = true
	}
	for i, e := range inv.Nodes {
		if !known[e.Name] {
			return &FileError{Source: inv.Source, Entry: fmt.Sprintf("nodes[%d] (%s)", i, e.Name),
				Detail: "the cluster has no node of that name (see `kubectl get nodes`); fix the name or remove the entry"}
		}
	}
	return nil
}
