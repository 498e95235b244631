package rotation

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/workload"
)

// workloadOptions restarts, once per rotation, the workloads whose pods
// read the CA before kube-root-ca.crt held old and new: client-go reads
// ca.crt once, so those pods would fail at switch (FAILURE-MODES #6).
func (r *Rotation) workloadOptions(ctx context.Context) (workload.Options, error) {
	times, err := workload.RootCAUpdateTimes(ctx, r.Client)
	if err != nil {
		return workload.Options{}, err
	}
	return workload.Options{
		Annotation:     r.M.RotationID + "/" + PhaseTrust,
		Since:          func(ns string) time.Time { return times[ns] },
		RolloutTimeout: r.timeouts().Rollout,
		Concurrency:    r.WorkloadConcurrency,
		Progress: func(msg string) {
			engine.Wait(ctx, msg)
			if r.Log != nil {
				r.Log.Info(msg)
			}
		},
	}, nil
}

func (r *Rotation) workloadsStep() engine.Step[*Rotation] {
	return engine.Step[*Rotation]{
		Name:   "restart workloads that read the old trust",
		Target: engine.Target{Object: "Deployments, DaemonSets, StatefulSets, bare Pods"},
		NoUndo: true, // pods that trust old and new keep working after a rollback
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			st, _, err := workload.RootCAStatusNow(ctx, r.Client, pki.BuildBundle(r.M.Old[model.ClusterCA].Cert, r.M.New[model.ClusterCA].Cert))
			if err != nil {
				return false, "", err
			}
			if st.Matching < st.Namespaces {
				return false, "after kube-root-ca.crt holds old and new", nil
			}
			opts, err := r.workloadOptions(ctx)
			if err != nil {
				return false, "", err
			}
			p, err := workload.PlanRestarts(ctx, r.Client, opts)
			if err != nil {
				return false, "", err
			}
			if len(p.Restart)+len(p.Evict) == 0 {
				return true, fmt.Sprintf("every pod started after the bundle reached it (%d already restarted)", len(p.AlreadyDone)), nil
			}
			return false, fmt.Sprintf("%d to restart, %d to evict", len(p.Restart), len(p.Evict)), nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			opts, err := r.workloadOptions(ctx)
			if err != nil {
				return engine.Change{}, err
			}
			res, err := workload.Restart(ctx, r.Client, opts)
			if err != nil {
				return engine.Change{}, err
			}
			detail := fmt.Sprintf("%d restarted, %d evicted", res.Restarted, res.Evicted)
			if len(res.Skipped) > 0 {
				var s []string
				for _, w := range res.Skipped {
					s = append(s, w.String()+" ("+w.Reason+")")
				}
				detail += "; left alone: " + strings.Join(s, ", ")
			}
			return engine.Change{Changed: res.Restarted+res.Evicted > 0, Detail: detail}, nil
		},
		Describe: func(ctx context.Context, r *Rotation) (engine.Plan, error) {
			var pl engine.Plan
			opts, err := r.workloadOptions(ctx)
			if err != nil {
				return pl, err
			}
			st, _, err := workload.RootCAStatusNow(ctx, r.Client, pki.BuildBundle(r.M.Old[model.ClusterCA].Cert, r.M.New[model.ClusterCA].Cert))
			if err != nil {
				return pl, err
			}
			if st.Matching < st.Namespaces {
				// The bundle has not reached the namespaces yet: every pod
				// running now will have started before it.
				now := r.now()
				opts.Since = func(string) time.Time { return now }
			}
			p, err := workload.PlanRestarts(ctx, r.Client, opts)
			if err != nil {
				return pl, err
			}
			var names []string
			for _, w := range append(p.Restart, p.Evict...) {
				names = append(names, w.String())
				pl.Restarts = append(pl.Restarts, engine.Restart{Component: w.String()})
			}
			pl.Summary = "after trust, restart in this order: " + strings.Join(names, ", ")
			if len(names) == 0 {
				pl.Summary = "after trust, restart the workloads whose pods started before kube-root-ca.crt held old and new (kube-proxy and CNI, then CoreDNS, then the rest)"
			}
			return pl, nil
		},
	}
}

// newOnlyPodsStep acts only on the way back. Once finalize has begun,
// kube-controller-manager may have published a new-only kube-root-ca.crt,
// and pods started since read it once, at start: when a rollback makes the
// apiserver serve the old CA again, they would fail with x509 errors. It
// sits first in finalize, so a rollback undoes it last there: after the
// control planes trust old and new again and kube-root-ca.crt holds both,
// the pods started since finalize began are restarted through the same
// machinery as trust's restarts (rollouts, PodDisruptionBudgets).
func (r *Rotation) newOnlyPodsStep() engine.Step[*Rotation] {
	return engine.Step[*Rotation]{
		Name:   "restart pods that may trust only the new CA",
		Target: engine.Target{Object: "Deployments, DaemonSets, StatefulSets, bare Pods"},
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			return true, "only a rollback of finalize restarts them", nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			return engine.Change{}, nil
		},
		Undo: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			if r.FinalizeStarted.IsZero() {
				return engine.Change{Detail: "finalize never began"}, nil
			}
			if r.M.Renew {
				return engine.Change{Detail: "a renewal keeps the key: a pod that trusts only the renewed certificate verifies the old one's"}, nil
			}
			oldNew := pki.BuildBundle(r.M.Old[model.ClusterCA].Cert, r.M.New[model.ClusterCA].Cert)
			if _, err := workload.WaitRootCA(ctx, r.Client, oldNew, r.timeouts().RootCA); err != nil {
				return engine.Change{}, err
			}
			opts, err := r.workloadOptions(ctx)
			if err != nil {
				return engine.Change{}, err
			}
			opts.Annotation = r.M.RotationID + "/rollback-" + PhaseFinalize
			opts.StartedAfter = r.FinalizeStarted
			res, err := workload.Restart(ctx, r.Client, opts)
			if err != nil {
				return engine.Change{}, err
			}
			detail := fmt.Sprintf("%d restarted, %d evicted (started after finalize began at %s)", res.Restarted, res.Evicted, r.FinalizeStarted.UTC().Format(time.RFC3339))
			return engine.Change{Changed: res.Restarted+res.Evicted > 0, Detail: detail}, nil
		},
	}
}
