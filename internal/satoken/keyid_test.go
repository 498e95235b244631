package satoken

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Public keys and their kids from upstream's own test
// (kubernetes/kubernetes pkg/serviceaccount/jwt_test.go, rsaPublicKey with
// rsaKeyID, ecdsaPublicKey with ecdsaKeyID), which checks them against the
// kid of tokens kube-apiserver's generator signs.
const (
	upstreamRSAPublicKey = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA249XwEo9k4tM8fMxV7zx
OhcrP+WvXn917koM5Qr2ZXs4vo26e4ytdlrV0bQ9SlcLpQVSYjIxNfhTZdDt+ecI
zshKuv1gKIxbbLQMOuK1eA/4HALyEkFgmS/tleLJrhc65tKPMGD+pKQ/xhmzRuCG
51RoiMgbQxaCyYxGfNLpLAZK9L0Tctv9a0mJmGIYnIOQM4kC1A1I1n3EsXMWmeJU
j7OTh/AjjCnMnkgvKT2tpKxYQ59PgDgU8Ssc7RDSmSkLxnrv+OrN80j6xrw0OjEi
B4Ycr0PqfzZcvy8efTtFQ/Jnc4Bp1zUtFXt7+QeevePtQ2EcyELXE0i63T1CujRM
WwIDAQAB
-----END PUBLIC KEY-----
`
	upstreamRSAKeyID       = "JHJehTTTZlsspKHT-GaJxK7Kd1NQgZJu3fyK6K_QDYU"
	upstreamECDSAPublicKey = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEH6cuzP8XuD5wal6wf9M6xDljTOPL
X2i8uIp/C/ASqiIGUeeKQtX0/IR3qCXyThP/dbCiHrF3v1cuhBOHY8CLVg==
-----END PUBLIC KEY-----
`
	upstreamECDSAKeyID = "SoABiieYuNx4UdqYvZRVeuC6SihxgLrhLy9peHMHpTc"
)

func TestKeyID(t *testing.T) {
	rsaPriv := rsaKey(t)
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pub  crypto.PublicKey
		want string
	}{
		{"upstream RSA vector", parsePEM(t, upstreamRSAPublicKey), upstreamRSAKeyID},
		{"upstream ECDSA vector", parsePEM(t, upstreamECDSAPublicKey), upstreamECDSAKeyID},
		{"generated RSA-2048", &rsaPriv.PublicKey, kidFromCertificate(t, rsaPriv)},
		{"generated ECDSA P-256", &ecPriv.PublicKey, kidFromCertificate(t, ecPriv)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := KeyID(tt.pub)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("KeyID (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKeyIDRefusesOtherKeys(t *testing.T) {
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaPriv := rsaKey(t)
	tests := []struct {
		name     string
		pub      crypto.PublicKey
		wantType string
	}{
		{"ed25519", edPub, "ed25519.PublicKey"},
		{"rsa by value", rsaPriv.PublicKey, "rsa.PublicKey"},
		{"private key", rsaPriv, "*rsa.PrivateKey"},
		{"nil", nil, "<nil>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := KeyID(tt.pub)
			if err == nil || !strings.Contains(err.Error(), "of type "+tt.wantType+":") {
				t.Errorf("KeyID error = %v, want one naming the type %s", err, tt.wantType)
			}
		})
	}
}

func parsePEM(t *testing.T, s string) crypto.PublicKey {
	t.Helper()
	block, _ := pem.Decode([]byte(s))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// kidFromCertificate computes the documented formula by another road than
// KeyID's: the DER SubjectPublicKeyInfo as a self-signed certificate
// embeds it, hashed and encoded here.
func kidFromCertificate(t *testing.T, priv crypto.Signer) string {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sa"},
		NotBefore: issuedAt, NotAfter: issuedAt.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestHeaderKeyID(t *testing.T) {
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"abc"}`))
	for _, tc := range []struct {
		name, token, want string
		fails             bool
	}{
		{"whole token", hdr + ".eyJ4IjoxfQ.c2ln", "abc", false},
		{"no dot", "abc", "", true},
		{"header not base64", "!!.x.y", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := HeaderKeyID([]byte(tc.token))
			if (err != nil) != tc.fails || got != tc.want {
				t.Errorf("HeaderKeyID = %q, %v; want %q, fails %v", got, err, tc.want, tc.fails)
			}
			if err != nil && strings.Contains(err.Error(), "c2ln") {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
}
