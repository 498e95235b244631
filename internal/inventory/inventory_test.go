package inventory

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/carotate/carotate/internal/inspect"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/node"
)

func kubeNode(name, ip string, ready bool, roles ...string) *corev1.Node {
	labels := map[string]string{"kubernetes.io/hostname": name}
	for _, r := range roles {
		labels[roleLabelPrefix+r] = ""
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: status}}
	if ip != "" {
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}}
	}
	return n
}

func TestDiscoverNodes(t *testing.T) {
	cs := fake.NewClientset(
		kubeNode("worker-1", "192.0.2.11", false),
		kubeNode("cp-1", "192.0.2.10", true, "control-plane", "etcd"),
		kubeNode("no-ip", "", true),
	)
	got, err := DiscoverNodes(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	want := []model.Node{
		{Name: "cp-1", Roles: []string{"control-plane", "etcd"}, InternalIP: "192.0.2.10", Ready: true},
		{Name: "no-ip", Roles: []string{}, Ready: true},
		{Name: "worker-1", Roles: []string{}, InternalIP: "192.0.2.11"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DiscoverNodes (-want +got):\n%s", diff)
	}
}

func TestResolveTarget(t *testing.T) {
	yes, no := true, false
	defaults := SSHDefaults{User: "root", IdentityFiles: []string{"/k"}, KnownHostsFiles: []string{"/kh"}, Sudo: false}
	base := node.SSHConfig{Name: "n1", Address: "192.0.2.1", User: "root", IdentityFiles: []string{"/k"}, KnownHostsFiles: []string{"/kh"}}
	with := func(f func(*node.SSHConfig)) node.SSHConfig {
		c := base
		f(&c)
		return c
	}
	tests := []struct {
		name     string
		node     model.Node
		defaults SSHDefaults
		entry    *Entry
		want     Target
		wantErr  string
	}{
		{name: "defaults: ssh to the InternalIP", node: model.Node{Name: "n1", InternalIP: "192.0.2.1"}, defaults: defaults,
			want: Target{Node: "n1", Executor: ExecutorSSH, SSH: base}},
		{name: "default port", node: model.Node{Name: "n1", InternalIP: "192.0.2.1"}, defaults: SSHDefaults{User: "root", IdentityFiles: []string{"/k"}, KnownHostsFiles: []string{"/kh"}, Port: "2222"},
			want: Target{Node: "n1", Executor: ExecutorSSH, SSH: with(func(c *node.SSHConfig) { c.Address = "192.0.2.1:2222" })}},
		{name: "IPv6 InternalIP", node: model.Node{Name: "n1", InternalIP: "2001:db8::1"}, defaults: SSHDefaults{Port: "22"},
			want: Target{Node: "n1", Executor: ExecutorSSH, SSH: node.SSHConfig{Name: "n1", Address: "[2001:db8::1]:22"}}},
		{name: "entry overrides address, user, port, sudo", node: model.Node{Name: "n1", InternalIP: "192.0.2.1"}, defaults: defaults,
			entry: &Entry{Name: "n1", Address: "bastion.example", User: "ubuntu", Port: 2200, Sudo: &yes},
			want: Target{Node: "n1", Executor: ExecutorSSH, SSH: with(func(c *node.SSHConfig) {
				c.Address, c.User, c.Sudo = "bastion.example:2200", "ubuntu", true
			})}},
		{name: "entry address with port", node: model.Node{Name: "n1", InternalIP: "192.0.2.1"}, defaults: SSHDefaults{Sudo: true},
			entry: &Entry{Name: "n1", Address: "10.0.0.1:2022", Sudo: &no},
			want:  Target{Node: "n1", Executor: ExecutorSSH, SSH: node.SSHConfig{Name: "n1", Address: "10.0.0.1:2022"}}},
		{name: "local executor", node: model.Node{Name: "n1", InternalIP: "192.0.2.1"}, defaults: defaults,
			entry: &Entry{Name: "n1", Executor: ExecutorLocal},
			want:  Target{Node: "n1", Executor: ExecutorLocal}},
		{name: "jump hosts get the keys and known_hosts, not the login", node: model.Node{Name: "n1", InternalIP: "192.0.2.1"},
			defaults: SSHDefaults{User: "root", IdentityFiles: []string{"/k"}, KnownHostsFiles: []string{"/kh"},
				Jump: []node.SSHConfig{{Address: "bastion:2222", User: "ops"}, {Address: "gw", IdentityFiles: []string{"/gw.key"}}}},
			want: Target{Node: "n1", Executor: ExecutorSSH, SSH: with(func(c *node.SSHConfig) {
				c.Jump = []node.SSHConfig{
					{Address: "bastion:2222", User: "ops", IdentityFiles: []string{"/k"}, KnownHostsFiles: []string{"/kh"}},
					{Address: "gw", IdentityFiles: []string{"/gw.key"}, KnownHostsFiles: []string{"/kh"}},
				}
			})}},
		{name: "no jump (none) stays empty, not nil", node: model.Node{Name: "n1", InternalIP: "192.0.2.1"},
			defaults: SSHDefaults{User: "root", IdentityFiles: []string{"/k"}, KnownHostsFiles: []string{"/kh"}, Jump: []node.SSHConfig{}},
			want:     Target{Node: "n1", Executor: ExecutorSSH, SSH: with(func(c *node.SSHConfig) { c.Jump = []node.SSHConfig{} })}},
		{name: "an entry's jump wins over the defaults: none goes direct", node: model.Node{Name: "n1", InternalIP: "192.0.2.1"},
			defaults: SSHDefaults{User: "root", IdentityFiles: []string{"/k"}, KnownHostsFiles: []string{"/kh"}, Jump: []node.SSHConfig{{Address: "bastion"}}},
			entry:    &Entry{Name: "n1", Jump: "none"},
			want:     Target{Node: "n1", Executor: ExecutorSSH, SSH: with(func(c *node.SSHConfig) { c.Jump = []node.SSHConfig{} })}},
		{name: "an entry's own jump host", node: model.Node{Name: "n1", InternalIP: "192.0.2.1"}, defaults: defaults,
			entry: &Entry{Name: "n1", Jump: "ops@edge:2200"},
			want: Target{Node: "n1", Executor: ExecutorSSH, SSH: with(func(c *node.SSHConfig) {
				c.Jump = []node.SSHConfig{{Address: "edge:2200", User: "ops", IdentityFiles: []string{"/k"}, KnownHostsFiles: []string{"/kh"}}}
			})}},
		{name: "no address anywhere", node: model.Node{Name: "n1"}, defaults: defaults,
			wantErr: "the API lists no InternalIP for it; give its address in an inventory file (--inventory)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var inv *File
			if tt.entry != nil {
				inv = &File{Source: "inv.yaml", Nodes: []Entry{*tt.entry}}
			}
			got, err := ResolveTarget(tt.node, tt.defaults, inv)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ResolveTarget (-want +got):\n%s", diff)
			}
		})
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// nodeTree writes a minimal kubeadm node under a temporary root: the
// cluster CA certificate.
func nodeTree(t *testing.T, caPEM []byte) string {
	t.Helper()
	root := t.TempDir()
	pkiDir := filepath.Join(root, "etc/kubernetes/pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkiDir, "ca.crt"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestGather(t *testing.T) {
	ca := newCA(t, "kubernetes")
	cpRoot := nodeTree(t, ca.CertPEM())
	cs := fake.NewClientset(
		kubeNode("cp-1", "192.0.2.10", true, "control-plane"),
		kubeNode("worker-1", "192.0.2.11", true),
		kubeNode("worker-2", "192.0.2.12", false),
		kubeNode("win-1", "192.0.2.13", true),
		configMap("default", "kube-root-ca.crt", map[string]string{"ca.crt": pemOf(ca)}),
		namespace("default"),
	)
	inv := &File{Source: "inv.yaml", Nodes: []Entry{
		{Name: "win-1", Skip: true},
		{Name: "worker-2", Address: "10.9.9.9", Port: 2222},
	}}
	var mu sync.Mutex
	var targets []Target
	connect := func(_ context.Context, tg Target) (node.Executor, error) {
		mu.Lock()
		targets = append(targets, tg)
		mu.Unlock()
		switch tg.Node {
		case "cp-1":
			return node.NewLocal("cp-1", cpRoot)
		case "worker-2":
			return node.NewLocal("worker-2", t.TempDir())
		}
		return nil, errors.New("ssh: handshake failed: host key for 192.0.2.11 is unknown")
	}
	c, err := Gather(context.Background(), Options{
		Clientset: cs, Dynamic: newDynamic(), Inventory: inv,
		SSH:     SSHDefaults{User: "root", KnownHostsFiles: []string{"/kh"}},
		Connect: connect, NodeConcurrency: 2, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}

	type summary struct {
		Name      string
		Roles     []string
		Ready     bool
		Reachable bool
		Skipped   bool
		Executor  string
		Error     string
	}
	var got []summary
	for _, n := range c.Nodes {
		got = append(got, summary{n.Name, n.Roles, n.Ready, n.Reachable, n.Skipped, n.Executor, n.Error})
	}
	want := []summary{
		{Name: "cp-1", Roles: []string{"control-plane"}, Ready: true, Reachable: true, Executor: ExecutorSSH},
		{Name: "win-1", Roles: []string{}, Ready: true, Skipped: true},
		{Name: "worker-1", Roles: []string{}, Ready: true, Executor: ExecutorSSH,
			Error: "node worker-1 could not be reached: ssh: handshake failed: host key for 192.0.2.11 is unknown"},
		{Name: "worker-2", Roles: []string{}, Reachable: true, Executor: ExecutorSSH},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}

	var addrs []string
	for _, tg := range targets {
		addrs = append(addrs, tg.Node+"="+tg.SSH.Address)
	}
	if diff := cmp.Diff([]string{"cp-1=192.0.2.10", "worker-1=192.0.2.11", "worker-2=10.9.9.9:2222"}, slices.Sorted(slices.Values(addrs))); diff != "" {
		t.Errorf("connected to (-want +got):\n%s", diff)
	}
	if len(c.CAs) != 1 || c.CAs[0].Kind != model.ClusterCA {
		t.Fatalf("CAs = %+v, want the cluster CA", c.CAs)
	}
	var refs []string
	for _, l := range c.CAs[0].References {
		refs = append(refs, l.Node+l.Path+l.Object)
	}
	if diff := cmp.Diff([]string{"ConfigMap default/kube-root-ca.crt", "cp-1/etc/kubernetes/pki/ca.crt"}, refs); diff != "" {
		t.Errorf("cluster CA references (-want +got):\n%s", diff)
	}
}

func TestGatherBoundsNodeConcurrency(t *testing.T) {
	var objs []runtime.Object
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		objs = append(objs, kubeNode(n, "192.0.2.1", true))
	}
	var inFlight, peak atomic.Int32
	inspectFn := func(_ context.Context, ex node.Executor, o inspect.Options) model.Node {
		cur := inFlight.Add(1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		inFlight.Add(-1)
		return model.Node{Name: o.Name, Reachable: true}
	}
	_, err := Gather(context.Background(), Options{
		Clientset: fake.NewClientset(objs...), Dynamic: newDynamic(),
		Connect: func(context.Context, Target) (node.Executor, error) { return node.NewLocal("x", t.TempDir()) },
		Inspect: inspectFn, NodeConcurrency: 2, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p > 2 || p < 1 {
		t.Errorf("peak concurrent inspections = %d, want 1..2", p)
	}
}

func TestGatherRefusesInventoryEntryForUnknownNode(t *testing.T) {
	_, err := Gather(context.Background(), Options{
		Clientset: fake.NewClientset(kubeNode("cp-1", "192.0.2.10", true)), Dynamic: newDynamic(),
		Inventory: &File{Source: "inv.yaml", Nodes: []Entry{{Name: "cp-1"}, {Name: "cp-l", User: "x"}}},
		Connect:   func(context.Context, Target) (node.Executor, error) { return nil, errors.New("not reached") },
		Logger:    quietLogger(),
	})
	want := "inventory file inv.yaml: nodes[1] (cp-l): the cluster has no node of that name"
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrInvalidFile) {
		t.Fatalf("error = %v, want it to contain %q", err, want)
	}
}
