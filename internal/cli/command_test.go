package cli

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"systemctl restart kubelet", []string{"systemctl", "restart", "kubelet"}},
		{"journalctl -u kubelet --since {since} --no-pager -o cat", []string{"journalctl", "-u", "kubelet", "--since", "{since}", "--no-pager", "-o", "cat"}},
		{`sh -c 'systemctl restart kubelet && sleep 1'`, []string{"sh", "-c", "systemctl restart kubelet && sleep 1"}},
		{`/opt/bin/restart "the kubelet" a\ b`, []string{"/opt/bin/restart", "the kubelet", "a b"}},
		{`  rc-service   kubelet restart  `, []string{"rc-service", "kubelet", "restart"}},
		{`echo '$HOME' "x*y"`, []string{"echo", "$HOME", "x*y"}},
	}
	for _, tt := range tests {
		got, err := splitCommand("kubelet-restart-command", tt.in)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestSplitCommandRefuses(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "it is empty"},
		{"   ", "it is empty"},
		{"systemctl restart kubelet; reboot", "more than one command"},
		{"systemctl restart kubelet | tee", "not a simple command"},
		{"a && b", "not a simple command"},
		{"restart > /tmp/log", "redirects"},
		{"X=1 restart", "assigns a variable"},
		{"restart $UNIT", "expands something"},
		{"restart $(cat unit)", "expands something"},
		{"restart `cat unit`", "expands something"},
		{`restart "$UNIT"`, "inside double quotes"},
		{"~/bin/restart", "starts a word with ~"},
		{"restart kube*", "would be a glob"},
		{`restart 'unterminated`, "reached EOF"},
	}
	for _, tt := range tests {
		_, err := splitCommand("kubelet-restart-command", tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "--kubelet-restart-command ") {
			t.Errorf("%q: %v, want an error naming the flag and saying %q", tt.in, err, tt.want)
		}
	}
}
