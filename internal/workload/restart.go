package workload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// Defaults for Options left zero.
const (
	DefaultRolloutTimeout = 5 * time.Minute
	DefaultEvictTimeout   = 5 * time.Minute
	// DefaultConcurrency is how many workloads of a tier restart at once.
	DefaultConcurrency = 10
)

const (
	// maxAnnotationLen bounds Options.Annotation: the value is an id, and a
	// longer one is refused so that no bundle or key ends up in an
	// annotation by mistake.
	maxAnnotationLen = 128
	// evictBackoffCap is the longest pause between two eviction attempts a
	// PodDisruptionBudget refused.
	evictBackoffCap = 10 * time.Second
	// fieldManager names carotate in managedFields.
	fieldManager = "carotate"
)

// Errors Apply wraps, for errors.Is.
var (
	// ErrRolloutFailed: a rollout reported it cannot complete (a Deployment
	// past its progress deadline).
	ErrRolloutFailed = errors.New("rollout failed")
	// ErrEvictionRefused: PodDisruptionBudgets refused an eviction for the
	// whole of Options.EvictTimeout.
	ErrEvictionRefused = errors.New("eviction refused")
)

// Options say what a restart writes, which pods count and how long to wait.
type Options struct {
	// Annotation is the value written to RestartedAtAnnotation, an id such
	// as "<rotation-id>/trust". A workload whose template already carries
	// it is not restarted again. At most 128 bytes, one line; never a
	// secret.
	Annotation string
	// Since returns when the new bundle reached a namespace (see
	// RootCAUpdateTimes); pods that started earlier are restarted. A zero
	// time restarts nothing in that namespace.
	Since func(namespace string) time.Time
	// StartedAfter, when set, counts only pods that started after it: a
	// rollback from a partly run finalize restarts the pods that may have
	// read a new-only kube-root-ca.crt, and no others.
	StartedAfter time.Time
	// Pods, when set, are the only pods that count, by UID, whatever
	// Since and StartedAfter say: finalize restarts the pods whose
	// service-account tokens the old key signed. Reason says why, for the
	// plan.
	Pods   map[types.UID]bool
	Reason string
	// RolloutTimeout bounds the wait for each rollout and for each evicted
	// pod to be gone; DefaultRolloutTimeout when zero.
	RolloutTimeout time.Duration
	// EvictTimeout bounds the retries of an eviction that
	// PodDisruptionBudgets refuse; DefaultEvictTimeout when zero.
	EvictTimeout time.Duration
	// Concurrency bounds how many workloads of one tier restart, and how
	// many bare pods are evicted, at once; DefaultConcurrency when zero.
	Concurrency int
	// Progress receives one line per thing done, e.g.
	// "DaemonSet kube-system/kube-proxy: rolled out (3.2s)", from one
	// goroutine at a time; nil discards.
	Progress func(msg string)

	// pollInterval is how often a rollout or a pod's removal is checked,
	// and the first pause after a refused eviction; one second when zero.
	pollInterval time.Duration
}

func (o Options) validate() error {
	switch {
	case o.Annotation == "":
		return errors.New("workload options: the restart annotation value is empty: pass an id such as \"<rotation-id>/trust\"")
	case len(o.Annotation) > maxAnnotationLen || strings.ContainsAny(o.Annotation, "\r\n"):
		return fmt.Errorf("workload options: the restart annotation value must be one line of at most %d bytes: pass an id such as \"<rotation-id>/trust\"", maxAnnotationLen)
	case o.Since == nil && o.Pods == nil:
		return errors.New("workload options: Since is nil: build it from RootCAUpdateTimes")
	case o.Concurrency < 0:
		return fmt.Errorf("workload options: the concurrency must be at least 1 (or 0 for %d), got %d", DefaultConcurrency, o.Concurrency)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.RolloutTimeout <= 0 {
		o.RolloutTimeout = DefaultRolloutTimeout
	}
	if o.EvictTimeout <= 0 {
		o.EvictTimeout = DefaultEvictTimeout
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.pollInterval <= 0 {
		o.pollInterval = time.Second
	}
	if p := o.Progress; p != nil {
		var mu sync.Mutex
		o.Progress = func(msg string) {
			mu.Lock()
			defer mu.Unlock()
			p(msg)
		}
	}
	return o
}

func (o Options) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(fmt.Sprintf(format, args...))
	}
}

// Result is what Apply did.
type Result struct {
	Restarted   int
	Evicted     int
	AlreadyDone int
	// Workloads are those restarted or evicted, in the plan's order.
	Workloads []Workload
	// Skipped are the plan's Skip: owners of stale pods left alone.
	Skipped []Workload
}

// Gather lists every pod, ReplicaSet, Deployment, DaemonSet and
// StatefulSet.
func Gather(ctx context.Context, cs kubernetes.Interface) (Facts, error) {
	var f Facts
	all := metav1.ListOptions{}
	pods, err := cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, all)
	if err != nil {
		return Facts{}, fmt.Errorf("list pods: %w", err)
	}
	f.Pods = pods.Items
	rss, err := cs.AppsV1().ReplicaSets(metav1.NamespaceAll).List(ctx, all)
	if err != nil {
		return Facts{}, fmt.Errorf("list replicasets: %w", err)
	}
	f.ReplicaSets = rss.Items
	ds, err := cs.AppsV1().Deployments(metav1.NamespaceAll).List(ctx, all)
	if err != nil {
		return Facts{}, fmt.Errorf("list deployments: %w", err)
	}
	f.Deployments = ds.Items
	dss, err := cs.AppsV1().DaemonSets(metav1.NamespaceAll).List(ctx, all)
	if err != nil {
		return Facts{}, fmt.Errorf("list daemonsets: %w", err)
	}
	f.DaemonSets = dss.Items
	sts, err := cs.AppsV1().StatefulSets(metav1.NamespaceAll).List(ctx, all)
	if err != nil {
		return Facts{}, fmt.Errorf("list statefulsets: %w", err)
	}
	f.StatefulSets = sts.Items
	return f, nil
}

// PlanRestarts gathers the cluster and decides: what Restart would do.
func PlanRestarts(ctx context.Context, cs kubernetes.Interface, opts Options) (Plan, error) {
	if err := opts.validate(); err != nil {
		return Plan{}, err
	}
	f, err := Gather(ctx, cs)
	if err != nil {
		return Plan{}, fmt.Errorf("plan workload restarts: %w", err)
	}
	return Decide(f, opts), nil
}

// Restart restarts the workloads whose pods hold an old trust bundle:
// PlanRestarts, then Apply. Running it again after it finished, or after a
// crash, patches nothing already patched.
func Restart(ctx context.Context, cs kubernetes.Interface, opts Options) (Result, error) {
	plan, err := PlanRestarts(ctx, cs, opts)
	if err != nil {
		return Result{}, err
	}
	return Apply(ctx, cs, plan, opts)
}

// Apply carries out plan, tier by tier, up to Options.Concurrency
// workloads at once within a tier:
//
//  1. wait for the rollout of every workload in AlreadyDone (a previous run
//     patched it and may have stopped before its rollout completed);
//  2. for each tier of Restart (kube-proxy and CNI, then CoreDNS, then the
//     rest): set RestartedAtAnnotation on each workload's pod template with
//     a strategic-merge patch, as kubectl rollout restart does, and wait
//     until its rollout completes; the next tier starts when the whole tier
//     has rolled out. Each controller's own maxUnavailable and maxSurge
//     bound how many of a workload's pods are down at once;
//  3. evict the bare pods in Evict through the Eviction API, side by side,
//     each retried while a PodDisruptionBudget refuses, and wait until each
//     is gone. A pod already gone, or replaced by a newer one of the same
//     name, is left alone.
//
// Rollouts are seen through one watch per kind for the whole cluster, not
// by polling each workload. After the first failure Apply starts nothing
// new, lets what it started finish, and returns every failure.
func Apply(ctx context.Context, cs kubernetes.Interface, plan Plan, opts Options) (Result, error) {
	if err := opts.validate(); err != nil {
		return Result{}, err
	}
	a := &applier{cs: cs, opts: opts.withDefaults()}
	res := Result{Skipped: plan.Skip}
	if len(plan.AlreadyDone)+len(plan.Restart) > 0 {
		w, stop := watchRollouts(ctx, cs, kindsOf(plan.AlreadyDone, plan.Restart))
		defer stop()
		a.watch = w
	}

	done, err := a.each(ctx, plan.AlreadyDone, func(ctx context.Context, w Workload) (bool, error) {
		start := time.Now()
		if err := a.waitRollout(ctx, w, 0); err != nil {
			return false, err
		}
		a.opts.progress("%s: already restarted, rolled out (%s)", w, elapsed(start))
		return true, nil
	})
	res.AlreadyDone = count(done)
	if err != nil {
		return res, err
	}

	for _, tier := range tiers(plan.Restart) {
		if len(tier) > 1 {
			a.opts.progress("%s: restarting %d workloads, up to %d at once", tierName(tier[0].Tier), len(tier), a.opts.Concurrency)
		}
		restarted, err := a.each(ctx, tier, a.restartAndWait)
		res.add(tier, restarted)
		res.Restarted += count(restarted)
		if err != nil {
			return res, err
		}
	}

	evicted, err := a.each(ctx, plan.Evict, a.evict)
	res.add(plan.Evict, evicted)
	res.Evicted = count(evicted)
	return res, err
}

// restartAndWait patches w and waits for its rollout; false when w no
// longer exists.
func (a *applier) restartAndWait(ctx context.Context, w Workload) (bool, error) {
	start := time.Now()
	a.opts.progress("%s: restarting (%d stale %s)", w, w.Pods, plural(w.Pods, "pod", "pods"))
	generation, restarted, err := a.restart(ctx, w)
	if err != nil {
		return false, err
	}
	if !restarted {
		a.opts.progress("%s: gone, nothing to restart", w)
		return false, nil
	}
	if err := a.waitRollout(ctx, w, generation); err != nil {
		return false, err
	}
	a.opts.progress("%s: rolled out (%s)", w, elapsed(start))
	return true, nil
}

// add appends to r.Workloads those of ws that ok says were done, in the
// order of ws.
func (r *Result) add(ws []Workload, ok []bool) {
	for i, w := range ws {
		if ok[i] {
			r.Workloads = append(r.Workloads, w)
		}
	}
}

// each calls do for every workload of ws, in their order, up to
// Concurrency at once. After the first failure it starts no more, waits
// for those running, and returns every failure, in the order of ws. ok[i]
// is what do returned for ws[i].
func (a *applier) each(ctx context.Context, ws []Workload, do func(context.Context, Workload) (bool, error)) (ok []bool, err error) {
	ok = make([]bool, len(ws))
	errs := make([]error, len(ws))
	var failed atomic.Bool
	var running sync.WaitGroup
	slots := make(chan struct{}, a.opts.Concurrency)
	for i, w := range ws {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil || failed.Load() {
			break
		}
		running.Go(func() {
			defer func() { <-slots }()
			ok[i], errs[i] = do(ctx, w)
			if errs[i] != nil {
				failed.Store(true)
			}
		})
	}
	running.Wait()
	if err := errors.Join(errs...); err != nil {
		return ok, err
	}
	if count(ok) < len(ws) && ctx.Err() != nil {
		return ok, context.Cause(ctx)
	}
	return ok, nil
}

func count(ok []bool) int {
	n := 0
	for _, b := range ok {
		if b {
			n++
		}
	}
	return n
}

// tiers splits ws, sorted by tier as Decide sorts them, into one slice per
// tier.
func tiers(ws []Workload) [][]Workload {
	var out [][]Workload
	for i := 0; i < len(ws); {
		j := i + 1
		for j < len(ws) && ws[j].Tier == ws[i].Tier {
			j++
		}
		out = append(out, ws[i:j])
		i = j
	}
	return out
}

func tierName(tier int) string {
	switch tier {
	case TierNetwork:
		return "kube-proxy and CNI"
	case TierDNS:
		return "cluster DNS"
	}
	return "workloads"
}

type applier struct {
	cs    kubernetes.Interface
	opts  Options
	watch *rolloutWatch
}

// restartPatch sets RestartedAtAnnotation on a pod template and nothing
// else.
func restartPatch(value string) []byte {
	patch := map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{RestartedAtAnnotation: value},
	}}}}
	data, err := json.Marshal(patch)
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	return data
}

// restart patches w's pod template and returns the generation the patch
// made; false when w no longer exists.
func (a *applier) restart(ctx context.Context, w Workload) (int64, bool, error) {
	data := restartPatch(a.opts.Annotation)
	po := metav1.PatchOptions{FieldManager: fieldManager}
	var obj metav1.Object
	var err error
	switch w.Kind {
	case kindDeployment:
		obj, err = a.cs.AppsV1().Deployments(w.Namespace).Patch(ctx, w.Name, types.StrategicMergePatchType, data, po)
	case kindDaemonSet:
		obj, err = a.cs.AppsV1().DaemonSets(w.Namespace).Patch(ctx, w.Name, types.StrategicMergePatchType, data, po)
	case kindStatefulSet:
		obj, err = a.cs.AppsV1().StatefulSets(w.Namespace).Patch(ctx, w.Name, types.StrategicMergePatchType, data, po)
	default:
		return 0, false, fmt.Errorf("restart %s: carotate restarts Deployments, DaemonSets and StatefulSets only", w)
	}
	switch {
	case apierrors.IsNotFound(err):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("restart %s: patch its pod template: %w", w, err)
	}
	return obj.GetGeneration(), true, nil
}

// waitRollout waits until w's rollout completes, fails or RolloutTimeout
// passes, judging w only once the watch has delivered generation (the one
// the restart's patch made) or a later one. A workload deleted meanwhile
// has nothing left to roll out. The watch relists by itself when the API
// blinks, as it may while kube-proxy and the CNI plugin restart.
func (a *applier) waitRollout(ctx context.Context, w Workload, generation int64) error {
	ctx, cancel := context.WithTimeout(ctx, a.opts.RolloutTimeout)
	defer cancel()
	last := waiting("not yet listed")
	timedOut := func() error {
		state := last.waiting
		if err := a.watch.lastError(); err != nil && !last.seen {
			state += "; last watch error: " + err.Error()
		}
		return fmt.Errorf("%s: rollout not complete after %s (%s): check its pods (kubectl -n %s rollout status %s/%s); "+
			"its template carries %s=%s, so a rerun waits for this rollout instead of restarting it again: %w",
			w, a.opts.RolloutTimeout, state, w.Namespace, strings.ToLower(w.Kind), w.Name,
			RestartedAtAnnotation, a.opts.Annotation, context.Cause(ctx))
	}
	inf, err := a.watch.informer(w.Kind)
	if err != nil {
		return fmt.Errorf("%s: %w", w, err)
	}
	select {
	case <-inf.HasSyncedChecker().Done():
	case <-ctx.Done():
		return timedOut()
	}
	for {
		changed := a.watch.next()
		obj, exists, err := inf.GetStore().GetByKey(w.Namespace + "/" + w.Name)
		switch {
		case err != nil:
			return fmt.Errorf("%s: %w", w, err)
		case !exists:
			return nil
		}
		if r, gen := judge(obj); gen < generation {
			last = waiting("the watch has not yet delivered generation %d", generation)
			last.seen = true
		} else {
			last = r
			if r.failed != "" {
				return fmt.Errorf("%s: %s; fix its pods (kubectl -n %s rollout status %s/%s) and rerun: %w",
					w, r.failed, w.Namespace, strings.ToLower(w.Kind), w.Name, ErrRolloutFailed)
			}
			if r.done {
				return nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return timedOut()
		}
	}
}

// evict evicts the bare pod w and waits until it is gone; false when there
// was nothing to evict.
func (a *applier) evict(ctx context.Context, w Workload) (bool, error) {
	start := time.Now()
	pods := a.cs.CoreV1().Pods(w.Namespace)
	pod, err := pods.Get(ctx, w.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		a.opts.progress("%s: already gone", w)
		return false, nil
	case err != nil:
		return false, fmt.Errorf("evict %s: %w", w, err)
	case !needsRestart(pod, sinceOf(a.opts, w.Namespace), a.opts.StartedAfter):
		a.opts.progress("%s: replaced or terminating since the plan, left alone", w)
		return false, nil
	}

	// The UID precondition makes sure the pod evicted is the one decided
	// on, not a newer one that took its name.
	eviction := &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}},
	}
	backoff := wait.Backoff{Duration: a.opts.pollInterval, Factor: 2, Jitter: 0.1, Steps: math.MaxInt32, Cap: evictBackoffCap}
	evictCtx, cancel := context.WithTimeout(ctx, a.opts.EvictTimeout)
	defer cancel()
	var refused error
	gone := false
	err = wait.ExponentialBackoffWithContext(evictCtx, backoff, func(ctx context.Context) (bool, error) {
		err := pods.EvictV1(ctx, eviction)
		switch {
		case err == nil:
			return true, nil
		case apierrors.IsTooManyRequests(err):
			if refused == nil {
				a.opts.progress("%s: eviction refused (%v), retrying for up to %s", w, err, a.opts.EvictTimeout)
			}
			refused = err
			return false, nil
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
			gone = true // deleted, or replaced: the UID no longer matches
			return true, nil
		}
		return false, err
	})
	switch {
	case err != nil && refused != nil && evictCtx.Err() != nil && ctx.Err() == nil:
		return false, fmt.Errorf("evict %s: refused for %s (%v); check the PodDisruptionBudgets of namespace %s "+
			"(kubectl -n %s get poddisruptionbudgets), delete the pod yourself once it can be interrupted, and rerun: %w",
			w, a.opts.EvictTimeout, refused, w.Namespace, w.Namespace, ErrEvictionRefused)
	case err != nil:
		return false, fmt.Errorf("evict %s: %w", w, err)
	case gone:
		a.opts.progress("%s: already gone", w)
		return false, nil
	}

	err = wait.PollUntilContextTimeout(ctx, a.opts.pollInterval, a.opts.RolloutTimeout, true, func(ctx context.Context) (bool, error) {
		p, err := pods.Get(ctx, w.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return true, nil
		case err != nil:
			return false, nil
		}
		return p.UID != pod.UID, nil
	})
	if err != nil {
		return false, fmt.Errorf("evict %s: evicted but still there after %s: check why it does not terminate "+
			"(kubectl -n %s describe pod %s) and rerun: %w", w, a.opts.RolloutTimeout, w.Namespace, w.Name, err)
	}
	a.opts.progress("%s: evicted (%s)", w, elapsed(start))
	return true, nil
}

func elapsed(start time.Time) time.Duration {
	return time.Since(start).Round(100 * time.Millisecond)
}
