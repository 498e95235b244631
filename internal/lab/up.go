package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"golang.org/x/sync/errgroup"
)

var labName = regexp.MustCompile(`^[a-z][a-z0-9]{0,7}$`)

func (o *Options) validate() error {
	if o.Name == "" {
		o.Name = "lab"
	}
	if !labName.MatchString(o.Name) {
		return fmt.Errorf("lab name %q: use 1-8 lower-case letters and digits, starting with a letter", o.Name)
	}
	if o.ControlPlanes < 1 || o.ControlPlanes > 9 {
		return fmt.Errorf("--control-planes %d: want 1 to 9", o.ControlPlanes)
	}
	if o.Workers < 0 || o.Workers > 70 {
		return fmt.Errorf("--workers %d: want 0 to 70", o.Workers)
	}
	if o.Subnet == "" {
		o.Subnet = "213.0"
	}
	if !regexp.MustCompile(`^\d{1,3}\.\d{1,3}$`).MatchString(o.Subnet) {
		return fmt.Errorf("subnet %q: want two octets such as 213.0", o.Subnet)
	}
	if o.MaxPods != 0 && (o.MaxPods < 10 || o.MaxPods > 250) {
		return fmt.Errorf("max pods %d: want 10 to 250 (each node's pod subnet is a /24), or 0 for the kubelet's default", o.MaxPods)
	}
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root: it creates namespaces, cgroups and network links")
	}
	for _, need := range []struct{ path, what string }{
		{filepath.Join(o.Components, "kubeadm"), "the built components (run hack/build-components)"},
		{filepath.Join(o.Components, "kube-apiserver"), "the built components (run hack/build-components)"},
		{o.LabBinary, "the lab binary"},
		{o.ProbeBinary, "the probe binary (CGO_ENABLED=0 go build ./cmd/probe)"},
		{"/usr/bin/containerd", "containerd (apt-get install containerd)"},
		{"/usr/sbin/sshd", "sshd (apt-get install openssh-server)"},
		{"/usr/sbin/haproxy", "haproxy (apt-get install haproxy)"},
		{"/usr/lib/cni/bridge", "the CNI plugins (apt-get install containernetworking-plugins)"},
		{"/usr/bin/nsenter", "nsenter (apt-get install util-linux)"},
	} {
		if _, err := os.Stat(need.path); err != nil {
			return fmt.Errorf("%s is missing: %s", need.path, need.what)
		}
	}
	return nil
}

// Up stands up a lab. On failure the lab is left for Down to clean (and for
// its logs to be read).
func Up(ctx context.Context, o Options) (*Lab, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if _, err := Load(o.StateDir); err == nil {
		return nil, fmt.Errorf("a lab is already up in %s: run `lab down` first", o.StateDir)
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, err
	}
	l := &Lab{Name: o.Name, StateDir: o.StateDir, Components: o.Components, LabBinary: o.LabBinary,
		Subnet: o.Subnet, MaxPods: o.MaxPods, progress: o.Progress}
	for i := 0; i < o.ControlPlanes; i++ {
		l.Nodes = append(l.Nodes, Node{Name: fmt.Sprintf("cp-%d", i+1), IP: l.addr(11 + i), ControlPlane: true})
	}
	for i := 0; i < o.Workers; i++ {
		l.Nodes = append(l.Nodes, Node{Name: fmt.Sprintf("worker-%d", i+1), IP: l.addr(21 + i)})
	}
	for i := range l.Nodes {
		l.Nodes[i].PodCIDR = fmt.Sprintf("10.244.%d.0/24", i+1)
	}
	l.Endpoint = l.Nodes[0].IP + ":6443"
	if o.ControlPlanes > 1 {
		l.Endpoint = l.addr(10) + ":6443"
	}
	var err error
	if l.Sysctls, err = readSysctls(); err != nil {
		return nil, err
	}
	if err := l.save(); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := l.up(ctx, o); err != nil {
		l.save()
		return l, fmt.Errorf("lab up: %w (logs are in %s; `lab down` cleans up)", err, o.StateDir)
	}
	l.Ready = true
	if err := l.save(); err != nil {
		return l, err
	}
	l.say("up in %s: %d control plane(s), %d worker(s); kubeconfig %s", time.Since(start).Round(time.Second), o.ControlPlanes, o.Workers, l.Kubeconfig())
	return l, nil
}

func (l *Lab) up(ctx context.Context, o Options) error {
	// Bind mounts need their mount points, and containerd creates hostPath
	// sources that are missing (kube-proxy mounts /lib/modules, which this
	// VM lacks). What has to be created on the host is recorded and removed
	// at teardown.
	points := []string{"/lib/modules"}
	for _, m := range nodeMounts {
		points = append(points, m.target)
	}
	for _, p := range points {
		if err := l.ensureHostDir(p); err != nil {
			return err
		}
	}
	t := time.Now()
	l.say("building images")
	imgs, err := l.images(o.ProbeBinary)
	if err != nil {
		return err
	}
	cache := o.ImageCache
	if cache == "" {
		cache = filepath.Join(l.StateDir, "images")
	}
	tarballs := map[string]labImage{}
	for _, img := range imgs {
		path, err := buildImage(cache, img.spec)
		if err != nil {
			return err
		}
		tarballs[path] = img
	}
	l.say("images ready (%s)", time.Since(t).Round(time.Millisecond))

	if err := l.makeSSHKeys(ctx); err != nil {
		return err
	}
	switchCgroups, err := makeCgroup(l.cgroupRoot() + "/switch")
	if err != nil {
		return err
	}
	if err := l.startSwitch(ctx, switchCgroups); err != nil {
		return err
	}
	l.say("switch up, host link %s %s/24", l.hostLink(), l.addr(1))

	for i := range l.Nodes {
		n := &l.Nodes[i]
		if err := l.prepareNode(*n); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
		if _, err := makeCgroup(l.cgroupRoot() + "/" + n.Name + "/exec"); err != nil {
			return err
		}
		cgroups, err := makeCgroup(l.cgroupRoot() + "/" + n.Name + "/system")
		if err != nil {
			return err
		}
		pid, err := l.startAgent(ctx, n.Name, l.agentConfig(*n, cgroups), l.agentSocket(n.Name))
		n.AgentPID = pid
		if saveErr := l.save(); err == nil {
			err = saveErr
		}
		if err != nil {
			return err
		}
		if err := l.wireNode(ctx, *n, i); err != nil {
			return err
		}
		if _, err := l.Systemctl(n.Name, "boot"); err != nil {
			return err
		}
	}
	if err := l.writeKnownHosts(); err != nil {
		return err
	}
	if err := l.save(); err != nil {
		return err
	}

	t = time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for _, n := range l.Nodes {
		g.Go(func() error {
			if err := l.waitContainerd(gctx, n); err != nil {
				return err
			}
			return l.importImages(gctx, n, tarballs)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	l.say("images imported on %d nodes (%s)", len(l.Nodes), time.Since(t).Round(time.Second))

	if len(l.ControlPlaneNodes()) > 1 {
		if _, err := systemctlAt(l.switchSocket(), "start", "haproxy"); err != nil {
			return err
		}
		l.say("load balancer %s health-checks /readyz on %d apiservers", l.Endpoint, len(l.ControlPlaneNodes()))
	}

	token, certKey, err := newToken()
	if err != nil {
		return err
	}
	t = time.Now()
	first := l.Nodes[0]
	if err := l.kubeadmInit(ctx, first, token, certKey); err != nil {
		return err
	}
	l.say("%s: kubeadm init (%s)", first.Name, time.Since(t).Round(time.Second))
	caPEM, err := os.ReadFile(filepath.Join(l.nodeDir(first.Name), "fs", "etc-kubernetes", "pki", "ca.crt"))
	if err != nil {
		return err
	}
	caHash, err := discoveryHash(caPEM)
	if err != nil {
		return err
	}
	for _, n := range l.Nodes[1:] {
		t := time.Now()
		if err := l.KubeadmJoin(ctx, n, token, caHash, certKey); err != nil {
			return err
		}
		l.say("%s: kubeadm join (%s)", n.Name, time.Since(t).Round(time.Second))
	}
	t = time.Now()
	if err := l.deployWorkloads(ctx); err != nil {
		return err
	}
	if err := l.WaitHealthy(ctx, 5*time.Minute); err != nil {
		return err
	}
	l.say("all nodes Ready and all pods Running (%s)", time.Since(t).Round(time.Second))
	return nil
}

func (l *Lab) waitContainerd(ctx context.Context, n Node) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := l.Exec(ctx, n.Name, "ctr", "version")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s: containerd did not answer in 30s: %w", n.Name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ensureHostDir creates dir and its missing parents on the host, recording
// each one it creates so that Down removes it.
func (l *Lab) ensureHostDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := l.ensureHostDir(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("create mount point %s: %w", dir, err)
	}
	l.CreatedHostPaths = append(l.CreatedHostPaths, dir)
	return l.save()
}
