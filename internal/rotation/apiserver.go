package rotation

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/verify"
)

// waitAPIServerServing waits, after a kube-apiserver restart, until it
// answers /readyz OK on its own address and, behind a load balancer, the
// balancer sends it new connections again: a handshake through the
// balancer's address presents this apiserver's certificate. Only then may
// the next control plane's apiserver restart, or clients that the balancer
// moved away would find no apiserver at all.
func (r *Rotation) waitAPIServerServing(ctx context.Context, n *Node, s Stage) error {
	if n.APIServer == "" || n.AllowUnready {
		return nil
	}
	roots := r.servingRoots()
	var why string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, r.timeouts().StaticPod, true, func(ctx context.Context) (bool, error) {
		if why != "" {
			engine.Wait(ctx, "kube-apiserver on "+n.Name+" to serve: "+why)
		}
		if err := verify.Readyz(ctx, n.APIServer, roots); err != nil {
			why = err.Error()
			return false, nil
		}
		ok, err := r.balancerSends(ctx, n)
		if err != nil || !ok {
			why = fmt.Sprintf("the load balancer %s does not send connections to %s yet", r.balancer(), n.APIServer)
			if err != nil {
				why += ": " + err.Error()
			}
		}
		return ok, nil
	})
	if err != nil {
		return fmt.Errorf("node %s: kube-apiserver restarted for %s but is not serving (%s); look at its container log on the node: %w", n.Name, s, why, err)
	}
	return nil
}

// servingRoots are the CAs an apiserver may serve from during a rotation.
func (r *Rotation) servingRoots() []*x509.Certificate {
	out := []*x509.Certificate{r.M.Old[model.ClusterCA].Cert}
	if c := r.M.New[model.ClusterCA]; c != nil {
		out = append(out, c.Cert)
	}
	return out
}

// balancer is the address clients use when it is not an apiserver's own:
// the load balancer in front of them; "" when there is none.
func (r *Rotation) balancer() string {
	for _, ep := range r.Endpoints {
		if !slices.ContainsFunc(r.Nodes, func(n *Node) bool { return n.APIServer == ep }) {
			return ep
		}
	}
	return ""
}

// balancerSends reports whether a new connection through the balancer can
// reach n's apiserver: of a few handshakes through it (a round-robin
// balancer spreads them over the apiservers it thinks healthy), one
// presents n's serving certificate.
func (r *Rotation) balancerSends(ctx context.Context, n *Node) (bool, error) {
	lb := r.balancer()
	if lb == "" {
		return true, nil
	}
	own, err := verify.ServedLeaf(ctx, n.APIServer)
	if err != nil {
		return false, err
	}
	tries := 2*len(r.controlPlanes()) + 1
	for range tries {
		got, err := verify.ServedLeaf(ctx, lb)
		if err != nil {
			return false, err
		}
		if got.Equal(own) {
			return true, nil
		}
	}
	return false, nil
}
