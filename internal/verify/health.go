package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/carotate/carotate/internal/manifest"
)

// DefaultControlPlaneComponents are the static pods kubeadm runs on every
// control-plane node (etcd only with stacked etcd).
func DefaultControlPlaneComponents() []string {
	return []string{manifest.KubeAPIServer, manifest.KubeControllerManager, manifest.KubeScheduler, manifest.Etcd}
}

// NodeProblem is a node that is not Ready.
type NodeProblem struct {
	Node string
	// Status is the Ready condition's status ("False", "Unknown"), or
	// "missing" when the node reports no Ready condition.
	Status  string
	Reason  string
	Message string
}

func (p NodeProblem) String() string {
	s := fmt.Sprintf("%s (Ready=%s", p.Node, p.Status)
	if p.Reason != "" {
		s += ", " + p.Reason
	}
	if p.Message != "" {
		s += ": " + truncate(p.Message, maxFindingShown)
	}
	return s + ")"
}

// NotReadyNodes judges nodes: every node whose Ready condition is not True,
// in name order, except those in allowUnready.
func NotReadyNodes(nodes []corev1.Node, allowUnready map[string]bool) []NodeProblem {
	var out []NodeProblem
	for _, n := range nodes {
		if allowUnready[n.Name] {
			continue
		}
		p := NodeProblem{Node: n.Name, Status: "missing"}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				p.Status, p.Reason, p.Message = string(c.Status), c.Reason, c.Message
				break
			}
		}
		if p.Status != string(corev1.ConditionTrue) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b NodeProblem) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// NodesNotReady is the gate error for nodes that are not Ready.
type NodesNotReady struct {
	Nodes []NodeProblem
}

func (e *NodesNotReady) Error() string {
	names := make([]string, len(e.Nodes))
	details := make([]string, len(e.Nodes))
	for i, p := range e.Nodes {
		names[i] = p.Node
		details[i] = p.String()
	}
	return fmt.Sprintf("%d node(s) not Ready: %s; find out why (kubectl describe node %s), or, if a node is down on purpose, pass --allow-unready %s",
		len(e.Nodes), strings.Join(details, "; "), names[0], names[0])
}

// NodesReady checks that every node is Ready, except those in allowUnready.
func NodesReady(ctx context.Context, cs kubernetes.Interface, allowUnready map[string]bool) error {
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing nodes to check that they are Ready: %w", err)
	}
	if problems := NotReadyNodes(list.Items, allowUnready); len(problems) > 0 {
		return &NodesNotReady{Nodes: problems}
	}
	return nil
}

// PodProblem is a control-plane static pod that is missing or not healthy.
type PodProblem struct {
	Node      string
	Component string
	// Pod is "kube-system/<component>-<node>".
	Pod     string
	Problem string
}

func (p PodProblem) Error() string {
	return fmt.Sprintf("node %s: %s (pod %s) %s", p.Node, p.Component, p.Pod, p.Problem)
}

// MirrorPodName is the name the kubelet gives the mirror pod of a static
// pod: "<pod name in the manifest>-<node name>".
func MirrorPodName(component, nodeName string) string { return component + "-" + nodeName }

// ControlPlaneProblems judges the kube-system pods: for every node and
// component, the mirror pod must exist, not be terminating, be Running,
// and be Ready. Problems come in the order of nodes, then components.
func ControlPlaneProblems(pods []corev1.Pod, nodes, components []string) []PodProblem {
	byName := make(map[string]*corev1.Pod, len(pods))
	for i := range pods {
		if pods[i].Namespace == metav1.NamespaceSystem {
			byName[pods[i].Name] = &pods[i]
		}
	}
	var out []PodProblem
	for _, n := range nodes {
		for _, c := range components {
			name := MirrorPodName(c, n)
			if problem := judgeMirrorPod(byName[name]); problem != "" {
				out = append(out, PodProblem{Node: n, Component: c, Pod: metav1.NamespaceSystem + "/" + name, Problem: problem})
			}
		}
	}
	return out
}

// judgeMirrorPod returns what is wrong with a control-plane pod, or "".
func judgeMirrorPod(p *corev1.Pod) string {
	switch {
	case p == nil:
		return "does not exist: the kubelet is not running its static pod manifest, or cannot reach the apiserver to mirror it"
	case p.DeletionTimestamp != nil:
		return "is being deleted"
	case p.Status.Phase != corev1.PodRunning:
		return fmt.Sprintf("is %s, not Running%s", orUnknown(string(p.Status.Phase)), reasonSuffix(p.Status.Reason, p.Status.Message))
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			if c.Status == corev1.ConditionTrue {
				return ""
			}
			return "is Running but not Ready" + reasonSuffix(c.Reason, c.Message) + waitingContainers(p)
		}
	}
	return "is Running but reports no Ready condition"
}

// waitingContainers names containers that are not ready and why, e.g.
// "; container kube-apiserver: CrashLoopBackOff (restarted 4 times)".
func waitingContainers(p *corev1.Pod) string {
	var parts []string
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Ready {
			continue
		}
		s := "container " + cs.Name
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			s += ": " + w.Reason
		}
		if cs.RestartCount > 0 {
			s += fmt.Sprintf(" (restarted %d times)", cs.RestartCount)
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, ", ")
}

func reasonSuffix(reason, message string) string {
	switch {
	case reason != "" && message != "":
		return " (" + reason + ": " + truncate(message, maxFindingShown) + ")"
	case reason != "":
		return " (" + reason + ")"
	case message != "":
		return " (" + truncate(message, maxFindingShown) + ")"
	}
	return ""
}

func orUnknown(s string) string {
	if s == "" {
		return "Unknown"
	}
	return s
}

// ControlPlaneReady checks that on every control-plane node in nodes the
// static pods of components (default DefaultControlPlaneComponents()) are
// mirrored, Running and Ready. Pass the components explicitly for a
// cluster with external etcd.
func ControlPlaneReady(ctx context.Context, cs kubernetes.Interface, nodes []string, components ...string) error {
	if len(components) == 0 {
		components = DefaultControlPlaneComponents()
	}
	// One list rather than a get per pod: the same answer in one round trip.
	list, err := cs.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing kube-system pods to check the control plane: %w", err)
	}
	problems := ControlPlaneProblems(list.Items, nodes, components)
	if len(problems) == 0 {
		return nil
	}
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = p
	}
	return fmt.Errorf("control plane not healthy; check the pods with kubectl -n kube-system describe pod, and the containers with crictl logs on the node:\n%w",
		errors.Join(errs...))
}
