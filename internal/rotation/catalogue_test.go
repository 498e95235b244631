package rotation

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/kubeconfig"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// TestHoldsAgreesWithContent: the runbook's node steps are built from
// what each row says it holds at each stage, so a row whose content
// changes between two stages must say so, or its change would belong to
// no step; and one that says it changes must change.
func TestHoldsAgreesWithContent(t *testing.T) {
	m, nodes := fixture(t)
	checkHoldsAgree(t, m, nodes)
}

func checkHoldsAgree(t *testing.T, m *Material, nodes []*Node) {
	t.Helper()
	for _, n := range nodes {
		for _, a := range rowsOn(n, m.roots(), nil) {
			p := a.path(m)
			for s := Prepared; s <= Finalized; s++ {
				before, err := m.At(n, p, s-1)
				if err != nil {
					t.Fatalf("%s:%s at %s: %v", n.Name, p, s-1, err)
				}
				after, err := m.At(n, p, s)
				if err != nil {
					t.Fatalf("%s:%s at %s: %v", n.Name, p, s, err)
				}
				changes, says := !before.equal(after), a.Holds[s] != a.Holds[s-1]
				if before.Absent && after.Absent && !has(m, n, p) && a.Kubeadm {
					continue // a kubeadm file this node does not have (super-admin.conf)
				}
				if changes != says && !strings.Contains(a.Holds[s]+a.Holds[s-1], "one control plane") {
					t.Errorf("%s:%s from %s to %s: content changes %v, Holds (%q → %q) says %v", n.Name, p, s-1, s, changes, a.Holds[s-1], a.Holds[s], says)
				}
			}
		}
	}
}

func has(m *Material, n *Node, p string) bool { _, ok := m.original(n.Name, p); return ok }

// TestHoldsNamesTheCertificates: where a row holds certificates or CA
// keys, Holds names them as the content has them, old and new in order.
func TestHoldsNamesTheCertificates(t *testing.T) {
	m, nodes := fixture(t)
	checkHoldsNames(t, m, nodes)
}

func checkHoldsNames(t *testing.T, m *Material, nodes []*Node) {
	t.Helper()
	oldC, newC := m.Old, m.New
	which := func(root model.CAKind, certPEM []byte, leaf bool) string {
		certs, err := pki.ParseCertificatesPEM("x", certPEM)
		if leaf && err != nil {
			certs, _, err = pki.ParseCertificateAndKeyPEM("x", certPEM)
		}
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range certs {
			switch {
			case !leaf && c.Equal(oldC[root].Cert), leaf && c.CheckSignatureFrom(oldC[root].Cert) == nil:
				out = append(out, "old")
			case !leaf && c.Equal(newC[root].Cert), leaf && c.CheckSignatureFrom(newC[root].Cert) == nil:
				out = append(out, "new")
			default:
				out = append(out, "?")
			}
		}
		return strings.Join(out, " + ")
	}
	whichKey := func(root model.CAKind, keyPEM []byte) string {
		k, err := pki.ParsePrivateKeyPEM("x", keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case pki.KeyMatchesCertificate(k, oldC[root].Cert):
			return "old"
		case pki.KeyMatchesCertificate(k, newC[root].Cert):
			return "new"
		}
		return "?"
	}
	for _, n := range nodes {
		for _, a := range rowsOn(n, m.roots(), nil) {
			p := a.path(m)
			for s := Original; s <= Finalized; s++ {
				w, err := m.At(n, p, s)
				if err != nil {
					t.Fatal(err)
				}
				root := a.Roots
				var got string
				switch {
				case w.Absent && a.Kubeadm && !has(m, n, p):
					continue // a kubeadm file this node does not have (super-admin.conf)
				case w.Absent:
					got = "—"
				case a.Role == RoleCACert || a.Role == RoleTrustBundle || ((a.Role == RoleNewCA || a.Role == RoleSigningCopy) && !a.Secret):
					got = which(root[0], w.Data, false)
				case a.Role == RoleCAKey || a.Role == RoleNewCA || a.Role == RoleSigningCopy:
					got = whichKey(root[0], w.Data)
				case a.Role == RoleLeaf || a.Role == RoleClientCert || a.Role == RoleLeafNewKey:
					got = which(root[0], w.Data, true)
				case a.Role == RoleLeafKeyNewKey:
					crt, err := m.At(n, strings.TrimSuffix(p, ".key")+".crt", s)
					if err != nil {
						t.Fatal(err)
					}
					got = which(root[0], crt.Data, true)
					k, err := pki.ParsePrivateKeyPEM(p, w.Data)
					if err != nil {
						t.Fatal(err)
					}
					if c, err := pki.ParseCertificatePEM(p, crt.Data); err != nil || !pki.KeyMatchesCertificate(k, c) {
						t.Errorf("%s:%s at %s: the key does not match its certificate (%v)", n.Name, p, s, err)
					}
				case a.Role == RoleKubeconfig || a.Role == RoleKubeconfigCA:
					cfg, err := kubeconfig.Parse(p, w.Data)
					if err != nil {
						t.Fatal(err)
					}
					got = "CA " + which(model.ClusterCA, cfg.CAData, false)
					if len(cfg.ClientCertData) > 0 {
						got += "; client " + which(model.ClusterCA, cfg.ClientCertData, true)
					}
					if a.Role == RoleKubeconfigCA {
						got = strings.TrimPrefix(got, "CA ")
					}
				default:
					continue
				}
				if got != a.Holds[s] {
					t.Errorf("%s:%s at %s holds %q, its row says %q", n.Name, p, s, got, a.Holds[s])
				}
			}
		}
	}
}

// TestEveryReadAtStartIsRestarted: a change to a file that a static pod
// or the kubelet reads only at start comes with that restart in the same
// step (the measured reload table, in the catalogue's Readers).
func TestEveryReadAtStartIsRestarted(t *testing.T) {
	m, nodes := fixture(t)
	for s := Prepared; s <= Finalized; s++ {
		for _, n := range nodes {
			for _, part := range []func(*Artefact) bool{func(a *Artefact) bool { return !n.ControlPlane || !a.kubeletOnly() }, func(a *Artefact) bool { return n.ControlPlane && a.kubeletOnly() }} {
				tr := transition{node: n, to: s, rows: rowsChanging(n, s, m, part)}
				pods := map[string]bool{}
				for _, c := range tr.pods() {
					pods[c] = true
				}
				for _, a := range tr.rows {
					for _, rd := range a.Readers {
						if rd.Pickup != AtStart {
							continue
						}
						switch {
						case rd.Component == Kubelet:
							if len(tr.kubeletFiles(m)) == 0 {
								t.Errorf("%s %s: %s changes but the kubelet does not restart", n.Name, s, a.Path)
							}
						case manifestOf(rd.Component) != nil && !pods[rd.Component]:
							t.Errorf("%s %s: %s changes but %s, which reads it at start, does not restart", n.Name, s, a.Path, rd.Component)
						}
					}
				}
			}
		}
	}
}

// TestStepOrder: within a step, what exists at the stage moved to is
// written before the restarts and what does not is removed after them,
// and a link comes after the file it points at.
func TestStepOrder(t *testing.T) {
	m, nodes := fixture(t)
	cp, worker := nodes[0], nodes[1]
	cases := []struct {
		name          string
		n             *Node
		to, at        Stage
		kubelet       bool
		before, after []string
	}{
		{"trust on a control plane", cp, Trusted, Trusted, false,
			[]string{caCert, frontProxyCert, adminConf, kcmConf, schedConf, signingCert, signingKey, rootCAFile}, []string{superAdminConf}},
		{"trust undone on a control plane", cp, Trusted, Prepared, false,
			[]string{caCert, frontProxyCert, adminConf, kcmConf, schedConf}, []string{superAdminConf, signingCert, signingKey, rootCAFile}},
		{"switch of a worker", worker, Switched, Switched, true,
			[]string{caCert, kubeletConf, m.kubeletClientFile(), KubeletClientCurrent}, nil},
		{"switch of a worker undone", worker, Switched, Trusted, true,
			[]string{caCert, kubeletConf, KubeletClientCurrent}, []string{m.kubeletClientFile()}},
		{"finalize on a control plane", cp, Finalized, Finalized, false,
			[]string{caCert, frontProxyCert, adminConf, kcmConf, schedConf},
			[]string{superAdminConf, newCACert, newCAKey, newFrontCert, newFrontKey, signingCert, signingKey, signingNewCert, signingNewKey, rootCAFile}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := transition{node: c.n, to: c.to, rows: rowsChanging(c.n, c.to, m, func(a *Artefact) bool { return !c.n.ControlPlane || a.kubeletOnly() == c.kubelet })}
			before, after, err := tr.files(m, c.at)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(c.before, before); d != "" {
				t.Errorf("written before the restarts (-want +got):\n%s", d)
			}
			if d := cmp.Diff(c.after, after); d != "" {
				t.Errorf("after the restarts (-want +got):\n%s", d)
			}
		})
	}
}

// TestREADMECatalogueTable: the README's design section shows the
// catalogue as CatalogueTable prints it.
func TestREADMECatalogueTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- catalogue:begin (generated from internal/rotation/catalogue.go) -->\n", "<!-- catalogue:end -->"
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no catalogue table between %q and %q", strings.TrimSpace(begin), end)
	}
	if d := cmp.Diff(CatalogueTable(), s[i+len(begin):j]); d != "" {
		t.Errorf("README.md's catalogue table is not the catalogue's (-catalogue +README); paste CatalogueTable's output:\n%s", d)
	}
}
