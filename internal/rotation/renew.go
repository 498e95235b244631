package rotation

import (
	"fmt"
	"strings"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// A renewal is a rotation whose new CAs are the old ones renewed: a new
// certificate over the same key and subject, with a new validity. Every
// certificate the old one signed verifies against the renewed one, so no
// client needs a new trust and no leaf a new certificate. The runbook is
// the rotation's, computed from the same catalogue; with the same key the
// rows come out so that:
//   - trust writes the renewed certificate beside the old one wherever the
//     old one is trusted (ca.crt, kubeconfigs, cluster-info,
//     kube-root-ca.crt through KCM's root-ca-file, caBundles), and KCM
//     signs with the renewed one;
//   - switch changes nothing: the CA keys are the same, and the leaves are
//     kept unless --leaves reissues them;
//   - finalize leaves the renewed certificate alone.
//
// Restarts follow from what changes: KCM and the scheduler, and each
// kubelet, for the kubeconfigs they read once; never kube-apiserver, which
// re-reads ca.crt and front-proxy-ca.crt.

// renewable refuses a renewal of roots it cannot renew, before anything
// is read: the service-account key has no certificate, the etcd CA is not
// renewed yet, and an imported CA is a new one.
func renewable(roots Roots, imports map[model.CAKind]*pki.CA, importSA pki.PrivateKey) error {
	if err := RenewableRoots(roots); err != nil {
		return err
	}
	if len(imports) > 0 || importSA.Signer() != nil {
		return fmt.Errorf("renew keeps each CA's key and makes its certificate itself; --ca-cert, --ca-key and the other import flags are for `carotate rotate`")
	}
	return nil
}

// RenewableRoots refuses the roots a renewal cannot renew.
func RenewableRoots(roots Roots) error {
	for _, r := range roots {
		switch r {
		case RootServiceAccountKey:
			return fmt.Errorf("--roots %s: the service-account key has no certificate to renew; leave it out of --roots, and rotate it with `carotate rotate --roots %s` after a leak", r, r)
		case RootEtcdCA:
			return fmt.Errorf("--roots %s: carotate does not renew the etcd CA yet; renew %s and %s, and rotate the etcd CA with `carotate rotate --roots %s` when it nears its end", r, RootClusterCA, RootFrontProxyCA, r)
		}
	}
	return nil
}

// renewCAs renews every old CA of the rotation, each from the key every
// control plane holds, and reissues the leaves only when asked.
func (m *Material) renewCAs(src Source) error {
	for _, k := range caKinds(m.roots()) {
		crt, key := caFiles(k)
		for _, n := range src.Nodes {
			if !n.ControlPlane {
				continue
			}
			if _, ok := m.original(n.Name, key); !ok {
				return fmt.Errorf("node %s: %s is missing: a renewal keeps the CA key, and every control-plane node must hold it; copy it there from another control plane (with %s), or rotate to a new CA with `carotate rotate`", n.Name, key, crt)
			}
		}
		ca, err := pki.RenewCA(m.Old[k], pki.RenewOptions{Now: src.Now, Validity: src.Validity})
		if err != nil {
			return fmt.Errorf("renew %s (%s): %w", crt, k, err)
		}
		m.New[k] = ca
	}
	if src.RenewLeaves {
		return m.ReissueLeaves(src.Nodes, src.Now)
	}
	m.Leaves = map[fileKey]Leaf{}
	return nil
}

// holds is what a row holds at each stage in this rotation: the
// catalogue's words, and in a renewal, where "new" is the renewed
// certificate over the old key, what the renewal changes of them. The CA
// keys stay; without --leaves, every leaf and client certificate stays
// and the switch changes nothing.
func (m *Material) holds(a *Artefact) [Finalized + 1]string {
	h := a.Holds
	if !m.Renew {
		return h
	}
	kept := func() {
		for s := range h {
			h[s] = h[Original]
		}
	}
	switch {
	case a.Role == RoleCAKey, a.Path == signingNewCert, a.Path == signingNewKey:
		kept() // the same key: KCM's copy of it is the renewed certificate from trust on
	case !m.keepsLeaves():
	case a.Role == RoleLeaf, a.Role == RoleLeafKey, a.Role == RoleClientLink:
		kept()
	default:
		h[Switched] = h[Trusted]
		if a.Role == RoleClientCert {
			h[Finalized] = h[Original]
		}
		if a.Role == RoleKubeconfig {
			h[Finalized] = strings.Replace(h[Finalized], "client new", "client old", 1)
		}
	}
	return h
}
