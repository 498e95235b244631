package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"
)

const (
	// DefaultCAValidity matches kubeadm's CA lifetime (ten 365-day years).
	DefaultCAValidity = 10 * 365 * 24 * time.Hour
	// Backdate is how far before "now" every certificate we make starts to be
	// valid, as kubeadm does, so that nodes whose clock runs a little behind
	// do not see "certificate is not valid yet" (FAILURE-MODES #21).
	Backdate = 5 * time.Minute
	// maxCommonNameLen is ub-common-name from RFC 5280.
	maxCommonNameLen = 64
)

// CA is a certificate authority we can sign with: its certificate, its key
// and, for an intermediate, the certificates above it (nearest first, ending
// with a self-signed root). Printing a CA redacts its key.
type CA struct {
	Cert  *x509.Certificate
	Key   PrivateKey
	Chain []*x509.Certificate
}

// CertPEM encodes the CA certificate alone.
func (ca *CA) CertPEM() []byte { return EncodeCertificatePEM(ca.Cert) }

// ChainPEM encodes the CA certificate followed by its chain: what a trust
// bundle needs so that clients which, like OpenSSL, insist on a self-signed
// root can verify what the CA signs.
func (ca *CA) ChainPEM() []byte {
	return BuildBundle(append([]*x509.Certificate{ca.Cert}, ca.Chain...)...)
}

// verifyPools returns pools for verifying what ca signs: the last certificate
// of the chain (the root) as the only root, the rest as intermediates.
func (ca *CA) verifyPools() (roots, intermediates *x509.CertPool) {
	all := append([]*x509.Certificate{ca.Cert}, ca.Chain...)
	roots, intermediates = x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(all[len(all)-1])
	for _, c := range all[:len(all)-1] {
		intermediates.AddCert(c)
	}
	return roots, intermediates
}

// notAfter is when the first certificate of the chain expires: nothing the CA
// signs can be valid past it.
func (ca *CA) notAfter() time.Time {
	end := ca.Cert.NotAfter
	for _, c := range ca.Chain {
		if c.NotAfter.Before(end) {
			end = c.NotAfter
		}
	}
	return end
}

// GenerateOptions configures GenerateCA.
type GenerateOptions struct {
	// Now is the current time. Required.
	Now time.Time
	// Replaces is the CA the new one replaces, if any. By default the new CA
	// keeps its key algorithm and its subject with a new common name.
	Replaces *x509.Certificate
	// Algorithm overrides the key algorithm. Default: Replaces' algorithm
	// (never weaker than RSA-2048), or RSA-2048 as kubeadm makes it.
	Algorithm KeyAlgorithm
	// CommonName overrides the derived common name, which is Replaces' common
	// name plus "-ca" where it lacks one, the date and a random suffix, e.g.
	// "kubernetes-ca-20260314-9f86d081".
	CommonName string
	// Validity is how long the CA is valid from Now. Default DefaultCAValidity.
	Validity time.Duration
	// Keys generates the CA key. Default SystemKeyGenerator.
	Keys KeyGenerator
	// Rand supplies the serial number and name suffix. Default crypto/rand.
	Rand io.Reader
}

// GenerateCA makes a new self-signed root CA. Its subject always differs from
// the one it replaces: OpenSSL-based clients (curl, Python, nginx) stop at the
// first CA in a bundle whose subject matches the issuer they look for, and all
// kubeadm cluster CAs are called CN=kubernetes (FAILURE-MODES #18). It carries
// a random 128-bit serial, a subject key identifier that leaves can point to,
// critical basicConstraints CA:TRUE and critical keyUsage
// certSign|crlSign|digitalSignature, and starts Backdate before Now.
func GenerateCA(opts GenerateOptions) (*CA, error) {
	if opts.Now.IsZero() {
		return nil, newError("", ReasonInvalidOption, "generating a ca needs the current time", "", nil)
	}
	validity := opts.Validity
	if validity == 0 {
		validity = DefaultCAValidity
	}
	if validity < 0 {
		return nil, newError("", ReasonInvalidOption, fmt.Sprintf("ca validity %s is negative", validity), "", nil)
	}
	alg := opts.Algorithm
	if alg == "" {
		alg = RSA2048
		if opts.Replaces != nil {
			alg = replacementAlgorithm(opts.Replaces.PublicKey)
		}
	}
	key, err := generateKey(opts.Keys, alg)
	if err != nil {
		return nil, fmt.Errorf("generating ca key: %w", err)
	}
	if opts.Replaces != nil && KeyMatchesCertificate(key, opts.Replaces) {
		return nil, newError("", ReasonSameCA, "the key generator returned the key of the ca being replaced",
			"a rotation that keeps the key revokes nothing; check the key generator", nil)
	}
	subject, err := newCASubject(opts)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial(opts.Rand)
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, fmt.Errorf("computing ca subject key id: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             opts.Now.Add(-Backdate).UTC(),
		NotAfter:              opts.Now.Add(validity).UTC(),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(randOrDefault(opts.Rand), tmpl, tmpl, key.Public(), key.Signer())
	if err != nil {
		return nil, fmt.Errorf("signing ca certificate %q: %w", subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the ca certificate we just made: %w", err)
	}
	if opts.Replaces != nil && bytes.Equal(cert.RawSubject, opts.Replaces.RawSubject) {
		return nil, newError("", ReasonSubjectClash,
			fmt.Sprintf("new ca subject %q equals that of the ca it replaces", cert.Subject.String()),
			"choose a different common name: OpenSSL-based clients stop at the first CA whose subject matches", nil)
	}
	var distinct []*x509.Certificate
	if opts.Replaces != nil {
		distinct = append(distinct, opts.Replaces)
	}
	if problems := Lint(cert, LintOptions{Now: opts.Now, DistinctFrom: distinct}); len(problems) > 0 {
		return nil, newError("", ReasonVerifyFailed,
			fmt.Sprintf("generated ca fails its own checks: %s", joinProblems(problems)), "this is a bug in carotate; please report it", nil)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// newCASubject keeps the replaced CA's subject (its O, OU and so on are the
// operator's) and gives it a new, unique common name.
func newCASubject(opts GenerateOptions) (pkix.Name, error) {
	var subject pkix.Name
	oldCN := ""
	if opts.Replaces != nil {
		subject = opts.Replaces.Subject
		subject.Names, subject.ExtraNames = nil, nil
		oldCN = opts.Replaces.Subject.CommonName
	}
	cn := opts.CommonName
	if cn == "" {
		suffix, err := randomHex(opts.Rand, 4)
		if err != nil {
			return pkix.Name{}, err
		}
		cn = deriveCommonName(oldCN, opts.Now, suffix)
	}
	if len(cn) > maxCommonNameLen {
		return pkix.Name{}, newError("", ReasonInvalidOption,
			fmt.Sprintf("ca common name %q is longer than %d characters", cn, maxCommonNameLen), "choose a shorter name", nil)
	}
	subject.CommonName = cn
	return subject, nil
}

// deriveCommonName turns the old CA's name into a new one: "kubernetes" →
// "kubernetes-ca-20260314-9f86d081", "front-proxy-ca" →
// "front-proxy-ca-20260314-…". A suffix from an earlier rotation is replaced,
// not stacked.
func deriveCommonName(old string, now time.Time, suffix string) string {
	base := stripRotationSuffix(strings.TrimSpace(old))
	if base == "" {
		base = "kubernetes"
	}
	if lower := strings.ToLower(base); !strings.HasSuffix(lower, "-ca") && !strings.HasSuffix(lower, " ca") {
		base += "-ca"
	}
	tail := "-" + now.UTC().Format("20060102") + "-" + suffix
	if max := maxCommonNameLen - len(tail); len(base) > max {
		base = base[:max]
	}
	return base + tail
}

// stripRotationSuffix removes a "-yyyymmdd-xxxxxxxx" suffix that
// deriveCommonName added in an earlier rotation.
func stripRotationSuffix(cn string) string {
	const n = len("-20060102-0123abcd")
	if len(cn) <= n {
		return cn
	}
	tail := cn[len(cn)-n:]
	if tail[0] != '-' || tail[9] != '-' {
		return cn
	}
	for i, r := range tail {
		switch {
		case i == 0 || i == 9:
		case i < 9 && r >= '0' && r <= '9':
		case i > 9 && (r >= '0' && r <= '9' || r >= 'a' && r <= 'f'):
		default:
			return cn
		}
	}
	return cn[:len(cn)-n]
}

// ImportOptions configures ImportCA and ValidateCA.
type ImportOptions struct {
	// Now is the current time. Required.
	Now time.Time
	// MustOutlive, when set, is the latest NotAfter of the certificates the CA
	// is to sign: the CA and its chain must not expire before it.
	MustOutlive time.Time
	// CertSource and KeySource name the inputs in errors, e.g. file paths.
	CertSource string
	KeySource  string
	// Replaces is the CA being rotated out, if any. The imported CA must not
	// be it, share its key, or share its subject.
	Replaces *x509.Certificate
}

// ImportCA reads a CA the operator brings: certPEM holds the CA certificate
// first, then, for an intermediate, the certificates above it up to the root;
// keyPEM holds the CA's private key. See ValidateCA for what is refused.
func ImportCA(certPEM, keyPEM []byte, opts ImportOptions) (*CA, error) {
	certs, err := ParseCertificatesPEM(opts.CertSource, certPEM)
	if err != nil {
		return nil, err
	}
	if err := CheckNoDuplicates(opts.CertSource, certs); err != nil {
		return nil, err
	}
	key, err := ParsePrivateKeyPEM(opts.KeySource, keyPEM)
	if err != nil {
		return nil, err
	}
	ca := &CA{Cert: certs[0], Key: key, Chain: certs[1:]}
	if err := ValidateCA(ca, opts); err != nil {
		return nil, err
	}
	return ca, nil
}

// ValidateCA checks that ca can take over signing for a cluster: its
// certificate is a CA (basicConstraints CA:TRUE, keyUsage keyCertSign) with a
// subject key identifier; the key is its pair and strong enough; it is valid
// at opts.Now and, with its chain, until opts.MustOutlive; the chain (if any)
// verifies up to a self-signed root; and it is distinct from opts.Replaces.
// Each refusal is an *Error with its Reason.
//
// This is the bar for a CA that is about to sign. A cluster's current CA may
// fall short of it (kubeadm CAs made before Go 1.15 carry no subject key id)
// and still be rotated away from; check it with KeyMatchesCertificate and
// its validity instead.
func ValidateCA(ca *CA, opts ImportOptions) error {
	src, keySrc := opts.CertSource, opts.KeySource
	if opts.Now.IsZero() {
		return newError("", ReasonInvalidOption, "checking a ca needs the current time", "", nil)
	}
	if ca == nil || ca.Cert == nil {
		return newError(src, ReasonNoCertificate, "no ca certificate given", "", nil)
	}
	if ca.Key.IsZero() {
		return newError(keySrc, ReasonNoKey, "no ca private key given", "", nil)
	}
	cert := ca.Cert
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return newError(src, ReasonNotCA,
			fmt.Sprintf("certificate (%s) is not a ca: basicConstraints CA:TRUE is missing", describeCert(cert)),
			"give the CA certificate (ca.crt), not a leaf such as apiserver.crt", nil)
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return newError(src, ReasonNotCA,
			fmt.Sprintf("ca certificate (%s) may not sign certificates: keyUsage lacks keyCertSign", describeCert(cert)),
			"issue the CA with keyUsage keyCertSign (and cRLSign)", nil)
	}
	if !KeyMatchesCertificate(ca.Key, cert) {
		return newError(keySrc, ReasonKeyMismatch,
			fmt.Sprintf("private key does not match the ca certificate in %s (%s)", orUnnamed(src), describeCert(cert)),
			"give the key that belongs to the certificate; compare `openssl x509 -pubkey -noout` with `openssl pkey -pubout`", nil)
	}
	if err := CheckKeyStrength(src, cert.PublicKey); err != nil {
		return err
	}
	if len(cert.SubjectKeyId) == 0 {
		return newError(src, ReasonMissingSKI,
			fmt.Sprintf("ca certificate (%s) has no subject key identifier", describeCert(cert)),
			"issue it with subjectKeyIdentifier=hash; clients use it to tell CAs apart during the rotation", nil)
	}
	for i, c := range append([]*x509.Certificate{cert}, ca.Chain...) {
		label := "ca certificate"
		if i > 0 {
			label = fmt.Sprintf("chain certificate %d", i+1)
			if err := CheckKeyStrength(src, c.PublicKey); err != nil {
				return err
			}
		}
		if err := checkValidity(src, label, c, opts.Now, opts.MustOutlive); err != nil {
			return err
		}
	}
	if err := checkChain(src, ca, opts.Now); err != nil {
		return err
	}
	return checkReplaces(src, cert, opts.Replaces)
}

func orUnnamed(source string) string {
	if source == "" {
		return "the given certificate"
	}
	return source
}

func checkValidity(src, label string, c *x509.Certificate, now, mustOutlive time.Time) error {
	period := fmt.Sprintf("valid from %s to %s", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	switch {
	case now.Before(c.NotBefore):
		return newError(src, ReasonNotYetValid,
			fmt.Sprintf("%s (%s) is not valid yet at %s (%s)", label, describeCert(c), now.UTC().Format(time.RFC3339), period),
			"check this machine's clock, or wait until the certificate starts to be valid", nil)
	case now.After(c.NotAfter):
		return newError(src, ReasonExpired,
			fmt.Sprintf("%s (%s) expired (%s)", label, describeCert(c), period),
			"give a CA that is currently valid", nil)
	case !mustOutlive.IsZero() && c.NotAfter.Before(mustOutlive):
		return newError(src, ReasonExpiresTooSoon,
			fmt.Sprintf("%s (%s) expires at %s, before %s, when the certificates it must sign expire",
				label, describeCert(c), c.NotAfter.UTC().Format(time.RFC3339), mustOutlive.UTC().Format(time.RFC3339)),
			"give a CA that stays valid longer, or issue shorter-lived certificates", nil)
	}
	return nil
}

// checkChain insists on a path to a self-signed root inside the input: Go
// accepts an intermediate as a trust anchor, but OpenSSL-based clients do not
// without -partial_chain, so a bundle without the root would break them.
func checkChain(src string, ca *CA, now time.Time) error {
	all := append([]*x509.Certificate{ca.Cert}, ca.Chain...)
	top := all[len(all)-1]
	if !bytes.Equal(top.RawIssuer, top.RawSubject) || top.CheckSignatureFrom(top) != nil {
		what := "the ca certificate is not self-signed and no issuer certificate follows it"
		if len(ca.Chain) > 0 {
			what = fmt.Sprintf("the chain ends with %s, which is not a self-signed root", describeCert(top))
		}
		return newError(src, ReasonBadChain, what,
			"append the issuing CA certificates, up to and including the root, after the CA certificate in the same file", nil)
	}
	roots, intermediates := ca.verifyPools()
	_, err := ca.Cert.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return newError(src, ReasonBadChain, "the ca certificate does not verify against the chain that follows it",
			"put the CA certificate first, then its issuer, and so on up to the root", err)
	}
	if err := verifyThrowawayLeaf(ca, now); err != nil {
		return newError(src, ReasonBadChain, "the chain forbids what the ca must sign: a throwaway apiserver-like leaf it signs does not verify up to the root",
			"check the path length and name constraints above the CA: an issuer with pathlen:0 lets it sign nothing, and permitted DNS names must include kubernetes.default.svc", err)
	}
	return nil
}

// verifyThrowawayLeaf signs a leaf the way the CA will sign the cluster's
// (server and client authentication, kube-apiserver's service names) with a
// fresh key, and verifies it through the whole chain: the chain may accept
// the CA itself and still forbid what it signs, through a path length or a
// name constraint above it. The leaf and its key are then dropped.
func verifyThrowawayLeaf(ca *CA, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	notAfter := now.Add(time.Hour)
	if ca.Cert.NotAfter.Before(notAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "carotate chain check"},
		NotBefore: now.Add(-time.Minute), NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key.Signer())
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	roots, intermediates := ca.verifyPools()
	for _, usage := range tmpl.ExtKeyUsage {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return err
		}
	}
	return nil
}

// checkReplaces refuses a "new" CA that would not really replace the old one.
func checkReplaces(src string, cert, old *x509.Certificate) error {
	if old == nil {
		return nil
	}
	switch {
	case bytes.Equal(cert.Raw, old.Raw):
		return newError(src, ReasonSameCA, "is the ca being replaced",
			"give a new CA, or let carotate generate one", nil)
	case bytes.Equal(cert.RawSubjectPublicKeyInfo, old.RawSubjectPublicKeyInfo):
		return newError(src, ReasonSameCA, "uses the same key as the ca being replaced",
			"a rotation that keeps the key revokes nothing; give a CA with a new key", nil)
	case bytes.Equal(cert.RawSubject, old.RawSubject):
		return newError(src, ReasonSubjectClash,
			fmt.Sprintf("has the same subject %q as the ca being replaced", cert.Subject.String()),
			"issue the new CA with a different subject: OpenSSL-based clients stop at the first CA whose subject matches", nil)
	}
	return nil
}
