package satoken

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestScanDir runs the real script on a tree laid out as the kubelet lays
// out projected volumes.
func TestScanDir(t *testing.T) {
	key := rsaKey(t)
	pods := t.TempDir()
	vol := func(uid, name string) string {
		d := filepath.Join(pods, uid, "volumes", "kubernetes.io~projected", name)
		mustDo(t, os.MkdirAll(d, 0o755))
		return d
	}
	coredns, corednsSig := signedJWT(t, key, "old-kid", saClaims("kube-system", "coredns-abc", "uid-a", "coredns", 3607*time.Second, true))
	vault, vaultSig := signedJWT(t, key, "new-kid", saClaims("kube-system", "coredns-abc", "uid-a", "coredns", 2*time.Hour, false))
	app, appSig := signedJWT(t, key, "old-kid", saClaims("shop", "web-1", "uid-b", "web", 48*time.Hour, false))
	inSecretVol, secretSig := signedJWT(t, key, "old-kid", saClaims("shop", "web-1", "uid-b", "web", time.Hour, false))
	projectedVolume(t, vol("uid-a", "kube-api-access-abc"), map[string]string{
		"token":     coredns,
		"ca.crt":    "-----BEGIN CERTIFICATE-----\nMIIB.eyJ.abc\n-----END CERTIFICATE-----\n",
		"namespace": "kube-system",
	})
	projectedVolume(t, vol("uid-a", "vault"), map[string]string{
		"sub/vault-token": vault,            // a path chosen by the pod spec, in a subdirectory
		"db-host":         "db.example.com", // a Secret's value that has two dots
		"almost":          "eyJh.eyJi.",     // empty signature
	})
	projectedVolume(t, vol("uid-b", "kube-api-access-b"), map[string]string{"token": app + "\n"})
	projectedVolume(t, vol("uid-c", "empty"), map[string]string{})
	// Not projected: legacy Secret volumes are out of scope.
	secretDir := filepath.Join(pods, "uid-b", "volumes", "kubernetes.io~secret", "legacy")
	projectedVolume(t, mkdir(t, secretDir), map[string]string{"token": inSecretVol})

	ex := localNode(t)
	got, err := scanDir(context.Background(), ex, pods)
	if err != nil {
		t.Fatal(err)
	}
	at := func(uid, v, f string) string {
		return filepath.Join(pods, uid, "volumes", "kubernetes.io~projected", v, f)
	}
	want := []Token{
		{
			Node: "cp-1", Path: at("uid-a", "kube-api-access-abc", "token"), PodUID: "uid-a", Volume: "kube-api-access-abc",
			Namespace: "kube-system", Pod: "coredns-abc", ServiceAccount: "coredns", KeyID: "old-kid",
			IssuedAt: issuedAt, Expiry: issuedAt.Add(365 * 24 * time.Hour), WarnAfter: issuedAt.Add(3607 * time.Second),
		},
		{
			Node: "cp-1", Path: at("uid-a", "vault", "sub/vault-token"), PodUID: "uid-a", Volume: "vault",
			Namespace: "kube-system", Pod: "coredns-abc", ServiceAccount: "coredns", KeyID: "new-kid",
			IssuedAt: issuedAt, Expiry: issuedAt.Add(2 * time.Hour),
		},
		{
			Node: "cp-1", Path: at("uid-b", "kube-api-access-b", "token"), PodUID: "uid-b", Volume: "kube-api-access-b",
			Namespace: "shop", Pod: "web-1", ServiceAccount: "web", KeyID: "old-kid",
			IssuedAt: issuedAt, Expiry: issuedAt.Add(48 * time.Hour),
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tokens (-want +got):\n%s", diff)
	}
	if ex.runs != 1 {
		t.Errorf("ran %d commands on the node, want 1", ex.runs)
	}
	for _, sig := range []string{corednsSig, vaultSig, appSig, secretSig} {
		if bytes.Contains(ex.stdout, []byte(sig)) {
			t.Errorf("the node's output carries a token signature")
		}
	}
	if threeSegments.Match(ex.stdout) {
		t.Errorf("the node's output carries a whole JWT")
	}
	for _, leak := range []string{"db.example", "BEGIN CERTIFICATE", "MIIB", "eyJh.eyJi"} {
		if bytes.Contains(ex.stdout, []byte(leak)) {
			t.Errorf("the node's output carries %q, from a file that is not a JWT", leak)
		}
	}
}

var threeSegments = regexp.MustCompile(`[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)

// TestScanDirReportsBadTokens: a JWT-looking file that does not parse is
// named in the error, and the other tokens are still returned.
func TestScanDirReportsBadTokens(t *testing.T) {
	key := rsaKey(t)
	pods := t.TempDir()
	good, _ := signedJWT(t, key, "old-kid", saClaims("ns", "p", "uid-a", "sa", time.Hour, false))
	bad := segment(t, map[string]string{"kid": "k"}) + ".eyJub3QganNvbg.c2ln" // payload `{"not json`
	projectedVolume(t, mkdir(t, filepath.Join(pods, "uid-a", "volumes", "kubernetes.io~projected", "v")),
		map[string]string{"token": good, "other": bad})

	got, err := scanDir(context.Background(), localNode(t), pods)
	if len(got) != 1 || got[0].KeyID != "old-kid" {
		t.Errorf("tokens = %+v, want the good one", got)
	}
	checkErr(t, err, []string{"node cp-1: token " + filepath.Join(pods, "uid-a/volumes/kubernetes.io~projected/v/other") + ": JWT payload"})
}

// TestScanDirReportsUnreadable: a file the scan cannot read (here a link
// loop; on a node, a directory that is not root's to enter) fails the
// command, and what was read is still returned with that error.
func TestScanDirReportsUnreadable(t *testing.T) {
	key := rsaKey(t)
	pods := t.TempDir()
	good, _ := signedJWT(t, key, "old-kid", saClaims("ns", "p", "uid-a", "sa", time.Hour, false))
	v := mkdir(t, filepath.Join(pods, "uid-a", "volumes", "kubernetes.io~projected", "v"))
	projectedVolume(t, v, map[string]string{"token": good})
	mustDo(t, os.Symlink("loop", filepath.Join(v, "loop")))

	got, err := scanDir(context.Background(), localNode(t), pods)
	if len(got) != 1 || got[0].KeyID != "old-kid" {
		t.Errorf("tokens = %+v, want the readable one", got)
	}
	checkErr(t, err, []string{"scan service-account tokens: some files could not be read: node cp-1: run sh: exit status 1", "loop"})
}

func TestScanDirWithoutTokens(t *testing.T) {
	tests := []struct {
		name string
		dir  func(t *testing.T) string
	}{
		{"no pods directory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "missing") }},
		{"no pods", func(t *testing.T) string { return t.TempDir() }},
		{"pods without projected volumes", func(t *testing.T) string {
			d := t.TempDir()
			mkdir(t, filepath.Join(d, "uid-a", "volumes", "kubernetes.io~empty-dir", "cache"))
			return d
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scanDir(context.Background(), localNode(t), tt.dir(t))
			if err != nil || len(got) != 0 {
				t.Errorf("scanDir = %v, %v; want no tokens, no error", got, err)
			}
		})
	}
}

func mkdir(t *testing.T, d string) string {
	t.Helper()
	mustDo(t, os.MkdirAll(d, 0o755))
	return d
}
