package rotation

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"

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
		for _, a := range rowsOn(n, func(a *Artefact) bool { return a.Role == RoleKubeconfig || a.Role == RoleKubeconfigCA }) {
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
