package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/metrics"
)

// syncBuffer is a bytes.Buffer that a running command writes while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// check --metrics-listen serves the last check's metrics on loopback and
// stops, exit 0, when its context ends; blocking findings do not stop it.
func TestCheckServesMetrics(t *testing.T) {
	g := &fakeGather{cluster: fixture()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Execute(ctx, []string{"check", "--metrics-listen", "127.0.0.1:0", "--metrics-interval", "1m"}, Env{
			Stdout: &stdout, Stderr: &stderr, Now: func() time.Time { return testNow },
			Getenv: func(string) string { return "" }, Gather: g.gather,
		})
	}()
	addr := regexp.MustCompile(`serving metrics on (http://\S+/metrics)`)
	var url string
	for i := 0; i < 100 && url == ""; i++ { // up to 5 s
		if m := addr.FindStringSubmatch(stderr.String()); m != nil {
			url = m[1]
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if url == "" {
		t.Fatalf("no address on stderr: %q", stderr.String())
	}
	client := &http.Client{Timeout: 5 * time.Second}
	var body string
	for i := 0; i < 50; i++ { // until the first check is in, up to 5 s
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// Whole lines: the HELP text of carotate_check_up starts with "1 if".
		if body = string(b); strings.Contains(body, "\ncarotate_check_up 1\n") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{
		`carotate_certificate_expiry_seconds{kind="kubeconfig",node="cp-1",path="/etc/kubernetes/admin.conf",role="admin",root="cluster",subject="O=kubeadm:cluster-admins,CN=kubernetes-admin"} 5.184e+06`,
		"\n" + `carotate_check_findings{severity="blocking"} 1` + "\n",
		"\ncarotate_check_up 1\n",
		"\ncarotate_rotation_in_progress 0\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%s", want, body)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("exit %d after its context ended, want 0; stderr %q", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("check --metrics-listen did not stop when its context ended")
	}
	if stdout.String() != "" {
		t.Errorf("stdout %q: with --metrics-listen the report is the metrics", stdout.String())
	}
}

func TestCheckMetricsRefusesBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--metrics-listen", "9637"}, `--metrics-listen "9637" is not HOST:PORT (e.g. :9637 or 127.0.0.1:9637)`},
		{[]string{"--metrics-listen", ":9637", "--metrics-interval", "1s"}, "--metrics-interval must be at least 10s (each check reads every node), got 1s"},
	}
	for _, tt := range tests {
		g := &fakeGather{cluster: fixture()}
		code, stdout, stderr := run(t, g, nil, append([]string{"check"}, tt.args...)...)
		if code != ExitError || !strings.Contains(stderr, tt.want) || g.called || stdout != "" {
			t.Errorf("check %v: exit %d, gathered %v, stderr %q, want %q", tt.args, code, g.called, stderr, tt.want)
		}
	}

	// An address in use fails before the first check.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	g := &fakeGather{cluster: fixture()}
	code, _, stderr := run(t, g, nil, "check", "--metrics-listen", ln.Addr().String())
	if want := "--metrics-listen " + ln.Addr().String() + ": listen tcp"; code != ExitError || !strings.Contains(stderr, want) || !strings.Contains(stderr, "pick a free address") || g.called {
		t.Errorf("address in use: exit %d, gathered %v, stderr %q, want %q", code, g.called, stderr, want)
	}
}

// A check that gathered nothing keeps the last expiries on show, marked
// not up; one that gathered replaces them.
func TestMetricsKeepTheLastGathered(t *testing.T) {
	good := metrics.Result{Cluster: fixture(), Complete: true, Ended: testNow}
	failed := metrics.Result{Ended: testNow.Add(time.Minute)}
	res, last := keepLastGathered(failed, nil)
	if !res.Cluster.ObservedAt.IsZero() || last != nil {
		t.Errorf("a first check that failed shows %v, keeps %v", res.Cluster.ObservedAt, last)
	}
	res, last = keepLastGathered(good, nil)
	if res.Cluster.ObservedAt != testNow || last == nil {
		t.Fatalf("a good check: shows %v, keeps %v", res.Cluster.ObservedAt, last)
	}
	res, last = keepLastGathered(failed, last)
	if res.Cluster.ObservedAt != testNow || res.Complete || res.Ended != failed.Ended || len(res.Cluster.Nodes) != 2 {
		t.Errorf("a failed check after a good one shows %+v, want the good one's cluster, not complete, ended %v", res, failed.Ended)
	}
	if last.Ended != testNow {
		t.Errorf("the last gathered became %v", last.Ended)
	}
}
