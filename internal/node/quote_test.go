package node

import (
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// nastyArgs are strings a shell would mangle if quoting were wrong.
var nastyArgs = []struct {
	name string
	arg  string
}{
	{"empty", ""},
	{"plain", "ca.crt"},
	{"spaces", "a b  c"},
	{"single quote", "it's"},
	{"only single quotes", "''"},
	{"double quotes", `say "hi"`},
	{"dollar", "$HOME ${PATH} $(id) $1"},
	{"backticks", "`id`"},
	{"backslashes", `a\b\\c\`},
	{"newlines", "line1\nline2\n"},
	{"tab", "a\tb"},
	{"glob", "* ? [a-z]"},
	{"semicolon and pipes", "x; rm -rf / | cat && echo || true &"},
	{"redirections", "> /tmp/x < /etc/passwd 2>&1"},
	{"leading dash", "-n"},
	{"tilde", "~root"},
	{"assignment", "A=b"},
	{"comment", "# not a comment"},
	{"percent", "%s %d"},
	{"unicode", "ключ ✓"},
	{"brackets host", "[127.0.0.1]:2222"},
}

func TestQuoteRoundTripsThroughShells(t *testing.T) {
	for _, shell := range []string{"sh", "bash", "dash"} {
		path, err := exec.LookPath(shell)
		if err != nil {
			continue
		}
		for _, tc := range nastyArgs {
			t.Run(shell+"/"+tc.name, func(t *testing.T) {
				out, err := exec.Command(path, "-c", "printf %s "+Quote(tc.arg)).Output()
				if err != nil {
					t.Fatalf("%s -c: %v", shell, err)
				}
				if diff := cmp.Diff(tc.arg, string(out)); diff != "" {
					t.Errorf("round trip of %q (-want +got):\n%s", Quote(tc.arg), diff)
				}
			})
		}
	}
}

func TestQuoteForms(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"bare path", "/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/ca.crt"},
		{"empty", "", "''"},
		{"space", "a b", "'a b'"},
		{"single quote", "it's", `'it'\''s'`},
		{"assignment is quoted", "A=b", "'A=b'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Quote(tc.in)); diff != "" {
				t.Errorf("Quote(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestShellJoinRefuses(t *testing.T) {
	tests := []struct {
		name string
		argv []string
	}{
		{"empty argv", nil},
		{"NUL byte", []string{"printf", "a\x00b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := shellJoin(tc.argv); err == nil {
				t.Errorf("shellJoin(%q) = %q, want an error", tc.argv, got)
			}
		})
	}
}

func TestSSHCommandLineSudo(t *testing.T) {
	tests := []struct {
		name string
		sudo bool
		want string
	}{
		{"as login user", false, "cat -- '/a b'"},
		{"through sudo", true, "sudo -n -- cat -- '/a b'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &SSH{name: "cp-1", sudo: tc.sudo}
			got, err := s.commandLine([]string{"cat", "--", "/a b"})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("command line (-want +got):\n%s", diff)
			}
		})
	}
}
