package pki

import (
	"bytes"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// requireOpenSSL skips tests that cross-check with OpenSSL where it is absent:
// they guard against FAILURE-MODES #18 (OpenSSL-based clients choosing CAs by
// subject), which Go's verifier cannot show.
func requireOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not on PATH; skipping the OpenSSL cross-check (install openssl to run it)")
	}
	return path
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runOpenSSL(t *testing.T, openssl string, stdin []byte, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(openssl, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func TestOpenSSLVerifiesWhatWeMake(t *testing.T) {
	openssl := requireOpenSSL(t)
	now := testNow()
	attime := strconv.FormatInt(now.Unix(), 10)
	oldCA := kubeadmCA(t, "kubernetes", newKey(t, "RSA-2048"), now.Add(-time.Hour))
	leafKey := newKey(t, "RSA-2048")
	oldLeaf := kubeadmLeaf(t, oldCA, leafKey, apiserverSpec())

	for _, alg := range []KeyAlgorithm{RSA2048, ECDSAP256, ECDSAP384, Ed25519} {
		t.Run(string(alg), func(t *testing.T) {
			dir := t.TempDir()
			ca, err := GenerateCA(GenerateOptions{Now: now, Replaces: oldCA.Cert, Algorithm: alg})
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := Reissue(oldLeaf, ca, ReissueOptions{Now: now, Key: leafKey})
			if err != nil {
				t.Fatal(err)
			}
			newPath := writeFile(t, dir, "new-ca.crt", ca.CertPEM())
			oldPath := writeFile(t, dir, "old-ca.crt", oldCA.CertPEM())
			leafPath := writeFile(t, dir, "apiserver.crt", leaf.CertPEM())
			// During the rotation clients hold both CAs; kubeadm's old CA is
			// CN=kubernetes, so OpenSSL must still find the new one.
			oldFirst := writeFile(t, dir, "old-then-new.crt", BuildBundle(oldCA.Cert, ca.Cert))
			newFirst := writeFile(t, dir, "new-then-old.crt", BuildBundle(ca.Cert, oldCA.Cert))

			tests := []struct {
				name   string
				caFile string
				target string
				ok     bool
			}{
				{"new ca is a valid self-signed root", newPath, newPath, true},
				{"leaf verifies against the new ca", newPath, leafPath, true},
				{"leaf verifies with the old ca listed first", oldFirst, leafPath, true},
				{"leaf verifies with the new ca listed first", newFirst, leafPath, true},
				{"leaf does not verify against the old ca", oldPath, leafPath, false},
			}
			for _, tt := range tests {
				args := []string{"verify", "-x509_strict", "-attime", attime, "-CAfile", tt.caFile}
				if tt.target == leafPath {
					args = append(args, "-purpose", "sslserver")
				}
				out, err := runOpenSSL(t, openssl, nil, append(args, tt.target)...)
				if ok := err == nil && strings.Contains(out, ": OK"); ok != tt.ok {
					t.Errorf("%s: openssl verify ok=%v, want %v:\n%s", tt.name, ok, tt.ok, out)
				}
			}

			// kubeadm's documented way to compute the discovery hash.
			pub, err := runOpenSSL(t, openssl, ca.CertPEM(), "x509", "-pubkey", "-noout")
			if err != nil {
				t.Fatalf("openssl x509 -pubkey: %v\n%s", err, pub)
			}
			der, err := exec.Command(openssl, "pkey", "-pubin", "-outform", "der", "-in", writeFile(t, dir, "pub.pem", []byte(pub))).Output()
			if err != nil {
				t.Fatal(err)
			}
			dgst, err := runOpenSSL(t, openssl, der, "dgst", "-sha256", "-hex")
			if err != nil {
				t.Fatal(err)
			}
			fields := strings.Fields(dgst)
			if got, want := "sha256:"+fields[len(fields)-1], DiscoveryHash(ca.Cert); got != want {
				t.Errorf("openssl discovery hash %s, DiscoveryHash %s", got, want)
			}
		})
	}
}

// TestParsesOpenSSLOutput reads keys and certificates in the forms OpenSSL
// writes them, so the parsers are checked against another implementation.
func TestParsesOpenSSLOutput(t *testing.T) {
	openssl := requireOpenSSL(t)
	dir := t.TempDir()
	gen := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
		return out
	}
	ca, err := GenerateCA(GenerateOptions{Now: testNow(), Algorithm: ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	caPath := writeFile(t, dir, "ca.crt", ca.CertPEM())
	tests := []struct {
		name   string
		data   []byte
		parse  func([]byte) error
		reason Reason
	}{
		{name: "pkcs#8 rsa from genpkey", data: gen("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"), parse: parseKey},
		{name: "pkcs#1 rsa from genrsa -traditional", data: gen("genrsa", "-traditional", "2048"), parse: parseKey},
		{name: "sec1 ecdsa with ec parameters from ecparam", data: gen("ecparam", "-name", "prime256v1", "-genkey"), parse: parseKey},
		{name: "pkcs#8 ed25519", data: gen("genpkey", "-algorithm", "ED25519"), parse: parseKey},
		{name: "encrypted pkcs#8", data: gen("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes256", "-pass", "pass:secret"),
			parse: parseKey, reason: ReasonEncrypted},
		{name: "legacy encrypted pkcs#1", data: gen("genrsa", "-traditional", "-aes256", "-passout", "pass:secret", "2048"), parse: parseKey, reason: ReasonEncrypted},
		{name: "certificate with -text preamble", data: gen("x509", "-in", caPath, "-text"), parse: parseCert},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkError(t, tt.parse(tt.data), tt.reason, "openssl")
		})
	}
}

func parseKey(data []byte) error {
	_, err := ParsePrivateKeyPEM("openssl", data)
	return err
}

func parseCert(data []byte) error {
	_, err := ParseCertificatePEM("openssl", data)
	return err
}

// TestOpenSSLVerifiesARenewedCA: OpenSSL looks an issuer up by subject,
// and a renewed CA shares its subject with the certificate it renews. A
// leaf of the old certificate verifies against the renewed one alone,
// and against either order of the two once the old one has expired (as
// a bundle that still holds both does then); with only the expired one,
// it does not.
func TestOpenSSLVerifiesARenewedCA(t *testing.T) {
	openssl := requireOpenSSL(t)
	now := testNow()
	key := newKey(t, "RSA-2048")
	old := kubeadmCA(t, "kubernetes", key, now.Add(-10*365*24*time.Hour+24*time.Hour)) // ends tomorrow
	spec := apiserverSpec()
	leafKey := newKey(t, "RSA-2048")
	leaf := sign(t, &x509.Certificate{SerialNumber: smallSerial(t), Subject: spec.subject, DNSNames: spec.dns,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour), KeyUsage: spec.usage, ExtKeyUsage: spec.ext,
		BasicConstraintsValid: true}, old.Cert, leafKey.Public(), key.Signer())
	renewed, err := RenewCA(old, RenewOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	leafPath := writeFile(t, dir, "apiserver.crt", EncodeCertificatePEM(leaf))
	files := map[string]string{
		"renewed":          writeFile(t, dir, "renewed.crt", renewed.CertPEM()),
		"old":              writeFile(t, dir, "old.crt", old.CertPEM()),
		"old then renewed": writeFile(t, dir, "old-renewed.crt", BuildBundle(old.Cert, renewed.Cert)),
		"renewed then old": writeFile(t, dir, "renewed-old.crt", BuildBundle(renewed.Cert, old.Cert)),
	}
	afterOld := old.Cert.NotAfter.Add(24 * time.Hour) // the leaf is still valid
	for _, tt := range []struct {
		ca string
		at time.Time
		ok bool
	}{
		{"renewed", now, true},
		{"old then renewed", now, true},
		{"renewed then old", now, true},
		{"renewed", afterOld, true},
		{"old then renewed", afterOld, true},
		{"renewed then old", afterOld, true},
		{"old", afterOld, false},
	} {
		out, err := runOpenSSL(t, openssl, nil, "verify", "-x509_strict", "-attime", strconv.FormatInt(tt.at.Unix(), 10), "-CAfile", files[tt.ca], "-purpose", "sslserver", leafPath)
		if ok := err == nil && strings.Contains(out, ": OK"); ok != tt.ok {
			t.Errorf("%s at %s: openssl verify ok=%v, want %v:\n%s", tt.ca, tt.at.Format(time.DateOnly), ok, tt.ok, out)
		}
	}
}
