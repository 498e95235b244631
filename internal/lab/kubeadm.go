package lab

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ignoredPreflight are kubeadm preflight checks that cannot pass on the lab's
// VM and say nothing about the cluster: the kernel config is not readable and
// the hierarchy is cgroup v1.
const ignoredPreflight = "SystemVerification"

func (l *Lab) kubeletArgs(n Node) string {
	return fmt.Sprintf(`  kubeletExtraArgs:
  - name: cgroup-root
    value: %s
  - name: node-ip
    value: %s
`, l.cgroupRoot()+"/"+n.Name, n.IP)
}

func nodeRegistration(n Node, kubeletArgs string, controlPlane bool) string {
	taints := ""
	if !controlPlane {
		taints = "  taints: []\n"
	}
	return fmt.Sprintf(`nodeRegistration:
  name: %s
  criSocket: unix:///run/containerd/containerd.sock
  imagePullPolicy: IfNotPresent
  ignorePreflightErrors:
  - %s
%s%s`, n.Name, ignoredPreflight, taints, kubeletArgs)
}

// initConfig is the kubeadm configuration for the first control plane. The
// KubeletConfiguration carries what this VM needs (cgroup v1 with cgroupfs)
// and a faster static pod file check than the 20 s default.
func (l *Lab) initConfig(n Node, token, certKey string) string {
	sans := []string{l.addr(10), "127.0.0.1"}
	for _, c := range l.ControlPlaneNodes() {
		sans = append(sans, c.IP, c.Name)
	}
	return fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: %s
  ttl: 24h0m0s
certificateKey: %s
localAPIEndpoint:
  advertiseAddress: %s
  bindPort: 6443
%s---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: %s
clusterName: %s
controlPlaneEndpoint: %s
networking:
  serviceSubnet: %s
  podSubnet: %s
apiServer:
  certSANs: [%s]
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
fileCheckFrequency: 5s
resolvConf: /etc/resolv.conf
%s---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
conntrack:
  maxPerCore: 0
`, token, certKey, n.IP, nodeRegistration(n, l.kubeletArgs(n), true), KubernetesVersion, "lab-"+l.Name,
		l.Endpoint, serviceCIDR, podCIDR, strings.Join(sans, ", "), l.maxPodsLine())
}

// maxPodsLine is the KubeletConfiguration's maxPods, when the lab sets one;
// joining kubelets get it from the cluster's kubelet-config ConfigMap.
func (l *Lab) maxPodsLine() string {
	if l.MaxPods == 0 {
		return ""
	}
	return fmt.Sprintf("maxPods: %d\n", l.MaxPods)
}

func (l *Lab) joinConfig(n Node, token, caHash, certKey string) string {
	cp := ""
	if n.ControlPlane {
		cp = fmt.Sprintf(`controlPlane:
  certificateKey: %s
  localAPIEndpoint:
    advertiseAddress: %s
    bindPort: 6443
`, certKey, n.IP)
	}
	return fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    token: %s
    apiServerEndpoint: %s
    caCertHashes: [%s]
%s%s`, token, l.Endpoint, caHash, cp, nodeRegistration(n, l.kubeletArgs(n), n.ControlPlane))
}

// newToken makes a bootstrap token ([a-z0-9]{6}.[a-z0-9]{16}) and a
// certificate key for `kubeadm init --upload-certs`.
func newToken() (token, certKey string, err error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 22)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return "", "", err
	}
	return string(b[:6]) + "." + string(b[6:]), hex.EncodeToString(k), nil
}

// discoveryHash is kubeadm's --discovery-token-ca-cert-hash of the CA in
// caPEM: sha256 of its SubjectPublicKeyInfo.
func discoveryHash(caPEM []byte) (string, error) {
	block, _ := pem.Decode(caPEM)
	if block == nil {
		return "", fmt.Errorf("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func (l *Lab) kubeadmInit(ctx context.Context, n Node, token, certKey string) error {
	if err := os.WriteFile(filepath.Join(l.nodeDir(n.Name), "fs", "root", "kubeadm.yaml"), []byte(l.initConfig(n, token, certKey)), 0o600); err != nil {
		return err
	}
	args := []string{"kubeadm", "init", "--config", "/root/kubeadm.yaml"}
	if len(l.ControlPlaneNodes()) > 1 {
		args = append(args, "--upload-certs")
	}
	out, err := l.Exec(ctx, n.Name, args...)
	os.WriteFile(filepath.Join(l.nodeDir(n.Name), "kubeadm-init.log"), []byte(out), 0o600)
	if err != nil {
		return err
	}
	admin, err := os.ReadFile(filepath.Join(l.nodeDir(n.Name), "fs", "etc-kubernetes", "admin.conf"))
	if err != nil {
		return err
	}
	return writeFileAtomic(l.Kubeconfig(), admin, 0o600)
}

// KubeadmJoin joins node n with a real `kubeadm join`, discovering the
// cluster with token and caHash.
func (l *Lab) KubeadmJoin(ctx context.Context, n Node, token, caHash, certKey string) error {
	if err := os.WriteFile(filepath.Join(l.nodeDir(n.Name), "fs", "root", "kubeadm.yaml"), []byte(l.joinConfig(n, token, caHash, certKey)), 0o600); err != nil {
		return err
	}
	out, err := l.Exec(ctx, n.Name, "kubeadm", "join", "--config", "/root/kubeadm.yaml")
	os.WriteFile(filepath.Join(l.nodeDir(n.Name), "kubeadm-join.log"), []byte(out), 0o600)
	return err
}
