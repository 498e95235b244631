package agent

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestExpandArgv(t *testing.T) {
	vars := map[string]string{"ARGS": "--a=1  --b=2", "EMPTY": "", "X": "x y"}
	tests := []struct {
		name string
		argv []string
		want []string
	}{
		{"splits a lone variable", []string{"k", "$ARGS"}, []string{"k", "--a=1", "--b=2"}},
		{"unset expands to nothing", []string{"k", "$NOPE", "$EMPTY"}, []string{"k"}},
		{"braces keep the value whole", []string{"--x=${X}"}, []string{"--x=x y"}},
		{"plain words stay", []string{"--config=/a b"}, []string{"--config=/a b"}},
		{"dollar-dollar is a dollar", []string{"echo $$ $$X"}, []string{"echo $ $X"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ExpandArgv(tc.argv, vars)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestParseEnvironmentFile(t *testing.T) {
	got := ParseEnvironmentFile("# comment\nKUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/containerd.sock --node-ip=10.0.0.1\"\n\nB='q'\nC=plain\nnot a pair\n")
	want := map[string]string{
		"KUBELET_KUBEADM_ARGS": "--container-runtime-endpoint=unix:///run/containerd/containerd.sock --node-ip=10.0.0.1",
		"B":                    "q",
		"C":                    "plain",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestKlogTimeAndJournalctlSince(t *testing.T) {
	now := time.Date(2026, 11, 27, 19, 0, 0, 0, time.Local)
	dir := t.TempDir()
	log := "I1127 18:00:00.000001 1 a.go:1] early\n  continuation of early\nE1127 18:30:00.500000 1 b.go:2] late x509: bad\nno header, stays with late\n"
	if err := os.WriteFile(filepath.Join(dir, "kubelet.log"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := Journalctl(dir, []string{"-u", "kubelet.service", "--since", "2026-11-27 18:15:00", "--no-pager"}, now, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want := "E1127 18:30:00.500000 1 b.go:2] late x509: bad\nno header, stays with late\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	// journalctl also takes a zone after the time, as carotate's log gate
	// passes it.
	out.Reset()
	utc := now.In(time.UTC).Add(-45*time.Minute).Format("2006-01-02 15:04:05") + " UTC"
	if code := Journalctl(dir, []string{"-u", "kubelet", "--since", utc}, now, &out, &errOut); code != 0 {
		t.Fatalf("--since %q: exit %d: %s", utc, code, errOut.String())
	}
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("--since %q (-want +got)\n%s", utc, diff)
	}
	if code := Journalctl(dir, []string{"-u", "nothere"}, now, &out, &errOut); code == 0 {
		t.Error("journalctl for a unit without a log exited 0")
	}
}

// TestSupervisor runs the supervisor (without namespaces) on a real process
// and drives it through the systemctl client the nodes use.
func TestSupervisor(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{
		Socket: filepath.Join(dir, "agent.sock"),
		Units: []Unit{{
			Name: "sleeper", Enabled: true, RestartDelay: 50 * time.Millisecond,
			Argv: []string{"/bin/sh", "-c", "echo $$$$ > " + dir + "/pid; exec sleep 30"},
			Log:  filepath.Join(dir, "sleeper.log"),
		}},
	}
	s := newSupervisor(cfg, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-served:
		case <-time.After(20 * time.Second):
			t.Error("supervisor did not stop")
		}
	})

	systemctl := func(args ...string) (string, int) {
		var out, errOut bytes.Buffer
		var code int
		for try := 0; try < 50; try++ {
			out.Reset()
			errOut.Reset()
			code = Systemctl(cfg.Socket, args, &out, &errOut)
			if !strings.Contains(errOut.String(), "connect") {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		return out.String() + errOut.String(), code
	}
	waitPID := func(old int) int {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			data, _ := os.ReadFile(filepath.Join(dir, "pid"))
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid != old && syscall.Kill(pid, 0) == nil {
				return pid
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("unit did not (re)start; pid still %d", old)
		return 0
	}

	if out, code := systemctl("is-active", "sleeper"); code != 3 || strings.TrimSpace(out) != "inactive" {
		t.Fatalf("before boot: is-active = %q, exit %d; want inactive, 3", out, code)
	}
	if out, code := systemctl("is-enabled", "sleeper.service"); code != 0 || strings.TrimSpace(out) != "enabled" {
		t.Fatalf("is-enabled = %q, exit %d", out, code)
	}
	if out, code := systemctl("boot"); code != 0 {
		t.Fatalf("boot: %q exit %d", out, code)
	}
	first := waitPID(0)
	if out, code := systemctl("is-active", "sleeper"); code != 0 || strings.TrimSpace(out) != "active" {
		t.Fatalf("after boot: is-active = %q, exit %d", out, code)
	}

	// A unit that dies is restarted, like Restart=always.
	syscall.Kill(first, syscall.SIGKILL)
	second := waitPID(first)

	// restart replaces the process.
	if out, code := systemctl("restart", "sleeper"); code != 0 {
		t.Fatalf("restart: %q exit %d", out, code)
	}
	third := waitPID(second)
	if syscall.Kill(second, 0) == nil {
		t.Errorf("old process %d still runs after restart", second)
	}

	if out, code := systemctl("stop", "sleeper"); code != 0 {
		t.Fatalf("stop: %q exit %d", out, code)
	}
	if syscall.Kill(third, 0) == nil {
		t.Errorf("process %d still runs after stop", third)
	}
	if out, code := systemctl("is-active", "sleeper"); code != 3 {
		t.Errorf("after stop: is-active = %q, exit %d; want exit 3", out, code)
	}
	if out, code := systemctl("start", "no-such-unit"); code == 0 || !strings.Contains(out, "no-such-unit") {
		t.Errorf("start of an unknown unit: %q exit %d", out, code)
	}
}
