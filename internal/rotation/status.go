package rotation

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// nodeFiles are every path of a node that changes during a rotation: its
// catalogue rows.
func (r *Rotation) nodeFiles(n *Node) []string {
	var ps []string
	for _, a := range rowsOn(n, r.M.roots(), nil) {
		ps = append(ps, a.path(r.M))
	}
	return ps
}

// NodeStage is where a node's files are, as observed: all at one stage
// (or at several, where those stages hold the same files), in transition
// between stages, or changed outside carotate.
type NodeStage struct {
	// At are the stages every file is at, latest first. Empty when the
	// node is in transition or changed.
	At []Stage
	// Files is how many files were looked at; Counts, when in transition,
	// how many of them are at each stage, latest first. A file can be at
	// several stages at once.
	Files  int
	Counts []StageCount
	// Changed are the files at no stage: changed outside carotate.
	Changed []string
}

// StageCount is how many of a node's files are at a stage.
type StageCount struct {
	Stage Stage
	Files int
}

// Is says whether every file of the node is at s. A node in transition is
// at no stage, whichever stages its files are at.
func (n NodeStage) Is(s Stage) bool { return slices.Contains(n.At, s) }

// InTransition says the node's files are at different stages: a step on
// it was interrupted.
func (n NodeStage) InTransition() bool { return len(n.At) == 0 && len(n.Changed) == 0 }

// String is what status shows: "trust", "original = prepare" where those
// stages agree, "in transition (12 files: 3 at switch, 9 at trust)", or
// "changed outside carotate: PATHS".
func (n NodeStage) String() string {
	switch {
	case len(n.Changed) > 0:
		return "changed outside carotate: " + strings.Join(n.Changed, ", ")
	case len(n.At) > 0:
		names := make([]string, len(n.At))
		for i, s := range n.At {
			names[i] = s.String()
		}
		sort.Strings(names)
		return strings.Join(names, " = ")
	default:
		parts := make([]string, len(n.Counts))
		for i, c := range n.Counts {
			parts[i] = fmt.Sprintf("%d at %s", c.Files, c.Stage)
		}
		return fmt.Sprintf("in transition (%d files: %s)", n.Files, strings.Join(parts, ", "))
	}
}

// observedStages are the stages a file is compared with, latest first.
var observedStages = []Stage{Finalized, Switched, Trusted, Prepared, Original}

// nodeStage classifies a node from how many of its files are at each
// stage, and which are at none.
func nodeStage(files int, at map[Stage]int, changed []string) NodeStage {
	n := NodeStage{Files: files, Changed: changed}
	if len(changed) > 0 {
		return n
	}
	for _, s := range observedStages {
		if at[s] == files {
			n.At = append(n.At, s)
		}
	}
	if len(n.At) > 0 {
		return n
	}
	for _, s := range observedStages {
		if at[s] > 0 {
			n.Counts = append(n.Counts, StageCount{Stage: s, Files: at[s]})
		}
	}
	return n
}

// ObserveStages says, for every node, which stage its files are at, as
// observed now. It is what status reports and what the record is checked
// against.
func ObserveStages(ctx context.Context, r *Rotation) (map[string]NodeStage, error) {
	out := map[string]NodeStage{}
	for _, n := range r.Nodes {
		files := r.nodeFiles(n)
		at := map[Stage]int{}
		var changed []string
		for _, p := range files {
			cur, err := Current(ctx, n.Exec, p)
			if err != nil {
				return nil, err
			}
			hit := false
			for _, s := range observedStages {
				w, err := r.M.At(n, p, s)
				if err != nil {
					return nil, err
				}
				if cur.equal(w) {
					at[s]++
					hit = true
				}
			}
			if !hit {
				changed = append(changed, p)
			}
		}
		out[n.Name] = nodeStage(len(files), at, changed)
	}
	return out, nil
}

// NotAt lists, sorted, the nodes that are not all at stage s.
func NotAt(observed map[string]NodeStage, s Stage) []string {
	var out []string
	for name, n := range observed {
		if !n.Is(s) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
