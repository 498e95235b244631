package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
)

// MaxPEMSize bounds every PEM input. Real CA bundles are a few kilobytes; the
// bound keeps a wrong path (a log file, a disk image) from being read whole
// into memory and fed to the PEM decoder.
const MaxPEMSize = 1 << 20

// pemBlock is a decoded block and where it was, for error messages.
type pemBlock struct {
	*pem.Block
	index int // 1-based position among the file's blocks
	line  int // line of the BEGIN marker
}

func (b pemBlock) where() string {
	return fmt.Sprintf("block %d at line %d", b.index, b.line)
}

// decodePEM splits data into PEM blocks, more strictly than encoding/pem:
//   - empty and oversized inputs are refused;
//   - text before a block is allowed, because RFC 7468 permits explanatory
//     text there and `openssl x509 -text` and PKCS#12 exports write it;
//   - anything but whitespace after the last block is refused, because that is
//     what a truncated or carelessly concatenated file looks like;
//   - a BEGIN line whose block does not decode is an error, where
//     encoding/pem would silently skip to the next block.
//
// CRLF line endings are accepted (encoding/pem handles them).
func decodePEM(source string, data []byte, want string) ([]pemBlock, error) {
	if len(data) > MaxPEMSize {
		return nil, newError(source, ReasonTooLarge,
			fmt.Sprintf("is %d bytes, more than the %d bytes a PEM %s may have", len(data), MaxPEMSize, want),
			"check that the path points at the right file", nil)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, newError(source, ReasonEmpty, "is empty",
			fmt.Sprintf("expected a PEM-encoded %s; restore the file from a backup", want), nil)
	}
	var blocks []pemBlock
	rest := data
	for {
		start := nextBeginLine(rest)
		if start < 0 {
			break
		}
		line := 1 + bytes.Count(data[:len(data)-len(rest)+start], []byte("\n"))
		block, after := pem.Decode(rest[start:])
		consumed := rest[start : len(rest)-len(after)]
		if block == nil || nextBeginLine(consumed[1:]) >= 0 {
			return nil, newError(source, ReasonMalformedPEM,
				fmt.Sprintf("pem block at line %d is malformed or truncated", line),
				"check that it has a matching END line and valid base64, or restore the file from a backup", nil)
		}
		blocks = append(blocks, pemBlock{Block: block, index: len(blocks) + 1, line: line})
		rest = after
	}
	if trailing := bytes.TrimSpace(rest); len(trailing) > 0 {
		if len(blocks) == 0 {
			hint := fmt.Sprintf("expected a PEM-encoded %s (-----BEGIN ...-----)", want)
			if trailing[0] == 0x30 { // an ASN.1 SEQUENCE: most likely DER
				hint = "it looks like DER; convert it to PEM, e.g. with `openssl x509 -inform der` or `openssl pkey -inform der`"
			}
			return nil, newError(source, ReasonNotPEM, "holds no pem data", hint, nil)
		}
		line := 1 + bytes.Count(data[:len(data)-len(rest)], []byte("\n"))
		return nil, newError(source, ReasonTrailingData,
			fmt.Sprintf("has %d bytes of data that is not pem after the last pem block (from line %d)", len(trailing), line),
			"remove it, or restore the file from a backup if it was truncated", nil)
	}
	return blocks, nil
}

// nextBeginLine returns the offset of the first "-----BEGIN" that starts a
// line, or -1.
func nextBeginLine(data []byte) int {
	const marker = "-----BEGIN"
	for off := 0; ; {
		i := bytes.Index(data[off:], []byte(marker))
		if i < 0 {
			return -1
		}
		at := off + i
		if at == 0 || data[at-1] == '\n' || data[at-1] == '\r' {
			return at
		}
		off = at + len(marker)
	}
}

func isPrivateKeyType(blockType string) bool {
	return strings.HasSuffix(blockType, "PRIVATE KEY")
}

// ParseCertificatesPEM parses every certificate in data, in order, keeping
// duplicates (see ParseBundle to drop them). Anything but CERTIFICATE blocks is
// refused: in particular a private key, because a certificate file may be
// copied into trust bundles on every node. source names data in errors.
func ParseCertificatesPEM(source string, data []byte) ([]*x509.Certificate, error) {
	blocks, err := decodePEM(source, data, "certificate")
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, 0, len(blocks))
	for _, b := range blocks {
		switch {
		case b.Type == "CERTIFICATE":
			cert, err := parseCertificateBlock(source, b)
			if err != nil {
				return nil, err
			}
			certs = append(certs, cert)
		case isPrivateKeyType(b.Type):
			return nil, newError(source, ReasonUnexpectedBlock,
				fmt.Sprintf("holds a private key (%s) where only certificates belong", b.where()),
				"keep keys in their own file: a certificate file can end up in trust bundles on every node", nil)
		case b.Type == "TRUSTED CERTIFICATE":
			return nil, newError(source, ReasonUnexpectedBlock,
				fmt.Sprintf("holds an openssl trusted certificate (%s)", b.where()),
				"convert it to a plain certificate with `openssl x509 -in FILE -out FILE.crt`", nil)
		default:
			return nil, newError(source, ReasonUnexpectedBlock,
				fmt.Sprintf("holds a %q pem block (%s) where only certificates belong", b.Type, b.where()),
				"give a file of PEM certificates", nil)
		}
	}
	return certs, nil
}

// ParseCertificatePEM parses a file that must hold exactly one certificate,
// such as the file kube-controller-manager signs with
// (--cluster-signing-cert-file): handed a bundle it fails, so we refuse one
// before it gets there (kubeadm#1350).
func ParseCertificatePEM(source string, data []byte) (*x509.Certificate, error) {
	certs, err := ParseCertificatesPEM(source, data)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		subjects := make([]string, len(certs))
		for i, c := range certs {
			subjects[i] = fmt.Sprintf("%d: %s", i+1, describeCert(c))
		}
		return nil, newError(source, ReasonNotSingle,
			fmt.Sprintf("holds %d certificates (%s) where exactly one is required", len(certs), strings.Join(subjects, "; ")),
			"give a file with only the one certificate; in a CA bundle the first certificate is the one that matches the key", nil)
	}
	return certs[0], nil
}

func parseCertificateBlock(source string, b pemBlock) (*x509.Certificate, error) {
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, newError(source, ReasonMalformed,
			fmt.Sprintf("certificate in %s cannot be parsed", b.where()),
			"replace it with a valid PEM certificate", err)
	}
	return cert, nil
}

// ParsePrivateKeyPEM parses a file that must hold exactly one private key in
// PKCS#1 ("RSA PRIVATE KEY"), SEC1 ("EC PRIVATE KEY") or PKCS#8 ("PRIVATE
// KEY") form. A mislabelled block is still read if its contents are one of
// those forms. An "EC PARAMETERS" block, which `openssl ecparam -genkey`
// writes before the key, is ignored. Encrypted keys are refused: carotate
// runs unattended and cannot ask for a passphrase.
func ParsePrivateKeyPEM(source string, data []byte) (PrivateKey, error) {
	blocks, err := decodePEM(source, data, "private key")
	if err != nil {
		return PrivateKey{}, err
	}
	var keys []PrivateKey
	for _, b := range blocks {
		switch {
		case b.Type == "EC PARAMETERS":
			continue
		case isPrivateKeyType(b.Type):
			key, err := parseKeyBlock(source, b)
			if err != nil {
				return PrivateKey{}, err
			}
			keys = append(keys, key)
		case b.Type == "CERTIFICATE":
			return PrivateKey{}, newError(source, ReasonUnexpectedBlock,
				fmt.Sprintf("holds a certificate (%s) where only a private key belongs", b.where()),
				"give the key file, or split the combined file into certificate and key", nil)
		case strings.HasSuffix(b.Type, "PUBLIC KEY"):
			return PrivateKey{}, newError(source, ReasonUnexpectedBlock,
				fmt.Sprintf("holds a public key (%s), not a private key", b.where()),
				"give the private key file", nil)
		default:
			return PrivateKey{}, newError(source, ReasonUnexpectedBlock,
				fmt.Sprintf("holds a %q pem block (%s) where only a private key belongs", b.Type, b.where()),
				"give a PEM private key file", nil)
		}
	}
	return onlyKey(source, keys)
}

func onlyKey(source string, keys []PrivateKey) (PrivateKey, error) {
	switch len(keys) {
	case 0:
		return PrivateKey{}, newError(source, ReasonNoKey, "holds no private key",
			"give a PEM private key (RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY)", nil)
	case 1:
		return keys[0], nil
	default:
		return PrivateKey{}, newError(source, ReasonMultipleKeys,
			fmt.Sprintf("holds %d private keys where exactly one is required", len(keys)),
			"give a file with only the key that belongs to the certificate", nil)
	}
}

// ParseCertificateAndKeyPEM parses a combined file such as the kubelet's
// kubelet-client-current.pem: one or more certificates (the first is the
// key's own, the rest its chain) and exactly one private key that matches the
// first certificate, in any order.
func ParseCertificateAndKeyPEM(source string, data []byte) ([]*x509.Certificate, PrivateKey, error) {
	blocks, err := decodePEM(source, data, "certificate and private key")
	if err != nil {
		return nil, PrivateKey{}, err
	}
	var (
		certs []*x509.Certificate
		keys  []PrivateKey
	)
	for _, b := range blocks {
		switch {
		case b.Type == "CERTIFICATE":
			cert, err := parseCertificateBlock(source, b)
			if err != nil {
				return nil, PrivateKey{}, err
			}
			certs = append(certs, cert)
		case b.Type == "EC PARAMETERS":
			continue
		case isPrivateKeyType(b.Type):
			key, err := parseKeyBlock(source, b)
			if err != nil {
				return nil, PrivateKey{}, err
			}
			keys = append(keys, key)
		default:
			return nil, PrivateKey{}, newError(source, ReasonUnexpectedBlock,
				fmt.Sprintf("holds a %q pem block (%s) where only a certificate and its key belong", b.Type, b.where()),
				"give a PEM file with the certificate and its private key", nil)
		}
	}
	if len(certs) == 0 {
		return nil, PrivateKey{}, newError(source, ReasonNoCertificate, "holds no certificate",
			"give a PEM file with the certificate and its private key", nil)
	}
	key, err := onlyKey(source, keys)
	if err != nil {
		return nil, PrivateKey{}, err
	}
	if !KeyMatchesCertificate(key, certs[0]) {
		return nil, PrivateKey{}, newError(source, ReasonKeyMismatch,
			fmt.Sprintf("private key does not match the first certificate (%s)", describeCert(certs[0])),
			"put the certificate that belongs to the key first", nil)
	}
	return certs, key, nil
}

// keyParser reads one DER private-key format.
type keyParser struct {
	name  string
	parse func([]byte) (any, error)
}

func parsePKCS1(der []byte) (any, error) { return x509.ParsePKCS1PrivateKey(der) }
func parseSEC1(der []byte) (any, error)  { return x509.ParseECPrivateKey(der) }

// keyParsersFor lists the formats to try for a block type, the labelled one
// first: some tools write PKCS#8 under "RSA PRIVATE KEY" and vice versa.
func keyParsersFor(blockType string) []keyParser {
	pkcs1 := keyParser{"pkcs#1", parsePKCS1}
	pkcs8 := keyParser{"pkcs#8", x509.ParsePKCS8PrivateKey}
	sec1 := keyParser{"sec1", parseSEC1}
	switch blockType {
	case "RSA PRIVATE KEY":
		return []keyParser{pkcs1, pkcs8, sec1}
	case "EC PRIVATE KEY":
		return []keyParser{sec1, pkcs8, pkcs1}
	case "PRIVATE KEY":
		return []keyParser{pkcs8, pkcs1, sec1}
	default:
		return nil
	}
}

func parseKeyBlock(source string, b pemBlock) (PrivateKey, error) {
	if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
		return PrivateKey{}, newError(source, ReasonEncrypted,
			fmt.Sprintf("private key in %s is encrypted", b.where()),
			"carotate cannot prompt for a passphrase; decrypt it first, e.g. `openssl pkey -in KEY -out DECRYPTED` (keep the result mode 0600)", nil)
	}
	if b.Type == "OPENSSH PRIVATE KEY" {
		return PrivateKey{}, newError(source, ReasonUnsupportedKey,
			fmt.Sprintf("holds an openssh private key (%s)", b.where()),
			"give an X.509 private key in PEM form (PKCS#1, PKCS#8 or SEC1)", nil)
	}
	parsers := keyParsersFor(b.Type)
	if parsers == nil {
		return PrivateKey{}, newError(source, ReasonUnsupportedKey,
			fmt.Sprintf("holds a %q (%s), which carotate does not support", b.Type, b.where()),
			"give an RSA, ECDSA or Ed25519 private key in PKCS#1, PKCS#8 or SEC1 form", nil)
	}
	var firstErr error
	for _, p := range parsers {
		parsed, err := p.parse(b.Bytes)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		signer, ok := parsed.(crypto.Signer)
		if !ok {
			return PrivateKey{}, newError(source, ReasonUnsupportedKey,
				fmt.Sprintf("%s private key in %s is a %T, which cannot sign", p.name, b.where(), parsed),
				"give an RSA, ECDSA or Ed25519 private key", nil)
		}
		key, err := NewPrivateKey(signer)
		if err != nil {
			return PrivateKey{}, newError(source, ReasonUnsupportedKey,
				fmt.Sprintf("private key in %s is not supported", b.where()),
				"give an RSA, ECDSA or Ed25519 private key", err)
		}
		return key, nil
	}
	return PrivateKey{}, newError(source, ReasonMalformed,
		fmt.Sprintf("private key in %s cannot be parsed", b.where()),
		"replace it with a valid PEM private key", firstErr)
}

// describeCert names a certificate for humans: subject and serial.
func describeCert(c *x509.Certificate) string {
	return fmt.Sprintf("subject %q, serial %x", c.Subject.String(), c.SerialNumber)
}
