package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func problemChecks(problems []Problem) []string {
	var checks []string
	for _, p := range problems {
		checks = append(checks, p.Check)
	}
	return checks
}

func TestLintPassesOnWhatWeMake(t *testing.T) {
	now := testNow()
	old := kubeadmCA(t, "kubernetes", newKey(t, "RSA-2048"), now.Add(-time.Hour))
	leafKey := newKey(t, "RSA-2048")
	oldLeaf := kubeadmLeaf(t, old, leafKey, apiserverSpec())
	for _, alg := range []KeyAlgorithm{RSA2048, ECDSAP256, ECDSAP384, Ed25519} {
		t.Run(string(alg), func(t *testing.T) {
			ca, err := GenerateCA(GenerateOptions{Now: now, Replaces: old.Cert, Algorithm: alg})
			if err != nil {
				t.Fatal(err)
			}
			if problems := Lint(ca.Cert, LintOptions{Now: now, DistinctFrom: []*x509.Certificate{old.Cert}}); len(problems) > 0 {
				t.Errorf("generated ca: %v", problems)
			}
			for _, opts := range []ReissueOptions{{Now: now, Key: leafKey}, {Now: now, NewKey: true, Algorithm: ECDSAP256}} {
				leaf, err := Reissue(oldLeaf, ca, opts)
				if err != nil {
					t.Fatal(err)
				}
				if problems := Lint(leaf.Cert, LintOptions{Now: now, Issuer: ca.Cert}); len(problems) > 0 {
					t.Errorf("reissued leaf (new key %v): %v", opts.NewKey, problems)
				}
			}
		})
	}
}

func TestLintFindsDefects(t *testing.T) {
	now := testNow()
	rootKey, key, otherKey := newKey(t, "ECDSA-P256"), newKey(t, "ECDSA-P256"), newKey(t, "ECDSA-P256")
	root, err := GenerateCA(GenerateOptions{Now: now, Algorithm: ECDSAP256, CommonName: "root", Keys: fixedKeys(rootKey)})
	if err != nil {
		t.Fatal(err)
	}
	otherRoot, err := GenerateCA(GenerateOptions{Now: now, Algorithm: ECDSAP256, CommonName: "other root", Keys: fixedKeys(otherKey)})
	if err != nil {
		t.Fatal(err)
	}
	serial := func() *big.Int { s, _ := randomSerial(nil); return s }
	goodCA := func() *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: serial(), Subject: pkixCN("intermediate"), NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour),
			BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		}
	}
	goodLeaf := func() *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: serial(), Subject: pkixCN("leaf"), DNSNames: []string{"leaf"}, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour),
			BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
	}
	// byRoot issues tmpl from root; parent lets a case drop the root's
	// subject key id so that crypto/x509 writes no authority key id.
	byRoot := func(tmpl *x509.Certificate, pub any) *x509.Certificate {
		return sign(t, tmpl, root.Cert, pub, rootKey.Signer())
	}
	rootWithoutSKI := *root.Cert
	rootWithoutSKI.SubjectKeyId = nil
	mutate := func(c *x509.Certificate, f func(*x509.Certificate)) *x509.Certificate {
		cp := *c
		f(&cp)
		return &cp
	}

	tests := []struct {
		name string
		// cert is built in the test; where crypto/x509 refuses to write a
		// defect (a negative serial), a parsed certificate is altered instead.
		cert func() *x509.Certificate
		opts LintOptions
		want []string
	}{
		{name: "good intermediate", cert: func() *x509.Certificate { return byRoot(goodCA(), key.Public()) }},
		{name: "good leaf", cert: func() *x509.Certificate { return byRoot(goodLeaf(), key.Public()) }},
		{name: "ca basicConstraints not critical", want: []string{"ca-basic-constraints"}, cert: func() *x509.Certificate {
			tmpl := goodCA()
			tmpl.ExtraExtensions = []pkix.Extension{basicConstraintsExt(t, true, false)}
			return byRoot(tmpl, key.Public())
		}},
		{name: "ca keyUsage not critical", want: []string{"ca-key-usage"}, cert: func() *x509.Certificate {
			tmpl := goodCA()
			tmpl.ExtraExtensions = []pkix.Extension{{Id: []int{2, 5, 29, 15}, Critical: false, Value: []byte{0x03, 0x02, 0x01, 0x06}}}
			return byRoot(tmpl, key.Public())
		}},
		{name: "ca keyUsage without certSign", want: []string{"ca-key-usage"}, cert: func() *x509.Certificate {
			tmpl := goodCA()
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature
			return byRoot(tmpl, key.Public())
		}},
		{name: "ca without keyUsage", want: []string{"ca-key-usage"}, cert: func() *x509.Certificate {
			tmpl := goodCA()
			tmpl.KeyUsage = 0
			return byRoot(tmpl, key.Public())
		}},
		{name: "ca without subject key id", want: []string{"ca-subject-key-id"}, cert: func() *x509.Certificate {
			tmpl := goodCA()
			tmpl.BasicConstraintsValid, tmpl.IsCA = false, false // so crypto/x509 adds no key id
			tmpl.ExtraExtensions = []pkix.Extension{basicConstraintsExt(t, true, true)}
			return byRoot(tmpl, key.Public())
		}},
		{name: "ca with empty subject", want: []string{"ca-subject"}, cert: func() *x509.Certificate {
			tmpl := goodCA()
			tmpl.Subject = pkix.Name{}
			return byRoot(tmpl, key.Public())
		}},
		{name: "ca sharing the subject of the ca it replaces", want: []string{"ca-subject-distinct"},
			opts: LintOptions{DistinctFrom: []*x509.Certificate{root.Cert}}, cert: func() *x509.Certificate {
				tmpl := goodCA()
				tmpl.Subject = root.Cert.Subject
				return sign(t, tmpl, nil, otherKey.Public(), otherKey.Signer())
			}},
		{name: "small sequential serial", want: []string{"serial-number"}, cert: func() *x509.Certificate {
			tmpl := goodLeaf()
			tmpl.SerialNumber = big.NewInt(2)
			return byRoot(tmpl, key.Public())
		}},
		{name: "negative serial", want: []string{"serial-number"}, cert: func() *x509.Certificate {
			return mutate(byRoot(goodLeaf(), key.Public()), func(c *x509.Certificate) { c.SerialNumber = big.NewInt(-12345) })
		}},
		{name: "notBefore in the future beyond skew", want: []string{"not-before-in-future"}, cert: func() *x509.Certificate {
			tmpl := goodLeaf()
			tmpl.NotBefore = now.Add(2 * time.Minute)
			return byRoot(tmpl, key.Public())
		}},
		{name: "notBefore within the skew is fine", cert: func() *x509.Certificate {
			tmpl := goodLeaf()
			tmpl.NotBefore = now.Add(30 * time.Second)
			return byRoot(tmpl, key.Public())
		}},
		{name: "expired", want: []string{"expired"}, cert: func() *x509.Certificate {
			tmpl := goodLeaf()
			tmpl.NotBefore, tmpl.NotAfter = now.Add(-2*time.Hour), now.Add(-time.Hour)
			return byRoot(tmpl, key.Public())
		}},
		{name: "notAfter before notBefore", want: []string{"validity-order", "expired"}, cert: func() *x509.Certificate {
			tmpl := goodLeaf()
			tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Minute), now.Add(-2*time.Minute)
			return byRoot(tmpl, key.Public())
		}},
		{name: "leaf outlives its issuer", want: []string{"validity-within-issuer"}, cert: func() *x509.Certificate {
			tmpl := goodLeaf()
			tmpl.NotAfter = root.Cert.NotAfter.Add(time.Hour)
			return byRoot(tmpl, key.Public())
		}},
		{name: "leaf without authority key id", want: []string{"authority-key-id"}, cert: func() *x509.Certificate {
			return sign(t, goodLeaf(), &rootWithoutSKI, key.Public(), rootKey.Signer())
		}},
		{name: "leaf with a wrong authority key id", want: []string{"authority-key-id"}, cert: func() *x509.Certificate {
			tmpl := goodLeaf()
			tmpl.AuthorityKeyId = []byte{1, 2, 3, 4}
			return sign(t, tmpl, &rootWithoutSKI, key.Public(), rootKey.Signer())
		}},
		{name: "leaf signed by another ca", want: []string{"authority-key-id", "issuer-signature"}, cert: func() *x509.Certificate {
			tmpl := goodLeaf()
			return sign(t, tmpl, otherRoot.Cert, key.Public(), otherKey.Signer())
		}},
		{name: "leaf that may sign certificates", want: []string{"leaf-key-usage"}, cert: func() *x509.Certificate {
			tmpl := goodLeaf()
			tmpl.KeyUsage |= x509.KeyUsageCertSign
			return byRoot(tmpl, key.Public())
		}},
		{name: "rsa-1024 key", want: []string{"key-strength"}, cert: func() *x509.Certificate {
			return byRoot(goodLeaf(), newSigner(t, "RSA-1024").Public())
		}},
		{name: "p-521 key", want: []string{"key-strength"}, cert: func() *x509.Certificate {
			return byRoot(goodLeaf(), newSigner(t, "ECDSA-P521").Public())
		}},
		{name: "sha-1 signature", want: []string{"signature-algorithm", "issuer-signature"}, cert: func() *x509.Certificate {
			return mutate(byRoot(goodLeaf(), key.Public()), func(c *x509.Certificate) { c.SignatureAlgorithm = x509.ECDSAWithSHA1 })
		}},
		{name: "no current time", opts: LintOptions{Now: time.Time{}}, want: []string{"current-time", "not-before-in-future"},
			cert: func() *x509.Certificate { return byRoot(goodLeaf(), key.Public()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if tt.name != "no current time" {
				opts.Now = now
			}
			if opts.Issuer == nil {
				opts.Issuer = root.Cert
			}
			if tt.name == "ca sharing the subject of the ca it replaces" {
				opts.Issuer = nil // self-signed
			}
			problems := Lint(tt.cert(), opts)
			if diff := cmp.Diff(tt.want, problemChecks(problems)); diff != "" {
				t.Errorf("lint checks mismatch (-want +got):\n%s\nproblems: %v", diff, problems)
			}
			for _, p := range problems {
				if p.Message == "" {
					t.Errorf("check %s gives no reason", p.Check)
				}
			}
		})
	}
}

func TestLintNilCertificate(t *testing.T) {
	if got := problemChecks(Lint(nil, LintOptions{Now: testNow()})); !cmp.Equal(got, []string{"certificate"}) {
		t.Errorf("Lint(nil) = %v", got)
	}
}
