package inspect

import (
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/pki"
)

// kubeadmTree has the real kubeadm write a control-plane node's files into
// a temporary root (kubeadm --rootfs chroots into it), then adds what the
// kubelet would have: its config and a rotated client certificate behind
// the kubelet-client-current.pem link, with kubelet.conf pointing at it.
// It skips (or fails, with CAROTATE_E2E=require) without root or kubeadm.
func kubeadmTree(t *testing.T, nodeName string) string {
	t.Helper()
	kubeadm := filepath.Join(componentsDir(), "kubeadm")
	skip := func(reason string) {
		if os.Getenv("CAROTATE_E2E") == "require" {
			t.Fatalf("CAROTATE_E2E=require but %s", reason)
		}
		t.Skipf("skipping the kubeadm tree test: %s (set CAROTATE_COMPONENTS or run as root)", reason)
	}
	if os.Geteuid() != 0 {
		skip("not root (kubeadm --rootfs chroots)")
	}
	if _, err := os.Stat(kubeadm); err != nil {
		skip("no kubeadm at " + kubeadm)
	}
	root := t.TempDir()
	cfg := `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: 10.0.0.10, bindPort: 6443}
nodeRegistration: {name: ` + nodeName + `}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
clusterName: kubernetes
`
	writeFile(t, root, "/cfg.yaml", cfg, 0o600)
	for _, phase := range [][]string{{"certs", "all"}, {"kubeconfig", "all"}, {"control-plane", "all"}, {"etcd", "local"}} {
		args := append(append([]string{"init", "phase"}, phase...), "--config", "/cfg.yaml", "--rootfs", root)
		cmd := exec.Command(kubeadm, args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kubeadm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if err := os.Remove(filepath.Join(root, "cfg.yaml")); err != nil {
		t.Fatal(err)
	}

	writeFile(t, root, "/var/lib/kubelet/config.yaml", `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true, cacheTTL: 0s}
  x509: {clientCAFile: /etc/kubernetes/pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: systemd
clusterDNS: [10.96.0.10]
clusterDomain: cluster.local
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
`, 0o644)
	addKubeletClientCert(t, root, nodeName)

	// A backup left in manifests/: the kubelet loads it too. A dot file is
	// ignored by the kubelet and must not be reported.
	apiserver, err := os.ReadFile(filepath.Join(root, "etc/kubernetes/manifests/kube-apiserver.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, "/etc/kubernetes/manifests/kube-apiserver.yaml.bak", string(apiserver), 0o600)
	writeFile(t, root, "/etc/kubernetes/manifests/.kube-apiserver.yaml.swp", "editor swap", 0o600)
	return root
}

func componentsDir() string {
	if d := os.Getenv("CAROTATE_COMPONENTS"); d != "" {
		return d
	}
	return "/var/cache/carotate/components"
}

// addKubeletClientCert signs a kubelet client certificate with the tree's
// CA, stores it with its key the way the kubelet's certificate manager does
// (kubelet-client-<time>.pem, linked from kubelet-client-current.pem), and
// rewrites kubelet.conf to reference it, as kubeadm's kubelet-finalize does.
func addKubeletClientCert(t *testing.T, root, nodeName string) {
	t.Helper()
	now := time.Now()
	certPEM := readFile(t, root, "/etc/kubernetes/pki/ca.crt")
	keyPEM := readFile(t, root, "/etc/kubernetes/pki/ca.key")
	ca, err := pki.ImportCA(certPEM, keyPEM, pki.ImportOptions{Now: now, CertSource: "ca.crt", KeySource: "ca.key"})
	if err != nil {
		t.Fatal(err)
	}
	cert, key := newLeaf(t, ca, leafSpec{cn: "system:node:" + nodeName, orgs: []string{"system:nodes"}, usage: x509.ExtKeyUsageClientAuth}, now)
	keyOut, err := key.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	const dir = "/var/lib/kubelet/pki"
	rotated := dir + "/kubelet-client-" + now.UTC().Format("2006-01-02-15-04-05") + ".pem"
	writeFile(t, root, rotated, string(pki.EncodeCertificatePEM(cert))+string(keyOut), 0o600)
	if err := os.Symlink(rotated, filepath.Join(root, dir, "kubelet-client-current.pem")); err != nil {
		t.Fatal(err)
	}
	kubeletConf := readFile(t, root, "/etc/kubernetes/kubelet.conf")
	var kept []string
	for _, line := range strings.Split(string(kubeletConf), "\n") {
		if strings.Contains(line, "client-certificate-data:") || strings.Contains(line, "client-key-data:") {
			continue
		}
		kept = append(kept, line)
		if strings.TrimSpace(line) == "user:" {
			kept = append(kept, "    client-certificate: "+dir+"/kubelet-client-current.pem",
				"    client-key: "+dir+"/kubelet-client-current.pem")
		}
	}
	writeFile(t, root, "/etc/kubernetes/kubelet.conf", strings.Join(kept, "\n"), 0o600)
}

func writeFile(t *testing.T, root, p, data string, mode os.FileMode) {
	t.Helper()
	h := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(h), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, root, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, p))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return data
}
