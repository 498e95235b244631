package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/carotate/carotate/internal/check"
	"github.com/carotate/carotate/internal/model"
)

var now = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

func cert(subject, spki, issuer string, isCA bool, left time.Duration) model.Cert {
	return model.Cert{Subject: subject, SPKISHA256: spki, IssuerSPKISHA256: issuer, IsCA: isCA, NotAfter: now.Add(left)}
}

const day = 24 * time.Hour

// mid-rotation: two cluster CAs of one subject, ca.crt a bundle of both,
// a kubeconfig whose client certificate no known CA issued, and the
// service-account key (no certificate).
func cluster() model.Cluster {
	oldCA := cert("CN=kubernetes", "old", "old", true, 100*day)
	newCA := cert("CN=kubernetes", "new", "new", true, 3650*day)
	leaf := cert("CN=kube-apiserver", "leaf", "new", false, 365*day)
	admin := cert("CN=kubernetes-admin", "adm", "elsewhere", false, 20*day)
	return model.Cluster{
		CAs: []model.CA{
			{Kind: model.ClusterCA, Cert: oldCA, KeyFiles: []model.Location{{Node: "cp-1", Path: "/etc/kubernetes/pki/ca.key"}}},
			{Kind: model.ClusterCA, Cert: newCA},
			{Kind: model.ServiceAccountCA, Cert: model.Cert{SPKISHA256: "sa"}, KeyAlgorithm: "RSA-2048"},
		},
		Nodes: []model.Node{{Name: "cp-1",
			Files: []model.File{
				{Path: "/etc/kubernetes/pki/ca.crt", Certs: []model.Cert{newCA, oldCA}},
				{Path: "/etc/kubernetes/pki/apiserver.crt", Certs: []model.Cert{leaf}},
			},
			Kubeconfigs: []model.Kubeconfig{{Path: "/etc/kubernetes/admin.conf", Role: "admin", CACerts: []model.Cert{oldCA}, ClientCert: &admin}},
		}},
	}
}

func TestExpiries(t *testing.T) {
	want := []Expiry{
		{Kind: "ca", Root: "cluster", Node: "cp-1", Path: "/etc/kubernetes/pki/ca.key", Subject: "CN=kubernetes", NotAfter: now.Add(100 * day)},
		{Kind: "ca", Root: "cluster", Subject: "CN=kubernetes", NotAfter: now.Add(3650 * day)},
		// the bundle's two CAs share every label: the first to expire is kept
		{Kind: "certificate", Root: "cluster", Node: "cp-1", Path: "/etc/kubernetes/pki/ca.crt", Subject: "CN=kubernetes", NotAfter: now.Add(100 * day)},
		{Kind: "certificate", Root: "cluster", Node: "cp-1", Path: "/etc/kubernetes/pki/apiserver.crt", Subject: "CN=kube-apiserver", NotAfter: now.Add(365 * day)},
		{Kind: "kubeconfig", Root: "", Node: "cp-1", Path: "/etc/kubernetes/admin.conf", Role: "admin", Subject: "CN=kubernetes-admin", NotAfter: now.Add(20 * day)},
	}
	if diff := cmp.Diff(want, Expiries(cluster())); diff != "" {
		t.Errorf("Expiries (-want +got):\n%s", diff)
	}
}

func TestCollector(t *testing.T) {
	clock := now
	c := NewCollector(func() time.Time { return clock })
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP carotate_check_up 1 if the last check inspected the API and every node, 0 if something could not be inspected.
# TYPE carotate_check_up gauge
carotate_check_up 0
`)); err != nil {
		t.Errorf("before the first check: %v", err)
	}

	c.Set(Result{Cluster: cluster(), Complete: true, Ended: now, Took: 1500 * time.Millisecond,
		Findings: []check.Finding{{Severity: check.Blocking}, {Severity: check.Warning}, {Severity: check.Warning}}})
	clock = now.Add(day) // a scrape a day later counts down
	want := `
# HELP carotate_certificate_expiry_seconds Seconds until the certificate's notAfter (negative once expired), as found by the last check.
# TYPE carotate_certificate_expiry_seconds gauge
carotate_certificate_expiry_seconds{kind="ca",node="",path="",role="",root="cluster",subject="CN=kubernetes"} 3.152736e+08
carotate_certificate_expiry_seconds{kind="ca",node="cp-1",path="/etc/kubernetes/pki/ca.key",role="",root="cluster",subject="CN=kubernetes"} 8.5536e+06
carotate_certificate_expiry_seconds{kind="certificate",node="cp-1",path="/etc/kubernetes/pki/apiserver.crt",role="",root="cluster",subject="CN=kube-apiserver"} 3.14496e+07
carotate_certificate_expiry_seconds{kind="certificate",node="cp-1",path="/etc/kubernetes/pki/ca.crt",role="",root="cluster",subject="CN=kubernetes"} 8.5536e+06
carotate_certificate_expiry_seconds{kind="kubeconfig",node="cp-1",path="/etc/kubernetes/admin.conf",role="admin",root="",subject="CN=kubernetes-admin"} 1.6416e+06
# HELP carotate_check_findings Findings of the last check, by severity.
# TYPE carotate_check_findings gauge
carotate_check_findings{severity="blocking"} 1
carotate_check_findings{severity="info"} 0
carotate_check_findings{severity="warning"} 2
# HELP carotate_check_up 1 if the last check inspected the API and every node, 0 if something could not be inspected.
# TYPE carotate_check_up gauge
carotate_check_up 1
# HELP carotate_check_duration_seconds How long the last check took.
# TYPE carotate_check_duration_seconds gauge
carotate_check_duration_seconds 1.5
# HELP carotate_rotation_in_progress 1 while a rotation is under way: the lock is held, or the cluster holds two CAs of one kind (between rotate and finalize).
# TYPE carotate_rotation_in_progress gauge
carotate_rotation_in_progress 1
# HELP carotate_rotation_lock_held 1 while a carotate command holds the rotation lock (Lease kube-system/carotate-rotation-lock).
# TYPE carotate_rotation_lock_held gauge
carotate_rotation_lock_held 0
`
	names := []string{"carotate_certificate_expiry_seconds", "carotate_check_findings", "carotate_check_up", "carotate_check_duration_seconds",
		"carotate_rotation_in_progress", "carotate_rotation_lock_held"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "carotate_certificate_not_after_timestamp_seconds"); n != 5 {
		t.Errorf("%d not_after metrics, want one per expiry (5)", n)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// After a rotation: one CA of each kind, no lock: nothing in progress.
func TestCollectorNoRotation(t *testing.T) {
	c := NewCollector(func() time.Time { return now })
	cl := cluster()
	cl.CAs = append(cl.CAs[1:2], model.CA{Kind: model.UnknownCA, Cert: cert("CN=webhook", "w1", "w1", true, day)},
		model.CA{Kind: model.UnknownCA, Cert: cert("CN=other", "w2", "w2", true, day)})
	c.Set(Result{Cluster: cl, Complete: true, Ended: now})
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP carotate_rotation_in_progress 1 while a rotation is under way: the lock is held, or the cluster holds two CAs of one kind (between rotate and finalize).
# TYPE carotate_rotation_in_progress gauge
carotate_rotation_in_progress 0
`), "carotate_rotation_in_progress"); err != nil {
		t.Error(err)
	}
	cl.API.Lock = &model.Lock{Holder: "me"}
	c.Set(Result{Cluster: cl, Complete: true, Ended: now})
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP carotate_rotation_lock_held 1 while a carotate command holds the rotation lock (Lease kube-system/carotate-rotation-lock).
# TYPE carotate_rotation_lock_held gauge
carotate_rotation_lock_held 1
`), "carotate_rotation_lock_held"); err != nil {
		t.Error(err)
	}
}
