package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/lab"
	"github.com/carotate/carotate/internal/lab/labtest"
	"github.com/carotate/carotate/internal/lab/probe"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/rotation"
	"github.com/carotate/carotate/internal/state"
	"github.com/carotate/carotate/internal/state/backup"
)

// rotator runs carotate against a lab with one state directory.
type rotator struct {
	t        *testing.T
	l        *lab.Lab
	bin      string
	stateDir string
	// backupKey is the --backup-key file, apart from the state directory
	// as carotate requires.
	backupKey string
	// kubeconfig is what carotate runs with, "" for the lab's admin.conf.
	kubeconfig string
}

func newRotator(t *testing.T, l *lab.Lab) *rotator {
	return &rotator{t: t, l: l, bin: labtest.Carotate(t), stateDir: t.TempDir(), backupKey: filepath.Join(t.TempDir(), "backup.key")}
}

type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
	maxRSS         int64 // MiB
}

func (r *rotator) command(args ...string) *exec.Cmd {
	args = append(args, "--state-dir", r.stateDir)
	if r.backupKey != "" {
		args = append(args, "--backup-key", r.backupKey)
	}
	cmd := exec.Command(r.bin, args...)
	cmd.Env = sshEnv(r.l, r.l.KnownHosts())
	if r.kubeconfig != "" {
		for i, v := range cmd.Env {
			if strings.HasPrefix(v, "KUBECONFIG=") {
				cmd.Env[i] = "KUBECONFIG=" + r.kubeconfig
			}
		}
	}
	return cmd
}

// run runs carotate to the end and logs what it printed.
func (r *rotator) run(args ...string) result {
	r.t.Helper()
	cmd := r.command(args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			r.t.Fatalf("carotate %s: %v", strings.Join(args, " "), err)
		}
		res.code = ee.ExitCode()
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.maxRSS = ru.Maxrss >> 10
	}
	r.t.Logf("$ carotate %s  (exit %d, %s, peak RSS %d MiB)\n%s%s", strings.Join(args, " "), res.code, res.took.Round(100*time.Millisecond), res.maxRSS,
		progressOnly(res.stdout), tail(res.stderr, 1500))
	return res
}

// progressOnly drops the plan's indented detail lines from the log.
func progressOnly(out string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(out, "\n") {
		if !strings.HasPrefix(line, "    ") {
			b.WriteString(line)
		}
	}
	return b.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// store opens the rotation's sealed store with the backup key.
func (r *rotator) store() (*rotation.Store, state.Record) {
	r.t.Helper()
	rec, ok := r.record()
	if !ok {
		r.t.Fatal("no rotation record")
	}
	matches, _ := filepath.Glob(filepath.Join(r.stateDir, "*", "record.json"))
	clusterDir, err := state.Open(r.stateDir, filepath.Base(filepath.Dir(matches[0])))
	if err != nil {
		r.t.Fatal(err)
	}
	rotDir, err := state.Open(clusterDir.Path(), rec.RotationID)
	if err != nil {
		r.t.Fatal(err)
	}
	key, err := backup.LoadKey(r.backupKey)
	if err != nil {
		r.t.Fatal(err)
	}
	return &rotation.Store{Dir: rotDir, Key: key}, rec
}

// durableKeyCopies counts, for each old and new CA key, the sealed copies
// in the state directory.
func (r *rotator) durableKeyCopies() (map[string]int, error) {
	store, rec := r.store()
	m, err := store.Load(rec.RotationID)
	if err != nil {
		return nil, err
	}
	return store.DurableKeyCopies(m)
}

// record reads the rotation record of the lab's cluster.
func (r *rotator) record() (state.Record, bool) {
	r.t.Helper()
	matches, _ := filepath.Glob(filepath.Join(r.stateDir, "*", "record.json"))
	if len(matches) != 1 {
		return state.Record{}, false
	}
	var rec state.Record
	b, err := os.ReadFile(matches[0])
	if err != nil {
		r.t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		r.t.Fatal(err)
	}
	return rec, true
}

// snapshot is every file a rotation may touch, on every node, by sha256
// (a link by its target), plus what carotate's directories hold.
func snapshot(t *testing.T, l *lab.Lab) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range l.Nodes {
		paths := rotation.BackupPaths(n.ControlPlane, rotation.AllRoots())
		for _, dir := range []string{rotation.CarotateDir, rotation.KubeletPKIDir, rotation.ManifestsDir} {
			host, err := l.NodePath(n.Name, dir)
			if err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(host)
			for _, e := range entries {
				paths = append(paths, dir+"/"+e.Name())
			}
		}
		for _, p := range paths {
			host, err := l.NodePath(n.Name, p)
			if err != nil {
				t.Fatal(err)
			}
			key := n.Name + ":" + p
			if target, err := os.Readlink(host); err == nil {
				out[key] = "link:" + target
				continue
			}
			b, err := os.ReadFile(host)
			if err != nil {
				continue
			}
			sum := sha256.Sum256(b)
			out[key] = hex.EncodeToString(sum[:])
		}
	}
	return out
}

func requireSameFiles(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: files differ from before (-before +after):\n%s", what, diff)
	}
}

// probeRecorder copies the probe pods' logs every two seconds, so that
// the logs of pods a rollout deletes are kept: the in-cluster client
// failures of the whole rotation are then in the copies.
type probeRecorder struct {
	dir  string
	stop chan struct{}
	done chan struct{}
}

func startProbeRecorder(t *testing.T, l *lab.Lab) *probeRecorder {
	pr := &probeRecorder{dir: t.TempDir(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(pr.done)
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for deadline := time.Now().Add(75 * time.Minute); time.Now().Before(deadline); {
			pr.copy(l)
			select {
			case <-pr.stop:
				pr.copy(l)
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(pr.close)
	return pr
}

func (pr *probeRecorder) close() {
	select {
	case <-pr.stop:
	default:
		close(pr.stop)
	}
	<-pr.done
}

func (pr *probeRecorder) copy(l *lab.Lab) {
	for _, n := range l.Nodes {
		for _, w := range []string{lab.ProbeDaemonSet, lab.ProbeDeployment} {
			files, _ := l.PodLogFiles(n.Name, lab.ProbeNamespace, w+"-", "probe")
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					continue
				}
				name := n.Name + "_" + strings.ReplaceAll(strings.TrimPrefix(f, "/"), "/", "_")
				os.WriteFile(filepath.Join(pr.dir, name), b, 0o600)
			}
		}
	}
}

// failures sums, per node, the probe failures between from and to.
func (pr *probeRecorder) failures(t *testing.T, from, to time.Time) map[string]string {
	out := map[string]string{}
	for n, a := range pr.tally(from, to) {
		out[n] = fmt.Sprintf("%d ok, %d failed in %d window(s), longest %s", a.ok, a.failed, a.windows, a.longest.Round(100*time.Millisecond))
	}
	return out
}

// probeTally is one node's probe requests: those that succeeded, and
// the failures between two times, in windows.
type probeTally struct {
	ok, failed int64
	longest    time.Duration
	windows    int
}

// tally stops the recorder and adds up, per node, what its probes logged.
func (pr *probeRecorder) tally(from, to time.Time) map[string]*probeTally {
	pr.close()
	entries, _ := os.ReadDir(pr.dir)
	per := map[string]*probeTally{}
	for _, e := range entries {
		node, _, _ := strings.Cut(e.Name(), "_")
		f, err := os.Open(filepath.Join(pr.dir, e.Name()))
		if err != nil {
			continue
		}
		rep, err := probe.ParseLog(f)
		f.Close()
		if err != nil {
			continue
		}
		a := per[node]
		if a == nil {
			a = &probeTally{}
			per[node] = a
		}
		a.ok += rep.OK
		for _, w := range rep.FailuresBetween(from, to) {
			a.windows++
			a.failed += w.Failed
			end := w.End
			if end.IsZero() {
				end = to
			}
			if d := end.Sub(w.Start); d > a.longest {
				a.longest = d
			}
		}
	}
	return per
}

// lbClient requests /readyz through the load balancer with a fresh TLS
// connection every 200 ms from the host, trusting every CA the first
// control plane's ca.crt has held, as an operator's client that follows the
// rotation would.
type lbClient struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	stop       chan struct{}
	done       chan struct{}
}

func startLBClient(t *testing.T, l *lab.Lab) *lbClient {
	c := &lbClient{stop: make(chan struct{}), done: make(chan struct{})}
	caPath, err := l.NodePath(l.ControlPlaneNodes()[0].Name, "/etc/kubernetes/pki/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	go func() {
		defer close(c.done)
		for deadline := time.Now().Add(75 * time.Minute); time.Now().Before(deadline); {
			if b, err := os.ReadFile(caPath); err == nil {
				pool.AppendCertsFromPEM(b)
			}
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool.Clone()}, DisableKeepAlives: true}
			hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			resp, err := hc.Get("https://" + l.Endpoint + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("HTTP %d", resp.StatusCode)
				}
			}
			if err != nil {
				c.failed.Add(1)
				c.mu.Lock()
				c.errs = append(c.errs, time.Now().Format(time.TimeOnly)+" "+err.Error())
				c.mu.Unlock()
			} else {
				c.ok.Add(1)
			}
			select {
			case <-c.stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *lbClient) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

// restartCounts counts "<component> restarted" in carotate's progress, per
// component and node, and the workloads restarted.
func restartCounts(outputs ...string) map[string]int {
	re := regexp.MustCompile(`^\[(\w+)\] (\S+): .*`)
	comp := regexp.MustCompile(`(?:^|[ ,])(etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubelet) restarted`)
	wl := regexp.MustCompile(`(\d+) restarted, (\d+) evicted`)
	out := map[string]int{}
	for _, o := range outputs {
		for _, line := range strings.Split(o, "\n") {
			m := re.FindStringSubmatch(line)
			if m == nil || strings.Contains(line, "will change") {
				continue
			}
			for _, c := range comp.FindAllStringSubmatch(line, -1) {
				out[c[1]+" on "+m[2]]++
			}
			if w := wl.FindStringSubmatch(line); w != nil {
				var n int
				fmt.Sscan(w[1], &n)
				out["workloads"] += n
			}
		}
	}
	return out
}

// phaseTimes reads carotate's "phase done" log lines.
func phaseTimes(stderrs ...string) []string {
	re := regexp.MustCompile(`msg="phase done" phase=(\w+) took=(\S+)`)
	var out []string
	for _, s := range stderrs {
		for _, m := range re.FindAllStringSubmatch(s, -1) {
			out = append(out, m[1]+" "+m[2])
		}
	}
	return out
}

func sortedLines(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %d\n", k, m[k])
	}
	return b.String()
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("%s: not within %s (last error: %v)", what, timeout, last)
}

var _ = context.Background

// nodeCerts reads the certificates of a file on a node, as the test sees
// it from the host.
func nodeCerts(t *testing.T, l *lab.Lab, node, path string) []*x509.Certificate {
	t.Helper()
	host, _ := l.NodePath(node, path)
	b, err := os.ReadFile(host)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ParseCertificatesPEM(host, b)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}
