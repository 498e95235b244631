// Package check decides what is wrong with a cluster before carotate
// touches it. Each check is a small pure function over a model.Cluster that
// returns findings, each with an ID (the reason), a severity, the subject
// it concerns (node:file flag, or object field), a message saying what is
// wrong and an action saying what to do. No check does any I/O.
package check

import (
	"fmt"
	"sort"
	"time"

	"github.com/carotate/carotate/internal/model"
)

// Severity says whether a finding stops a rotation.
type Severity string

const (
	// Blocking: a rotation must not start until this is fixed.
	Blocking Severity = "blocking"
	// Warning: a rotation can start, but this needs attention.
	Warning Severity = "warning"
	// Info: worth knowing.
	Info Severity = "info"
)

// Defaults for Options left zero.
const (
	DefaultExpiryThreshold = 90 * 24 * time.Hour
	DefaultMaxClockSkew    = 60 * time.Second
)

// Finding is one thing a check found.
type Finding struct {
	// ID is the reason, stable for machines: "ca-expiring".
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	// Subject is what it concerns: "cp-1:/etc/kubernetes/pki/ca.crt
	// (kube-controller-manager --cluster-signing-cert-file)" or
	// "APIService v1beta1.metrics.k8s.io spec.caBundle".
	Subject string `json:"subject"`
	Message string `json:"message"`
	Action  string `json:"action"`
}

// Options are the bounds the checks use.
type Options struct {
	// Now is the time the checks judge expiry at; the cluster's ObservedAt
	// when zero.
	Now time.Time
	// ExpiryThreshold: a certificate expiring sooner is reported.
	ExpiryThreshold time.Duration
	// MaxClockSkew: a node clock further off than this is reported.
	MaxClockSkew time.Duration
}

func (o Options) withDefaults(c model.Cluster) Options {
	if o.Now.IsZero() {
		o.Now = c.ObservedAt
	}
	if o.ExpiryThreshold == 0 {
		o.ExpiryThreshold = DefaultExpiryThreshold
	}
	if o.MaxClockSkew == 0 {
		o.MaxClockSkew = DefaultMaxClockSkew
	}
	return o
}

// Check is one pure check.
type Check struct {
	Name string
	Run  func(c model.Cluster, o Options) []Finding
}

// All returns every check, in the order the report shows them.
func All() []Check {
	return []Check{
		{"nodes", Nodes},
		{"clock-skew", ClockSkew},
		{"expiry", Expiry},
		{"ca-files", CAFiles},
		{"signing-files", SigningFiles},
		{"stray-manifests", StrayManifests},
		{"unhandled-trust", UnhandledTrust},
		{"key-permissions", KeyPermissions},
		{"rotation-in-progress", RotationInProgress},
		{"api-services", APIServices},
		{"ca-bundles", CABundles},
		{"legacy-tokens", LegacyTokens},
	}
}

// Run runs every check and returns the findings, blocking first.
func Run(c model.Cluster, o Options) []Finding {
	o = o.withDefaults(c)
	var out []Finding
	for _, ch := range All() {
		out = append(out, ch.Run(c, o)...)
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i].Severity) < rank(out[j].Severity) })
	return out
}

func rank(s Severity) int {
	switch s {
	case Blocking:
		return 0
	case Warning:
		return 1
	default:
		return 2
	}
}

// HasBlocking says whether any finding stops a rotation.
func HasBlocking(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity == Blocking {
			return true
		}
	}
	return false
}

// Count returns how many findings have severity s.
func Count(fs []Finding, s Severity) int {
	n := 0
	for _, f := range fs {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Describe renders a location the way findings and the report name it:
// "cp-1:/etc/kubernetes/pki/ca.crt (kube-apiserver --client-ca-file)",
// "cp-1:/etc/kubernetes/admin.conf users[kubernetes-admin].client-certificate-data",
// "ConfigMap kube-public/cluster-info data[kubeconfig]".
func Describe(l model.Location) string {
	var s string
	switch {
	case l.Object != "":
		s = l.Object
		if l.Field != "" {
			s += " " + l.Field
		}
	default:
		s = l.Node + ":" + l.Path
		if l.Field != "" && l.Flag == "" {
			s += " " + l.Field
		}
		if l.Flag != "" {
			s += " (" + l.Flag + ")"
		}
	}
	return s
}

func fileSubject(node, path string) string { return node + ":" + path }

// days renders a duration in whole days for messages.
func days(d time.Duration) string {
	n := int(d.Hours() / 24)
	if n == 1 || n == -1 {
		return fmt.Sprintf("%d day", n)
	}
	return fmt.Sprintf("%d days", n)
}
