package inspect

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/pki"
)

// testNow is the clock of the pure tests.
func testNow() time.Time { return time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC) }

func newCA(t *testing.T, cn string, now time.Time) *pki.CA {
	t.Helper()
	ca, err := pki.GenerateCA(pki.GenerateOptions{Now: now, CommonName: cn, Algorithm: pki.ECDSAP256})
	if err != nil {
		t.Fatalf("GenerateCA: %v", err)
	}
	return ca
}

type leafSpec struct {
	cn    string
	orgs  []string
	usage x509.ExtKeyUsage
	ips   []string
}

// newLeaf signs a leaf with ca through pki.Reissue, from a throwaway
// self-signed template with the wanted subject and usage.
func newLeaf(t *testing.T, ca *pki.CA, spec leafSpec, now time.Time) (*x509.Certificate, pki.PrivateKey) {
	t.Helper()
	signer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: spec.cn, Organization: spec.orgs},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{spec.usage},
	}
	for _, ip := range spec.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	old, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewPrivateKey(signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.Reissue(old, ca, pki.ReissueOptions{Now: now, Key: key, Source: spec.cn})
	if err != nil {
		t.Fatalf("Reissue: %v", err)
	}
	return leaf.Cert, leaf.Key
}
