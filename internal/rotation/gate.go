package rotation

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/verify"
)

// gate verifies the cluster at stage s:
//   - every node Ready (but those allowed not to be), every control-plane
//     component's mirror pod Running and Ready (waited for: a restart ends
//     when kube-controller-manager and kube-scheduler serve, before
//     kubeadm's startup probe lets them turn Ready);
//   - no TLS error logged since the phase began in this run (the engine
//     says when) by the control-plane components, kube-proxy or the
//     kubelets;
//   - a fresh handshake to every apiserver verifies against the CA the
//     stage serves with, and only that one;
//   - from switch on, a client certificate from the new CA is accepted;
//     once finalized, one from the old CA is refused everywhere.
func (r *Rotation) gate(s Stage) *engine.Gate[*Rotation] {
	phase := s.String()
	return &engine.Gate[*Rotation]{
		Name: "verify " + phase,
		Verify: func(ctx context.Context, r *Rotation, since time.Time) (string, error) {
			var done []string
			allow := map[string]bool{}
			var cps []string
			for _, n := range r.Nodes {
				if n.AllowUnready {
					allow[n.Name] = true
				}
				if n.ControlPlane {
					cps = append(cps, n.Name)
				}
			}
			if err := verify.NodesReady(ctx, r.Client, allow); err != nil {
				return "", err
			}
			if err := r.waitControlPlaneReady(ctx, cps); err != nil {
				return "", err
			}
			done = append(done, fmt.Sprintf("%d nodes Ready", len(r.Nodes)))

			var logs []verify.NodeLogs
			for _, n := range r.Nodes {
				if !n.AllowUnready {
					logs = append(logs, verify.NodeLogs{Name: n.Name, Exec: n.Exec})
				}
			}
			res, err := verify.ScanTLSErrors(ctx, logs, since, verify.ScanOptions{KubeletCommand: r.KubeletLog, Forgive: r.pairs.forgiven(since)})
			if err != nil {
				return "", fmt.Errorf("read the logs: %w", err)
			}
			if err := res.Err(); err != nil {
				return "", err
			}
			clean := fmt.Sprintf("no TLS errors in %d logs since %s", len(res.Scanned), since.Format(time.TimeOnly))
			if res.Forgiven > 0 {
				clean += fmt.Sprintf(" (%d forgiven: logged while a certificate and its key were renamed)", res.Forgiven)
			}
			done = append(done, clean)

			oldCA, newCA := r.M.Old[model.ClusterCA], r.M.New[model.ClusterCA]
			served := oldCA
			if s >= Switched {
				served = newCA
			}
			roots := []*x509.Certificate{served.Cert}
			if err := verify.ServingCAAll(ctx, r.Endpoints, roots); err != nil {
				return "", err
			}
			done = append(done, fmt.Sprintf("%d apiserver endpoints serve from the %s CA", len(r.Endpoints), map[bool]string{true: "new", false: "old"}[s >= Switched]))

			if s >= Switched {
				cert, err := verify.MintClientCert(newCA, "carotate:verify-new", r.now())
				if err != nil {
					return "", err
				}
				if err := verify.RequireAccepted(ctx, r.Endpoints, roots, cert, "new cluster CA"); err != nil {
					return "", err
				}
				done = append(done, "new-CA client certificate accepted")
			}
			if s == Finalized && r.M.Renew {
				cert, err := verify.MintClientCert(oldCA, "carotate:verify-old", r.now())
				if err != nil {
					return "", err
				}
				if err := verify.RequireAccepted(ctx, r.Endpoints, roots, cert, "cluster CA certificate before the renewal"); err != nil {
					return "", err
				}
				done = append(done, "a client certificate from the certificate before the renewal still accepted")
			} else if s == Finalized {
				cert, err := verify.MintClientCert(oldCA, "carotate:verify-old", r.now())
				if err != nil {
					return "", err
				}
				if err := verify.RequireRejected(ctx, r.Endpoints, roots, cert, "old cluster CA"); err != nil {
					return "", err
				}
				done = append(done, "old-CA client certificate rejected")
			}
			if r.rotatesEtcd() {
				d, err := r.verifyEtcd(ctx, s)
				if err != nil {
					return "", err
				}
				done = append(done, d...)
			}
			return strings.Join(done, ", "), nil
		},
	}
}

// waitControlPlaneReady waits until every control-plane component's
// mirror pod on cps is Running and Ready, for at most the static-pod
// timeout, and returns what was last wrong.
func (r *Rotation) waitControlPlaneReady(ctx context.Context, cps []string) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, time.Second, r.timeouts().StaticPod, true, func(ctx context.Context) (bool, error) {
		last = verify.ControlPlaneReady(ctx, r.Client, cps)
		return last == nil, nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("after %s: %w", r.timeouts().StaticPod, last)
	}
	return err
}
