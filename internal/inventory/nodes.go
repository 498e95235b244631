package inventory

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/carotate/carotate/internal/model"
)

const roleLabelPrefix = "node-role.kubernetes.io/"

// DiscoverNodes lists the cluster's nodes: name, roles (from the
// node-role.kubernetes.io/* labels), InternalIP and Ready, sorted by name.
// Nothing is inspected yet, so every node is Reachable=false.
func DiscoverNodes(ctx context.Context, cs kubernetes.Interface) ([]model.Node, error) {
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out := make([]model.Node, 0, len(list.Items))
	for _, n := range list.Items {
		out = append(out, model.Node{
			Name:       n.Name,
			Roles:      roles(n.Labels),
			InternalIP: internalIP(n.Status.Addresses),
			Ready:      ready(n.Status.Conditions),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func roles(labels map[string]string) []string {
	out := []string{}
	for k := range labels {
		if r, ok := strings.CutPrefix(k, roleLabelPrefix); ok && r != "" {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

func internalIP(addrs []corev1.NodeAddress) string {
	for _, a := range addrs {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

func ready(conds []corev1.NodeCondition) bool {
	for _, c := range conds {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// IsControlPlane says whether a node carries the control-plane role.
func IsControlPlane(n model.Node) bool {
	for _, r := range n.Roles {
		if r == "control-plane" || r == "master" {
			return true
		}
	}
	return false
}
