package inspect

import "github.com/carotate/carotate/internal/model"

// copyNodes copies what Assemble writes to (certificate issuers), so that
// the caller's nodes stay as they were.
func copyNodes(nodes []model.Node) []model.Node {
	out := make([]model.Node, len(nodes))
	for i, n := range nodes {
		n.Files = append([]model.File(nil), n.Files...)
		for fi := range n.Files {
			n.Files[fi].Certs = copyCerts(n.Files[fi].Certs)
		}
		n.Kubeconfigs = append([]model.Kubeconfig(nil), n.Kubeconfigs...)
		for ki := range n.Kubeconfigs {
			kc := &n.Kubeconfigs[ki]
			kc.CACerts = copyCerts(kc.CACerts)
			if kc.ClientCert != nil {
				c := *kc.ClientCert
				kc.ClientCert = &c
			}
		}
		out[i] = n
	}
	return out
}

func copyAPI(api model.API) model.API {
	api.RootCAConfigMaps = copyBundles(api.RootCAConfigMaps)
	api.ClusterInfo = copyBundle(api.ClusterInfo)
	api.ClientCA = copyBundle(api.ClientCA)
	api.RequestHeaderClientCA = copyBundle(api.RequestHeaderClientCA)
	api.ClusterTrustBundles = copyBundles(api.ClusterTrustBundles)
	api.CABundles = copyBundles(api.CABundles)
	api.LegacyTokenSecrets = copyBundles(api.LegacyTokenSecrets)
	return api
}

func copyBundles(bs []model.CABundle) []model.CABundle {
	if bs == nil {
		return nil
	}
	out := make([]model.CABundle, len(bs))
	for i, b := range bs {
		b.Certs = copyCerts(b.Certs)
		out[i] = b
	}
	return out
}

func copyBundle(b *model.CABundle) *model.CABundle {
	if b == nil {
		return nil
	}
	c := *b
	c.Certs = copyCerts(b.Certs)
	return &c
}

func copyCerts(cs []model.Cert) []model.Cert {
	if cs == nil {
		return nil
	}
	return append([]model.Cert(nil), cs...)
}
