package pki

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// leafFacts are what a reissued certificate must carry over unchanged.
type leafFacts struct {
	Subject     string
	RawSubject  []byte
	DNSNames    []string
	IPs         []string
	URIs        []string
	Emails      []string
	SANExt      []byte
	KeyUsage    x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage
	Validity    time.Duration
	IsCA        bool
}

func leafFactsOf(c *x509.Certificate) leafFacts {
	f := leafFacts{
		Subject: c.Subject.String(), RawSubject: c.RawSubject, DNSNames: c.DNSNames, Emails: c.EmailAddresses,
		KeyUsage: c.KeyUsage, ExtKeyUsage: c.ExtKeyUsage, Validity: c.NotAfter.Sub(c.NotBefore), IsCA: c.IsCA,
	}
	for _, ip := range c.IPAddresses {
		f.IPs = append(f.IPs, ip.String())
	}
	for _, u := range c.URIs {
		f.URIs = append(f.URIs, u.String())
	}
	for _, ext := range c.Extensions {
		if ext.Id.String() == oidSubjectAltName {
			f.SANExt = ext.Value
		}
	}
	return f
}

func verifies(cert *x509.Certificate, root *x509.Certificate, now time.Time, usage x509.ExtKeyUsage) error {
	roots := x509.NewCertPool()
	roots.AddCert(root)
	_, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

func TestReissue(t *testing.T) {
	now := testNow()
	oldCAKey, newCAKey := newKey(t, "RSA-2048"), newKey(t, "ECDSA-P256")
	oldCA := kubeadmCA(t, "kubernetes", oldCAKey, now.Add(-400*24*time.Hour))
	newCA, err := GenerateCA(GenerateOptions{Now: now, Replaces: oldCA.Cert, Algorithm: ECDSAP256, Keys: fixedKeys(newCAKey)})
	if err != nil {
		t.Fatal(err)
	}
	rsaLeafKey, ecLeafKey := newKey(t, "RSA-2048"), newKey(t, "ECDSA-P256")
	freshKeys := fixedKeys(newKey(t, "RSA-2048"), newKey(t, "ECDSA-P256"))

	specs := []struct {
		name string
		spec leafSpec
		key  PrivateKey
	}{
		{"apiserver serving certificate", apiserverSpec(), rsaLeafKey},
		{"apiserver-kubelet-client", leafSpec{
			subject: pkixCN("kube-apiserver-kubelet-client", "kubeadm:cluster-admins"),
			usage:   x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ext:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, rsaLeafKey},
		{"kubelet client certificate with ecdsa key", leafSpec{
			subject: pkixCN("system:node:worker-1", "system:nodes"),
			usage:   x509.KeyUsageDigitalSignature,
			ext:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, ecLeafKey},
		{"etcd peer with server and client auth", leafSpec{
			subject: pkixCN("cp-1"),
			dns:     []string{"cp-1", "localhost"},
			ips:     []net.IP{net.ParseIP("192.168.1.10").To4(), net.ParseIP("127.0.0.1").To4(), net.ParseIP("::1")},
			usage:   x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ext:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}, ecLeafKey},
		{"uri and email names, no extended key usage", leafSpec{
			subject: pkix.Name{CommonName: "webhook", Organization: []string{"Example"}, OrganizationalUnit: []string{"Platform"}},
			uris:    []string{"spiffe://cluster.local/ns/kube-system/sa/webhook"},
			emails:  []string{"ops@example.com"},
			usage:   x509.KeyUsageDigitalSignature,
		}, ecLeafKey},
	}
	for _, s := range specs {
		old := kubeadmLeaf(t, oldCA, s.key, s.spec)
		for _, mode := range []struct {
			name   string
			opts   ReissueOptions
			newKey bool
		}{
			{name: "keep key", opts: ReissueOptions{Key: s.key}},
			{name: "keep key without the private key", opts: ReissueOptions{}},
			{name: "new key", opts: ReissueOptions{NewKey: true, Keys: freshKeys}, newKey: true},
		} {
			t.Run(s.name+"/"+mode.name, func(t *testing.T) {
				opts := mode.opts
				opts.Now, opts.Source = now, "apiserver.crt"
				got, err := Reissue(old, newCA, opts)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(leafFactsOf(old), leafFactsOf(got.Cert)); diff != "" {
					t.Errorf("reissued certificate differs from the original (-want +got):\n%s", diff)
				}
				if got.ValidityCapped {
					t.Error("validity reported as capped")
				}
				if diff := cmp.Diff(now.Add(-Backdate), got.Cert.NotBefore); diff != "" {
					t.Errorf("notBefore (-want +got):\n%s", diff)
				}
				if !bytes.Equal(got.Cert.AuthorityKeyId, newCA.Cert.SubjectKeyId) {
					t.Errorf("authority key id %x, want the new ca's subject key id %x", got.Cert.AuthorityKeyId, newCA.Cert.SubjectKeyId)
				}
				if bytes.Equal(got.Cert.SerialNumber.Bytes(), old.SerialNumber.Bytes()) {
					t.Error("serial number reused")
				}
				usages := old.ExtKeyUsage
				if len(usages) == 0 {
					usages = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
				}
				for _, u := range usages {
					if err := verifies(got.Cert, newCA.Cert, now, u); err != nil {
						t.Errorf("does not verify against the new ca for usage %v: %v", u, err)
					}
					if err := verifies(got.Cert, oldCA.Cert, now, u); err == nil {
						t.Errorf("verifies against the old ca for usage %v", u)
					}
				}
				samePub := bytes.Equal(got.Cert.RawSubjectPublicKeyInfo, old.RawSubjectPublicKeyInfo)
				if samePub == mode.newKey {
					t.Errorf("new key requested: %v, public key unchanged: %v", mode.newKey, samePub)
				}
				switch {
				case mode.newKey || !opts.Key.IsZero():
					if !KeyMatchesCertificate(got.Key, got.Cert) {
						t.Error("returned key does not match the certificate")
					}
				case !got.Key.IsZero():
					t.Error("a key was returned although none was given or made")
				}
				if problems := Lint(got.Cert, LintOptions{Now: now, Issuer: newCA.Cert}); len(problems) > 0 {
					t.Errorf("lint problems: %v", problems)
				}
			})
		}
	}
}

func TestReissueCapsValidityAtTheCA(t *testing.T) {
	now := testNow()
	caKey, leafKey := newKey(t, "ECDSA-P256"), newKey(t, "ECDSA-P256")
	old := kubeadmLeaf(t, kubeadmCA(t, "kubernetes", caKey, now.Add(-time.Hour)), leafKey, apiserverSpec())
	shortCA, err := GenerateCA(GenerateOptions{Now: now, Algorithm: ECDSAP256, Validity: 90 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Reissue(old, shortCA, ReissueOptions{Now: now, Key: leafKey})
	if err != nil {
		t.Fatal(err)
	}
	if !got.ValidityCapped || !got.Cert.NotAfter.Equal(shortCA.Cert.NotAfter) {
		t.Errorf("notAfter %s (capped %v), want the ca's notAfter %s", got.Cert.NotAfter, got.ValidityCapped, shortCA.Cert.NotAfter)
	}
}

func TestReissueWithIntermediateCA(t *testing.T) {
	now := testNow()
	rootKey, interKey, leafKey := newKey(t, "ECDSA-P256"), newKey(t, "ECDSA-P256"), newKey(t, "ECDSA-P256")
	root, err := GenerateCA(GenerateOptions{Now: now, CommonName: "Example Root", Keys: fixedKeys(rootKey), Algorithm: ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	inter := sign(t, &x509.Certificate{
		SerialNumber: smallSerial(t), Subject: pkixCN("Example Issuing CA"), NotBefore: now.Add(-time.Hour), NotAfter: now.Add(200 * 24 * time.Hour),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, root.Cert, interKey.Public(), rootKey.Signer())
	ca, err := ImportCA(BuildBundle(inter, root.Cert), keyPEM(t, interKey), ImportOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	old := kubeadmLeaf(t, kubeadmCA(t, "kubernetes", newKey(t, "ECDSA-P256"), now.Add(-time.Hour)), leafKey, apiserverSpec())
	got, err := Reissue(old, ca, ReissueOptions{Now: now, Key: leafKey})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.NotAfter.Equal(inter.NotAfter) || !got.ValidityCapped {
		t.Errorf("notAfter %s, want it capped at the intermediate's %s", got.Cert.NotAfter, inter.NotAfter)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root.Cert)
	inters.AddCert(inter)
	if _, err := got.Cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("does not verify through the intermediate: %v", err)
	}

	// A CA restricted to server and client auth cannot issue a code-signing
	// certificate; Reissue must notice before anything is written.
	codeSigning := kubeadmLeaf(t, kubeadmCA(t, "kubernetes", newKey(t, "ECDSA-P256"), now.Add(-time.Hour)), leafKey, leafSpec{
		subject: pkixCN("signer"), usage: x509.KeyUsageDigitalSignature, ext: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	})
	_, err = Reissue(codeSigning, ca, ReissueOptions{Now: now, Source: "signer.crt"})
	checkError(t, err, ReasonVerifyFailed, "signer.crt", "does not verify")
}

func TestReissueRefuses(t *testing.T) {
	now := testNow()
	caKey, leafKey, otherKey, weakKey := newKey(t, "ECDSA-P256"), newKey(t, "ECDSA-P256"), newKey(t, "ECDSA-P256"), newKey(t, "RSA-1024")
	oldCA := kubeadmCA(t, "kubernetes", newKey(t, "ECDSA-P256"), now.Add(-time.Hour))
	newCA, err := GenerateCA(GenerateOptions{Now: now, Algorithm: ECDSAP256, Keys: fixedKeys(caKey)})
	if err != nil {
		t.Fatal(err)
	}
	leaf := kubeadmLeaf(t, oldCA, leafKey, apiserverSpec())
	weakLeaf := kubeadmLeaf(t, oldCA, weakKey, apiserverSpec())
	expiredCA := &CA{Cert: sign(t, &x509.Certificate{
		SerialNumber: smallSerial(t), Subject: pkixCN("expired"), NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, caKey.Public(), caKey.Signer()), Key: caKey}
	mismatchedCA := &CA{Cert: newCA.Cert, Key: otherKey}

	tests := []struct {
		name      string
		old       *x509.Certificate
		ca        *CA
		opts      ReissueOptions
		reason    Reason
		fragments []string
	}{
		{name: "a ca is not a leaf", old: oldCA.Cert, ca: newCA, opts: ReissueOptions{Now: now}, reason: ReasonNotLeaf},
		{name: "given key does not match", old: leaf, ca: newCA, opts: ReissueOptions{Now: now, Key: otherKey}, reason: ReasonKeyMismatch, fragments: []string{"kube-apiserver"}},
		{name: "weak key cannot be kept", old: weakLeaf, ca: newCA, opts: ReissueOptions{Now: now}, reason: ReasonWeakKey, fragments: []string{"cannot keep the key", "new key"}},
		{name: "expired ca", old: leaf, ca: expiredCA, opts: ReissueOptions{Now: now}, reason: ReasonExpired},
		{name: "ca key does not match ca certificate", old: leaf, ca: mismatchedCA, opts: ReissueOptions{Now: now}, reason: ReasonKeyMismatch},
		{name: "no current time", old: leaf, ca: newCA, opts: ReissueOptions{}, reason: ReasonInvalidOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.Source = "apiserver.crt"
			_, err := Reissue(tt.old, tt.ca, opts)
			if tt.reason == ReasonInvalidOption || tt.reason == ReasonKeyMismatch && tt.ca == mismatchedCA {
				if ReasonOf(err) != tt.reason {
					t.Fatalf("error %v, want reason %q", err, tt.reason)
				}
				return
			}
			checkError(t, err, tt.reason, "apiserver.crt", tt.fragments...)
		})
	}

	// A weak key is fine when a new key is requested.
	got, err := Reissue(weakLeaf, newCA, ReissueOptions{Now: now, NewKey: true, Algorithm: ECDSAP256})
	if err != nil {
		t.Fatalf("reissuing a weak-key leaf with a new key: %v", err)
	}
	if got.Key.Algorithm() != ECDSAP256 {
		t.Errorf("new key is %s, want ECDSA-P256", got.Key.Algorithm())
	}
}
