package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/carotate/carotate/internal/engine"
)

// -v and --log-format shape check's stderr: at 0 the inventory lines as
// text, at 4 the node connections too, with json one object per line.
func TestVerbosityAndLogFormat(t *testing.T) {
	healthy := fixture()
	healthy.Nodes[0].StrayManifests = nil
	tests := []struct {
		args      []string
		want      []string
		wantNot   []string
		jsonLines bool
		debug     bool // the inventory's logger (node connections) is at debug
	}{
		{args: nil, want: []string{`level=INFO msg="inventory done"`}, wantNot: []string{"level=DEBUG"}},
		{args: []string{"-v", "4"}, want: []string{`level=INFO msg="inventory done"`}, debug: true},
		{args: []string{"--log-format", "json"}, want: []string{`"level":"INFO","msg":"inventory done"`}, jsonLines: true},
	}
	for _, tt := range tests {
		g := &fakeGather{cluster: healthy}
		code, _, stderr := run(t, g, nil, append([]string{"check"}, tt.args...)...)
		if code != ExitOK {
			t.Errorf("check %v: exit %d, stderr %q", tt.args, code, stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("check %v: stderr %q lacks %q", tt.args, stderr, w)
			}
		}
		for _, w := range tt.wantNot {
			if strings.Contains(stderr, w) {
				t.Errorf("check %v: stderr %q has %q", tt.args, stderr, w)
			}
		}
		if got := g.opts.Logger.Enabled(context.Background(), slog.LevelDebug); got != tt.debug {
			t.Errorf("check %v: the inventory logs at debug: %v, want %v", tt.args, got, tt.debug)
		}
		if tt.jsonLines {
			for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
				if !json.Valid([]byte(line)) {
					t.Errorf("check %v: stderr line %q is not JSON", tt.args, line)
				}
			}
		}
	}
}

func TestLogFlagsRefuseBadValues(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "-v", "11"}, "-v 11 is out of range 0-10"},
		{[]string{"plan", "-v", "-1"}, "-v -1 is out of range 0-10"},
		{[]string{"status", "--log-format", "logfmt"}, `--log-format "logfmt" is not one of text or json`},
	} {
		g := &fakeGather{cluster: fixture()}
		code, stdout, stderr := run(t, g, nil, tt.args...)
		if code != ExitError || !strings.Contains(stderr, tt.want) || g.called || stdout != "" {
			t.Errorf("%v: exit %d, gathered %v, stderr %q, want %q", tt.args, code, g.called, stderr, tt.want)
		}
	}
}

// At -v 6 each API request is logged, with its method, path and status,
// and nothing of its headers; below 6 none is.
func TestRequestsLoggedAtV6(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"kube-system","uid":"u"}}`))
	}))
	defer srv.Close()
	for _, v := range []int{4, 6} {
		var log strings.Builder
		cfg := &rest.Config{Host: srv.URL, BearerToken: "CANARY-TOKEN-7f3a"}
		logRequests(cfg, (&LogFlags{Verbosity: v, Format: LogText}).Logger(&log))
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Namespaces().Get(t.Context(), "kube-system", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		got := log.String()
		logged := strings.Contains(got, `msg="API request" method=GET url=`+srv.URL+`/api/v1/namespaces/kube-system`) && strings.Contains(got, "status=200")
		if logged != (v >= 6) {
			t.Errorf("-v %d: logged the request %v, want %v:\n%s", v, logged, v >= 6, got)
		}
		if strings.Contains(got, "CANARY-TOKEN") {
			t.Errorf("-v %d: the bearer token is in the log:\n%s", v, got)
		}
	}
}

// TestLogSharesTheLiveTerminal: with stdout a terminal, a log line
// written while a step's live line shows clears it first and draws it
// again after, rather than running into it.
func TestLogSharesTheLiveTerminal(t *testing.T) {
	var tty bytes.Buffer
	o := newRotationOptions(IOStreams{Out: &tty, ErrOut: &tty})
	env := Env{Stdout: &tty, Stderr: &tty, StdoutIsTerminal: func() bool { return true }}
	if err := o.Complete(env, pflag.NewFlagSet("t", pflag.ContinueOnError)); err != nil {
		t.Fatal(err)
	}
	if o.term == nil {
		t.Fatal("no live terminal with stdout a terminal")
	}
	rep := &engine.HumanReporter{W: o.Out, Live: true, Term: o.term}
	rep.Report(engine.Event{Phase: "finalize", Step: "wait", Outcome: engine.Waiting, Detail: "the re-read", Duration: time.Second})
	o.logger.Info("waiting", "left", "4m")
	got := tty.String()
	live := "[finalize] wait: waiting for the re-read (1.0s)"
	if !strings.Contains(got, live+"\r\x1b[Ktime=") {
		t.Errorf("the log line does not clear the live line first: %q", got)
	}
	if !strings.HasSuffix(got, "\n"+live) {
		t.Errorf("the live line is not drawn again after the log line: %q", got)
	}
}
