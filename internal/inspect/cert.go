package inspect

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// CertOf summarises a certificate for the model, DER included so that
// Assemble can verify signatures. IssuerSPKISHA256 is left to Assemble.
// The API inventory uses it for the certificates it finds in objects.
func CertOf(c *x509.Certificate) model.Cert {
	m := model.Cert{
		Subject:        c.Subject.String(),
		Issuer:         c.Issuer.String(),
		Serial:         fmt.Sprintf("%x", c.SerialNumber),
		SPKISHA256:     pki.SPKIFingerprint(c),
		SHA256:         pki.CertificateFingerprint(c),
		SubjectKeyID:   hex.EncodeToString(c.SubjectKeyId),
		AuthorityKeyID: hex.EncodeToString(c.AuthorityKeyId),
		IsCA:           c.BasicConstraintsValid && c.IsCA,
		NotBefore:      c.NotBefore.UTC(),
		NotAfter:       c.NotAfter.UTC(),
		DNSNames:       append([]string(nil), c.DNSNames...),
		Raw:            append([]byte(nil), c.Raw...),
	}
	for _, ip := range c.IPAddresses {
		m.IPAddresses = append(m.IPAddresses, ip.String())
	}
	for _, u := range c.ExtKeyUsage {
		m.ExtKeyUsage = append(m.ExtKeyUsage, extKeyUsageName(u))
	}
	return m
}

// CertsOf is CertOf for each certificate, in order.
func CertsOf(certs []*x509.Certificate) []model.Cert {
	out := make([]model.Cert, 0, len(certs))
	for _, c := range certs {
		out = append(out, CertOf(c))
	}
	return out
}

// CertsFromPEM parses a PEM bundle (source names it in errors) into model
// certificates.
func CertsFromPEM(source string, data []byte) ([]model.Cert, error) {
	certs, err := pki.ParseCertificatesPEM(source, data)
	if err != nil {
		return nil, err
	}
	return CertsOf(certs), nil
}

func extKeyUsageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageAny:
		return "any"
	case x509.ExtKeyUsageServerAuth:
		return "serverAuth"
	case x509.ExtKeyUsageClientAuth:
		return "clientAuth"
	case x509.ExtKeyUsageCodeSigning:
		return "codeSigning"
	case x509.ExtKeyUsageEmailProtection:
		return "emailProtection"
	case x509.ExtKeyUsageTimeStamping:
		return "timeStamping"
	case x509.ExtKeyUsageOCSPSigning:
		return "OCSPSigning"
	default:
		return fmt.Sprintf("extKeyUsage(%d)", int(u))
	}
}
