// Package rotation is the runbook: the seed's manual CA rotation
// (../shared/seed/manual-rotation-of-ca-certificates.md) as phases of
// idempotent steps, for the cluster CA and the front-proxy CA together.
//
// What happens, in order:
//
// prepare
//  1. Back up every file the rotation may touch on every node, and the API
//     objects it changes, sealed with the backup key (the CLI does this
//     before the first step, see Load).
//  2. Keep the new CAs and every certificate reissued from them in the
//     state directory, before they go anywhere else.
//  3. Put the new CAs on every control-plane node under
//     /etc/kubernetes/pki/carotate/ (0700), never into manifests/.
//
// trust: every verifier accepts old and new; the old CA still signs.
//  1. Per control-plane node, one at a time: KCM gets a single-certificate
//     signing copy of the old CA (kubeadm#1350) and a root-ca-file with
//     old+new; ca.crt and front-proxy-ca.crt become old+new (first
//     certificate = the one matching the key); every kubeconfig trusts
//     old+new; KCM and the scheduler restart (they read their kubeconfigs
//     and --root-ca-file only at start); then the kubelet restarts.
//     kube-apiserver reloads its trust files itself and restarts only when
//     the service-account key rotates too (sakey.go, sarollback.go).
//  2. Wait until every namespace's kube-root-ca.crt holds old+new.
//  3. cluster-info holds old+new, so joins with either hash work; every
//     webhook, APIService and CRD-conversion caBundle that holds an old CA
//     gets the new one beside it (cabundles.go).
//  4. Workers, in parallel: ca.crt (the kubelet's clientCAFile, reloaded)
//     and kubelet.conf trust old+new; the kubelet restarts.
//  5. Restart workloads whose pods started before the bundle reached them:
//     kube-proxy and CNI, then CoreDNS, then the rest; bare pods evicted.
//
// switch: the new CA signs and serves; the old is still trusted.
//  1. Per control-plane node, one at a time: ca.crt/ca.key and the
//     front-proxy pair become the new CAs (the old second in the bundle);
//     KCM signs with the new CA; apiserver.crt, apiserver-kubelet-client.crt
//     and front-proxy-client.crt are reissued (the apiserver reloads them);
//     the client certificates in admin.conf, super-admin.conf,
//     controller-manager.conf and scheduler.conf are reissued with new
//     keys; KCM and the scheduler restart; the kubelet gets a client
//     certificate from the new CA and restarts.
//  2. The kubeadm-certs Secret, which holds the old CA keys, is deleted.
//  3. Workers: the same for ca.crt, kubelet.conf and the kubelet's client
//     certificate.
//
// finalize: the old CA is distrusted, and the layout is kubeadm's again.
//  1. Make sure nothing carotate can see still presents the old CA (nor
//     a webhook or aggregated API server behind a caBundle that will lose
//     it: a fresh handshake each, cabundlegate.go), and that the apiserver
//     has re-read apiserver-kubelet-client.crt (it polls that file every 5
//     minutes).
//  2. Per control-plane node: trust files and kubeconfigs new-only, KCM and
//     scheduler manifests byte-for-byte as kubeadm wrote them (restart),
//     carotate's files removed; the kubelet restarts.
//  3. kube-root-ca.crt new-only everywhere; cluster-info new-only;
//     extension-apiserver-authentication cleaned of the old CAs (the
//     apiserver only ever adds to it); the caBundles lose the old CAs.
//  4. Workers: new-only, kubelet restarted.
//
// The node steps are built from the catalogue (catalogue.go): each moves
// the rows of one node that change at that stage, writing what exists at
// the stage before the restarts and removing what does not after them.
//
// With --roots naming the service-account key, its rows join the same
// phases (sakey.go, tokens.go). kube-apiserver re-reads none of its key
// files, so on each control plane it restarts first, in a step of its own,
// and the next step waits until it serves again behind the balancer:
//   - trust: first, legacy token Secrets signed by the key in use; then
//     sa.pub holds old and new (with one control plane, sa.key is new too);
//   - switch: legacy tokens again; sa.key is the new key (apiserver and
//     KCM restart); after the control planes, every legacy token Secret is
//     re-minted by KCM with the new key;
//   - finalize: no pod may use a projected token the old key signed
//     (refused and named, or restarted with --restart-old-token-pods);
//     then sa.pub holds only the new key.
//
// With --roots naming the etcd CA, its rows join too (etcdrows.go,
// etcd.go). etcd re-reads its serving and peer certificates at each new
// connection but its trusted CA files only at start, and kube-apiserver
// its --etcd-cafile only at start; so on each control plane, first of
// all, etcd restarts (only from a healthy cluster, then waiting until
// every member votes again: never two members down), then kube-apiserver:
//   - trust: etcd/ca.crt holds old and new (etcd and apiserver restart);
//   - switch: etcd/ca.crt and ca.key are the new CA (new first), and the
//     member and apiserver-etcd-client leaves are new, with new keys;
//     nothing restarts;
//   - finalize: etcd/ca.crt holds only the new CA (etcd and apiserver
//     restart); the gate checks that etcd refuses the old CA's client.
//
// Seed steps with no home here yet, and the issue that brings each:
//   - cloud-controller-manager --root-ca-file, and kube-apiserver
//     --kubelet-certificate-authority where set: check reports both as
//     blocking (check.UnhandledTrust), so a rotation refuses to start;
//   - aggregated API servers that trust the front-proxy CA (#12).
//
// A gate after each phase verifies the cluster before the next one.
// Rollback runs the same steps' undos in reverse, from any stage before
// finalize completes. Rolled back from a partly run finalize, it first
// restarts the pods started since finalize began, once kube-root-ca.crt
// holds old and new again: they may have read it new-only.
package rotation

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/manifest"
	"github.com/carotate/carotate/internal/node"
	"github.com/carotate/carotate/internal/satoken"
)

// Timeouts bound every wait.
type Timeouts struct {
	StaticPod time.Duration // a static pod back Ready after a manifest change
	Kubelet   time.Duration // a kubelet back and its node Ready
	RootCA    time.Duration // kube-root-ca.crt published everywhere
	Rollout   time.Duration // one workload rollout
}

// DefaultTimeouts are generous for slow machines and still end.
var DefaultTimeouts = Timeouts{StaticPod: 4 * time.Minute, Kubelet: 3 * time.Minute, RootCA: 3 * time.Minute, Rollout: 5 * time.Minute}

// Rotation is what the steps need: the material, the nodes and the seams.
type Rotation struct {
	M      *Material
	Store  *Store
	Nodes  []*Node
	Client kubernetes.Interface
	// Dynamic reads and writes the caBundles of APIServices and CRDs;
	// nil leaves them alone (webhook configurations go through Client).
	Dynamic dynamic.Interface
	// Endpoints are every kube-apiserver (host:port), and the address
	// clients use (a load balancer), for the gates' handshakes.
	Endpoints []string
	// KubeletRestart restarts the kubelet on a node (default systemctl
	// restart kubelet); KubeletLog prints its log since {since}.
	KubeletRestart []string
	KubeletLog     []string
	// ReloadWait is how long the apiserver may take to re-read
	// apiserver-kubelet-client.crt (5 minutes in v1.37, plus margin).
	ReloadWait time.Duration
	// CertificateKey is kubeadm's certificate key (--certificate-key-file):
	// with it, kubeadm-certs is uploaded with the new CAs at switch and
	// finalize; without it, deleted.
	CertificateKey []byte
	// RestartOldTokenPods lets finalize restart the pods whose tokens the
	// old service-account key signed, instead of refusing.
	RestartOldTokenPods bool
	// WorkloadConcurrency bounds how many workloads of a tier restart at
	// once; workload.DefaultConcurrency when zero.
	WorkloadConcurrency int
	// FinalizeStarted is when finalize first began (zero before): a
	// rollback restarts the pods started since, which may trust only the
	// new CA.
	FinalizeStarted time.Time
	Clock           func() time.Time
	Sleep           func(time.Duration)
	Timeouts        Timeouts
	Log             *slog.Logger

	// lock is the rotation lock while a Run holds it (nil otherwise), for
	// the steps that take the API away to lengthen its lease.
	lock *Lock

	// pairs are the certificate-and-key pairs this run replaced, which
	// the gates' log scan forgives a torn read of.
	pairs pairWrites

	// scanTokens reads a node's projected tokens; satoken.Scan unless a
	// test sets it.
	scanTokens func(context.Context, node.Executor) ([]satoken.Token, error)
}

func (r *Rotation) now() time.Time {
	if r.Clock != nil {
		return r.Clock()
	}
	return time.Now()
}

func (r *Rotation) since(t time.Time) string {
	return r.now().Sub(t).Round(100 * time.Millisecond).String()
}

func (r *Rotation) timeouts() Timeouts {
	t := r.Timeouts
	if t.StaticPod == 0 {
		t = DefaultTimeouts
	}
	return t
}

func (r *Rotation) controlPlanes() []*Node {
	var out []*Node
	for _, n := range r.Nodes {
		if n.ControlPlane {
			out = append(out, n)
		}
	}
	return out
}

func (r *Rotation) workers() []*Node {
	var out []*Node
	for _, n := range r.Nodes {
		if !n.ControlPlane {
			out = append(out, n)
		}
	}
	return out
}

// Phases is the runbook as data. The same list drives plan, apply, resume
// and rollback. The node steps are built from the catalogue (see
// nodeSteps); the API objects have steps of their own.
func (r *Rotation) Phases() []engine.Phase[*Rotation] {
	cps, workers := r.controlPlanes(), r.workers()
	var prepare, trust, switchSteps, finalize []engine.Step[*Rotation]

	prepare = append(prepare, r.saveMaterialStep())
	prepare = append(prepare, r.nodeSteps(cps, Prepared)...)

	sa := r.M.roots().Has(RootServiceAccountKey)
	trust = append(trust, r.extensionAuthRestoreStep(), r.rootCARestoredStep())
	if sa {
		trust = append(trust, r.legacyTokensStep("legacy tokens signed by the key in use, before trust"))
	}
	if sa {
		// Every apiserver trusts the new key before anything else
		// restarts; a rollback checks here, after the rest is undone,
		// that no pod still needs the new key (see sarollback.go).
		trust = append(trust, r.nodeGroupSteps(cps, Trusted, groupEtcd, groupAPIServer)...)
		trust = append(trust, r.newTokensGoneStep())
		trust = append(trust, r.nodeGroupSteps(cps, Trusted, groupControlPlane, groupKubelet)...)
	} else {
		trust = append(trust, r.nodeSteps(cps, Trusted)...)
	}
	trust = append(trust, r.rootCAStep(Trusted), r.clusterInfoStep(Trusted), r.caBundlesStep(Trusted))
	trust = append(trust, r.nodeSteps(workers, Trusted)...)
	if !r.M.Renew {
		// A pod that read the old certificate once keeps verifying with
		// it until it expires: the renewal's plan says when.
		trust = append(trust, r.workloadsStep())
	}
	if sa {
		trust = append(trust, r.signedWithOldKeyStep()) // undone first
	}

	if sa {
		switchSteps = append(switchSteps, r.legacyTokensStep("legacy tokens signed by the key in use, before switch"))
	}
	switchSteps = append(switchSteps, r.nodeSteps(cps, Switched)...)
	if sa {
		switchSteps = append(switchSteps, r.legacyTokensStep("legacy tokens re-minted with the new service-account key"))
	}
	switchSteps = append(switchSteps, r.kubeadmCertsStep(Switched))
	switchSteps = append(switchSteps, r.nodeSteps(workers, Switched)...)

	finalize = append(finalize, r.newOnlyPodsStep(), r.nothingOldStep(), r.bundleServersStep(), r.reloadWaitStep())
	if sa {
		finalize = append(finalize, r.oldTokensStep())
	}
	finalize = append(finalize, r.nodeSteps(cps, Finalized)...)
	finalize = append(finalize, r.rootCAStep(Finalized), r.clusterInfoStep(Finalized), r.extensionAuthCleanStep(), r.caBundlesStep(Finalized))
	if r.CertificateKey != nil {
		// Without the key, switch deleted it; an upload of this
		// rotation's without the key is refused (KubeadmCertsPreflight).
		finalize = append(finalize, r.kubeadmCertsStep(Finalized))
	}
	finalize = append(finalize, r.nodeSteps(workers, Finalized)...)

	return []engine.Phase[*Rotation]{
		{Name: PhasePrepare, Steps: prepare, Gate: r.gate(Prepared)},
		{Name: PhaseTrust, Steps: trust, Gate: r.gate(Trusted)},
		{Name: PhaseSwitch, Steps: switchSteps, Gate: r.gate(Switched)},
		{Name: PhaseFinalize, Steps: finalize, Gate: r.gate(Finalized)},
	}
}

// stepNames name each stage's node steps, one per restart group (see
// stepGroups): etcd's, kube-apiserver's, the rest of the control plane's,
// then the kubelet's (the only step on a worker).
var stepNames = map[Stage][groupCount]string{
	Prepared:  {"", "", "distribute the new CAs", ""},
	Trusted:   {"etcd trusts the old and new etcd CA", "kube-apiserver trusts the new service-account key", "control plane trusts old and new", "kubelet trusts old and new"},
	Switched:  {"etcd serves with certificates from the new etcd CA", "kube-apiserver signs tokens with the new service-account key", "control plane signs and serves with the new CA", "kubelet client certificate from the new CA"},
	Finalized: {"etcd trusts only the new etcd CA", "kube-apiserver trusts only the new service-account key", "control plane trusts only the new CA", "kubelet trusts only the new CA"},
}

// The restart groups, in the order their steps run on a node.
const (
	groupEtcd = iota
	groupAPIServer
	groupControlPlane
	groupKubelet
	groupCount
)

// stepName names a node step; kube-apiserver's names what it restarts
// for.
func (r *Rotation) stepName(to Stage, group int) string {
	if group != groupAPIServer || !r.M.roots().Has(RootEtcdCA) {
		return stepNames[to][group]
	}
	sa := r.M.roots().Has(RootServiceAccountKey)
	switch {
	case to == Trusted && sa:
		return "kube-apiserver trusts the new service-account key and the old and new etcd CA"
	case to == Trusted:
		return "kube-apiserver trusts the old and new etcd CA"
	case to == Finalized && sa:
		return "kube-apiserver trusts only the new service-account key and the new etcd CA"
	case to == Finalized:
		return "kube-apiserver trusts only the new etcd CA"
	}
	return stepNames[to][group]
}

// stepGroups split a node's rows into the groups that change in steps of
// their own, in this order: on a control-plane node, etcd's files and
// manifest (its restart is alone, and the member is healthy again before
// anything else moves); what kube-apiserver reads only at start and its
// manifest (its restart is alone, so it is as short as it can be, and what
// else restarts finds it serving); then the rest of the control plane's,
// with kube-controller-manager and the scheduler; then the rows only the
// kubelet reads. A worker has one group, the kubelet's.
func stepGroups(n *Node) [groupCount]func(*Artefact) bool {
	etcd := func(a *Artefact) bool {
		return a.Component == manifest.Etcd || strings.HasPrefix(a.Path, EtcdPKIDir+"/")
	}
	apiserver := func(a *Artefact) bool {
		return !etcd(a) && (a.readAtStartBy(manifest.KubeAPIServer) || a.Component == manifest.KubeAPIServer)
	}
	if !n.ControlPlane {
		return [groupCount]func(*Artefact) bool{groupKubelet: func(*Artefact) bool { return true }}
	}
	return [groupCount]func(*Artefact) bool{
		etcd,
		apiserver,
		func(a *Artefact) bool { return !etcd(a) && !apiserver(a) && !a.kubeletOnly() },
		func(a *Artefact) bool { return !etcd(a) && !apiserver(a) && a.kubeletOnly() },
	}
}

// nodeSteps move each node to stage to, one step per node and restart
// group (stepGroups), from the catalogue rows that change.
func (r *Rotation) nodeSteps(nodes []*Node, to Stage) []engine.Step[*Rotation] {
	return r.nodeGroupSteps(nodes, to, groupEtcd, groupAPIServer, groupControlPlane, groupKubelet)
}

// nodeGroupSteps are nodeSteps of only the given restart groups.
func (r *Rotation) nodeGroupSteps(nodes []*Node, to Stage, groups ...int) []engine.Step[*Rotation] {
	var out []engine.Step[*Rotation]
	for _, n := range nodes {
		for i, rows := range groupRows(n, to, r.M) {
			if len(rows) > 0 && slices.Contains(groups, i) {
				out = append(out, transition{node: n, to: to, rows: rows}.step(r.stepName(to, i)))
			}
		}
	}
	return out
}

// groupRows are a node's rows that change at stage to, split into its
// restart groups (stepGroups). Where kube-apiserver's own step restarts
// it, the rows only kube-apiserver reads and polls on a timer
// (apiserver-kubelet-client.crt, every 5 minutes) move into that step:
// the restart reads them at once, and finalize's wait for the poll is
// already over for that apiserver (reloadWaitStep).
func groupRows(n *Node, to Stage, m *Material) [groupCount][]*Artefact {
	var out [groupCount][]*Artefact
	for i, keep := range stepGroups(n) {
		if keep != nil {
			out[i] = rowsChanging(n, to, m, keep)
		}
	}
	if !slices.ContainsFunc(out[groupAPIServer], func(a *Artefact) bool { return a.Component == manifest.KubeAPIServer }) {
		return out
	}
	var rest []*Artefact
	for _, a := range out[groupControlPlane] {
		if a.polledOnlyBy(manifest.KubeAPIServer) {
			out[groupAPIServer] = append(out[groupAPIServer], a)
		} else {
			rest = append(rest, a)
		}
	}
	out[groupControlPlane] = rest
	slices.SortStableFunc(out[groupAPIServer], func(a, b *Artefact) int { return catalogueIndex(a) - catalogueIndex(b) })
	return out
}
