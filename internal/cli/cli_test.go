package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"version"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr.String())
	}
	if got, want := strings.SplitN(stdout.String(), "\n", 2)[0], "carotate "+Version; got != want {
		t.Errorf("first line = %q, want %q", got, want)
	}
	stdout.Reset()
	if code := Main([]string{"version", "-o", "json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr.String())
	}
	var v VersionInfo
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil || v.Kind != "Version" || v.Version != Version || v.GoVersion == "" {
		t.Errorf("version -o json = %s (%v)", stdout.String(), err)
	}
	stdout.Reset()
	if code := Main([]string{"version", "-o", "yaml"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr.String())
	}
	var y VersionInfo
	if err := yaml.Unmarshal(stdout.Bytes(), &y); err != nil || !strings.HasPrefix(stdout.String(), "---\napiVersion: carotate.io/v1alpha1\n") || y != v {
		t.Errorf("version -o yaml = %s (%v), want the JSON's %+v", stdout.String(), err, v)
	}
	if code := Main([]string{"version", "-o", "xml"}, &stdout, &stderr); code != ExitError || !strings.Contains(stderr.String(), "--output") {
		t.Errorf("version -o xml: exit %d, stderr %q", code, stderr.String())
	}
}

func TestVersionFrom(t *testing.T) {
	deps := []*debug.Module{{Path: "k8s.io/client-go", Version: "v0.37.2"}}
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	cases := []struct {
		name    string
		bi      *debug.BuildInfo
		release string
		want    string
	}{
		{"no build info", nil, "", "devel"},
		{"release set at link time", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("0123456789abcdef0123", "true")}, "v1.2.3", "v1.2.3"},
		{"go install at a version", &debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}}, "", "v0.4.0"},
		{"a clean checkout", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("0123456789abcdef0123", "false")}, "", "devel+0123456789ab"},
		{"a modified tree", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("0123456789abcdef0123", "true")}, "", "devel+0123456789ab-dirty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.bi != nil {
				c.bi.GoVersion, c.bi.Deps = "go1.26", deps
			}
			got := versionFrom(c.bi, c.release)
			if d := cmp.Diff(c.want, got.Version); d != "" {
				t.Errorf("version (-want +got):\n%s", d)
			}
			if c.bi != nil && got.ClientGo != "v0.37.2" {
				t.Errorf("client-go %q", got.ClientGo)
			}
		})
	}
}

func TestUnknownCommandFails(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"no-such-command"}, &stdout, &stderr); code == 0 {
		t.Fatal("exit code 0 for an unknown command")
	}
	if !strings.Contains(stderr.String(), "no-such-command") {
		t.Errorf("stderr %q does not name the unknown command", stderr.String())
	}
}

// TestKubectlPlugin: run as kubectl-carotate, the help says "kubectl
// carotate", for the root and for each command; under any other name it
// says "carotate".
func TestKubectlPlugin(t *testing.T) {
	for argv0, want := range map[string]string{
		"/usr/local/bin/kubectl-carotate": "kubectl carotate",
		"kubectl-carotate.exe":            "kubectl carotate",
		"/usr/local/bin/carotate":         "carotate",
		"./bin/kubectl-carotate-old":      "carotate",
	} {
		if got := ProgramName(argv0); got != want {
			t.Errorf("ProgramName(%q) = %q, want %q", argv0, got, want)
		}
	}
	for _, args := range [][]string{{"--help"}, {"plan", "--help"}} {
		var stdout bytes.Buffer
		if code := Execute(context.Background(), args, Env{Stdout: &stdout, Program: "kubectl carotate"}); code != ExitOK {
			t.Fatalf("%v: exit %d", args, code)
		}
		want := "kubectl carotate [command]"
		if args[0] == "plan" {
			want = "kubectl carotate plan [flags]"
		}
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("%v: the help does not say %q:\n%s", args, want, stdout.String())
		}
	}
}
