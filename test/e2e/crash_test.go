package e2e

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/failpoint"
	"github.com/carotate/carotate/internal/inspect"
	"github.com/carotate/carotate/internal/node"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/rotation"
)

// A kill is one failpoint: carotate SIGKILLs itself at the n-th side
// effect of phase, counted afresh in each resumed process.
type kill struct {
	phase, when string
	n           int
}

func (k kill) String() string { return fmt.Sprintf("%s:%s:%d", k.phase, k.when, k.n) }

// maxEffects bounds the side effect a kill lands on, per phase: a little
// under what the phase does on a 1+2 lab, so that most kills land.
// prepare makes two (carotate's directory, then the new CAs as one batch);
// the others make 16-20, a step's consecutive writes counting as one.
var maxEffects = map[string]int{"prepare": 2, "trust": 12, "switch": 12, "finalize": 12}

// crashSeed is CAROTATE_FAILPOINT_SEED, or a new seed, printed so that a
// failing matrix can be replayed.
func crashSeed(t *testing.T) uint64 {
	if s := os.Getenv("CAROTATE_FAILPOINT_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CAROTATE_FAILPOINT_SEED=%q: %v", s, err)
		}
		return seed
	}
	return rand.Uint64()
}

// chooseKills picks k kills over phases: each phase gets one, the rest go
// to phases at random, in the order the phases run.
func chooseKills(rng *rand.Rand, phases []string, k int) []kill {
	count := map[string]int{}
	for i := range k {
		p := phases[i%len(phases)]
		if i >= len(phases) {
			p = phases[rng.IntN(len(phases))]
		}
		count[p]++
	}
	var out []kill
	for _, p := range phases {
		for range count[p] {
			when := failpoint.After
			if rng.IntN(2) == 0 {
				when = failpoint.Before
			}
			out = append(out, kill{phase: p, when: when, n: 1 + rng.IntN(maxEffects[p])})
		}
	}
	return out
}

// runKilled runs carotate with a failpoint armed and reports whether the
// failpoint fired (the process died of SIGKILL), with what it printed.
func (r *rotator) runKilled(k kill, args ...string) (killed bool, res result) {
	r.t.Helper()
	cmd := r.command(args...)
	cmd.Env = append(cmd.Env, failpoint.Env+"="+k.String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res = result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			killed = true
		}
	} else if err != nil {
		r.t.Fatalf("carotate %s: %v", strings.Join(args, " "), err)
	}
	r.t.Logf("$ %s=%s carotate %s  (killed %v, exit %d, %s)\n%s%s", failpoint.Env, k, strings.Join(args, " "), killed, res.code,
		res.took.Round(100*time.Millisecond), progressOnly(res.stdout), tail(res.stderr, 1500))
	return killed, res
}

// crashRun runs command with each kill in turn, checking the invariants
// after each one that fired, then runs it once more to the end. rotate
// runs with --until the kill's phase, so that a kill that does not fire
// (its phase had fewer side effects left) does not run past that phase.
func (r *rotator) crashRun(command string, kills []kill, extra ...string) (fired []string, outputs []string) {
	r.t.Helper()
	for _, k := range kills {
		args := append([]string{command, "--yes"}, extra...)
		if command == "rotate" {
			args = append(args, "--until", k.phase)
		}
		killed, res := r.runKilled(k, args...)
		outputs = append(outputs, res.stdout)
		if !killed {
			if res.code != 0 {
				r.t.Fatalf("%s with %s failed without being killed: exit %d", command, k, res.code)
			}
			r.t.Logf("%s: the failpoint did not fire (the phase had fewer side effects left, or was done)", k)
			continue
		}
		what := lastFailpointLine(res.stderr)
		if what == "" {
			r.t.Errorf("%s: killed, but carotate did not say at which side effect", k)
		}
		fired = append(fired, k.String()+" → "+strings.TrimPrefix(what, "failpoint: "))
		checkInvariants(r.t, r, "after "+what)
	}
	res := r.run(append([]string{command, "--yes"}, extra...)...)
	outputs = append(outputs, res.stdout)
	if res.code != 0 {
		r.t.Fatalf("%s after the kills: exit %d", command, res.code)
	}
	return fired, outputs
}

// lastFailpointLine is the line in which carotate said where it killed
// itself, "" when there is none.
func lastFailpointLine(stderr string) string {
	what := ""
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "failpoint: ") {
			what = line
		}
	}
	return what
}

// checkInvariants is what must hold at every point of a rotation, a
// killed one included: every CA key in at least two durable places; on
// every control plane, the first certificate of ca.crt and
// front-proxy-ca.crt matches the key beside it; kube-controller-manager's
// signing files hold one certificate; no stray file in manifests/; no
// secret looser than 0600.
func checkInvariants(t *testing.T, r *rotator, when string) {
	t.Helper()
	l := r.l
	for _, n := range l.Nodes {
		kubeDir, err := l.NodePath(n.Name, rotation.KubernetesDir)
		if err != nil {
			t.Fatal(err)
		}
		ex, err := node.NewLocal(n.Name, kubeDir)
		if err != nil {
			t.Fatal(err)
		}
		strays, err := inspect.StrayManifests(t.Context(), ex, "/"+filepath.Base(rotation.ManifestsDir))
		if err != nil {
			t.Errorf("%s: %s: %v", when, n.Name, err)
		}
		if len(strays) > 0 {
			t.Errorf("%s: %s: stray manifests %v", when, n.Name, strays)
		}
		for _, dir := range []string{rotation.PKIDir, rotation.PKIDir + "/etcd", rotation.CarotateDir, rotation.KubernetesDir, rotation.KubeletPKIDir} {
			host, _ := l.NodePath(n.Name, dir)
			entries, _ := os.ReadDir(host)
			for _, e := range entries {
				if !e.Type().IsRegular() {
					continue
				}
				name := e.Name()
				secret := strings.HasSuffix(name, ".key") || strings.HasSuffix(name, ".conf") || (dir == rotation.KubeletPKIDir && strings.HasPrefix(name, "kubelet-client"))
				fi, err := e.Info()
				if err != nil || !secret {
					continue
				}
				if fi.Mode().Perm()&^fs.FileMode(0o600) != 0 {
					t.Errorf("%s: %s:%s/%s is %04o, looser than 0600", when, n.Name, dir, name, fi.Mode().Perm())
				}
			}
		}
		if !n.ControlPlane {
			continue
		}
		for _, pair := range [][2]string{{"ca.crt", "ca.key"}, {"front-proxy-ca.crt", "front-proxy-ca.key"}} {
			certs := readCerts(t, l, n.Name, rotation.PKIDir+"/"+pair[0])
			key := readKey(t, l, n.Name, rotation.PKIDir+"/"+pair[1])
			if len(certs) == 0 || key.IsZero() {
				t.Errorf("%s: %s: %s or %s unreadable", when, n.Name, pair[0], pair[1])
				continue
			}
			if !pki.KeyMatchesCertificate(key, certs[0]) {
				t.Errorf("%s: %s: the first certificate of %s does not match %s", when, n.Name, pair[0], pair[1])
			}
		}
		for _, p := range []string{rotation.CarotateDir + "/signing-old-ca.crt", rotation.CarotateDir + "/signing-new-ca.crt"} {
			host, _ := l.NodePath(n.Name, p)
			if _, err := os.Stat(host); err != nil {
				continue
			}
			if certs := readCerts(t, l, n.Name, p); len(certs) != 1 {
				t.Errorf("%s: %s:%s holds %d certificates, want one (kubeadm#1350)", when, n.Name, p, len(certs))
			}
		}
	}
	copies, err := r.durableKeyCopies()
	if err != nil {
		t.Errorf("%s: count the CA keys' durable copies: %v", when, err)
	}
	var short []string
	for k, c := range copies {
		if c < 2 {
			short = append(short, fmt.Sprintf("%s: %d", k, c))
		}
	}
	sort.Strings(short)
	if len(short) > 0 {
		t.Errorf("%s: CA keys with fewer than two durable copies: %s", when, strings.Join(short, ", "))
	}
}

func readCerts(t *testing.T, l interface {
	NodePath(string, string) (string, error)
}, nodeName, p string) []*x509.Certificate {
	t.Helper()
	host, _ := l.NodePath(nodeName, p)
	b, err := os.ReadFile(host)
	if err != nil {
		return nil
	}
	certs, _ := pki.ParseCertificatesPEM(host, b)
	return certs
}

func readKey(t *testing.T, l interface {
	NodePath(string, string) (string, error)
}, nodeName, p string) pki.PrivateKey {
	t.Helper()
	host, _ := l.NodePath(nodeName, p)
	b, err := os.ReadFile(host)
	if err != nil {
		return pki.PrivateKey{}
	}
	k, err := pki.ParsePrivateKeyPEM(host, b)
	if err != nil {
		return pki.PrivateKey{}
	}
	return k
}
