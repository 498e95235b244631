package rotation

import (
	"crypto/x509"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/util/keyutil"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/state/backup"
)

var saRoots = Roots{RootClusterCA, RootFrontProxyCA, RootServiceAccountKey}

// saFixture is fixture's cluster rotating the service-account key too,
// with kubeadm's sa.key, sa.pub and kube-apiserver manifest on cp-1.
func saFixture(t *testing.T, oneAPIServer bool) (*Material, []*Node) {
	t.Helper()
	m, nodes := fixture(t)
	api, err := os.ReadFile("../manifest/testdata/kube-apiserver.yaml")
	if err != nil {
		t.Fatal(err)
	}
	old := genKey(t, pki.RSA2048)
	k, _ := old.MarshalPEM()
	pub, err := publicKeyPEM(old.Public())
	if err != nil {
		t.Fatal(err)
	}
	for p, f := range map[string]backup.File{saKey: {Content: k, Mode: 0o600}, saPub: {Content: pub, Mode: 0o600}, apiserverManifest: {Content: api, Mode: 0o600}} {
		m.Originals[fileKey{"cp-1", p}] = backup.File{Node: "cp-1", Path: p, Content: f.Content, Mode: f.Mode}
	}
	m.Roots, m.OneAPIServer = saRoots, oneAPIServer
	if m.OldSA, err = oldServiceAccountKey(m.Originals); err != nil {
		t.Fatal(err)
	}
	m.NewSA = genKey(t, pki.RSA2048)
	return m, nodes
}

func genKey(t *testing.T, alg pki.KeyAlgorithm) pki.PrivateKey {
	t.Helper()
	k, err := pki.SystemKeyGenerator{}.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keysIn names the public keys a sa.pub holds, "old" or "new", in order.
func keysIn(t *testing.T, m *Material, data []byte) string {
	t.Helper()
	keys, err := keyutil.ParsePublicKeysPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		der, _ := x509.MarshalPKIXPublicKey(k)
		switch {
		case string(der) == string(mustDER(t, m.OldSA)):
			out = append(out, "old")
		case string(der) == string(mustDER(t, m.NewSA)):
			out = append(out, "new")
		default:
			out = append(out, "?")
		}
	}
	return strings.Join(out, " + ")
}

func mustDER(t *testing.T, k pki.PrivateKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestServiceAccountStages: what sa.pub, sa.key and the apiserver's
// restart annotation hold at each stage, with one apiserver and with more.
func TestServiceAccountStages(t *testing.T) {
	for _, tc := range []struct {
		name      string
		one       bool
		key       []string
		restarted []string
	}{
		{"one apiserver", true, []string{"old", "old", "new", "new", "new"}, []string{"", "", "r-test/trust", "r-test/trust", ""}},
		{"several apiservers", false, []string{"old", "old", "old", "new", "new"}, []string{"", "", "r-test/trust", "r-test/switch", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, nodes := saFixture(t, tc.one)
			cp := nodes[0]
			var pubs, keys, restarts []string
			for _, s := range stages {
				w, err := m.At(cp, saPub, s)
				if err != nil {
					t.Fatal(err)
				}
				pubs = append(pubs, keysIn(t, m, w.Data))
				w, err = m.At(cp, saKey, s)
				if err != nil {
					t.Fatal(err)
				}
				k, err := pki.ParsePrivateKeyPEM("sa.key", w.Data)
				if err != nil {
					t.Fatal(err)
				}
				keys = append(keys, map[bool]string{true: "new", false: "old"}[k.Equal(m.NewSA)])
				if s != Original && w.Mode != SecretMode {
					t.Errorf("sa.key at %s has mode %04o", s, w.Mode)
				}
				w, err = m.At(cp, apiserverManifest, s)
				if err != nil {
					t.Fatal(err)
				}
				restarts = append(restarts, annotationOf("cp-1", apiserverManifest, w.Data))
			}
			if d := cmp.Diff([]string{"old", "old", "old + new", "old + new", "new"}, pubs); d != "" {
				t.Errorf("sa.pub (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.key, keys); d != "" {
				t.Errorf("sa.key (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.restarted, restarts); d != "" {
				t.Errorf("kube-apiserver restart annotation (-want +got):\n%s", d)
			}
			orig, _ := m.original("cp-1", apiserverManifest)
			if w, _ := m.At(cp, apiserverManifest, Finalized); string(w.Data) != string(orig.Content) {
				t.Error("the finalized kube-apiserver manifest is not kubeadm's bytes")
			}
		})
	}
}

// TestServiceAccountRowsLeftAloneByDefault: without the service-account
// key in the roots, nothing of it changes or is backed up.
func TestServiceAccountRowsLeftAloneByDefault(t *testing.T) {
	m, nodes := saFixture(t, true)
	m.Roots = DefaultRoots()
	for _, s := range stages {
		for _, p := range []string{saPub, saKey, apiserverManifest} {
			w, err := m.At(nodes[0], p, s)
			if err != nil {
				t.Fatal(err)
			}
			orig, _ := m.original("cp-1", p)
			if string(w.Data) != string(orig.Content) {
				t.Errorf("%s changes at %s in a rotation of %s", p, s, m.Roots)
			}
		}
		if w, _ := m.At(nodes[0], newSAKey, s); !w.Absent {
			t.Errorf("%s exists at %s in a rotation of %s", newSAKey, s, m.Roots)
		}
	}
	for _, p := range BackupPaths(true, DefaultRoots()) {
		if p == saKey || p == saPub || p == apiserverManifest {
			t.Errorf("BackupPaths of the default roots has %s", p)
		}
	}
	for _, p := range []string{saKey, saPub, apiserverManifest} {
		if !contains(BackupPaths(true, saRoots), p) {
			t.Errorf("BackupPaths with the service-account key lacks %s", p)
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestServiceAccountSteps: on a control plane, kube-apiserver restarts in
// a step of its own, first, in each phase that changes what it reads;
// with one apiserver, not in switch.
func TestServiceAccountSteps(t *testing.T) {
	for _, tc := range []struct {
		name string
		one  bool
		want map[Stage][]string
	}{
		{"one apiserver", true, map[Stage][]string{
			Prepared:  {"distribute the new CAs"},
			Trusted:   {"kube-apiserver trusts the new service-account key", "control plane trusts old and new", "kubelet trusts old and new"},
			Switched:  {"kube-apiserver signs tokens with the new service-account key", "control plane signs and serves with the new CA", "kubelet client certificate from the new CA"},
			Finalized: {"kube-apiserver trusts only the new service-account key", "control plane trusts only the new CA", "kubelet trusts only the new CA"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, nodes := saFixture(t, tc.one)
			r := &Rotation{M: m, Nodes: nodes[:1]}
			for s, want := range tc.want {
				var got []string
				for _, st := range r.nodeSteps(nodes[:1], s) {
					got = append(got, st.Name)
				}
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("%s (-want +got):\n%s", s, d)
				}
			}
			// With one apiserver, switch's apiserver step changes sa.key
			// only by name: the content is the trust stage's, so the step
			// neither writes nor restarts anything.
			tr := transition{node: nodes[0], to: Switched, rows: rowsChanging(nodes[0], Switched, m, stepGroups(nodes[0])[groupAPIServer])}
			for _, a := range tr.rows {
				before, _ := m.At(nodes[0], a.path(m), Trusted)
				after, _ := m.At(nodes[0], a.path(m), Switched)
				if !before.equal(after) {
					t.Errorf("%s changes at switch with one apiserver", a.Path)
				}
			}
		})
	}
}

// TestServiceAccountReadAtStartIsRestarted: a change to a file a component
// reads only at start is followed, on the same node in the same phase, by
// a restart of that component, in the same step or a later one.
func TestServiceAccountReadAtStartIsRestarted(t *testing.T) {
	for _, one := range []bool{true, false} {
		m, nodes := saFixture(t, one)
		for s := Prepared; s <= Finalized; s++ {
			for _, n := range nodes {
				restartedFrom := map[string]int{}
				groups := stepGroups(n)
				var trs []transition
				for i, keep := range groups {
					if keep == nil {
						continue
					}
					tr := transition{node: n, to: s, rows: rowsChanging(n, s, m, keep)}
					trs = append(trs, tr)
					for _, c := range tr.pods() {
						restartedFrom[c] = len(trs) - 1
					}
					_ = i
				}
				for i, tr := range trs {
					for _, a := range tr.rows {
						for _, rd := range a.Readers {
							if rd.Pickup != AtStart || rd.Component == Kubelet || manifestOf(rd.Component) == nil {
								continue
							}
							if j, ok := restartedFrom[rd.Component]; !ok || j < i {
								t.Errorf("one apiserver %v, %s %s: %s changes but %s, which reads it at start, does not restart after", one, n.Name, s, a.Path, rd.Component)
							}
						}
					}
				}
			}
		}
	}
}

// TestServiceAccountHoldsAgreesWithContent: Holds says a row changes
// exactly when its content does, for the service-account rows too (with
// one apiserver, sa.key's trust and the apiserver's switch are named but
// the same bytes).
func TestServiceAccountHoldsAgreesWithContent(t *testing.T) {
	for _, one := range []bool{true, false} {
		m, nodes := saFixture(t, one)
		for _, a := range append(slices.Clone(saRows), apiserverManifestRow) {
			for s := Prepared; s <= Finalized; s++ {
				before, _ := m.At(nodes[0], a.path(m), s-1)
				after, err := m.At(nodes[0], a.path(m), s)
				if err != nil {
					t.Fatal(err)
				}
				changes, says := !before.equal(after), a.Holds[s] != a.Holds[s-1]
				byName := strings.Contains(a.Holds[s]+a.Holds[s-1], "one control plane")
				if changes != says && !(says && byName) {
					t.Errorf("one apiserver %v: %s from %s to %s: content changes %v, Holds says %v", one, a.Path, s-1, s, changes, says)
				}
			}
		}
	}
}

// TestServiceAccountFlagsRefused: a control plane that signs or verifies
// tokens elsewhere than kubeadm's files is refused, naming the node and
// flag; extra verification keys are kept and listed.
func TestServiceAccountFlagsRefused(t *testing.T) {
	api, err := os.ReadFile("../manifest/testdata/kube-apiserver.yaml")
	if err != nil {
		t.Fatal(err)
	}
	edit := func(from, to string) []byte { return []byte(strings.Replace(string(api), from, to, 1)) }
	const signing = "    - --service-account-signing-key-file=/etc/kubernetes/pki/sa.key\n"
	const verify = "    - --service-account-key-file=/etc/kubernetes/pki/sa.pub\n"
	tests := []struct {
		name      string
		api, kcm  []byte
		want      string
		extraKeys []string
	}{
		{"kubeadm's", api, []byte(kcmYAML), "", nil},
		{"extra key kept", edit(verify, verify+"    - --service-account-key-file=/etc/keys/extra.pub\n"), []byte(kcmYAML), "", []string{"/etc/keys/extra.pub"}},
		{"external signer", edit(signing, "    - --service-account-signing-endpoint=/run/signer.sock\n"), []byte(kcmYAML), "node cp-1: kube-apiserver signs tokens through --service-account-signing-endpoint=/run/signer.sock, an external signer", nil},
		{"other signing key", edit(signing, "    - --service-account-signing-key-file=/etc/keys/sa.key\n"), []byte(kcmYAML), `node cp-1: kube-apiserver --service-account-signing-key-file="/etc/keys/sa.key", not kubeadm's /etc/kubernetes/pki/sa.key`, nil},
		{"sa.pub not verified", edit(verify, "    - --service-account-key-file=/etc/keys/sa.pub\n"), []byte(kcmYAML), "node cp-1: kube-apiserver's --service-account-key-file (/etc/keys/sa.pub) does not name kubeadm's /etc/kubernetes/pki/sa.pub", nil},
		{"kcm elsewhere", api, []byte(strings.Replace(kcmYAML, "pki/sa.key", "keys/sa.key", 1)), `node cp-1: kube-controller-manager --service-account-private-key-file="/etc/kubernetes/keys/sa.key"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkServiceAccountFlags("cp-1", tt.api, tt.kcm)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(tt.extraKeys, got.ExtraKeyFiles); d != "" {
					t.Errorf("extra key files (-want +got):\n%s", d)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "--roots") {
				t.Errorf("err = %v, want it to say %q and what to do with --roots", err, tt.want)
			}
		})
	}
}

// TestOldServiceAccountKeyRefused: control planes with different sa.key,
// or a sa.pub that does not verify sa.key, are refused.
func TestOldServiceAccountKeyRefused(t *testing.T) {
	m, _ := saFixture(t, false)
	other := genKey(t, pki.RSA2048)
	ok, _ := other.MarshalPEM()
	otherPub, _ := publicKeyPEM(other.Public())
	orig := func(edit func(map[fileKey]backup.File)) map[fileKey]backup.File {
		out := map[fileKey]backup.File{}
		for k, v := range m.Originals {
			out[k] = v
		}
		edit(out)
		return out
	}
	tests := []struct {
		name string
		orig map[fileKey]backup.File
		want string
	}{
		{"two keys", orig(func(o map[fileKey]backup.File) {
			o[fileKey{"cp-2", saKey}] = backup.File{Content: ok}
			o[fileKey{"cp-2", saPub}] = backup.File{Content: otherPub}
		}), "node cp-2: /etc/kubernetes/pki/sa.key is not the key on node cp-1"},
		{"sa.pub of another key", orig(func(o map[fileKey]backup.File) { o[fileKey{"cp-1", saPub}] = backup.File{Content: otherPub} }),
			"node cp-1: /etc/kubernetes/pki/sa.pub does not hold the public key of /etc/kubernetes/pki/sa.key"},
		{"no sa.pub", orig(func(o map[fileKey]backup.File) { delete(o, fileKey{"cp-1", saPub}) }), "node cp-1: /etc/kubernetes/pki/sa.pub is missing"},
		{"no sa.key", orig(func(o map[fileKey]backup.File) { delete(o, fileKey{"cp-1", saKey}) }), "no control-plane node has /etc/kubernetes/pki/sa.key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := oldServiceAccountKey(tt.orig); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestCheckServiceAccountKey: an imported key that is weak, of a type the
// apiserver cannot sign tokens with, or the key in use, is refused.
func TestCheckServiceAccountKey(t *testing.T) {
	old := genKey(t, pki.RSA2048)
	tests := []struct {
		name string
		key  pki.PrivateKey
		want string
	}{
		{"new RSA", genKey(t, pki.RSA3072), ""},
		{"new ECDSA", genKey(t, pki.ECDSAP256), ""},
		{"Ed25519", genKey(t, pki.Ed25519), "Ed25519 is not a key type for service-account tokens"},
		{"the key in use", old, "this is the service-account key in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckServiceAccountKey("--service-account-key", tt.key, old)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "--service-account-key") {
				t.Errorf("err = %v, want %q naming the flag", err, tt.want)
			}
		})
	}
}

// TestServiceAccountPhases: with the service-account key the runbook is
// still valid, re-mints legacy tokens where the signing key changes, and
// gates finalize on the tokens in use before any control plane distrusts
// the old key.
func TestServiceAccountPhases(t *testing.T) {
	m, nodes := saFixture(t, true)
	r := &Rotation{M: m, Nodes: nodes}
	phases := r.Phases()
	if err := engine.Validate(phases); err != nil {
		t.Fatal(err)
	}
	idx := func(p engine.Phase[*Rotation], name string) int {
		for i, s := range p.Steps {
			if s.Name == name {
				return i
			}
		}
		return -1
	}
	trust, sw, fin := phases[1], phases[2], phases[3]
	if i, j := idx(trust, "legacy tokens signed by the key in use, before trust"), idx(trust, "kube-apiserver trusts the new service-account key"); i < 0 || j < i {
		t.Errorf("trust: the legacy-token step (%d) must come before the apiserver's (%d)", i, j)
	}
	if i, j := idx(sw, "control plane signs and serves with the new CA"), idx(sw, "legacy tokens re-minted with the new service-account key"); i < 0 || j < i {
		t.Errorf("switch: the re-mint (%d) must come after the control plane's step (%d)", j, i)
	}
	if i, j := idx(fin, "no pod uses a token signed by the old service-account key"), idx(fin, "kube-apiserver trusts only the new service-account key"); i < 0 || j < i {
		t.Errorf("finalize: the token gate (%d) must come before the apiserver's step (%d)", i, j)
	}
	// A rollback undoes trust from the end: the apiservers sign with the
	// old key first, and the new-token check runs after every other
	// restart and before any apiserver drops the new key from sa.pub.
	if i := idx(trust, "kube-apiserver signs with the old service-account key again"); i != len(trust.Steps)-1 {
		t.Errorf("trust: the rollback's return to the old signing key is step %d of %d, want the last", i, len(trust.Steps))
	}
	gate := idx(trust, "no pod uses a token signed by the new service-account key")
	for i, s := range trust.Steps {
		switch {
		case s.Name == "kube-apiserver trusts the new service-account key" && i > gate:
			t.Errorf("trust: %s's apiserver step (%d) comes after the new-token check (%d)", s.Target.Node, i, gate)
		case s.Target.Node != "" && s.Name != "kube-apiserver trusts the new service-account key" && i < gate:
			t.Errorf("trust: %q on %s (%d) comes before the new-token check (%d)", s.Name, s.Target.Node, i, gate)
		}
	}
	r.M.Roots = DefaultRoots()
	for _, p := range r.Phases() {
		for _, s := range p.Steps {
			if strings.Contains(s.Name, "token") || strings.Contains(s.Name, "service-account") {
				t.Errorf("%s: %q runs in a rotation of %s", p.Name, s.Name, r.M.Roots)
			}
		}
	}
}

// TestServiceAccountKeysKept: Save keeps the old and new service-account
// keys sealed twice each, and Load gives back the same pair; a keys file
// that does not match the backup is refused.
func TestServiceAccountKeysKept(t *testing.T) {
	m, _ := saFixture(t, true)
	s, _ := testStore(t, m.RotationID)
	s.Roots = saRoots
	if err := s.Save(m, testNow); err != nil {
		t.Fatal(err)
	}
	got, err := s.DurableKeyCopies(m)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"old/cluster": 2, "old/front-proxy": 2, "new/cluster": 2, "new/front-proxy": 2, "old/service-account": 2, "new/service-account": 2}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("sealed copies (-want +got):\n%s", d)
	}
	loaded, err := s.Load(m.RotationID)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.OldSA.Equal(m.OldSA) || !loaded.NewSA.Equal(m.NewSA) || !loaded.OneAPIServer || !loaded.Roots.Equal(saRoots) {
		t.Errorf("loaded the service-account pair %v → %v (one apiserver %v, roots %v), want %v → %v", loaded.OldSA, loaded.NewSA, loaded.OneAPIServer, loaded.Roots, m.OldSA, m.NewSA)
	}
	other := *m
	other.NewSA = genKey(t, pki.RSA2048)
	if err := s.saveServiceAccountKeys(&other, testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(m.RotationID); err == nil || !strings.Contains(err.Error(), "changed by hand") {
		t.Errorf("Load with another new key = %v, want a refusal", err)
	}
}

// TestExtraServiceAccountKeysListed: verification keys carotate did not
// write are named for the plan.
func TestExtraServiceAccountKeysListed(t *testing.T) {
	m, _ := saFixture(t, true)
	k := fileKey{"cp-1", apiserverManifest}
	f := m.Originals[k]
	f.Content = []byte(strings.Replace(string(f.Content), "    - --service-account-key-file=/etc/kubernetes/pki/sa.pub\n",
		"    - --service-account-key-file=/etc/kubernetes/pki/sa.pub\n    - --service-account-key-file=/etc/keys/extra.pub\n", 1))
	m.Originals[k] = f
	if d := cmp.Diff([]string{"cp-1:/etc/keys/extra.pub"}, m.extraServiceAccountKeys()); d != "" {
		t.Errorf("extra keys (-want +got):\n%s", d)
	}
	if d := m.serviceAccountKeyDiff(); d.After == nil || !strings.Contains(*d.After, "RSA-2048") {
		t.Errorf("key diff %+v does not name the key type", d)
	}
}

// TestApiserverSignsWithNew: which restart annotation means the running
// apiserver signs with the new key, the one a rollback must restart first.
func TestApiserverSignsWithNew(t *testing.T) {
	for _, one := range []bool{true, false} {
		m, nodes := saFixture(t, one)
		r := &Rotation{M: m, Nodes: nodes}
		id := m.RotationID
		want := map[string]bool{
			"":                         false,
			"r-other/switch":           false,
			id + "/" + rollbackSigning: false,
			id + "/trust":              one, // one apiserver signs with the new key from trust
			id + "/switch":             true,
		}
		for restart, w := range want {
			if got := r.apiserverSignsWithNew(restart); got != w {
				t.Errorf("one apiserver %v, annotation %q: signs with the new key = %v, want %v", one, restart, got, w)
			}
		}
	}
}
