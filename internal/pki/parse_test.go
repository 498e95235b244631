package pki

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func crlf(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) }

func TestParseCertificatesPEM(t *testing.T) {
	key := newKey(t, "ECDSA-P256")
	ca1 := kubeadmCA(t, "kubernetes", key, testNow())
	ca2 := kubeadmCA(t, "front-proxy-ca", key, testNow())
	one, two := ca1.CertPEM(), ca2.CertPEM()
	truncated := append(append([]byte{}, one...), two[:len(two)/2]...)
	// A block that is broken in the middle, followed by a good one: plain
	// encoding/pem skips the broken block without a word.
	brokenFirst := append([]byte("-----BEGIN CERTIFICATE-----\nnot base64!\n"), two...)

	tests := []struct {
		name      string
		data      []byte
		want      []*x509.Certificate
		reason    Reason
		fragments []string
	}{
		{name: "single certificate", data: one, want: []*x509.Certificate{ca1.Cert}},
		{name: "bundle keeps order", data: append(append([]byte{}, two...), one...), want: []*x509.Certificate{ca2.Cert, ca1.Cert}},
		{name: "bundle keeps duplicates", data: bytes.Repeat(one, 2), want: []*x509.Certificate{ca1.Cert, ca1.Cert}},
		{name: "crlf line endings", data: crlf(append(append([]byte{}, one...), two...)), want: []*x509.Certificate{ca1.Cert, ca2.Cert}},
		{name: "explanatory text before the block", data: append([]byte("subject=CN = kubernetes\nBag Attributes\n"), one...), want: []*x509.Certificate{ca1.Cert}},
		{name: "surrounding whitespace", data: append(append([]byte("\n\n"), one...), "\n\n\t "...), want: []*x509.Certificate{ca1.Cert}},
		{name: "empty file", data: nil, reason: ReasonEmpty, fragments: []string{"is empty"}},
		{name: "whitespace only", data: []byte(" \r\n\t\n"), reason: ReasonEmpty},
		{name: "trailing garbage", data: append(append([]byte{}, one...), "garbage\n"...), reason: ReasonTrailingData, fragments: []string{"after the last pem block", "line"}},
		{name: "truncated second block", data: truncated, reason: ReasonMalformedPEM, fragments: []string{"line"}},
		{name: "broken block before a good one", data: brokenFirst, reason: ReasonMalformedPEM, fragments: []string{"line 1"}},
		{name: "der instead of pem", data: ca1.Cert.Raw, reason: ReasonNotPEM, fragments: []string{"DER"}},
		{name: "plain text", data: []byte("hello\n"), reason: ReasonNotPEM},
		{name: "private key in certificate file", data: append(append([]byte{}, one...), keyPEM(t, key)...), reason: ReasonUnexpectedBlock, fragments: []string{"private key", "block 2"}},
		{name: "openssl trusted certificate", data: mustPEM("TRUSTED CERTIFICATE", ca1.Cert.Raw), reason: ReasonUnexpectedBlock},
		{name: "certificate request", data: mustPEM("CERTIFICATE REQUEST", []byte{1}), reason: ReasonUnexpectedBlock, fragments: []string{`"CERTIFICATE REQUEST"`}},
		{name: "certificate block with bad der", data: mustPEM("CERTIFICATE", []byte("nonsense")), reason: ReasonMalformed, fragments: []string{"cannot be parsed"}},
		{name: "too large", data: append(bytes.Repeat([]byte(" "), MaxPEMSize), one...), reason: ReasonTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCertificatesPEM("ca.crt", tt.data)
			checkError(t, err, tt.reason, "ca.crt", tt.fragments...)
			if diff := cmp.Diff(rawOf(tt.want), rawOf(got)); diff != "" {
				t.Errorf("certificates mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func rawOf(certs []*x509.Certificate) [][]byte {
	var out [][]byte
	for _, c := range certs {
		out = append(out, c.Raw)
	}
	return out
}

func TestParseCertificatePEMRequiresOne(t *testing.T) {
	key := newKey(t, "ECDSA-P256")
	ca1 := kubeadmCA(t, "kubernetes", key, testNow())
	ca2 := kubeadmCA(t, "kubernetes-ca-20260314-00010203", key, testNow())
	tests := []struct {
		name      string
		data      []byte
		reason    Reason
		fragments []string
	}{
		{name: "one certificate", data: ca1.CertPEM()},
		{name: "bundle where one is required", data: BuildBundle(ca2.Cert, ca1.Cert), reason: ReasonNotSingle,
			fragments: []string{"holds 2 certificates", "CN=kubernetes-ca-20260314-00010203", "exactly one"}},
		{name: "empty", data: []byte{}, reason: ReasonEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCertificatePEM("/etc/kubernetes/pki/ca.crt", tt.data)
			checkError(t, err, tt.reason, "/etc/kubernetes/pki/ca.crt", tt.fragments...)
			if err == nil && !bytes.Equal(got.Raw, ca1.Cert.Raw) {
				t.Error("parsed a different certificate")
			}
		})
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	rsaKey := newKey(t, "RSA-2048")
	ecKey := newKey(t, "ECDSA-P256")
	edKey := newKey(t, "Ed25519")
	otherEC := newKey(t, "ECDSA-P384")
	cert := kubeadmCA(t, "kubernetes", ecKey, testNow()).CertPEM()
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519DER, err := x509.MarshalPKCS8PrivateKey(x25519)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := keyPEM(t, rsaKey) // MarshalPEM writes RSA as PKCS#1, like kubeadm
	sec1 := keyPEM(t, ecKey)   // and ECDSA as SEC1
	ecParams := mustPEM("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07})
	legacyEncrypted := pem.EncodeToMemory(&pem.Block{
		Type:    "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"},
		Bytes:   []byte("ciphertext that never gets looked at"),
	})

	tests := []struct {
		name      string
		data      []byte
		want      PrivateKey
		reason    Reason
		fragments []string
	}{
		{name: "pkcs1 rsa", data: pkcs1, want: rsaKey},
		{name: "pkcs8 rsa", data: pkcs8PEM(t, rsaKey.Signer()), want: rsaKey},
		{name: "sec1 ecdsa", data: sec1, want: ecKey},
		{name: "sec1 ecdsa after ec parameters", data: append(append([]byte{}, ecParams...), sec1...), want: ecKey},
		{name: "pkcs8 ecdsa", data: pkcs8PEM(t, ecKey.Signer()), want: ecKey},
		{name: "pkcs8 ed25519", data: keyPEM(t, edKey), want: edKey},
		{name: "crlf line endings", data: crlf(pkcs1), want: rsaKey},
		{name: "pkcs8 mislabelled as rsa private key", data: mustPEM("RSA PRIVATE KEY", pemBody(t, pkcs8PEM(t, rsaKey.Signer()))), want: rsaKey},
		{name: "legacy encrypted pem", data: legacyEncrypted, reason: ReasonEncrypted, fragments: []string{"encrypted", "openssl pkey"}},
		{name: "encrypted pkcs8", data: mustPEM("ENCRYPTED PRIVATE KEY", []byte{0x30, 0x00}), reason: ReasonEncrypted, fragments: []string{"block 1 at line 1"}},
		{name: "empty file", data: []byte(""), reason: ReasonEmpty, fragments: []string{"is empty"}},
		{name: "trailing garbage", data: append(append([]byte{}, sec1...), "\x00\x01junk"...), reason: ReasonTrailingData},
		{name: "certificate instead of key", data: cert, reason: ReasonUnexpectedBlock, fragments: []string{"certificate"}},
		{name: "combined certificate and key", data: append(append([]byte{}, cert...), sec1...), reason: ReasonUnexpectedBlock},
		{name: "public key", data: mustPEM("PUBLIC KEY", []byte{0x30, 0x00}), reason: ReasonUnexpectedBlock, fragments: []string{"public key"}},
		{name: "two keys", data: append(append([]byte{}, sec1...), keyPEM(t, otherEC)...), reason: ReasonMultipleKeys},
		{name: "only ec parameters", data: ecParams, reason: ReasonNoKey},
		{name: "openssh key", data: mustPEM("OPENSSH PRIVATE KEY", []byte("openssh-key-v1")), reason: ReasonUnsupportedKey, fragments: []string{"openssh"}},
		{name: "dsa key", data: mustPEM("DSA PRIVATE KEY", []byte{0x30, 0x00}), reason: ReasonUnsupportedKey},
		{name: "x25519 key cannot sign", data: mustPEM("PRIVATE KEY", x25519DER), reason: ReasonUnsupportedKey},
		{name: "key block with bad der", data: mustPEM("EC PRIVATE KEY", []byte("nonsense")), reason: ReasonMalformed, fragments: []string{"cannot be parsed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePrivateKeyPEM("ca.key", tt.data)
			checkError(t, err, tt.reason, "ca.key", tt.fragments...)
			if tt.reason != "" {
				return
			}
			if !samePublic(got.Public(), tt.want.Public()) {
				t.Errorf("parsed key %v, want %v", got, tt.want)
			}
		})
	}
}

// pemBody returns the DER inside the first PEM block of data.
func pemBody(t *testing.T, data []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatal("no pem block")
	}
	return b.Bytes
}

func TestParseCertificateAndKeyPEM(t *testing.T) {
	key := newKey(t, "ECDSA-P256")
	other := newKey(t, "ECDSA-P256")
	ca := kubeadmCA(t, "kubernetes", key, testNow())
	leaf := kubeadmLeaf(t, ca, other, leafSpec{subject: pkixCN("system:node:cp-1"), usage: 1, ext: nil})
	leafPEM := EncodeCertificatePEM(leaf)
	tests := []struct {
		name      string
		data      []byte
		wantCerts int
		reason    Reason
		fragments []string
	}{
		{name: "certificate then key, as the kubelet writes it", data: concat(leafPEM, keyPEM(t, other)), wantCerts: 1},
		{name: "key then certificate and chain", data: concat(keyPEM(t, other), leafPEM, ca.CertPEM()), wantCerts: 2},
		{name: "key of another certificate", data: concat(leafPEM, keyPEM(t, key)), reason: ReasonKeyMismatch, fragments: []string{"does not match"}},
		{name: "no key", data: leafPEM, reason: ReasonNoKey},
		{name: "no certificate", data: keyPEM(t, other), reason: ReasonNoCertificate},
		{name: "foreign block", data: concat(leafPEM, mustPEM("X509 CRL", []byte{1})), reason: ReasonUnexpectedBlock},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certs, got, err := ParseCertificateAndKeyPEM("kubelet-client-current.pem", tt.data)
			checkError(t, err, tt.reason, "kubelet-client-current.pem", tt.fragments...)
			if err != nil {
				return
			}
			if len(certs) != tt.wantCerts || !KeyMatchesCertificate(got, leaf) {
				t.Errorf("got %d certificates and key %v, want %d certificates and the leaf's key", len(certs), got, tt.wantCerts)
			}
		})
	}
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestParseErrorsNameTheSource(t *testing.T) {
	// Without a source the message still reads well.
	_, err := ParseCertificatesPEM("", nil)
	if got := err.Error(); strings.HasPrefix(got, ":") || !strings.HasPrefix(got, "is empty") {
		t.Errorf("error without a source = %q", got)
	}
}
