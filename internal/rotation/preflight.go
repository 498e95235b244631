package rotation

import (
	"fmt"
	"slices"
	"strings"

	"github.com/carotate/carotate/internal/check"
	"github.com/carotate/carotate/internal/model"
)

// The findings preflight decides on by name: check's reasons, which are
// stable for machines (check.Finding.ID).
const (
	findingNodeUnreachable = "node-unreachable"
	findingNodeNotReady    = "node-not-ready"
	findingStrayManifest   = "stray-manifest"
	findingClockSkew       = "clock-skew"
	findingCAExpired       = "ca-expired"
	findingRotationLocked  = "rotation-locked"
)

// resumeBlocking are the findings that stop a resume too. Every other
// blocking finding can be the rotation's own doing (two CAs in a bundle, a
// signing copy beside ca.crt), so only a fresh rotation is refused on it.
var resumeBlocking = map[string]bool{
	findingNodeUnreachable: true,
	findingNodeNotReady:    true,
	findingStrayManifest:   true,
	findingClockSkew:       true,
	findingCAExpired:       true,
}

// PreflightError is a refusal to start or resume a rotation, with the
// blocking findings that made it.
type PreflightError struct {
	Findings []check.Finding
}

func (e *PreflightError) Error() string {
	msgs := make([]string, len(e.Findings))
	for i, f := range e.Findings {
		msgs[i] = fmt.Sprintf("  %s: %s", f.Subject, f.Message)
		if f.ID == findingNodeNotReady {
			msgs[i] += fmt.Sprintf("; bring it back, or pass --allow-unready %s to rotate without waiting for it", strings.TrimPrefix(f.Subject, "node "))
		}
	}
	return fmt.Sprintf("%d blocking finding(s):\n%s\nfix them (see `carotate check`) and run again", len(e.Findings), strings.Join(msgs, "\n"))
}

// Preflight refuses to start (or resume) the rotation on what would make it
// unsafe, as check finds it on the cluster as gathered. A fresh rotation
// needs a clean bill from check; a resumed one only of the findings it
// does not cause itself. allowUnready names the nodes it may go on without.
func (l *Lifecycle) Preflight(c model.Cluster, allowUnready []string) error {
	findings := check.Run(c, check.Options{Now: c.ObservedAt, ExpiryThreshold: check.DefaultExpiryThreshold, MaxClockSkew: check.DefaultMaxClockSkew})
	if b := blocking(findings, !l.Fresh, allowUnready); len(b) > 0 {
		return fmt.Errorf("%w: %w", ErrRefused, &PreflightError{Findings: b})
	}
	return nil
}

// blocking are the findings that stop a rotation, fresh or resumed.
func blocking(findings []check.Finding, resume bool, allowUnready []string) []check.Finding {
	var out []check.Finding
	for _, f := range findings {
		switch {
		case f.Severity != check.Blocking:
		case f.ID == findingRotationLocked: // this run holds the lock
		case f.ID == findingNodeNotReady && slices.Contains(allowUnready, strings.TrimPrefix(f.Subject, "node ")):
		case resume && !resumeBlocking[f.ID]:
		default:
			out = append(out, f)
		}
	}
	return out
}
