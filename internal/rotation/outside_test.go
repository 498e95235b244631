package rotation

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	certificatesv1 "k8s.io/api/certificates/v1"

	"github.com/carotate/carotate/internal/inspect"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

func modelCert(t *testing.T, certPEM []byte) *model.Cert {
	t.Helper()
	certs, err := inspect.CertsFromPEM("test", certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &certs[0]
}

// TestOutsideCredentials checks which client certificates finalize warns
// about: the old CA's, unexpired, not issued or reissued by carotate.
func TestOutsideCredentials(t *testing.T) {
	m, nodes := fixture(t)
	r := &Rotation{M: m, Nodes: nodes}
	oldCA, newCA, other := m.Old[model.ClusterCA], m.New[model.ClusterCA], newCA(t, "webhook-ca")
	cert := func(ca *pki.CA, cn string, org ...string) *model.Cert {
		c, _ := issue(t, ca, cn, org, x509.ExtKeyUsageClientAuth)
		return modelCert(t, c)
	}
	client, kubelet := certificatesv1.KubeAPIServerClientSignerName, certificatesv1.KubeAPIServerClientKubeletSignerName
	jane := cert(oldCA, "jane", "ops")
	unknownNode := cert(oldCA, "system:node:w-9", "system:nodes")
	opsConf := cert(oldCA, "ops")
	c := model.Cluster{
		API: model.API{IssuedCertificates: []model.IssuedCertificate{
			{CSR: "jane", Signer: client, Username: "kubernetes-admin", Groups: []string{"system:masters", "system:authenticated"}, Cert: jane},
			{CSR: "after-switch", Signer: client, Username: "kubernetes-admin", Cert: cert(newCA, "joe")},
			{CSR: "other-signer", Signer: "example.com/webhooks", Username: "kubernetes-admin", Cert: cert(other, "hook")},
			{CSR: "csr-cp-1", Signer: kubelet, Username: "system:bootstrap:abcdef", Cert: cert(oldCA, "system:node:cp-1", "system:nodes")},
			{CSR: "csr-w-9", Signer: kubelet, Username: "system:bootstrap:abcdef", Cert: unknownNode},
			{CSR: "garbled", Signer: client, Error: "does not parse"},
		}},
		Nodes: []model.Node{{Name: "cp-1", Kubeconfigs: []model.Kubeconfig{
			{Path: adminConf, ClientCert: cert(oldCA, "kubernetes-admin", "kubeadm:cluster-admins")},
			{Path: kubeletConf, ClientCert: cert(oldCA, "system:node:cp-1", "system:nodes")},
			{Path: KubernetesDir + "/ops.conf", ClientCert: opsConf},
			{Path: KubernetesDir + "/token.conf", Token: true},
		}}},
	}
	now := testNow
	want := []OutsideCredential{
		{Where: "CertificateSigningRequest csr-w-9", Subject: "CN=system:node:w-9,O=system:nodes", Expires: unknownNode.NotAfter,
			Signer: kubelet, Username: "system:bootstrap:abcdef"},
		{Where: "CertificateSigningRequest jane", Subject: "CN=jane,O=ops", Expires: jane.NotAfter,
			Signer: client, Username: "kubernetes-admin", Groups: []string{"system:masters", "system:authenticated"}},
		{Where: "cp-1:" + KubernetesDir + "/ops.conf", Subject: "CN=ops", Expires: opsConf.NotAfter},
	}
	if diff := cmp.Diff(want, r.OutsideCredentials(c, now)); diff != "" {
		t.Errorf("OutsideCredentials (-want +got):\n%s", diff)
	}
	if got, w := want[1].String(), "CertificateSigningRequest jane: CN=jane,O=ops, expires "+jane.NotAfter.Format(time.DateOnly)+", signer kubernetes.io/kube-apiserver-client, requested by kubernetes-admin (system:masters)"; got != w {
		t.Errorf("String() = %q", got)
	}
	// Once they have expired, finalize locks nothing out.
	if got := r.OutsideCredentials(c, now.Add(366*24*time.Hour)); len(got) != 0 {
		t.Errorf("expired certificates listed: %v", got)
	}
}
