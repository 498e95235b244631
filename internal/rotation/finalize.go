package rotation

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/kubeconfig"
	"github.com/carotate/carotate/internal/manifest"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// oldDependents lists what carotate can see that still presents a
// certificate from the old cluster CA: kubeconfig client certificates and
// kubelet client certificates, on every node. Finalize makes every
// apiserver reject them, so it must find none.
func (r *Rotation) oldDependents(ctx context.Context) ([]string, error) {
	if r.M.Renew {
		return nil, nil // the renewed certificate verifies what the old one signed
	}
	old := r.M.Old[model.ClusterCA].Cert
	var out []string
	for _, n := range r.Nodes {
		for _, a := range rowsOn(n, r.M.roots(), func(a *Artefact) bool { return a.Role == RoleKubeconfig || a.Role == RoleKubeconfigCA }) {
			p := a.Path
			w, err := Current(ctx, n.Exec, p)
			if err != nil {
				return nil, err
			}
			if w.Absent {
				continue
			}
			cfg, err := kubeconfig.Parse(n.Name+":"+p, w.Data)
			if err != nil {
				return nil, err
			}
			var certs []*x509.Certificate
			switch {
			case len(cfg.ClientCertData) > 0:
				certs, err = pki.ParseCertificatesPEM(n.Name+":"+p, cfg.ClientCertData)
			case cfg.ClientCertFile != "":
				var data []byte
				if data, err = n.Exec.ReadFile(ctx, cfg.ClientCertFile); err != nil {
					return nil, err
				}
				certs, _, err = pki.ParseCertificateAndKeyPEM(n.Name+":"+cfg.ClientCertFile, data)
			default:
				continue
			}
			if err != nil {
				return nil, err
			}
			if certs[0].CheckSignatureFrom(old) == nil {
				out = append(out, fmt.Sprintf("%s:%s (%s)", n.Name, p, certs[0].Subject))
			}
		}
	}
	return out, nil
}

func (r *Rotation) nothingOldStep() engine.Step[*Rotation] {
	return engine.Step[*Rotation]{
		Name:   "nothing presents the old CA",
		Target: engine.Target{Object: "client certificates on every node"},
		NoUndo: true,
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			deps, err := r.oldDependents(ctx)
			if err != nil {
				return false, "", err
			}
			if len(deps) == 0 {
				return true, "no client certificate from the old CA", nil
			}
			return false, strings.Join(deps, ", "), nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			deps, err := r.oldDependents(ctx)
			if err != nil {
				return engine.Change{}, err
			}
			if len(deps) > 0 {
				return engine.Change{}, fmt.Errorf("these still present a certificate from the old CA, which finalize makes every apiserver reject: %s; run `carotate rotate` again to reissue them", strings.Join(deps, ", "))
			}
			return engine.Change{}, nil
		},
	}
}

// reloadWaitStep waits until every apiserver has had time to re-read
// apiserver-kubelet-client.crt, which it polls every 5 minutes: until then
// it may still present the old-CA certificate to kubelets, which finalize
// makes them reject (kubectl logs/exec would fail, FAILURE-MODES #12). An
// apiserver whose container started after the file was written read it
// at start, and needs no wait: that is every apiserver when switch
// restarted them (the service-account key or the etcd CA rotates; see
// groupRows). Before switch has written the new file (a plan made before
// rotate), the wait is still to come, and is not done.
func (r *Rotation) reloadWaitStep() engine.Step[*Rotation] {
	const file = PKIDir + "/apiserver-kubelet-client.crt"
	type wait struct {
		longest  time.Duration
		unissued []string // control planes whose file switch has not written yet
		restart  bool     // switch restarts kube-apiserver after writing it
	}
	remaining := func(ctx context.Context) (wait, error) {
		var w wait
		for _, n := range r.controlPlanes() {
			data, err := n.Exec.ReadFile(ctx, file)
			if err != nil {
				return w, err
			}
			certs, err := pki.ParseCertificatesPEM(n.Name+":"+file, data)
			if err != nil {
				return w, err
			}
			if certs[0].CheckSignatureFrom(r.M.New[model.ClusterCA].Cert) != nil {
				w.unissued = append(w.unissued, n.Name)
				moved := slices.ContainsFunc(groupRows(n, Switched, r.M)[groupAPIServer], func(a *Artefact) bool { return a.Path == file })
				if moved {
					w.restart = true
				} else {
					w.longest = max(w.longest, r.ReloadWait)
				}
				continue
			}
			st, err := n.Exec.Stat(ctx, file)
			if err != nil {
				return w, err
			}
			if r.startedAfter(ctx, n, st.ModTime) {
				continue
			}
			w.longest = max(w.longest, st.ModTime.Add(r.ReloadWait).Sub(r.now()))
		}
		return w, nil
	}
	return engine.Step[*Rotation]{
		Name:   "kube-apiserver re-reads apiserver-kubelet-client.crt",
		Target: engine.Target{Object: "kube-apiserver --kubelet-client-certificate"},
		NoUndo: true,
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			w, err := remaining(ctx)
			if err != nil {
				return false, "", err
			}
			if len(w.unissued) > 0 {
				return false, fmt.Sprintf("%s on %s is not yet from the new CA", file, strings.Join(w.unissued, ", ")), nil
			}
			if w.longest <= 0 {
				return true, "re-read", nil
			}
			return false, fmt.Sprintf("%s to wait", w.longest.Round(time.Second)), nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			w, err := remaining(ctx)
			if err != nil {
				return engine.Change{}, err
			}
			if len(w.unissued) > 0 {
				return engine.Change{}, fmt.Errorf("%s on %s is not issued by the new cluster CA, so switch has not finished there: run `carotate rotate` again before finalize", file, strings.Join(w.unissued, ", "))
			}
			if err := r.waitSaying(ctx, w.longest, "kube-apiserver to re-read "+file+" (it polls it every 5 minutes)"); err != nil {
				return engine.Change{}, err
			}
			return engine.Change{Changed: w.longest > 0, Detail: fmt.Sprintf("waited %s", w.longest.Round(time.Second))}, nil
		},
		Describe: func(ctx context.Context, r *Rotation) (engine.Plan, error) {
			w, _ := remaining(ctx)
			if w.longest <= 0 && w.restart {
				return engine.Plan{Summary: "no wait: switch restarts kube-apiserver after writing the file, so it reads it at start"}, nil
			}
			return engine.Plan{Summary: fmt.Sprintf("wait up to %s: the apiserver polls this file every 5 minutes", w.longest.Round(time.Second))}, nil
		},
	}
}

// progressEvery is how often a long wait says it is still waiting.
var progressEvery = 10 * time.Second

// waitSaying waits d, or until ctx ends, and logs every progressEvery
// what it waits for and how long is left, so that a wait of minutes is
// not silent.
func (r *Rotation) waitSaying(ctx context.Context, d time.Duration, what string) error {
	if d <= 0 {
		return nil
	}
	done := time.NewTimer(d)
	defer done.Stop()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	countdown := time.NewTicker(time.Second)
	defer countdown.Stop()
	end := time.Now().Add(d)
	engine.Wait(ctx, fmt.Sprintf("%s, %s left", what, d.Round(time.Second)))
	if r.Log != nil {
		r.Log.Info("waiting", "for", what, "left", d.Round(time.Second))
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done.C:
			return nil
		case <-countdown.C:
			engine.Wait(ctx, fmt.Sprintf("%s, %s left", what, time.Until(end).Round(time.Second)))
		case <-tick.C:
			if r.Log != nil {
				r.Log.Info("waiting", "for", what, "left", time.Until(end).Round(time.Second))
			}
		}
	}
}

// startedAfter says whether n's kube-apiserver container started after t,
// by its mirror pod. The kubelet reports the start to the second, rounded
// down, so a start in the same second as t does not count. When the API
// cannot tell, the answer is no, and the caller waits for the poll.
func (r *Rotation) startedAfter(ctx context.Context, n *Node, t time.Time) bool {
	if r.Client == nil {
		return false
	}
	st, err := r.staticPod(ctx, manifest.KubeAPIServer, n.Name)
	if err != nil || st.Started.IsZero() {
		return false
	}
	return st.Started.After(t.Truncate(time.Second))
}
