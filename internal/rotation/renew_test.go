package rotation

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// renewalFixture is fixture's cluster with a renewal's material: each new
// CA the old one renewed, no leaf reissued.
func renewalFixture(t *testing.T) (*Material, []*Node) {
	t.Helper()
	m, nodes := fixture(t)
	for k, o := range m.Old {
		ca, err := pki.RenewCA(o, pki.RenewOptions{Now: testNow.Add(24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		m.New[k] = ca
	}
	m.Renew, m.Leaves = true, map[fileKey]Leaf{}
	if !RenewsCAs(m.Old, m.New) {
		t.Fatal("RenewsCAs does not see the renewal")
	}
	return m, nodes
}

// TestRenewalChangesOnlyTheBundles: a renewal writes the renewed
// certificate beside the old one where the old one is trusted, keeps
// every key and leaf, changes nothing at switch, and leaves every
// certificate the old CA signed verifying against what finalize leaves.
func TestRenewalChangesOnlyTheBundles(t *testing.T) {
	m, nodes := renewalFixture(t)
	for _, n := range nodes {
		for _, a := range rowsOn(n, m.roots(), nil) {
			p := a.path(m)
			tr, err := m.At(n, p, Trusted)
			if err != nil {
				t.Fatal(err)
			}
			sw, err := m.At(n, p, Switched)
			if err != nil {
				t.Fatal(err)
			}
			if !tr.equal(sw) {
				t.Errorf("%s:%s changes at a renewal's switch", n.Name, p)
			}
			if h := m.holds(a); h[Switched] != h[Trusted] {
				t.Errorf("%s:%s holds %q at trust and %q at switch; the plan would show a change", n.Name, p, h[Trusted], h[Switched])
			}
			if a.Role != RoleCAKey && a.Role != RoleLeaf && a.Role != RoleLeafKey && a.Role != RoleClientLink {
				continue
			}
			orig, _ := m.original(n.Name, p)
			for _, s := range stages {
				w, err := m.At(n, p, s)
				if err != nil {
					t.Fatal(err)
				}
				if string(w.Data) != string(orig.Content) && w.Link != string(orig.Content) {
					t.Errorf("%s:%s (%s) changes at %s in a renewal", n.Name, p, a.Role, s)
				}
			}
		}
		got := certsAt(t, m, n, caCert, Trusted)
		if len(got) != 2 || !got[0].Equal(m.Old[model.ClusterCA].Cert) || !got[1].Equal(m.New[model.ClusterCA].Cert) {
			t.Errorf("%s: ca.crt at trust holds %d certificates, want the old then the renewed", n.Name, len(got))
		}
		final := certsAt(t, m, n, caCert, Finalized)
		if len(final) != 1 || !final[0].Equal(m.New[model.ClusterCA].Cert) {
			t.Fatalf("%s: ca.crt once finalized holds %d certificates, want the renewed one alone", n.Name, len(final))
		}
		// Every certificate on the node from before still verifies
		// against it alone.
		roots := x509.NewCertPool()
		roots.AddCert(final[0])
		at := testNow.Add(25 * time.Hour)
		for key, f := range m.Originals {
			if key.Node != n.Name || !strings.HasSuffix(key.Path, ".crt") || key.Path == caCert || key.Path == frontProxyCert {
				continue
			}
			certs, err := pki.ParseCertificatesPEM(key.String(), f.Content)
			if err != nil {
				t.Fatal(err)
			}
			if certs[0].CheckSignatureFrom(m.Old[model.ClusterCA].Cert) != nil {
				continue // the front proxy's
			}
			if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Errorf("%s no longer verifies against the renewed ca.crt: %v", key, err)
			}
		}
	}
	cp := nodes[0]
	kcm, err := m.At(cp, kcmManifest, Trusted)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kcm.Data), "--cluster-signing-cert-file="+signingCert) {
		t.Errorf("KCM does not sign with carotate's copy at trust:\n%s", kcm.Data)
	}
	signing := certsAt(t, m, cp, signingCert, Trusted)
	if len(signing) != 1 || !signing[0].Equal(m.New[model.ClusterCA].Cert) {
		t.Error("KCM's signing copy is not the renewed certificate")
	}
	if g := groupRows(cp, Switched, m); len(g[groupAPIServer])+len(g[groupControlPlane])+len(g[groupKubelet]) != 0 {
		t.Errorf("a renewal's switch has node steps: %v", g)
	}
	for _, a := range groupRows(cp, Trusted, m)[groupAPIServer] {
		if a.Component == "kube-apiserver" {
			t.Error("a renewal restarts kube-apiserver at trust")
		}
	}
}

// TestRenewalWithLeaves: --leaves reissues them from the renewed CA at
// switch, and still keeps the CA keys.
func TestRenewalWithLeaves(t *testing.T) {
	m, nodes := renewalFixture(t)
	if err := m.ReissueLeaves(nodes, testNow.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	cp := nodes[0]
	leaf := certsAt(t, m, cp, PKIDir+"/apiserver.crt", Switched)
	orig := certsAt(t, m, cp, PKIDir+"/apiserver.crt", Original)
	if leaf[0].Equal(orig[0]) || leaf[0].CheckSignatureFrom(m.New[model.ClusterCA].Cert) != nil {
		t.Error("--leaves: apiserver.crt is not reissued at switch")
	}
	key, err := m.At(cp, caKey, Finalized)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := m.original(cp.Name, caKey)
	if string(key.Data) != string(o.Content) {
		t.Error("--leaves: ca.key changes in a renewal")
	}
}

func TestRenewRefuses(t *testing.T) {
	m, nodes := fixture(t)
	for _, tc := range []struct {
		name string
		src  Source
		want string
	}{
		{"service-account key", Source{Renew: true, Roots: Roots{RootClusterCA, RootServiceAccountKey}}, "no certificate to renew"},
		{"etcd", Source{Renew: true, Roots: Roots{RootEtcdCA}}, "does not renew the etcd CA"},
		{"import", Source{Renew: true, Import: map[model.CAKind]*pki.CA{model.ClusterCA: m.New[model.ClusterCA]}}, "import flags are for `carotate rotate`"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewMaterial(t.Context(), tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
	// A control plane without the CA key.
	m.Renew = true
	second := &Node{Name: "cp-2", ControlPlane: true}
	err := m.renewCAs(Source{Nodes: append(nodes, second), Now: testNow.Add(24 * time.Hour)})
	if err == nil || !strings.Contains(err.Error(), "node cp-2: /etc/kubernetes/pki/ca.key is missing") {
		t.Fatalf("err = %v, want one naming cp-2's missing ca.key", err)
	}
}
