package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/carotate/carotate/internal/check"
	"github.com/carotate/carotate/internal/failpoint"
	"github.com/carotate/carotate/internal/inventory"
	"github.com/carotate/carotate/internal/lock"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/node"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/rotation"
	"github.com/carotate/carotate/internal/state"
)

// session is one command's view of the cluster and its rotation.
type session struct {
	o         *RotateOptions
	cfg       *rest.Config
	cs        kubernetes.Interface
	clusterID string
	cluster   model.Cluster
	dir       *state.Dir // the cluster's directory: record and journal
	rec       state.Record
	fresh     bool // no rotation in progress: this run would start one
	rot       *rotation.Rotation
	nodes     []*rotation.Node
	lock      *lock.Lock // held by the commands that change the cluster
	fail      *failpoint.Counter
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
func (o *RotateOptions) openState(ctx context.Context) (*session, error) {
	fail, err := failpoint.Parse(o.getenv(failpoint.Env), o.ErrOut)
	if err != nil {
		return nil, err
	}
	cfg, err := o.rotationAwareConfig()
	if err != nil {
		return nil, err
	}
	cfg.Wrap(failpoint.Transport(fail, leasesPath))
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	s := &session{o: o, cfg: cfg, cs: cs, fail: fail}
	ks, err := cs.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w: read namespace kube-system (its uid names the cluster's state directory): %w", ErrIncomplete, err)
	}
	s.clusterID = string(ks.UID)
	if s.dir, err = state.Open(o.StateDir, s.clusterID); err != nil {
		return nil, err
	}
	s.rec, err = s.dir.LoadRecord()
	switch {
	case errors.Is(err, state.ErrNoRecord):
		s.fresh = true
	case err != nil:
		return nil, err
	case s.rec.Phase == recordFinalized || s.rec.Phase == recordRolledBack:
		s.fresh = true
	}
	if s.fresh {
		s.rec = state.Record{RotationID: state.NewRotationID(), StartedAt: o.now(), ToolVersion: Version}
	}
	return s, nil
}

// openCluster gathers the cluster, connects to every node and builds (or
// loads) the material. It changes nothing on the cluster; for a fresh
// rotation it may create the backup key file.
func (s *session) openCluster(ctx context.Context) error {
	o := s.o
	sshDefaults := inventory.SSHDefaults{User: o.SSHUser, IdentityFiles: o.SSHKeys, KnownHostsFiles: o.SSHKnownHosts, Sudo: o.Sudo}
	if o.SSHPort != 0 {
		sshDefaults.Port = strconv.Itoa(o.SSHPort)
	}
	var err error
	s.cluster, err = o.gather(ctx, ClusterAccess{Kubeconfig: o.Kubeconfig, Context: o.Context, Getenv: o.getenv, Config: s.cfg},
		inventory.Options{Inventory: o.inventory, SSH: sshDefaults, Now: o.now, Logger: o.logger})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIncomplete, err)
	}
	key, err := s.backupKey()
	if err != nil {
		return err
	}
	rotDir, err := state.Open(s.dir.Path(), s.rec.RotationID)
	if err != nil {
		return err
	}
	store := &rotation.Store{Dir: rotDir, Key: key}
	for _, n := range o.AllowUnready {
		if !hasNode(s.cluster, n) {
			return fmt.Errorf("--allow-unready %s: the cluster has no node of that name (see `kubectl get nodes`)", n)
		}
	}
	endpoints, err := s.connect(ctx, sshDefaults)
	if err != nil {
		return err
	}
	var m *rotation.Material
	if !s.fresh && store.Saved() {
		m, err = store.Load(s.rec.RotationID)
	} else {
		imports, ierr := o.imports()
		if ierr != nil {
			return ierr
		}
		m, err = rotation.NewMaterial(ctx, rotation.Source{RotationID: s.rec.RotationID, Nodes: s.nodes, Client: s.cs, Import: imports, Now: o.now()})
	}
	if err != nil {
		return err
	}
	s.rot = &rotation.Rotation{M: m, Store: store, Nodes: s.nodes, Client: s.cs, Endpoints: endpoints,
		KubeletRestart: strings.Fields(o.KubeletRestartCommand), KubeletLog: strings.Fields(o.KubeletLogCommand),
		ReloadWait: o.ReloadWait, FinalizeStarted: s.rec.FinalizeStartedAt, Clock: o.now, Log: o.logger}
	return nil
}

// connect reaches every node that is not skipped, and returns every
// apiserver endpoint and the address clients use.
func (s *session) connect(ctx context.Context, sshDefaults inventory.SSHDefaults) ([]string, error) {
	o := s.o
	allow := map[string]bool{}
	for _, n := range o.AllowUnready {
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
			endpoints = append(endpoints, apiserverEndpoint(mn))
		}
	}
	if u, err := url.Parse(s.cfg.Host); err == nil && u.Host != "" && !contains(endpoints, u.Host) {
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

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
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

// imports reads the CAs the operator brings, refusing a key that does not
// match before anything else happens.
func (o *RotateOptions) imports() (map[model.CAKind]*pki.CA, error) {
	out := map[model.CAKind]*pki.CA{}
	for _, in := range []struct {
		kind      model.CAKind
		cert, key string
		flag      string
	}{{model.ClusterCA, o.CACert, o.CAKey, "--ca-cert/--ca-key"}, {model.FrontProxyCA, o.FrontCACert, o.FrontCAKey, "--front-proxy-ca-cert/--front-proxy-ca-key"}} {
		if in.cert == "" {
			continue
		}
		certPEM, err := os.ReadFile(in.cert)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRefused, in.flag, err)
		}
		keyPEM, err := os.ReadFile(in.key)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRefused, in.flag, err)
		}
		ca, err := pki.ImportCA(certPEM, keyPEM, pki.ImportOptions{Now: o.now(), CertSource: in.cert, KeySource: in.key})
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRefused, in.flag, err)
		}
		out[in.kind] = ca
	}
	return out, nil
}

// preflight refuses to start (or resume) on what would make the rotation
// unsafe. A fresh rotation needs a clean bill from check; a resumed one
// only the findings it does not cause itself.
func (s *session) preflight() error {
	findings := check.Run(s.cluster, check.Options{Now: s.cluster.ObservedAt, ExpiryThreshold: check.DefaultExpiryThreshold, MaxClockSkew: check.DefaultMaxClockSkew})
	resumeBlocking := map[string]bool{"node-unreachable": true, "node-not-ready": true, "stray-manifest": true, "clock-skew": true, "ca-expired": true}
	var msgs []string
	for _, f := range findings {
		if f.Severity != check.Blocking {
			continue
		}
		if f.ID == "rotation-locked" {
			continue // this run holds the lock
		}
		if f.ID == "node-not-ready" && contains(s.o.AllowUnready, strings.TrimPrefix(f.Subject, "node ")) {
			continue
		}
		if !s.fresh && !resumeBlocking[f.ID] {
			continue
		}
		msg := fmt.Sprintf("  %s: %s", f.Subject, f.Message)
		if f.ID == "node-not-ready" {
			msg += fmt.Sprintf("; bring it back, or pass --allow-unready %s to rotate without waiting for it", strings.TrimPrefix(f.Subject, "node "))
		}
		msgs = append(msgs, msg)
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%w: %d blocking finding(s):\n%s\nfix them (see `carotate check`) and run again", ErrRefused, len(msgs), strings.Join(msgs, "\n"))
	}
	return nil
}
