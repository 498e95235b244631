package workload

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

var rolloutDone = rollout{done: true}

func TestDeploymentRollout(t *testing.T) {
	tests := []struct {
		name string
		edit func(*appsv1.Deployment)
		want rollout
	}{
		{"complete", func(*appsv1.Deployment) {}, rolloutDone},
		{"generation not yet observed", func(d *appsv1.Deployment) { d.Generation = 3; d.Status.ObservedGeneration = 2 },
			rollout{waiting: "the deployment controller has not yet seen generation 3"}},
		{"replicas not all updated", func(d *appsv1.Deployment) {
			d.Spec.Replicas = int32p(3)
			d.Status = appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 2, AvailableReplicas: 3}
		}, rollout{waiting: "2 of 3 replicas updated"}},
		{"old replicas still terminating", func(d *appsv1.Deployment) {
			d.Spec.Replicas = int32p(3)
			d.Status = appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 3, AvailableReplicas: 3}
		}, rollout{waiting: "1 old replicas not yet terminated"}},
		{"updated replicas not available", func(d *appsv1.Deployment) {
			d.Spec.Replicas = int32p(3)
			d.Status = appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 2}
		}, rollout{waiting: "2 of 3 updated replicas available"}},
		{"replicas defaults to one", func(d *appsv1.Deployment) {
			d.Spec.Replicas = nil
		}, rolloutDone},
		{"progress deadline exceeded", func(d *appsv1.Deployment) {
			d.Status.UpdatedReplicas = 0
			d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
				Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "web-7c8d" has timed out progressing.`}}
		}, rollout{failed: `its progress deadline was exceeded: ReplicaSet "web-7c8d" has timed out progressing.`}},
		{"progressing", func(d *appsv1.Deployment) {
			d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue,
				Reason: "NewReplicaSetAvailable"}}
		}, rolloutDone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := deployment("shop", "web")
			tt.edit(&d)
			if diff := cmp.Diff(tt.want, deploymentRollout(&d), cmp.AllowUnexported(rollout{})); diff != "" {
				t.Errorf("deploymentRollout (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDaemonSetRollout(t *testing.T) {
	tests := []struct {
		name string
		edit func(*appsv1.DaemonSet)
		want rollout
	}{
		{"complete", func(*appsv1.DaemonSet) {}, rolloutDone},
		{"generation not yet observed", func(ds *appsv1.DaemonSet) { ds.Generation = 2; ds.Status.ObservedGeneration = 1 },
			rollout{waiting: "the daemonset controller has not yet seen generation 2"}},
		{"pods not all updated", func(ds *appsv1.DaemonSet) {
			ds.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, UpdatedNumberScheduled: 1, NumberAvailable: 3}
		}, rollout{waiting: "1 of 3 pods updated"}},
		{"updated pods not available", func(ds *appsv1.DaemonSet) {
			ds.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberAvailable: 2}
		}, rollout{waiting: "2 of 3 pods available"}},
		{"no node to run on", func(ds *appsv1.DaemonSet) { ds.Status = appsv1.DaemonSetStatus{} }, rolloutDone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := daemonSet("kube-system", "kube-proxy")
			tt.edit(&ds)
			if diff := cmp.Diff(tt.want, daemonSetRollout(&ds), cmp.AllowUnexported(rollout{})); diff != "" {
				t.Errorf("daemonSetRollout (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatefulSetRollout(t *testing.T) {
	tests := []struct {
		name string
		edit func(*appsv1.StatefulSet)
		want rollout
	}{
		{"complete", func(*appsv1.StatefulSet) {}, rolloutDone},
		{"generation not yet observed", func(s *appsv1.StatefulSet) { s.Generation = 5; s.Status.ObservedGeneration = 4 },
			rollout{waiting: "the statefulset controller has not yet seen generation 5"}},
		{"replicas not all updated", func(s *appsv1.StatefulSet) {
			s.Spec.Replicas = int32p(3)
			s.Status = appsv1.StatefulSetStatus{UpdatedReplicas: 1, ReadyReplicas: 3, CurrentRevision: "db-1", UpdateRevision: "db-2"}
		}, rollout{waiting: "1 of 3 replicas updated"}},
		{"updated replicas not ready", func(s *appsv1.StatefulSet) {
			s.Spec.Replicas = int32p(3)
			s.Status = appsv1.StatefulSetStatus{UpdatedReplicas: 3, ReadyReplicas: 2, CurrentRevision: "db-1", UpdateRevision: "db-2"}
		}, rollout{waiting: "2 of 3 replicas ready"}},
		{"update revision not yet current", func(s *appsv1.StatefulSet) {
			s.Spec.Replicas = int32p(3)
			s.Status = appsv1.StatefulSetStatus{UpdatedReplicas: 3, ReadyReplicas: 3, CurrentRevision: "db-1", UpdateRevision: "db-2"}
		}, rollout{waiting: "revision db-2 not yet current (still db-1)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := statefulSet("shop", "db")
			tt.edit(&s)
			if diff := cmp.Diff(tt.want, statefulSetRollout(&s), cmp.AllowUnexported(rollout{})); diff != "" {
				t.Errorf("statefulSetRollout (-want +got):\n%s", diff)
			}
		})
	}
}
