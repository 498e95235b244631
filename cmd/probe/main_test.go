package main

import (
	"bytes"
	"context"
	"debug/elf"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/lab/probe"
	"github.com/google/go-cmp/cmp"
)

func TestParseArgs(t *testing.T) {
	defaults := options{listen: ":8080", cert: "/tls/tls.crt", key: "/tls/tls.key", interval: probe.DefaultInterval, timeout: probe.DefaultTimeout, summaryEvery: probe.DefaultSummaryEvery}
	tests := []struct {
		name    string
		args    []string
		want    options
		wantErr bool
	}{
		{name: "defaults", want: defaults},
		{
			name: "all flags",
			args: []string{"--interval", "250ms", "--timeout=1s", "--summary-every", "10s", "--listen", "127.0.0.1:9090"},
			want: options{listen: "127.0.0.1:9090", cert: defaults.cert, key: defaults.key, interval: 250 * time.Millisecond, timeout: time.Second, summaryEvery: 10 * time.Second},
		},
		{name: "idle", args: []string{"idle", "--listen", ":8081"}, want: options{idle: true, listen: ":8081", cert: defaults.cert, key: defaults.key, interval: defaults.interval, timeout: defaults.timeout, summaryEvery: defaults.summaryEvery}},
		{name: "webhook", args: []string{"webhook", "--cert", "/c", "--key", "/k"}, want: options{webhook: true, listen: ":8443", cert: "/c", key: "/k", interval: defaults.interval, timeout: defaults.timeout, summaryEvery: defaults.summaryEvery}},
		{name: "unknown mode", args: []string{"busy"}, wantErr: true},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: true},
		{name: "zero interval", args: []string{"--interval", "0s"}, wantErr: true},
		{name: "negative timeout", args: []string{"--timeout", "-1s"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseArgs(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseArgs error = %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(options{})); diff != "" {
				t.Errorf("parseArgs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunExitCodes(t *testing.T) {
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		t.Skip("running inside a pod: the in-cluster config would be found")
	}
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	noEnv := func(string) string { return "" }
	tests := []struct {
		name       string
		args       []string
		want       int
		wantStderr string
	}{
		{name: "help", args: []string{"--help"}, want: exitOK, wantStderr: "-summary-every"},
		{name: "usage error", args: []string{"--interval", "soon"}, want: exitUsage, wantStderr: "invalid value"},
		{name: "idle stops with its context", args: []string{"idle", "--listen", "127.0.0.1:0"}, want: exitOK},
		{name: "bad listen address", args: []string{"idle", "--listen", "256.0.0.1:1"}, want: exitError, wantStderr: "check --listen"},
		{name: "outside a cluster", args: []string{"--listen", "127.0.0.1:0"}, want: exitError, wantStderr: "in-cluster config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := run(stopped, tt.args, noEnv, &stdout, &stderr); got != tt.want {
				t.Errorf("exit code %d, want %d; stderr:\n%s", got, tt.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q, want it to mention %q", stderr.String(), tt.wantStderr)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing: it carries only probe records", stdout.String())
			}
		})
	}
}

func TestServeHTTPHealthz(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveHTTP(ctx, ln, probe.HealthMux(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Errorf("GET /healthz: %d %q", resp.StatusCode, body)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("serveHTTP did not return after its context ended")
	}
}

// TestBinaryIsStatic builds the probe the way its image is built and
// checks it has no ELF interpreter, so it runs in an image FROM scratch.
func TestBinaryIsStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the probe with client-go; skipped in -short mode")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	bin := filepath.Join(t.TempDir(), "probe")
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the probe binary has an ELF interpreter; it must be static")
		}
	}
}
