package pki

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// fuzzSeeds returns valid and broken PEM inputs, built at run time so that no
// key material is committed.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	key, err := SystemKeyGenerator{}.GenerateKey(ECDSAP256)
	if err != nil {
		f.Fatal(err)
	}
	ca, err := GenerateCA(GenerateOptions{Now: time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC), Algorithm: ECDSAP256, Keys: fixedKeys(key)})
	if err != nil {
		f.Fatal(err)
	}
	cert := ca.CertPEM()
	k, err := key.MarshalPEM()
	if err != nil {
		f.Fatal(err)
	}
	return [][]byte{
		cert,
		k,
		concat(cert, cert),
		concat(cert, k),
		concat(k, cert),
		crlf(cert),
		concat([]byte("text before\n"), cert),
		concat(cert, []byte("trailing")),
		cert[:len(cert)/2],
		concat([]byte("-----BEGIN CERTIFICATE-----\n!!\n"), cert),
		[]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
		[]byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"),
		[]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"),
		{},
		[]byte(" \n"),
		ca.Cert.Raw,
	}
}

// checkFuzzError insists that every failure is a *Error with a reason that
// names the source, never a panic or a bare error.
func checkFuzzError(t *testing.T, err error, source string) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) || pe.Reason == "" {
		t.Fatalf("error %v (%T) is not a *pki.Error with a reason", err, err)
	}
	if !strings.HasPrefix(err.Error(), source+": ") {
		t.Fatalf("error %q does not name the source", err)
	}
}

func FuzzParsePEMCertificates(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertificatesPEM("fuzz.crt", data)
		single, singleErr := ParseCertificatePEM("fuzz.crt", data)
		bundle, bundleErr := ParseBundle("fuzz.crt", data)
		if err != nil {
			checkFuzzError(t, err, "fuzz.crt")
			if singleErr == nil || bundleErr == nil {
				t.Fatal("single or bundle parser accepted what the certificate parser refused")
			}
			return
		}
		if len(certs) == 0 || bundleErr != nil {
			t.Fatalf("parsed %d certificates; bundle error %v", len(certs), bundleErr)
		}
		if (singleErr == nil) != (len(certs) == 1) {
			t.Fatalf("single parser error %v for %d certificates", singleErr, len(certs))
		}
		if singleErr == nil && !bytes.Equal(single.Raw, certs[0].Raw) {
			t.Fatal("single parser returned a different certificate")
		}
		if singleErr != nil && ReasonOf(singleErr) != ReasonNotSingle {
			t.Fatalf("single parser error %v, want reason %q", singleErr, ReasonNotSingle)
		}
		if len(FindDuplicates(bundle)) != 0 || len(bundle)+len(FindDuplicates(certs)) != len(certs) {
			t.Fatal("ParseBundle and FindDuplicates disagree")
		}
		// What BuildBundle writes reads back as the same deduplicated list.
		again, err := ParseCertificatesPEM("rebuilt", BuildBundle(certs...))
		if err != nil {
			t.Fatalf("rebuilt bundle does not parse: %v", err)
		}
		if len(again) != len(bundle) {
			t.Fatalf("rebuilt bundle has %d certificates, want %d", len(again), len(bundle))
		}
		for i := range again {
			if !bytes.Equal(again[i].Raw, bundle[i].Raw) {
				t.Fatalf("rebuilt bundle differs at %d", i)
			}
		}
	})
}

func FuzzParsePEMPrivateKey(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := ParsePrivateKeyPEM("fuzz.key", data)
		if err != nil {
			checkFuzzError(t, err, "fuzz.key")
			return
		}
		if key.IsZero() {
			t.Fatal("no error and no key")
		}
		if s := key.String(); !strings.Contains(s, "REDACTED") {
			t.Fatalf("String() = %q does not redact", s)
		}
		out, err := key.MarshalPEM()
		if err != nil {
			t.Fatalf("a parsed key does not encode: %v", err)
		}
		back, err := ParsePrivateKeyPEM("reencoded", out)
		if err != nil {
			t.Fatalf("re-encoded key does not parse: %v", err)
		}
		if !samePublic(back.Public(), key.Public()) {
			t.Fatal("re-encoding changed the key")
		}
	})
}

func FuzzParsePEMCertificateAndKey(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, key, err := ParseCertificateAndKeyPEM("fuzz.pem", data)
		if err != nil {
			checkFuzzError(t, err, "fuzz.pem")
			return
		}
		if len(certs) == 0 || !KeyMatchesCertificate(key, certs[0]) {
			t.Fatal("accepted a pair whose key does not match its first certificate")
		}
	})
}
