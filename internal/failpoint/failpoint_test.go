package failpoint

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		spec    string
		wantErr string
		phase   string
		when    string
		at      int
	}{
		{spec: "", at: 0},
		{spec: "before:3", when: Before, at: 3},
		{spec: "after:1", when: After, at: 1},
		{spec: "trust:after:7", phase: "trust", when: After, at: 7},
		{spec: "after:0", wantErr: "N must be a whole number from 1"},
		{spec: "during:2", wantErr: "want [PHASE:]before:N"},
		{spec: "after", wantErr: "want [PHASE:]before:N"},
		{spec: ":after:2", wantErr: "the phase is empty"},
		{spec: "a:b:after:2", wantErr: "want [PHASE:]before:N"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			c, err := Parse(tt.spec, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), Env) {
					t.Fatalf("Parse(%q) = %v, want an error naming %s with %q", tt.spec, err, Env, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.spec == "" {
				if c != nil {
					t.Fatalf("Parse(\"\") = %v, want nil", c)
				}
				return
			}
			if c.phase != tt.phase || c.when != tt.when || c.at != tt.at {
				t.Errorf("Parse(%q) = phase %q when %q at %d", tt.spec, c.phase, c.when, c.at)
			}
		})
	}
}

// TestFires runs five side effects and records the order of effects and
// the kill, for each spec.
func TestFires(t *testing.T) {
	tests := []struct {
		spec string
		want []string
	}{
		{"before:1", []string{"KILL", "prepare-1", "trust-1", "trust-2", "trust-3", "switch-1"}},
		{"after:1", []string{"prepare-1", "KILL", "trust-1", "trust-2", "trust-3", "switch-1"}},
		{"before:3", []string{"prepare-1", "trust-1", "KILL", "trust-2", "trust-3", "switch-1"}},
		{"trust:after:3", []string{"prepare-1", "trust-1", "trust-2", "trust-3", "KILL", "switch-1"}},
		{"switch:before:1", []string{"prepare-1", "trust-1", "trust-2", "trust-3", "KILL", "switch-1"}},
		{"switch:after:2", []string{"prepare-1", "trust-1", "trust-2", "trust-3", "switch-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			var log bytes.Buffer
			c, err := Parse(tt.spec, &log)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			c.kill = func() { got = append(got, "KILL") }
			effect := func(name string) {
				if err := c.Do(name, func() error { got = append(got, name); return nil }); err != nil {
					t.Fatal(err)
				}
			}
			effect("prepare-1")
			c.EnterPhase("trust")
			effect("trust-1")
			effect("trust-2")
			effect("trust-3")
			c.EnterPhase("switch")
			effect("switch-1")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
			fired := strings.Contains(strings.Join(got, " "), "KILL")
			if fired != strings.Contains(log.String(), "failpoint: SIGKILL") {
				t.Errorf("log %q does not match whether it fired (%v)", log.String(), fired)
			}
		})
	}
}

func TestNilCounterRunsEverything(t *testing.T) {
	var c *Counter
	ran := 0
	for range 3 {
		_ = c.Do("x", func() error { ran++; return nil })
	}
	c.EnterPhase("trust")
	if ran != 3 || c.Count() != 0 {
		t.Fatalf("ran %d, count %d; want 3, 0", ran, c.Count())
	}
}
