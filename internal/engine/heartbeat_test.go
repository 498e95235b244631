package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// slowStep waits for the test's release, saying what it waits for.
func slowStep(name string, release <-chan struct{}) Step[*system] {
	return Step[*system]{
		Name:   name,
		Target: Target{Node: "cp-1"},
		Check:  func(context.Context, *system) (bool, string, error) { return false, "", nil },
		Apply: func(ctx context.Context, _ *system) (Change, error) {
			Wait(ctx, "kube-scheduler on cp-1 to serve")
			<-release
			return Change{Changed: true, Detail: "kube-scheduler restarted"}, nil
		},
		Undo: func(context.Context, *system) (Change, error) { return Change{}, nil },
	}
}

// A step that runs longer than HeartbeatAfter is reported Waiting, with
// what it waits for, until it ends; its final event comes last. A quick
// step is not.
func TestHeartbeat(t *testing.T) {
	release := make(chan struct{})
	quick := make(chan struct{})
	close(quick)
	rec := &Recorder{}
	r := &Runner[*system]{Reporter: rec, HeartbeatAfter: 20 * time.Millisecond, HeartbeatEvery: 10 * time.Millisecond}
	go func() { time.Sleep(150 * time.Millisecond); close(release) }()
	phases := []Phase[*system]{{Name: "trust", Steps: []Step[*system]{slowStep("quick", quick), slowStep("restart kube-scheduler", release)}}}
	if err := r.Apply(context.Background(), newSystem(), phases); err != nil {
		t.Fatal(err)
	}
	events := rec.Events()
	var waiting int
	for i, e := range events {
		switch {
		case e.Step == "quick" && e.Outcome == Waiting:
			t.Errorf("a quick step was reported waiting: %+v", e)
		case e.Outcome == Waiting:
			waiting++
			if e.Detail != "kube-scheduler on cp-1 to serve" || e.Target.Node != "cp-1" || e.Duration < 20*time.Millisecond {
				t.Errorf("waiting event %+v", e)
			}
			if i == len(events)-1 {
				t.Error("the last event is a Waiting one")
			}
		}
	}
	if waiting < 3 {
		t.Errorf("%d waiting events in 150ms at one per 10ms after 20ms", waiting)
	}
	if last := events[len(events)-1]; last.Step != "restart kube-scheduler" || last.Outcome != Changed {
		t.Errorf("last event %+v, want the step's own", last)
	}
}

// On a terminal the waiting line is rewritten in place and replaced by the
// next event; elsewhere it is not shown at all.
func TestHumanReporterWaiting(t *testing.T) {
	waiting := Event{Phase: "trust", Step: "restart kube-scheduler", Target: Target{Node: "cp-1"}, Outcome: Waiting,
		Detail: "kube-scheduler on cp-1 to serve", Duration: 3 * time.Second}
	done := waiting
	done.Outcome, done.Detail, done.Duration = Changed, "kube-scheduler restarted", 4*time.Second
	later := waiting
	later.Duration = 4 * time.Second
	var live, plain bytes.Buffer
	for _, h := range []*HumanReporter{{W: &live, Live: true}, {W: &plain}} {
		h.Report(waiting)
		h.Report(later)
		h.Report(done)
	}
	want := "\r\x1b[K[trust] cp-1: restart kube-scheduler: waiting for kube-scheduler on cp-1 to serve (3.0s)" +
		"\r\x1b[K[trust] cp-1: restart kube-scheduler: waiting for kube-scheduler on cp-1 to serve (4.0s)" +
		"\r\x1b[K[trust] cp-1: kube-scheduler restarted (4.0s)\n"
	if live.String() != want {
		t.Errorf("on a terminal:\n%q\nwant\n%q", live.String(), want)
	}
	if plain.String() != "[trust] cp-1: kube-scheduler restarted (4.0s)\n" {
		t.Errorf("not on a terminal: %q", plain.String())
	}
}

// In JSON a step's Waiting events come at most every HeartbeatEvery.
func TestJSONHeartbeatEvery(t *testing.T) {
	now := time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	j := &JSONReporter{W: &out, Rotation: "r1", Now: func() time.Time { return now }}
	e := Event{Phase: "finalize", Step: "kube-apiserver re-reads apiserver-kubelet-client.crt", Outcome: Waiting, Detail: "4m10s left"}
	other := e
	other.Step = "another step"
	for range 12 { // one a second, for 12 s
		j.Report(e)
		j.Report(other)
		now = now.Add(time.Second)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 { // at 0, 5 and 10 s, for each step
		t.Fatalf("%d events, want 6:\n%s", len(lines), out.String())
	}
	var first struct {
		Kind, Outcome, Detail, Rotation string
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.Kind != "Event" || first.Outcome != "waiting" || first.Detail != "4m10s left" {
		t.Errorf("first event %s: %+v, %v", lines[0], first, err)
	}
}
