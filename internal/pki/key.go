package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// KeyAlgorithm names a key type and size. The RSA and ECDSA names are the ones
// kubeadm's ClusterConfiguration uses for encryptionAlgorithm, so a value read
// from a cluster can be passed straight through.
type KeyAlgorithm string

// Key algorithms carotate can generate.
const (
	RSA2048   KeyAlgorithm = "RSA-2048"
	RSA3072   KeyAlgorithm = "RSA-3072"
	RSA4096   KeyAlgorithm = "RSA-4096"
	ECDSAP256 KeyAlgorithm = "ECDSA-P256"
	ECDSAP384 KeyAlgorithm = "ECDSA-P384"
	Ed25519   KeyAlgorithm = "Ed25519"
)

// minRSABits is the weakest RSA key we accept for anything we sign or import;
// NIST and the CA/Browser Forum retired smaller keys long ago.
const minRSABits = 2048

// KeyAlgorithmOf describes a public key, e.g. "RSA-1024" or "ECDSA-P521". The
// result is descriptive and may name an algorithm carotate refuses to use.
func KeyAlgorithmOf(pub crypto.PublicKey) (KeyAlgorithm, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return KeyAlgorithm("RSA-" + strconv.Itoa(p.N.BitLen())), nil
	case *ecdsa.PublicKey:
		if p.Curve == nil {
			return "", errors.New("ecdsa public key without a curve")
		}
		// Curve names are "P-256" etc.; kubeadm writes them without the dash.
		name := p.Curve.Params().Name
		if len(name) > 2 && name[:2] == "P-" {
			name = "P" + name[2:]
		}
		return KeyAlgorithm("ECDSA-" + name), nil
	case ed25519.PublicKey:
		return Ed25519, nil
	default:
		return "", fmt.Errorf("unsupported public key type %T", pub)
	}
}

// replacementAlgorithm picks what to generate when replacing a key of the given
// kind: the same algorithm when we can make it, otherwise the closest one that
// is at least as strong, so that a rotation never weakens a cluster.
func replacementAlgorithm(pub crypto.PublicKey) KeyAlgorithm {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		switch bits := p.N.BitLen(); {
		case bits > 3072:
			return RSA4096
		case bits > 2048:
			return RSA3072
		default:
			return RSA2048
		}
	case *ecdsa.PublicKey:
		if p.Curve == elliptic.P384() || p.Curve == elliptic.P521() {
			return ECDSAP384
		}
		return ECDSAP256
	case ed25519.PublicKey:
		return Ed25519
	default:
		return RSA2048
	}
}

// CheckKeyStrength refuses keys that carotate will not sign with or put into a
// cluster: RSA below 2048 bits, and curves other than P-256 and P-384 (P-521 is
// unsupported by several TLS stacks). Ed25519 is accepted. source names where
// the key came from, for the error.
func CheckKeyStrength(source string, pub crypto.PublicKey) error {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if bits := p.N.BitLen(); bits < minRSABits {
			return newError(source, ReasonWeakKey,
				fmt.Sprintf("rsa key has %d bits, fewer than the %d carotate requires", bits, minRSABits),
				"use an RSA key of at least 2048 bits or an ECDSA P-256 key", nil)
		}
		return nil
	case *ecdsa.PublicKey:
		if p.Curve == elliptic.P256() || p.Curve == elliptic.P384() {
			return nil
		}
		alg, _ := KeyAlgorithmOf(pub)
		return newError(source, ReasonUnsupportedKey,
			fmt.Sprintf("keys of type %s are not supported", alg),
			"use an ECDSA P-256 or P-384 key, or RSA of at least 2048 bits", nil)
	case ed25519.PublicKey:
		return nil
	default:
		return newError(source, ReasonUnsupportedKey,
			fmt.Sprintf("keys of type %T are not supported", pub),
			"use an RSA (2048 bits or more), ECDSA P-256/P-384 or Ed25519 key", nil)
	}
}

// PrivateKey holds a private key and keeps it out of logs, errors and
// serialised output: every fmt verb, slog, encoding/json and encoding.Text
// see only the algorithm and a short public-key fingerprint. Key material
// leaves only through MarshalPEM or Signer, which callers must ask for by
// name. The zero value holds no key.
type PrivateKey struct {
	h *keyHolder
}

// keyHolder hides the signer inside a closure. fmt falls back to reflection
// for unexported struct fields (bypassing Format), and for a bad verb such as
// %s on a pointer it prints what the pointer points to; either way a func
// prints as an address, whereas an ed25519.PrivateKey, a byte slice, would
// print in full.
type keyHolder struct {
	signer func() crypto.Signer
}

// NewPrivateKey wraps an RSA, ECDSA or Ed25519 signer. It does not judge key
// strength; see CheckKeyStrength.
func NewPrivateKey(signer crypto.Signer) (PrivateKey, error) {
	switch s := signer.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey:
	case ed25519.PrivateKey:
		if len(s) != ed25519.PrivateKeySize {
			return PrivateKey{}, errors.New("ed25519 private key has the wrong length")
		}
	case nil:
		return PrivateKey{}, errors.New("no private key given")
	default:
		return PrivateKey{}, fmt.Errorf("unsupported private key type %T", signer)
	}
	return PrivateKey{h: &keyHolder{signer: func() crypto.Signer { return signer }}}, nil
}

// IsZero reports whether k holds no key.
func (k PrivateKey) IsZero() bool { return k.h == nil }

// Signer returns the underlying signer, for crypto APIs that need it. Whatever
// holds the result takes over the duty not to print it.
func (k PrivateKey) Signer() crypto.Signer {
	if k.h == nil {
		return nil
	}
	return k.h.signer()
}

// Equal reports whether k and other are the same key pair (their public
// keys are equal); two zero keys are equal.
func (k PrivateKey) Equal(other PrivateKey) bool {
	if k.IsZero() || other.IsZero() {
		return k.IsZero() == other.IsZero()
	}
	pub, ok := k.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(other.Public())
}

// Public returns the public half of the key, or nil for the zero value.
func (k PrivateKey) Public() crypto.PublicKey {
	if k.h == nil {
		return nil
	}
	return k.h.signer().Public()
}

// Algorithm describes the key, e.g. RSA2048; "" for the zero value.
func (k PrivateKey) Algorithm() KeyAlgorithm {
	if k.h == nil {
		return ""
	}
	alg, _ := KeyAlgorithmOf(k.Public())
	return alg
}

// MarshalPEM encodes the key the way kubeadm writes its keys: PKCS#1 for RSA,
// SEC1 for ECDSA, and PKCS#8 for Ed25519, which has no older format. This is
// the only way to get key material out of a PrivateKey.
func (k PrivateKey) MarshalPEM() ([]byte, error) {
	var block *pem.Block
	switch s := k.Signer().(type) {
	case *rsa.PrivateKey:
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(s)}
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(s)
		if err != nil {
			return nil, fmt.Errorf("encoding ecdsa private key: %w", err)
		}
		block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	case ed25519.PrivateKey:
		der, err := x509.MarshalPKCS8PrivateKey(s)
		if err != nil {
			return nil, fmt.Errorf("encoding ed25519 private key: %w", err)
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	case nil:
		return nil, errors.New("no private key to encode")
	default:
		return nil, fmt.Errorf("unsupported private key type %T", s)
	}
	return pem.EncodeToMemory(block), nil
}

// redacted is what every printing path shows: enough to tell keys apart in a
// log (algorithm and the start of the public key's fingerprint), nothing secret.
func (k PrivateKey) redacted() string {
	if k.h == nil {
		return "PrivateKey(none)"
	}
	fp, err := PublicKeyFingerprint(k.Public())
	if err != nil {
		return fmt.Sprintf("PrivateKey(%s, REDACTED)", k.Algorithm())
	}
	return fmt.Sprintf("PrivateKey(%s, spki-sha256 %s…, REDACTED)", k.Algorithm(), fp[:16])
}

// String redacts the key.
func (k PrivateKey) String() string { return k.redacted() }

// GoString redacts the key for %#v.
func (k PrivateKey) GoString() string { return k.redacted() }

// Format redacts the key for every verb, including %x and %q, which would
// otherwise bypass String.
func (k PrivateKey) Format(f fmt.State, verb rune) {
	s := k.redacted()
	if verb == 'q' {
		s = strconv.Quote(s)
	}
	_, _ = io.WriteString(f, s)
}

// LogValue redacts the key in log/slog output.
func (k PrivateKey) LogValue() slog.Value {
	if k.h == nil {
		return slog.StringValue(k.redacted())
	}
	attrs := []slog.Attr{slog.String("algorithm", string(k.Algorithm()))}
	if fp, err := PublicKeyFingerprint(k.Public()); err == nil {
		attrs = append(attrs, slog.String("spki_sha256", fp))
	}
	attrs = append(attrs, slog.String("private", "REDACTED"))
	return slog.GroupValue(attrs...)
}

// MarshalJSON redacts the key, so that a PrivateKey inside a struct that is
// written as JSON (state files, --output json) never carries key material.
func (k PrivateKey) MarshalJSON() ([]byte, error) { return json.Marshal(k.redacted()) }

// MarshalText redacts the key for encoding.TextMarshaler users (YAML, flags).
func (k PrivateKey) MarshalText() ([]byte, error) { return []byte(k.redacted()), nil }

// KeyGenerator makes private keys. It is the seam through which tests supply
// fixed or pre-generated keys; production code uses SystemKeyGenerator.
type KeyGenerator interface {
	GenerateKey(alg KeyAlgorithm) (PrivateKey, error)
}

// KeyGeneratorFunc adapts a function to KeyGenerator.
type KeyGeneratorFunc func(alg KeyAlgorithm) (PrivateKey, error)

// GenerateKey calls f.
func (f KeyGeneratorFunc) GenerateKey(alg KeyAlgorithm) (PrivateKey, error) { return f(alg) }

// SystemKeyGenerator generates keys from the operating system's secure random
// source. Since Go 1.26 the crypto packages ignore caller-supplied readers for
// key generation, so determinism in tests comes from a fake KeyGenerator or
// testing/cryptotest.SetGlobalRandom, not from a reader here.
type SystemKeyGenerator struct{}

// GenerateKey generates a key of the given algorithm.
func (SystemKeyGenerator) GenerateKey(alg KeyAlgorithm) (PrivateKey, error) {
	var (
		signer crypto.Signer
		err    error
	)
	switch alg {
	case RSA2048:
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		signer, err = rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		signer, err = rsa.GenerateKey(rand.Reader, 4096)
	case ECDSAP256:
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		signer, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case Ed25519:
		_, signer, err = ed25519.GenerateKey(rand.Reader)
	default:
		return PrivateKey{}, newError("", ReasonInvalidOption,
			fmt.Sprintf("unknown key algorithm %q", alg),
			"use one of RSA-2048, RSA-3072, RSA-4096, ECDSA-P256, ECDSA-P384, Ed25519", nil)
	}
	if err != nil {
		return PrivateKey{}, fmt.Errorf("generating %s key: %w", alg, err)
	}
	return NewPrivateKey(signer)
}

// generateKey checks what a (possibly fake) generator returned: a key of the
// requested algorithm that we would accept.
func generateKey(gen KeyGenerator, alg KeyAlgorithm) (PrivateKey, error) {
	if gen == nil {
		gen = SystemKeyGenerator{}
	}
	key, err := gen.GenerateKey(alg)
	if err != nil {
		return PrivateKey{}, err
	}
	if key.IsZero() {
		return PrivateKey{}, fmt.Errorf("key generator returned no %s key", alg)
	}
	if got := key.Algorithm(); got != alg {
		return PrivateKey{}, fmt.Errorf("key generator returned a %s key, want %s", got, alg)
	}
	return key, nil
}
