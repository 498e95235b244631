package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/carotate/carotate/internal/lab/agent"
)

// The lab's node network is 10.<Subnet>.0/24:
//
//	.1        the host's end of the lab link (lab-<name>)
//	.2        the bridge in the switch namespace
//	.10       the load balancer (more than one control plane)
//	.11-.19   control planes
//	.21-.99   workers
//
// Pods get 10.244.<i>.0/24 on node i, services 10.96.0.0/12.
func (l *Lab) addr(host int) string { return fmt.Sprintf("10.%s.%d", l.Subnet, host) }

const (
	serviceCIDR = "10.96.0.0/12"
	podCIDR     = "10.244.0.0/16"
)

func (l *Lab) hostLink() string { return "lab-" + l.Name }

func (l *Lab) switchSocket() string { return filepath.Join(l.StateDir, "switch", "agent.sock") }

func (l *Lab) haproxyConfig() string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    maxconn 4096
defaults
    mode tcp
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    timeout check 2s
frontend kube-apiserver
    bind %s:6443
    default_backend kube-apiserver
backend kube-apiserver
    option httpchk GET /readyz
    http-check expect status 200
    balance roundrobin
    default-server inter 1s fall 2 rise 2 check check-ssl verify none
`, l.addr(10))
	for _, n := range l.ControlPlaneNodes() {
		fmt.Fprintf(&b, "    server %s %s:6443\n", n.Name, n.IP)
	}
	return b.String()
}

// startSwitch creates the switch namespace with the lab's bridge, links the
// host to it, and runs the load balancer there when there is more than one
// control plane.
func (l *Lab) startSwitch(ctx context.Context, cgroups []string) error {
	dir := filepath.Join(l.StateDir, "switch")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cfg := agent.Config{Cgroups: cgroups, Socket: l.switchSocket(), Env: []string{"PATH=" + nodePath}}
	if len(l.ControlPlaneNodes()) > 1 {
		cfgPath := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(cfgPath, []byte(l.haproxyConfig()), 0o644); err != nil {
			return err
		}
		cfg.Units = append(cfg.Units, agent.Unit{Name: "haproxy", Log: filepath.Join(dir, "haproxy.log"),
			Argv: []string{"/usr/sbin/haproxy", "-db", "-f", cfgPath}})
	}
	pid, err := l.startAgent(ctx, "switch", cfg, l.switchSocket())
	l.SwitchPID = pid
	if err != nil {
		return err
	}
	if err := l.save(); err != nil {
		return err
	}
	sw := strconv.Itoa(pid)
	steps := [][]string{
		{"ip", "link", "add", l.hostLink(), "type", "veth", "peer", "name", "uplink", "netns", sw},
		{"ip", "addr", "add", l.addr(1) + "/24", "dev", l.hostLink()},
		{"ip", "link", "set", l.hostLink(), "up"},
	}
	for _, s := range steps {
		if _, err := run(ctx, s...); err != nil {
			return err
		}
	}
	inSwitch := [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", "br0", "type", "bridge"},
		{"ip", "link", "set", "uplink", "master", "br0"},
		{"ip", "link", "set", "uplink", "up"},
		{"ip", "addr", "add", l.addr(2) + "/24", "dev", "br0"},
		{"ip", "addr", "add", l.addr(10) + "/24", "dev", "br0"},
		{"ip", "link", "set", "br0", "up"},
	}
	for _, s := range inSwitch {
		if _, err := inNetns(ctx, pid, s...); err != nil {
			return err
		}
	}
	return nil
}

// wireNode plugs node n into the bridge and gives it its address, routes to
// the other nodes' pods and the service network, and the sysctls kubeadm's
// preflight wants. There is no default route: nothing leaves the lab.
func (l *Lab) wireNode(ctx context.Context, n Node, index int) error {
	a, b := fmt.Sprintf("lv%s%da", l.Name, index), fmt.Sprintf("lv%s%db", l.Name, index)
	if len(a) > 15 {
		return fmt.Errorf("lab name %q is too long for interface names", l.Name)
	}
	host := [][]string{
		{"ip", "link", "add", a, "type", "veth", "peer", "name", b},
		{"ip", "link", "set", a, "netns", strconv.Itoa(l.SwitchPID)},
		{"ip", "link", "set", b, "netns", strconv.Itoa(n.AgentPID)},
	}
	for _, s := range host {
		if _, err := run(ctx, s...); err != nil {
			return err
		}
	}
	if _, err := inNetns(ctx, l.SwitchPID, "ip", "link", "set", a, "master", "br0", "up"); err != nil {
		return err
	}
	inNode := [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "set", b, "name", "eth0"},
		{"ip", "addr", "add", n.IP + "/24", "dev", "eth0"},
		{"ip", "link", "set", "eth0", "up"},
		{"ip", "route", "add", serviceCIDR, "dev", "eth0", "src", n.IP},
		{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"},
		{"sysctl", "-qw", "net.bridge.bridge-nf-call-ip6tables=1"},
	}
	for _, o := range l.Nodes {
		if o.Name != n.Name {
			inNode = append(inNode, []string{"ip", "route", "add", o.PodCIDR, "via", o.IP})
		}
	}
	for _, s := range inNode {
		if _, err := inNetns(ctx, n.AgentPID, s...); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	return nil
}
