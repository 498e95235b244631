package rotation

import (
	"crypto/x509"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"

	"github.com/carotate/carotate/internal/model"
)

// OutsideCredential is a client certificate carotate did not issue and
// will not reissue, still valid, that the old cluster CA signed: every
// apiserver rejects it once finalize distrusts that CA.
type OutsideCredential struct {
	// Where names it: "CertificateSigningRequest NAME" or "node:path".
	Where   string    `json:"where"`
	Subject string    `json:"subject"`
	Expires time.Time `json:"expires"`
	// Signer, Username and Groups are the CSR's, when it came from one.
	Signer   string   `json:"signer,omitempty"`
	Username string   `json:"username,omitempty"`
	Groups   []string `json:"groups,omitempty"`
}

func (c OutsideCredential) String() string {
	s := fmt.Sprintf("%s: %s, expires %s", c.Where, c.Subject, c.Expires.UTC().Format(time.DateOnly))
	if c.Signer != "" {
		s += fmt.Sprintf(", signer %s, requested by %s", c.Signer, c.Username)
		if groups := slices.DeleteFunc(slices.Clone(c.Groups), func(g string) bool { return g == "system:authenticated" }); len(groups) > 0 {
			s += " (" + strings.Join(groups, ", ") + ")"
		}
	}
	return s
}

// OutsideCredentials lists what the cluster shows of client certificates
// issued outside carotate that the old cluster CA signed and that have not
// expired: the certificates of approved CSRs, and the client certificates
// of the kubeconfigs inspection read (every *.conf in /etc/kubernetes, and
// any a static pod's flag names) that the catalogue does not name.
// It leaves out the kubelet client certificates of the nodes the rotation
// reissues (the CSRs of their bootstrap and renewals).
//
// It is what finalize would lock out that carotate cannot replace. It is
// not everything: KCM deletes an issued CSR one to two hours after its
// approval, and a kubeconfig outside /etc/kubernetes is never read.
func (r *Rotation) OutsideCredentials(c model.Cluster, now time.Time) []OutsideCredential {
	old := r.M.Old[model.ClusterCA].Cert
	if old == nil || r.M.Renew {
		return nil
	}
	fromOld := func(mc *model.Cert) (*x509.Certificate, bool) {
		if mc == nil || !now.Before(mc.NotAfter) {
			return nil, false
		}
		cert, err := x509.ParseCertificate(mc.Raw)
		if err != nil || cert.CheckSignatureFrom(old) != nil {
			return nil, false
		}
		return cert, true
	}
	reissued := map[string]bool{}
	owned := map[string]bool{}
	for _, n := range r.Nodes {
		reissued["system:node:"+n.Name] = true
		for _, a := range rowsOn(n, r.M.roots(), func(a *Artefact) bool { return a.Role == RoleKubeconfig || a.Role == RoleKubeconfigCA }) {
			owned[n.Name+":"+a.Path] = true
		}
	}
	var out []OutsideCredential
	for _, ic := range c.API.IssuedCertificates {
		cert, ok := fromOld(ic.Cert)
		if !ok {
			continue
		}
		if ic.Signer == certificatesv1.KubeAPIServerClientKubeletSignerName && reissued[cert.Subject.CommonName] {
			continue
		}
		out = append(out, OutsideCredential{Where: "CertificateSigningRequest " + ic.CSR, Subject: cert.Subject.String(), Expires: cert.NotAfter,
			Signer: ic.Signer, Username: ic.Username, Groups: ic.Groups})
	}
	for _, n := range c.Nodes {
		for _, kc := range n.Kubeconfigs {
			if owned[n.Name+":"+kc.Path] {
				continue
			}
			cert, ok := fromOld(kc.ClientCert)
			if !ok {
				continue
			}
			out = append(out, OutsideCredential{Where: n.Name + ":" + kc.Path, Subject: cert.Subject.String(), Expires: cert.NotAfter})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Where < out[j].Where })
	return out
}
