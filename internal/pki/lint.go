package pki

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"strings"
	"time"
)

// DefaultClockSkew is how far in the future a NotBefore may lie before Lint
// objects: the clock offset carotate tolerates between nodes.
const DefaultClockSkew = time.Minute

// Object identifiers of the extensions Lint inspects, in dotted form.
const (
	oidBasicConstraints = "2.5.29.19"
	oidKeyUsage         = "2.5.29.15"
	oidSubjectAltName   = "2.5.29.17"
)

// LintOptions configures Lint.
type LintOptions struct {
	// Now is the current time. Required: without it the time checks fail.
	Now time.Time
	// Issuer is the certificate that signed the one being linted. When nil,
	// a self-signed certificate is its own issuer and the issuer checks are
	// skipped for the rest.
	Issuer *x509.Certificate
	// ClockSkew bounds how far NotBefore may be ahead of Now. Default
	// DefaultClockSkew.
	ClockSkew time.Duration
	// DistinctFrom lists CAs a linted CA must not share a subject with,
	// typically the CA it replaces.
	DistinctFrom []*x509.Certificate
}

// Problem is one failed lint check: which check, and a message saying what is
// wrong with the certificate.
type Problem struct {
	Check   string
	Message string
}

// String renders "check: message", as shown in errors and plans.
func (p Problem) String() string { return p.Check + ": " + p.Message }

// lintCheck is one small pure check. It returns "" when the certificate
// passes, or what is wrong.
type lintCheck struct {
	name  string
	check func(c *x509.Certificate, in lintInput) string
}

// lintInput is LintOptions with defaults applied and the issuer resolved.
type lintInput struct {
	LintOptions
	issuer     *x509.Certificate
	selfSigned bool
}

// Lint checks a certificate carotate made, or is about to trust, against the
// rules every certificate we produce must meet, and returns the problems
// found; none means it passed. The checks are data (see lintChecks) so that a
// new rule is one small function.
func Lint(cert *x509.Certificate, opts LintOptions) []Problem {
	if cert == nil {
		return []Problem{{Check: "certificate", Message: "no certificate given"}}
	}
	in := lintInput{LintOptions: opts, issuer: opts.Issuer}
	if in.ClockSkew == 0 {
		in.ClockSkew = DefaultClockSkew
	}
	in.selfSigned = bytes.Equal(cert.RawIssuer, cert.RawSubject) && cert.CheckSignatureFrom(cert) == nil
	if in.issuer == nil && in.selfSigned {
		in.issuer = cert
	}
	var problems []Problem
	for _, lc := range lintChecks() {
		if msg := lc.check(cert, in); msg != "" {
			problems = append(problems, Problem{Check: lc.name, Message: msg})
		}
	}
	return problems
}

func joinProblems(problems []Problem) string {
	s := make([]string, len(problems))
	for i, p := range problems {
		s[i] = p.String()
	}
	return strings.Join(s, "; ")
}

// lintChecks lists the checks in the order they are reported.
func lintChecks() []lintCheck {
	return []lintCheck{
		{"current-time", checkCurrentTime},
		{"serial-number", checkSerial},
		{"validity-order", checkValidityOrder},
		{"not-before-in-future", checkNotBefore},
		{"expired", checkExpired},
		{"key-strength", checkKey},
		{"signature-algorithm", checkSignatureAlgorithm},
		{"ca-basic-constraints", checkCABasicConstraints},
		{"ca-key-usage", checkCAKeyUsage},
		{"ca-subject-key-id", checkCASubjectKeyID},
		{"ca-subject", checkCASubject},
		{"ca-subject-distinct", checkCASubjectDistinct},
		{"leaf-key-usage", checkLeafKeyUsage},
		{"authority-key-id", checkAuthorityKeyID},
		{"issuer-signature", checkIssuerSignature},
		{"validity-within-issuer", checkValidityWithinIssuer},
	}
}

func findExtension(c *x509.Certificate, oid string) (critical, found bool) {
	for _, ext := range c.Extensions {
		if ext.Id.String() == oid {
			return ext.Critical, true
		}
	}
	return false, false
}

func checkCurrentTime(_ *x509.Certificate, in lintInput) string {
	if in.Now.IsZero() {
		return "no current time given, so the time checks are meaningless"
	}
	return ""
}

// checkSerial wants at least 64 bits, which is what random serials give and
// sequential ones do not; we cannot see randomness, only its length.
func checkSerial(c *x509.Certificate, _ lintInput) string {
	switch s := c.SerialNumber; {
	case s == nil:
		return "certificate has no serial number"
	case s.Sign() <= 0:
		return fmt.Sprintf("serial number %s is not positive", s)
	case s.BitLen() < 64:
		return fmt.Sprintf("serial number has %d bits, fewer than 64 random bits", s.BitLen())
	case s.BitLen() > 159:
		return fmt.Sprintf("serial number has %d bits, longer than the 20 octets RFC 5280 allows", s.BitLen())
	}
	return ""
}

func checkValidityOrder(c *x509.Certificate, _ lintInput) string {
	if !c.NotBefore.Before(c.NotAfter) {
		return fmt.Sprintf("notBefore %s is not before notAfter %s", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	}
	return ""
}

func checkNotBefore(c *x509.Certificate, in lintInput) string {
	if c.NotBefore.After(in.Now.Add(in.ClockSkew)) {
		return fmt.Sprintf("notBefore %s is more than %s after the current time %s",
			c.NotBefore.UTC().Format(time.RFC3339), in.ClockSkew, in.Now.UTC().Format(time.RFC3339))
	}
	return ""
}

func checkExpired(c *x509.Certificate, in lintInput) string {
	if in.Now.After(c.NotAfter) {
		return fmt.Sprintf("expired at %s", c.NotAfter.UTC().Format(time.RFC3339))
	}
	return ""
}

func checkKey(c *x509.Certificate, _ lintInput) string {
	if err := CheckKeyStrength("", c.PublicKey); err != nil {
		return err.Error()
	}
	return ""
}

func checkSignatureAlgorithm(c *x509.Certificate, _ lintInput) string {
	switch c.SignatureAlgorithm {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1, x509.UnknownSignatureAlgorithm:
		return fmt.Sprintf("signed with %s, which verifiers reject", c.SignatureAlgorithm)
	}
	return ""
}

func checkCABasicConstraints(c *x509.Certificate, _ lintInput) string {
	if !c.IsCA {
		return ""
	}
	if critical, _ := findExtension(c, oidBasicConstraints); !critical {
		return "basicConstraints CA:TRUE is not marked critical"
	}
	return ""
}

func checkCAKeyUsage(c *x509.Certificate, _ lintInput) string {
	if !c.IsCA {
		return ""
	}
	critical, found := findExtension(c, oidKeyUsage)
	switch {
	case !found:
		return "ca has no keyUsage extension"
	case !critical:
		return "keyUsage is not marked critical"
	case c.KeyUsage&x509.KeyUsageCertSign == 0:
		return "keyUsage lacks keyCertSign"
	}
	return ""
}

func checkCASubjectKeyID(c *x509.Certificate, _ lintInput) string {
	if c.IsCA && len(c.SubjectKeyId) == 0 {
		return "ca has no subject key identifier, so the certificates it signs cannot point to it"
	}
	return ""
}

// emptyRDNSequence is the DER of an empty Name.
const emptyRDNSequence = "\x30\x00"

func checkCASubject(c *x509.Certificate, _ lintInput) string {
	if c.IsCA && (len(c.RawSubject) == 0 || string(c.RawSubject) == emptyRDNSequence) {
		return "ca has an empty subject"
	}
	return ""
}

func checkCASubjectDistinct(c *x509.Certificate, in lintInput) string {
	if !c.IsCA {
		return ""
	}
	for _, other := range in.DistinctFrom {
		if other != nil && !bytes.Equal(other.Raw, c.Raw) && bytes.Equal(other.RawSubject, c.RawSubject) {
			return fmt.Sprintf("shares subject %q with another ca (serial %x); OpenSSL-based clients stop at the first CA whose subject matches",
				c.Subject.String(), other.SerialNumber)
		}
	}
	return ""
}

func checkLeafKeyUsage(c *x509.Certificate, _ lintInput) string {
	if !c.IsCA && c.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
		return "leaf certificate has keyCertSign or cRLSign but is not a ca"
	}
	return ""
}

func checkAuthorityKeyID(c *x509.Certificate, in lintInput) string {
	if in.selfSigned {
		return ""
	}
	if len(c.AuthorityKeyId) == 0 {
		return "has no authority key identifier, so clients must guess its issuer by subject"
	}
	if in.issuer != nil && len(in.issuer.SubjectKeyId) > 0 && !bytes.Equal(c.AuthorityKeyId, in.issuer.SubjectKeyId) {
		return fmt.Sprintf("authority key identifier %x does not match the issuer's subject key identifier %x", c.AuthorityKeyId, in.issuer.SubjectKeyId)
	}
	return ""
}

func checkIssuerSignature(c *x509.Certificate, in lintInput) string {
	if in.issuer == nil {
		return ""
	}
	if !bytes.Equal(c.RawIssuer, in.issuer.RawSubject) {
		return fmt.Sprintf("issuer %q is not the subject %q of the given issuer", c.Issuer.String(), in.issuer.Subject.String())
	}
	if err := c.CheckSignatureFrom(in.issuer); err != nil {
		return fmt.Sprintf("signature does not verify with the issuer's key: %v", err)
	}
	return ""
}

func checkValidityWithinIssuer(c *x509.Certificate, in lintInput) string {
	if in.issuer == nil || in.issuer == c {
		return ""
	}
	if c.NotAfter.After(in.issuer.NotAfter) {
		return fmt.Sprintf("notAfter %s is after the issuer's notAfter %s",
			c.NotAfter.UTC().Format(time.RFC3339), in.issuer.NotAfter.UTC().Format(time.RFC3339))
	}
	return ""
}
