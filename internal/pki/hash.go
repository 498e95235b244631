package pki

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
)

// SPKIFingerprint is the hex SHA-256 of the certificate's
// SubjectPublicKeyInfo. It identifies a key pair across certificates: a CA
// reissued with the same key keeps its fingerprint, so the rotation record
// uses it to tell the old CA from the new one.
func SPKIFingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// PublicKeyFingerprint is SPKIFingerprint for a bare public key, e.g. the
// public half of a PrivateKey.
func PublicKeyFingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// DiscoveryHash is the value `kubeadm join --discovery-token-ca-cert-hash`
// expects for a CA: "sha256:" and the hex SHA-256 of its
// SubjectPublicKeyInfo. Joins pin the CA's key this way, so the hash changes
// with every rotation that brings a new key and must be printed afterwards.
func DiscoveryHash(ca *x509.Certificate) string {
	return "sha256:" + SPKIFingerprint(ca)
}

// CertificateFingerprint is the hex SHA-256 of the whole certificate (what
// `openssl x509 -fingerprint -sha256` shows, without colons). Unlike the SPKI
// fingerprint it tells apart two certificates for the same key.
func CertificateFingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// KeyMatchesCertificate reports whether key is the private half of the
// certificate's public key. kubeadm takes the first certificate of ca.crt as
// the pair of ca.key; a mismatch there breaks every later renewal.
func KeyMatchesCertificate(key PrivateKey, cert *x509.Certificate) bool {
	if key.IsZero() || cert == nil {
		return false
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// subjectKeyID derives a key identifier with RFC 7093 method 1: the leftmost
// 160 bits of the SHA-256 of the subjectPublicKey bits. Setting it ourselves
// instead of leaving it to crypto/x509 keeps identifiers stable across Go
// releases.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	bits, err := subjectPublicKeyBits(der)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(bits)
	return sum[:20], nil
}

// subjectPublicKeyBits extracts the subjectPublicKey BIT STRING from a DER
// SubjectPublicKeyInfo, which is what RFC 5280 and RFC 7093 hash for key ids.
func subjectPublicKeyBits(spki []byte) ([]byte, error) {
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	rest, err := asn1.Unmarshal(spki, &info)
	if err != nil {
		return nil, fmt.Errorf("decoding subject public key info: %w", err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("subject public key info has %d trailing bytes", len(rest))
	}
	return info.PublicKey.Bytes, nil
}
