package probe

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// syncBuffer lets the test read the log while Run writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fastOptions keeps every test loop short; MaxAttempts bounds it further.
func fastOptions(maxAttempts int) Options {
	return Options{
		Namespace:    testNamespace,
		Node:         "worker-1",
		Pod:          "probe-abc",
		Interval:     10 * time.Millisecond,
		Timeout:      2 * time.Second,
		SummaryEvery: 50 * time.Millisecond,
		MaxAttempts:  maxAttempts,
	}
}

// runProber runs p in the background under a deadline and returns a
// function that stops it and waits for Run's result.
func runProber(t *testing.T, p *Prober) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	result := make(chan error, 1)
	go func() { result <- p.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-result
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitFor polls cond until it holds or ten seconds pass.
func waitFor(t *testing.T, what string, cond func(Stats) bool, p *Prober) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(p.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stats %+v", what, p.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func kinds(t *testing.T, log string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		k := line[strings.Index(line, `"kind":"`)+len(`"kind":"`):]
		out = append(out, k[:strings.Index(k, `"`)])
	}
	return out
}

func TestProberCountsSuccesses(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	srv := newAPIServer(t, ca.serving(t))
	var log bytes.Buffer
	opts := fastOptions(5)
	opts.SummaryEvery = time.Hour // keep the record sequence exact
	p, err := New(inClusterConfig(t, srv, ca, testToken), &log, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}

	if diff := cmp.Diff([]string{KindStart, KindRootCA, KindStop}, kinds(t, log.String())); diff != "" {
		t.Errorf("record kinds (-want +got):\n%s\nlog:\n%s", diff, log.String())
	}
	st := p.Stats()
	if st.OK != 5 || st.Failed != 0 || st.Failing {
		t.Errorf("stats ok %d failed %d failing %v, want 5 0 false", st.OK, st.Failed, st.Failing)
	}
	if got := srv.handshakes.Load(); got != 5 {
		t.Errorf("5 attempts made %d handshakes", got)
	}
	report, err := ParseLog(&log)
	if err != nil {
		t.Fatal(err)
	}
	if report.OK != 5 || report.Failed != 0 || report.Runs != 1 || len(report.Windows) != 0 || report.Skipped != 0 {
		t.Errorf("report %+v, want 1 run, 5 ok, nothing failed or skipped", report)
	}
	if report.Node != "worker-1" || report.Pod != "probe-abc" {
		t.Errorf("report node %q pod %q", report.Node, report.Pod)
	}
	if len(report.RootCAs) != 1 || report.RootCAs[0].SHA256 != st.RootCASHA256 || report.RootCAs[0].Certs != 1 {
		t.Errorf("root CA records %+v, stats digest %s", report.RootCAs, st.RootCASHA256)
	}
}

func TestProberRecordsOutageWindow(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	srv := newAPIServer(t, ca.serving(t))
	var log syncBuffer
	p, err := New(inClusterConfig(t, srv, ca, testToken), &log, fastOptions(0))
	if err != nil {
		t.Fatal(err)
	}
	stop := runProber(t, p)

	waitFor(t, "3 successes", func(s Stats) bool { return s.OK >= 3 }, p)
	before := time.Now()
	srv.stop()
	waitFor(t, "3 failures", func(s Stats) bool { return s.Failed >= 3 }, p)
	if st := p.Stats(); !st.Failing || st.Current == nil {
		t.Errorf("stats during the outage: failing %v, current %+v", st.Failing, st.Current)
	}
	srv.start()
	waitFor(t, "the window to close", func(s Stats) bool { return s.WindowsTotal == 1 && !s.Failing }, p)
	after := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	st := p.Stats()
	report, err := ParseLog(strings.NewReader(log.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Windows) != 1 {
		t.Fatalf("windows %+v, want one; log:\n%s", report.Windows, log.String())
	}
	w := report.Windows[0]
	if w.Open || w.Failed != st.Failed || !w.End.After(w.Start) {
		t.Errorf("window %+v; want closed, %d failed, ending after it starts", w, st.Failed)
	}
	// The attempt in flight when the server went down may see EOF; every
	// later one finds the port closed.
	if !strings.Contains(w.LastError, "connection refused") {
		t.Errorf("last error %q, want connection refused", w.LastError)
	}
	if diff := cmp.Diff(st.Windows, report.Windows); diff != "" {
		t.Errorf("/stats and the log disagree (-stats +log):\n%s", diff)
	}
	if report.OK != st.OK || report.Failed != st.Failed {
		t.Errorf("log totals %d/%d, stats %d/%d", report.OK, report.Failed, st.OK, st.Failed)
	}
	if got := report.FailuresBetween(before, after); len(got) != 1 {
		t.Errorf("FailuresBetween(outage) = %+v, want the window", got)
	}
	if got := report.FailuresBetween(after, after.Add(time.Hour)); len(got) != 0 {
		t.Errorf("FailuresBetween(after recovery) = %+v, want none", got)
	}
	for _, k := range []string{KindFailing, KindWindow, KindSummary} {
		if !strings.Contains(log.String(), `"kind":"`+k+`"`) {
			t.Errorf("log has no %s record:\n%s", k, log.String())
		}
	}
}

func TestProberUntrustedServer(t *testing.T) {
	trusted := newTestCA(t, "cluster-ca")
	other := newTestCA(t, "new-cluster-ca")
	srv := newAPIServer(t, other.serving(t))
	var log bytes.Buffer
	p, err := New(inClusterConfig(t, srv, trusted, testToken), &log, fastOptions(3))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	report, err := ParseLog(&log)
	if err != nil {
		t.Fatal(err)
	}
	if report.OK != 0 || report.Failed != 3 || len(report.Windows) != 1 {
		t.Fatalf("report %+v, want 3 failures in one window", report)
	}
	w := report.Windows[0]
	// Stopped mid-outage: the window is closed at the stop time and
	// marked open.
	if !w.Open || w.End.IsZero() || w.Failed != 3 {
		t.Errorf("window %+v, want open with an end and 3 failures", w)
	}
	const x509Err = "x509: certificate signed by unknown authority"
	if !strings.Contains(w.FirstError, x509Err) || !strings.Contains(w.LastError, x509Err) {
		t.Errorf("window errors %q / %q, want %q", w.FirstError, w.LastError, x509Err)
	}
	if got := srv.handshakes.Load(); got != 3 {
		t.Errorf("3 attempts made %d handshakes", got)
	}
}

// TestProberSeesServingCertChange is the case the probe exists for: the
// apiserver starts serving a certificate from a CA the pod does not trust
// yet. A pooled connection would hide that; fresh handshakes see it on the
// next attempt.
func TestProberSeesServingCertChange(t *testing.T) {
	trusted := newTestCA(t, "cluster-ca")
	next := newTestCA(t, "next-cluster-ca")
	srv := newAPIServer(t, trusted.serving(t))
	var log syncBuffer
	p, err := New(inClusterConfig(t, srv, trusted, testToken), &log, fastOptions(0))
	if err != nil {
		t.Fatal(err)
	}
	stop := runProber(t, p)
	waitFor(t, "3 successes", func(s Stats) bool { return s.OK >= 3 }, p)
	srv.setCert(next.serving(t))
	waitFor(t, "2 failures", func(s Stats) bool { return s.Failed >= 2 }, p)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Current != nil || len(st.Windows) != 1 || !st.Windows[0].Open {
		t.Fatalf("stats %+v, want one window closed at stop", st)
	}
	if !strings.Contains(st.Windows[0].FirstError, "x509") {
		t.Errorf("first error %q, want an x509 error", st.Windows[0].FirstError)
	}
	// Stopping may cut one more attempt short after its handshake; that
	// attempt is not counted.
	if got, attempts := srv.handshakes.Load(), st.OK+st.Failed; got < attempts || got > attempts+1 {
		t.Errorf("%d handshakes for %d attempts, want one each", got, attempts)
	}
}

func TestNewRejectsOptions(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	srv := newAPIServer(t, ca.serving(t))
	cfg := inClusterConfig(t, srv, ca, testToken)
	tests := []struct {
		name string
		opts Options
	}{
		{name: "no namespace", opts: Options{}},
		{name: "negative interval", opts: Options{Namespace: "ns", Interval: -time.Second}},
		{name: "negative max attempts", opts: Options{Namespace: "ns", MaxAttempts: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(cfg, &bytes.Buffer{}, tt.opts); !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("New error = %v, want ErrInvalidOptions", err)
			}
		})
	}
}

// failingWriter stands for a closed stdout.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestRunFailsWhenLogCannotBeWritten(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	srv := newAPIServer(t, ca.serving(t))
	p, err := New(inClusterConfig(t, srv, ca, testToken), failingWriter{}, fastOptions(3))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Run(ctx); err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("Run error = %v, want the write error", err)
	}
}
