package cli

import (
	"strings"
	"testing"
	"time"
)

func TestParseValidity(t *testing.T) {
	day := 24 * time.Hour
	for v, want := range map[string]time.Duration{"10y": 3650 * day, "365d": 365 * day, "8760h": 365 * day, "1d": day} {
		if got, err := parseValidity(v); err != nil || got != want {
			t.Errorf("parseValidity(%q) = %s, %v; want %s", v, got, err, want)
		}
	}
	for v, want := range map[string]string{"": "give years", "10": "give years", "-1y": "give years", "ten years": "give years", "0d": "give years", "2h": "less than a day", "1000y": "give years"} {
		if _, err := parseValidity(v); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--validity") {
			t.Errorf("parseValidity(%q) = %v, want an error naming --validity and saying %q", v, err, want)
		}
	}
}

// TestRenewValidate: renew's own flags are refused before anything is
// read, each naming the flag.
func TestRenewValidate(t *testing.T) {
	for _, tc := range []struct {
		set  func(*RenewOptions)
		want string
	}{
		{func(o *RenewOptions) { o.Validity = "soon" }, "--validity \"soon\""},
		{func(o *RenewOptions) { o.Reason = "two\nlines" }, "--reason: give one line"},
		{func(o *RenewOptions) { o.Reason = strings.Repeat("x", 201) }, "at most 200 characters (got 201)"},
		{func(o *RenewOptions) { o.Until = "finalize" }, "--until \"finalize\" is not one of"},
	} {
		o := NewRenewOptions(IOStreams{})
		o.StateDir = "/var/lib/carotate"
		tc.set(o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want an error saying %q", err, tc.want)
		}
	}
	o := NewRenewOptions(IOStreams{})
	o.StateDir = "/var/lib/carotate"
	if err := o.Validate(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
}
