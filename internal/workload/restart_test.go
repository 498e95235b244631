package workload

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fastOptions are testOptions that poll every millisecond.
func fastOptions() Options {
	o := testOptions()
	o.pollInterval = time.Millisecond
	o.RolloutTimeout = 2 * time.Second
	o.EvictTimeout = 2 * time.Second
	return o
}

// call is one write carotate made through the API.
type call struct {
	Verb, Resource, Namespace, Name, Body string
}

// writes are the patches and evictions cs received, in order.
func writes(cs *fake.Clientset) []call {
	var out []call
	for _, a := range cs.Actions() {
		switch a := a.(type) {
		case k8stesting.PatchAction:
			out = append(out, call{"patch", a.GetResource().Resource, a.GetNamespace(), a.GetName(), string(a.GetPatch())})
		case k8stesting.CreateAction:
			if a.GetSubresource() != "eviction" {
				continue
			}
			ev := a.GetObject().(*policyv1.Eviction)
			body := ""
			if p := ev.DeleteOptions.Preconditions; p != nil && p.UID != nil {
				body = "uid=" + string(*p.UID)
			}
			out = append(out, call{"evict", "pods", ev.Namespace, ev.Name, body})
		case k8stesting.UpdateAction, k8stesting.DeleteAction:
			out = append(out, call{a.GetVerb(), a.GetResource().Resource, a.GetNamespace(), "", ""})
		}
	}
	return out
}

var podsResource = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// evictions makes cs answer evictions: refuse the first refusals of them
// with 429, as a PodDisruptionBudget would, then remove the pod itself,
// standing in for what the API server and kubelet do after an eviction.
func evictions(cs *fake.Clientset, refusals int) {
	var mu sync.Mutex
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		mu.Lock()
		defer mu.Unlock()
		if refusals != 0 {
			refusals--
			return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		return true, nil, cs.Tracker().Delete(podsResource, ev.Namespace, ev.Name)
	})
}

func objects[T any](items ...T) []runtime.Object {
	var out []runtime.Object
	for i := range items {
		if o, ok := any(&items[i]).(runtime.Object); ok {
			out = append(out, o)
		}
	}
	return out
}

// smallCluster has a stale pod under kube-proxy, calico, CoreDNS, an app
// Deployment and a StatefulSet, a Job's pod and a bare pod; every rollout
// is complete.
func smallCluster() []runtime.Object {
	var objs []runtime.Object
	objs = append(objs, objects(
		daemonSet("kube-system", "kube-proxy", dsLabel("k8s-app", "kube-proxy")),
		daemonSet("calico-system", "calico-node"),
	)...)
	objs = append(objs, objects(
		deployment("kube-system", "coredns", deployLabel("k8s-app", "kube-dns")),
		deployment("shop", "web"),
	)...)
	objs = append(objs, objects(
		replicaSet("kube-system", "coredns-5d78", controllerRef("apps/v1", "Deployment", "coredns")),
		replicaSet("shop", "web-7c8d", controllerRef("apps/v1", "Deployment", "web")),
	)...)
	objs = append(objs, objects(statefulSet("shop", "db"))...)
	objs = append(objs, objects(
		pod("kube-system", "kube-proxy-aaaaa", ownedBy("apps/v1", "DaemonSet", "kube-proxy")),
		pod("calico-system", "calico-node-aaaaa", ownedBy("apps/v1", "DaemonSet", "calico-node")),
		pod("kube-system", "coredns-5d78-aaaaa", ownedBy("apps/v1", "ReplicaSet", "coredns-5d78")),
		pod("shop", "web-7c8d-aaaaa", ownedBy("apps/v1", "ReplicaSet", "web-7c8d")),
		pod("shop", "db-0", ownedBy("apps/v1", "StatefulSet", "db")),
		pod("batch", "nightly-aaaaa", ownedBy("batch/v1", "Job", "nightly")),
		pod("shop", "debug"),
		pod("kube-system", "kube-apiserver-cp-1", mirrorPod),
	)...)
	return objs
}

const wantPatch = `{"spec":{"template":{"metadata":{"annotations":{"carotate.io/restarted-at":"rot-1/trust"}}}}}`

func TestRestartThenRerun(t *testing.T) {
	cs := fake.NewClientset(smallCluster()...)
	evictions(cs, 0)
	var progress []string
	opts := fastOptions()
	opts.Concurrency = 1 // one at a time, so that the order of the writes is known
	opts.Progress = func(msg string) { progress = append(progress, msg) }
	ctx := context.Background()

	got, err := Restart(ctx, cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	wantCalls := []call{
		{"patch", "daemonsets", "calico-system", "calico-node", wantPatch},
		{"patch", "daemonsets", "kube-system", "kube-proxy", wantPatch},
		{"patch", "deployments", "kube-system", "coredns", wantPatch},
		{"patch", "deployments", "shop", "web", wantPatch},
		{"patch", "statefulsets", "shop", "db", wantPatch},
		{"evict", "pods", "shop", "debug", "uid=shop-debug"},
	}
	if diff := cmp.Diff(wantCalls, writes(cs)); diff != "" {
		t.Errorf("first run writes (-want +got):\n%s", diff)
	}
	want := Result{
		Restarted: 5,
		Evicted:   1,
		Workloads: []Workload{
			wl("DaemonSet", "calico-system", "calico-node", 1),
			wl("DaemonSet", "kube-system", "kube-proxy", 1),
			wl("Deployment", "kube-system", "coredns", 1),
			wl("Deployment", "shop", "web", 1),
			wl("StatefulSet", "shop", "db", 1),
			wl("Pod", "shop", "debug", 1),
		},
		Skipped: []Workload{wl("Job", "batch", "nightly", 1)},
	}
	if diff := cmp.Diff(want, got, ignoreReason); diff != "" {
		t.Errorf("first run result (-want +got):\n%s", diff)
	}
	ds, err := cs.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := ds.Spec.Template.Annotations[RestartedAtAnnotation]; v != "rot-1/trust" {
		t.Errorf("kube-proxy template annotation = %q, want %q", v, "rot-1/trust")
	}
	if len(progress) < 2 || progress[0] != "kube-proxy and CNI: restarting 2 workloads, up to 1 at once" ||
		progress[1] != "DaemonSet calico-system/calico-node: restarting (1 stale pod)" {
		t.Errorf("progress starts %q", progress)
	}

	// The fake recreates no pod, so the stale pods are still there: the
	// rerun must recognise every workload by its annotation alone.
	cs.ClearActions()
	got, err = Restart(ctx, cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]call(nil), writes(cs)); diff != "" {
		t.Errorf("rerun writes (-want +got):\n%s", diff)
	}
	want = Result{AlreadyDone: 5, Skipped: []Workload{wl("Job", "batch", "nightly", 1)}}
	if diff := cmp.Diff(want, got, ignoreReason); diff != "" {
		t.Errorf("rerun result (-want +got):\n%s", diff)
	}
}

// TestPlanTiers: the plan says each workload's tier, which Apply restarts
// tier by tier.
func TestPlanTiers(t *testing.T) {
	plan, err := PlanRestarts(context.Background(), fake.NewClientset(smallCluster()...), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, w := range plan.Restart {
		got[w.String()] = w.Tier
	}
	want := map[string]int{
		"DaemonSet calico-system/calico-node": TierNetwork,
		"DaemonSet kube-system/kube-proxy":    TierNetwork,
		"Deployment kube-system/coredns":      TierDNS,
		"Deployment shop/web":                 TierRest,
		"StatefulSet shop/db":                 TierRest,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tiers (-want +got):\n%s", diff)
	}
}

func TestApplyWaitsForTheRollout(t *testing.T) {
	ds := daemonSet("kube-system", "kube-proxy", func(ds *appsv1.DaemonSet) {
		ds.Generation, ds.Status.ObservedGeneration = 2, 1
	})
	cs := fake.NewClientset(&ds)
	caughtUp := make(chan time.Time, 1)
	cs.PrependReactor("patch", "daemonsets", func(k8stesting.Action) (bool, runtime.Object, error) {
		// The test plays the daemonset controller, catching up a little
		// after the patch.
		go func() {
			time.Sleep(50 * time.Millisecond)
			observe(t, cs, daemonSetsResource, "kube-system", "kube-proxy", 2)
			caughtUp <- time.Now()
		}()
		return false, nil, nil
	})
	plan := Plan{Restart: []Workload{wl("DaemonSet", "kube-system", "kube-proxy", 1)}}

	got, err := Apply(context.Background(), cs, plan, fastOptions())
	returned := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if got.Restarted != 1 {
		t.Errorf("Restarted = %d, want 1", got.Restarted)
	}
	select {
	case at := <-caughtUp:
		if returned.Before(at) {
			t.Errorf("Apply returned %s before the controller caught up", at.Sub(returned))
		}
	default:
		t.Error("Apply returned before the controller caught up")
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() == "get" {
			t.Errorf("Apply polled: %s %s; it should watch", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

var (
	daemonSetsResource  = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}
	deploymentsResource = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

// observe plays a controller that has seen generation: it sets the
// object's status.observedGeneration.
func observe(t *testing.T, cs *fake.Clientset, gvr schema.GroupVersionResource, ns, name string, generation int64) {
	obj, err := cs.Tracker().Get(gvr, ns, name)
	if err != nil {
		t.Error(err)
		return
	}
	switch o := obj.(type) {
	case *appsv1.DaemonSet:
		o.Status.ObservedGeneration = generation
	case *appsv1.Deployment:
		o.Status.ObservedGeneration = generation
	}
	if err := cs.Tracker().Update(gvr, obj, ns); err != nil {
		t.Error(err)
	}
}

// pendingGeneration: the controller has not seen the spec yet, so the
// rollout is complete only once the test says so (observe).
func pendingDeployment(d *appsv1.Deployment) { d.Generation, d.Status.ObservedGeneration = 2, 1 }
func pendingDaemonSet(d *appsv1.DaemonSet)   { d.Generation, d.Status.ObservedGeneration = 2, 1 }

// TestApplyTierByTierSideBySide: within a tier the workloads restart side
// by side, never more than Concurrency at once, and a tier starts only
// once every rollout of the one before is complete.
func TestApplyTierByTierSideBySide(t *testing.T) {
	const apps, concurrency = 13, 4
	objs := objects(
		daemonSet("kube-system", "kube-proxy", dsLabel("k8s-app", "kube-proxy"), pendingDaemonSet),
		daemonSet("calico-system", "calico-node", pendingDaemonSet),
	)
	objs = append(objs, objects(deployment("kube-system", "coredns", deployLabel("k8s-app", "kube-dns"), pendingDeployment))...)
	plan := Plan{Restart: []Workload{
		{Kind: "DaemonSet", Namespace: "calico-system", Name: "calico-node", Tier: TierNetwork},
		{Kind: "DaemonSet", Namespace: "kube-system", Name: "kube-proxy", Tier: TierNetwork},
		{Kind: "Deployment", Namespace: "kube-system", Name: "coredns", Tier: TierDNS},
	}}
	for i := range apps {
		name := fmt.Sprintf("app-%02d", i)
		objs = append(objs, objects(deployment("shop", name, pendingDeployment))...)
		plan.Restart = append(plan.Restart, Workload{Kind: "Deployment", Namespace: "shop", Name: name, Tier: TierRest})
	}
	tierOf := map[string]int{}
	for _, w := range plan.Restart {
		tierOf[w.Namespace+"/"+w.Name] = w.Tier
	}

	cs := fake.NewClientset(objs...)
	var mu sync.Mutex
	inFlight, most := 0, 0
	complete := map[string]bool{}
	var controllers sync.WaitGroup
	cs.PrependReactor("patch", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		key := a.GetNamespace() + "/" + a.(k8stesting.PatchAction).GetName()
		gvr := a.GetResource()
		mu.Lock()
		defer mu.Unlock()
		for other, tier := range tierOf {
			if tier < tierOf[key] && !complete[other] {
				t.Errorf("%s patched before %s, of an earlier tier, rolled out", key, other)
			}
		}
		inFlight++
		most = max(most, inFlight)
		controllers.Go(func() {
			time.Sleep(150 * time.Millisecond)
			mu.Lock()
			inFlight--
			complete[key] = true
			mu.Unlock()
			observe(t, cs, gvr, a.GetNamespace(), a.(k8stesting.PatchAction).GetName(), 2)
		})
		return false, nil, nil
	})
	opts := fastOptions()
	opts.Concurrency = concurrency

	got, err := Apply(context.Background(), cs, plan, opts)
	controllers.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got.Restarted != len(plan.Restart) {
		t.Errorf("Restarted = %d, want %d", got.Restarted, len(plan.Restart))
	}
	if diff := cmp.Diff(plan.Restart, got.Workloads); diff != "" {
		t.Errorf("Workloads are not in the plan's order (-want +got):\n%s", diff)
	}
	if most != concurrency {
		t.Errorf("at most %d rollouts at once, want %d", most, concurrency)
	}
}

// TestApplyStopsAtATierThatDoesNotRollOut: a tier whose rollout times out
// is reported, and nothing of a later tier, nor any bare pod, is touched.
func TestApplyStopsAtATierThatDoesNotRollOut(t *testing.T) {
	objs := objects(
		daemonSet("kube-system", "kube-proxy", dsLabel("k8s-app", "kube-proxy"), pendingDaemonSet),
		daemonSet("calico-system", "calico-node"),
	)
	objs = append(objs, objects(deployment("kube-system", "coredns", deployLabel("k8s-app", "kube-dns")))...)
	objs = append(objs, objects(pod("shop", "debug"))...)
	cs := fake.NewClientset(objs...)
	evictions(cs, 0)
	plan := Plan{
		Restart: []Workload{
			{Kind: "DaemonSet", Namespace: "calico-system", Name: "calico-node", Tier: TierNetwork},
			{Kind: "DaemonSet", Namespace: "kube-system", Name: "kube-proxy", Tier: TierNetwork},
			{Kind: "Deployment", Namespace: "kube-system", Name: "coredns", Tier: TierDNS},
		},
		Evict: []Workload{wl("Pod", "shop", "debug", 1)},
	}
	opts := fastOptions()
	opts.RolloutTimeout = 200 * time.Millisecond

	got, err := Apply(context.Background(), cs, plan, opts)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "DaemonSet kube-system/kube-proxy: rollout not complete after 200ms") {
		t.Fatalf("err = %v, want kube-proxy's rollout timing out", err)
	}
	wantCalls := []call{
		{"patch", "daemonsets", "calico-system", "calico-node", wantPatch},
		{"patch", "daemonsets", "kube-system", "kube-proxy", wantPatch},
	}
	if diff := cmp.Diff(wantCalls, writes(cs), cmpopts.SortSlices(func(a, b call) bool { return a.Namespace < b.Namespace })); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	if got.Restarted != 1 || len(got.Workloads) != 1 || got.Workloads[0].Name != "calico-node" {
		t.Errorf("result = %+v, want calico-node alone restarted", got)
	}
}

// TestApplyEvictsSideBySide: the bare pods are evicted side by side. Each
// evicted pod here takes 150ms to go, and Apply waits until it is gone, so
// one at a time would ask for the next eviction only after the first pod
// went.
func TestApplyEvictsSideBySide(t *testing.T) {
	names := []string{"debug-1", "debug-2", "debug-3"}
	var pods []corev1.Pod
	var plan Plan
	for _, n := range names {
		pods = append(pods, pod("shop", n))
		plan.Evict = append(plan.Evict, wl("Pod", "shop", n, 1))
	}
	cs := fake.NewClientset(objects(pods...)...)
	var mu sync.Mutex
	asked, gone := 0, 0
	var kubelets sync.WaitGroup
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		mu.Lock()
		if gone > 0 {
			t.Errorf("eviction %d asked for after a pod went: the evictions ran one at a time", asked+1)
		}
		asked++
		mu.Unlock()
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		kubelets.Go(func() {
			time.Sleep(150 * time.Millisecond)
			mu.Lock()
			gone++
			mu.Unlock()
			if err := cs.Tracker().Delete(podsResource, ev.Namespace, ev.Name); err != nil {
				t.Error(err)
			}
		})
		return true, nil, nil
	})
	got, err := Apply(context.Background(), cs, plan, fastOptions())
	kubelets.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got.Evicted != len(names) || asked != len(names) {
		t.Errorf("Evicted = %d after %d evictions, want %d", got.Evicted, asked, len(names))
	}
}

func TestApplyRolloutErrors(t *testing.T) {
	tests := []struct {
		name    string
		obj     runtime.Object
		w       Workload
		wantIs  error
		wantMsg []string
	}{{
		name: "not complete in time",
		obj: new(daemonSet("kube-system", "kube-proxy", func(ds *appsv1.DaemonSet) {
			ds.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, UpdatedNumberScheduled: 1, NumberAvailable: 3}
		})),
		w:      wl("DaemonSet", "kube-system", "kube-proxy", 3),
		wantIs: context.DeadlineExceeded,
		wantMsg: []string{
			"DaemonSet kube-system/kube-proxy: rollout not complete after 50ms (1 of 3 pods updated)",
			"kubectl -n kube-system rollout status daemonset/kube-proxy",
			"carotate.io/restarted-at=rot-1/trust, so a rerun waits for this rollout",
		},
	}, {
		name: "progress deadline exceeded",
		obj: new(deployment("shop", "web", func(d *appsv1.Deployment) {
			d.Status.UpdatedReplicas = 0
			d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
				Reason: "ProgressDeadlineExceeded", Message: "timed out"}}
		})),
		w:       wl("Deployment", "shop", "web", 1),
		wantIs:  ErrRolloutFailed,
		wantMsg: []string{"Deployment shop/web: its progress deadline was exceeded: timed out; fix its pods"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := fake.NewClientset(tt.obj)
			opts := fastOptions()
			opts.RolloutTimeout = 50 * time.Millisecond
			got, err := Apply(context.Background(), cs, Plan{Restart: []Workload{tt.w}}, opts)
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("err = %v, want one that is %v", err, tt.wantIs)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not say %q", err, m)
				}
			}
			if got.Restarted != 0 {
				t.Errorf("Restarted = %d, want 0", got.Restarted)
			}
		})
	}
}

func TestApplyEvict(t *testing.T) {
	debug := wl("Pod", "shop", "debug", 1)
	tests := []struct {
		name        string
		pods        []corev1.Pod
		refusals    int
		wantEvicted int
		wantCalls   int
		wantIs      error
	}{
		{"evicted", []corev1.Pod{pod("shop", "debug")}, 0, 1, 1, nil},
		{"refused twice, then evicted", []corev1.Pod{pod("shop", "debug")}, 2, 1, 3, nil},
		{"refused until the timeout", []corev1.Pod{pod("shop", "debug")}, -1, 0, -1, ErrEvictionRefused},
		{"already gone", nil, 0, 0, 0, nil},
		{"replaced by a newer pod of the same name", []corev1.Pod{pod("shop", "debug", started(afterBundle))}, 0, 0, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := fake.NewClientset(objects(tt.pods...)...)
			evictions(cs, tt.refusals)
			opts := fastOptions()
			opts.EvictTimeout = 50 * time.Millisecond
			got, err := Apply(context.Background(), cs, Plan{Evict: []Workload{debug}}, opts)
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("err = %v, want %v", err, tt.wantIs)
			}
			if got.Evicted != tt.wantEvicted {
				t.Errorf("Evicted = %d, want %d", got.Evicted, tt.wantEvicted)
			}
			calls := len(writes(cs))
			if tt.wantCalls >= 0 && calls != tt.wantCalls {
				t.Errorf("%d eviction calls, want %d", calls, tt.wantCalls)
			}
			if tt.wantIs != nil {
				for _, m := range []string{"evict Pod shop/debug: refused for 50ms", "kubectl -n shop get poddisruptionbudgets"} {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("error %q does not say %q", err, m)
					}
				}
			}
		})
	}
}

// TestApplyEvictWaitsUntilGone: an accepted eviction leaves the pod
// terminating for its grace period; Apply reports it evicted only once it
// is gone.
func TestApplyEvictWaitsUntilGone(t *testing.T) {
	p := pod("shop", "debug")
	cs := fake.NewClientset(&p)
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return a.GetSubresource() == "eviction", nil, nil // accepted; the pod stays
	})
	opts := fastOptions()
	opts.RolloutTimeout = 50 * time.Millisecond
	_, err := Apply(context.Background(), cs, Plan{Evict: []Workload{wl("Pod", "shop", "debug", 1)}}, opts)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "evicted but still there") {
		t.Fatalf("err = %v, want a deadline saying the pod is still there", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"valid", func(*Options) {}, ""},
		{"empty annotation", func(o *Options) { o.Annotation = "" }, "value is empty"},
		{"multi-line annotation", func(o *Options) { o.Annotation = "-----BEGIN CERTIFICATE-----\nMIIB" }, "one line"},
		{"long annotation", func(o *Options) { o.Annotation = strings.Repeat("x", 129) }, "at most 128 bytes"},
		{"no Since", func(o *Options) { o.Since = nil }, "Since is nil"},
		{"negative concurrency", func(o *Options) { o.Concurrency = -1 }, "concurrency must be at least 1 (or 0 for 10), got -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions()
			tt.edit(&o)
			err := o.validate()
			if got := fmt.Sprint(err); (tt.want == "") != (err == nil) || !strings.Contains(got, tt.want) {
				t.Errorf("validate() = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestPlanRestartsRefusesBadOptions(t *testing.T) {
	cs := fake.NewClientset()
	if _, err := PlanRestarts(context.Background(), cs, Options{Since: sinceAll}); err == nil {
		t.Error("PlanRestarts accepted an empty annotation")
	}
	if len(cs.Actions()) != 0 {
		t.Errorf("PlanRestarts called the API with bad options: %v", cs.Actions())
	}
}

func TestRestartPatch(t *testing.T) {
	if diff := cmp.Diff(wantPatch, string(restartPatch("rot-1/trust"))); diff != "" {
		t.Errorf("restartPatch (-want +got):\n%s", diff)
	}
}
