package rotation

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/kubeconfig"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// oldDependents lists what carotate can see that still presents a
// certificate from the old cluster CA: kubeconfig client certificates and
// kubelet client certificates, on every node. Finalize makes every
// apiserver reject them, so it must find none.
func (r *Rotation) oldDependents(ctx context.Context) ([]string, error) {
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
// makes them reject (kubectl logs/exec would fail, FAILURE-MODES #12).
func (r *Rotation) reloadWaitStep() engine.Step[*Rotation] {
	remaining := func(ctx context.Context) (time.Duration, error) {
		var longest time.Duration
		for _, n := range r.controlPlanes() {
			st, err := n.Exec.Stat(ctx, PKIDir+"/apiserver-kubelet-client.crt")
			if err != nil {
				return 0, err
			}
			if d := st.ModTime.Add(r.ReloadWait).Sub(r.now()); d > longest {
				longest = d
			}
		}
		return longest, nil
	}
	return engine.Step[*Rotation]{
		Name:   "kube-apiserver re-reads apiserver-kubelet-client.crt",
		Target: engine.Target{Object: "kube-apiserver --kubelet-client-certificate"},
		NoUndo: true,
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			d, err := remaining(ctx)
			if err != nil {
				return false, "", err
			}
			if d <= 0 {
				return true, "re-read", nil
			}
			return false, fmt.Sprintf("%s to wait", d.Round(time.Second)), nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			d, err := remaining(ctx)
			if err != nil {
				return engine.Change{}, err
			}
			if d > 0 {
				select {
				case <-ctx.Done():
					return engine.Change{}, ctx.Err()
				case <-time.After(d):
				}
			}
			return engine.Change{Changed: d > 0, Detail: fmt.Sprintf("waited %s", d.Round(time.Second))}, nil
		},
		Describe: func(ctx context.Context, r *Rotation) (engine.Plan, error) {
			d, _ := remaining(ctx)
			return engine.Plan{Summary: fmt.Sprintf("wait up to %s: the apiserver polls this file every 5 minutes", d.Round(time.Second))}, nil
		},
	}
}
