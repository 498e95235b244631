package pki

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"io"
	"time"
)

// RenewOptions configures RenewCA.
type RenewOptions struct {
	// Now is the current time. Required.
	Now time.Time
	// Validity is how long the renewed certificate is valid from Now.
	// Default DefaultCAValidity; at most MaxRenewValidity of the key.
	Validity time.Duration
	// Rand supplies the serial number. Default crypto/rand.
	Rand io.Reader
}

// MaxRenewValidity is the longest validity a renewed CA certificate may
// have for its key: ten years for RSA-2048 (kubeadm's CA lifetime), twenty
// for RSA-3072 and stronger, ECDSA P-256 and P-384 and Ed25519. A weaker key
// is not renewed at all: it is rotated.
func MaxRenewValidity(alg KeyAlgorithm) (time.Duration, error) {
	const year = 365 * 24 * time.Hour
	switch alg {
	case RSA2048:
		return 10 * year, nil
	case RSA3072, RSA4096, ECDSAP256, ECDSAP384, Ed25519, "RSA-8192", "ECDSA-P521":
		return 20 * year, nil
	}
	return 0, fmt.Errorf("a %s key is not renewed: renewal keeps the key, and carotate signs with RSA-2048 or stronger, ECDSA P-256 or stronger, or Ed25519; rotate the CA to a new key instead", alg)
}

// RenewCA makes a new certificate for ca over the same key and the same
// subject (byte for byte), with the same subject key identifier, names, key
// usage and constraints, a new serial and a new validity. Every certificate the
// old one signed verifies against it, since a verifier matches the issuer by
// name and checks the signature with the key. It refuses a validity beyond
// MaxRenewValidity of the key, and one that would end before the old
// certificate does.
func RenewCA(ca *CA, opts RenewOptions) (*CA, error) {
	if opts.Now.IsZero() {
		return nil, newError("", ReasonInvalidOption, "renewing a ca needs the current time", "", nil)
	}
	if ca == nil || ca.Cert == nil || ca.Key.Signer() == nil {
		return nil, newError("", ReasonNoKey, "renewing a ca needs its certificate and key", "", nil)
	}
	old := ca.Cert
	if !KeyMatchesCertificate(ca.Key, old) {
		return nil, newError("", ReasonKeyMismatch, fmt.Sprintf("the key does not match ca certificate %q", old.Subject.CommonName), "", nil)
	}
	if !old.IsCA || !old.BasicConstraintsValid {
		return nil, newError("", ReasonNotCA, fmt.Sprintf("certificate %q is not a ca", old.Subject.CommonName), "", nil)
	}
	if !bytes.Equal(old.RawIssuer, old.RawSubject) || old.CheckSignatureFrom(old) != nil {
		return nil, newError("", ReasonNotCA, fmt.Sprintf("ca certificate %q is not self-signed (it is an intermediate of %q)", old.Subject.CommonName, old.Issuer.CommonName),
			"renew an intermediate with the CA above it, then rotate to it with --ca-cert and --ca-key", nil)
	}
	alg, err := KeyAlgorithmOf(old.PublicKey)
	if err != nil {
		return nil, newError("", ReasonUnsupportedKey, err.Error(), "", nil)
	}
	limit, err := MaxRenewValidity(alg)
	if err != nil {
		return nil, newError("", ReasonWeakKey, err.Error(), "", nil)
	}
	validity := opts.Validity
	if validity == 0 {
		validity = DefaultCAValidity
	}
	if validity > limit {
		return nil, newError("", ReasonInvalidOption,
			fmt.Sprintf("a validity of %s is beyond the %s a %s key may have", validity, limit, alg),
			fmt.Sprintf("give a validity of at most %s, or rotate to a stronger key", limit), nil)
	}
	notAfter := opts.Now.Add(validity).UTC()
	if !notAfter.After(old.NotAfter) {
		return nil, newError("", ReasonInvalidOption,
			fmt.Sprintf("the renewed certificate would end %s, not after the one in use (%s)", notAfter.Format(time.DateOnly), old.NotAfter.UTC().Format(time.DateOnly)),
			"give a longer validity", nil)
	}
	serial, err := randomSerial(opts.Rand)
	if err != nil {
		return nil, err
	}
	ski := old.SubjectKeyId
	if len(ski) == 0 {
		if ski, err = subjectKeyID(old.PublicKey); err != nil {
			return nil, fmt.Errorf("computing ca subject key id: %w", err)
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber:                serial,
		RawSubject:                  old.RawSubject,
		NotBefore:                   opts.Now.Add(-Backdate).UTC(),
		NotAfter:                    notAfter,
		KeyUsage:                    old.KeyUsage,
		ExtKeyUsage:                 old.ExtKeyUsage,
		BasicConstraintsValid:       true,
		IsCA:                        true,
		MaxPathLen:                  old.MaxPathLen,
		MaxPathLenZero:              old.MaxPathLenZero,
		SubjectKeyId:                ski,
		DNSNames:                    old.DNSNames,
		EmailAddresses:              old.EmailAddresses,
		IPAddresses:                 old.IPAddresses,
		URIs:                        old.URIs,
		PermittedDNSDomains:         old.PermittedDNSDomains,
		ExcludedDNSDomains:          old.ExcludedDNSDomains,
		PermittedIPRanges:           old.PermittedIPRanges,
		ExcludedIPRanges:            old.ExcludedIPRanges,
		PermittedDNSDomainsCritical: old.PermittedDNSDomainsCritical,
	}
	der, err := x509.CreateCertificate(randOrDefault(opts.Rand), tmpl, tmpl, old.PublicKey, ca.Key.Signer())
	if err != nil {
		return nil, fmt.Errorf("signing the renewed ca certificate %q: %w", old.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the ca certificate we just renewed: %w", err)
	}
	return &CA{Cert: cert, Key: ca.Key}, nil
}
