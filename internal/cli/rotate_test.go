package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"

	"github.com/carotate/carotate/internal/inspect"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
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
		{"workload concurrency", []string{"rotate", "--workload-concurrency", "0"}, "--workload-concurrency must be at least 1, got 0"},
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
	now := time.Now()
	oldCA, err := pki.GenerateCA(pki.GenerateOptions{Now: now, Algorithm: pki.ECDSAP256, CommonName: "kubernetes"})
	if err != nil {
		t.Fatal(err)
	}
	subject, err := asn1.Marshal(pkix.Name{CommonName: "jane", Organization: []string{"ops"}}.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{RawSubject: subject, NotBefore: now, NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	jane, err := pki.Reissue(tmpl, oldCA, pki.ReissueOptions{Now: now, NewKey: true, Algorithm: pki.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	cert := inspect.CertOf(jane.Cert)
	cluster := model.Cluster{API: model.API{IssuedCertificates: []model.IssuedCertificate{
		{CSR: "jane", Signer: "kubernetes.io/kube-apiserver-client", Username: "kubernetes-admin", Cert: &cert}}}}
	for _, output := range []string{OutputText, OutputJSON, OutputYAML} {
		t.Run(output, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			s := &session{
				o:       &rotationOptions{IOStreams: IOStreams{Out: &stdout, ErrOut: &stderr}, now: func() time.Time { return now }},
				lc:      &rotation.Lifecycle{Record: state.Record{RotationID: "r-test"}},
				rot:     &rotation.Rotation{M: &rotation.Material{Old: map[model.CAKind]*pki.CA{model.ClusterCA: oldCA}}},
				cluster: cluster,
			}
			s.finished(rotation.Result{State: rotation.SwitchDone}, output)
			want, other := &stdout, &stderr
			if output != OutputText {
				want, other = &stderr, &stdout
			}
			if !strings.Contains(want.String(), "run: carotate finalize") || other.Len() != 0 {
				t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
			}
			if !strings.Contains(want.String(), "1 client certificate issued outside carotate still depends on the old CA; every apiserver rejects it once finalize distrusts that CA:\n  CertificateSigningRequest jane: CN=jane,O=ops, expires ") {
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

// TestConfirmOutside: finalize that would lock out client certificates
// issued outside carotate needs a second --yes, or "finalize" typed twice
// on a terminal (both read from one stream).
func TestConfirmOutside(t *testing.T) {
	script := func() *rotationOptions {
		return &rotationOptions{IOStreams: IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, interactive: func() bool { return false }}
	}
	if err := script().confirmOutside(0, 1, OutputText); err != nil {
		t.Errorf("nothing to lock out, one --yes: %v", err)
	}
	want := "finalize would lock out the 2 client certificates listed above; reissue them from the new CA, or pass --yes twice (--yes --yes) to lock them out"
	for _, yes := range []int{0, 1} {
		if err := script().confirmOutside(2, yes, OutputText); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), want) {
			t.Errorf("%d --yes: %v, want %q", yes, err, want)
		}
	}
	if err := script().confirmOutside(2, 2, OutputText); err != nil {
		t.Errorf("--yes --yes: %v", err)
	}
	for _, tt := range []struct {
		typed string
		ok    bool
	}{{"finalize\nfinalize\n", true}, {"finalize\nno\n", false}, {"finalize\n", false}} {
		var stdout bytes.Buffer
		o := &rotationOptions{IOStreams: IOStreams{Out: &stdout, ErrOut: &bytes.Buffer{}, In: strings.NewReader(tt.typed)}, interactive: func() bool { return true }}
		err := o.confirm(rotation.Finalize, false, OutputText)
		if err == nil {
			err = o.confirmOutside(3, 0, OutputText)
		}
		if (err == nil) != tt.ok {
			t.Errorf("typed %q: %v", tt.typed, err)
		}
		if !strings.Contains(stdout.String(), `Type "finalize" again to lock out those 3 client certificates`) {
			t.Errorf("typed %q: prompt %q", tt.typed, stdout.String())
		}
	}
}

func TestYesCounts(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want Confirmations
	}{
		{nil, 0}, {[]string{"--yes"}, 1}, {[]string{"-y"}, 1}, {[]string{"--yes", "--yes"}, 2}, {[]string{"-yy"}, 2},
		{[]string{"--yes=true"}, 1}, {[]string{"--yes", "--yes=false"}, 0},
	} {
		c := newChangeFlags()
		f := pflag.NewFlagSet("t", pflag.ContinueOnError)
		c.AddFlags(f)
		if err := f.Parse(tt.args); err != nil || c.Yes != tt.want {
			t.Errorf("%q: %d, %v; want %d", tt.args, c.Yes, err, tt.want)
		}
	}
	c := newChangeFlags()
	f := pflag.NewFlagSet("t", pflag.ContinueOnError)
	f.SetOutput(io.Discard)
	c.AddFlags(f)
	if err := f.Parse([]string{"--yes=maybe"}); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Errorf("--yes=maybe: %v", err)
	}
}
