package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// secretForms lists renderings of a key's private material that must never
// show up in output: the PEM body line by line, the DER in base64 and hex,
// and the private scalar in the forms fmt would print it.
//
// A PEM line can hold only public bytes (PKCS#1 and SEC1 embed the public key,
// and its tail lines up with the certificate's base64); such forms prove
// nothing and are dropped by comparing with public renderings.
func secretForms(t *testing.T, k PrivateKey, cert *x509.Certificate) []string {
	t.Helper()
	certJSON, err := json.Marshal(cert)
	if err != nil {
		t.Fatal(err)
	}
	public := string(certJSON) + fmt.Sprintf("%+v %x", cert, cert.Raw)
	pemBytes := keyPEM(t, k)
	der, err := x509.MarshalPKCS8PrivateKey(k.Signer())
	if err != nil {
		t.Fatal(err)
	}
	forms := []string{
		base64.StdEncoding.EncodeToString(der),
		base64.RawURLEncoding.EncodeToString(der),
		hex.EncodeToString(der),
		fmt.Sprint(der),
	}
	for _, line := range strings.Split(string(pemBytes), "\n") {
		if line != "" && !strings.HasPrefix(line, "-----") {
			forms = append(forms, line)
		}
	}
	switch s := k.Signer().(type) {
	case *rsa.PrivateKey:
		forms = append(forms, s.D.String(), s.D.Text(16), s.Primes[0].String(), fmt.Sprint(s.D.Bytes()))
	case *ecdsa.PrivateKey:
		d, err := s.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		forms = append(forms, hex.EncodeToString(d), base64.StdEncoding.EncodeToString(d), fmt.Sprint(d), fmt.Sprintf("%x", d))
	case ed25519.PrivateKey:
		seed := s.Seed()
		forms = append(forms, hex.EncodeToString(seed), base64.StdEncoding.EncodeToString(seed), fmt.Sprint(seed), fmt.Sprint([]byte(s)))
	}
	var secret []string
	for _, f := range forms {
		if !strings.Contains(public, f) {
			secret = append(secret, f)
		}
	}
	if len(secret) < 4 {
		t.Fatalf("only %d secret forms left to look for", len(secret))
	}
	return secret
}

// holder has the key in an unexported field, where fmt falls back to
// reflection instead of calling Format.
type holder struct {
	name string
	key  PrivateKey
}

type exported struct {
	Name string
	Key  PrivateKey
	Ptr  *PrivateKey
}

func TestPrivateKeyRedacts(t *testing.T) {
	for _, alg := range []string{"RSA-2048", "ECDSA-P256", "Ed25519"} {
		t.Run(alg, func(t *testing.T) {
			k := newKey(t, alg)
			ca := &CA{Cert: kubeadmCA(t, "kubernetes", k, testNow()).Cert, Key: k}
			outputs := map[string]string{}
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%p", "%08v", "%-40s", "%!"} {
				outputs["value "+verb] = fmt.Sprintf(verb, k)
				outputs["pointer "+verb] = fmt.Sprintf(verb, &k)
				outputs["unexported field "+verb] = fmt.Sprintf(verb, holder{name: "x", key: k})
				outputs["exported field "+verb] = fmt.Sprintf(verb, exported{Name: "x", Key: k, Ptr: &k})
				outputs["slice "+verb] = fmt.Sprintf(verb, []PrivateKey{k})
				outputs["map "+verb] = fmt.Sprintf(verb, map[string]PrivateKey{"k": k})
				outputs["ca "+verb] = fmt.Sprintf(verb, ca)
			}
			outputs["Sprint"] = fmt.Sprint(k, &k)
			outputs["Sprintln"] = fmt.Sprintln(k, &k)
			outputs["String"] = k.String()
			outputs["GoString"] = k.GoString()

			err := fmt.Errorf("signing with %v failed: %w", k, errors.New("boom"))
			outputs["error"] = err.Error()
			outputs["wrapped error"] = fmt.Errorf("rotation: %w", errors.Join(err, fmt.Errorf("key %s", k))).Error()
			outputs["pki error"] = (&Error{Source: "ca.key", Reason: ReasonKeyMismatch, Detail: fmt.Sprint(k), Err: err}).Error()

			var text, js bytes.Buffer
			for _, h := range []slog.Handler{slog.NewTextHandler(&text, nil), slog.NewJSONHandler(&js, nil)} {
				log := slog.New(h)
				log.Info("made key", "key", k, "ptr", &k, "ca", ca, "holder", exported{Key: k})
				log.Info("grouped", slog.Group("g", slog.Any("key", k)))
				log.With("key", k).Error("failed", "err", err)
			}
			outputs["slog text"] = text.String()
			outputs["slog json"] = js.String()

			for name, v := range map[string]any{"json value": k, "json pointer": &k, "json struct": exported{Key: k, Ptr: &k}, "json ca": ca} {
				b, err := json.Marshal(v)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				outputs[name] = string(b)
			}
			mt, err := k.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			outputs["MarshalText"] = string(mt)

			secrets := secretForms(t, k, ca.Cert)
			for name, out := range outputs {
				for _, secret := range secrets {
					if strings.Contains(out, secret) {
						t.Errorf("%s leaks key material %q: %q", name, secret, out)
						break
					}
				}
			}
			for _, name := range []string{"value %v", "value %s", "value %q", "value %x", "String", "json value", "slog text", "slog json"} {
				if !strings.Contains(outputs[name], "REDACTED") {
					t.Errorf("%s = %q, want it to say REDACTED", name, outputs[name])
				}
			}
			if !strings.Contains(outputs["value %v"], alg) {
				t.Errorf("%q does not name the algorithm %s", outputs["value %v"], alg)
			}
		})
	}
}

func TestPrivateKeyMarshalPEMRoundTrips(t *testing.T) {
	tests := []struct {
		alg       string
		wantBlock string
	}{
		{"RSA-2048", "RSA PRIVATE KEY"},
		{"ECDSA-P256", "EC PRIVATE KEY"},
		{"ECDSA-P384", "EC PRIVATE KEY"},
		{"Ed25519", "PRIVATE KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			k := newKey(t, tt.alg)
			data := keyPEM(t, k)
			if !bytes.HasPrefix(data, []byte("-----BEGIN "+tt.wantBlock+"-----")) {
				t.Errorf("MarshalPEM wrote %q, want a %s block", data[:40], tt.wantBlock)
			}
			back, err := ParsePrivateKeyPEM("key.pem", data)
			if err != nil {
				t.Fatal(err)
			}
			if !samePublic(back.Public(), k.Public()) {
				t.Error("round trip changed the key")
			}
			if diff := cmp.Diff(KeyAlgorithm(tt.alg), back.Algorithm()); diff != "" {
				t.Errorf("algorithm (-want +got):\n%s", diff)
			}
		})
	}
}

func TestZeroPrivateKey(t *testing.T) {
	var k PrivateKey
	if !k.IsZero() || k.Signer() != nil || k.Public() != nil || k.Algorithm() != "" {
		t.Error("zero PrivateKey is not empty")
	}
	if _, err := k.MarshalPEM(); err == nil {
		t.Error("MarshalPEM of the zero key succeeded")
	}
	if got := fmt.Sprintf("%v %s", k, k); got != "PrivateKey(none) PrivateKey(none)" {
		t.Errorf("zero key prints as %q", got)
	}
	if _, err := NewPrivateKey(nil); err == nil {
		t.Error("NewPrivateKey(nil) succeeded")
	}
}

func TestCheckKeyStrength(t *testing.T) {
	tests := []struct {
		alg    string
		reason Reason
	}{
		{"RSA-1024", ReasonWeakKey},
		{"RSA-2048", ""},
		{"ECDSA-P256", ""},
		{"ECDSA-P384", ""},
		{"ECDSA-P521", ReasonUnsupportedKey},
		{"Ed25519", ""},
	}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			err := CheckKeyStrength("ca.key", newSigner(t, tt.alg).Public())
			checkError(t, err, tt.reason, "ca.key")
		})
	}
}

func TestSystemKeyGenerator(t *testing.T) {
	for _, alg := range []KeyAlgorithm{RSA2048, ECDSAP256, ECDSAP384, Ed25519} {
		k, err := generateKey(nil, alg)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if k.Algorithm() != alg {
			t.Errorf("asked for %s, got %s", alg, k.Algorithm())
		}
	}
	_, err := SystemKeyGenerator{}.GenerateKey("DSA-1024")
	checkError(t, err, ReasonInvalidOption, "", "DSA-1024")
	wrong := fixedKeys(newKey(t, "ECDSA-P384"))
	if _, err := generateKey(KeyGeneratorFunc(func(KeyAlgorithm) (PrivateKey, error) { return wrong.GenerateKey(ECDSAP384) }), ECDSAP256); err == nil {
		t.Error("a generator returning the wrong algorithm was accepted")
	}
}
