package rotation

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/check"
	"github.com/carotate/carotate/internal/model"
)

// TestPreflightPolicy: a fresh rotation is refused on every blocking
// finding, a resumed one only on those it cannot have caused itself; the
// lock it holds never counts, nor a node it is allowed to go on without.
func TestPreflightPolicy(t *testing.T) {
	f := func(id string, sev check.Severity, subject string) check.Finding {
		return check.Finding{ID: id, Severity: sev, Subject: subject, Message: id}
	}
	var (
		unreachable = f(findingNodeUnreachable, check.Blocking, "node w-1")
		notReady    = f(findingNodeNotReady, check.Blocking, "node w-2")
		stray       = f(findingStrayManifest, check.Blocking, "cp-1:/etc/kubernetes/manifests/x.bak")
		skew        = f(findingClockSkew, check.Blocking, "node w-3")
		expired     = f(findingCAExpired, check.Blocking, "cluster CA")
		locked      = f(findingRotationLocked, check.Blocking, "Lease kube-system/carotate-rotation-lock")
		bundle      = f("trust-file-bundle", check.Blocking, "cp-1:/etc/kubernetes/pki/ca.crt")
		expiring    = f("cert-expiring", check.Warning, "cp-1:/etc/kubernetes/admin.conf")
		all         = []check.Finding{unreachable, notReady, stray, skew, expired, locked, bundle, expiring}
	)
	tests := []struct {
		name     string
		findings []check.Finding
		resume   bool
		allow    []string
		want     []check.Finding
	}{
		{"a fresh rotation stops on every blocking finding but its own lock", all, false, nil, []check.Finding{unreachable, notReady, stray, skew, expired, bundle}},
		{"a resume goes on past what the rotation itself causes", all, true, nil, []check.Finding{unreachable, notReady, stray, skew, expired}},
		{"an allowed unready node does not stop it", all, true, []string{"w-2"}, []check.Finding{unreachable, stray, skew, expired}},
		{"allowing one node does not allow another", []check.Finding{notReady}, false, []string{"w-1"}, []check.Finding{notReady}},
		{"allowing unready does not allow unreachable", []check.Finding{unreachable}, false, []string{"w-1"}, []check.Finding{unreachable}},
		{"warnings never stop it", []check.Finding{expiring}, false, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := blocking(tt.findings, tt.resume, tt.allow)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("blocking (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPreflightErrorSaysWhatToDo(t *testing.T) {
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	c := model.Cluster{ObservedAt: now, Nodes: []model.Node{{Name: "w-2", Reachable: true}}}
	err := (&Lifecycle{Fresh: true}).Preflight(c, nil)
	var pe *PreflightError
	if !errors.Is(err, ErrRefused) || !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a refusal with its findings", err)
	}
	for _, want := range []string{"refused before any change: 1 blocking finding(s):\n  node w-2: ", "pass --allow-unready w-2", "fix them (see `carotate check`) and run again"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\ndoes not say %q", err, want)
		}
	}
	if err := (&Lifecycle{Fresh: true}).Preflight(c, []string{"w-2"}); err != nil {
		t.Errorf("with --allow-unready w-2: %v", err)
	}
}

// TestPreflightNamesRealFindings: every finding the policy decides on by
// name is one check reports, so that a renamed finding cannot slip past it.
func TestPreflightNamesRealFindings(t *testing.T) {
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	ok := model.Node{Name: "ok", Reachable: true, Ready: true}
	clusters := map[string]model.Cluster{
		findingNodeUnreachable: {Nodes: []model.Node{{Name: "n", Ready: true}}},
		findingNodeNotReady:    {Nodes: []model.Node{{Name: "n", Reachable: true}}},
		findingStrayManifest:   {Nodes: []model.Node{{Name: "n", Reachable: true, Ready: true, StrayManifests: []string{ManifestsDir + "/kube-apiserver.yaml.bak"}}}},
		findingClockSkew:       {Nodes: []model.Node{{Name: "n", Reachable: true, Ready: true, ClockOffset: time.Hour}}},
		findingCAExpired:       {Nodes: []model.Node{ok}, CAs: []model.CA{{Kind: model.ClusterCA, Cert: model.Cert{Subject: "CN=kubernetes", NotAfter: now.Add(-time.Hour)}}}},
		findingRotationLocked:  {Nodes: []model.Node{ok}, API: model.API{Lock: &model.Lock{Holder: "someone", Acquired: now, RenewedAt: now}}},
	}
	for id := range resumeBlocking {
		if _, ok := clusters[id]; !ok {
			t.Errorf("no cluster here shows %s", id)
		}
	}
	for id, c := range clusters {
		c.ObservedAt = now
		found := false
		for _, f := range check.Run(c, check.Options{}) {
			if f.ID == id && f.Severity == check.Blocking {
				found = true
			}
		}
		if !found {
			t.Errorf("check reports no blocking %q where the policy expects one", id)
		}
	}
}
