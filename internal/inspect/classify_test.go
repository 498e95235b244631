package inspect

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// TestClassifyKeyAlgorithm: a service-account key pair's files say the
// key's type and size, the private key and the public key alike, with the
// same fingerprint, in both public-key encodings kubeadm and others write.
func TestClassifyKeyAlgorithm(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkix := func(pub any) []byte {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		data []byte
		kind model.FileKind
		want string
		pub  any
	}{
		{"RSA private key", "/etc/kubernetes/pki/sa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), model.FileKey, "RSA-2048", rsaKey.Public()},
		{"RSA public key, PKIX", "/etc/kubernetes/pki/sa.pub", pkix(rsaKey.Public()), model.FilePublicKey, "RSA-2048", rsaKey.Public()},
		{"RSA public key, PKCS#1", "/etc/kubernetes/pki/sa.pub", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)}), model.FilePublicKey, "RSA-2048", rsaKey.Public()},
		{"ECDSA private key", "/etc/kubernetes/pki/sa.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}), model.FileKey, "ECDSA-P256", ecKey.Public()},
		{"ECDSA public key", "/etc/kubernetes/pki/sa.pub", pkix(ecKey.Public()), model.FilePublicKey, "ECDSA-P256", ecKey.Public()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := classify("cp-1:"+tt.path, tt.path, tt.data)
			if f.ParseError != "" {
				t.Fatal(f.ParseError)
			}
			fp, err := pki.PublicKeyFingerprint(tt.pub)
			if err != nil {
				t.Fatal(err)
			}
			if f.Kind != tt.kind || f.KeyAlgorithm != tt.want || f.KeySPKISHA256 != fp {
				t.Errorf("kind %s, algorithm %q, spki %s; want %s, %q, %s", f.Kind, f.KeyAlgorithm, f.KeySPKISHA256, tt.kind, tt.want, fp)
			}
		})
	}
}
