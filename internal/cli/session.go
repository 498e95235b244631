package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/carotate/carotate/internal/clusterstatus"
	"github.com/carotate/carotate/internal/failpoint"
	"github.com/carotate/carotate/internal/inventory"
	"github.com/carotate/carotate/internal/lock"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/node"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/rotation"
	"github.com/carotate/carotate/internal/state"
	"github.com/carotate/carotate/internal/state/backup"
)

// session is one command's view of the cluster and its rotation.
type session struct {
	o         *rotationOptions
	cmd       rotation.Command
	set       rotationSettings
	cfg       *rest.Config
	cs        kubernetes.Interface
	dyn       dynamic.Interface
	lockCS    kubernetes.Interface // the rotation lock's client: see lockConfig
	statusCS  kubernetes.Interface // the status ConfigMap's and Events' client
	pub       *clusterstatus.Publisher
	clusterID string
	cluster   model.Cluster
	dir       *state.Dir // the cluster's directory: record and journal
	lc        *rotation.Lifecycle
	rot       *rotation.Rotation
	nodes     []*rotation.Node
	lock      *rotation.Lock // held by the commands that change the cluster
	// trust is what the session's API client verifies apiservers with;
	// the rotation's new CA joins it once the material holds it.
	trust *trustPool
	fail  *failpoint.Counter
	// newKeyPath is where createLocal writes the backup key of a new
	// rotation, made in memory until the command is confirmed.
	newKeyPath string
}

func (s *session) close() {
	for _, n := range s.nodes {
		if n.Exec != nil {
			n.Exec.Close()
		}
	}
}

// leasesPath is where the rotation lock lives in the API, left out of the
// failpoints' count of API writes.
const leasesPath = "/apis/coordination.k8s.io/v1/namespaces/" + lock.Namespace + "/leases"

// openState finds the cluster's state directory and its rotation in
// progress, or makes the record of a new one. It reads one object, the
// kube-system namespace, whose uid names the directory: the lock is taken
// right after, before anything is gathered.
func (o *rotationOptions) openState(ctx context.Context, cmd rotation.Command, set rotationSettings) (*session, error) {
	fail, err := failpoint.Parse(o.getenv(failpoint.Env), o.ErrOut)
	if err != nil {
		return nil, err
	}
	cfg, err := o.rotationAwareConfig(cmd)
	if err != nil {
		return nil, err
	}
	trust, err := trustLater(cfg)
	if err != nil {
		return nil, err
	}
	// The status in the cluster is best effort, and no side effect the
	// failpoints count: its client is made before their wrapper.
	statusCfg := rest.CopyConfig(cfg)
	statusCfg.Timeout = clusterstatus.RequestTimeout
	logRequests(statusCfg, o.logger)
	statusCS, err := kubernetes.NewForConfig(statusCfg)
	if err != nil {
		return nil, err
	}
	cfg.Wrap(failpoint.Transport(fail, leasesPath))
	logRequests(cfg, o.logger)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	lockCS, err := kubernetes.NewForConfig(lockConfig(cfg))
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	s := &session{o: o, cmd: cmd, set: set, cfg: cfg, cs: cs, dyn: dyn, lockCS: lockCS, statusCS: statusCS, fail: fail, trust: trust}
	ks, err := cs.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w: read namespace kube-system (its uid names the cluster's state directory): %w%s", ErrIncomplete, err, staleKubeconfig(o.StateDir, err))
	}
	s.clusterID = string(ks.UID)
	if s.dir, err = s.openDir(o.StateDir, s.clusterID); err != nil {
		return nil, err
	}
	if s.lc, err = rotation.OpenLifecycle(s.dir, o.now, Version); err != nil {
		return nil, err
	}
	return s, nil
}

// openCluster gathers the cluster, connects to every node and builds (or
// loads) the material. It changes nothing on the cluster; for a fresh
// rotation it may create the backup key file.
func (s *session) openCluster(ctx context.Context) error {
	o, rec := s.o, &s.lc.Record
	access := o.access(o.getenv, o.logger)
	access.Config = s.cfg
	sshDefaults := o.sshDefaults()
	var err error
	s.cluster, err = o.gather(ctx, access, inventory.Options{Inventory: o.inventory, SSH: sshDefaults, Now: o.now, Logger: o.logger})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIncomplete, err)
	}
	if s.lc.Roots().Has(rotation.RootEtcdCA) && s.cluster.API.KubeadmConfig != nil && s.cluster.API.KubeadmConfig.ExternalEtcd {
		return fmt.Errorf("--roots %s: the cluster's etcd is external (kubeadm-config's etcd.external), and carotate rotates only the CA of kubeadm's stacked etcd; leave etcd-ca out of --roots and rotate the external etcd's CA with the tool that runs it", rotation.RootEtcdCA)
	}
	key, err := s.backupKey()
	if err != nil {
		return err
	}
	rotDir, err := s.openDir(s.dir.Path(), rec.RotationID)
	if err != nil {
		return err
	}
	store := &rotation.Store{Dir: rotDir, Key: key, Roots: s.lc.Roots()}
	for _, n := range s.set.allowUnready {
		if !hasNode(s.cluster, n) {
			return fmt.Errorf("--allow-unready %s: the cluster has no node of that name (see `kubectl get nodes`)", n)
		}
	}
	endpoints, err := s.connect(ctx, sshDefaults)
	if err != nil {
		return err
	}
	var m *rotation.Material
	if !s.lc.Fresh && store.Saved() {
		m, err = store.Load(rec.RotationID)
	} else {
		imports, ierr := s.set.imports.imports(o.now())
		if ierr != nil {
			return ierr
		}
		saKey, serr := s.set.imports.serviceAccountKey()
		if serr != nil {
			return serr
		}
		m, err = rotation.NewMaterial(ctx, rotation.Source{RotationID: rec.RotationID, Nodes: s.nodes, Client: s.cs, Import: imports, Now: o.now(),
			Roots: s.lc.Roots(), ImportSA: saKey, SAKeyType: pki.KeyAlgorithm(s.set.imports.ServiceAccountKeyType),
			Renew: rec.Renew, RenewLeaves: s.set.renewLeaves, Validity: s.set.validity})
	}
	if err != nil {
		return err
	}
	if s.trust != nil {
		s.trust.add(m.New[model.ClusterCA].Cert)
	}
	// Both checked by Validate; rollback and status take the defaults.
	kubeletRestart, err := splitCommand("kubelet-restart-command", s.set.kubeletRestart)
	if err != nil {
		return err
	}
	kubeletLog, err := splitCommand("kubelet-log-command", s.set.kubeletLog)
	if err != nil {
		return err
	}
	s.rot = &rotation.Rotation{M: m, Store: store, Nodes: s.nodes, Client: s.cs, Dynamic: s.dyn, Endpoints: endpoints,
		KubeletRestart: kubeletRestart, KubeletLog: kubeletLog,
		ReloadWait: s.set.reloadWait, FinalizeStarted: rec.FinalizeStartedAt, Clock: o.now, Log: o.logger,
		RestartOldTokenPods: s.set.restartOldTokenPods, WorkloadConcurrency: s.set.workloadConcurrency, CertificateKey: s.set.certificateKey}
	return nil
}

// connect reaches every node that is not skipped, and returns every
// apiserver endpoint and the address clients use.
func (s *session) connect(ctx context.Context, sshDefaults inventory.SSHDefaults) ([]string, error) {
	o := s.o
	allow := map[string]bool{}
	for _, n := range s.set.allowUnready {
		allow[n] = true
	}
	connect := inventory.Connect(node.HostSSHEnv())
	var endpoints []string
	for _, mn := range s.cluster.Nodes {
		if mn.Skipped {
			continue
		}
		t, err := inventory.ResolveTarget(mn, sshDefaults, o.inventory)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", mn.Name, err)
		}
		ex, err := connect(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("%w: node %s: %w", ErrIncomplete, mn.Name, err)
		}
		n := &rotation.Node{Name: mn.Name, IP: mn.InternalIP, ControlPlane: inventory.IsControlPlane(mn),
			Exec: failpoint.Executor(s.fail, ex), AllowUnready: allow[mn.Name]}
		s.nodes = append(s.nodes, n)
		if n.ControlPlane {
			n.APIServer = apiserverEndpoint(mn)
			endpoints = append(endpoints, n.APIServer)
		}
	}
	if u, err := url.Parse(s.cfg.Host); err == nil && u.Host != "" && !slices.Contains(endpoints, u.Host) {
		endpoints = append(endpoints, u.Host)
	}
	return endpoints, nil
}

func hasNode(c model.Cluster, name string) bool {
	for _, n := range c.Nodes {
		if n.Name == name {
			return true
		}
	}
	return false
}

// apiserverEndpoint is where a control-plane node's kube-apiserver listens,
// from its manifest (kubeadm's --advertise-address and --secure-port).
func apiserverEndpoint(n model.Node) string {
	host, port := n.InternalIP, "6443"
	for _, m := range n.Manifests {
		if m.Component != "kube-apiserver" {
			continue
		}
		if v, ok := m.Value("--advertise-address"); ok && v != "" {
			host = v
		}
		if v, ok := m.Value("--secure-port"); ok && v != "" {
			port = v
		}
	}
	return net.JoinHostPort(host, port)
}

// openDir opens a state directory: created for a command that changes the
// cluster, only read for plan and status, which write nothing locally.
func (s *session) openDir(root, id string) (*state.Dir, error) {
	// A command that changes the cluster creates them once it is
	// confirmed (createLocal), so that a refused one leaves nothing.
	return state.OpenIfExists(root, id)
}

// createLocal makes what a new rotation keeps on this machine: the
// cluster's state directory, the rotation's, and the backup key file when
// carotate is to create it. The commands that change the cluster call it
// once they are confirmed, just before the first phase, so that a refused
// one (no --yes, a refusing check, a bad flag value found late) leaves no
// directory and no key behind.
func (s *session) createLocal() error {
	if !s.dir.Created() {
		d, err := state.Open(s.o.StateDir, s.clusterID)
		if err != nil {
			return err
		}
		s.dir = d
		s.lc.UseDir(d)
	}
	if st := s.rot.Store; !st.Dir.Created() {
		d, err := state.Open(s.dir.Path(), s.lc.Record.RotationID)
		if err != nil {
			return err
		}
		st.Dir = d
	}
	if s.newKeyPath != "" {
		if err := backup.SaveKey(s.newKeyPath, s.rot.Store.Key); err != nil {
			return fmt.Errorf("--backup-key: %w", err)
		}
		fmt.Fprintf(s.o.ErrOut, "Created the backup key %s (0600, id %s). Keep it safe and apart from the state directory: without it the backup cannot be read, and the rotation cannot be resumed or rolled back.\n", s.newKeyPath, s.rot.Store.Key.ID())
		s.newKeyPath = ""
	}
	return nil
}

// lockRequestTimeout bounds each request of the rotation lock.
const lockRequestTimeout = 10 * time.Second

// lockConfig is the configuration of the rotation lock's client: HTTP/1.1
// and a timeout per request, so that a renewal that hangs does not hold
// up the next one. Through a TCP load balancer, client-go's one HTTP/2
// connection stays with one kube-apiserver; when that node's etcd
// restarts (the apiserver talks to its local member only), every request
// on it hangs while haproxy already sends new connections elsewhere.
// Measured on the 3+1 lab: the lock went unrenewed for its 60 s while
// cp-2's etcd restarted. A retry on a new connection reaches a healthy
// apiserver.
func lockConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Timeout = lockRequestTimeout
	if t, ok := c.Transport.(*http.Transport); ok {
		t = t.Clone()
		t.ForceAttemptHTTP2 = false
		if t.TLSClientConfig != nil {
			t.TLSClientConfig.NextProtos = []string{"http/1.1"}
		}
		c.Transport = t
	} else if c.Transport == nil {
		c.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	return c
}
