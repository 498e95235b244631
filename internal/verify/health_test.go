package verify

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func testNode(name string, conds ...corev1.NodeCondition) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Conditions: conds}}
}

func readyCond(status corev1.ConditionStatus, reason, message string) corev1.NodeCondition {
	return corev1.NodeCondition{Type: corev1.NodeReady, Status: status, Reason: reason, Message: message}
}

func TestNotReadyNodes(t *testing.T) {
	memory := corev1.NodeCondition{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}
	tests := []struct {
		name  string
		nodes []corev1.Node
		allow map[string]bool
		want  []NodeProblem
	}{
		{name: "all ready", nodes: []corev1.Node{
			testNode("cp-1", memory, readyCond(corev1.ConditionTrue, "KubeletReady", "")),
			testNode("w-1", readyCond(corev1.ConditionTrue, "KubeletReady", "")),
		}},
		{name: "not ready and unknown, sorted", nodes: []corev1.Node{
			testNode("w-2", readyCond(corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status.")),
			testNode("cp-1", readyCond(corev1.ConditionTrue, "KubeletReady", "")),
			testNode("w-1", readyCond(corev1.ConditionFalse, "KubeletNotReady", "container runtime network not ready")),
		}, want: []NodeProblem{
			{Node: "w-1", Status: "False", Reason: "KubeletNotReady", Message: "container runtime network not ready"},
			{Node: "w-2", Status: "Unknown", Reason: "NodeStatusUnknown", Message: "Kubelet stopped posting node status."},
		}},
		{name: "no ready condition yet", nodes: []corev1.Node{testNode("w-3", memory)},
			want: []NodeProblem{{Node: "w-3", Status: "missing"}}},
		{name: "allowed to be down", nodes: []corev1.Node{
			testNode("w-1", readyCond(corev1.ConditionFalse, "KubeletNotReady", "")),
			testNode("w-2", readyCond(corev1.ConditionUnknown, "NodeStatusUnknown", "")),
		}, allow: map[string]bool{"w-2": true},
			want: []NodeProblem{{Node: "w-1", Status: "False", Reason: "KubeletNotReady"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, NotReadyNodes(tt.nodes, tt.allow)); diff != "" {
				t.Errorf("NotReadyNodes mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNodesNotReadyError(t *testing.T) {
	err := &NodesNotReady{Nodes: []NodeProblem{
		{Node: "w-1", Status: "False", Reason: "KubeletNotReady", Message: "PLEG is not healthy"},
		{Node: "w-2", Status: "Unknown"},
	}}
	wantFragments(t, err, "2 node(s) not Ready", "w-1 (Ready=False, KubeletNotReady: PLEG is not healthy)", "w-2 (Ready=Unknown)",
		"kubectl describe node w-1", "--allow-unready w-1")
}

func runningPod(component, node string, ready corev1.ConditionStatus) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: MirrorPodName(component, node)},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}},
			ContainerStatuses: []corev1.ContainerStatus{
				{Name: component, Ready: ready == corev1.ConditionTrue},
			},
		},
	}
}

func healthyControlPlane(nodes ...string) []corev1.Pod {
	var pods []corev1.Pod
	for _, n := range nodes {
		for _, c := range DefaultControlPlaneComponents() {
			pods = append(pods, runningPod(c, n, corev1.ConditionTrue))
		}
	}
	return pods
}

func TestControlPlaneProblems(t *testing.T) {
	replace := func(pods []corev1.Pod, p corev1.Pod) []corev1.Pod {
		out := append([]corev1.Pod(nil), pods...)
		for i := range out {
			if out[i].Name == p.Name {
				out[i] = p
			}
		}
		return out
	}
	without := func(pods []corev1.Pod, name string) []corev1.Pod {
		var out []corev1.Pod
		for _, p := range pods {
			if p.Name != name {
				out = append(out, p)
			}
		}
		return out
	}
	healthy := healthyControlPlane("cp-1", "cp-2")

	crashing := runningPod("kube-apiserver", "cp-2", corev1.ConditionFalse)
	crashing.Status.Conditions[0].Reason = "ContainersNotReady"
	crashing.Status.Conditions[0].Message = "containers with unready status: [kube-apiserver]"
	crashing.Status.ContainerStatuses[0].RestartCount = 4
	crashing.Status.ContainerStatuses[0].State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}

	pending := runningPod("kube-scheduler", "cp-1", corev1.ConditionFalse)
	pending.Status.Phase = corev1.PodPending

	deleting := runningPod("etcd", "cp-1", corev1.ConditionTrue)
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Unix(0, 0)}

	noCondition := runningPod("kube-controller-manager", "cp-1", corev1.ConditionTrue)
	noCondition.Status.Conditions = nil

	otherNamespace := runningPod("kube-apiserver", "cp-1", corev1.ConditionTrue)
	otherNamespace.Namespace = "default"

	tests := []struct {
		name       string
		pods       []corev1.Pod
		nodes      []string
		components []string
		want       []PodProblem
	}{
		{name: "healthy", pods: healthy, nodes: []string{"cp-1", "cp-2"}, components: DefaultControlPlaneComponents()},
		{name: "missing mirror pod", pods: without(healthy, "etcd-cp-2"), nodes: []string{"cp-1", "cp-2"}, components: DefaultControlPlaneComponents(),
			want: []PodProblem{{Node: "cp-2", Component: "etcd", Pod: "kube-system/etcd-cp-2",
				Problem: "does not exist: the kubelet is not running its static pod manifest, or cannot reach the apiserver to mirror it"}}},
		{name: "external etcd: not asked for", pods: without(healthy, "etcd-cp-2"), nodes: []string{"cp-2"},
			components: []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"}},
		{name: "crash looping", pods: replace(healthy, crashing), nodes: []string{"cp-1", "cp-2"}, components: DefaultControlPlaneComponents(),
			want: []PodProblem{{Node: "cp-2", Component: "kube-apiserver", Pod: "kube-system/kube-apiserver-cp-2",
				Problem: "is Running but not Ready (ContainersNotReady: containers with unready status: [kube-apiserver]); container kube-apiserver: CrashLoopBackOff (restarted 4 times)"}}},
		{name: "several, in node then component order", pods: replace(replace(replace(healthy, deleting), pending), noCondition),
			nodes: []string{"cp-1"}, components: DefaultControlPlaneComponents(),
			want: []PodProblem{
				{Node: "cp-1", Component: "kube-controller-manager", Pod: "kube-system/kube-controller-manager-cp-1", Problem: "is Running but reports no Ready condition"},
				{Node: "cp-1", Component: "kube-scheduler", Pod: "kube-system/kube-scheduler-cp-1", Problem: "is Pending, not Running"},
				{Node: "cp-1", Component: "etcd", Pod: "kube-system/etcd-cp-1", Problem: "is being deleted"},
			}},
		{name: "same name elsewhere does not count", pods: append(without(healthy, "kube-apiserver-cp-1"), otherNamespace),
			nodes: []string{"cp-1"}, components: []string{"kube-apiserver"},
			want: []PodProblem{{Node: "cp-1", Component: "kube-apiserver", Pod: "kube-system/kube-apiserver-cp-1",
				Problem: "does not exist: the kubelet is not running its static pod manifest, or cannot reach the apiserver to mirror it"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ControlPlaneProblems(tt.pods, tt.nodes, tt.components)); diff != "" {
				t.Errorf("ControlPlaneProblems mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// verbs lists the API calls a fake clientset saw, as "verb resource
// namespace".
func verbs(cs *fake.Clientset) []string {
	var out []string
	for _, a := range cs.Actions() {
		out = append(out, a.GetVerb()+" "+a.GetResource().Resource+" "+a.GetNamespace())
	}
	return out
}

// The fake clientset only shows which calls are made and that their
// answer reaches the judgement; what a real cluster answers is the
// end-to-end suite's business.
func TestNodesReadyCalls(t *testing.T) {
	w1 := testNode("w-1", readyCond(corev1.ConditionFalse, "KubeletNotReady", ""))
	cs := fake.NewClientset(&w1)
	err := NodesReady(context.Background(), cs, nil)
	wantFragments(t, err, "w-1 (Ready=False, KubeletNotReady)", "--allow-unready w-1")
	if diff := cmp.Diff([]string{"list nodes "}, verbs(cs)); diff != "" {
		t.Errorf("API calls mismatch (-want +got):\n%s", diff)
	}
	if err := NodesReady(context.Background(), cs, map[string]bool{"w-1": true}); err != nil {
		t.Errorf("allowed node: %v", err)
	}

	failing := fake.NewClientset()
	failing.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	wantFragments(t, NodesReady(context.Background(), failing, nil), "listing nodes", "connection refused")
}

func TestControlPlaneReadyCalls(t *testing.T) {
	pods := healthyControlPlane("cp-1")
	objs := make([]runtime.Object, len(pods))
	for i := range pods {
		objs[i] = &pods[i]
	}
	cs := fake.NewClientset(objs...)
	if err := ControlPlaneReady(context.Background(), cs, []string{"cp-1"}); err != nil {
		t.Errorf("healthy control plane: %v", err)
	}
	if diff := cmp.Diff([]string{"list pods kube-system"}, verbs(cs)); diff != "" {
		t.Errorf("API calls mismatch (-want +got):\n%s", diff)
	}
	err := ControlPlaneReady(context.Background(), cs, []string{"cp-1", "cp-2"})
	wantFragments(t, err, "control plane not healthy", "node cp-2: kube-apiserver (pod kube-system/kube-apiserver-cp-2) does not exist",
		"node cp-2: etcd (pod kube-system/etcd-cp-2)")
	var p PodProblem
	if !errors.As(err, &p) || p.Node != "cp-2" {
		t.Errorf("errors.As(PodProblem) = %+v from %v", p, err)
	}
	if err := ControlPlaneReady(context.Background(), cs, []string{"cp-1"}, "kube-apiserver"); err != nil {
		t.Errorf("one component: %v", err)
	}
}
