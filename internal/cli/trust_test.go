package cli

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/state"
	"github.com/carotate/carotate/internal/state/backup"
)

// TestFindInProgress: the client trusts the new CA of every rotation in
// progress; with finalized, of a finalized one too, after those in
// progress; never of a rolled-back one, whose new CA nothing serves from.
func TestFindInProgress(t *testing.T) {
	root := t.TempDir()
	key, err := backup.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	rotations := []struct{ cluster, rotation, phase string }{
		{"a-finalized", "r-a", "finalized"},
		{"b-rolled-back", "r-b", "rolled-back"},
		{"c-switched", "r-c", "switch"},
		{"d-no-ca-yet", "r-d", ""},
	}
	cas := map[string]*pki.CA{}
	for _, r := range rotations {
		d, err := state.Open(root, r.cluster)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.SaveRecord(state.Record{RotationID: r.rotation, Phase: r.phase}); err != nil {
			t.Fatal(err)
		}
		rd, err := state.Open(d.Path(), r.rotation)
		if err != nil {
			t.Fatal(err)
		}
		if r.cluster == "d-no-ca-yet" {
			continue
		}
		ca, err := pki.GenerateCA(pki.GenerateOptions{Now: time.Now(), CommonName: r.rotation, Algorithm: pki.ECDSAP256})
		if err != nil {
			t.Fatal(err)
		}
		cas[r.cluster] = ca
		if err := rd.SaveCAs(state.NewCAs, key, map[model.CAKind]*pki.CA{model.ClusterCA: ca}); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(found []inProgress) []string {
		var out []string
		for _, f := range found {
			if f.newCert.Subject.CommonName != f.rec.RotationID {
				t.Errorf("%s: the new CA of another rotation (%s)", f.rec.RotationID, f.newCert.Subject.CommonName)
			}
			out = append(out, f.clusterID+"/"+f.rec.RotationID)
		}
		return out
	}
	if diff := cmp.Diff([]string{"c-switched/r-c"}, ids(findInProgress(root, false))); diff != "" {
		t.Errorf("in progress only (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"c-switched/r-c", "a-finalized/r-a"}, ids(findInProgress(root, true))); diff != "" {
		t.Errorf("with the finalized (-want +got):\n%s", diff)
	}
	if got := findInProgress(t.TempDir()+"/missing", true); len(got) != 0 {
		t.Errorf("a missing state directory: %v", ids(got))
	}

	// An apiserver certificate the kubeconfig does not trust is explained
	// only when a finalized rotation's new CA signed it.
	serving := func(ca *pki.CA) error {
		tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "kube-apiserver"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
		leaf, err := pki.Reissue(tmpl, ca, pki.ReissueOptions{Now: time.Now(), Source: "test", NewKey: true})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Errorf("Get \"https://10.0.0.1:6443/api/v1/namespaces/kube-system\": %w", x509.UnknownAuthorityError{Cert: leaf.Cert})
	}
	if got := staleKubeconfig(root, serving(cas["a-finalized"])); !strings.Contains(got, "rotation r-a (record: finalized)") || !strings.Contains(got, "/etc/kubernetes/admin.conf") {
		t.Errorf("signed by the finalized rotation's CA: %q", got)
	}
	stranger, err := pki.GenerateCA(pki.GenerateOptions{Now: time.Now(), CommonName: "stranger", Algorithm: pki.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"signed by the rolled-back rotation's CA": serving(cas["b-rolled-back"]),
		"signed by a CA carotate never made":      serving(stranger),
		"another error":                           errors.New("connection refused"),
	} {
		if got := staleKubeconfig(root, err); got != "" {
			t.Errorf("%s: %q", name, got)
		}
	}
}
