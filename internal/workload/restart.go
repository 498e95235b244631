package workload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
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
	// Progress receives one line per thing done, e.g.
	// "DaemonSet kube-system/kube-proxy: rolled out (3.2s)"; nil discards.
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
	if o.pollInterval <= 0 {
		o.pollInterval = time.Second
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
	// Workloads are those restarted or evicted, in the order it happened.
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

// Apply carries out plan, one workload at a time, and stops at the first
// failure:
//
//  1. wait for the rollout of every workload in AlreadyDone (a previous run
//     patched it and may have stopped before its rollout completed);
//  2. for each workload in Restart, in order (kube-proxy and CNI, then
//     CoreDNS, then the rest): set RestartedAtAnnotation on its pod
//     template with a strategic-merge patch, as kubectl rollout restart
//     does, and wait until its rollout completes;
//  3. for each bare pod in Evict: evict it through the Eviction API,
//     retrying while a PodDisruptionBudget refuses, and wait until it is
//     gone. A pod already gone, or replaced by a newer one of the same name,
//     is left alone.
func Apply(ctx context.Context, cs kubernetes.Interface, plan Plan, opts Options) (Result, error) {
	if err := opts.validate(); err != nil {
		return Result{}, err
	}
	a := applier{cs: cs, opts: opts.withDefaults()}
	res := Result{Skipped: plan.Skip}
	for _, w := range plan.AlreadyDone {
		start := time.Now()
		if err := a.waitRollout(ctx, w); err != nil {
			return res, err
		}
		res.AlreadyDone++
		a.opts.progress("%s: already restarted, rolled out (%s)", w, elapsed(start))
	}
	for _, w := range plan.Restart {
		start := time.Now()
		a.opts.progress("%s: restarting (%d stale %s)", w, w.Pods, plural(w.Pods, "pod", "pods"))
		restarted, err := a.restart(ctx, w)
		if err != nil {
			return res, err
		}
		if !restarted {
			a.opts.progress("%s: gone, nothing to restart", w)
			continue
		}
		if err := a.waitRollout(ctx, w); err != nil {
			return res, err
		}
		res.Restarted++
		res.Workloads = append(res.Workloads, w)
		a.opts.progress("%s: rolled out (%s)", w, elapsed(start))
	}
	for _, w := range plan.Evict {
		start := time.Now()
		evicted, err := a.evict(ctx, w)
		if err != nil {
			return res, err
		}
		if evicted {
			res.Evicted++
			res.Workloads = append(res.Workloads, w)
			a.opts.progress("%s: evicted (%s)", w, elapsed(start))
		}
	}
	return res, nil
}

type applier struct {
	cs   kubernetes.Interface
	opts Options
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

// restart patches w's pod template; false when w no longer exists.
func (a applier) restart(ctx context.Context, w Workload) (bool, error) {
	data := restartPatch(a.opts.Annotation)
	po := metav1.PatchOptions{FieldManager: fieldManager}
	var err error
	switch w.Kind {
	case kindDeployment:
		_, err = a.cs.AppsV1().Deployments(w.Namespace).Patch(ctx, w.Name, types.StrategicMergePatchType, data, po)
	case kindDaemonSet:
		_, err = a.cs.AppsV1().DaemonSets(w.Namespace).Patch(ctx, w.Name, types.StrategicMergePatchType, data, po)
	case kindStatefulSet:
		_, err = a.cs.AppsV1().StatefulSets(w.Namespace).Patch(ctx, w.Name, types.StrategicMergePatchType, data, po)
	default:
		return false, fmt.Errorf("restart %s: carotate restarts Deployments, DaemonSets and StatefulSets only", w)
	}
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("restart %s: patch its pod template: %w", w, err)
	}
	return true, nil
}

// rolloutOf reads w and judges its rollout.
func (a applier) rolloutOf(ctx context.Context, w Workload) (rollout, error) {
	get := metav1.GetOptions{}
	switch w.Kind {
	case kindDeployment:
		d, err := a.cs.AppsV1().Deployments(w.Namespace).Get(ctx, w.Name, get)
		if err != nil {
			return rollout{}, err
		}
		return deploymentRollout(d), nil
	case kindDaemonSet:
		ds, err := a.cs.AppsV1().DaemonSets(w.Namespace).Get(ctx, w.Name, get)
		if err != nil {
			return rollout{}, err
		}
		return daemonSetRollout(ds), nil
	case kindStatefulSet:
		sts, err := a.cs.AppsV1().StatefulSets(w.Namespace).Get(ctx, w.Name, get)
		if err != nil {
			return rollout{}, err
		}
		return statefulSetRollout(sts), nil
	}
	return rollout{}, fmt.Errorf("carotate cannot judge the rollout of a %s", w.Kind)
}

// waitRollout polls w until its rollout completes, fails or
// RolloutTimeout passes. A workload deleted meanwhile has nothing left to
// roll out. Errors reading it are retried until the timeout, since the API
// may blink while kube-proxy and the CNI plugin restart.
func (a applier) waitRollout(ctx context.Context, w Workload) error {
	var last rollout
	var lastErr error
	err := wait.PollUntilContextTimeout(ctx, a.opts.pollInterval, a.opts.RolloutTimeout, true, func(ctx context.Context) (bool, error) {
		r, err := a.rolloutOf(ctx, w)
		switch {
		case apierrors.IsNotFound(err):
			return true, nil
		case err != nil:
			lastErr = err
			return false, nil
		}
		last, lastErr = r, nil
		if r.failed != "" {
			return false, ErrRolloutFailed
		}
		return r.done, nil
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrRolloutFailed):
		return fmt.Errorf("%s: %s; fix its pods (kubectl -n %s rollout status %s/%s) and rerun: %w",
			w, last.failed, w.Namespace, strings.ToLower(w.Kind), w.Name, err)
	}
	state := last.waiting
	if lastErr != nil {
		state = "last read failed: " + lastErr.Error()
	}
	return fmt.Errorf("%s: rollout not complete after %s (%s): check its pods (kubectl -n %s rollout status %s/%s); "+
		"its template carries %s=%s, so a rerun waits for this rollout instead of restarting it again: %w",
		w, a.opts.RolloutTimeout, state, w.Namespace, strings.ToLower(w.Kind), w.Name,
		RestartedAtAnnotation, a.opts.Annotation, err)
}

// evict evicts the bare pod w and waits until it is gone; false when there
// was nothing to evict.
func (a applier) evict(ctx context.Context, w Workload) (bool, error) {
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
	return true, nil
}

func elapsed(start time.Time) time.Duration {
	return time.Since(start).Round(100 * time.Millisecond)
}
