package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// newTestCA makes an ed25519 SSH certificate authority.
func newTestCA(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

// certifyHostKeys returns an extra function for startSSHDWith that has ca
// sign every host key for principals and points sshd at the certificates.
func certifyHostKeys(t *testing.T, ca ssh.Signer, principals ...string) func(d *testSSHD) string {
	return func(d *testSSHD) string {
		t.Helper()
		var lines string
		for i, key := range d.hostKeys {
			cert := &ssh.Certificate{
				Key:             key,
				Serial:          uint64(i + 1),
				CertType:        ssh.HostCert,
				KeyId:           "cp-1 host key " + strconv.Itoa(i),
				ValidPrincipals: principals,
				ValidAfter:      uint64(time.Now().Add(-time.Hour).Unix()),
				ValidBefore:     ssh.CertTimeInfinity,
			}
			if err := cert.SignCert(rand.Reader, ca); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(d.dir, "ssh_host_"+strconv.Itoa(i)+"_key-cert.pub")
			if err := os.WriteFile(file, ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
				t.Fatal(err)
			}
			lines += "HostCertificate " + file + "\n"
		}
		return lines
	}
}

// authorityKnownHosts writes a known_hosts file whose only entry for
// pattern is a @cert-authority line for ca.
func authorityKnownHosts(t *testing.T, pattern string, ca ssh.PublicKey) string {
	t.Helper()
	line := "# carotate test\n@cert-authority " + pattern + " " + string(ssh.MarshalAuthorizedKey(ca))
	file := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(file, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestSSHHostCertificate covers nodes whose host keys are certified by a CA
// that known_hosts trusts with @cert-authority: the client must offer the
// certificate algorithms and accept a certificate from that CA, and refuse,
// with a message that says why, a certificate from another CA, for another
// name, or a node without a certificate. Before the fix the client offered
// only the CA's plain key type and called every such node "CHANGED".
func TestSSHHostCertificate(t *testing.T) {
	ca, otherCA := newTestCA(t), newTestCA(t)
	certified := startSSHDWith(t, certifyHostKeys(t, ca, "127.0.0.1"), "ed25519")
	certifiedRSA := startSSHDWith(t, certifyHostKeys(t, ca, "127.0.0.1"), "rsa")
	wrongName := startSSHDWith(t, certifyHostKeys(t, ca, "cp-9"), "ed25519")
	plain := startSSHD(t, "ed25519")

	exact := func(d *testSSHD) string { return knownhosts.Normalize(d.addr) }
	tests := []struct {
		name        string
		d           *testSSHD
		pattern     func(d *testSSHD) string
		ca          ssh.PublicKey
		wantErr     []string // nil: must connect
		wantCertErr bool
	}{
		{"ed25519 host certificate", certified, exact, ca.PublicKey(), nil, false},
		{"rsa host key certified by an ed25519 CA", certifiedRSA, exact, ca.PublicKey(), nil, false},
		{"authority for a wildcard pattern", certified, func(d *testSSHD) string {
			return "[127.0.0.*]:" + strconv.Itoa(d.port)
		}, ca.PublicKey(), nil, false},
		{"certificate from another CA", certified, exact, otherCA.PublicKey(),
			[]string{"host certificate of [127.0.0.1]:", "is refused", "no authorities", ssh.FingerprintSHA256(otherCA.PublicKey())}, true},
		{"certificate for another name", wrongName, exact, ca.PublicKey(),
			[]string{"host certificate of [127.0.0.1]:", "is refused", "principal"}, true},
		{"node without a certificate", plain, exact, ca.PublicKey(),
			[]string{"is not certified", "plain key", "@cert-authority ssh-ed25519 key " + ssh.FingerprintSHA256(ca.PublicKey()), "HostCertificate"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.d.config(authorityKnownHosts(t, tc.pattern(tc.d), tc.ca))
			marker := filepath.Join(t.TempDir(), "ran")
			s, err := DialSSH(context.Background(), cfg)
			if err == nil {
				defer s.Close()
				_, err = s.Run(context.Background(), []string{"touch", marker}, nil)
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("DialSSH/Run: %v\nsshd log:\n%s", err, tc.d.log)
				}
				if !fileExists(t, marker) {
					t.Error("command did not run")
				}
				return
			}
			if fileExists(t, marker) {
				t.Error("command ran on a refused node")
			}
			var hkErr *HostKeyError
			if !errors.As(err, &hkErr) {
				t.Fatalf("error = %v, want a *HostKeyError", err)
			}
			if (hkErr.CertErr != nil) != tc.wantCertErr || len(hkErr.Known) != 0 || len(hkErr.Authorities) != 1 {
				t.Errorf("HostKeyError = %+v", hkErr)
			}
			msg := err.Error()
			t.Logf("refused as expected: %v", err)
			if strings.Contains(msg, "CHANGED") {
				t.Errorf("false alarm: %v", err)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(msg, want) {
					t.Errorf("error does not contain %q:\n%v", want, err)
				}
			}
		})
	}
}
