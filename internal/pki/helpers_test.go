package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/google/go-cmp/cmp"
)

// testNow is the fixed "current time" of every test: time is a parameter.
func testNow() time.Time { return time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC) }

// countingReader yields 0, 1, 2, … so that serials and name suffixes are
// predictable.
type countingReader struct{ next byte }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.next
		r.next++
	}
	return len(p), nil
}

// failingReader simulates a broken randomness source.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy source unplugged") }

func newSigner(t *testing.T, alg string) crypto.Signer {
	t.Helper()
	var (
		s   crypto.Signer
		err error
	)
	switch alg {
	case "RSA-1024":
		s, err = rsa.GenerateKey(rand.Reader, 1024)
	case "RSA-2048":
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ECDSA-P256":
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ECDSA-P384":
		s, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ECDSA-P521":
		s, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "Ed25519":
		_, s, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unknown test key algorithm %q", alg)
	}
	if err != nil {
		t.Fatalf("generating %s key: %v", alg, err)
	}
	return s
}

func newKey(t *testing.T, alg string) PrivateKey {
	t.Helper()
	k, err := NewPrivateKey(newSigner(t, alg))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fixedKeys is a KeyGenerator that hands out pre-made keys, so tests control
// which key a function under test gets without paying for RSA generation.
func fixedKeys(keys ...PrivateKey) KeyGenerator {
	return KeyGeneratorFunc(func(alg KeyAlgorithm) (PrivateKey, error) {
		for _, k := range keys {
			if k.Algorithm() == alg {
				return k, nil
			}
		}
		return PrivateKey{}, errors.New("no test key for " + string(alg))
	})
}

func smallSerial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	return n.Add(n, big.NewInt(1))
}

// sign creates a certificate from tmpl, signed by parent/parentKey (self-signed
// when parent is nil), and parses it back.
func sign(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatalf("creating test certificate %q: %v", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// kubeadmCA makes a CA the way kubeadm's NewSelfSignedCACert does: CN only, a
// 63-bit serial, keyEncipherment|digitalSignature|certSign, the CN as a DNS
// name, valid for ten years from notBefore.
func kubeadmCA(t *testing.T, cn string, key PrivateKey, notBefore time.Time) *CA {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          smallSerial(t),
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              []string{cn},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(DefaultCAValidity),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	return &CA{Cert: sign(t, tmpl, nil, key.Public(), key.Signer()), Key: key}
}

// leafSpec describes a leaf as kubeadm would have issued it.
type leafSpec struct {
	subject pkix.Name
	dns     []string
	ips     []net.IP
	uris    []string
	emails  []string
	usage   x509.KeyUsage
	ext     []x509.ExtKeyUsage
}

// kubeadmLeaf issues a leaf like kubeadm's NewSignedCert: NotBefore is the
// CA's NotBefore and the certificate lasts one year from there.
func kubeadmLeaf(t *testing.T, ca *CA, key PrivateKey, spec leafSpec) *x509.Certificate {
	t.Helper()
	var uris []*url.URL
	for _, u := range spec.uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		uris = append(uris, parsed)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          smallSerial(t),
		Subject:               spec.subject,
		DNSNames:              spec.dns,
		IPAddresses:           spec.ips,
		URIs:                  uris,
		EmailAddresses:        spec.emails,
		NotBefore:             ca.Cert.NotBefore,
		NotAfter:              ca.Cert.NotBefore.Add(365 * 24 * time.Hour),
		KeyUsage:              spec.usage,
		ExtKeyUsage:           spec.ext,
		BasicConstraintsValid: true,
	}
	return sign(t, tmpl, ca.Cert, key.Public(), ca.Key.Signer())
}

func apiserverSpec() leafSpec {
	return leafSpec{
		subject: pkix.Name{CommonName: "kube-apiserver"},
		dns:     []string{"cp-1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "lb.example.com"},
		ips:     []net.IP{net.ParseIP("10.96.0.1").To4(), net.ParseIP("192.168.1.10").To4(), net.ParseIP("fd00::10")},
		usage:   x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ext:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
}

// mustPEM encodes a block.
func mustPEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func keyPEM(t *testing.T, k PrivateKey) []byte {
	t.Helper()
	b, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pkcs8PEM(t *testing.T, s crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return mustPEM("PRIVATE KEY", der)
}

// basicConstraintsExt builds a basicConstraints extension by hand, for
// certificates crypto/x509 would otherwise build "correctly".
func basicConstraintsExt(t *testing.T, isCA, critical bool) pkix.Extension {
	t.Helper()
	val, err := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{isCA})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: critical, Value: val}
}

// checkError asserts that err is nil when want is "", and otherwise that it is
// an *Error with the wanted reason whose message starts with the source,
// continues in lowercase, contains every wanted fragment and tells the
// operator what to do.
func checkError(t *testing.T, err error, want Reason, source string, fragments ...string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want reason %q", want)
	}
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %q (%T) is not a *pki.Error", err, err)
	}
	if diff := cmp.Diff(want, pe.Reason); diff != "" {
		t.Errorf("reason mismatch (-want +got):\n%s\nerror: %v", diff, err)
	}
	if ReasonOf(err) != want {
		t.Errorf("ReasonOf = %q, want %q", ReasonOf(err), want)
	}
	msg := err.Error()
	if source != "" && !strings.HasPrefix(msg, source+": ") {
		t.Errorf("error %q does not start with the source %q", msg, source)
	}
	if pe.Detail == "" || unicode.IsUpper([]rune(pe.Detail)[0]) {
		t.Errorf("detail %q is empty or not lowercase", pe.Detail)
	}
	if pe.Hint == "" {
		t.Errorf("error %q says nothing about what to do", msg)
	}
	for _, f := range fragments {
		if !strings.Contains(msg, f) {
			t.Errorf("error %q does not mention %q", msg, f)
		}
	}
}

func pkixCN(cn string, org ...string) pkix.Name { return pkix.Name{CommonName: cn, Organization: org} }

func samePublic(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}
