package satoken

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/node"
)

// issuedAt is when the tokens in these tests were issued.
var issuedAt = time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)

// saClaims is the payload kube-apiserver writes for a pod-bound token
// (pkg/serviceaccount/claims.go), lifetime after iat; extended adds the
// year-long expiry and warnafter of --service-account-extend-token-expiration.
func saClaims(ns, pod, podUID, sa string, lifetime time.Duration, extended bool) map[string]any {
	k8s := map[string]any{
		"namespace":      ns,
		"pod":            map[string]any{"name": pod, "uid": podUID},
		"serviceaccount": map[string]any{"name": sa, "uid": "sa-uid-" + sa},
	}
	exp := issuedAt.Add(lifetime)
	if extended {
		k8s["warnafter"] = exp.Unix()
		exp = issuedAt.Add(365 * 24 * time.Hour)
	}
	return map[string]any{
		"aud": []string{"https://kubernetes.default.svc.cluster.local"},
		"exp": exp.Unix(), "iat": issuedAt.Unix(), "nbf": issuedAt.Unix(),
		"iss": "https://kubernetes.default.svc.cluster.local",
		"sub": "system:serviceaccount:" + ns + ":" + sa, "kubernetes.io": k8s,
	}
}

// signedJWT is a compact RS256 JWT signed by key, as kube-apiserver would
// sign it, and its signature segment.
func signedJWT(t *testing.T, key *rsa.PrivateKey, kid string, payload any) (jwt, sig string) {
	t.Helper()
	hp := segment(t, map[string]string{"alg": "RS256", "kid": kid}) + "." + segment(t, payload)
	digest := sha256.Sum256([]byte(hp))
	raw, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig = base64.RawURLEncoding.EncodeToString(raw)
	return hp + "." + sig, sig
}

func segment(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// projectedVolume lays files out in dir as the kubelet's atomic writer
// does (pkg/volume/util/atomic_writer.go): the data in a timestamped
// directory, ..data linking to it, and each top-level name the pod sees
// linking into ..data. Names may hold slashes ("sub/token").
func projectedVolume(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	const ts = "..2026_12_02_17_00_00.123456789"
	top := map[string]bool{}
	for name, content := range files {
		p := filepath.Join(dir, ts, name)
		mustDo(t, os.MkdirAll(filepath.Dir(p), 0o755))
		mustDo(t, os.WriteFile(p, []byte(content), 0o644))
		first, _, _ := strings.Cut(name, "/")
		top[first] = true
	}
	mustDo(t, os.Symlink(ts, filepath.Join(dir, "..data")))
	for name := range top {
		mustDo(t, os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)))
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// recorder keeps what each command printed, to check what left the node.
type recorder struct {
	node.Executor
	runs   int
	stdout []byte
}

func (r *recorder) Run(ctx context.Context, argv []string, stdin io.Reader) (node.Result, error) {
	r.runs++
	res, err := r.Executor.Run(ctx, argv, stdin)
	r.stdout = append(r.stdout, res.Stdout...)
	return res, err
}

func localNode(t *testing.T) *recorder {
	t.Helper()
	ex, err := node.NewLocal("cp-1", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &recorder{Executor: ex}
}
