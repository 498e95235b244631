package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/pki"
)

// The plan golden files hold the plan that carotate printed for a lab
// before the catalogue redesign (issue 9), normalised (see normalisePlan).
// A change to what the plan says, step by step and file by file, shows as
// a diff here. CAROTATE_UPDATE_GOLDEN=1 rewrites them; do that only for a
// change that is meant to change the plan, and say so in the commit.
const updateGoldenEnv = "CAROTATE_UPDATE_GOLDEN"

// checkPlanGolden prints the plan of a rotation to CAs imported from
// files, with a state directory of its own, and compares it with
// testdata/plan-<name>.golden.
func checkPlanGolden(t *testing.T, r *rotator, name string, extra ...string) {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	var args []string
	for _, ca := range []struct{ flag, cn string }{{"ca", "golden-cluster-ca"}, {"front-proxy-ca", "golden-front-proxy-ca"}} {
		c, err := pki.GenerateCA(pki.GenerateOptions{Now: now, CommonName: ca.cn})
		if err != nil {
			t.Fatal(err)
		}
		key, err := c.Key.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		crt, keyFile := filepath.Join(dir, ca.flag+".crt"), filepath.Join(dir, ca.flag+".key")
		if err := os.WriteFile(crt, c.CertPEM(), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, key, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--"+ca.flag+"-cert", crt, "--"+ca.flag+"-key", keyFile)
	}
	own := *r
	own.t, own.stateDir = t, t.TempDir()
	res := own.run(append(append([]string{"plan"}, args...), extra...)...)
	if res.code != 0 {
		t.Fatalf("plan: exit %d\n%s", res.code, res.stderr)
	}
	if entries, _ := os.ReadDir(own.stateDir); len(entries) > 0 {
		t.Errorf("plan wrote %s into the state directory %s; a plan writes nothing", entries[0].Name(), own.stateDir)
	}
	got := normalisePlan(strings.ReplaceAll(res.stdout, own.stateDir, "STATE"))
	file := filepath.Join("testdata", "plan-"+name+".golden")
	if os.Getenv(updateGoldenEnv) != "" {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", file)
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with %s=1 to write it)", err, updateGoldenEnv)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("the plan differs from %s (-want +got):\n%s", file, d)
	}
}

var (
	rotationIDPattern = regexp.MustCompile(`\br-[a-z0-9]{16}\b`)
	kubeletCertTime   = regexp.MustCompile(`kubelet-client-\d{4}(-\d{2}){5}\.pem`)
	uidPattern        = regexp.MustCompile(`\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	timePattern       = regexp.MustCompile(`\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?( UTC)?)?`)
	durationPattern   = regexp.MustCompile(`\b\d+(\.\d+)?(ms|µs|s|m\d+(\.\d+)?s|h\d+m\d+(\.\d+)?s)\b`)
	// The suffix of a generated CA's common name
	// (pki.deriveCommonName): the day and a random part.
	generatedCNPattern = regexp.MustCompile(`-20\d{6}-[0-9a-f]{8}\b`)
	// Fingerprints, hashes, serials and key IDs: runs of hex digits,
	// optionally colon-separated.
	hexPattern = regexp.MustCompile(`\b[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){7,}\b|\b[0-9a-fA-F]{12,}\b`)
)

// normalisePlan replaces what differs from one lab to the next (the
// rotation id, the cluster's uid, times and dates, durations, and every
// fingerprint, hash or serial,
// which come from keys generated per lab) with placeholders. The same
// value gets the same placeholder everywhere, numbered by first
// appearance, so the plan's structure stays visible: which file gets the
// same certificate as which.
func normalisePlan(s string) string {
	s = rotationIDPattern.ReplaceAllString(s, "r-ID")
	s = uidPattern.ReplaceAllString(s, "CLUSTER-UID")
	s = kubeletCertTime.ReplaceAllString(s, "kubelet-client-TIME.pem")
	s = generatedCNPattern.ReplaceAllString(s, "-DATE-RAND")
	s = timePattern.ReplaceAllString(s, "TIME")
	s = durationPattern.ReplaceAllString(s, "DURATION")
	seen := map[string]string{}
	s = hexPattern.ReplaceAllStringFunc(s, func(h string) string {
		k := strings.ToLower(strings.ReplaceAll(h, ":", ""))
		if p, ok := seen[k]; ok {
			return p
		}
		seen[k] = fmt.Sprintf("HEX%d", len(seen)+1)
		return seen[k]
	})
	return s
}
