package check

import (
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/carotate/carotate/internal/manifest"
	"github.com/carotate/carotate/internal/model"
)

// DefaultCertificatesDir is kubeadm's certificatesDir.
const DefaultCertificatesDir = "/etc/kubernetes/pki"

func certificatesDir(c model.Cluster) string {
	if k := c.API.KubeadmConfig; k != nil && k.CertificatesDir != "" {
		return path.Clean(k.CertificatesDir)
	}
	return DefaultCertificatesDir
}

// Nodes reports nodes that cannot take part in a rotation (unreachable,
// NotReady), nodes the inventory file skips, and what could not be read on
// the others.
func Nodes(c model.Cluster, _ Options) []Finding {
	var out []Finding
	for _, n := range c.Nodes {
		switch {
		case n.Skipped:
			out = append(out, Finding{ID: "node-skipped", Severity: Warning, Subject: "node " + n.Name,
				Message: "the inventory file skips it: it was not inspected, and a rotation would leave its trust as it is",
				Action:  "make sure nothing on it trusts or presents a cluster certificate, or remove skip from its inventory entry"})
			continue
		case !n.Reachable:
			msg := n.Error
			if msg == "" {
				msg = "it could not be inspected"
			}
			out = append(out, Finding{ID: "node-unreachable", Severity: Blocking, Subject: "node " + n.Name, Message: msg,
				Action: "make it reachable (--ssh-user, --ssh-key, --ssh-known-hosts, or its entry in --inventory) and run check again"})
		}
		if !n.Ready {
			out = append(out, Finding{ID: "node-not-ready", Severity: Blocking, Subject: "node " + n.Name,
				Message: "the node is not Ready, so a rotation could not tell whether it broke it",
				Action:  fmt.Sprintf("bring it back to Ready (kubectl describe node %s) or remove it from the cluster, then run check again", n.Name)})
		}
		for _, w := range n.Warnings {
			out = append(out, Finding{ID: "node-warning", Severity: Warning, Subject: "node " + n.Name, Message: w,
				Action: "fix what it names, or make sure it does not matter for this node"})
		}
		for _, f := range n.Files {
			if f.ParseError != "" {
				out = append(out, Finding{ID: "file-unreadable", Severity: Warning, Subject: fileSubject(n.Name, f.Path),
					Message: f.ParseError, Action: "repair or remove the file; carotate cannot tell what it trusts"})
			}
		}
	}
	return out
}

// ClockSkew reports nodes whose clock is further off than MaxClockSkew:
// certificates minted on one clock are "not valid yet" on another.
func ClockSkew(c model.Cluster, o Options) []Finding {
	var out []Finding
	for _, n := range c.Nodes {
		if !n.Reachable {
			continue
		}
		off := n.ClockOffset
		if off < 0 {
			off = -off
		}
		if off > o.MaxClockSkew {
			out = append(out, Finding{ID: "clock-skew", Severity: Blocking, Subject: "node " + n.Name,
				Message: fmt.Sprintf("its clock is %s off ours (at most %s allowed)", n.ClockOffset.Round(time.Millisecond), o.MaxClockSkew),
				Action:  "synchronise its clock (chrony or systemd-timesyncd) and run check again"})
		}
	}
	return out
}

// Expiry reports CAs and the certificates in use that are expired or expire
// within ExpiryThreshold.
func Expiry(c model.Cluster, o Options) []Finding {
	var out []Finding
	for _, ca := range c.CAs {
		if ca.Kind == model.ServiceAccountCA || ca.Cert.NotAfter.IsZero() {
			continue
		}
		left := ca.Cert.NotAfter.Sub(o.Now)
		subject := CAName(ca) + " " + caWhere(ca)
		switch {
		case left <= 0:
			out = append(out, Finding{ID: "ca-expired", Severity: Blocking, Subject: subject,
				Message: fmt.Sprintf("expired on %s; nothing it signed verifies any more", ca.Cert.NotAfter.Format(time.DateOnly)),
				Action:  "a rotation cannot bridge an expired CA: recover the cluster with new certificates first (kubeadm certs renew does not renew CAs)"})
		case left < o.ExpiryThreshold:
			out = append(out, Finding{ID: "ca-expiring", Severity: Warning, Subject: subject,
				Message: fmt.Sprintf("expires on %s, in %s", ca.Cert.NotAfter.Format(time.DateOnly), days(left)),
				Action:  "rotate it before then (carotate rotate); it cannot be renewed in place"})
		}
	}
	certDir := certificatesDir(c)
	for _, n := range c.Nodes {
		refs := referencedPaths(n)
		for _, f := range n.Files {
			if !refs[f.Path] && !strings.HasPrefix(f.Path, certDir+"/") {
				// e.g. kubelet-client-2024-01-01.pem that the kubelet rotated away from
				continue
			}
			for i, cert := range f.Certs {
				if cert.IsCA {
					continue
				}
				subject := fileSubject(n.Name, f.Path)
				if len(f.Certs) > 1 {
					subject += fmt.Sprintf(" [%d]", i)
				}
				out = append(out, leafExpiry(subject, cert, o)...)
			}
		}
		for _, kc := range n.Kubeconfigs {
			if kc.ClientCert == nil || kc.ClientCertFile != "" {
				continue
			}
			subject := fileSubject(n.Name, kc.Path) + " users[" + kc.User + "].client-certificate-data"
			out = append(out, leafExpiry(subject, *kc.ClientCert, o)...)
		}
	}
	return out
}

func leafExpiry(subject string, cert model.Cert, o Options) []Finding {
	left := cert.NotAfter.Sub(o.Now)
	switch {
	case left <= 0:
		return []Finding{{ID: "cert-expired", Severity: Blocking, Subject: subject,
			Message: fmt.Sprintf("%s expired on %s", cert.Subject, cert.NotAfter.Format(time.DateOnly)),
			Action:  "renew it (kubeadm certs renew on that node, or restart the kubelet for its client certificate) and run check again"}}
	case left < o.ExpiryThreshold:
		return []Finding{{ID: "cert-expiring", Severity: Warning, Subject: subject,
			Message: fmt.Sprintf("%s expires on %s, in %s", cert.Subject, cert.NotAfter.Format(time.DateOnly), days(left)),
			Action:  "renew it (kubeadm certs renew) unless a rotation reissues it before then"}}
	}
	return nil
}

// referencedPaths are the files on a node that a flag, the kubelet config or
// a kubeconfig names: the ones in use.
func referencedPaths(n model.Node) map[string]bool {
	refs := map[string]bool{}
	add := func(p string) {
		if p != "" {
			refs[path.Clean(p)] = true
		}
	}
	for _, m := range n.Manifests {
		for _, f := range m.Flags {
			if strings.HasPrefix(f.Value, "/") {
				add(f.Value)
			}
		}
	}
	if k := n.Kubelet; k != nil {
		add(k.ClientCAFile)
		add(k.TLSCertFile)
	}
	for _, kc := range n.Kubeconfigs {
		add(kc.CAFile)
		add(kc.ClientCertFile)
	}
	return refs
}

// caPair is a kubeadm CA certificate and the key kubeadm pairs with it.
type caPair struct{ cert, key string }

func kubeadmCAPairs(certDir string) []caPair {
	return []caPair{
		{path.Join(certDir, "ca.crt"), path.Join(certDir, "ca.key")},
		{path.Join(certDir, "front-proxy-ca.crt"), path.Join(certDir, "front-proxy-ca.key")},
		{path.Join(certDir, "etcd/ca.crt"), path.Join(certDir, "etcd/ca.key")},
	}
}

func fileAt(n model.Node, p string) *model.File {
	for i := range n.Files {
		if n.Files[i].Path == p {
			return &n.Files[i]
		}
	}
	return nil
}

// CAFiles reports kubeadm CA files (ca.crt, front-proxy-ca.crt,
// etcd/ca.crt) that are not a single certificate matching the key next to
// them: kubeadm takes the first certificate as the pair of the key
// (FAILURE-MODES #2), and a rotation must start from one CA.
func CAFiles(c model.Cluster, _ Options) []Finding {
	var out []Finding
	for _, n := range c.Nodes {
		if !n.Reachable {
			continue
		}
		for _, p := range kubeadmCAPairs(certificatesDir(c)) {
			f := fileAt(n, p.cert)
			if f == nil || f.ParseError != "" {
				continue // absent (workers have only ca.crt) or reported by Nodes
			}
			subject := fileSubject(n.Name, p.cert)
			if len(f.Certs) != 1 {
				out = append(out, Finding{ID: "ca-file-not-single", Severity: Blocking, Subject: subject,
					Message: fmt.Sprintf("holds %d certificates where kubeadm expects exactly one CA; a rotation may be unfinished", len(f.Certs)),
					Action:  "finish or roll back the rotation in progress (carotate status); otherwise keep only the certificate that matches " + path.Base(p.key)})
				continue
			}
			k := fileAt(n, p.key)
			if k == nil || k.KeySPKISHA256 == "" {
				continue // workers hold no CA keys
			}
			if k.KeySPKISHA256 != f.Certs[0].SPKISHA256 {
				out = append(out, Finding{ID: "ca-key-mismatch", Severity: Blocking, Subject: subject,
					Message: fmt.Sprintf("its certificate does not match %s; kubeadm and kube-controller-manager would sign with a key no one trusts", p.key),
					Action:  "restore the matching pair from a backup before rotating"})
			}
		}
	}
	return out
}

// SigningFiles reports kubeadm#1350 hazards: kube-controller-manager's
// --cluster-signing-cert-file must hold exactly one certificate, matching
// --cluster-signing-key-file, or KCM fails; kubeadm points --root-ca-file
// and --client-ca-file at the same file.
func SigningFiles(c model.Cluster, _ Options) []Finding {
	var out []Finding
	for _, n := range c.Nodes {
		if !n.Reachable {
			continue
		}
		for _, m := range n.Manifests {
			if m.Component != manifest.KubeControllerManager {
				continue
			}
			certPath, ok := m.Value("cluster-signing-cert-file")
			if !ok || certPath == "" {
				continue
			}
			certPath = path.Clean(certPath)
			subject := fileSubject(n.Name, certPath) + " (kube-controller-manager --cluster-signing-cert-file)"
			var shared []string
			for _, flag := range []string{"root-ca-file", "client-ca-file"} {
				if v, ok := m.Value(flag); ok && path.Clean(v) == certPath {
					shared = append(shared, "--"+flag)
				}
			}
			f := fileAt(n, certPath)
			switch {
			case f == nil:
				out = append(out, Finding{ID: "signing-file-missing", Severity: Blocking, Subject: subject,
					Message: "the file was not found on the node; kube-controller-manager cannot sign certificates",
					Action:  "restore it from a backup, or point the flag at the cluster CA certificate"})
				continue
			case len(f.Certs) != 1:
				msg := fmt.Sprintf("holds %d certificates; kube-controller-manager needs exactly one (kubeadm#1350)", len(f.Certs))
				if len(shared) > 0 {
					msg += "; it is the same file as " + strings.Join(shared, " and ") + ", which is why a trust bundle ended up here"
				}
				out = append(out, Finding{ID: "signing-file-not-single", Severity: Blocking, Subject: subject, Message: msg,
					Action: "point --cluster-signing-cert-file and --cluster-signing-key-file at a single-certificate copy of the signing CA and its key, or finish the rotation in progress (carotate status)"})
				continue
			}
			if keyPath, ok := m.Value("cluster-signing-key-file"); ok && keyPath != "" {
				k := fileAt(n, path.Clean(keyPath))
				switch {
				case k == nil:
					out = append(out, Finding{ID: "signing-key-missing", Severity: Blocking, Subject: subject,
						Message: fmt.Sprintf("--cluster-signing-key-file %s was not found on the node", keyPath),
						Action:  "restore the key from a backup"})
				case k.KeySPKISHA256 != "" && k.KeySPKISHA256 != f.Certs[0].SPKISHA256:
					out = append(out, Finding{ID: "signing-key-mismatch", Severity: Blocking, Subject: subject,
						Message: fmt.Sprintf("the certificate does not match --cluster-signing-key-file %s; kube-controller-manager fails to start its signers", keyPath),
						Action:  "point both flags at a matching certificate and key (they move together, SEED-GAPS G2)"})
				}
			}
			if len(shared) > 0 {
				out = append(out, Finding{ID: "signing-file-shared", Severity: Info, Subject: subject,
					Message: "the same file as " + strings.Join(shared, " and ") + " (kubeadm's default); it must not become a bundle (kubeadm#1350)",
					Action:  "nothing: during a rotation carotate points the signer at a single-certificate copy and restores kubeadm's flags at finalize"})
			}
		}
	}
	return out
}

// StrayManifests reports non-dot files in manifests/ that are not the
// static pods themselves: the kubelet loads them too (FAILURE-MODES #4).
func StrayManifests(c model.Cluster, _ Options) []Finding {
	var out []Finding
	for _, n := range c.Nodes {
		for _, p := range n.StrayManifests {
			out = append(out, Finding{ID: "stray-manifest", Severity: Blocking, Subject: fileSubject(n.Name, p),
				Message: "the kubelet loads every file in manifests/ whose name does not start with a dot, so this one may run as a static pod, or win over the real one",
				Action:  fmt.Sprintf("move it out of %s (keep backups elsewhere) and run check again", path.Dir(p))})
		}
	}
	return out
}

// UnhandledTrust reports what trusts the cluster CA that a rotation does
// not move yet, so that it is refused before it starts rather than found
// broken after finalize:
//   - kube-apiserver --kubelet-certificate-authority naming the cluster
//     CA: the apiserver then verifies every kubelet's serving certificate,
//     which carotate does not reissue, so once the old CA is distrusted
//     kubectl logs, exec and port-forward fail on every such node;
//   - a cloud-controller-manager static pod that reads the cluster CA
//     from a file: carotate rewrites the file but does not restart it.
func UnhandledTrust(c model.Cluster, _ Options) []Finding {
	var out []Finding
	caPath := path.Join(certificatesDir(c), "ca.crt")
	for _, n := range c.Nodes {
		cluster := map[string]bool{}
		if f := fileAt(n, caPath); f != nil {
			for _, ct := range f.Certs {
				cluster[ct.SPKISHA256] = true
			}
		}
		// trustsClusterCA: the file is ca.crt, or holds a CA of it.
		trustsClusterCA := func(p string) bool {
			if p == caPath {
				return true
			}
			if f := fileAt(n, p); f != nil {
				for _, ct := range f.Certs {
					if cluster[ct.SPKISHA256] {
						return true
					}
				}
			}
			return false
		}
		for _, m := range n.Manifests {
			for _, f := range m.Flags {
				p := path.Clean(f.Value)
				switch {
				case !strings.HasPrefix(f.Value, "/") || !trustsClusterCA(p):
				case m.Component == manifest.KubeAPIServer && f.Name == "kubelet-certificate-authority":
					out = append(out, Finding{ID: "kubelet-serving-verified", Severity: Blocking,
						Subject: fileSubject(n.Name, m.Path) + " (kube-apiserver --kubelet-certificate-authority=" + f.Value + ")",
						Message: "kube-apiserver verifies every kubelet's serving certificate with the cluster CA; carotate does not reissue kubelet serving certificates, so after finalize kubectl logs, exec and port-forward would fail on every node whose serving certificate the old CA signed",
						Action:  "remove the flag for the rotation, then reissue the kubelets' serving certificates from the new CA (with serverTLSBootstrap: delete /var/lib/kubelet/pki/kubelet-server-current.pem, restart the kubelet, approve its CSR) before you add it back"})
				case m.Component == manifest.CloudControllerManager:
					out = append(out, Finding{ID: "cloud-controller-manager-trust", Severity: Blocking,
						Subject: fileSubject(n.Name, m.Path) + " (cloud-controller-manager --" + f.Name + "=" + f.Value + ")",
						Message: "cloud-controller-manager runs as a static pod and reads the cluster CA from a file; carotate would rewrite the file but does not restart cloud-controller-manager, which would keep trusting only the old CA",
						Action:  "run cloud-controller-manager as a Deployment or DaemonSet that trusts its service account's ca.crt (carotate restarts those), or rotate by hand"})
				}
			}
		}
	}
	return out
}

// KeyPermissions reports private key files that others than their owner
// may read or write.
func KeyPermissions(c model.Cluster, _ Options) []Finding {
	var out []Finding
	for _, n := range c.Nodes {
		for _, f := range n.Files {
			if f.Kind != model.FileKey && f.Kind != model.FileCertAndKey {
				continue
			}
			mode := fs.FileMode(f.Mode).Perm()
			if mode&0o077 == 0 {
				continue
			}
			who := "its group"
			if mode&0o007 != 0 {
				who = "every user on the node"
			}
			out = append(out, Finding{ID: "key-permissions", Severity: Warning, Subject: fileSubject(n.Name, f.Path),
				Message: fmt.Sprintf("a private key with mode %04o: %s can access it", mode, who),
				Action:  fmt.Sprintf("chmod 600 %s; if others may have read it, rotate what it belongs to", f.Path)})
		}
	}
	return out
}

// RotationInProgress reports signs that a rotation is under way or was
// left unfinished: the lock Lease, and bundles of several CAs where one CA
// is expected (kube-root-ca.crt, cluster-info, kubeconfigs, trust files).
// The kubeadm CA files themselves are CAFiles' and SigningFiles' business.
func RotationInProgress(c model.Cluster, _ Options) []Finding {
	var out []Finding
	if l := c.API.Lock; l != nil {
		out = append(out, Finding{ID: "rotation-locked", Severity: Blocking, Subject: "Lease kube-system/carotate-rotation-lock",
			Message: fmt.Sprintf("a rotation holds the lock: %s, acquired %s, renewed %s", l.Holder, l.Acquired.UTC().Format(time.RFC3339), l.RenewedAt.UTC().Format(time.RFC3339)),
			Action:  "let it finish (carotate status); if its holder is gone for good, resume or roll it back from the same state directory"})
	}
	var multi []string
	for _, b := range c.API.RootCAConfigMaps {
		if distinctCAs(b.Certs) > 1 {
			multi = append(multi, strings.TrimPrefix(b.Location.Object, "ConfigMap "))
		}
	}
	if len(multi) > 0 {
		out = append(out, Finding{ID: "root-ca-bundle", Severity: Blocking, Subject: "ConfigMap */kube-root-ca.crt",
			Message: fmt.Sprintf("%d namespaces' kube-root-ca.crt hold more than one CA (%s): a rotation is in its trust or switch phase", len(multi), abbreviate(multi, 3)),
			Action:  "finish or roll back the rotation in progress (carotate status)"})
	}
	if n := len(c.API.NamespacesWithoutRootCA); n > 0 {
		out = append(out, Finding{ID: "root-ca-missing", Severity: Warning, Subject: "ConfigMap */kube-root-ca.crt",
			Message: fmt.Sprintf("%d namespaces have no kube-root-ca.crt (%s); pods there cannot verify the API server", n, abbreviate(c.API.NamespacesWithoutRootCA, 3)),
			Action:  "check that kube-controller-manager runs and publishes it (its root-ca-cert-publisher), or ignore namespaces being deleted"})
	}
	if b := c.API.ClusterInfo; b != nil && distinctCAs(b.Certs) > 1 {
		out = append(out, Finding{ID: "cluster-info-bundle", Severity: Blocking, Subject: Describe(b.Location),
			Message: fmt.Sprintf("holds %d CAs: a rotation is in progress or did not finish", distinctCAs(b.Certs)),
			Action:  "finish or roll back the rotation (carotate status)"})
	}
	for _, b := range []*model.CABundle{c.API.ClientCA, c.API.RequestHeaderClientCA} {
		if b != nil && distinctCAs(b.Certs) > 1 {
			out = append(out, Finding{ID: "delegated-ca-bundle", Severity: Warning, Subject: Describe(b.Location),
				Message: fmt.Sprintf("holds %d CAs; the API server only ever adds to it (SEED-GAPS G12), so a past rotation's old CA may still be trusted by everything that authenticates by delegation", distinctCAs(b.Certs)),
				Action:  "after a finished rotation, remove the old CA from it; during one, leave it"})
		}
	}
	certDir := certificatesDir(c)
	kubeadmFiles := map[string]bool{}
	for _, p := range kubeadmCAPairs(certDir) {
		kubeadmFiles[p.cert] = true
	}
	for _, n := range c.Nodes {
		for _, kc := range n.Kubeconfigs {
			if k := distinctCAs(kc.CACerts); k > 1 && kc.CAFile == "" {
				out = append(out, Finding{ID: "kubeconfig-ca-bundle", Severity: Blocking,
					Subject: fileSubject(n.Name, kc.Path) + " clusters[" + kc.Cluster + "].certificate-authority-data",
					Message: fmt.Sprintf("trusts %d CAs: a rotation is in progress or did not finish", k),
					Action:  "finish or roll back the rotation (carotate status)"})
			}
		}
		tf := trustFiles(n)
		for _, p := range slices.Sorted(maps.Keys(tf)) {
			flags := tf[p]
			if kubeadmFiles[p] {
				continue
			}
			f := fileAt(n, p)
			if f == nil || distinctCAs(f.Certs) <= 1 {
				continue
			}
			out = append(out, Finding{ID: "trust-file-bundle", Severity: Blocking,
				Subject: fileSubject(n.Name, p) + " (" + strings.Join(flags, ", ") + ")",
				Message: fmt.Sprintf("trusts %d CAs: a rotation is in progress or did not finish", distinctCAs(f.Certs)),
				Action:  "finish or roll back the rotation (carotate status)"})
		}
	}
	return out
}

// trustFiles maps the files a node's components trust CAs from to the
// flags that name them.
func trustFiles(n model.Node) map[string][]string {
	out := map[string][]string{}
	for _, m := range n.Manifests {
		for _, f := range m.Flags {
			if f.Name == "cluster-signing-cert-file" || !(strings.HasSuffix(f.Name, "ca-file") || strings.HasSuffix(f.Name, "cafile") ||
				f.Name == "kubelet-certificate-authority") || !strings.HasPrefix(f.Value, "/") {
				continue
			}
			p := path.Clean(f.Value)
			out[p] = append(out[p], m.Component+" --"+f.Name)
		}
	}
	if k := n.Kubelet; k != nil && k.ClientCAFile != "" {
		p := path.Clean(k.ClientCAFile)
		out[p] = append(out[p], "KubeletConfiguration clientCAFile")
	}
	return out
}

// APIServices reports aggregated APIs that are not Available: the gates
// of a rotation wait for every APIService, and a broken one hides whether
// the rotation broke it (FAILURE-MODES #9).
func APIServices(c model.Cluster, _ Options) []Finding {
	var out []Finding
	for _, s := range c.API.APIServices {
		if s.Available {
			continue
		}
		msg := "not Available"
		if s.Message != "" {
			msg += ": " + s.Message
		}
		out = append(out, Finding{ID: "apiservice-unavailable", Severity: Blocking, Subject: "APIService " + s.Name, Message: msg,
			Action: fmt.Sprintf("fix the service behind it (kubectl describe apiservice %s) or delete the APIService if it is no longer used", s.Name)})
	}
	return out
}

// CABundles reports webhook configurations, APIServices and CRD conversion
// webhooks whose caBundle carries the cluster or front-proxy CA: they must
// be rotated along (FAILURE-MODES #8), and API fields that did not parse.
func CABundles(c model.Cluster, _ Options) []Finding {
	kinds := map[string]model.CA{}
	for _, ca := range c.CAs {
		if ca.Kind == model.ClusterCA || ca.Kind == model.FrontProxyCA {
			kinds[ca.Cert.SPKISHA256] = ca
		}
	}
	var out []Finding
	for _, b := range c.API.CABundles {
		seen := map[string]bool{}
		for _, cert := range b.Certs {
			ca, ok := kinds[cert.SPKISHA256]
			if !ok || seen[cert.SPKISHA256] {
				continue
			}
			seen[cert.SPKISHA256] = true
			out = append(out, Finding{ID: "cabundle-rotates-along", Severity: Warning, Subject: Describe(b.Location),
				Message: fmt.Sprintf("carries the %s: its server presents a certificate from a CA being rotated", CAName(ca)),
				Action: "carotate adds the new CA beside the old one at trust, and removes the old one at finalize once a TLS handshake shows its server presents a certificate the new CA verifies: " +
					"reissue that certificate from the new CA after switch; a caBundle that a controller injects (cert-manager's inject-ca-from annotation) is left to that controller, and whoever manages the object (an operator, a Helm chart) must not put the old bundle back"})
		}
	}
	out = append(out, retiredInBundles(c)...)
	for _, b := range allAPIBundles(c.API) {
		if b.Error != "" {
			out = append(out, Finding{ID: "api-object-unreadable", Severity: Warning, Subject: Describe(b.Location),
				Message: b.Error, Action: "repair the field; carotate cannot tell which CA it carries"})
		}
	}
	if k := c.API.KubeadmConfig; k != nil && k.Error != "" {
		out = append(out, Finding{ID: "api-object-unreadable", Severity: Warning, Subject: "ConfigMap kube-system/kubeadm-config",
			Message: k.Error, Action: "repair it (kubeadm upgrade and join read it); carotate falls back to kubeadm's default paths"})
	}
	return out
}

// retiredInBundles reports caBundles that still carry a CA a finalized
// rotation retired (carotate's status ConfigMap lists them): the webhook or
// aggregated API behind it still verifies against that CA, so its clients
// accept a server certificate whoever holds the old key can sign.
func retiredInBundles(c model.Cluster) []Finding {
	retired := map[string]model.CAKind{}
	for _, r := range c.API.RetiredCAs {
		retired[r.SPKISHA256] = r.Kind
	}
	var out []Finding
	for _, b := range c.API.CABundles {
		seen := map[string]bool{}
		for _, cert := range b.Certs {
			kind, ok := retired[cert.SPKISHA256]
			if !ok || seen[cert.SPKISHA256] {
				continue
			}
			seen[cert.SPKISHA256] = true
			out = append(out, Finding{ID: "cabundle-retired-ca", Severity: Warning, Subject: Describe(b.Location),
				Message: fmt.Sprintf("still carries the %s (%s) that a finalized rotation retired: its clients accept a server certificate whoever holds that old key can sign",
					CAName(model.CA{Kind: kind}), cert.Subject),
				Action: "remove that certificate from the bundle (or have whoever manages the object do so), once its server presents a certificate from the current CA"})
		}
	}
	return out
}

func allAPIBundles(api model.API) []model.CABundle {
	var out []model.CABundle
	out = append(out, api.RootCAConfigMaps...)
	for _, b := range []*model.CABundle{api.ClusterInfo, api.ClientCA, api.RequestHeaderClientCA} {
		if b != nil {
			out = append(out, *b)
		}
	}
	out = append(out, api.ClusterTrustBundles...)
	out = append(out, api.CABundles...)
	out = append(out, api.LegacyTokenSecrets...)
	return out
}

// LegacyTokens reports kubernetes.io/service-account-token Secrets: each
// embeds ca.crt, which no controller updates when the CA rotates.
func LegacyTokens(c model.Cluster, _ Options) []Finding {
	var out []Finding
	for _, b := range c.API.LegacyTokenSecrets {
		out = append(out, Finding{ID: "legacy-token-secret", Severity: Warning, Subject: Describe(b.Location),
			Message: "a legacy service-account token Secret embeds the CA; clients using it keep the old CA after a rotation",
			Action:  "move its users to projected or requested tokens (kubectl create token) and delete it, or refresh its ca.crt after the rotation"})
	}
	return out
}

// CAName names a CA for people: "cluster CA (CN=kubernetes)".
func CAName(ca model.CA) string {
	name := string(ca.Kind) + " CA"
	if ca.Cert.Subject != "" {
		name += " (" + ca.Cert.Subject + ")"
	}
	return name
}

// caWhere is the first place a CA was found, for subjects.
func caWhere(ca model.CA) string {
	if len(ca.References) == 0 {
		return ""
	}
	return "at " + Describe(ca.References[0])
}

// distinctCAs counts the distinct public keys among certs: a re-signed
// copy of the same CA is still one CA.
func distinctCAs(certs []model.Cert) int {
	seen := map[string]bool{}
	for _, c := range certs {
		seen[c.SPKISHA256] = true
	}
	return len(seen)
}

func abbreviate(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}
