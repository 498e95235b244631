package workload

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// bundleAt is when the new bundle reached every namespace in these tests.
var bundleAt = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

var (
	beforeBundle = bundleAt.Add(-time.Hour)
	afterBundle  = bundleAt.Add(time.Minute)
)

// sinceAll: the bundle reached every namespace at bundleAt, except
// "unknown", about which nothing is known.
func sinceAll(ns string) time.Time {
	if ns == "unknown" {
		return time.Time{}
	}
	return bundleAt
}

func testOptions() Options {
	return Options{Annotation: "rot-1/trust", Since: sinceAll}
}

func controllerRef(apiVersion, kind, name string) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID(kind + "-" + name), Controller: &yes}
}

type podOption func(*corev1.Pod)

// pod is a running pod with the projected service-account volume the
// admission plugin injects, started before the bundle.
func pod(ns, name string, opts ...podOption) corev1.Pod {
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(ns + "-" + name),
			CreationTimestamp: metav1.NewTime(beforeBundle)},
		Spec: corev1.PodSpec{Volumes: []corev1.Volume{{
			Name: "kube-api-access-x1y2z",
			VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
					Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			}}},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: ptrTime(beforeBundle)},
	}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func ptrTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t)
	return &mt
}

func ownedBy(apiVersion, kind, name string) podOption {
	return func(p *corev1.Pod) {
		p.OwnerReferences = append(p.OwnerReferences, controllerRef(apiVersion, kind, name))
	}
}

func started(t time.Time) podOption {
	return func(p *corev1.Pod) { p.Status.StartTime = ptrTime(t) }
}

// notStarted: the kubelet has not picked it up; only its creation time is
// known.
func notStarted(created time.Time) podOption {
	return func(p *corev1.Pod) {
		p.Status.StartTime = nil
		p.Status.Phase = corev1.PodPending
		p.CreationTimestamp = metav1.NewTime(created)
	}
}

func noServiceAccountVolume(p *corev1.Pod) {
	p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
}

func rootCAConfigMapVolume(p *corev1.Pod) {
	p.Spec.Volumes = []corev1.Volume{{Name: "ca", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}}}}
}

func mirrorPod(p *corev1.Pod) {
	p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "abc"}
	p.OwnerReferences = append(p.OwnerReferences, controllerRef("v1", "Node", "cp-1"))
}

func phase(ph corev1.PodPhase) podOption {
	return func(p *corev1.Pod) { p.Status.Phase = ph }
}

func deleting(p *corev1.Pod) {
	p.DeletionTimestamp = ptrTime(afterBundle)
}

func replicaSet(ns, name string, owner ...metav1.OwnerReference) appsv1.ReplicaSet {
	return appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: owner}}
}

func int32p(n int32) *int32 { return &n }

// deployment is a Deployment of one replica whose rollout is complete.
func deployment(ns, name string, opts ...func(*appsv1.Deployment)) appsv1.Deployment {
	d := appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       appsv1.DeploymentSpec{Replicas: int32p(1)},
		Status:     appsv1.DeploymentStatus{Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, ReadyReplicas: 1},
	}
	for _, o := range opts {
		o(&d)
	}
	return d
}

// daemonSet is a DaemonSet on one node whose rollout is complete.
func daemonSet(ns, name string, opts ...func(*appsv1.DaemonSet)) appsv1.DaemonSet {
	ds := appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       appsv1.DaemonSetSpec{UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType}},
		Status:     appsv1.DaemonSetStatus{DesiredNumberScheduled: 1, UpdatedNumberScheduled: 1, NumberAvailable: 1, NumberReady: 1},
	}
	for _, o := range opts {
		o(&ds)
	}
	return ds
}

// statefulSet is a StatefulSet of one replica whose rollout is complete.
func statefulSet(ns, name string, opts ...func(*appsv1.StatefulSet)) appsv1.StatefulSet {
	sts := appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.StatefulSetSpec{Replicas: int32p(1),
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}},
		Status: appsv1.StatefulSetStatus{Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1,
			CurrentRevision: name + "-1", UpdateRevision: name + "-1"},
	}
	for _, o := range opts {
		o(&sts)
	}
	return sts
}

func labelled(key, value string) func(metav1.Object) {
	return func(o metav1.Object) {
		l := o.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		l[key] = value
		o.SetLabels(l)
	}
}

func dsLabel(key, value string) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) { labelled(key, value)(ds) }
}

func deployLabel(key, value string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) { labelled(key, value)(d) }
}

func templateAnnotated(value string) func(*corev1.PodTemplateSpec) {
	return func(t *corev1.PodTemplateSpec) {
		t.Annotations = map[string]string{RestartedAtAnnotation: value}
	}
}

func dsTemplate(f func(*corev1.PodTemplateSpec)) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) { f(&ds.Spec.Template) }
}

func deployTemplate(f func(*corev1.PodTemplateSpec)) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) { f(&d.Spec.Template) }
}
