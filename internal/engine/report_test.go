package engine

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func reportEvents() []Event {
	return []Event{
		{Phase: "trust", Step: "kcm root-ca-file", Target: Target{Node: "cp-1"}, Outcome: Changed,
			Detail: "kube-controller-manager restarted, kube-root-ca.crt in 37/37 namespaces", Duration: 4100 * time.Millisecond},
		{Phase: "trust", Step: "kubelet client-ca", Target: Target{Node: "w-1"}, Outcome: Unchanged,
			Detail: "clientCAFile holds the bundle", Duration: 20 * time.Millisecond},
		{Phase: "trust", Step: "cluster-info", Target: Target{Object: "ConfigMap kube-public/cluster-info"}, Outcome: Failed,
			Err: errors.New("conflict"), Duration: 1500 * time.Millisecond},
		{Phase: "trust", Step: "trust-healthy", Gate: true, Outcome: Passed, Detail: "3/3 nodes Ready", Duration: 2 * time.Second},
		{Phase: "switch", Step: "ca.crt new", Target: Target{Node: "cp-2"}, Outcome: Undone, Detail: "ca.crt restored", Duration: 300 * time.Millisecond},
		{Phase: "trust", Step: "kcm root-ca-file", Target: Target{Node: "cp-2"}, Outcome: Planned, Plan: &Plan{
			Summary: "--root-ca-file → ca-bundle.crt",
			Diffs: []Diff{
				FlagDiff("cp-2", "kube-controller-manager", "--root-ca-file", "/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/ca-bundle.crt"),
				FileDiff("cp-2", "/etc/kubernetes/pki/ca-bundle.crt", nil, []byte("bundle")),
				SecretFileDiff("cp-2", "/etc/kubernetes/pki/ca.key", []byte("old key"), []byte("new key")),
				ObjectDiff("ConfigMap kube-public/cluster-info", "data.kubeconfig", "old", "bundle"),
			},
			Restarts: []Restart{{Component: "kube-controller-manager", Node: "cp-2"}},
		}},
		{Phase: "trust", Step: "trust-healthy", Gate: true, Outcome: Planned, Detail: "verify"},
	}
}

func TestHumanReporter(t *testing.T) {
	var b strings.Builder
	h := &HumanReporter{W: &b}
	for _, e := range reportEvents() {
		h.Report(e)
	}
	want := `[trust] cp-1: kube-controller-manager restarted, kube-root-ca.crt in 37/37 namespaces (4.1s)
[trust] w-1: kubelet client-ca: already done (clientCAFile holds the bundle) (0.0s)
[trust] ConfigMap kube-public/cluster-info: cluster-info: failed: conflict (1.5s)
[trust] gate trust-healthy: passed, 3/3 nodes Ready (2.0s)
[switch] cp-2: ca.crt new: undone, ca.crt restored (0.3s)
[trust] cp-2: kcm root-ca-file: will change: --root-ca-file → ca-bundle.crt
    flag kube-controller-manager --root-ca-file: /etc/kubernetes/pki/ca.crt → /etc/kubernetes/pki/ca-bundle.crt
    file cp-2:/etc/kubernetes/pki/ca-bundle.crt: (absent) → sha256:1e6ed65d77d6
    file cp-2:/etc/kubernetes/pki/ca.key: sha256:2d9ac2b9b9b4 → sha256:812d43bf64ca
    object ConfigMap kube-public/cluster-info data.kubeconfig: old → bundle
    restarts kube-controller-manager on cp-2
[trust] gate trust-healthy: will verify
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("human output (-want +got):\n%s", diff)
	}
	if h.Err() != nil {
		t.Errorf("Err = %v", h.Err())
	}
}

func TestJSONReporter(t *testing.T) {
	var b strings.Builder
	j := &JSONReporter{W: &b, Rotation: "r-1", Now: func() time.Time { return time.Date(2026, 12, 3, 14, 0, 0, 250_000_000, time.UTC) }}
	for _, e := range reportEvents()[:4] {
		j.Report(e)
	}
	want := `{"apiVersion":"carotate.io/v1alpha1","kind":"Event","time":"2026-12-03T14:00:00.250Z","rotation":"r-1","phase":"trust","step":"kcm root-ca-file","node":"cp-1","outcome":"changed","detail":"kube-controller-manager restarted, kube-root-ca.crt in 37/37 namespaces","duration":"4.1s","seconds":4.1}
{"apiVersion":"carotate.io/v1alpha1","kind":"Event","time":"2026-12-03T14:00:00.250Z","rotation":"r-1","phase":"trust","step":"kubelet client-ca","node":"w-1","outcome":"unchanged","detail":"clientCAFile holds the bundle","duration":"20ms","seconds":0.02}
{"apiVersion":"carotate.io/v1alpha1","kind":"Event","time":"2026-12-03T14:00:00.250Z","rotation":"r-1","phase":"trust","step":"cluster-info","object":"ConfigMap kube-public/cluster-info","outcome":"failed","error":"conflict","duration":"1.5s","seconds":1.5}
{"apiVersion":"carotate.io/v1alpha1","kind":"Event","time":"2026-12-03T14:00:00.250Z","rotation":"r-1","phase":"trust","step":"trust-healthy","gate":true,"outcome":"passed","detail":"3/3 nodes Ready","duration":"2s","seconds":2}
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("json output (-want +got):\n%s", diff)
	}
}

// With YAML each event is one document of a stream, with the same
// fields as its JSON line.
func TestJSONReporterAsYAML(t *testing.T) {
	var b strings.Builder
	j := &JSONReporter{W: &b, YAML: true, Rotation: "r-1", Now: func() time.Time { return time.Date(2026, 12, 3, 14, 0, 0, 250_000_000, time.UTC) }}
	for _, e := range reportEvents()[2:4] {
		j.Report(e)
	}
	want := `---
apiVersion: carotate.io/v1alpha1
duration: 1.5s
error: conflict
kind: Event
object: ConfigMap kube-public/cluster-info
outcome: failed
phase: trust
rotation: r-1
seconds: 1.5
step: cluster-info
time: "2026-12-03T14:00:00.250Z"
---
apiVersion: carotate.io/v1alpha1
detail: 3/3 nodes Ready
duration: 2s
gate: true
kind: Event
outcome: passed
phase: trust
rotation: r-1
seconds: 2
step: trust-healthy
time: "2026-12-03T14:00:00.250Z"
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("yaml output (-want +got):\n%s", diff)
	}
}

func TestSecretFileDiffHoldsNoContent(t *testing.T) {
	const canary = "CANARY-KEY-MATERIAL-2f9c"
	d := SecretFileDiff("cp-1", "/etc/kubernetes/pki/ca.key", []byte(canary), []byte(canary+"2"))
	var b strings.Builder
	(&JSONReporter{W: &b}).Report(Event{Phase: "p", Step: "s", Outcome: Planned, Plan: &Plan{Diffs: []Diff{d}}})
	(&JSONReporter{W: &b, YAML: true}).Report(Event{Phase: "p", Step: "s", Outcome: Planned, Plan: &Plan{Diffs: []Diff{d}}})
	(&HumanReporter{W: &b}).Report(Event{Phase: "p", Step: "s", Outcome: Planned, Plan: &Plan{Diffs: []Diff{d}}})
	if strings.Contains(b.String(), canary) {
		t.Errorf("secret content in output:\n%s", b.String())
	}
}

func TestCertDiff(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nb := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "kubernetes-2026"},
		NotBefore: nb, NotAfter: nb.AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	d := CertDiff("cp-1", "/etc/kubernetes/pki/ca.crt", nil, cert)
	if d.BeforeCert != nil || d.AfterCert == nil {
		t.Fatalf("CertDiff = %+v", d)
	}
	got := *d.AfterCert
	got.SPKISHA256, got.CertificateSHA256 = "", ""
	want := CertSummary{Subject: "CN=kubernetes-2026", Issuer: "CN=kubernetes-2026", NotBefore: nb, NotAfter: nb.AddDate(10, 0, 0)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	if len(d.AfterCert.SPKISHA256) < 12 {
		t.Errorf("no spki fingerprint: %+v", d.AfterCert)
	}
	line := diffLine(d)
	if !strings.HasPrefix(line, `cert cp-1:/etc/kubernetes/pki/ca.crt: (absent) → "CN=kubernetes-2026" issued by "CN=kubernetes-2026", spki `) ||
		!strings.HasSuffix(line, "until 2036-01-02") {
		t.Errorf("diffLine = %q", line)
	}
	// A renewed CA (the same name and key, another certificate) shows
	// which certificate each side is; a reissued one does not need to.
	tmpl.SerialNumber = big.NewInt(8)
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	line = diffLine(CertDiff("cp-1", "/etc/kubernetes/pki/ca.crt", cert, renewed))
	if want := ", cert sha256:" + d.AfterCert.CertificateSHA256[:12] + " → "; !strings.Contains(line, want) || strings.Count(line, ", cert sha256:") != 2 {
		t.Errorf("diffLine of a renewal = %q, want both certificates' hashes", line)
	}
	if line := diffLine(CertDiff("cp-1", "/etc/kubernetes/pki/ca.crt", cert, cert)); strings.Contains(line, ", cert ") {
		t.Errorf("diffLine of the same certificate = %q", line)
	}
}
