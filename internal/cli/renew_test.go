package cli

import (
	"os"
	"path/filepath"
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

// TestLoadCertificateKey: the key file must be readable by its owner
// alone and hold a kubeadm certificate key; each refusal names the flag
// and the file.
func TestLoadCertificateKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := strings.Repeat("ab", 32)
	if k, err := loadCertificateKey(write("good", good+"\n", 0o600)); err != nil || len(k) != 32 {
		t.Errorf("a good key: %v", err)
	}
	for _, tc := range []struct{ path, want string }{
		{write("open", good, 0o644), "mode 0644 lets group or others read it"},
		{write("short", "abcd", 0o600), "not a kubeadm certificate key"},
		{filepath.Join(dir, "missing"), "no such file"},
		{dir, "not a regular file"},
	} {
		_, err := loadCertificateKey(tc.path)
		if err == nil || !strings.Contains(err.Error(), "--certificate-key-file "+tc.path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming the flag and file and saying %q", tc.path, err, tc.want)
		}
	}
}
