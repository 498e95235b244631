package inspect

import (
	"crypto/x509"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// Assemble builds the cluster model from what Node found on every node and
// what the API inventory found: the CAs (identified by public key), where
// each is referenced, what each signed (decided by verifying signatures,
// never by names: kubeadm's CAs all have "kubernetes"-like subjects), the
// issuer of every certificate, and the trust edges. It is pure and
// deterministic; the inputs are not modified.
func Assemble(nodes []model.Node, api model.API, now time.Time) model.Cluster {
	c := model.Cluster{ObservedAt: now, Nodes: copyNodes(nodes), API: copyAPI(api)}
	certs := collectCerts(&c)
	setIssuers(certs)
	occs := occurrences(&c)
	c.CAs = append(certificateCAs(occs, c.Nodes), serviceAccountCAs(c.Nodes)...)
	c.Edges = edges(&c)
	return c
}

// collectCerts returns a pointer to every certificate in the model, so that
// their issuers can be filled in place.
func collectCerts(c *model.Cluster) []*model.Cert {
	var out []*model.Cert
	addAll := func(cs []model.Cert) {
		for i := range cs {
			out = append(out, &cs[i])
		}
	}
	for ni := range c.Nodes {
		n := &c.Nodes[ni]
		for fi := range n.Files {
			addAll(n.Files[fi].Certs)
		}
		for ki := range n.Kubeconfigs {
			kc := &n.Kubeconfigs[ki]
			addAll(kc.CACerts)
			if kc.ClientCert != nil {
				out = append(out, kc.ClientCert)
			}
		}
	}
	for _, b := range apiBundles(&c.API) {
		addAll(b.bundle.Certs)
	}
	return out
}

// setIssuers sets IssuerSPKISHA256 on every certificate whose signature
// verifies against one of the CA certificates found anywhere.
func setIssuers(certs []*model.Cert) {
	parsed := map[string]*x509.Certificate{}
	for _, c := range certs {
		if _, ok := parsed[c.SHA256]; ok || len(c.Raw) == 0 {
			continue
		}
		if x, err := x509.ParseCertificate(c.Raw); err == nil {
			parsed[c.SHA256] = x
		}
	}
	type caCert struct {
		x          *x509.Certificate
		spki, hash string
	}
	var cas []caCert
	for sha, x := range parsed {
		if x.BasicConstraintsValid && x.IsCA {
			cas = append(cas, caCert{x: x, spki: pki.SPKIFingerprint(x), hash: sha})
		}
	}
	// Deterministic choice when more than one CA certificate could have
	// signed (the same key re-signed): by SPKI, then by certificate.
	sort.Slice(cas, func(i, j int) bool {
		if cas[i].spki != cas[j].spki {
			return cas[i].spki < cas[j].spki
		}
		return cas[i].hash < cas[j].hash
	})
	issuers := map[string]string{}
	for sha, x := range parsed {
		for _, ca := range cas {
			if x.CheckSignatureFrom(ca.x) == nil {
				issuers[sha] = ca.spki
				break
			}
		}
	}
	for _, c := range certs {
		c.IssuerSPKISHA256 = issuers[c.SHA256]
	}
}

// occurrence is one place a certificate appears, with what that place says
// about which CA it is, if it is one.
type occurrence struct {
	cert model.Cert
	loc  model.Location
	// kind is the CA kind the place implies; byPath says it comes from
	// kubeadm's file name (pki/ca.crt), which outranks a flag's meaning.
	kind   model.CAKind
	byPath bool
}

func occurrences(c *model.Cluster) []occurrence {
	var out []occurrence
	for _, n := range c.Nodes {
		refs := fileReferences(n)
		for _, f := range n.Files {
			pk := pathKind(f.Path)
			locs := append([]model.Location{{Node: n.Name, Path: f.Path}}, refs[f.Path]...)
			for i, cert := range f.Certs {
				for _, l := range locs {
					l.Index = i
					k := pk
					if k == "" {
						k = flagKind(l)
					}
					out = append(out, occurrence{cert: cert, loc: l, kind: k, byPath: pk != ""})
				}
			}
		}
		for _, kc := range n.Kubeconfigs {
			if kc.CAFile == "" {
				for i, cert := range kc.CACerts {
					l := model.Location{Node: n.Name, Path: kc.Path, Field: "clusters[" + kc.Cluster + "].certificate-authority-data", Index: i}
					out = append(out, occurrence{cert: cert, loc: l, kind: model.ClusterCA})
				}
			}
			if kc.ClientCert != nil && kc.ClientCertFile == "" {
				l := model.Location{Node: n.Name, Path: kc.Path, Field: "users[" + kc.User + "].client-certificate-data"}
				out = append(out, occurrence{cert: *kc.ClientCert, loc: l})
			}
		}
	}
	for _, b := range apiBundles(&c.API) {
		for i, cert := range b.bundle.Certs {
			l := b.bundle.Location
			l.Index = i
			out = append(out, occurrence{cert: cert, loc: l, kind: b.kind})
		}
	}
	return out
}

// fileReferences maps each file path on a node to the flags, kubelet config
// fields and kubeconfig fields that name it.
func fileReferences(n model.Node) map[string][]model.Location {
	refs := map[string][]model.Location{}
	add := func(p string, l model.Location) {
		if p == "" {
			return
		}
		p = path.Clean(p)
		l.Node, l.Path = n.Name, p
		refs[p] = append(refs[p], l)
	}
	for _, m := range n.Manifests {
		for _, f := range m.Flags {
			if strings.HasPrefix(f.Value, "/") {
				add(f.Value, model.Location{Flag: m.Component + " --" + f.Name})
			}
		}
	}
	if k := n.Kubelet; k != nil {
		add(k.ClientCAFile, model.Location{Flag: "KubeletConfiguration clientCAFile"})
		add(k.TLSCertFile, model.Location{Flag: "KubeletConfiguration tlsCertFile"})
		add(k.TLSPrivateKeyFile, model.Location{Flag: "KubeletConfiguration tlsPrivateKeyFile"})
	}
	for _, kc := range n.Kubeconfigs {
		from := "kubeconfig " + kc.Path
		add(kc.CAFile, model.Location{Flag: from, Field: "clusters[" + kc.Cluster + "].certificate-authority"})
		add(kc.ClientCertFile, model.Location{Flag: from, Field: "users[" + kc.User + "].client-certificate"})
		add(kc.ClientKeyFile, model.Location{Flag: from, Field: "users[" + kc.User + "].client-key"})
	}
	return refs
}

// pathKind is the CA kind kubeadm's file names imply.
func pathKind(p string) model.CAKind {
	switch base, parent := path.Base(p), path.Base(path.Dir(p)); {
	case base == "ca.crt" && parent == "etcd":
		return model.EtcdCA
	case base == "ca.crt":
		return model.ClusterCA
	case base == "front-proxy-ca.crt":
		return model.FrontProxyCA
	}
	return ""
}

// flagKind is the CA kind a flag or field that names a trust file implies.
func flagKind(l model.Location) model.CAKind {
	switch {
	case strings.HasSuffix(l.Flag, " --requestheader-client-ca-file"):
		return model.FrontProxyCA
	case strings.HasSuffix(l.Flag, " --etcd-cafile"), strings.HasSuffix(l.Flag, " --trusted-ca-file"),
		strings.HasSuffix(l.Flag, " --peer-trusted-ca-file"):
		return model.EtcdCA
	case strings.HasSuffix(l.Flag, " --client-ca-file"), strings.HasSuffix(l.Flag, " --root-ca-file"),
		strings.HasSuffix(l.Flag, " --cluster-signing-cert-file"), l.Flag == "KubeletConfiguration clientCAFile",
		strings.HasSuffix(l.Field, ".certificate-authority"):
		return model.ClusterCA
	}
	return ""
}

// apiBundle is an API field holding CA certificates and the kind it implies.
type apiBundle struct {
	bundle *model.CABundle
	kind   model.CAKind
}

func apiBundles(api *model.API) []apiBundle {
	var out []apiBundle
	addAll := func(bs []model.CABundle, kind model.CAKind) {
		for i := range bs {
			out = append(out, apiBundle{&bs[i], kind})
		}
	}
	addOne := func(b *model.CABundle, kind model.CAKind) {
		if b != nil {
			out = append(out, apiBundle{b, kind})
		}
	}
	addAll(api.RootCAConfigMaps, model.ClusterCA)
	addOne(api.ClusterInfo, model.ClusterCA)
	addOne(api.ClientCA, model.ClusterCA)
	addOne(api.RequestHeaderClientCA, model.FrontProxyCA)
	addAll(api.ClusterTrustBundles, "")
	addAll(api.CABundles, "")
	addAll(api.LegacyTokenSecrets, model.ClusterCA)
	return out
}
