package inspect

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/node"
	"github.com/carotate/carotate/internal/pki"
)

// TestNodeOnKubeadmTree inspects a tree the real kubeadm wrote and compares
// what Node and Assemble report with what the test reads from the files
// itself.
func TestNodeOnKubeadmTree(t *testing.T) {
	root := kubeadmTree(t, "cp-1")
	ex, err := node.NewLocal("cp-1", root)
	if err != nil {
		t.Fatal(err)
	}
	got := Node(context.Background(), ex, Options{})
	if !got.Reachable || got.Error != "" {
		t.Fatalf("node not inspected: %s", got.Error)
	}
	if len(got.Warnings) > 0 {
		t.Errorf("warnings: %q", got.Warnings)
	}
	if got.ClockOffset.Abs() > time.Second {
		t.Errorf("clock offset of the local node is %v", got.ClockOffset)
	}
	t.Run("files", func(t *testing.T) { checkFiles(t, root, got) })
	t.Run("manifests", func(t *testing.T) { checkManifests(t, root, got) })
	t.Run("kubeconfigs", func(t *testing.T) { checkKubeconfigs(t, root, got) })
	t.Run("kubelet", func(t *testing.T) {
		want := &model.Kubelet{ConfigPath: "/var/lib/kubelet/config.yaml", ClientCAFile: "/etc/kubernetes/pki/ca.crt", RotateCertificates: true}
		if diff := cmp.Diff(want, got.Kubelet); diff != "" {
			t.Errorf("Kubelet (-want +got):\n%s", diff)
		}
	})
	t.Run("stray manifests", func(t *testing.T) {
		want := []string{"/etc/kubernetes/manifests/kube-apiserver.yaml.bak"}
		if diff := cmp.Diff(want, got.StrayManifests); diff != "" {
			t.Errorf("StrayManifests (-want +got):\n%s", diff)
		}
	})
	t.Run("assemble", func(t *testing.T) { checkAssemble(t, root, got) })
	t.Run("no key material", func(t *testing.T) { checkNoKeyMaterial(t, root, got) })
}

// checkNoKeyMaterial looks for every private key's secret scalar, in hex
// and in base64 at each alignment, in the node's JSON (what `carotate check
// --output json` prints).
func checkNoKeyMaterial(t *testing.T, root string, got model.Node) {
	out, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range got.Files {
		if f.Kind != model.FileKey && f.Kind != model.FileCertAndKey {
			continue
		}
		data, err := os.ReadFile(hostPath(t, root, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		var key pki.PrivateKey
		if f.Kind == model.FileKey {
			key, err = pki.ParsePrivateKeyPEM(f.Path, data)
		} else {
			_, key, err = pki.ParseCertificateAndKeyPEM(f.Path, data)
		}
		if err != nil {
			t.Fatal(err)
		}
		var secret []byte
		switch k := key.Signer().(type) {
		case *rsa.PrivateKey:
			secret = k.D.Bytes()
		case *ecdsa.PrivateKey:
			if secret, err = k.Bytes(); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s: unexpected key type %T", f.Path, k)
		}
		needles := []string{hex.EncodeToString(secret[:16])}
		for i := 0; i < 3; i++ {
			needles = append(needles, base64.StdEncoding.EncodeToString(secret[i:i+18]))
		}
		for _, n := range needles {
			if strings.Contains(string(out), n) {
				t.Errorf("%s: key material in the node's JSON", f.Path)
			}
		}
	}
}

// expectedFiles lists what Node must record: every file under the PKI dir,
// every non-dot file in manifests/, and the kubelet's certificate files.
func expectedFiles(t *testing.T, root string) []string {
	var want []string
	walk := func(dir string, skipDots bool) {
		err := filepath.WalkDir(filepath.Join(root, dir), func(h string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || (skipDots && strings.HasPrefix(d.Name(), ".")) {
				return err
			}
			want = append(want, "/"+strings.TrimPrefix(h, root+"/"))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	walk("etc/kubernetes/pki", false)
	walk("etc/kubernetes/manifests", true)
	walk("var/lib/kubelet/pki", false)
	sort.Strings(want)
	return want
}

// hostPath follows a node path's link the way the node would, under root.
func hostPath(t *testing.T, root, p string) string {
	h := filepath.Join(root, p)
	if target, err := os.Readlink(h); err == nil {
		return filepath.Join(root, target)
	}
	return h
}

func checkFiles(t *testing.T, root string, got model.Node) {
	var paths []string
	for _, f := range got.Files {
		paths = append(paths, f.Path)
	}
	if diff := cmp.Diff(expectedFiles(t, root), paths); diff != "" {
		t.Fatalf("file paths (-want +got):\n%s", diff)
	}
	for _, f := range got.Files {
		data, err := os.ReadFile(hostPath(t, root, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(len(data)) {
			t.Errorf("%s: sha256/size differ from the file's", f.Path)
		}
		if f.ParseError != "" {
			t.Errorf("%s: %s", f.Path, f.ParseError)
		}
		switch {
		case strings.HasSuffix(f.Path, ".key"):
			key, err := pki.ParsePrivateKeyPEM(f.Path, data)
			if err != nil {
				t.Fatal(err)
			}
			fp, _ := pki.PublicKeyFingerprint(key.Public())
			if f.Kind != model.FileKey || f.KeySPKISHA256 != fp || len(f.Certs) != 0 {
				t.Errorf("%s: kind %s key %s, want a private key with fingerprint %s", f.Path, f.Kind, f.KeySPKISHA256, fp)
			}
			if f.Mode != 0o600 {
				t.Errorf("%s: mode %o, want 0600 as kubeadm writes keys", f.Path, f.Mode)
			}
		case strings.HasSuffix(f.Path, ".crt"):
			certs, err := pki.ParseCertificatesPEM(f.Path, data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(CertsOf(certs), f.Certs); diff != "" || f.Kind != model.FileCertificate {
				t.Errorf("%s: kind %s, certs (-want +got):\n%s", f.Path, f.Kind, diff)
			}
		case strings.HasSuffix(f.Path, ".pub"):
			if f.Kind != model.FilePublicKey || f.KeySPKISHA256 == "" {
				t.Errorf("%s: kind %s, fingerprint %q", f.Path, f.Kind, f.KeySPKISHA256)
			}
		case strings.HasPrefix(f.Path, "/var/lib/kubelet/pki/kubelet-client-"):
			if f.Kind != model.FileCertAndKey || len(f.Certs) != 1 || f.Certs[0].Subject != "CN=system:node:cp-1,O=system:nodes" {
				t.Errorf("%s: kind %s certs %v, want the kubelet's client cert and key", f.Path, f.Kind, f.Certs)
			}
		}
		if target, err := os.Readlink(filepath.Join(root, f.Path)); err == nil && f.LinkTarget != target {
			t.Errorf("%s: link target %q, want %q", f.Path, f.LinkTarget, target)
		}
	}
}

func checkManifests(t *testing.T, root string, got model.Node) {
	var want []model.Manifest
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		p := "/etc/kubernetes/manifests/" + name + ".yaml"
		var pod corev1.Pod
		if err := yaml.Unmarshal(readFile(t, root, p), &pod); err != nil {
			t.Fatal(err)
		}
		m := model.Manifest{Path: p, Component: pod.Labels["component"], Annotations: pod.Annotations}
		for _, arg := range pod.Spec.Containers[0].Command[1:] {
			n, v, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
			m.Flags = append(m.Flags, model.Flag{Name: n, Value: v})
		}
		hostPaths := map[string]string{}
		for _, v := range pod.Spec.Volumes {
			hostPaths[v.Name] = v.HostPath.Path
		}
		for _, vm := range pod.Spec.Containers[0].VolumeMounts {
			m.HostPathMounts = append(m.HostPathMounts, hostPaths[vm.Name])
		}
		want = append(want, m)
	}
	if diff := cmp.Diff(want, got.Manifests); diff != "" {
		t.Errorf("Manifests (-want +got):\n%s", diff)
	}
}

func checkKubeconfigs(t *testing.T, root string, got model.Node) {
	names, err := filepath.Glob(filepath.Join(root, "etc/kubernetes/*.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var want []model.Kubeconfig
	for _, h := range names {
		raw, err := clientcmd.LoadFromFile(h)
		if err != nil {
			t.Fatal(err)
		}
		ctx := raw.Contexts[raw.CurrentContext]
		cluster, user := raw.Clusters[ctx.Cluster], raw.AuthInfos[ctx.AuthInfo]
		p := "/" + strings.TrimPrefix(h, root+"/")
		cas, err := pki.ParseCertificatesPEM(p, cluster.CertificateAuthorityData)
		if err != nil {
			t.Fatal(err)
		}
		kc := model.Kubeconfig{Path: p, Role: strings.TrimSuffix(filepath.Base(h), ".conf"), Server: cluster.Server,
			Cluster: ctx.Cluster, User: ctx.AuthInfo, CACerts: CertsOf(cas),
			ClientCertFile: user.ClientCertificate, ClientKeyFile: user.ClientKey}
		var certs []*x509.Certificate
		if user.ClientCertificate != "" {
			data, err := os.ReadFile(hostPath(t, root, user.ClientCertificate))
			if err != nil {
				t.Fatal(err)
			}
			certs, _, err = pki.ParseCertificateAndKeyPEM(user.ClientCertificate, data)
			if err != nil {
				t.Fatal(err)
			}
		} else if certs, err = pki.ParseCertificatesPEM(p, user.ClientCertificateData); err != nil {
			t.Fatal(err)
		}
		kc.ClientCert = ptr(CertOf(certs[0]))
		want = append(want, kc)
	}
	if len(want) != 5 { // admin, controller-manager, kubelet, scheduler, super-admin
		t.Errorf("kubeadm wrote %d kubeconfigs, want 5", len(want))
	}
	if diff := cmp.Diff(want, got.Kubeconfigs); diff != "" {
		t.Errorf("Kubeconfigs (-want +got):\n%s", diff)
	}
}

func checkAssemble(t *testing.T, root string, got model.Node) {
	c := Assemble([]model.Node{got}, model.API{}, time.Now())
	fp := func(p string) string {
		cert, err := pki.ParseCertificatePEM(p, readFile(t, root, p))
		if err != nil {
			t.Fatal(err)
		}
		return pki.SPKIFingerprint(cert)
	}
	saFP := ""
	for _, f := range got.Files {
		if f.Path == "/etc/kubernetes/pki/sa.pub" {
			saFP = f.KeySPKISHA256
		}
	}
	wantKinds := map[string]model.CAKind{
		fp("/etc/kubernetes/pki/ca.crt"):             model.ClusterCA,
		fp("/etc/kubernetes/pki/front-proxy-ca.crt"): model.FrontProxyCA,
		fp("/etc/kubernetes/pki/etcd/ca.crt"):        model.EtcdCA,
		saFP:                                         model.ServiceAccountCA,
	}
	gotKinds := map[string]model.CAKind{}
	signed := map[string]map[string]bool{}
	for _, ca := range c.CAs {
		gotKinds[ca.Cert.SPKISHA256] = ca.Kind
		signed[ca.Cert.SPKISHA256] = map[string]bool{}
		for _, l := range ca.Signed {
			signed[ca.Cert.SPKISHA256][l.Path] = true
		}
		if ca.Kind != model.ServiceAccountCA && len(ca.KeyFiles) == 0 {
			t.Errorf("%s CA: no key file found", ca.Kind)
		}
	}
	if diff := cmp.Diff(wantKinds, gotKinds); diff != "" {
		t.Errorf("CA kinds by SPKI (-want +got):\n%s", diff)
	}

	// Every leaf on disk is in Signed of the CA whose signature verifies it.
	cas := map[string]*x509.Certificate{}
	for _, p := range []string{"/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/front-proxy-ca.crt", "/etc/kubernetes/pki/etcd/ca.crt"} {
		cert, _ := pki.ParseCertificatePEM(p, readFile(t, root, p))
		cas[pki.SPKIFingerprint(cert)] = cert
	}
	for _, f := range got.Files {
		if len(f.Certs) == 0 || f.Certs[0].IsCA {
			continue
		}
		leaf, err := x509.ParseCertificate(f.Certs[0].Raw)
		if err != nil {
			t.Fatal(err)
		}
		var issuer string
		for spki, ca := range cas {
			if leaf.CheckSignatureFrom(ca) == nil {
				issuer = spki
			}
		}
		if issuer == "" || !signed[issuer][f.Path] {
			t.Errorf("%s: not in Signed of the CA that signed it (%.12s)", f.Path, issuer)
		}
	}

	clusterFP := fp("/etc/kubernetes/pki/ca.crt")
	edges := map[string]model.TrustEdge{}
	for _, e := range c.Edges {
		edges[e.Client+" -> "+e.Server] = e
	}
	for _, name := range []string{
		"kubelet@cp-1 -> kube-apiserver@cp-1",
		"kube-controller-manager@cp-1 -> kube-apiserver@cp-1",
		"kube-scheduler@cp-1 -> kube-apiserver@cp-1",
		"admin@cp-1 -> kube-apiserver@cp-1",
		"super-admin@cp-1 -> kube-apiserver@cp-1",
	} {
		e, ok := edges[name]
		if !ok {
			t.Errorf("edge %s missing", name)
			continue
		}
		if e.Presents != clusterFP || !cmp.Equal(e.Trusts, []string{clusterFP}) || !cmp.Equal(e.Accepts, []string{clusterFP}) {
			t.Errorf("edge %s: trusts %v presents %q accepts %v, want the cluster CA %s", name, e.Trusts, e.Presents, e.Accepts, clusterFP)
		}
	}
	for name, want := range map[string]string{
		"kube-apiserver@cp-1 -> etcd@cp-1":            fp("/etc/kubernetes/pki/etcd/ca.crt"),
		"kube-apiserver@cp-1 -> kubelet@cp-1":         clusterFP,
		"kube-apiserver@cp-1 -> extension-apiservers": fp("/etc/kubernetes/pki/front-proxy-ca.crt"),
	} {
		e, ok := edges[name]
		if !ok {
			t.Errorf("edge %s missing", name)
			continue
		}
		if e.Presents != want || !cmp.Equal(e.Accepts, []string{want}) {
			t.Errorf("edge %s: presents %q accepts %v, want %s", name, e.Presents, e.Accepts, want)
		}
	}
}
