package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// EncodeCertificatePEM encodes one certificate as a PEM block.
func EncodeCertificatePEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// BuildBundle concatenates certificates as PEM in the order given, dropping
// repeats (the first occurrence stays). Order matters: kubeadm pairs the first
// certificate of ca.crt with ca.key, so callers put the signing CA first. Nil
// entries are skipped.
func BuildBundle(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range Dedupe(certs) {
		buf.Write(EncodeCertificatePEM(c))
	}
	return buf.Bytes()
}

// ParseBundle parses a trust bundle and drops repeated certificates, keeping
// the first occurrence, so that a bundle that was written twice still reads as
// the set of CAs it means. Use FindDuplicates first to report the repeats.
func ParseBundle(source string, data []byte) ([]*x509.Certificate, error) {
	certs, err := ParseCertificatesPEM(source, data)
	if err != nil {
		return nil, err
	}
	return Dedupe(certs), nil
}

// Dedupe returns certs without repeats (byte-identical certificates) and
// without nil entries, keeping the first occurrence and the order.
func Dedupe(certs []*x509.Certificate) []*x509.Certificate {
	seen := make(map[string]bool, len(certs))
	out := make([]*x509.Certificate, 0, len(certs))
	for _, c := range certs {
		if c == nil || seen[string(c.Raw)] {
			continue
		}
		seen[string(c.Raw)] = true
		out = append(out, c)
	}
	return out
}

// Duplicate records that the certificate at Index (0-based) repeats the one at
// First.
type Duplicate struct {
	Index int
	First int
}

// FindDuplicates lists every certificate that repeats an earlier one
// byte-for-byte. Certificates that share a subject or key but differ in any
// byte are not duplicates.
func FindDuplicates(certs []*x509.Certificate) []Duplicate {
	first := make(map[string]int, len(certs))
	var dups []Duplicate
	for i, c := range certs {
		if c == nil {
			continue
		}
		if j, ok := first[string(c.Raw)]; ok {
			dups = append(dups, Duplicate{Index: i, First: j})
			continue
		}
		first[string(c.Raw)] = i
	}
	return dups
}

// CheckNoDuplicates refuses a bundle with repeated certificates. Repeats are
// harmless to TLS but mean whatever wrote the bundle did not do what it
// meant, and they make "is the bundle exactly old+new?" checks lie.
func CheckNoDuplicates(source string, certs []*x509.Certificate) error {
	dups := FindDuplicates(certs)
	if len(dups) == 0 {
		return nil
	}
	d := dups[0]
	detail := fmt.Sprintf("certificate %d (%s) repeats certificate %d", d.Index+1, describeCert(certs[d.Index]), d.First+1)
	if len(dups) > 1 {
		detail += fmt.Sprintf(", and %d more repeats", len(dups)-1)
	}
	return newError(source, ReasonDuplicate, detail, "remove the repeated certificates", nil)
}
