package pki

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"
	"time"
)

func TestRenewCA(t *testing.T) {
	now := testNow()
	key := newKey(t, "ECDSA-P256")
	old := kubeadmCA(t, "kubernetes", key, now.Add(-9*365*24*time.Hour))
	leafKey := newKey(t, "ECDSA-P256")
	leaf := sign(t, &x509.Certificate{SerialNumber: smallSerial(t), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: old.Cert.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, AuthorityKeyId: old.Cert.SubjectKeyId},
		old.Cert, leafKey.Public(), key.Signer())

	renewed, err := RenewCA(old, RenewOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	c := renewed.Cert
	if !bytes.Equal(c.RawSubject, old.Cert.RawSubject) || !bytes.Equal(c.RawIssuer, old.Cert.RawSubject) {
		t.Errorf("subject %q issuer %q, want both %q byte for byte", c.Subject, c.Issuer, old.Cert.Subject)
	}
	if !bytes.Equal(c.SubjectKeyId, old.Cert.SubjectKeyId) || !KeyMatchesCertificate(key, c) || c.SerialNumber.Cmp(old.Cert.SerialNumber) == 0 {
		t.Errorf("ski %x key match %v serial %v: want ski %x, the same key and a new serial", c.SubjectKeyId, KeyMatchesCertificate(key, c), c.SerialNumber, old.Cert.SubjectKeyId)
	}
	if want := now.Add(DefaultCAValidity).UTC(); !c.NotAfter.Equal(want.Truncate(time.Second)) || !c.NotBefore.Before(now) {
		t.Errorf("valid %s to %s, want from before %s to %s", c.NotBefore, c.NotAfter, now, want)
	}
	if c.KeyUsage != old.Cert.KeyUsage || !c.IsCA || strings.Join(c.DNSNames, ",") != strings.Join(old.Cert.DNSNames, ",") {
		t.Errorf("key usage %v ca %v names %v, want %v, true, %v", c.KeyUsage, c.IsCA, c.DNSNames, old.Cert.KeyUsage, old.Cert.DNSNames)
	}
	// A leaf the old certificate signed verifies against the renewed one
	// alone, even after the old one has expired.
	roots := x509.NewCertPool()
	roots.AddCert(c)
	at := old.Cert.NotAfter.Add(-time.Minute)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: at}); err != nil {
		t.Errorf("a leaf of the old certificate does not verify against the renewed one: %v", err)
	}
	oldOnly := x509.NewCertPool()
	oldOnly.AddCert(old.Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: oldOnly, CurrentTime: old.Cert.NotAfter.Add(time.Minute)}); err == nil {
		t.Error("the test cannot fail: a leaf verifies against an expired root")
	}
}

func TestRenewCARefuses(t *testing.T) {
	now := testNow()
	rsaKey := newKey(t, "RSA-2048")
	rsaCA := kubeadmCA(t, "kubernetes", rsaKey, now.Add(-time.Hour))
	ecKey := newKey(t, "ECDSA-P256")
	ecCA := kubeadmCA(t, "kubernetes", ecKey, now.Add(-time.Hour))
	weakKey := newKey(t, "RSA-1024")
	weak := kubeadmCA(t, "kubernetes", weakKey, now.Add(-time.Hour))
	interKey := newKey(t, "ECDSA-P256")
	inter := sign(t, &x509.Certificate{SerialNumber: smallSerial(t), Subject: pkix.Name{CommonName: "intermediate"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign},
		ecCA.Cert, interKey.Public(), ecKey.Signer())
	year := 365 * 24 * time.Hour
	for _, tc := range []struct {
		name string
		ca   *CA
		opts RenewOptions
		want string
	}{
		{"rsa-2048 past ten years", rsaCA, RenewOptions{Now: now, Validity: 11 * year}, "beyond the 87600h0m0s a RSA-2048 key may have"},
		{"ecdsa past twenty years", ecCA, RenewOptions{Now: now, Validity: 21 * year}, "beyond the 175200h0m0s a ECDSA-P256 key may have"},
		{"ends before the old one", rsaCA, RenewOptions{Now: now, Validity: year}, "not after the one in use"},
		{"weak key", weak, RenewOptions{Now: now}, "a RSA-1024 key is not renewed"},
		{"intermediate", &CA{Cert: inter, Key: interKey}, RenewOptions{Now: now}, "is not self-signed"},
		{"other key", &CA{Cert: rsaCA.Cert, Key: ecKey}, RenewOptions{Now: now}, "does not match"},
		{"no time", rsaCA, RenewOptions{}, "current time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := RenewCA(tc.ca, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
	if _, err := RenewCA(ecCA, RenewOptions{Now: now, Validity: 20 * year}); err != nil {
		t.Errorf("twenty years for ECDSA-P256: %v", err)
	}
}
