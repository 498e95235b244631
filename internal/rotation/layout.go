package rotation

import (
	"fmt"
	"path"
)

// Stage is how far a node file, an object or the whole cluster has come.
// Each phase moves the cluster one stage on; rollback moves it back.
type Stage int

const (
	Original  Stage = iota // as kubeadm left it
	Prepared               // new CAs exist on every control-plane node, outside every watched path
	Trusted                // every verifier accepts old and new; the old CA still signs
	Switched               // the new CA signs and serves; the old is still trusted
	Finalized              // the old CA is gone; the layout is plain kubeadm again
)

// Phase names, in order; phase i moves the cluster to Stage(i+1).
const (
	PhasePrepare  = "prepare"
	PhaseTrust    = "trust"
	PhaseSwitch   = "switch"
	PhaseFinalize = "finalize"
)

var phaseOfStage = map[Stage]string{Prepared: PhasePrepare, Trusted: PhaseTrust, Switched: PhaseSwitch, Finalized: PhaseFinalize}

// String names a stage by the phase that reaches it.
func (s Stage) String() string {
	if s == Original {
		return "original"
	}
	if p, ok := phaseOfStage[s]; ok {
		return p
	}
	return fmt.Sprintf("stage(%d)", int(s))
}

// StageOfPhase is the stage a phase ends in.
func StageOfPhase(phase string) (Stage, bool) {
	for s, p := range phaseOfStage {
		if p == phase {
			return s, true
		}
	}
	return Original, false
}

// kubeadm's layout. carotate changes file contents at these paths and, for
// the duration of a rotation only, adds the files under CarotateDir.
const (
	KubernetesDir = "/etc/kubernetes"
	PKIDir        = KubernetesDir + "/pki"
	ManifestsDir  = KubernetesDir + "/manifests"
	KubeletPKIDir = "/var/lib/kubelet/pki"

	// CarotateDir holds the new CAs on control-plane nodes from prepare
	// until finalize, and KCM's single-certificate signing copy
	// (kubeadm#1350) from trust until finalize. It is inside pki/, which
	// kube-controller-manager already mounts, and never inside manifests/.
	CarotateDir = PKIDir + "/carotate"

	KubeletClientCurrent = KubeletPKIDir + "/kubelet-client-current.pem"

	// RestartAnnotation is bumped on a static pod to make the kubelet
	// restart it; its value is "<rotation id>/<phase>".
	RestartAnnotation = "carotate.io/restart"
	// WorkloadAnnotation is put on pod templates of restarted workloads.
	WorkloadAnnotation = "carotate.io/restarted-at"
)

// File names of kubeadm's PKI.
var (
	caCert         = path.Join(PKIDir, "ca.crt")
	caKey          = path.Join(PKIDir, "ca.key")
	frontProxyCert = path.Join(PKIDir, "front-proxy-ca.crt")
	frontProxyKey  = path.Join(PKIDir, "front-proxy-ca.key")
	// KCM's signing pair gets its own files per stage: KCM watches the
	// files it signs with, and rewriting a certificate and its key in
	// place shows it a mismatched pair in between.
	signingCert    = path.Join(CarotateDir, "signing-old-ca.crt")
	signingKey     = path.Join(CarotateDir, "signing-old-ca.key")
	signingNewCert = path.Join(CarotateDir, "signing-new-ca.crt")
	signingNewKey  = path.Join(CarotateDir, "signing-new-ca.key")
	rootCAFile     = path.Join(CarotateDir, "root-ca.crt")
	newCACert      = path.Join(CarotateDir, "ca.crt")
	newCAKey       = path.Join(CarotateDir, "ca.key")
	newFrontCert   = path.Join(CarotateDir, "front-proxy-ca.crt")
	newFrontKey    = path.Join(CarotateDir, "front-proxy-ca.key")
	kcmManifest    = path.Join(ManifestsDir, "kube-controller-manager.yaml")
	schedManifest  = path.Join(ManifestsDir, "kube-scheduler.yaml")
	etcdManifest   = path.Join(ManifestsDir, "etcd.yaml")
	// The etcd CA and its leaves (kubeadm's stacked etcd).
	EtcdPKIDir        = PKIDir + "/etcd"
	etcdCACert        = path.Join(EtcdPKIDir, "ca.crt")
	etcdCAKey         = path.Join(EtcdPKIDir, "ca.key")
	apiserverEtcdCert = path.Join(PKIDir, "apiserver-etcd-client.crt")
	newEtcdCert       = path.Join(CarotateDir, "etcd-ca.crt")
	newEtcdKey        = path.Join(CarotateDir, "etcd-ca.key")
	kubeletConf       = path.Join(KubernetesDir, "kubelet.conf")
	adminConf         = path.Join(KubernetesDir, "admin.conf")
	superAdminConf    = path.Join(KubernetesDir, "super-admin.conf")
	kcmConf           = path.Join(KubernetesDir, "controller-manager.conf")
	schedConf         = path.Join(KubernetesDir, "scheduler.conf")
)
