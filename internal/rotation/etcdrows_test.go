package rotation

import (
	"crypto/x509"
	"os"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/state/backup"
)

var etcdLeaves = []string{"etcd/server", "etcd/peer", "etcd/healthcheck-client", "apiserver-etcd-client"}

// allFixture is saFixture's cluster rotating every root: kubeadm's etcd
// CA, its leaves and etcd's manifest on cp-1 too.
func allFixture(t *testing.T, oneAPIServer bool) (*Material, []*Node) {
	t.Helper()
	m, nodes := saFixture(t, oneAPIServer)
	etcdYAML, err := os.ReadFile("testdata/etcd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	oldE := newCA(t, "etcd-ca")
	put := func(p string, data []byte, mode uint32) {
		m.Originals[fileKey{"cp-1", p}] = backup.File{Node: "cp-1", Path: p, Content: data, Mode: 0o600}
	}
	put(etcdCACert, oldE.CertPEM(), 0o644)
	k, _ := oldE.Key.MarshalPEM()
	put(etcdCAKey, k, 0o600)
	for _, l := range etcdLeaves {
		c, k := issue(t, oldE, l, nil, x509.ExtKeyUsageClientAuth)
		put(PKIDir+"/"+l+".crt", c, 0o644)
		put(PKIDir+"/"+l+".key", k, 0o600)
	}
	put(etcdManifest, etcdYAML, 0o600)
	m.Old[model.EtcdCA], m.New[model.EtcdCA] = oldE, newCA(t, "etcd-ca-new")
	m.Roots = AllRoots()
	if err := m.ReissueLeaves(nodes, testNow); err != nil {
		t.Fatal(err)
	}
	return m, nodes
}

// TestEtcdRowsAgreeWithContent: the catalogue's checks hold with every
// root rotating, on one and on several control planes.
func TestEtcdRowsAgreeWithContent(t *testing.T) {
	for _, one := range []bool{true, false} {
		m, nodes := allFixture(t, one)
		checkHoldsAgree(t, m, nodes)
		checkHoldsNames(t, m, nodes)
	}
}

// TestEtcdLeavesGetNewKeys: every etcd leaf is reissued from the new etcd
// CA with a new key (a kept key could pair with the served certificate),
// and with the old one's subject and usages.
func TestEtcdLeavesGetNewKeys(t *testing.T) {
	m, nodes := allFixture(t, false)
	cp := nodes[0]
	for _, l := range etcdLeaves {
		crt, key := PKIDir+"/"+l+".crt", PKIDir+"/"+l+".key"
		oldCert := certsAt(t, m, cp, crt, Original)[0]
		newCert := certsAt(t, m, cp, crt, Switched)[0]
		if err := newCert.CheckSignatureFrom(m.New[model.EtcdCA].Cert); err != nil {
			t.Errorf("%s at switch: not signed by the new etcd CA: %v", l, err)
		}
		if newCert.Subject.String() != oldCert.Subject.String() || !slices.Equal(newCert.ExtKeyUsage, oldCert.ExtKeyUsage) {
			t.Errorf("%s: subject %q usages %v, want %q %v", l, newCert.Subject, newCert.ExtKeyUsage, oldCert.Subject, oldCert.ExtKeyUsage)
		}
		oldKey, _ := m.At(cp, key, Trusted)
		newKey, _ := m.At(cp, key, Switched)
		if oldKey.equal(newKey) {
			t.Errorf("%s: the key is kept at switch", l)
		}
		k, err := pki.ParsePrivateKeyPEM(key, newKey.Data)
		if err != nil || !pki.KeyMatchesCertificate(k, newCert) {
			t.Errorf("%s: the new key does not match the new certificate (%v)", l, err)
		}
		if !newKey.Secret || newKey.Mode != SecretMode {
			t.Errorf("%s: the new key is written as secret %v mode %o", l, newKey.Secret, newKey.Mode)
		}
	}
}

// TestEtcdSteps: on a control plane, etcd moves first in a step of its
// own that restarts only etcd (at trust and finalize, never at switch),
// and kube-apiserver, which reads the etcd CA bundle only at start,
// restarts in the next step.
func TestEtcdSteps(t *testing.T) {
	for _, one := range []bool{true, false} {
		m, nodes := allFixture(t, one)
		r := &Rotation{M: m, Nodes: nodes}
		cp := nodes[0]
		groups := stepGroups(cp)
		for _, s := range []Stage{Prepared, Trusted, Switched, Finalized} {
			etcd := transition{node: cp, to: s, rows: rowsChanging(cp, s, m, groups[groupEtcd])}
			api := transition{node: cp, to: s, rows: rowsChanging(cp, s, m, groups[groupAPIServer])}
			wantEtcd := map[Stage][]string{Trusted: {"etcd"}, Finalized: {"etcd"}}[s]
			if d := cmp.Diff(wantEtcd, etcd.pods()); d != "" {
				t.Errorf("one %v, %s: etcd's step restarts (-want +got):\n%s", one, s, d)
			}
			for _, a := range etcd.rows {
				if a.Component != "" && a.Component != "etcd" {
					t.Errorf("one %v, %s: etcd's step holds %s", one, s, a.Path)
				}
			}
			if s == Trusted || s == Finalized {
				if !slices.Contains(api.pods(), "kube-apiserver") {
					t.Errorf("one %v, %s: kube-apiserver does not restart after etcd/ca.crt changed", one, s)
				}
			}
		}
		if got, want := r.stepName(Trusted, groupAPIServer), "kube-apiserver trusts the new service-account key and the old and new etcd CA"; got != want {
			t.Errorf("step name %q, want %q", got, want)
		}
	}
}

// TestEtcdReadAtStartIsRestarted: with every root rotating, a change to
// a file a static pod reads only at start comes with its restart in the
// same step or a later one on that node, except a trust bundle whose
// certificates only change order (etcd/ca.crt at switch).
func TestEtcdReadAtStartIsRestarted(t *testing.T) {
	for _, one := range []bool{true, false} {
		m, nodes := allFixture(t, one)
		for s := Prepared; s <= Finalized; s++ {
			for _, n := range nodes {
				var trs []transition
				restartedFrom := map[string]int{}
				for _, keep := range stepGroups(n) {
					if keep == nil {
						continue
					}
					tr := transition{node: n, to: s, rows: rowsChanging(n, s, m, keep)}
					trs = append(trs, tr)
					for _, c := range tr.pods() {
						prev, _ := m.At(n, manifestOf(c).Path, s-1)
						next, _ := m.At(n, manifestOf(c).Path, s)
						if !prev.equal(next) {
							restartedFrom[c] = len(trs) - 1
						}
					}
				}
				for i, tr := range trs {
					for _, a := range tr.rows {
						prev, _ := m.At(n, a.path(m), s-1)
						next, _ := m.At(n, a.path(m), s)
						if prev.equal(next) || a.Role == RoleCACert && sameCertificates(t, m, n, a.path(m), s) {
							continue
						}
						for _, rd := range a.Readers {
							if rd.Pickup != AtStart || manifestOf(rd.Component) == nil {
								continue
							}
							if j, ok := restartedFrom[rd.Component]; !ok || j < i {
								t.Errorf("one %v, %s %s: %s changes but %s, which reads it at start, does not restart after", one, n.Name, s, a.Path, rd.Component)
							}
						}
					}
				}
			}
		}
	}
}

// sameCertificates says whether a bundle holds the same certificates at
// s-1 and s, in any order.
func sameCertificates(t *testing.T, m *Material, n *Node, p string, s Stage) bool {
	a, b := certsAt(t, m, n, p, s-1), certsAt(t, m, n, p, s)
	if len(a) != len(b) {
		return false
	}
	for _, c := range a {
		if !slices.ContainsFunc(b, c.Equal) {
			return false
		}
	}
	return true
}
