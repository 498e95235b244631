package rotation

import (
	"context"
	"fmt"
	"strings"

	"github.com/carotate/carotate/internal/inspect"
)

// StrayManifestError says a node's manifest directory holds a file the
// kubelet would load beside the real static pods. It is checked before
// every step on the node, not only in preflight: a copy that appears mid-run
// makes the kubelet run two definitions of one pod, and the next restart
// waits for a mirror pod that never settles.
type StrayManifestError struct {
	Node  string
	Files []string
}

func (e *StrayManifestError) Error() string {
	return fmt.Sprintf("node %s: %s in %s: the kubelet loads every non-dot file there, so a copy of a static pod makes it flip between two definitions; "+
		"move it out of %s (or rename it to start with a dot) and run the same command again to resume",
		e.Node, strings.Join(e.Files, ", "), ManifestsDir, ManifestsDir)
}

// BeforeStep re-checks a node just before a step changes it.
func (r *Rotation) BeforeStep(ctx context.Context, nodeName string) error {
	n := r.node(nodeName)
	if n == nil {
		return nil
	}
	strays, err := inspect.StrayManifests(ctx, n.Exec, ManifestsDir)
	if err != nil {
		return fmt.Errorf("node %s: list %s: %w", nodeName, ManifestsDir, err)
	}
	if len(strays) > 0 {
		return &StrayManifestError{Node: nodeName, Files: strays}
	}
	return nil
}

func (r *Rotation) node(name string) *Node {
	for _, n := range r.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}
