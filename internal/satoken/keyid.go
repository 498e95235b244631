package satoken

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
)

// KeyID is the kid that kube-apiserver writes into the header of every
// token it signs with the private half of pub: the SHA-256 of pub's DER
// PKIX (SubjectPublicKeyInfo) encoding, base64url without padding. That is
// keyIDFromPublicKey in kubernetes/kubernetes pkg/serviceaccount/jwt.go,
// where the derivation is made one-way so that a kid can never stand in
// for the key. Tokens from an external signer (--service-account-signing-
// endpoint) carry whatever kid the signer chose instead.
//
// kube-apiserver signs only with RSA and ECDSA keys, so any other type is
// refused rather than given a kid no token will ever carry.
func KeyID(pub crypto.PublicKey) (string, error) {
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
	default:
		return "", fmt.Errorf("service-account public key of type %T: kube-apiserver signs tokens only with RSA or ECDSA keys", pub)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode service-account public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}
