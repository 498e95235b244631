package inspect

import (
	"crypto/x509"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// fixture is a one-node cluster whose cluster CA and front-proxy CA have the
// SAME subject (CN=kubernetes) but different keys, so that only signatures
// can tell which one signed what.
type fixture struct {
	cluster, frontProxy   *pki.CA
	apiserver, proxy, adm *x509.Certificate
	node                  model.Node
	api                   model.API
}

func newFixture(t *testing.T) fixture {
	now := testNow()
	f := fixture{cluster: newCA(t, "kubernetes", now), frontProxy: newCA(t, "kubernetes", now)}
	if f.cluster.Cert.Subject.String() != f.frontProxy.Cert.Subject.String() {
		t.Fatal("the fixture needs two CAs with the same subject")
	}
	f.apiserver, _ = newLeaf(t, f.cluster, leafSpec{cn: "kube-apiserver", usage: x509.ExtKeyUsageServerAuth, ips: []string{"10.0.0.10"}}, now)
	f.proxy, _ = newLeaf(t, f.frontProxy, leafSpec{cn: "front-proxy-client", usage: x509.ExtKeyUsageClientAuth}, now)
	f.adm, _ = newLeaf(t, f.cluster, leafSpec{cn: "kubernetes-admin", orgs: []string{"kubeadm:cluster-admins"}, usage: x509.ExtKeyUsageClientAuth}, now)
	caKeyFP, err := pki.PublicKeyFingerprint(f.cluster.Key.Public())
	if err != nil {
		t.Fatal(err)
	}
	const pkiDir = "/etc/kubernetes/pki/"
	f.node = model.Node{
		Name: "cp-1", Reachable: true,
		Files: []model.File{
			{Path: pkiDir + "apiserver.crt", Kind: model.FileCertificate, Certs: []model.Cert{CertOf(f.apiserver)}},
			{Path: pkiDir + "ca.crt", Kind: model.FileCertificate, Certs: []model.Cert{CertOf(f.cluster.Cert)}},
			{Path: pkiDir + "ca.key", Kind: model.FileKey, KeySPKISHA256: caKeyFP},
			{Path: pkiDir + "front-proxy-ca.crt", Kind: model.FileCertificate, Certs: []model.Cert{CertOf(f.frontProxy.Cert)}},
			{Path: pkiDir + "front-proxy-client.crt", Kind: model.FileCertificate, Certs: []model.Cert{CertOf(f.proxy)}},
		},
		Manifests: []model.Manifest{{
			Path: "/etc/kubernetes/manifests/kube-apiserver.yaml", Component: "kube-apiserver",
			Flags: []model.Flag{
				{Name: "advertise-address", Value: "10.0.0.10"},
				{Name: "client-ca-file", Value: pkiDir + "ca.crt"},
				{Name: "proxy-client-cert-file", Value: pkiDir + "front-proxy-client.crt"},
				{Name: "requestheader-client-ca-file", Value: pkiDir + "front-proxy-ca.crt"},
				{Name: "tls-cert-file", Value: pkiDir + "apiserver.crt"},
			},
		}},
		Kubeconfigs: []model.Kubeconfig{{
			Path: "/etc/kubernetes/admin.conf", Role: "admin", Server: "https://10.0.0.10:6443",
			Cluster: "kubernetes", User: "kubernetes-admin",
			CACerts: []model.Cert{CertOf(f.cluster.Cert)}, ClientCert: ptr(CertOf(f.adm)),
		}},
	}
	f.api = model.API{
		RootCAConfigMaps: []model.CABundle{{
			Location: model.Location{Object: "ConfigMap default/kube-root-ca.crt", Field: "data[ca.crt]"},
			Certs:    []model.Cert{CertOf(f.cluster.Cert)},
		}},
		RequestHeaderClientCA: &model.CABundle{
			Location: model.Location{Object: "ConfigMap kube-system/extension-apiserver-authentication", Field: "data[requestheader-client-ca-file]"},
			Certs:    []model.Cert{CertOf(f.frontProxy.Cert)},
		},
	}
	return f
}

func ptr[T any](v T) *T { return &v }

func TestAssembleCAsBySignature(t *testing.T) {
	f := newFixture(t)
	got := Assemble([]model.Node{f.node}, f.api, testNow())

	clusterFP, proxyFP := pki.SPKIFingerprint(f.cluster.Cert), pki.SPKIFingerprint(f.frontProxy.Cert)
	withIssuer := func(c *x509.Certificate, issuer string) model.Cert {
		m := CertOf(c)
		m.IssuerSPKISHA256 = issuer
		return m
	}
	const pkiDir = "/etc/kubernetes/pki/"
	want := []model.CA{
		{
			Kind:     model.ClusterCA,
			Cert:     withIssuer(f.cluster.Cert, clusterFP),
			KeyFiles: []model.Location{{Node: "cp-1", Path: pkiDir + "ca.key"}},
			References: []model.Location{
				{Object: "ConfigMap default/kube-root-ca.crt", Field: "data[ca.crt]"},
				{Node: "cp-1", Path: "/etc/kubernetes/admin.conf", Field: "clusters[kubernetes].certificate-authority-data"},
				{Node: "cp-1", Path: pkiDir + "ca.crt"},
				{Node: "cp-1", Path: pkiDir + "ca.crt", Flag: "kube-apiserver --client-ca-file"},
			},
			Signed: []model.Location{
				{Node: "cp-1", Path: "/etc/kubernetes/admin.conf", Field: "users[kubernetes-admin].client-certificate-data"},
				{Node: "cp-1", Path: pkiDir + "apiserver.crt"},
				{Node: "cp-1", Path: pkiDir + "apiserver.crt", Flag: "kube-apiserver --tls-cert-file"},
			},
		},
		{
			Kind: model.FrontProxyCA,
			Cert: withIssuer(f.frontProxy.Cert, proxyFP),
			References: []model.Location{
				{Object: "ConfigMap kube-system/extension-apiserver-authentication", Field: "data[requestheader-client-ca-file]"},
				{Node: "cp-1", Path: pkiDir + "front-proxy-ca.crt"},
				{Node: "cp-1", Path: pkiDir + "front-proxy-ca.crt", Flag: "kube-apiserver --requestheader-client-ca-file"},
			},
			Signed: []model.Location{
				{Node: "cp-1", Path: pkiDir + "front-proxy-client.crt"},
				{Node: "cp-1", Path: pkiDir + "front-proxy-client.crt", Flag: "kube-apiserver --proxy-client-cert-file"},
			},
		},
	}
	if diff := cmp.Diff(want, got.CAs, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("CAs (-want +got):\n%s", diff)
	}

	// Every certificate in the output carries its issuer; the input is untouched.
	n := got.Nodes[0]
	for _, tc := range []struct {
		name string
		got  model.Cert
		want string
	}{
		{"apiserver.crt", n.Files[0].Certs[0], clusterFP},
		{"front-proxy-client.crt", n.Files[4].Certs[0], proxyFP},
		{"admin.conf client", *n.Kubeconfigs[0].ClientCert, clusterFP},
		{"kube-root-ca.crt", got.API.RootCAConfigMaps[0].Certs[0], clusterFP},
	} {
		if tc.got.IssuerSPKISHA256 != tc.want {
			t.Errorf("%s: issuer %q, want %q", tc.name, tc.got.IssuerSPKISHA256, tc.want)
		}
	}
	if f.node.Files[0].Certs[0].IssuerSPKISHA256 != "" || f.node.Kubeconfigs[0].ClientCert.IssuerSPKISHA256 != "" {
		t.Error("Assemble modified its input")
	}
}

func TestAssembleEdges(t *testing.T) {
	f := newFixture(t)
	worker := model.Node{
		Name: "w-1", Reachable: true,
		Files: []model.File{
			{Path: "/etc/kubernetes/pki/ca.crt", Kind: model.FileCertificate, Certs: []model.Cert{CertOf(f.cluster.Cert)}},
		},
		Kubelet: &model.Kubelet{ConfigPath: "/var/lib/kubelet/config.yaml", ClientCAFile: "/etc/kubernetes/pki/ca.crt"},
	}
	got := Assemble([]model.Node{worker, f.node}, f.api, testNow())
	clusterFP, proxyFP := pki.SPKIFingerprint(f.cluster.Cert), pki.SPKIFingerprint(f.frontProxy.Cert)
	clientCA := model.Location{Node: "cp-1", Path: "/etc/kubernetes/pki/ca.crt", Flag: "kube-apiserver --client-ca-file"}
	want := []model.TrustEdge{
		{
			Client: "admin@cp-1", Server: "kube-apiserver@cp-1",
			Trusts: []string{clusterFP}, TrustsFrom: model.Location{Node: "cp-1", Path: "/etc/kubernetes/admin.conf", Field: "clusters[kubernetes].certificate-authority-data"},
			Presents: clusterFP, PresentsFrom: model.Location{Node: "cp-1", Path: "/etc/kubernetes/admin.conf", Field: "users[kubernetes-admin].client-certificate-data"},
			Accepts: []string{clusterFP}, AcceptsFrom: clientCA,
		},
		{
			Client: "kube-apiserver@cp-1", Server: "extension-apiservers",
			Presents: proxyFP, PresentsFrom: model.Location{Node: "cp-1", Path: "/etc/kubernetes/pki/front-proxy-client.crt", Flag: "kube-apiserver --proxy-client-cert-file"},
			Accepts: []string{proxyFP}, AcceptsFrom: f.api.RequestHeaderClientCA.Location,
		},
		{
			// No --kubelet-client-certificate in the fixture: nothing presented.
			Client: "kube-apiserver@cp-1", Server: "kubelet@w-1",
			Accepts: []string{clusterFP}, AcceptsFrom: model.Location{Node: "w-1", Path: "/etc/kubernetes/pki/ca.crt", Flag: "KubeletConfiguration clientCAFile"},
		},
		{
			Client: "pods using ConfigMap default/kube-root-ca.crt", Server: "kube-apiserver@cp-1",
			Trusts: []string{clusterFP}, TrustsFrom: f.api.RootCAConfigMaps[0].Location,
		},
	}
	if diff := cmp.Diff(want, got.Edges, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Edges (-want +got):\n%s", diff)
	}
}

func TestAssembleServiceAccountKeys(t *testing.T) {
	node := model.Node{Name: "cp-1", Files: []model.File{
		{Path: "/etc/kubernetes/pki/sa.key", Kind: model.FileKey, KeySPKISHA256: "aa", KeyAlgorithm: "RSA-2048"},
		{Path: "/etc/kubernetes/pki/sa.pub", Kind: model.FilePublicKey, KeySPKISHA256: "aa", KeyAlgorithm: "RSA-2048"},
		{Path: "/etc/kubernetes/pki/other.key", Kind: model.FileKey, KeySPKISHA256: "bb"},
	}}
	got := Assemble([]model.Node{node}, model.API{}, testNow())
	want := []model.CA{{
		Kind:         model.ServiceAccountCA,
		Cert:         model.Cert{SPKISHA256: "aa"},
		KeyAlgorithm: "RSA-2048",
		KeyFiles:     []model.Location{{Node: "cp-1", Path: "/etc/kubernetes/pki/sa.key"}},
		References:   []model.Location{{Node: "cp-1", Path: "/etc/kubernetes/pki/sa.pub"}},
	}}
	if diff := cmp.Diff(want, got.CAs, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("CAs (-want +got):\n%s", diff)
	}
}
