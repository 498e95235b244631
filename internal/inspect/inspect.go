// Package inspect gathers what one node holds that concerns trust (Node)
// and assembles the observations of all nodes and the API into the plain
// model.Cluster that every later decision reads (Assemble).
//
// Node only reads, through a node.Executor, and never fails as a whole: a
// node it cannot reach comes back with Reachable=false and an Error, and a
// file it cannot read or parse becomes a warning or a File.ParseError. Key
// files are hashed and fingerprinted; their content is never kept, logged
// or quoted in an error.
package inspect

import (
	"context"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/node"
)

// Options says where kubeadm's files are on the node. Zero values take
// kubeadm's defaults.
type Options struct {
	// Name names the node; the executor's name when empty.
	Name string
	// PKIDir defaults to /etc/kubernetes/pki.
	PKIDir string
	// KubernetesDir (kubeconfigs, manifests/) defaults to /etc/kubernetes.
	KubernetesDir string
	// KubeletConfig defaults to /var/lib/kubelet/config.yaml.
	KubeletConfig string
	// Now is our clock, for the node's clock offset; time.Now when nil.
	Now func() time.Time
}

func (o Options) withDefaults(ex node.Executor) Options {
	if o.Name == "" {
		o.Name = ex.Name()
	}
	if o.PKIDir == "" {
		o.PKIDir = "/etc/kubernetes/pki"
	}
	if o.KubernetesDir == "" {
		o.KubernetesDir = "/etc/kubernetes"
	}
	if o.KubeletConfig == "" {
		o.KubeletConfig = "/var/lib/kubelet/config.yaml"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func (o Options) manifestsDir() string { return path.Join(o.KubernetesDir, "manifests") }

// kubeletCertDir is the kubelet's --cert-dir as kubeadm leaves it, next to
// its config: kubelet-client-current.pem and the old rotated client
// certificates live there.
func (o Options) kubeletCertDir() string { return path.Join(path.Dir(o.KubeletConfig), "pki") }

// inspector holds one node's inspection in progress.
type inspector struct {
	ex    node.Executor
	opts  Options
	node  *model.Node
	files map[string]*model.File
	// dirs caches directory listings, to tell links from files.
	dirs map[string]map[string]node.DirEntry
}

// Node inspects one node through ex. It reads every file under the PKI
// directory, every file the kubelet would load from manifests/, every
// kubeconfig in the Kubernetes directory, the kubelet config, and each file
// those name; it measures the node's clock against ours. It never returns an
// error: see model.Node.Reachable, Error and Warnings.
func Node(ctx context.Context, ex node.Executor, opts Options) model.Node {
	o := opts.withDefaults(ex)
	n := model.Node{Name: o.Name, Executor: executorKind(ex)}
	fi, err := ex.Stat(ctx, o.KubernetesDir)
	if err != nil {
		n.Error = fmt.Sprintf("node %s could not be inspected: %v; check that it is up and reachable "+
			"(address, user, key, known_hosts, sudo) and run again", o.Name, err)
		return n
	}
	n.Reachable = true
	// Over SSH, every read is a round trip: read the trees inspected here
	// in one command, and fall back to file by file when that fails.
	if snap, err := node.TakeSnapshot(ctx, ex, snapshotRoots(o)); err == nil {
		ex = snap
	}
	in := &inspector{ex: ex, opts: o, node: &n, files: map[string]*model.File{}, dirs: map[string]map[string]node.DirEntry{}}
	in.clock(ctx)
	if !fi.Exists {
		in.warn("%s does not exist: this does not look like a kubeadm node", o.KubernetesDir)
	}
	in.walk(ctx, o.PKIDir, true, true)
	in.manifests(ctx)
	in.kubeconfigs(ctx)
	in.kubelet(ctx)
	in.walk(ctx, o.kubeletCertDir(), false, false)
	in.flagFiles(ctx)

	n.Files = make([]model.File, 0, len(in.files))
	for _, f := range in.files {
		n.Files = append(n.Files, *f)
	}
	sort.Slice(n.Files, func(i, j int) bool { return n.Files[i].Path < n.Files[j].Path })
	return n
}

// snapshotRoots are the trees Node reads, none inside another.
func snapshotRoots(o Options) []string {
	candidates := []string{o.KubernetesDir, o.PKIDir, o.kubeletCertDir(), o.KubeletConfig}
	var roots []string
	for _, c := range candidates {
		c = path.Clean(c)
		inside := false
		for _, other := range candidates {
			other = path.Clean(other)
			if other != c && strings.HasPrefix(c, other+"/") {
				inside = true
			}
		}
		if !inside && !slices.Contains(roots, c) {
			roots = append(roots, c)
		}
	}
	return roots
}

func executorKind(ex node.Executor) string {
	switch ex.(type) {
	case *node.Local:
		return "local"
	case *node.SSH:
		return "ssh"
	default:
		return fmt.Sprintf("%T", ex)
	}
}

func (in *inspector) warn(format string, args ...any) {
	in.node.Warnings = append(in.node.Warnings, fmt.Sprintf(format, args...))
}

// source names a file in errors: "node:path".
func (in *inspector) source(p string) string { return in.opts.Name + ":" + p }
