package rotation

import (
	"context"
	"fmt"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/workload"
)

// rootCAStep waits until kube-controller-manager published the stage's
// root CA bundle into every namespace. The control-plane steps before it
// restarted every KCM with that --root-ca-file, so whichever holds the
// leader lease publishes it (SEED-GAPS G17).
func (r *Rotation) rootCAStep(s Stage) engine.Step[*Rotation] {
	want := func() []byte {
		if s == Finalized {
			return pki.BuildBundle(r.M.New[model.ClusterCA].Cert)
		}
		return pki.BuildBundle(r.M.Old[model.ClusterCA].Cert, r.M.New[model.ClusterCA].Cert)
	}
	return engine.Step[*Rotation]{
		Name:   "kube-root-ca.crt",
		Target: engine.Target{Object: "ConfigMap */kube-root-ca.crt"},
		NoUndo: true, // KCM republishes whatever its --root-ca-file holds once rolled back
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			st, _, err := workload.RootCAStatusNow(ctx, r.Client, want())
			if err != nil {
				return false, "", err
			}
			return st.Matching == st.Namespaces, fmt.Sprintf("%s in %d/%d namespaces", describeBundle(s), st.Matching, st.Namespaces), nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			st, err := workload.WaitRootCA(ctx, r.Client, want(), r.timeouts().RootCA)
			if err != nil {
				return engine.Change{}, err
			}
			// Changed: the step had to wait for it, which is worth seeing.
			return engine.Change{Changed: true, Detail: fmt.Sprintf("kube-root-ca.crt holds the %s in %d/%d namespaces", describeBundle(s), st.Matching, st.Namespaces)}, nil
		},
		Describe: func(ctx context.Context, r *Rotation) (engine.Plan, error) {
			return engine.Plan{Summary: "wait until every namespace's kube-root-ca.crt holds the " + describeBundle(s)}, nil
		},
	}
}

// rootCARestoredStep is first in trust so that rollback undoes it last,
// once every kube-controller-manager runs with its original --root-ca-file
// again: it waits until every namespace's kube-root-ca.crt is back to the
// old CA alone, so that a rolled-back cluster is whole (and a new rotation
// does not find a bundle there).
func (r *Rotation) rootCARestoredStep() engine.Step[*Rotation] {
	return engine.Step[*Rotation]{
		Name:   "kube-root-ca.crt back to the old CA",
		Target: engine.Target{Object: "ConfigMap */kube-root-ca.crt"},
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			return true, "only rollback waits here", nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) { return engine.Change{}, nil },
		Undo: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			want, err := r.originalRootCA()
			if err != nil {
				return engine.Change{}, err
			}
			st, _, err := workload.RootCAStatusNow(ctx, r.Client, want)
			if err != nil {
				return engine.Change{}, err
			}
			if st.Matching == st.Namespaces {
				return engine.Change{}, nil
			}
			if st, err = workload.WaitRootCA(ctx, r.Client, want, r.timeouts().RootCA); err != nil {
				return engine.Change{}, err
			}
			return engine.Change{Changed: true, Detail: fmt.Sprintf("kube-root-ca.crt holds the old CA again in %d/%d namespaces", st.Matching, st.Namespaces)}, nil
		},
	}
}

// originalRootCA is what kube-controller-manager published before the
// rotation: the bytes of the first control plane's ca.crt.
func (r *Rotation) originalRootCA() ([]byte, error) {
	for _, n := range r.controlPlanes() {
		if f, ok := r.M.original(n.Name, caCert); ok {
			return f.Content, nil
		}
	}
	return nil, fmt.Errorf("no control plane's %s is in the backup", caCert)
}
