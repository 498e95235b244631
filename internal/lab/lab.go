// Package lab stands up real kubeadm clusters on one Linux host: every node is
// its own network, mount and UTS namespace with its own containerd, kubelet and
// sshd, and the cluster comes from real `kubeadm init` and `kubeadm join`. It
// is the ground every carotate demo and end-to-end test stands on.
//
// A lab lives entirely in its state directory. The host reaches the nodes
// through the lab's own bridge, which lives in a "switch" network namespace;
// nothing of the lab binds to or routes through the host's real interfaces.
package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// KubernetesVersion is the version the lab's components are built at.
const KubernetesVersion = "v1.37.2"

// Options describe a lab to stand up.
type Options struct {
	// Name tells labs apart on one host (cgroups, interface names).
	Name string
	// StateDir holds everything of the lab.
	StateDir string
	// ControlPlanes and Workers count the nodes.
	ControlPlanes int
	Workers       int
	// Components is the directory that holds the built upstream binaries.
	Components string
	// LabBinary is the lab command itself: it runs each node's agent and
	// serves as the node's systemctl.
	LabBinary string
	// ProbeBinary is the static in-cluster probe, packaged into an image.
	ProbeBinary string
	// ImageCache holds built image tarballs between labs.
	ImageCache string
	// Subnet is the second and third octet of the lab's node network
	// 10.X.Y.0/24, so that two labs can have different ones.
	Subnet string
	// MaxPods is the kubelets' maxPods; 0 keeps the kubelet's 110. A
	// node's pod subnet is a /24, so at most 250.
	MaxPods int
	// Progress receives one line per step; nil discards.
	Progress io.Writer
}

// Node is one lab node.
type Node struct {
	Name         string `json:"name"`
	IP           string `json:"ip"`
	ControlPlane bool   `json:"controlPlane"`
	// PodCIDR is the pod subnet the node's CNI hands out.
	PodCIDR  string `json:"podCIDR"`
	AgentPID int    `json:"agentPID"`
	// HostKey is the node's SSH host public key, in authorized_keys form.
	HostKey string `json:"hostKey"`
}

// Lab is a lab that is up (or was being stood up).
type Lab struct {
	Name       string `json:"name"`
	StateDir   string `json:"stateDir"`
	Components string `json:"components"`
	LabBinary  string `json:"labBinary"`
	Subnet     string `json:"subnet"`
	MaxPods    int    `json:"maxPods,omitempty"`
	Nodes      []Node `json:"nodes"`
	// SwitchPID holds the switch namespace, with the bridge and the load
	// balancer.
	SwitchPID int `json:"switchPID"`
	// Endpoint is the controlPlaneEndpoint: the load balancer with more than
	// one control plane, else the first control plane.
	Endpoint string `json:"endpoint"`
	// Sysctls are the host's values of the global sysctls the kubelet
	// rewrites, restored at teardown.
	Sysctls map[string]string `json:"sysctls"`
	// CreatedHostPaths are host paths that had to exist for the lab and did
	// not; teardown removes them.
	CreatedHostPaths []string `json:"createdHostPaths"`
	// Ready is set once `lab up` finished.
	Ready bool `json:"ready"`

	progress io.Writer
}

// ErrNotUp means there is no lab in the state directory.
var ErrNotUp = errors.New("no lab is up in this state directory")

func statePath(stateDir string) string { return filepath.Join(stateDir, "lab.json") }

// Load reads the lab in stateDir.
func Load(stateDir string) (*Lab, error) {
	data, err := os.ReadFile(statePath(stateDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w (run `lab up`)", stateDir, ErrNotUp)
	}
	if err != nil {
		return nil, err
	}
	var l Lab
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("%s: %w", statePath(stateDir), err)
	}
	return &l, nil
}

func (l *Lab) save() error {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(statePath(l.StateDir), append(data, '\n'), 0o600)
}

// SetProgress directs progress lines to w.
func (l *Lab) SetProgress(w io.Writer) { l.progress = w }

func (l *Lab) say(format string, args ...any) {
	if l.progress != nil {
		fmt.Fprintf(l.progress, "lab: "+format+"\n", args...)
	}
}

// Node returns the node called name.
func (l *Lab) Node(name string) (Node, error) {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n, nil
		}
	}
	names := make([]string, len(l.Nodes))
	for i, n := range l.Nodes {
		names[i] = n.Name
	}
	return Node{}, fmt.Errorf("no node %q in the lab (nodes: %s)", name, strings.Join(names, ", "))
}

// ControlPlaneNodes returns the control-plane nodes, first one first.
func (l *Lab) ControlPlaneNodes() []Node {
	var out []Node
	for _, n := range l.Nodes {
		if n.ControlPlane {
			out = append(out, n)
		}
	}
	return out
}

// Kubeconfig is the path of the cluster admin's kubeconfig on the host.
func (l *Lab) Kubeconfig() string { return filepath.Join(l.StateDir, "admin.conf") }

// SSHKey is the private key that logs in as root on every node.
func (l *Lab) SSHKey() string { return filepath.Join(l.StateDir, "ssh", "id_ed25519") }

// KnownHosts holds every node's real SSH host key.
func (l *Lab) KnownHosts() string { return filepath.Join(l.StateDir, "ssh", "known_hosts") }

func (l *Lab) nodeDir(name string) string { return filepath.Join(l.StateDir, "nodes", name) }

// NodePath is where a path inside node name lives on the host, for the
// directories the lab gives each node (see nodeMounts).
func (l *Lab) NodePath(name, path string) (string, error) {
	for _, m := range nodeMounts {
		if path == m.target || strings.HasPrefix(path, m.target+"/") {
			return filepath.Join(l.nodeDir(name), "fs", m.dir, strings.TrimPrefix(path, m.target)), nil
		}
	}
	return "", fmt.Errorf("%s is not in one of node %s's own directories", path, name)
}

// agentSocket is the node agent's control socket as seen from the host.
func (l *Lab) agentSocket(node string) string {
	return filepath.Join(l.nodeDir(node), "fs", "run", "lab-agent.sock")
}

// cgroupRoot is the lab's cgroup, relative to each hierarchy's root.
func (l *Lab) cgroupRoot() string { return "/carotate-" + l.Name }

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
