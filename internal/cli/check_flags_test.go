package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheckRefusesBadFlags(t *testing.T) {
	dir := t.TempDir()
	badInv := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badInv, []byte("nodes:\n- name: cp-1\n  executor: telnet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "unknown output", args: []string{"--output", "xml"}, want: `--output "xml" is not one of text, json or yaml`},
		{name: "expiry threshold not a duration", args: []string{"--expiry-threshold", "soon"}, want: `invalid argument "soon" for "--expiry-threshold" flag: "soon" is not a duration like 90d, 720h or 60s`},
		{name: "expiry threshold bad days", args: []string{"--expiry-threshold", "-3d"}, want: `"-3d" is not a number of days like 90d`},
		{name: "expiry threshold zero", args: []string{"--expiry-threshold", "0s"}, want: "--expiry-threshold must be positive, got 0s"},
		{name: "negative clock skew", args: []string{"--max-clock-skew", "-1s"}, want: "--max-clock-skew must be positive, got -1s"},
		{name: "zero concurrency", args: []string{"--node-concurrency", "0"}, want: "--node-concurrency must be at least 1, got 0"},
		{name: "port out of range", args: []string{"--ssh-port", "70000"}, want: "--ssh-port 70000 is out of range 1-65535"},
		{name: "port not a number", args: []string{"--ssh-port", "ssh"}, want: `invalid argument "ssh" for "--ssh-port" flag`},
		{name: "jump host without a host", args: []string{"--ssh-jump", "ops@"}, want: `--ssh-jump "ops@": "ops@" is not [user@]host[:port]; give [user@]host[:port], comma-separated, or none`},
		{name: "missing inventory file", args: []string{"--inventory", filepath.Join(dir, "none.yaml")},
			want: "--inventory: inventory file " + filepath.Join(dir, "none.yaml") + ": cannot read it; check --inventory"},
		{name: "bad inventory entry", args: []string{"--inventory", badInv},
			want: "--inventory: inventory file " + badInv + `: nodes[0] (cp-1): executor "telnet" is not one of "ssh" or "local"`},
		{name: "unknown flag", args: []string{"--ssh-pass", "x"}, want: "unknown flag: --ssh-pass"},
		{name: "arguments", args: []string{"cp-1"}, want: `unknown command "cp-1" for "carotate check"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &fakeGather{cluster: fixture()}
			code, stdout, stderr := run(t, g, nil, append([]string{"check"}, tt.args...)...)
			if code != ExitError {
				t.Errorf("exit code = %d, want %d", code, ExitError)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.want)
			}
			if g.called || stdout != "" {
				t.Errorf("a bad flag still gathered (%v) or printed a report (%q)", g.called, stdout)
			}
		})
	}
}

func TestDaysDuration(t *testing.T) {
	tests := []struct {
		in     string
		want   time.Duration
		String string
	}{
		{in: "90d", want: 90 * 24 * time.Hour, String: "90d"},
		{in: "36h", want: 36 * time.Hour, String: "36h0m0s"},
		{in: "48h", want: 48 * time.Hour, String: "2d"},
		{in: "60s", want: time.Minute, String: "1m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d daysDuration
			if err := d.Set(tt.in); err != nil {
				t.Fatal(err)
			}
			if time.Duration(d) != tt.want || d.String() != tt.String {
				t.Errorf("Set(%q) = %v (%s), want %v (%s)", tt.in, time.Duration(d), d.String(), tt.want, tt.String)
			}
		})
	}
}

func TestKubeconfigErrorSaysWhatToDo(t *testing.T) {
	_, _, err := newClients(ClusterAccess{Kubeconfig: filepath.Join(t.TempDir(), "missing.conf"), Getenv: func(string) string { return "" }})
	if err == nil || !strings.Contains(err.Error(), "pass --kubeconfig (and --context) or set KUBECONFIG") {
		t.Errorf("error = %v", err)
	}
	empty := filepath.Join(t.TempDir(), "a")
	_, _, err = newClients(ClusterAccess{Getenv: func(k string) string { return map[string]string{"KUBECONFIG": empty}[k] }})
	if want := "no kubeconfig: " + empty + " gave none; pass --kubeconfig"; err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "KUBERNETES_MASTER") {
		t.Errorf("error = %v, want %q and no KUBERNETES_MASTER", err, want)
	}
}

// A kubeconfig that cannot be loaded is bad input, exit 1, for check as
// for the rotation commands, and with --metrics-listen too.
func TestKubeconfigErrorIsBadInput(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.conf")
	for _, args := range [][]string{
		{"check", "--kubeconfig", missing},
		{"check", "--kubeconfig", missing, "--metrics-listen", "127.0.0.1:0"},
		{"status", "--kubeconfig", missing, "--state-dir", t.TempDir()},
	} {
		var stdout, stderr bytes.Buffer
		code := Execute(context.Background(), args, Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }})
		if code != ExitError || !strings.Contains(stderr.String(), "load kubeconfig: stat "+missing) {
			t.Errorf("%v: exit %d, stderr %q; want 1 and the file named", args, code, stderr.String())
		}
	}
}
