package e2e

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/lab"
	"github.com/carotate/carotate/internal/pki"
)

// offlineRootCA makes an issuing CA under a root that stays offline: the
// chain file holds the intermediate then the root (what --ca-cert takes),
// the key file the intermediate's key, and root.crt the root alone, which
// is all a client that trusts the root keeps.
func offlineRootCA(t *testing.T) (chainPath, keyPath, rootPath string) {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	root, err := pki.GenerateCA(pki.GenerateOptions{Now: now, CommonName: "e2e offline root", Algorithm: pki.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.SystemKeyGenerator{}.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "e2e issuing ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}, root.Cert, key.Public(), root.Key.Signer())
	if err != nil {
		t.Fatal(err)
	}
	inter, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := key.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	chainPath, keyPath, rootPath = filepath.Join(dir, "chain.crt"), filepath.Join(dir, "issuing.key"), filepath.Join(dir, "root.crt")
	for p, data := range map[string][]byte{chainPath: pki.BuildBundle(inter, root.Cert), keyPath: keyPEM, rootPath: root.CertPEM()} {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return chainPath, keyPath, rootPath
}

// checkServedToRoot runs `openssl s_client -CAfile root.crt` against every
// kube-apiserver and the load balancer: each must serve its leaf with the
// intermediate, so that a client that trusts only the offline root
// verifies it.
func checkServedToRoot(t *testing.T, l *lab.Lab, rootPath, when string) {
	t.Run("openssl verifies every apiserver against the offline root "+when, func(t *testing.T) {
		openssl, err := exec.LookPath("openssl")
		if err != nil {
			t.Fatal("openssl is not on PATH (make deps installs it)")
		}
		endpoints := []string{l.Endpoint}
		for _, n := range l.ControlPlaneNodes() {
			endpoints = append(endpoints, n.IP+":6443")
		}
		for _, ep := range endpoints {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", ep, "-servername", "kubernetes", "-CAfile", rootPath, "-verify_return_error", "-showcerts")
			cmd.Stdin = strings.NewReader("")
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil || !strings.Contains(string(out), "Verify return code: 0 (ok)") {
				t.Errorf("openssl s_client -connect %s -CAfile root.crt: %v\n%s", ep, err, tail(string(out), 1500))
			}
		}
	})
}
