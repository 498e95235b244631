package pki

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// caFacts are the properties of a generated CA that tests compare.
type caFacts struct {
	CommonName        string
	Organization      []string
	Algorithm         KeyAlgorithm
	IsCA              bool
	BasicCritical     bool
	KeyUsage          x509.KeyUsage
	KeyUsageCritical  bool
	SubjectKeyIDBytes int
	SerialBits        int
	NotBefore         time.Time
	NotAfter          time.Time
	SelfSigned        bool
	KeyMatches        bool
}

func factsOf(ca *CA) caFacts {
	c := ca.Cert
	alg, _ := KeyAlgorithmOf(c.PublicKey)
	bcCrit, _ := findExtension(c, oidBasicConstraints)
	kuCrit, _ := findExtension(c, oidKeyUsage)
	return caFacts{
		CommonName:        c.Subject.CommonName,
		Organization:      c.Subject.Organization,
		Algorithm:         alg,
		IsCA:              c.IsCA && c.BasicConstraintsValid,
		BasicCritical:     bcCrit,
		KeyUsage:          c.KeyUsage,
		KeyUsageCritical:  kuCrit,
		SubjectKeyIDBytes: len(c.SubjectKeyId),
		SerialBits:        c.SerialNumber.BitLen(),
		NotBefore:         c.NotBefore,
		NotAfter:          c.NotAfter,
		SelfSigned:        bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil,
		KeyMatches:        KeyMatchesCertificate(ca.Key, c),
	}
}

func TestGenerateCA(t *testing.T) {
	now := testNow()
	rsaKey, ecKey, ec384, edKey := newKey(t, "RSA-2048"), newKey(t, "ECDSA-P256"), newKey(t, "ECDSA-P384"), newKey(t, "Ed25519")
	keys := fixedKeys(rsaKey, ecKey, ec384, edKey)
	rsaOld, ecOld, ec384Old := newKey(t, "RSA-2048"), newKey(t, "ECDSA-P256"), newKey(t, "ECDSA-P384")
	oldRSA := kubeadmCA(t, "kubernetes", rsaOld, now.Add(-9*365*24*time.Hour)).Cert
	oldFrontProxy := kubeadmCA(t, "front-proxy-ca", rsaOld, now.Add(-time.Hour)).Cert
	oldEtcd := kubeadmCA(t, "etcd-ca", ecOld, now.Add(-time.Hour)).Cert
	oldRotated := kubeadmCA(t, "kubernetes-ca-20250101-deadbeef", ec384Old, now.Add(-time.Hour)).Cert
	oldWithOrg := sign(t, &x509.Certificate{
		SerialNumber: smallSerial(t), Subject: pkix.Name{CommonName: "Example Root CA", Organization: []string{"Example"}},
		NotBefore: now, NotAfter: now.Add(time.Hour), BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, rsaOld.Public(), rsaOld.Signer())

	base := caFacts{
		IsCA: true, BasicCritical: true, KeyUsageCritical: true, SubjectKeyIDBytes: 20, SerialBits: 127,
		KeyUsage:  x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		SelfSigned: true, KeyMatches: true,
	}
	with := func(f func(*caFacts)) caFacts { c := base; f(&c); return c }
	// countingReader yields 00 01 02 03 for the name suffix.
	tests := []struct {
		name string
		opts GenerateOptions
		want caFacts
	}{
		{name: "fresh ca defaults to rsa-2048", opts: GenerateOptions{},
			want: with(func(c *caFacts) { c.CommonName, c.Algorithm = "kubernetes-ca-20260314-00010203", RSA2048 })},
		{name: "replacing kubeadm's ca keeps rsa and renames", opts: GenerateOptions{Replaces: oldRSA},
			want: with(func(c *caFacts) { c.CommonName, c.Algorithm = "kubernetes-ca-20260314-00010203", RSA2048 })},
		{name: "ecdsa on request", opts: GenerateOptions{Replaces: oldRSA, Algorithm: ECDSAP256},
			want: with(func(c *caFacts) { c.CommonName, c.Algorithm = "kubernetes-ca-20260314-00010203", ECDSAP256 })},
		{name: "front-proxy ca keeps its -ca name", opts: GenerateOptions{Replaces: oldFrontProxy},
			want: with(func(c *caFacts) { c.CommonName, c.Algorithm = "front-proxy-ca-20260314-00010203", RSA2048 })},
		{name: "etcd ca keeps ecdsa", opts: GenerateOptions{Replaces: oldEtcd},
			want: with(func(c *caFacts) { c.CommonName, c.Algorithm = "etcd-ca-20260314-00010203", ECDSAP256 })},
		{name: "second rotation replaces the suffix", opts: GenerateOptions{Replaces: oldRotated},
			want: with(func(c *caFacts) { c.CommonName, c.Algorithm = "kubernetes-ca-20260314-00010203", ECDSAP384 })},
		{name: "keeps the operator's organization", opts: GenerateOptions{Replaces: oldWithOrg},
			want: with(func(c *caFacts) {
				c.CommonName, c.Algorithm, c.Organization = "Example Root CA-20260314-00010203", RSA2048, []string{"Example"}
			})},
		{name: "ed25519 and explicit name and validity", opts: GenerateOptions{Algorithm: Ed25519, CommonName: "my-ca", Validity: 24 * time.Hour},
			want: with(func(c *caFacts) { c.CommonName, c.Algorithm, c.NotAfter = "my-ca", Ed25519, now.Add(24*time.Hour) })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.Now, opts.Keys, opts.Rand = now, keys, &countingReader{}
			ca, err := GenerateCA(opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, factsOf(ca)); diff != "" {
				t.Errorf("generated ca mismatch (-want +got):\n%s", diff)
			}
			if opts.Replaces != nil && bytes.Equal(ca.Cert.RawSubject, opts.Replaces.RawSubject) {
				t.Error("new ca has the subject of the one it replaces")
			}
			if problems := Lint(ca.Cert, LintOptions{Now: now}); len(problems) > 0 {
				t.Errorf("lint problems: %v", problems)
			}
			if err := ValidateCA(ca, ImportOptions{Now: now, MustOutlive: now.Add(time.Hour), Replaces: opts.Replaces}); err != nil {
				t.Errorf("generated ca does not validate: %v", err)
			}
		})
	}
}

func TestGenerateCARefuses(t *testing.T) {
	now := testNow()
	key, oldKey := newKey(t, "ECDSA-P256"), newKey(t, "ECDSA-P256")
	old := kubeadmCA(t, "kubernetes", oldKey, now).Cert
	tests := []struct {
		name   string
		opts   GenerateOptions
		reason Reason
	}{
		{name: "no current time", opts: GenerateOptions{Keys: fixedKeys(key)}, reason: ReasonInvalidOption},
		{name: "same subject as the replaced ca", opts: GenerateOptions{Now: now, Replaces: old, CommonName: "kubernetes", Keys: fixedKeys(key)}, reason: ReasonSubjectClash},
		{name: "negative validity", opts: GenerateOptions{Now: now, Validity: -time.Hour, Keys: fixedKeys(key)}, reason: ReasonInvalidOption},
		{name: "name too long", opts: GenerateOptions{Now: now, CommonName: strings.Repeat("x", 65), Keys: fixedKeys(key), Algorithm: ECDSAP256}, reason: ReasonInvalidOption},
		{name: "generator returns the old key", opts: GenerateOptions{Now: now, Replaces: old, Keys: fixedKeys(oldKey)}, reason: ReasonSameCA},
		{name: "randomness fails", opts: GenerateOptions{Now: now, Keys: fixedKeys(key), Algorithm: ECDSAP256, Rand: failingReader{}}, reason: ReasonRandomnessFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := GenerateCA(tt.opts)
			if err == nil || ReasonOf(err) != tt.reason {
				t.Errorf("GenerateCA error = %v, want reason %q", err, tt.reason)
			}
		})
	}
}

func TestDeriveCommonName(t *testing.T) {
	now := testNow()
	tests := []struct{ old, want string }{
		{"kubernetes", "kubernetes-ca-20260314-abcdef01"},
		{"", "kubernetes-ca-20260314-abcdef01"},
		{"front-proxy-ca", "front-proxy-ca-20260314-abcdef01"},
		{"etcd-ca", "etcd-ca-20260314-abcdef01"},
		{"kubernetes-ca-20250101-00ff00ff", "kubernetes-ca-20260314-abcdef01"},
		{"Corp Issuing CA", "Corp Issuing CA-20260314-abcdef01"},
		{strings.Repeat("a", 70), strings.Repeat("a", 46) + "-20260314-abcdef01"},
	}
	for _, tt := range tests {
		if got := deriveCommonName(tt.old, now, "abcdef01"); got != tt.want {
			t.Errorf("deriveCommonName(%q) = %q, want %q", tt.old, got, tt.want)
		}
	}
}

// With a fixed global random source and a fixed Rand, generation is
// reproducible byte for byte: the seam that makes golden tests possible.
func TestGenerateCADeterministic(t *testing.T) {
	gen := func(t *testing.T) []byte {
		cryptotest.SetGlobalRandom(t, 42)
		ca, err := GenerateCA(GenerateOptions{Now: testNow(), Algorithm: ECDSAP256, Rand: &countingReader{}})
		if err != nil {
			t.Fatal(err)
		}
		return ca.Cert.Raw
	}
	var first, second []byte
	t.Run("first", func(t *testing.T) { first = gen(t) })
	t.Run("second", func(t *testing.T) { second = gen(t) })
	if !bytes.Equal(first, second) {
		t.Error("two generations with the same randomness differ")
	}
}

func TestImportCA(t *testing.T) {
	now := testNow()
	ecKey, otherKey := newKey(t, "ECDSA-P256"), newKey(t, "ECDSA-P256")
	rsaKey, weakKey, p521Key := newKey(t, "RSA-2048"), newKey(t, "RSA-1024"), newKey(t, "ECDSA-P521")

	good := kubeadmCA(t, "kubernetes-ca-2", ecKey, now.Add(-time.Hour))
	kubeadmRSA := kubeadmCA(t, "kubernetes", rsaKey, now.Add(-time.Hour))
	root := kubeadmCA(t, "Example Root", otherKey, now.Add(-time.Hour))
	intermediate := sign(t, &x509.Certificate{
		SerialNumber: smallSerial(t), Subject: pkixCN("Example Kubernetes Issuing CA"),
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, root.Cert, ecKey.Public(), root.Key.Signer())
	// A root with pathlen:0 accepts the intermediate itself, and nothing
	// it signs; a name constraint that leaves out kubernetes.default.svc
	// forbids the apiserver's certificate.
	strictRootKey, constrainedKey := newKey(t, "ECDSA-P256"), newKey(t, "ECDSA-P256")
	strictRoot := sign(t, &x509.Certificate{
		SerialNumber: smallSerial(t), Subject: pkixCN("Strict Root"),
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(20 * 365 * 24 * time.Hour),
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, strictRootKey.Public(), strictRootKey.Signer())
	underStrict := sign(t, &x509.Certificate{
		SerialNumber: smallSerial(t), Subject: pkixCN("Issuing CA under a pathlen:0 root"),
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, strictRoot, ecKey.Public(), strictRootKey.Signer())
	constrained := sign(t, &x509.Certificate{
		SerialNumber: smallSerial(t), Subject: pkixCN("Issuing CA for example.com only"),
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		PermittedDNSDomainsCritical: true, PermittedDNSDomains: []string{".example.com"},
	}, root.Cert, constrainedKey.Public(), root.Key.Signer())
	caTemplate := func(cn string, notBefore, notAfter time.Time) *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: smallSerial(t), Subject: pkixCN(cn), NotBefore: notBefore, NotAfter: notAfter,
			BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign,
		}
	}
	selfSigned := func(tmpl *x509.Certificate, k PrivateKey) []byte {
		return EncodeCertificatePEM(sign(t, tmpl, nil, k.Public(), k.Signer()))
	}
	expired := selfSigned(caTemplate("old", now.Add(-20*time.Hour), now.Add(-time.Hour)), ecKey)
	notYet := selfSigned(caTemplate("future", now.Add(time.Hour), now.Add(20*time.Hour)), ecKey)
	short := selfSigned(caTemplate("short", now.Add(-time.Hour), now.Add(30*24*time.Hour)), ecKey)
	leaf := EncodeCertificatePEM(kubeadmLeaf(t, good, otherKey, apiserverSpec()))
	noCertSign := caTemplate("no-certsign", now.Add(-time.Hour), now.Add(time.Hour))
	noCertSign.KeyUsage = x509.KeyUsageDigitalSignature
	// crypto/x509 adds a subject key id to every CA it makes; building the
	// basicConstraints by hand is how to get a CA without one.
	noSKI := &x509.Certificate{
		SerialNumber: smallSerial(t), Subject: pkixCN("no-ski"), NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, ExtraExtensions: []pkix.Extension{basicConstraintsExt(t, true, true)},
	}
	sameSubject := selfSigned(caTemplate("kubernetes", now.Add(-time.Hour), now.Add(time.Hour)), ecKey)

	tests := []struct {
		name      string
		cert, key []byte
		opts      ImportOptions
		wantChain int
		reason    Reason
		source    string
		fragments []string
	}{
		{name: "generated-style ca with sec1 key", cert: good.CertPEM(), key: keyPEM(t, ecKey)},
		{name: "kubeadm rsa ca with pkcs1 key", cert: kubeadmRSA.CertPEM(), key: keyPEM(t, rsaKey)},
		{name: "pkcs8 key", cert: good.CertPEM(), key: pkcs8PEM(t, ecKey.Signer())},
		{name: "crlf files", cert: crlf(good.CertPEM()), key: crlf(keyPEM(t, ecKey))},
		{name: "intermediate with its chain", cert: BuildBundle(intermediate, root.Cert), key: keyPEM(t, ecKey), wantChain: 1},
		{name: "intermediate without its root", cert: EncodeCertificatePEM(intermediate), key: keyPEM(t, ecKey),
			reason: ReasonBadChain, source: "ca.crt", fragments: []string{"not self-signed"}},
		{name: "chain with a root that did not sign it", cert: BuildBundle(intermediate, good.Cert), key: keyPEM(t, ecKey),
			reason: ReasonBadChain, source: "ca.crt"},
		{name: "intermediate under a pathlen:0 root", cert: BuildBundle(underStrict, strictRoot), key: keyPEM(t, ecKey),
			reason: ReasonBadChain, source: "ca.crt", fragments: []string{"forbids what the ca must sign", "pathlen:0"}},
		{name: "intermediate whose name constraints leave out the apiserver", cert: BuildBundle(constrained, root.Cert), key: keyPEM(t, constrainedKey),
			reason: ReasonBadChain, source: "ca.crt", fragments: []string{"forbids what the ca must sign", "kubernetes.default.svc"}},
		{name: "cert and key do not match", cert: good.CertPEM(), key: keyPEM(t, otherKey),
			reason: ReasonKeyMismatch, source: "ca.key", fragments: []string{"does not match the ca certificate in ca.crt"}},
		{name: "leaf offered as ca", cert: leaf, key: keyPEM(t, otherKey),
			reason: ReasonNotCA, source: "ca.crt", fragments: []string{"kube-apiserver", "not a ca"}},
		{name: "ca that may not sign certificates", cert: selfSigned(noCertSign, ecKey), key: keyPEM(t, ecKey),
			reason: ReasonNotCA, source: "ca.crt", fragments: []string{"keyCertSign"}},
		{name: "expired ca", cert: expired, key: keyPEM(t, ecKey), reason: ReasonExpired, source: "ca.crt", fragments: []string{"expired"}},
		{name: "not yet valid ca", cert: notYet, key: keyPEM(t, ecKey), reason: ReasonNotYetValid, source: "ca.crt", fragments: []string{"not valid yet", "clock"}},
		{name: "ca expires before it must", cert: short, key: keyPEM(t, ecKey), opts: ImportOptions{MustOutlive: now.Add(365 * 24 * time.Hour)},
			reason: ReasonExpiresTooSoon, source: "ca.crt", fragments: []string{"before 2027-03-14"}},
		{name: "root of the chain expires before it must", cert: BuildBundle(intermediate, root.Cert), key: keyPEM(t, ecKey),
			opts: ImportOptions{MustOutlive: now.Add(8 * 365 * 24 * time.Hour)}, reason: ReasonExpiresTooSoon, source: "ca.crt"},
		{name: "rsa-1024", cert: selfSigned(caTemplate("weak", now.Add(-time.Hour), now.Add(time.Hour)), weakKey), key: keyPEM(t, weakKey),
			reason: ReasonWeakKey, source: "ca.crt", fragments: []string{"1024 bits"}},
		{name: "ecdsa p-521", cert: selfSigned(caTemplate("p521", now.Add(-time.Hour), now.Add(time.Hour)), p521Key), key: keyPEM(t, p521Key),
			reason: ReasonUnsupportedKey, source: "ca.crt", fragments: []string{"ECDSA-P521"}},
		{name: "ca without subject key id", cert: selfSigned(noSKI, ecKey), key: keyPEM(t, ecKey),
			reason: ReasonMissingSKI, source: "ca.crt"},
		{name: "encrypted key", cert: good.CertPEM(), key: mustPEM("ENCRYPTED PRIVATE KEY", []byte{0x30, 0}),
			reason: ReasonEncrypted, source: "ca.key"},
		{name: "empty certificate file", cert: nil, key: keyPEM(t, ecKey), reason: ReasonEmpty, source: "ca.crt"},
		{name: "empty key file", cert: good.CertPEM(), key: []byte("\n"), reason: ReasonEmpty, source: "ca.key"},
		{name: "duplicate certificate in the chain", cert: BuildBundle(intermediate, root.Cert, root.Cert) /* deduped */, key: keyPEM(t, ecKey), wantChain: 1},
		{name: "duplicate certificate in the file", cert: concat(EncodeCertificatePEM(intermediate), root.CertPEM(), root.CertPEM()), key: keyPEM(t, ecKey),
			reason: ReasonDuplicate, source: "ca.crt", fragments: []string{"certificate 3", "repeats certificate 2"}},
		{name: "the ca being replaced", cert: kubeadmRSA.CertPEM(), key: keyPEM(t, rsaKey), opts: ImportOptions{Replaces: kubeadmRSA.Cert},
			reason: ReasonSameCA, source: "ca.crt"},
		{name: "same key as the ca being replaced", cert: good.CertPEM(), key: keyPEM(t, ecKey),
			opts: ImportOptions{Replaces: kubeadmCA(t, "kubernetes", ecKey, now).Cert}, reason: ReasonSameCA, source: "ca.crt", fragments: []string{"same key"}},
		{name: "same subject as the ca being replaced", cert: sameSubject, key: keyPEM(t, ecKey), opts: ImportOptions{Replaces: kubeadmRSA.Cert},
			reason: ReasonSubjectClash, source: "ca.crt", fragments: []string{"CN=kubernetes", "OpenSSL"}},
		{name: "no current time", cert: good.CertPEM(), key: keyPEM(t, ecKey), opts: ImportOptions{Now: time.Time{}}, reason: ReasonInvalidOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.CertSource, opts.KeySource = "ca.crt", "ca.key"
			if tt.reason != ReasonInvalidOption {
				opts.Now = now
			}
			ca, err := ImportCA(tt.cert, tt.key, opts)
			if tt.reason == ReasonInvalidOption {
				if ReasonOf(err) != tt.reason {
					t.Fatalf("error %v, want reason %q", err, tt.reason)
				}
				return
			}
			checkError(t, err, tt.reason, tt.source, tt.fragments...)
			if err != nil {
				return
			}
			if len(ca.Chain) != tt.wantChain || !KeyMatchesCertificate(ca.Key, ca.Cert) {
				t.Errorf("imported ca has %d chain certificates (want %d), key matches: %v", len(ca.Chain), tt.wantChain, KeyMatchesCertificate(ca.Key, ca.Cert))
			}
		})
	}
}
