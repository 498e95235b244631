package inspect

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"path"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// classify fills a File's kind, certificates and key fingerprint from its
// content. data may be a private key: only its sha256 and public key
// fingerprint are kept, and no error quotes it.
func classify(source, p string, data []byte) model.File {
	sum := sha256.Sum256(data)
	f := model.File{Path: p, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Kind: model.FileOther}
	hasCert := bytes.Contains(data, []byte("-----BEGIN CERTIFICATE-----"))
	hasKey := bytes.Contains(data, []byte("PRIVATE KEY-----"))
	hasPub := bytes.Contains(data, []byte("PUBLIC KEY-----"))
	switch {
	case hasCert && hasKey:
		f.Kind = model.FileCertAndKey
		certs, key, err := pki.ParseCertificateAndKeyPEM(source, data)
		if err != nil {
			f.ParseError = err.Error()
			return f
		}
		f.Certs = CertsOf(certs)
		f.KeySPKISHA256, _ = pki.PublicKeyFingerprint(key.Public())
	case hasKey:
		f.Kind = model.FileKey
		key, err := pki.ParsePrivateKeyPEM(source, data)
		if err != nil {
			f.ParseError = err.Error()
			return f
		}
		f.KeySPKISHA256, _ = pki.PublicKeyFingerprint(key.Public())
		f.KeyAlgorithm = string(key.Algorithm())
	case hasCert:
		certs, err := pki.ParseCertificatesPEM(source, data)
		if err != nil {
			f.Kind = model.FileCertificate
			f.ParseError = err.Error()
			return f
		}
		f.Kind = model.FileCertificate
		if len(certs) > 1 {
			f.Kind = model.FileBundle
		}
		f.Certs = CertsOf(certs)
	case hasPub:
		f.Kind = model.FilePublicKey
		fp, alg, err := publicKeyFingerprint(source, data)
		if err != nil {
			f.ParseError = err.Error()
			return f
		}
		f.KeySPKISHA256, f.KeyAlgorithm = fp, alg
	default:
		switch path.Ext(p) {
		case ".crt", ".pem", ".key", ".pub", ".cert":
			f.ParseError = fmt.Sprintf("%s: holds no pem data; a file with this name should be PEM: restore it from a backup", source)
		}
	}
	return f
}

// publicKeyFingerprint reads a PEM public key such as kubeadm's sa.pub
// (PKIX "PUBLIC KEY", or PKCS#1 "RSA PUBLIC KEY") and returns its
// fingerprint and algorithm; pki has no parser for bare public keys
// because nothing else needs one.
func publicKeyFingerprint(source string, data []byte) (fingerprint, algorithm string, err error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return "", "", fmt.Errorf("%s: public key pem block is malformed; restore it from a backup", source)
	}
	var pub any
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		err = errors.New("unsupported pem block " + block.Type)
	}
	if err != nil {
		return "", "", fmt.Errorf("%s: public key cannot be parsed: %w", source, err)
	}
	if fingerprint, err = pki.PublicKeyFingerprint(pub); err != nil {
		return "", "", err
	}
	alg, _ := pki.KeyAlgorithmOf(pub) // the fingerprint took the key, so it has a type
	return fingerprint, string(alg), nil
}
