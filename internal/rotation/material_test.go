package rotation

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io/fs"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/kubeconfig"
	"github.com/carotate/carotate/internal/manifest"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/state/backup"
)

var apiserverLeaves = []string{"apiserver", "apiserver-kubelet-client", "front-proxy-client"}

var testNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

const kcmYAML = `apiVersion: v1
kind: Pod
metadata:
  labels:
    component: kube-controller-manager
    tier: control-plane
  name: kube-controller-manager
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-controller-manager
    - --client-ca-file=/etc/kubernetes/pki/ca.crt
    - --cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt
    - --cluster-signing-key-file=/etc/kubernetes/pki/ca.key
    - --kubeconfig=/etc/kubernetes/controller-manager.conf
    - --requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt
    - --root-ca-file=/etc/kubernetes/pki/ca.crt
    - --service-account-private-key-file=/etc/kubernetes/pki/sa.key
    image: registry.k8s.io/kube-controller-manager:v1.37.2
    name: kube-controller-manager
  hostNetwork: true
`

const schedYAML = `apiVersion: v1
kind: Pod
metadata:
  labels:
    component: kube-scheduler
  name: kube-scheduler
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-scheduler
    - --kubeconfig=/etc/kubernetes/scheduler.conf
    image: registry.k8s.io/kube-scheduler:v1.37.2
    name: kube-scheduler
  hostNetwork: true
`

func newCA(t *testing.T, cn string) *pki.CA {
	t.Helper()
	ca, err := pki.GenerateCA(pki.GenerateOptions{Now: testNow, CommonName: cn, Algorithm: pki.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue makes a leaf the way kubeadm does, signed by ca.
func issue(t *testing.T, ca *pki.CA, cn string, org []string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: org},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: []string{"kubernetes"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &k.PublicKey, ca.Key.Signer())
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pk, _ := pki.NewPrivateKey(k)
	keyPEM, _ = pk.MarshalPEM()
	return pki.EncodeCertificatePEM(c), keyPEM
}

func kubeconfigYAML(ca, cert, key []byte) []byte {
	b := base64.StdEncoding.EncodeToString
	return []byte(fmt.Sprintf(`apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: %s
    server: https://10.0.0.1:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: admin
  name: admin@kubernetes
current-context: admin@kubernetes
kind: Config
users:
- name: admin
  user:
    client-certificate-data: %s
    client-key-data: %s
`, b(ca), b(cert), b(key)))
}

// fixture is a control-plane node and a worker as kubeadm leaves them.
func fixture(t *testing.T) (*Material, []*Node) {
	t.Helper()
	oldC, oldF := newCA(t, "kubernetes"), newCA(t, "front-proxy-ca")
	m := &Material{RotationID: "r-test", Originals: map[fileKey]backup.File{},
		Old: map[model.CAKind]*pki.CA{model.ClusterCA: oldC, model.FrontProxyCA: oldF},
		New: map[model.CAKind]*pki.CA{model.ClusterCA: newCA(t, "kubernetes-ca-new"), model.FrontProxyCA: newCA(t, "front-proxy-ca-new")}}
	put := func(n, p string, data []byte, mode fs.FileMode) {
		m.Originals[fileKey{n, p}] = backup.File{Node: n, Path: p, Mode: mode, Content: data}
	}
	for _, n := range []string{"cp-1", "worker-1"} {
		put(n, caCert, oldC.CertPEM(), 0o644)
		kc, kk := issue(t, oldC, "system:node:"+n, []string{"system:nodes"}, x509.ExtKeyUsageClientAuth)
		target := KubeletPKIDir + "/kubelet-client-2026.pem"
		put(n, KubeletClientCurrent, []byte(target), fs.ModeSymlink|0o777)
		put(n, target, append(kc, kk...), 0o600)
		put(n, kubeletConf, []byte(strings.Replace(string(kubeconfigYAML(oldC.CertPEM(), kc, kk)),
			"    client-certificate-data: "+base64.StdEncoding.EncodeToString(kc)+"\n    client-key-data: "+base64.StdEncoding.EncodeToString(kk)+"\n",
			"    client-certificate: "+KubeletClientCurrent+"\n    client-key: "+KubeletClientCurrent+"\n", 1)), 0o600)
	}
	k, _ := oldC.Key.MarshalPEM()
	put("cp-1", caKey, k, 0o600)
	put("cp-1", frontProxyCert, oldF.CertPEM(), 0o644)
	fk, _ := oldF.Key.MarshalPEM()
	put("cp-1", frontProxyKey, fk, 0o600)
	for _, l := range apiserverLeaves {
		ca := oldC
		if l == "front-proxy-client" {
			ca = oldF
		}
		c, k := issue(t, ca, l, nil, x509.ExtKeyUsageClientAuth)
		put("cp-1", PKIDir+"/"+l+".crt", c, 0o644)
		put("cp-1", PKIDir+"/"+l+".key", k, 0o600)
	}
	for _, p := range []string{adminConf, kcmConf, schedConf} {
		c, k := issue(t, oldC, "user-"+p, nil, x509.ExtKeyUsageClientAuth)
		put("cp-1", p, kubeconfigYAML(oldC.CertPEM(), c, k), 0o600)
	}
	put("cp-1", kcmManifest, []byte(kcmYAML), 0o600)
	put("cp-1", schedManifest, []byte(schedYAML), 0o600)
	nodes := []*Node{{Name: "cp-1", ControlPlane: true}, {Name: "worker-1"}}
	if err := m.ReissueLeaves(nodes, testNow); err != nil {
		t.Fatal(err)
	}
	return m, nodes
}

var stages = []Stage{Original, Prepared, Trusted, Switched, Finalized}

func certsAt(t *testing.T, m *Material, n *Node, p string, s Stage) []*x509.Certificate {
	t.Helper()
	w, err := m.At(n, p, s)
	if err != nil {
		t.Fatal(err)
	}
	if w.Absent {
		return nil
	}
	c, err := pki.ParseCertificatesPEM(p, w.Data)
	if err != nil {
		t.Fatalf("%s at %s: %v", p, s, err)
	}
	return c
}

// TestInvariantsAtEveryStage checks the rules a rotation keeps at every
// stage (DESIGN.md, "Trust edges and invariants").
func TestInvariantsAtEveryStage(t *testing.T) {
	m, nodes := fixture(t)
	cp := nodes[0]
	oldC, newC := m.Old[model.ClusterCA], m.New[model.ClusterCA]
	for _, s := range stages {
		t.Run(s.String(), func(t *testing.T) {
			// The first certificate of ca.crt matches ca.key (kubeadm
			// takes certs[0] as the key's pair).
			for _, pair := range [][2]string{{caCert, caKey}, {frontProxyCert, frontProxyKey}} {
				certs := certsAt(t, m, cp, pair[0], s)
				kw, err := m.At(cp, pair[1], s)
				if err != nil {
					t.Fatal(err)
				}
				key, err := pki.ParsePrivateKeyPEM(pair[1], kw.Data)
				if err != nil {
					t.Fatal(err)
				}
				if !pki.KeyMatchesCertificate(key, certs[0]) {
					t.Errorf("the first certificate of %s does not match %s", pair[0], pair[1])
				}
				if kw.Mode != 0o600 {
					t.Errorf("%s mode %o, want 0600", pair[1], kw.Mode)
				}
			}
			// KCM signs from a single certificate that matches its key
			// (kubeadm#1350), and never from the new CA before trust.
			mw, err := m.At(cp, kcmManifest, s)
			if err != nil {
				t.Fatal(err)
			}
			signCert, _, _ := manifest.FlagValue("kcm", mw.Data, "kube-controller-manager", "cluster-signing-cert-file")
			signKey, _, _ := manifest.FlagValue("kcm", mw.Data, "kube-controller-manager", "cluster-signing-key-file")
			sc := certsAt(t, m, cp, signCert, s)
			if len(sc) != 1 {
				t.Fatalf("KCM's signing file %s holds %d certificates", signCert, len(sc))
			}
			kw, _ := m.At(cp, signKey, s)
			sk, err := pki.ParsePrivateKeyPEM(signKey, kw.Data)
			if err != nil || !pki.KeyMatchesCertificate(sk, sc[0]) {
				t.Errorf("KCM's signing key %s does not match %s (%v)", signKey, signCert, err)
			}
			if wantNew := s >= Switched; sc[0].Equal(newC.Cert) != wantNew {
				t.Errorf("KCM signs with %s at %s", sc[0].Subject, s)
			}
			// Every verifier trusts the CA the serving certificate is
			// from, and every client certificate's CA.
			serving := certsAt(t, m, cp, PKIDir+"/apiserver.crt", s)[0]
			for _, n := range nodes {
				trust := certsAt(t, m, n, caCert, s)
				if !signedByOne(serving, trust) {
					t.Errorf("%s: ca.crt does not trust the apiserver's serving certificate at %s", n.Name, s)
				}
				kw, _ := m.At(n, kubeletConf, s)
				kc, err := kubeconfig.Parse("kubelet.conf", kw.Data)
				if err != nil {
					t.Fatal(err)
				}
				kcTrust, err := pki.ParseCertificatesPEM("kubelet.conf", kc.CAData)
				if err != nil {
					t.Fatal(err)
				}
				if !signedByOne(serving, kcTrust) {
					t.Errorf("%s: kubelet.conf does not trust the apiserver's serving certificate at %s", n.Name, s)
				}
			}
			// The old CA is trusted until finalize, never after.
			trust := certsAt(t, m, cp, caCert, s)
			if hasCert(trust, oldC.Cert) != (s != Finalized) {
				t.Errorf("ca.crt trusts the old CA: %v at %s", hasCert(trust, oldC.Cert), s)
			}
			if hasCert(trust, newC.Cert) != (s >= Trusted) {
				t.Errorf("ca.crt trusts the new CA: %v at %s", hasCert(trust, newC.Cert), s)
			}
			// Nothing carotate adds is left outside a rotation.
			for _, p := range []string{signingCert, signingKey, signingNewCert, signingNewKey, rootCAFile, newCACert, newCAKey} {
				w, _ := m.At(cp, p, s)
				if (s == Original || s == Finalized) && !w.Absent {
					t.Errorf("%s exists at %s", p, s)
				}
			}
		})
	}
}

func signedByOne(c *x509.Certificate, cas []*x509.Certificate) bool {
	for _, ca := range cas {
		if c.CheckSignatureFrom(ca) == nil {
			return true
		}
	}
	return false
}

func hasCert(l []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range l {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// TestOriginalAndFinalizedLayout: rollback's target is the backup byte for
// byte, and finalize leaves the manifests byte for byte as kubeadm wrote
// them.
func TestOriginalAndFinalizedLayout(t *testing.T) {
	m, nodes := fixture(t)
	for k, f := range m.Originals {
		n := nodes[0]
		if k.Node == "worker-1" {
			n = nodes[1]
		}
		w, err := m.At(n, k.Path, Original)
		if err != nil {
			t.Fatal(err)
		}
		if f.Mode&fs.ModeSymlink != 0 {
			if w.Link != string(f.Content) {
				t.Errorf("%s: link %q at original, backup has %q", k, w.Link, f.Content)
			}
		} else if string(w.Data) != string(f.Content) {
			t.Errorf("%s differs from the backup at original", k)
		}
		if a := m.row(k.Path); a != nil && a.Role == RoleStaticPod {
			fw, _ := m.At(n, k.Path, Finalized)
			if string(fw.Data) != string(f.Content) {
				t.Errorf("%s differs from kubeadm's after finalize", k)
			}
		}
	}
}

// TestPhasesValidate: the runbook is a valid step list, every node step
// has an undo, and control-plane steps come before the workers in each
// phase.
func TestPhasesValidate(t *testing.T) {
	m, nodes := fixture(t)
	r := &Rotation{M: m, Nodes: nodes}
	phases := r.Phases()
	if err := engine.Validate(phases); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range phases {
		names = append(names, p.Name)
		sawWorker := false
		for _, s := range p.Steps {
			if s.Target.Node == "" {
				continue
			}
			if s.Undo == nil {
				t.Errorf("%s: %s on %s has no undo", p.Name, s.Name, s.Target.Node)
			}
			if s.Target.Node == "worker-1" {
				sawWorker = true
			} else if sawWorker {
				t.Errorf("%s: control-plane step %s after a worker's", p.Name, s.Name)
			}
		}
	}
	if got := strings.Join(names, ","); got != "prepare,trust,switch,finalize" {
		t.Errorf("phases %s", got)
	}
}

// TestServedLeavesCarryTheIntermediate: with an imported intermediate as
// the new cluster CA, apiserver.crt (and front-proxy-client.crt with an
// intermediate front-proxy CA) hold the leaf, then the intermediate, so a
// client that trusts only the root verifies them; the other leaves hold
// the leaf alone, and a self-signed CA adds nothing.
func TestServedLeavesCarryTheIntermediate(t *testing.T) {
	m, nodes := fixture(t)
	root := newCA(t, "offline-root")
	k, err := pki.SystemKeyGenerator{}.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "kubernetes-issuing"},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(5 * 365 * 24 * time.Hour), BasicConstraintsValid: true, IsCA: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}, root.Cert, k.Public(), root.Key.Signer())
	if err != nil {
		t.Fatal(err)
	}
	inter, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	m.New[model.ClusterCA] = &pki.CA{Cert: inter, Key: k, Chain: []*x509.Certificate{root.Cert}}
	if err := m.ReissueLeaves(nodes, testNow); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root.Cert)
	for _, tt := range []struct {
		path  string
		certs int
	}{{PKIDir + "/apiserver.crt", 2}, {PKIDir + "/apiserver-kubelet-client.crt", 1}, {PKIDir + "/front-proxy-client.crt", 1}} {
		certs := certsAt(t, m, nodes[0], tt.path, Finalized)
		if len(certs) != tt.certs {
			t.Errorf("%s holds %d certificates, want %d", tt.path, len(certs), tt.certs)
			continue
		}
		if tt.certs == 2 {
			if !certs[1].Equal(inter) {
				t.Errorf("%s: the second certificate is %s, want the intermediate", tt.path, certs[1].Subject)
			}
			pool := x509.NewCertPool()
			pool.AddCert(certs[1])
			if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool, CurrentTime: testNow, DNSName: "kubernetes", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Errorf("%s does not verify with the root alone: %v", tt.path, err)
			}
		}
	}
}
