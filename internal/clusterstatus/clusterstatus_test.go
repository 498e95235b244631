package clusterstatus

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/carotate/carotate/internal/engine"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func publisher(cs *fake.Clientset, log *strings.Builder) *Publisher {
	return &Publisher{Client: cs, Rotation: "r-1", Roots: []string{"cluster-ca", "front-proxy-ca"}, Holder: "alice@ws-1 pid 7",
		StartedAt: t0, Now: func() time.Time { return t0.Add(time.Minute) }, Log: slog.New(slog.NewTextHandler(log, nil))}
}

// Set creates the ConfigMap, then updates it; Read gives back what was set.
func TestSetAndRead(t *testing.T) {
	cs := fake.NewClientset()
	var log strings.Builder
	p := publisher(cs, &log)
	ctx := context.Background()
	p.Set(ctx, "rotate", Running, "started", "rotate started by alice@ws-1 pid 7")
	p.Set(ctx, "rotate", Done, "switch done", "rotate done in 1m40s")
	got, ok, err := Read(ctx, cs)
	if err != nil || !ok {
		t.Fatalf("Read: %v, found %v", err, ok)
	}
	want := Status{Rotation: "r-1", Command: "rotate", State: Done, Record: "switch done", Holder: "alice@ws-1 pid 7",
		Message: "rotate done in 1m40s", Roots: []string{"cluster-ca", "front-proxy-ca"}, StartedAt: t0, UpdatedAt: t0.Add(time.Minute)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Read (-want +got):\n%s", diff)
	}
	var verbs []string
	for _, a := range cs.Actions() {
		verbs = append(verbs, a.GetVerb()+" "+a.GetResource().Resource)
	}
	if diff := cmp.Diff([]string{"get configmaps", "create configmaps", "get configmaps", "update configmaps", "get configmaps"}, verbs); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if log.Len() != 0 {
		t.Errorf("logged %q", log.String())
	}
	if _, ok, err := Read(ctx, fake.NewClientset()); ok || err != nil {
		t.Errorf("Read with no ConfigMap: found %v, %v", ok, err)
	}
}

// TestRetiredAccumulate: a finalized rotation adds the CAs it retired to
// those earlier ones did, and later commands keep them.
func TestRetiredAccumulate(t *testing.T) {
	cs := fake.NewClientset()
	ctx := context.Background()
	first, second := []RetiredCA{{"cluster", "aa"}, {"front-proxy", "bb"}}, []RetiredCA{{"cluster", "cc"}}
	p := publisher(cs, &strings.Builder{})
	p.Retired = first
	p.Set(ctx, "finalize", Done, "finalized", "finalize done")
	p.Set(ctx, "finalize", Done, "finalized", "finalize done") // a rerun adds nothing twice
	next := publisher(cs, &strings.Builder{})
	next.Set(ctx, "rotate", Running, "started", "rotate started")
	next.Retired = second
	next.Set(ctx, "finalize", Done, "finalized", "finalize done")
	got, _, err := Read(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(append(first, second...), got.Retired); diff != "" {
		t.Errorf("retired (-want +got):\n%s", diff)
	}
	cm, _ := cs.CoreV1().ConfigMaps(Namespace).Get(ctx, Name, metav1.GetOptions{})
	if want := "cluster aa\nfront-proxy bb\ncluster cc\n"; cm.Data[KeyRetired] != want {
		t.Errorf("data[%s] = %q, want %q", KeyRetired, cm.Data[KeyRetired], want)
	}
}

// The Reporter passes every event on, and records Events for gates and
// failures only, about the ConfigMap.
func TestReporterRecordsGatesAndFailures(t *testing.T) {
	cs := fake.NewClientset()
	var log strings.Builder
	p := publisher(cs, &log)
	ctx := context.Background()
	p.Set(ctx, "rotate", Running, "started", "")
	rec := &engine.Recorder{}
	r := p.Reporter(ctx, "rotate", rec)
	events := []engine.Event{
		{Phase: "trust", Step: "kubelet trusts old and new", Target: engine.Target{Node: "w-1"}, Outcome: engine.Changed},
		{Phase: "trust", Step: "trust-healthy", Gate: true, Outcome: engine.Passed, Detail: "3/3 nodes Ready"},
		{Phase: "switch", Step: "kubelet client certificate from the new CA", Target: engine.Target{Node: "w-2"}, Outcome: engine.Failed, Err: errors.New("ssh: connection refused")},
	}
	for _, e := range events {
		r.Report(e)
	}
	if len(rec.Events()) != len(events) {
		t.Errorf("passed on %d events, want %d", len(rec.Events()), len(events))
	}
	list, err := cs.EventsV1().Events(Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	type ev struct{ Type, Reason, Action, Note, Regarding, Controller string }
	var got []ev
	for _, e := range list.Items {
		got = append(got, ev{e.Type, e.Reason, e.Action, e.Note, e.Regarding.Kind + " " + e.Regarding.Namespace + "/" + e.Regarding.Name, e.ReportingController})
		if e.EventTime.IsZero() || e.ReportingInstance != "alice@ws-1 pid 7" {
			t.Errorf("event %s: time %v, instance %q", e.Reason, e.EventTime, e.ReportingInstance)
		}
	}
	want := []ev{
		{corev1.EventTypeNormal, "PhaseVerified", "rotate", "trust verified: 3/3 nodes Ready", "ConfigMap kube-system/carotate-status", Controller},
		{corev1.EventTypeWarning, "StepFailed", "rotate", "switch: kubelet client certificate from the new CA on w-2 failed: ssh: connection refused", "ConfigMap kube-system/carotate-status", Controller},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// An API that refuses is logged once and changes nothing else: the
// rotation goes on. A note longer than the API allows is cut.
func TestPublishingIsBestEffort(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("the server is currently unable to handle the request")
	})
	var log strings.Builder
	p := publisher(cs, &log)
	ctx := context.Background()
	p.Set(ctx, "finalize", Running, "switch done", "")
	p.Event(ctx, corev1.EventTypeNormal, "Started", "finalize", "finalize started")
	p.Event(ctx, corev1.EventTypeNormal, "Finished", "finalize", "finalize done")
	if n := strings.Count(log.String(), "could not publish the rotation's status"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, log.String())
	}
	var nilPub *Publisher
	nilPub.Set(ctx, "x", Running, "", "")
	nilPub.Event(ctx, "", "", "", "")
	if got := truncate(strings.Repeat("é", 600), noteMax); len(got) > noteMax || !strings.HasSuffix(got, "...") {
		t.Errorf("truncate: %d bytes", len(got))
	}
}
