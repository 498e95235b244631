package workload

import (
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// RestartedAtAnnotation is the pod-template annotation a restart sets, as
// kubectl rollout restart sets kubectl.kubernetes.io/restartedAt. Its value
// is an id chosen by the caller (e.g. "<rotation-id>/trust"), never a
// secret: annotations are readable by anyone who can read the workload.
const RestartedAtAnnotation = "carotate.io/restarted-at"

// rootCAConfigMap is the ConfigMap kube-controller-manager publishes in
// every namespace and the service-account admission plugin projects into
// every pod that automounts a token.
const rootCAConfigMap = "kube-root-ca.crt"

// Workload kinds, as they appear in Workload.Kind.
const (
	kindDeployment  = "Deployment"
	kindDaemonSet   = "DaemonSet"
	kindStatefulSet = "StatefulSet"
	kindReplicaSet  = "ReplicaSet"
	kindPod         = "Pod"
)

// cniNames are substrings of the names of the DaemonSets of common CNI
// plugins. Their pods are restarted first, with kube-proxy, because every
// other pod's traffic goes through them.
var cniNames = []string{"calico", "cilium", "flannel", "weave", "kindnet", "canal", "antrea"}

// Workload is one object the plan restarts, evicts, waits for or leaves
// alone: a Deployment, DaemonSet or StatefulSet, a bare Pod, or, in
// Plan.Skip, the controller that owns pods carotate does not restart.
type Workload struct {
	Kind      string
	Namespace string
	Name      string
	// Pods is how many of its pods use in-cluster config and started before
	// kube-root-ca.crt last changed in their namespace.
	Pods int
	// Reason says why it is restarted, or why not.
	Reason string
	// Tier orders the restarts: TierNetwork (kube-proxy and CNI
	// DaemonSets), then TierDNS (CoreDNS), then TierRest. Workloads of one
	// tier restart side by side; the next tier starts when every rollout
	// of this one is complete.
	Tier int
}

// String reads like "DaemonSet kube-system/kube-proxy".
func (w Workload) String() string {
	return w.Kind + " " + w.Namespace + "/" + w.Name
}

// Plan is what Apply does, in order: wait for the rollouts in AlreadyDone,
// restart Restart tier by tier, waiting for every rollout of a tier, then
// evict Evict.
type Plan struct {
	// Restart are the workloads whose pod template gets
	// RestartedAtAnnotation: kube-proxy and CNI DaemonSets first, then
	// CoreDNS, then everything else by namespace, kind and name.
	Restart []Workload
	// AlreadyDone are the workloads whose template already carries
	// RestartedAtAnnotation with this value: they are not patched again,
	// only their rollout is waited for. Same order as Restart.
	AlreadyDone []Workload
	// Evict are bare pods (Kind "Pod"), which no controller recreates:
	// evicting one removes it for good.
	Evict []Workload
	// Skip are the owners of pods that need a restart carotate will not do,
	// with the reason and what to do instead.
	Skip []Workload
}

// Facts are what the plan is decided from: every pod, and every object
// that may own one.
type Facts struct {
	Pods         []corev1.Pod
	ReplicaSets  []appsv1.ReplicaSet
	Deployments  []appsv1.Deployment
	DaemonSets   []appsv1.DaemonSet
	StatefulSets []appsv1.StatefulSet
}

// Decide says which workloads to restart, which bare pods to evict and
// which owners to leave alone. A pod counts when it is not a mirror pod, is
// running or pending and not being deleted, uses in-cluster config
// (UsesInClusterConfig) and started before since(its namespace)
// (StartedBefore), and after opts.StartedAfter when that is set. Only
// opts.Annotation, opts.Since and opts.StartedAfter are read.
func Decide(f Facts, opts Options) Plan {
	ix := newIndex(f)
	stale := map[owner]int{}
	skipWhy := map[owner]string{}
	var plan Plan
	for i := range f.Pods {
		pod := &f.Pods[i]
		since := sinceOf(opts, pod.Namespace)
		if opts.Pods != nil {
			if !opts.Pods[pod.UID] || !running(pod) {
				continue
			}
		} else if !needsRestart(pod, since, opts.StartedAfter) {
			continue
		}
		o, why := ix.ownerOf(pod)
		if o.kind == kindPod {
			plan.Evict = append(plan.Evict, Workload{
				Kind: kindPod, Namespace: pod.Namespace, Name: pod.Name, Pods: 1,
				Reason: fmt.Sprintf("bare pod uses in-cluster config and started %s, before kube-root-ca.crt changed at %s; "+
					"it is evicted through the Eviction API, which respects PodDisruptionBudgets, and nothing recreates it",
					formatTime(startedAt(pod)), formatTime(since)),
			})
			continue
		}
		if why != "" {
			skipWhy[o] = why
		}
		stale[o]++
	}

	for _, o := range ix.annotated(opts.Annotation) {
		if _, ok := stale[o]; !ok {
			stale[o] = 0
		}
	}
	for o, n := range stale {
		w := Workload{Kind: o.kind, Namespace: o.namespace, Name: o.name, Pods: n}
		if why, ok := skipWhy[o]; ok {
			w.Reason = why
			plan.Skip = append(plan.Skip, w)
			continue
		}
		if why := ix.blocker(o); why != "" {
			w.Reason = why
			plan.Skip = append(plan.Skip, w)
			continue
		}
		if v, ok := ix.template(o).Annotations[RestartedAtAnnotation]; ok && v == opts.Annotation {
			w.Reason = fmt.Sprintf("already restarted: its pod template carries %s=%s", RestartedAtAnnotation, v)
			plan.AlreadyDone = append(plan.AlreadyDone, w)
			continue
		}
		w.Reason = fmt.Sprintf("%d %s in-cluster config and started before kube-root-ca.crt changed at %s",
			n, plural(n, "pod uses", "pods use"), formatTime(sinceOf(opts, o.namespace)))
		if opts.Pods != nil {
			w.Reason = fmt.Sprintf("%d %s: %s", n, plural(n, "pod", "pods"), opts.Reason)
		}
		plan.Restart = append(plan.Restart, w)
	}

	byRolloutOrder := func(ws []Workload) {
		for i := range ws {
			ws[i].Tier = ix.tier(ws[i])
		}
		sort.Slice(ws, func(i, j int) bool {
			a, b := ws[i], ws[j]
			if a.Tier != b.Tier {
				return a.Tier < b.Tier
			}
			return lessByName(a, b)
		})
	}
	byRolloutOrder(plan.Restart)
	byRolloutOrder(plan.AlreadyDone)
	sort.Slice(plan.Evict, func(i, j int) bool { return lessByName(plan.Evict[i], plan.Evict[j]) })
	sort.Slice(plan.Skip, func(i, j int) bool { return lessByName(plan.Skip[i], plan.Skip[j]) })
	return plan
}

func sinceOf(opts Options, namespace string) time.Time {
	if opts.Since == nil {
		return time.Time{}
	}
	return opts.Since(namespace)
}

// needsRestart: a pod that is still (or about to be) running, is not a
// mirror pod, reads the cluster CA through its service-account volume and
// started before the new bundle reached its namespace (and after
// startedAfter, when that is set).
func needsRestart(pod *corev1.Pod, since, startedAfter time.Time) bool {
	if !running(pod) {
		return false
	}
	if !startedAfter.IsZero() && !startedAt(pod).After(startedAfter) {
		return false
	}
	return UsesInClusterConfig(pod) && StartedBefore(pod, since)
}

// running: a pod that is still (or about to be) running and is not a
// mirror pod, which only its manifest restarts.
func running(pod *corev1.Pod) bool {
	if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		return false
	}
	return pod.DeletionTimestamp == nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

// UsesInClusterConfig reports whether pod sees kube-root-ca.crt: through the
// projected service-account volume the admission plugin injects, or
// through a ConfigMap volume of its own. client-go's in-cluster config reads
// that file once, at start, so such a pod trusts the bundle it started with.
func UsesInClusterConfig(pod *corev1.Pod) bool {
	for _, v := range pod.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == rootCAConfigMap {
			return true
		}
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if s.ConfigMap != nil && s.ConfigMap.Name == rootCAConfigMap {
				return true
			}
		}
	}
	return false
}

// StartedBefore reports whether pod started before since, or in the same
// second: start times and managedFields times have one-second resolution,
// so a pod started in the second the bundle changed may have read the old
// one, and restarting it once more is the safe side. The start is
// status.startTime, or creationTimestamp when the kubelet has not started
// the pod yet. A zero since (nothing known about the namespace) makes no
// pod count.
func StartedBefore(pod *corev1.Pod, since time.Time) bool {
	return !since.IsZero() && !startedAt(pod).After(since)
}

func startedAt(pod *corev1.Pod) time.Time {
	if pod.Status.StartTime != nil {
		return pod.Status.StartTime.Time
	}
	return pod.CreationTimestamp.Time
}

// owner is the object that a pod's restart goes through.
type owner struct{ kind, namespace, name string }

type nsName struct{ namespace, name string }

// index finds owners by namespace and name.
type index struct {
	replicaSets  map[nsName]*appsv1.ReplicaSet
	deployments  map[nsName]*appsv1.Deployment
	daemonSets   map[nsName]*appsv1.DaemonSet
	statefulSets map[nsName]*appsv1.StatefulSet
}

func newIndex(f Facts) index {
	ix := index{
		replicaSets:  map[nsName]*appsv1.ReplicaSet{},
		deployments:  map[nsName]*appsv1.Deployment{},
		daemonSets:   map[nsName]*appsv1.DaemonSet{},
		statefulSets: map[nsName]*appsv1.StatefulSet{},
	}
	for i := range f.ReplicaSets {
		o := &f.ReplicaSets[i]
		ix.replicaSets[nsName{o.Namespace, o.Name}] = o
	}
	for i := range f.Deployments {
		o := &f.Deployments[i]
		ix.deployments[nsName{o.Namespace, o.Name}] = o
	}
	for i := range f.DaemonSets {
		o := &f.DaemonSets[i]
		ix.daemonSets[nsName{o.Namespace, o.Name}] = o
	}
	for i := range f.StatefulSets {
		o := &f.StatefulSets[i]
		ix.statefulSets[nsName{o.Namespace, o.Name}] = o
	}
	return ix
}

// ownerOf returns the workload whose restart replaces pod. For a pod with
// no controller it is the pod itself (kind Pod). When carotate will not
// restart the owner, why says so and what to do instead.
func (ix index) ownerOf(pod *corev1.Pod) (o owner, why string) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return owner{kindPod, pod.Namespace, pod.Name}, ""
	}
	o = owner{kindOf(ref), pod.Namespace, ref.Name}
	switch o.kind {
	case kindDaemonSet, kindStatefulSet:
		if !ix.exists(o) {
			return o, notFound
		}
		return o, ""
	case kindReplicaSet:
		rs, ok := ix.replicaSets[nsName{o.namespace, o.name}]
		if !ok {
			return o, notFound
		}
		rsRef := metav1.GetControllerOf(rs)
		if rsRef == nil {
			return o, "not restarted: no Deployment owns this ReplicaSet, so there is no rollout to start; " +
				"delete its stale pods one at a time when they can be interrupted"
		}
		d := owner{kindOf(rsRef), rs.Namespace, rsRef.Name}
		switch {
		case d.kind != kindDeployment:
			return d, "not restarted: carotate restarts Deployments, DaemonSets and StatefulSets only; " +
				"restart its stale pods (owned through ReplicaSet " + rs.Name + ") the way its controller expects"
		case !ix.exists(d):
			return d, notFound
		}
		return d, ""
	}
	return o, "not restarted: carotate restarts Deployments, DaemonSets and StatefulSets only; " +
		"its stale pods keep the old trust bundle until they are recreated, so delete them when they can be interrupted"
}

const notFound = "not restarted: it was not found while carotate read the cluster; rerun to read it again"

// kindOf is ref's kind, qualified by its group unless it is a core, apps or
// batch kind, so that a DaemonSet of apps.kruise.io is not taken for one of
// apps.
func kindOf(ref *metav1.OwnerReference) string {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return ref.Kind + " (" + ref.APIVersion + ")"
	}
	switch gv.Group {
	case "", "apps", "batch":
		return ref.Kind
	}
	return ref.Kind + "." + gv.Group
}

func (ix index) exists(o owner) bool {
	k := nsName{o.namespace, o.name}
	switch o.kind {
	case kindDeployment:
		_, ok := ix.deployments[k]
		return ok
	case kindDaemonSet:
		_, ok := ix.daemonSets[k]
		return ok
	case kindStatefulSet:
		_, ok := ix.statefulSets[k]
		return ok
	}
	return false
}

// template is o's pod template metadata; o exists in the index.
func (ix index) template(o owner) metav1.ObjectMeta {
	k := nsName{o.namespace, o.name}
	switch o.kind {
	case kindDeployment:
		return ix.deployments[k].Spec.Template.ObjectMeta
	case kindDaemonSet:
		return ix.daemonSets[k].Spec.Template.ObjectMeta
	case kindStatefulSet:
		return ix.statefulSets[k].Spec.Template.ObjectMeta
	}
	return metav1.ObjectMeta{}
}

// annotated are the workloads whose template already carries value.
func (ix index) annotated(value string) []owner {
	var out []owner
	has := func(m metav1.ObjectMeta) bool {
		v, ok := m.Annotations[RestartedAtAnnotation]
		return ok && v == value
	}
	for k, d := range ix.deployments {
		if has(d.Spec.Template.ObjectMeta) {
			out = append(out, owner{kindDeployment, k.namespace, k.name})
		}
	}
	for k, d := range ix.daemonSets {
		if has(d.Spec.Template.ObjectMeta) {
			out = append(out, owner{kindDaemonSet, k.namespace, k.name})
		}
	}
	for k, s := range ix.statefulSets {
		if has(s.Spec.Template.ObjectMeta) {
			out = append(out, owner{kindStatefulSet, k.namespace, k.name})
		}
	}
	return out
}

// blocker says why patching o's template would not replace its pods, and
// what to do instead; "" when it would.
func (ix index) blocker(o owner) string {
	const onDelete = "not restarted: update strategy OnDelete, so a template change restarts nothing; " +
		"delete its stale pods one at a time, waiting for each replacement to be ready"
	k := nsName{o.namespace, o.name}
	switch o.kind {
	case kindDeployment:
		if ix.deployments[k].Spec.Paused {
			return "not restarted: the Deployment is paused, so a template change would not roll out; " +
				"resume it (kubectl rollout resume) and rerun"
		}
	case kindDaemonSet:
		if ix.daemonSets[k].Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
			return onDelete
		}
	case kindStatefulSet:
		s := ix.statefulSets[k].Spec.UpdateStrategy
		if s.Type == appsv1.OnDeleteStatefulSetStrategyType {
			return onDelete
		}
		if s.RollingUpdate != nil && s.RollingUpdate.Partition != nil && *s.RollingUpdate.Partition > 0 {
			return fmt.Sprintf("not restarted: its rolling update is partitioned at ordinal %d, so pods below it "+
				"would keep the old template; finish or remove the partition and rerun", *s.RollingUpdate.Partition)
		}
	}
	return ""
}

// Rollout tiers, in Workload.Tier: the network first, since every other
// pod's traffic goes through kube-proxy and the CNI plugin, then cluster
// DNS, then the rest.
const (
	TierNetwork = iota
	TierDNS
	TierRest
)

func (ix index) tier(w Workload) int {
	k := nsName{w.Namespace, w.Name}
	switch w.Kind {
	case kindDaemonSet:
		ds := ix.daemonSets[k]
		if ds == nil {
			return TierRest
		}
		if ds.Namespace == metav1.NamespaceSystem && ds.Labels["k8s-app"] == "kube-proxy" {
			return TierNetwork
		}
		for _, cni := range cniNames {
			if strings.Contains(ds.Name, cni) {
				return TierNetwork
			}
		}
	case kindDeployment:
		d := ix.deployments[k]
		if d != nil && d.Namespace == metav1.NamespaceSystem && d.Labels["k8s-app"] == "kube-dns" {
			return TierDNS
		}
	}
	return TierRest
}

func lessByName(a, b Workload) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	return a.Name < b.Name
}

func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
