package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestRotationCommandsRefuseBadFlags: every bad flag is refused with a
// message naming it, before the cluster is contacted (no kubeconfig here:
// reaching it would fail differently).
func TestRotationCommandsRefuseBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"ca cert without key", []string{"rotate", "--ca-cert", "/tmp/x.crt"}, "--ca-cert and --ca-key go together"},
		{"front-proxy key without cert", []string{"rotate", "--front-proxy-ca-key", "/tmp/x.key"}, "--front-proxy-ca-cert and --front-proxy-ca-key go together"},
		{"until finalize", []string{"rotate", "--until", "finalize"}, `--until "finalize" is not one of prepare, trust or switch`},
		{"until nonsense", []string{"rotate", "--until", "later"}, `--until "later"`},
		{"output", []string{"plan", "--output", "yaml"}, `--output "yaml" is not one of text or json`},
		{"parallelism", []string{"finalize", "--parallelism", "0"}, "--parallelism must be at least 1"},
		{"ssh port", []string{"rollback", "--ssh-port", "70000"}, "--ssh-port 70000 is out of range"},
		{"relative state dir", []string{"status", "--state-dir", "state"}, `--state-dir "state" must be an absolute path`},
		{"empty kubelet restart", []string{"rotate", "--kubelet-restart-command", " "}, "--kubelet-restart-command is empty"},
		{"plan has no --yes", []string{"plan", "--yes"}, "unknown flag: --yes"},
		{"status has no --until", []string{"status", "--until", "trust"}, "unknown flag: --until"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Execute(context.Background(), append(tt.args, "--kubeconfig", "/nonexistent"), Env{
				Stdout: &stdout, Stderr: &stderr, Now: func() time.Time { return time.Unix(0, 0) },
				Getenv: func(k string) string {
					if k == "HOME" {
						return t.TempDir()
					}
					return ""
				},
			})
			if code != ExitError {
				t.Errorf("exit code %d, want %d", code, ExitError)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q does not say %q", stderr.String(), tt.want)
			}
		})
	}
}
