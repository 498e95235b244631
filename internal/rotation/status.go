package rotation

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// nodeFiles are every path of a node that changes during a rotation.
func (r *Rotation) nodeFiles(n *Node) []string {
	ps := BackupPaths(n.ControlPlane)
	ps = append(ps, r.M.kubeletClientFile())
	if n.ControlPlane {
		ps = append(ps, signingCert, signingKey, signingNewCert, signingNewKey, rootCAFile, newCACert, newCAKey, newFrontCert, newFrontKey)
	}
	return ps
}

// ObserveStages says, for every node, which stage its files are at, as
// observed now: "trust", or "between trust and switch: 3 of 12 files at
// switch". It is what status reports and what the journal is checked
// against.
func ObserveStages(ctx context.Context, r *Rotation) (map[string]string, error) {
	out := map[string]string{}
	stages := []Stage{Finalized, Switched, Trusted, Prepared, Original}
	for _, n := range r.Nodes {
		files := r.nodeFiles(n)
		at := map[Stage]int{}
		var unknown []string
		for _, p := range files {
			cur, err := Current(ctx, n.Exec, p)
			if err != nil {
				return nil, err
			}
			hit := false
			for _, s := range stages {
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
				unknown = append(unknown, p)
			}
		}
		var full []Stage
		for _, s := range stages {
			if at[s] == len(files) {
				full = append(full, s)
			}
		}
		switch {
		case len(unknown) > 0:
			out[n.Name] = "changed outside carotate: " + strings.Join(unknown, ", ")
		case len(full) > 0:
			names := make([]string, len(full))
			for i, s := range full {
				names[i] = s.String()
			}
			sort.Strings(names)
			out[n.Name] = strings.Join(names, " = ")
		default:
			var parts []string
			for _, s := range stages {
				if at[s] > 0 {
					parts = append(parts, fmt.Sprintf("%d at %s", at[s], s))
				}
			}
			out[n.Name] = fmt.Sprintf("in transition (%d files: %s)", len(files), strings.Join(parts, ", "))
		}
	}
	return out, nil
}
