package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"version"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr.String())
	}
	if got, want := stdout.String(), "carotate "+Version+"\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
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
