package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/carotate/carotate/internal/lab/agent"
)

// nodeMounts are the directories every node has of its own, bind-mounted
// from nodes/<name>/fs/<dir> over the standard path, so that kubeadm, the
// kubelet and containerd run unmodified at their standard paths.
var nodeMounts = []struct{ dir, target string }{
	{"etc-kubernetes", "/etc/kubernetes"},
	{"var-lib-kubelet", "/var/lib/kubelet"},
	{"var-lib-etcd", "/var/lib/etcd"},
	{"etc-cni", "/etc/cni"},
	{"var-lib-cni", "/var/lib/cni"},
	{"var-log", "/var/log"},
	{"var-lib-containerd", "/var/lib/containerd"},
	{"run", "/run"},
	// Not /tmp: the state directory and the lab binary may live there.
	{"root", "/root"},
	{"etc-default", "/etc/default"},
	// The node's own commands (systemctl, kubeadm, kubelet, ...), first on
	// root's PATH.
	{"sbin", "/usr/local/sbin"},
}

// nodeFiles are single files bind-mounted over the host's.
var nodeFiles = []struct{ file, target string }{
	{"hosts", "/etc/hosts"},
	{"resolv.conf", "/etc/resolv.conf"},
	{"hostname", "/etc/hostname"},
}

// nodePath is PATH inside a node.
const nodePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// nodeCommands are linked into each node's /usr/local/sbin.
var nodeCommands = []string{"kubeadm", "kubectl", "kubelet", "etcdctl"}

func (l *Lab) prepareNode(n Node) error {
	dir := l.nodeDir(n.Name)
	for _, m := range nodeMounts {
		if err := os.MkdirAll(filepath.Join(dir, "fs", m.dir), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "fs", "root"), 0o700); err != nil {
		return err
	}
	for _, d := range []string{"run/sshd", "etc-cni/net.d", "etc-kubernetes/manifests", "run/containerd"} {
		if err := os.MkdirAll(filepath.Join(dir, "fs", d), 0o755); err != nil {
			return err
		}
	}
	sbin := filepath.Join(dir, "fs", "sbin")
	links := map[string]string{"systemctl": l.LabBinary, "journalctl": l.LabBinary}
	for _, c := range nodeCommands {
		links[c] = filepath.Join(l.Components, c)
	}
	for name, target := range links {
		os.Remove(filepath.Join(sbin, name))
		if err := os.Symlink(target, filepath.Join(sbin, name)); err != nil {
			return err
		}
	}

	var hosts strings.Builder
	hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, o := range l.Nodes {
		fmt.Fprintf(&hosts, "%s\t%s\n", o.IP, o.Name)
	}
	// The node's own address refuses DNS at once: the lab has no way out,
	// and a refusal beats a 5-second timeout per lookup.
	files := map[string]string{
		"hosts":                            hosts.String(),
		"resolv.conf":                      "nameserver " + n.IP + "\noptions timeout:1 attempts:1\n",
		"hostname":                         n.Name + "\n",
		"fs/etc-cni/net.d/10-lab.conflist": cniConfig(n.PodCIDR),
		"containerd.toml":                  containerdConfig(),
		"sshd_config":                      l.sshdConfig(n),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func cniConfig(podCIDR string) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "lab",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, podCIDR)
}

// containerdConfig is containerd 1.6's CRI config for the lab. The VM drops
// CAP_SYS_RESOURCE, so runc may not lower oom_score_adj
// (restrict_oom_score_adj); cgroup v1 without systemd wants cgroupfs.
func containerdConfig() string {
	return `version = 2
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10.2"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
`
}

func (l *Lab) sshdConfig(n Node) string {
	dir := l.nodeDir(n.Name)
	return fmt.Sprintf(`ListenAddress %s
Port 22
HostKey %s
AuthorizedKeysFile %s
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
AcceptEnv LANG LC_*
SetEnv PATH=%s
Subsystem sftp internal-sftp
`, n.IP, filepath.Join(dir, "ssh_host_ed25519_key"), filepath.Join(l.StateDir, "ssh", "authorized_keys"), nodePath)
}

// agentConfig describes node n to its agent.
func (l *Lab) agentConfig(n Node, cgroups []string) agent.Config {
	dir := l.nodeDir(n.Name)
	cfg := agent.Config{
		Hostname: n.Name,
		Cgroups:  cgroups,
		Socket:   "/run/lab-agent.sock",
		Env:      []string{"PATH=" + nodePath, "HOME=/root"},
	}
	for _, m := range nodeMounts {
		cfg.Mounts = append(cfg.Mounts, agent.Mount{Source: filepath.Join(dir, "fs", m.dir), Target: m.target})
	}
	for _, f := range nodeFiles {
		cfg.Mounts = append(cfg.Mounts, agent.Mount{Source: filepath.Join(dir, f.file), Target: f.target})
	}
	cfg.Units = []agent.Unit{
		{Name: "containerd", Enabled: true, Log: "/var/log/containerd.log",
			Argv: []string{"/usr/bin/containerd", "--config", filepath.Join(dir, "containerd.toml")}},
		{Name: "ssh", Enabled: true, Log: "/var/log/sshd.log",
			Argv: []string{"/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config")}},
		// The kubelet as kubeadm's systemd drop-in (10-kubeadm.conf) runs it.
		{Name: "kubelet", Log: "/var/log/kubelet.log", RestartDelay: 2 * time.Second,
			EnvironmentFiles: []string{"/var/lib/kubelet/kubeadm-flags.env", "/etc/default/kubelet"},
			Argv: []string{filepath.Join(l.Components, "kubelet"),
				"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
				"--kubeconfig=/etc/kubernetes/kubelet.conf",
				"--config=/var/lib/kubelet/config.yaml",
				"$KUBELET_KUBEADM_ARGS", "$KUBELET_EXTRA_ARGS"}},
	}
	return cfg
}

// startAgent starts an agent in new network, mount and UTS namespaces, in its
// own session so it outlives the command that started it, and waits until it
// answers on its socket.
func (l *Lab) startAgent(ctx context.Context, name string, cfg agent.Config, hostSocket string) (int, error) {
	cfgPath := filepath.Join(l.StateDir, "agents", name+".json")
	if err := os.MkdirAll(filepath.Dir(cfgPath), 0o700); err != nil {
		return 0, err
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		return 0, err
	}
	logf, err := os.OpenFile(filepath.Join(l.StateDir, "agents", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(l.LabBinary, "agent", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + nodePath, "HOME=/root"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setsid:     true,
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS,
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start agent for %s: %w", name, err)
	}
	pid := cmd.Process.Pid
	go cmd.Wait() // reap it if it dies while we still run
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := agent.Call(hostSocket, agent.Request{Verb: "list-units"}, 2*time.Second); err == nil {
			return pid, nil
		}
		if !processAlive(pid) || time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(l.StateDir, "agents", name+".log"))
			return pid, fmt.Errorf("agent for %s did not come up: %s", name, lastLines(string(log), 10))
		}
		select {
		case <-ctx.Done():
			return pid, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Systemctl runs a systemctl verb on a node's agent, from the host.
func (l *Lab) Systemctl(node string, verb string, units ...string) (string, error) {
	out, err := systemctlAt(l.agentSocket(node), verb, units...)
	if err != nil {
		return out, fmt.Errorf("node %s: %w", node, err)
	}
	return out, nil
}

// ExecCommand returns a command that runs argv inside node: in its
// namespaces and its cgroup, so that teardown finds whatever it leaves behind.
func (l *Lab) ExecCommand(node string, argv ...string) (*exec.Cmd, error) {
	n, err := l.Node(node)
	if err != nil {
		return nil, err
	}
	if !processAlive(n.AgentPID) {
		return nil, fmt.Errorf("node %s is not running (agent pid %d is gone)", node, n.AgentPID)
	}
	hierarchies, err := cgroupHierarchies()
	if err != nil {
		return nil, err
	}
	var join strings.Builder
	for _, h := range hierarchies {
		fmt.Fprintf(&join, "echo $$ > %s/cgroup.procs; ", filepath.Join(h, l.cgroupRoot(), node, "exec"))
	}
	script := join.String() + `exec "$@"`
	full := append([]string{"nsenter", "--target", strconv.Itoa(n.AgentPID), "--net", "--mount", "--uts", "--",
		"/bin/sh", "-c", script, "sh"}, argv...)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Env = []string{"PATH=" + nodePath, "HOME=/root", "KUBECONFIG=/etc/kubernetes/admin.conf"}
	cmd.Dir = "/"
	return cmd, nil
}

// Exec runs argv inside node and returns its combined output.
func (l *Lab) Exec(ctx context.Context, node string, argv ...string) (string, error) {
	cmd, err := l.ExecCommand(node, argv...)
	if err != nil {
		return "", err
	}
	out, err := runCmd(ctx, cmd)
	if err != nil {
		return out, fmt.Errorf("node %s: %s: %w: %s", node, strings.Join(argv, " "), err, lastLines(out, 20))
	}
	return out, nil
}

func runCmd(ctx context.Context, cmd *exec.Cmd) (string, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return out.String(), ctx.Err()
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
