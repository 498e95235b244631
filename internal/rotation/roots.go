package rotation

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/carotate/carotate/internal/model"
)

// Root is a root of trust a rotation may change, by the name --roots
// gives it.
type Root string

const (
	RootClusterCA         Root = "cluster-ca"
	RootFrontProxyCA      Root = "front-proxy-ca"
	RootServiceAccountKey Root = "service-account-key"
	RootEtcdCA            Root = "etcd-ca"
)

// RootsAll is the --roots value that names every root.
const RootsAll = "all"

// allRoots are every root, in the order they are listed and recorded.
var allRoots = []Root{RootClusterCA, RootFrontProxyCA, RootServiceAccountKey, RootEtcdCA}

// Kind is the catalogue's name for the root (the CAKind of its rows).
func (r Root) Kind() model.CAKind {
	switch r {
	case RootClusterCA:
		return model.ClusterCA
	case RootFrontProxyCA:
		return model.FrontProxyCA
	case RootServiceAccountKey:
		return model.ServiceAccountCA
	case RootEtcdCA:
		return model.EtcdCA
	default:
		return model.UnknownCA
	}
}

// describe is the root as a sentence names it.
func (r Root) describe() string {
	switch r {
	case RootServiceAccountKey:
		return "the service-account signing key (sa.key)"
	case RootEtcdCA:
		return "the etcd CA"
	case RootFrontProxyCA:
		return "the front-proxy CA"
	default:
		return "the cluster CA"
	}
}

// Roots is a set of roots, kept in the order of allRoots without
// duplicates, so that two sets that hold the same roots are equal.
type Roots []Root

// DefaultRoots are the roots a rotation changes when --roots is not
// given: the two CAs that rotate without restarting kube-apiserver.
func DefaultRoots() Roots { return Roots{RootClusterCA, RootFrontProxyCA} }

// AllRoots are every root.
func AllRoots() Roots { return slices.Clone(Roots(allRoots)) }

// ValidRoots lists the values --roots accepts, for messages.
func ValidRoots() string {
	names := make([]string, 0, len(allRoots)+1)
	for _, r := range allRoots {
		names = append(names, string(r))
	}
	return strings.Join(append(names, RootsAll), ", ")
}

// ParseRoots reads a comma-separated list of roots, or "all". An empty
// list or an unknown name is an error that lists the valid values.
func ParseRoots(list string) (Roots, error) {
	var names []string
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("names no root; give a comma-separated list of %s", ValidRoots())
	}
	var unknown []string
	have := map[Root]bool{}
	for _, n := range names {
		if n == RootsAll {
			for _, r := range allRoots {
				have[r] = true
			}
			continue
		}
		if !slices.Contains(allRoots, Root(n)) {
			unknown = append(unknown, fmt.Sprintf("%q", n))
			continue
		}
		have[Root(n)] = true
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%s is not a root; the roots are %s", strings.Join(unknown, ", "), ValidRoots())
	}
	var out Roots
	for _, r := range allRoots {
		if have[r] {
			out = append(out, r)
		}
	}
	return out, nil
}

// RecordedRoots are the roots a rotation record holds; a record without
// any (written before carotate recorded them) means the default.
func RecordedRoots(names []string) (Roots, error) {
	if len(names) == 0 {
		return DefaultRoots(), nil
	}
	r, err := ParseRoots(strings.Join(names, ","))
	if err != nil {
		return nil, fmt.Errorf("the record's roots: %w; it was changed by hand", err)
	}
	return r, nil
}

// Has says whether r holds root.
func (r Roots) Has(root Root) bool { return slices.Contains(r, root) }

// Equal says whether r and other hold the same roots.
func (r Roots) Equal(other Roots) bool { return slices.Equal(r, other) }

// Names are the roots as stored in the record.
func (r Roots) Names() []string {
	out := make([]string, len(r))
	for i, root := range r {
		out[i] = string(root)
	}
	return out
}

// String is the roots as --roots takes them.
func (r Roots) String() string { return strings.Join(r.Names(), ",") }

// Kinds are the catalogue's names for the roots.
func (r Roots) Kinds() []model.CAKind {
	out := make([]model.CAKind, len(r))
	for i, root := range r {
		out[i] = root.Kind()
	}
	return out
}

// NotSelected are the roots r leaves out.
func (r Roots) NotSelected() Roots {
	var out Roots
	for _, root := range allRoots {
		if !r.Has(root) {
			out = append(out, root)
		}
	}
	return out
}

// ErrRootNotRotated means --roots names a root, or a set of roots, that
// this version of carotate does not rotate.
var ErrRootNotRotated = errors.New("not rotated by this version of carotate")

// Supported refuses roots this version does not rotate. It rotates the
// cluster CA and the front-proxy CA, together (the runbook moves them in
// one pass), and with them the service-account key and the etcd CA. The
// service-account key or the etcd CA without the two CAs are refused,
// not pretended to.
func (r Roots) Supported() error {
	if !r.Has(RootClusterCA) || !r.Has(RootFrontProxyCA) {
		return fmt.Errorf("%s and %s rotate together in this version, and %s and %s only with them (one pass of the runbook moves them all); give both: %w", RootClusterCA, RootFrontProxyCA, RootServiceAccountKey, RootEtcdCA, ErrRootNotRotated)
	}
	return nil
}

// NotRotatedNote says which roots a rotation of r leaves alone, and that
// a leaked key needs them all; "" when r is every root.
func NotRotatedNote(r Roots) string {
	left := r.NotSelected()
	if len(left) == 0 {
		return ""
	}
	names := make([]string, len(left))
	flags := make([]string, len(left))
	for i, root := range left {
		names[i], flags[i] = root.describe(), string(root)
	}
	return fmt.Sprintf("Not rotated: %s; after a leak of /etc/kubernetes/pki they must be rotated too: add %s to --roots (or --roots all).",
		andList(names), strings.Join(flags, ","))
}

// NotRenewedNote says which CAs a renewal of r leaves as they are.
func NotRenewedNote(r Roots) string {
	if r.Has(RootEtcdCA) {
		return ""
	}
	return fmt.Sprintf("Not renewed: %s, which carotate does not renew yet; rotate it with `carotate rotate --roots %s` before it expires (`carotate check` shows when).", RootEtcdCA.describe(), RootEtcdCA)
}

func andList(items []string) string {
	if n := len(items); n > 1 {
		return strings.Join(items[:n-1], ", ") + " and " + items[n-1]
	}
	return strings.Join(items, "")
}
