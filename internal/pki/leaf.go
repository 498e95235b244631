package pki

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"time"
)

// ReissueOptions configures Reissue.
type ReissueOptions struct {
	// Now is the current time. Required.
	Now time.Time
	// Source names the certificate being replaced in errors, e.g. its path.
	Source string
	// Key is the private key of the certificate being replaced. When given it
	// must match that certificate; with NewKey unset it is kept and returned
	// in Leaf.Key. When not given and NewKey is unset, the new certificate is
	// issued for the old certificate's public key and Leaf.Key is zero.
	Key PrivateKey
	// NewKey asks for a fresh key instead of keeping the old one.
	NewKey bool
	// Algorithm is the new key's algorithm. Default: the old key's algorithm
	// (never weaker than RSA-2048).
	Algorithm KeyAlgorithm
	// Keys generates the new key. Default SystemKeyGenerator.
	Keys KeyGenerator
	// Rand supplies the serial number. Default crypto/rand.
	Rand io.Reader
}

// Leaf is a reissued certificate and its key. ValidityCapped reports that the
// original validity length did not fit before the CA expires, so the
// certificate ends with the CA instead.
type Leaf struct {
	Cert           *x509.Certificate
	Key            PrivateKey
	ValidityCapped bool
}

// CertPEM encodes the certificate alone.
func (l *Leaf) CertPEM() []byte { return EncodeCertificatePEM(l.Cert) }

// Reissue signs a replacement for old with ca. The replacement clones what
// the cluster depends on, rather than regenerating it from configuration
// (FAILURE-MODES #14): the subject byte for byte, the subjectAltName extension
// byte for byte (DNS, IP, URI, email and any other names), key usage,
// extended key usage and basic constraints, and the validity length, starting
// Backdate before Now and capped at the CA's expiry. It drops what belonged
// to the old issuer (authority key id, AIA, CRL distribution points, SCTs) and
// adds a fresh serial, a subject key identifier and an authority key
// identifier naming ca.
//
// Before returning, the certificate is verified against ca's chain at Now for
// each of its extended key usages, and linted.
func Reissue(old *x509.Certificate, ca *CA, opts ReissueOptions) (*Leaf, error) {
	src := opts.Source
	if opts.Now.IsZero() {
		return nil, newError(src, ReasonInvalidOption, "reissuing a certificate needs the current time", "", nil)
	}
	if old == nil {
		return nil, newError(src, ReasonNoCertificate, "no certificate to reissue given", "", nil)
	}
	if ca == nil || ca.Cert == nil || ca.Key.IsZero() {
		return nil, newError(src, ReasonInvalidOption, "no signing ca given", "", nil)
	}
	if !KeyMatchesCertificate(ca.Key, ca.Cert) {
		return nil, newError(src, ReasonKeyMismatch,
			fmt.Sprintf("the signing ca's key does not match its certificate (%s)", describeCert(ca.Cert)), "", nil)
	}
	if old.IsCA {
		return nil, newError(src, ReasonNotLeaf,
			fmt.Sprintf("certificate (%s) is a ca, not a leaf", describeCert(old)),
			"CAs are generated or imported, not reissued", nil)
	}
	caEnd := ca.notAfter()
	if !opts.Now.Before(caEnd) {
		return nil, newError(src, ReasonExpired,
			fmt.Sprintf("the signing ca (%s) or its chain expired at %s", describeCert(ca.Cert), caEnd.UTC().Format(time.RFC3339)),
			"rotate to a CA that is currently valid", nil)
	}

	key, pub, err := reissueKey(old, opts)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial(opts.Rand)
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, fmt.Errorf("%s: computing subject key id: %w", orUnnamed(src), err)
	}
	notBefore := opts.Now.Add(-Backdate).UTC()
	notAfter := notBefore.Add(old.NotAfter.Sub(old.NotBefore))
	capped := false
	if notAfter.After(caEnd) {
		notAfter, capped = caEnd, true
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		RawSubject:            old.RawSubject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              old.KeyUsage,
		ExtKeyUsage:           old.ExtKeyUsage,
		UnknownExtKeyUsage:    old.UnknownExtKeyUsage,
		BasicConstraintsValid: old.BasicConstraintsValid,
		SubjectKeyId:          ski,
		AuthorityKeyId:        ca.Cert.SubjectKeyId,
		ExtraExtensions:       sanExtension(old),
	}
	der, err := x509.CreateCertificate(randOrDefault(opts.Rand), tmpl, ca.Cert, pub, ca.Key.Signer())
	if err != nil {
		return nil, fmt.Errorf("%s: signing replacement certificate: %w", orUnnamed(src), err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%s: parsing the certificate we just signed: %w", orUnnamed(src), err)
	}
	if err := verifyIssued(src, cert, ca, opts.Now); err != nil {
		return nil, err
	}
	if problems := Lint(cert, LintOptions{Now: opts.Now, Issuer: ca.Cert}); len(problems) > 0 {
		return nil, newError(src, ReasonVerifyFailed,
			fmt.Sprintf("reissued certificate fails its checks: %s", joinProblems(problems)),
			"check the signing CA with ValidateCA", nil)
	}
	return &Leaf{Cert: cert, Key: key, ValidityCapped: capped}, nil
}

// reissueKey decides which key the new certificate certifies.
func reissueKey(old *x509.Certificate, opts ReissueOptions) (PrivateKey, crypto.PublicKey, error) {
	src := opts.Source
	if !opts.Key.IsZero() && !KeyMatchesCertificate(opts.Key, old) {
		return PrivateKey{}, nil, newError(src, ReasonKeyMismatch,
			fmt.Sprintf("the given private key does not match the certificate (%s)", describeCert(old)),
			"give the key that belongs to the certificate", nil)
	}
	if opts.NewKey {
		alg := opts.Algorithm
		if alg == "" {
			alg = replacementAlgorithm(old.PublicKey)
		}
		key, err := generateKey(opts.Keys, alg)
		if err != nil {
			return PrivateKey{}, nil, fmt.Errorf("%s: generating new key: %w", orUnnamed(src), err)
		}
		return key, key.Public(), nil
	}
	if err := CheckKeyStrength(src, old.PublicKey); err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			pe.Detail = "cannot keep the key: " + pe.Detail
			pe.Hint = "reissue with a new key"
		}
		return PrivateKey{}, nil, err
	}
	return opts.Key, old.PublicKey, nil
}

// sanExtension returns old's subjectAltName extension unchanged, so that
// every name and its encoding survive (crypto/x509 would drop name types it
// does not model). Go uses a template's own SAN extension in preference to
// rebuilding one from DNSNames and friends.
func sanExtension(old *x509.Certificate) []pkix.Extension {
	for _, ext := range old.Extensions {
		if ext.Id.String() == oidSubjectAltName {
			return []pkix.Extension{ext}
		}
	}
	return nil
}

// verifyIssued checks a certificate we signed against ca's chain at now, once
// per extended key usage, so that a CA restricted to some usages cannot hand
// out a certificate its verifiers will reject.
func verifyIssued(src string, cert *x509.Certificate, ca *CA, now time.Time) error {
	roots, intermediates := ca.verifyPools()
	usages := append([]x509.ExtKeyUsage(nil), cert.ExtKeyUsage...)
	if len(usages) == 0 || len(cert.UnknownExtKeyUsage) > 0 {
		usages = append(usages, x509.ExtKeyUsageAny)
	}
	for _, usage := range usages {
		_, err := cert.Verify(x509.VerifyOptions{
			Roots:         roots,
			Intermediates: intermediates,
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{usage},
		})
		if err != nil {
			return newError(src, ReasonVerifyFailed,
				fmt.Sprintf("reissued certificate does not verify against the new ca (%s)", describeCert(ca.Cert)),
				"check the CA's chain, name constraints and extended key usages", err)
		}
	}
	return nil
}
