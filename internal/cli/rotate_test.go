package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/rotation"
	"github.com/carotate/carotate/internal/state"
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
		{"output", []string{"plan", "-o", "xml"}, `--output "xml" is not one of text, json or yaml`},
		{"parallelism", []string{"finalize", "--parallelism", "0"}, "--parallelism must be at least 1"},
		{"ssh port", []string{"rollback", "--ssh-port", "70000"}, "--ssh-port 70000 is out of range"},
		{"relative state dir", []string{"status", "--state-dir", "state"}, `--state-dir "state" must be an absolute path`},
		{"empty kubelet restart", []string{"rotate", "--kubelet-restart-command", " "}, `--kubelet-restart-command " ": it is empty`},
		{"kubelet restart with an expansion", []string{"rotate", "--kubelet-restart-command", "systemctl restart $UNIT"}, `--kubelet-restart-command "systemctl restart $UNIT": it expands something`},
		{"kubelet log command of two commands", []string{"finalize", "--kubelet-log-command", "journalctl; reboot"}, `--kubelet-log-command "journalctl; reboot": it holds more than one command`},
		{"empty roots", []string{"rotate", "--roots", ""}, `--roots "": names no root; give a comma-separated list of cluster-ca, front-proxy-ca, service-account-key, etcd-ca, all`},
		{"unknown root", []string{"plan", "--roots", "cluster-ca,sa"}, `--roots "cluster-ca,sa": "sa" is not a root; the roots are cluster-ca, front-proxy-ca, service-account-key, etcd-ca, all`},
		{"service-account key alone", []string{"rotate", "--roots", "service-account-key"}, "--roots service-account-key: cluster-ca and front-proxy-ca rotate together in this version, and service-account-key and etcd-ca only with them"},
		{"etcd CA alone", []string{"finalize", "--roots", "etcd-ca"}, "--roots etcd-ca: cluster-ca and front-proxy-ca rotate together in this version, and service-account-key and etcd-ca only with them"},
		{"service-account key type", []string{"rotate", "--service-account-key-type", "Ed25519"}, "--service-account-key-type: Ed25519 is not a key type for service-account tokens; use one of RSA-2048, RSA-3072, RSA-4096, ECDSA-P256, ECDSA-P384"},
		{"service-account key and type", []string{"plan", "--service-account-key", "/tmp/x.key", "--service-account-key-type", "RSA-2048"}, "--service-account-key and --service-account-key-type exclude each other"},
		{"cluster CA alone", []string{"rotate", "--roots", "cluster-ca"}, "--roots cluster-ca: cluster-ca and front-proxy-ca rotate together in this version"},
		{"front-proxy CA alone", []string{"status", "--roots", "front-proxy-ca"}, "cluster-ca and front-proxy-ca rotate together in this version"},
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

// TestNotRotatedNote: plan and rotate say which roots are left alone: on
// stdout with the text output, on stderr with JSON, whose stdout stays
// events only.
func TestNotRotatedNote(t *testing.T) {
	const note = "Not rotated: the service-account signing key (sa.key) and the etcd CA; after a leak of /etc/kubernetes/pki they must be rotated too: add service-account-key,etcd-ca to --roots (or --roots all).\n"
	tests := []struct {
		name           string
		output         string
		roots          []string
		stdout, stderr string
	}{
		{"text", OutputText, []string{"cluster-ca", "front-proxy-ca"}, note, ""},
		{"json", OutputJSON, []string{"cluster-ca", "front-proxy-ca"}, "", note},
		{"yaml", OutputYAML, []string{"cluster-ca", "front-proxy-ca"}, "", note},
		{"a record without roots rotates the default", OutputText, nil, note, ""},
		{"every root", OutputText, rotation.AllRoots().Names(), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			s := &session{
				o:  &rotationOptions{IOStreams: IOStreams{Out: &stdout, ErrOut: &stderr}},
				lc: &rotation.Lifecycle{Record: state.Record{RotationID: "r-test", Roots: tt.roots}},
			}
			s.notRotated(tt.output)
			if diff := cmp.Diff(tt.stdout, stdout.String()); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.stderr, stderr.String()); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFinishedSummaryOut: the summary after the steps goes to stdout with
// the text output and to stderr with JSON, whose stdout stays events only.
func TestFinishedSummaryOut(t *testing.T) {
	for _, output := range []string{OutputText, OutputJSON, OutputYAML} {
		t.Run(output, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			s := &session{
				o:  &rotationOptions{IOStreams: IOStreams{Out: &stdout, ErrOut: &stderr}},
				lc: &rotation.Lifecycle{Record: state.Record{RotationID: "r-test"}},
			}
			s.finished(rotation.Result{State: rotation.SwitchDone}, output)
			want, other := &stdout, &stderr
			if output != OutputText {
				want, other = &stderr, &stdout
			}
			if !strings.Contains(want.String(), "run: carotate finalize") || other.Len() != 0 {
				t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
			}
		})
	}
}

// TestConfirmSaysWhatWasShown: without --yes and without a terminal the
// refusal points at the plan above only when one was printed; with JSON
// output the prompt stays off stdout.
func TestConfirmSaysWhatWasShown(t *testing.T) {
	tests := []struct {
		command rotation.Command
		output  string
		want    string
	}{
		{rotation.Rotate, OutputText, "rotate changes the cluster; review the plan above and pass --yes"},
		{rotation.Finalize, OutputJSON, "finalize changes the cluster; review what it does with `carotate plan`, then pass --yes"},
		{rotation.Rotate, OutputYAML, "rotate changes the cluster; review what it does with `carotate plan`, then pass --yes"},
		{rotation.Rollback, OutputText, "rollback returns the cluster to where it was before the rotation; pass --yes"},
	}
	for _, tt := range tests {
		o := &rotationOptions{IOStreams: IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, interactive: func() bool { return false }}
		if err := o.confirm(tt.command, false, tt.output); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s -o %s: %v, want %q", tt.command, tt.output, err, tt.want)
		}
		if err := o.confirm(tt.command, true, tt.output); err != nil {
			t.Errorf("%s --yes: %v", tt.command, err)
		}
	}
	var stdout, stderr bytes.Buffer
	o := &rotationOptions{IOStreams: IOStreams{Out: &stdout, ErrOut: &stderr, In: strings.NewReader("rotate\n")}, interactive: func() bool { return true }}
	if err := o.confirm(rotation.Rotate, false, OutputJSON); err != nil {
		t.Fatal(err)
	}
	if stdout.Len() != 0 || !strings.Contains(stderr.String(), `Type "rotate" to go on`) {
		t.Errorf("json prompt: stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}
