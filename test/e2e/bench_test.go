package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/carotate/carotate/internal/cli"
	"github.com/carotate/carotate/internal/lab"
	"github.com/carotate/carotate/internal/lab/labtest"
	"github.com/carotate/carotate/internal/lock"
)

// TestBench rotates the cluster CA and the front-proxy CA of a lab twice,
// each time on a fresh lab of the same shape: once by the seed procedure
// done literally by a script (hack/seed-rotation), once by carotate
// (rotate, then finalize, no pauses). The same monitors watch both, and the
// table printed at the end puts them side by side. It runs only with
// CAROTATE_BENCH=1 (`make bench`). CAROTATE_BENCH_LAB=3+1 benches the HA lab
// instead of 1+2. CAROTATE_BENCH_WORKLOADS=N (default 300) sets how many
// workloads the workload step is timed at, on a third fresh lab.
// CAROTATE_BENCH_WORKLOAD_CONCURRENCY=N gives carotate's step
// --workload-concurrency N (default 10).
// CAROTATE_BENCH_RUN=seed,carotate,workloads (the default) picks the parts;
// CAROTATE_BENCH_ROOTS=LIST rotates those roots with carotate (the seed
// rotates the two CAs only); CAROTATE_BENCH_OUT=FILE also writes the table
// there.
func TestBench(t *testing.T) {
	if os.Getenv("CAROTATE_BENCH") != "1" {
		t.Skip("the benchmark runs with CAROTATE_BENCH=1 (make bench)")
	}
	shape := os.Getenv("CAROTATE_BENCH_LAB")
	if shape == "" {
		shape = "1+2"
	}
	opts := map[string]lab.Options{
		"1+2": {Name: "bench", Subnet: "221.0", ControlPlanes: 1, Workers: 2, MaxPods: 250},
		"3+1": {Name: "bench", Subnet: "221.0", ControlPlanes: 3, Workers: 1, MaxPods: 250},
	}[shape]
	if opts.ControlPlanes == 0 {
		t.Fatalf("CAROTATE_BENCH_LAB=%q: want 1+2 or 3+1", shape)
	}
	parts := map[string]bool{"seed": true, "carotate": true, "workloads": true}
	if only := os.Getenv("CAROTATE_BENCH_RUN"); only != "" {
		parts = map[string]bool{}
		for _, p := range strings.Split(only, ",") {
			if p != "seed" && p != "carotate" && p != "workloads" {
				t.Fatalf("CAROTATE_BENCH_RUN=%q: want a list of seed, carotate and workloads", only)
			}
			parts[p] = true
		}
	}
	var runs []*benchRun
	if parts["seed"] {
		t.Run("seed", func(t *testing.T) { runs = append(runs, benchSeed(t, opts)) })
	}
	if parts["carotate"] {
		t.Run("carotate", func(t *testing.T) { runs = append(runs, benchCarotate(t, opts)) })
	}
	table := ""
	if len(runs) > 0 {
		table = benchTable(shape, runs)
	}
	if n := benchWorkloads(t); parts["workloads"] && n > 0 {
		var wb *workloadBench
		t.Run("workloads", func(t *testing.T) { wb = benchWorkloadStep(t, opts, n) })
		if wb != nil {
			table += wb.table()
		}
	}
	fmt.Print(table)
	if out := os.Getenv("CAROTATE_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(table), 0o644); err != nil {
			t.Error(err)
		}
	}
}

func benchWorkloads(t *testing.T) int {
	s := os.Getenv("CAROTATE_BENCH_WORKLOADS")
	if s == "" {
		return 300
	}
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil || n < 0 {
		t.Fatalf("CAROTATE_BENCH_WORKLOADS=%q: want a number of workloads, 0 for none", s)
	}
	return n
}

// benchRun is what the monitors saw during one rotation.
type benchRun struct {
	name  string
	done  bool // it finished and every node was Ready after it
	total time.Duration

	polls, failedPolls int
	unavailable        time.Duration // no /readyz OK
	windows            int
	longest            time.Duration
	each               []time.Duration // every window, in order

	probeOK, probeFailed int64
	notReadySeconds      float64 // summed over nodes

	// restarts per component, summed over the nodes: new container IDs
	// (kubelet: new PIDs) seen after the first.
	restarts map[string]int
	nodes    map[string]int // how many nodes run the component

	plan, refused time.Duration // carotate only
	peakRSS       int64         // MiB, carotate only
	phases        []string
}

func benchLab(t *testing.T, opts lab.Options) *lab.Lab {
	l := labtest.Start(t, opts)
	if err := l.WaitHealthy(context.Background(), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	return l
}

func benchSeed(t *testing.T, opts lab.Options) *benchRun {
	l := benchLab(t, opts)
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "hack", "seed-rotation")
	var cps, workers []string
	for _, n := range l.Nodes {
		e := n.Name + "=" + n.IP
		if n.ControlPlane {
			cps = append(cps, e)
		} else {
			workers = append(workers, e)
		}
	}
	kubectl := filepath.Join(labtest.Components(), "kubectl")
	run := &benchRun{name: "seed (hack/seed-rotation)"}
	m := startBenchMonitor(t, l)
	cmd := exec.Command(script)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"SEED_WORK=" + filepath.Join(t.TempDir(), "seed"),
		"SEED_SSH_KEY=" + l.SSHKey(), "SEED_KNOWN_HOSTS=" + l.KnownHosts(),
		"SEED_CONTROL_PLANES=" + strings.Join(cps, " "), "SEED_WORKERS=" + strings.Join(workers, " "),
		"SEED_KUBECTL=" + kubectl,
	}
	out, err := cmd.CombinedOutput()
	m.stop(run)
	t.Logf("$ hack/seed-rotation  (%s)\n%s", run.total.Round(time.Second), tail(string(out), 6000))
	if err != nil {
		t.Errorf("hack/seed-rotation: %v", err)
		return run
	}
	run.done = benchHealthy(t, l)
	return run
}

func benchCarotate(t *testing.T, opts lab.Options) *benchRun {
	l := benchLab(t, opts)
	r := newRotator(t, l)
	run := &benchRun{name: "carotate"}
	var roots []string
	if v := os.Getenv("CAROTATE_BENCH_ROOTS"); v != "" {
		roots = []string{"--roots", v}
		run.name += " --roots " + v
	}

	res := r.run(append([]string{"plan"}, roots...)...)
	run.plan, run.peakRSS = res.took, res.maxRSS
	if res.code != 0 {
		t.Fatalf("plan: exit %d", res.code)
	}
	// The refused second run: another carotate holds the lock.
	ctx := context.Background()
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	held, err := lock.Acquire(ctx, c, lock.Holder{User: "bench", Host: "elsewhere", PID: 4242, RotationID: "r-other"}, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	res = r.run("rotate", "--yes")
	run.refused = res.took
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if res.code != cli.ExitBlocking {
		t.Fatalf("rotate while the lock is held: exit %d, want %d", res.code, cli.ExitBlocking)
	}

	m := startBenchMonitor(t, l)
	rot := r.run(append([]string{"rotate", "--yes"}, roots...)...)
	var fin result
	if rot.code == 0 {
		finalize := []string{"finalize", "--yes"}
		if roots != nil {
			finalize = append(finalize, "--restart-old-token-pods")
		}
		fin = r.run(finalize...)
	}
	m.stop(run)
	run.peakRSS = max(run.peakRSS, rot.maxRSS, fin.maxRSS)
	run.phases = phaseTimes(rot.stderr, fin.stderr)
	if rot.code != 0 || fin.code != 0 {
		t.Errorf("rotate exit %d, finalize exit %d", rot.code, fin.code)
		return run
	}
	run.done = benchHealthy(t, l)
	return run
}

// benchHealthy wants every node Ready and every lab workload ready soon
// after the rotation.
func benchHealthy(t *testing.T, l *lab.Lab) bool {
	if err := l.WaitHealthy(context.Background(), 3*time.Minute); err != nil {
		t.Errorf("after the rotation: %v", err)
		return false
	}
	return true
}

// benchMonitor watches a lab during a rotation, from the host: /readyz
// every 100 ms through the control-plane endpoint, the nodes' Ready every
// second, the control-plane containers and kubelet PIDs on every node every
// 2 s, and the in-cluster probes' own logs.
type benchMonitor struct {
	l      *lab.Lab
	start  time.Time
	probes *probeRecorder
	quit   chan struct{}
	wg     sync.WaitGroup

	mu          sync.Mutex
	polls       int
	failedPolls int
	downSince   time.Time
	unavailable time.Duration
	windows     int
	longest     time.Duration
	each        []time.Duration
	notReady    float64
	seen        map[string]map[string]bool // "component on node" -> IDs
	names       map[string]string          // container ID -> component, "" if not one
}

func startBenchMonitor(t *testing.T, l *lab.Lab) *benchMonitor {
	m := &benchMonitor{l: l, start: time.Now(), quit: make(chan struct{}), seen: map[string]map[string]bool{}, names: map[string]string{}}
	m.probes = startProbeRecorder(t, l)
	m.wg.Add(3)
	go m.readyzLoop()
	go m.nodesLoop()
	go m.containersLoop()
	t.Cleanup(func() {
		select {
		case <-m.quit:
		default:
			close(m.quit)
		}
		m.wg.Wait()
	})
	return m
}

// every runs f each period until the monitor stops, for at most 2 hours.
func (m *benchMonitor) every(period time.Duration, f func()) {
	defer m.wg.Done()
	for deadline := time.Now().Add(2 * time.Hour); time.Now().Before(deadline); {
		f()
		select {
		case <-m.quit:
			return
		case <-time.After(period):
		}
	}
}

func (m *benchMonitor) readyzLoop() {
	caPath, _ := m.l.NodePath(m.l.ControlPlaneNodes()[0].Name, "/etc/kubernetes/pki/ca.crt")
	pool := x509.NewCertPool()
	m.every(100*time.Millisecond, func() {
		if b, err := os.ReadFile(caPath); err == nil {
			pool.AppendCertsFromPEM(b)
		}
		hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool.Clone()}, DisableKeepAlives: true}}
		at := time.Now()
		resp, err := hc.Get("https://" + m.l.Endpoint + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("HTTP %d", resp.StatusCode)
			}
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		m.polls++
		switch {
		case err != nil:
			m.failedPolls++
			if m.downSince.IsZero() {
				m.downSince = at
			}
		case !m.downSince.IsZero():
			m.closeWindow(time.Now())
		}
	})
}

func (m *benchMonitor) closeWindow(end time.Time) {
	d := end.Sub(m.downSince)
	m.unavailable += d
	m.windows++
	m.longest = max(m.longest, d)
	m.each = append(m.each, d)
	m.downSince = time.Time{}
}

func (m *benchMonitor) nodesLoop() {
	last, lastNotReady := time.Now(), 0
	m.every(time.Second, func() {
		now := time.Now()
		if c, err := m.l.Client(); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			cancel()
			if err == nil {
				lastNotReady = 0
				for _, n := range nodes.Items {
					ready := false
					for _, cond := range n.Status.Conditions {
						ready = ready || (cond.Type == "Ready" && cond.Status == "True")
					}
					if !ready {
						lastNotReady++
					}
				}
			}
		}
		// With the API away, the last state seen stands.
		m.mu.Lock()
		m.notReady += float64(lastNotReady) * now.Sub(last).Seconds()
		m.mu.Unlock()
		last = now
	})
}

var benchComponents = map[string]bool{"etcd": true, "kube-apiserver": true, "kube-controller-manager": true, "kube-scheduler": true}

func (m *benchMonitor) containersLoop() {
	m.every(2*time.Second, func() {
		for _, n := range m.l.Nodes {
			m.sampleNode(n.Name)
		}
	})
}

func (m *benchMonitor) sampleNode(node string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := m.l.Systemctl(node, "status", "kubelet"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			if pid, ok := strings.CutPrefix(strings.TrimSpace(line), "Main PID: "); ok {
				m.saw("kubelet", node, pid)
			}
		}
	}
	out, err := m.l.Exec(ctx, node, "ctr", "-n", "k8s.io", "tasks", "ls")
	if err != nil {
		return
	}
	for _, line := range strings.Split(out, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 3 || f[2] != "RUNNING" {
			continue
		}
		id := f[0]
		m.mu.Lock()
		name, known := m.names[id]
		m.mu.Unlock()
		if !known {
			info, err := m.l.Exec(ctx, node, "ctr", "-n", "k8s.io", "containers", "info", id)
			if err != nil {
				continue
			}
			var c struct{ Labels map[string]string }
			if json.Unmarshal([]byte(info), &c) != nil {
				continue
			}
			if n := c.Labels["io.kubernetes.container.name"]; benchComponents[n] && c.Labels["io.kubernetes.pod.namespace"] == "kube-system" {
				name = n
			}
			m.mu.Lock()
			m.names[id] = name
			m.mu.Unlock()
		}
		if name != "" {
			m.saw(name, node, id)
		}
	}
}

func (m *benchMonitor) saw(component, node, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := component + " on " + node
	if m.seen[k] == nil {
		m.seen[k] = map[string]bool{}
	}
	m.seen[k][id] = true
}

// stop ends the monitors and puts what they saw into run.
func (m *benchMonitor) stop(run *benchRun) {
	end := time.Now()
	run.total = end.Sub(m.start)
	close(m.quit)
	m.wg.Wait()
	// A last look: a restart in the last 2 s counts too.
	for _, n := range m.l.Nodes {
		m.sampleNode(n.Name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.downSince.IsZero() {
		m.closeWindow(end)
	}
	run.polls, run.failedPolls = m.polls, m.failedPolls
	run.unavailable, run.windows, run.longest, run.each = m.unavailable, m.windows, m.longest, m.each
	run.notReadySeconds = m.notReady
	run.restarts, run.nodes = map[string]int{}, map[string]int{}
	for k, ids := range m.seen {
		comp, _, _ := strings.Cut(k, " on ")
		run.restarts[comp] += len(ids) - 1
		run.nodes[comp]++
	}
	for _, a := range m.probes.tally(m.start, end) {
		run.probeOK += a.ok
		run.probeFailed += a.failed
	}
}

// benchTable prints the runs side by side, with each one's ratio to the
// seed and to the 300 s floor (kube-apiserver re-reads
// apiserver-kubelet-client.crt every 5 minutes).
func benchTable(shape string, runs []*benchRun) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "\n## make bench: %s lab, %s, %s, %d cores\n\n", shape, time.Now().UTC().Format("2006-01-02"), host, runtime.NumCPU())
	var seed *benchRun
	for _, r := range runs {
		if strings.HasPrefix(r.name, "seed") {
			seed = r
		}
	}
	b.WriteString("| measure |")
	for _, r := range runs {
		fmt.Fprintf(&b, " %s |", r.name)
	}
	b.WriteString("\n|---|")
	for range runs {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	row := func(what string, cell func(r *benchRun) string) {
		fmt.Fprintf(&b, "| %s |", what)
		for _, r := range runs {
			fmt.Fprintf(&b, " %s |", cell(r))
		}
		b.WriteString("\n")
	}
	row("finished, every node Ready after", func(r *benchRun) string { return map[bool]string{true: "yes", false: "**no**"}[r.done] })
	row("total time", func(r *benchRun) string {
		s := fmt.Sprintf("%.0f s", r.total.Seconds())
		if seed != nil && r != seed {
			s += fmt.Sprintf(" (%.2f× the seed)", r.total.Seconds()/seed.total.Seconds())
		}
		return s + fmt.Sprintf(", %.2f× the 300 s floor", r.total.Seconds()/300)
	})
	row("API unavailable (no /readyz OK, 100 ms polls)", func(r *benchRun) string {
		return fmt.Sprintf("%.1f s in %d window(s), longest %.1f s; %d of %d polls failed", r.unavailable.Seconds(), r.windows, r.longest.Seconds(), r.failedPolls, r.polls)
	})
	row("each window", func(r *benchRun) string {
		if len(r.each) == 0 {
			return "—"
		}
		var w []string
		for _, d := range r.each {
			w = append(w, fmt.Sprintf("%.1f s", d.Seconds()))
		}
		return strings.Join(w, ", ")
	})
	row("in-cluster probe failures", func(r *benchRun) string { return fmt.Sprintf("%d of %d", r.probeFailed, r.probeOK+r.probeFailed) })
	row("node-seconds NotReady", func(r *benchRun) string { return fmt.Sprintf("%.0f", r.notReadySeconds) })
	var comps []string
	for _, r := range runs {
		for c := range r.nodes {
			if !contains(comps, c) {
				comps = append(comps, c)
			}
		}
	}
	sort.Strings(comps)
	for _, c := range comps {
		row("restarts: "+c, func(r *benchRun) string {
			if r.nodes[c] == 0 {
				return "—"
			}
			return fmt.Sprintf("%d (%.1f per node)", r.restarts[c], float64(r.restarts[c])/float64(r.nodes[c]))
		})
	}
	row("`plan`", func(r *benchRun) string { return durationCell(r.plan) })
	row("refused second run (lock held)", func(r *benchRun) string { return durationCell(r.refused) })
	row("peak RSS", func(r *benchRun) string {
		if r.peakRSS == 0 {
			return "—"
		}
		return fmt.Sprintf("%d MiB", r.peakRSS)
	})
	row("phases", func(r *benchRun) string {
		if len(r.phases) == 0 {
			return "—"
		}
		return strings.Join(r.phases, ", ")
	})
	return b.String()
}

func durationCell(d time.Duration) string {
	if d == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// workloadBench is the workload step at many workloads, three ways on one
// lab: the seed's annotate loop, a raw parallel patch of every workload
// (the limit), and carotate's own step; each then waits for every rollout.
type workloadBench struct {
	workloads           int
	seedLoop, seedTotal time.Duration
	raw                 time.Duration
	carotate            time.Duration
	carotateDetail      string
	carotateConcurrency int
}

// benchWorkloadStep deploys n one-pod Deployments (the pause image,
// spread over every node) on a fresh lab, and times the three ways.
func benchWorkloadStep(t *testing.T, opts lab.Options, n int) *workloadBench {
	l := benchLab(t, opts)
	wb := &workloadBench{workloads: n, carotateConcurrency: 10}
	ctx := context.Background()
	c := benchClient(t, l)
	const ns = "bench-workloads"
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var g errgroup.Group
	g.SetLimit(20)
	for i := range n {
		g.Go(func() error {
			_, err := c.AppsV1().Deployments(ns).Create(ctx, benchDeployment(fmt.Sprintf("w%03d", i)), metav1.CreateOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	waitRolledOut(t, c, 30*time.Minute)
	t.Logf("%d Deployments created and available in %s", n, time.Since(created).Round(time.Second))

	// (a) The seed's loop, word for word, then a wait for every rollout.
	kubeconfig, _ := l.NodePath(l.ControlPlaneNodes()[0].Name, "/etc/kubernetes/admin.conf")
	loop := `for namespace in $(kubectl get namespace -o jsonpath='{.items[*].metadata.name}'); do
    for name in $(kubectl get deployments -n $namespace -o jsonpath='{.items[*].metadata.name}'); do
        kubectl patch deployment -n ${namespace} ${name} -p '{"spec":{"template":{"metadata":{"annotations":{"ca-rotation": "1"}}}}}';
    done
    for name in $(kubectl get daemonset -n $namespace -o jsonpath='{.items[*].metadata.name}'); do
        kubectl patch daemonset -n ${namespace} ${name} -p '{"spec":{"template":{"metadata":{"annotations":{"ca-rotation": "1"}}}}}';
    done
done`
	cmd := exec.Command("bash", "-c", loop)
	cmd.Env = []string{"PATH=" + labtest.Components() + ":" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "KUBECONFIG=" + kubeconfig}
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the seed's loop: %v\n%s", err, tail(string(out), 2000))
	}
	wb.seedLoop = time.Since(start)
	waitRolledOut(t, c, 30*time.Minute)
	wb.seedTotal = time.Since(start)

	// (b) Every Deployment and DaemonSet patched at once, then the same wait.
	start = time.Now()
	patch := []byte(fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"bench/restarted":%q}}}}}`, start.Format(time.RFC3339Nano)))
	deps, err := c.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dss, err := c.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g = errgroup.Group{}
	g.SetLimit(100)
	for _, d := range deps.Items {
		g.Go(func() error {
			_, err := c.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		})
	}
	for _, d := range dss.Items {
		g.Go(func() error {
			_, err := c.AppsV1().DaemonSets(d.Namespace).Patch(ctx, d.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, c, 30*time.Minute)
	wb.raw = time.Since(start)

	// (c) carotate's trust phase; its workload step reports its own time.
	r := newRotator(t, l)
	args := []string{"rotate", "--yes", "--until", "trust", "--output", "json"}
	if v := os.Getenv("CAROTATE_BENCH_WORKLOAD_CONCURRENCY"); v != "" {
		if _, err := fmt.Sscan(v, &wb.carotateConcurrency); err != nil {
			t.Fatalf("CAROTATE_BENCH_WORKLOAD_CONCURRENCY=%q: want a number", v)
		}
		args = append(args, "--workload-concurrency", v)
	}
	res := r.run(args...)
	if res.code != 0 {
		t.Fatalf("rotate --until trust: exit %d", res.code)
	}
	for _, line := range strings.Split(res.stdout, "\n") {
		var e struct {
			Phase, Outcome, Detail string
			Seconds                float64
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Phase != "trust" || e.Outcome != "changed" || !strings.Contains(e.Detail, " restarted, ") {
			continue
		}
		wb.carotate, wb.carotateDetail = time.Duration(e.Seconds*float64(time.Second)), e.Detail
	}
	if wb.carotate == 0 {
		t.Errorf("rotate --until trust reported no workload step")
	}
	return wb
}

// benchClient talks to the lab as its admin without client-go's default
// 5 QPS, as the raw parallel patch needs.
func benchClient(t *testing.T, l *lab.Lab) *kubernetes.Clientset {
	path, _ := l.NodePath(l.ControlPlaneNodes()[0].Name, "/etc/kubernetes/admin.conf")
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst, cfg.Timeout = 500, 1000, 30*time.Second
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func benchDeployment(name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptrTo(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			// No surge: the lab's nodes hold the workloads once, not twice.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &zero, MaxUnavailable: &one}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					TerminationGracePeriodSeconds: ptrTo(int64(1)),
					Containers: []corev1.Container{{
						Name: "pause", Image: "registry.k8s.io/pause:3.10.2", ImagePullPolicy: corev1.PullNever,
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1m")}},
					}},
				},
			},
		},
	}
}

func ptrTo[T any](v T) *T { return &v }

// waitRolledOut waits until every Deployment and DaemonSet has rolled out:
// its controller saw the newest spec, and every pod is updated and
// available with no old one left.
func waitRolledOut(t *testing.T, c *kubernetes.Clientset, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, "every rollout", timeout, func() (bool, error) {
		deps, err := c.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, d := range deps.Items {
			want := ptrValue(d.Spec.Replicas, 1)
			s := d.Status
			if s.ObservedGeneration < d.Generation || s.UpdatedReplicas != want || s.AvailableReplicas != want || s.Replicas != want {
				return false, fmt.Errorf("deployment %s/%s: %d of %d updated, %d available", d.Namespace, d.Name, s.UpdatedReplicas, want, s.AvailableReplicas)
			}
		}
		dss, err := c.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, d := range dss.Items {
			s := d.Status
			if s.ObservedGeneration < d.Generation || s.UpdatedNumberScheduled != s.DesiredNumberScheduled || s.NumberAvailable != s.DesiredNumberScheduled {
				return false, fmt.Errorf("daemonset %s/%s: %d of %d updated, %d available", d.Namespace, d.Name, s.UpdatedNumberScheduled, s.DesiredNumberScheduled, s.NumberAvailable)
			}
		}
		return true, nil
	})
}

func ptrValue[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func (wb *workloadBench) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### The workload step at %d one-pod Deployments (plus the lab's own workloads)\n\n", wb.workloads)
	b.WriteString("| way | until every rollout is done | vs the raw parallel limit |\n|---|---|---|\n")
	ratio := func(d time.Duration) string { return fmt.Sprintf("%.2f×", d.Seconds()/wb.raw.Seconds()) }
	fmt.Fprintf(&b, "| the seed's loop (kubectl patch one by one, %.0f s), then the wait | %.0f s | %s |\n", wb.seedLoop.Seconds(), wb.seedTotal.Seconds(), ratio(wb.seedTotal))
	fmt.Fprintf(&b, "| every workload patched at once, then the wait (the limit) | %.0f s | 1.00× |\n", wb.raw.Seconds())
	fmt.Fprintf(&b, "| carotate's trust workload step (`--workload-concurrency` %d): %s | %.0f s | %s |\n", wb.carotateConcurrency, wb.carotateDetail, wb.carotate.Seconds(), ratio(wb.carotate))
	return b.String()
}
