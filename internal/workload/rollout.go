package workload

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// rollout is how far a workload's rollout has come, judged from its status
// the way kubectl rollout status judges it.
type rollout struct {
	done bool
	// waiting says what is not done yet.
	waiting string
	// failed says why the rollout will not complete without help.
	failed string
	// seen: the workload was read at least once.
	seen bool
}

// judge reads obj, a Deployment, DaemonSet or StatefulSet from a watch, and
// returns its rollout and generation.
func judge(obj any) (rollout, int64) {
	var r rollout
	var gen int64
	switch o := obj.(type) {
	case *appsv1.Deployment:
		r, gen = deploymentRollout(o), o.Generation
	case *appsv1.DaemonSet:
		r, gen = daemonSetRollout(o), o.Generation
	case *appsv1.StatefulSet:
		r, gen = statefulSetRollout(o), o.Generation
	default:
		return rollout{failed: fmt.Sprintf("carotate cannot judge the rollout of a %T", obj), seen: true}, 0
	}
	r.seen = true
	return r, gen
}

func waiting(format string, args ...any) rollout {
	return rollout{waiting: fmt.Sprintf(format, args...)}
}

// deploymentRollout: complete when the controller has seen the latest
// spec, every replica is updated and available, and no old replica is left.
func deploymentRollout(d *appsv1.Deployment) rollout {
	if d.Status.ObservedGeneration < d.Generation {
		return waiting("the deployment controller has not yet seen generation %d", d.Generation)
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return rollout{failed: "its progress deadline was exceeded: " + c.Message}
		}
	}
	want := replicas(d.Spec.Replicas)
	s := d.Status
	switch {
	case s.UpdatedReplicas != want:
		return waiting("%d of %d replicas updated", s.UpdatedReplicas, want)
	case s.Replicas != s.UpdatedReplicas:
		return waiting("%d old replicas not yet terminated", s.Replicas-s.UpdatedReplicas)
	case s.AvailableReplicas != want:
		return waiting("%d of %d updated replicas available", s.AvailableReplicas, want)
	}
	return rollout{done: true}
}

// daemonSetRollout: complete when the controller has seen the latest spec
// and every node that should run the pod runs an updated, available one.
func daemonSetRollout(ds *appsv1.DaemonSet) rollout {
	if ds.Status.ObservedGeneration < ds.Generation {
		return waiting("the daemonset controller has not yet seen generation %d", ds.Generation)
	}
	s := ds.Status
	switch {
	case s.UpdatedNumberScheduled != s.DesiredNumberScheduled:
		return waiting("%d of %d pods updated", s.UpdatedNumberScheduled, s.DesiredNumberScheduled)
	case s.NumberAvailable != s.DesiredNumberScheduled:
		return waiting("%d of %d pods available", s.NumberAvailable, s.DesiredNumberScheduled)
	}
	return rollout{done: true}
}

// statefulSetRollout: complete when the controller has seen the latest
// spec, every replica is updated and ready, and the controller has made the
// update revision the current one.
func statefulSetRollout(sts *appsv1.StatefulSet) rollout {
	if sts.Status.ObservedGeneration < sts.Generation {
		return waiting("the statefulset controller has not yet seen generation %d", sts.Generation)
	}
	want := replicas(sts.Spec.Replicas)
	s := sts.Status
	switch {
	case s.UpdatedReplicas != want:
		return waiting("%d of %d replicas updated", s.UpdatedReplicas, want)
	case s.ReadyReplicas != want:
		return waiting("%d of %d replicas ready", s.ReadyReplicas, want)
	case s.CurrentRevision != s.UpdateRevision:
		return waiting("revision %s not yet current (still %s)", s.UpdateRevision, s.CurrentRevision)
	}
	return rollout{done: true}
}

// replicas is spec.replicas, which the API server defaults to 1.
func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}
