package engine

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"sort"
	"time"

	"github.com/carotate/carotate/internal/pki"
)

// Plan is what a step would change, for `carotate plan`: the concrete
// differences and the restarts they cause. The CLI renders it; the engine
// only carries it from Describe to the reporter.
type Plan struct {
	// Summary is one line, e.g. "--root-ca-file → ca-bundle.crt".
	Summary  string    `json:"summary,omitempty"`
	Diffs    []Diff    `json:"diffs,omitempty"`
	Restarts []Restart `json:"restarts,omitempty"`
}

// DiffKind says what a Diff compares.
type DiffKind string

const (
	DiffFile   DiffKind = "file"
	DiffCert   DiffKind = "cert"
	DiffFlag   DiffKind = "flag"
	DiffObject DiffKind = "object"
)

// Diff is one thing that changes. Before and After are absent when the
// thing does not exist on that side (a file created or removed).
//
// Secret file content never goes into a Diff: SecretFileDiff keeps only the
// hashes, and the constructors are the way to build a file diff.
type Diff struct {
	Kind DiffKind `json:"kind"`
	Node string   `json:"node,omitempty"`
	// Path is the file path for files and certificates, "component --flag"
	// for flags and "Kind namespace/name" for objects.
	Path string `json:"path"`
	// Field narrows Path, e.g. "clusters[kubernetes].certificate-authority-data".
	Field string `json:"field,omitempty"`

	Before *string `json:"before,omitempty"`
	After  *string `json:"after,omitempty"`
	// BeforeSHA256 and AfterSHA256 identify file content; for secrets they
	// are all there is.
	BeforeSHA256 string `json:"beforeSHA256,omitempty"`
	AfterSHA256  string `json:"afterSHA256,omitempty"`
	Secret       bool   `json:"secret,omitempty"`

	BeforeCert *CertSummary `json:"beforeCert,omitempty"`
	AfterCert  *CertSummary `json:"afterCert,omitempty"`
}

// CertSummary is what an operator compares between two certificates.
type CertSummary struct {
	Subject           string    `json:"subject"`
	Issuer            string    `json:"issuer"`
	SPKISHA256        string    `json:"spkiSHA256"`
	CertificateSHA256 string    `json:"certificateSHA256"`
	NotBefore         time.Time `json:"notBefore"`
	NotAfter          time.Time `json:"notAfter"`
}

// Restart is a component restarted on a node ("kube-controller-manager" on
// "cp-1", "kubelet" on "worker-2").
type Restart struct {
	Component string `json:"component"`
	Node      string `json:"node,omitempty"`
}

// FileDiff compares the non-secret content of a file; nil means the file
// does not exist on that side.
func FileDiff(node, path string, before, after []byte) Diff {
	d := SecretFileDiff(node, path, before, after)
	d.Secret = false
	d.Before, d.After = text(before), text(after)
	return d
}

// SecretFileDiff compares a file whose content must never be shown (a key,
// a kubeconfig with client key data) by its hashes only.
func SecretFileDiff(node, path string, before, after []byte) Diff {
	return Diff{Kind: DiffFile, Node: node, Path: path, Secret: true,
		BeforeSHA256: hash(before), AfterSHA256: hash(after)}
}

// FlagDiff is a component flag changing value; "" means absent.
func FlagDiff(node, component, flag, before, after string) Diff {
	d := Diff{Kind: DiffFlag, Node: node, Path: component + " " + flag}
	if before != "" {
		d.Before = &before
	}
	if after != "" {
		d.After = &after
	}
	return d
}

// ObjectDiff is an API object, or a field of it, changing; "" means absent.
func ObjectDiff(object, field, before, after string) Diff {
	d := Diff{Kind: DiffObject, Path: object, Field: field}
	if before != "" {
		d.Before = &before
	}
	if after != "" {
		d.After = &after
	}
	return d
}

// CertDiff compares two certificates at path; nil means absent.
func CertDiff(node, path string, before, after *x509.Certificate) Diff {
	return Diff{Kind: DiffCert, Node: node, Path: path,
		BeforeCert: summarize(before), AfterCert: summarize(after)}
}

func summarize(c *x509.Certificate) *CertSummary {
	if c == nil {
		return nil
	}
	return &CertSummary{
		Subject:           c.Subject.String(),
		Issuer:            c.Issuer.String(),
		SPKISHA256:        pki.SPKIFingerprint(c),
		CertificateSHA256: pki.CertificateFingerprint(c),
		NotBefore:         c.NotBefore.UTC(),
		NotAfter:          c.NotAfter.UTC(),
	}
}

func text(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

func hash(b []byte) string {
	if b == nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// RestartCount is how often a component restarts in a plan.
type RestartCount struct {
	Component string `json:"component"`
	Count     int    `json:"count"`
}

// CountRestarts counts the restarts the planned events announce, per
// component, sorted by component name, for the plan's summary line.
func CountRestarts(events []Event) []RestartCount {
	n := map[string]int{}
	for _, e := range events {
		if e.Outcome != Planned || e.Plan == nil {
			continue
		}
		for _, r := range e.Plan.Restarts {
			n[r.Component]++
		}
	}
	out := make([]RestartCount, 0, len(n))
	for c, k := range n {
		out = append(out, RestartCount{Component: c, Count: k})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Component < out[j].Component })
	return out
}
