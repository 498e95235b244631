package satoken

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// Token is one token file in a pod's projected volume, as read from its
// JWT header and payload. The signature is never read.
type Token struct {
	Node string
	// Path is the token's path on the node, ending in <volume>/<file> as
	// the pod sees the file, never the kubelet's ..data/ or timestamped
	// copy of it.
	Path   string
	PodUID string // from the directory: /var/lib/kubelet/pods/<uid>/...
	Volume string

	// From the kubernetes.io claim; empty for a JWT that kube-apiserver
	// did not issue as a service-account token.
	Namespace      string
	Pod            string
	ServiceAccount string

	KeyID    string // header kid: which key signed it (see KeyID)
	IssuedAt time.Time
	Expiry   time.Time
	// WarnAfter is set when kube-apiserver extended the token's expiry
	// (--service-account-extend-token-expiration, for the default 3607 s
	// kube-api-access token) to a year: the kubelet asked for a token
	// valid until WarnAfter and refreshes it as such.
	WarnAfter time.Time
}

// maxTokenAge and refreshPercent are the kubelet's: it refreshes a token
// once it is older than 24 h, or within 20 % of its lifetime of the end
// (kubernetes/kubernetes pkg/kubelet/token/token_manager.go, maxTTL and
// requiresRefresh).
const (
	maxTokenAge    = 24 * time.Hour
	refreshPercent = 20
)

// RefreshBy is when the kubelet will want a new token in t's place:
// IssuedAt + 80 % of the lifetime it asked for, or IssuedAt + 24 h if that
// is sooner (requiresRefresh in the kubelet's token manager). The lifetime
// ends at WarnAfter if set: the kubelet sees the expiry it requested, not
// the extended one. The kubelet's random jitter (up to 10 s) only makes it
// earlier. The new file is written at the kubelet's next sync of the pod's
// volumes after this time, not at it.
//
// The zero time means never: a token without expiry (one projected from a
// Secret, say) is not the kubelet's to refresh. Without IssuedAt, RefreshBy
// is the end of the lifetime, the latest the kubelet could leave it.
func (t Token) RefreshBy() time.Time {
	end := t.Expiry
	if !t.WarnAfter.IsZero() {
		end = t.WarnAfter
	}
	if end.IsZero() || t.IssuedAt.IsZero() || !end.After(t.IssuedAt) {
		return end
	}
	// Whole seconds, as the kubelet computes with ExpirationSeconds.
	lifetime := int64(end.Sub(t.IssuedAt) / time.Second)
	by := end.Add(-time.Duration(lifetime*refreshPercent/100) * time.Second)
	return earliest(by, t.IssuedAt.Add(maxTokenAge))
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// projectedDir is the part of a token's path between the pod directory and
// the volume name.
const projectedDir = "/volumes/kubernetes.io~projected/"

// parse reads the scan command's output: one record per token file,
// "<header>.<payload> <path>", each ended by a NUL byte, so that no path
// can be taken for another record. A record that cannot be read is reported
// in the returned error, naming node and path, and the rest are still
// returned, sorted by path: one odd file must not hide the pods behind it.
func parse(node string, out []byte) ([]Token, error) {
	records := strings.Split(string(out), "\x00")
	tail := records[len(records)-1] // "" when out ends with a NUL, as it should
	var tokens []Token
	var errs []error
	for _, rec := range records[:len(records)-1] {
		t, err := parseRecord(node, rec)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tokens = append(tokens, t)
	}
	if tail != "" {
		errs = append(errs, fmt.Errorf("node %s: the token scan's output ends in the middle of a record", node))
	}
	slices.SortFunc(tokens, func(a, b Token) int { return strings.Compare(a.Path, b.Path) })
	return tokens, errors.Join(errs...)
}

// parseRecord reads one record. Errors never quote the record: it is not
// secret, but it is noise, and a broken scan could put anything there.
func parseRecord(node, rec string) (Token, error) {
	jwt, p, ok := strings.Cut(rec, " ")
	if !ok || !strings.HasPrefix(p, "/") {
		return Token{}, fmt.Errorf("node %s: the token scan printed a malformed record", node)
	}
	t := Token{Node: node, Path: p}
	var err error
	if t.PodUID, t.Volume, err = locate(p); err != nil {
		return Token{}, fmt.Errorf("node %s: token %s: %w", node, p, err)
	}
	if err := t.readJWT(jwt); err != nil {
		return Token{}, fmt.Errorf("node %s: token %s: %w", node, p, err)
	}
	return t, nil
}

// locate takes the pod UID and volume name from a token's path,
// <pods>/<uid>/volumes/kubernetes.io~projected/<volume>/<file>.
func locate(p string) (podUID, volume string, err error) {
	podDir, rest, ok := strings.Cut(p, projectedDir)
	volume, file, _ := strings.Cut(rest, "/")
	podUID = path.Base(podDir)
	if !ok || !strings.Contains(podDir, "/") || podUID == "/" || volume == "" || file == "" {
		return "", "", errors.New("not a file in a pod's projected volume")
	}
	return podUID, volume, nil
}
