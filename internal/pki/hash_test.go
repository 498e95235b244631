package pki

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFingerprintsAndDiscoveryHash(t *testing.T) {
	key := newKey(t, "ECDSA-P256")
	first := kubeadmCA(t, "kubernetes", key, testNow()).Cert
	sameKey := kubeadmCA(t, "kubernetes", key, testNow().Add(time.Hour)).Cert
	other := kubeadmCA(t, "kubernetes", newKey(t, "ECDSA-P256"), testNow()).Cert

	sum := sha256.Sum256(first.RawSubjectPublicKeyInfo)
	if diff := cmp.Diff("sha256:"+hex.EncodeToString(sum[:]), DiscoveryHash(first)); diff != "" {
		t.Errorf("DiscoveryHash (-want +got):\n%s", diff)
	}
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(DiscoveryHash(first)) {
		t.Errorf("DiscoveryHash %q is not in kubeadm's sha256:<hex> form", DiscoveryHash(first))
	}
	fromKey, err := PublicKeyFingerprint(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"spki fingerprint of a certificate equals that of its key", SPKIFingerprint(first), fromKey, true},
		{"same key, different certificate: same spki fingerprint", SPKIFingerprint(first), SPKIFingerprint(sameKey), true},
		{"same key, different certificate: different certificate fingerprint", CertificateFingerprint(first), CertificateFingerprint(sameKey), false},
		{"different key: different spki fingerprint", SPKIFingerprint(first), SPKIFingerprint(other), false},
		{"different key: different discovery hash", DiscoveryHash(first), DiscoveryHash(other), false},
	}
	for _, tt := range tests {
		if (tt.a == tt.b) != tt.same {
			t.Errorf("%s: %q vs %q", tt.name, tt.a, tt.b)
		}
	}
}

func TestKeyMatchesCertificate(t *testing.T) {
	ecKey, rsaKey, edKey := newKey(t, "ECDSA-P256"), newKey(t, "RSA-2048"), newKey(t, "Ed25519")
	ecCert := kubeadmCA(t, "ec", ecKey, testNow()).Cert
	rsaCert := kubeadmCA(t, "rsa", rsaKey, testNow()).Cert
	edCert := kubeadmCA(t, "ed", edKey, testNow()).Cert
	tests := []struct {
		name string
		key  PrivateKey
		cert *x509.Certificate
		want bool
	}{
		{"ecdsa pair", ecKey, ecCert, true},
		{"rsa pair", rsaKey, rsaCert, true},
		{"ed25519 pair", edKey, edCert, true},
		{"ecdsa key, rsa certificate", ecKey, rsaCert, false},
		{"other ecdsa key", newKey(t, "ECDSA-P256"), ecCert, false},
		{"zero key", PrivateKey{}, ecCert, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KeyMatchesCertificate(tt.key, tt.cert); got != tt.want {
				t.Errorf("KeyMatchesCertificate = %v, want %v", got, tt.want)
			}
		})
	}
	if KeyMatchesCertificate(ecKey, nil) {
		t.Error("a key matches no certificate")
	}
}
