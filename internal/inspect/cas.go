package inspect

import (
	"path"
	"sort"
	"strings"

	"github.com/carotate/carotate/internal/model"
)

// certificateCAs groups the CA certificates found by public key: one CA per
// key, whatever number of certificates (re-signed copies) carry it.
func certificateCAs(occs []occurrence, nodes []model.Node) []model.CA {
	type group struct {
		ca     model.CA
		rep    *occurrence
		byPath bool
	}
	groups := map[string]*group{}
	var order []string
	for i := range occs {
		o := &occs[i]
		if !o.cert.IsCA {
			continue
		}
		g, ok := groups[o.cert.SPKISHA256]
		if !ok {
			g = &group{ca: model.CA{Kind: model.UnknownCA, References: []model.Location{}, Signed: []model.Location{}}}
			groups[o.cert.SPKISHA256] = g
			order = append(order, o.cert.SPKISHA256)
		}
		g.ca.References = append(g.ca.References, o.loc)
		if o.kind != "" && (g.ca.Kind == model.UnknownCA || (o.byPath && !g.byPath)) {
			g.ca.Kind, g.byPath = o.kind, o.byPath
		}
		if g.rep == nil || better(o, g.rep) {
			g.rep = o
		}
	}
	for i := range occs {
		o := &occs[i]
		if g, ok := groups[o.cert.IssuerSPKISHA256]; ok && o.cert.SPKISHA256 != o.cert.IssuerSPKISHA256 {
			g.ca.Signed = append(g.ca.Signed, o.loc)
		}
	}
	keyFiles := keyLocations(nodes)
	out := make([]model.CA, 0, len(order))
	for _, spki := range order {
		g := groups[spki]
		g.ca.Cert = g.rep.cert
		g.ca.KeyFiles = keyFiles[spki]
		sortLocations(g.ca.References)
		sortLocations(g.ca.Signed)
		sortLocations(g.ca.KeyFiles)
		out = append(out, g.ca)
	}
	sortCAs(out)
	return out
}

// better says which certificate represents a CA: one at kubeadm's path
// first, then the one that expires last, then the lowest hash.
func better(a, b *occurrence) bool {
	if a.byPath != b.byPath {
		return a.byPath
	}
	if !a.cert.NotAfter.Equal(b.cert.NotAfter) {
		return a.cert.NotAfter.After(b.cert.NotAfter)
	}
	return a.cert.SHA256 < b.cert.SHA256
}

// keyLocations maps a public key fingerprint to the private key files that
// hold its key, with the flags that name them.
func keyLocations(nodes []model.Node) map[string][]model.Location {
	out := map[string][]model.Location{}
	for _, n := range nodes {
		refs := fileReferences(n)
		for _, f := range n.Files {
			if f.Kind != model.FileKey || f.KeySPKISHA256 == "" {
				continue
			}
			out[f.KeySPKISHA256] = append(out[f.KeySPKISHA256], model.Location{Node: n.Name, Path: f.Path})
			out[f.KeySPKISHA256] = append(out[f.KeySPKISHA256], refs[f.Path]...)
		}
	}
	return out
}

// serviceAccountCAs finds the service-account signing key pairs: sa.pub and
// sa.key (by kubeadm's names or the flags that name them), one per key.
func serviceAccountCAs(nodes []model.Node) []model.CA {
	groups := map[string]*model.CA{}
	var order []string
	for _, n := range nodes {
		refs := fileReferences(n)
		for _, f := range n.Files {
			if f.KeySPKISHA256 == "" || (f.Kind != model.FileKey && f.Kind != model.FilePublicKey) || !isServiceAccountFile(f.Path, refs[f.Path]) {
				continue
			}
			ca, ok := groups[f.KeySPKISHA256]
			if !ok {
				ca = &model.CA{Kind: model.ServiceAccountCA, Cert: model.Cert{SPKISHA256: f.KeySPKISHA256},
					References: []model.Location{}, Signed: []model.Location{}}
				groups[f.KeySPKISHA256] = ca
				order = append(order, f.KeySPKISHA256)
			}
			if ca.KeyAlgorithm == "" {
				ca.KeyAlgorithm = f.KeyAlgorithm
			}
			locs := append([]model.Location{{Node: n.Name, Path: f.Path}}, refs[f.Path]...)
			if f.Kind == model.FileKey {
				ca.KeyFiles = append(ca.KeyFiles, locs...)
			} else {
				ca.References = append(ca.References, locs...)
			}
		}
	}
	out := make([]model.CA, 0, len(order))
	for _, spki := range order {
		ca := groups[spki]
		sortLocations(ca.References)
		sortLocations(ca.KeyFiles)
		out = append(out, *ca)
	}
	sortCAs(out)
	return out
}

func isServiceAccountFile(p string, refs []model.Location) bool {
	if b := path.Base(p); b == "sa.key" || b == "sa.pub" {
		return true
	}
	for _, l := range refs {
		switch {
		case hasFlag(l.Flag, "--service-account-key-file"), hasFlag(l.Flag, "--service-account-signing-key-file"),
			hasFlag(l.Flag, "--service-account-private-key-file"):
			return true
		}
	}
	return false
}

// hasFlag reports whether a Location.Flag ("kube-apiserver --client-ca-file")
// is the flag name of any component.
func hasFlag(flag, name string) bool { return strings.HasSuffix(flag, " "+name) }

func kindRank(k model.CAKind) int {
	switch k {
	case model.ClusterCA:
		return 0
	case model.FrontProxyCA:
		return 1
	case model.EtcdCA:
		return 2
	case model.ServiceAccountCA:
		return 3
	default:
		return 4
	}
}

func sortCAs(cas []model.CA) {
	sort.SliceStable(cas, func(i, j int) bool {
		a, b := cas[i], cas[j]
		if kindRank(a.Kind) != kindRank(b.Kind) {
			return kindRank(a.Kind) < kindRank(b.Kind)
		}
		return a.Cert.SPKISHA256 < b.Cert.SPKISHA256
	})
}

func sortLocations(ls []model.Location) {
	sort.SliceStable(ls, func(i, j int) bool { return locationLess(ls[i], ls[j]) })
}

func locationLess(a, b model.Location) bool {
	switch {
	case a.Node != b.Node:
		return a.Node < b.Node
	case a.Path != b.Path:
		return a.Path < b.Path
	case a.Object != b.Object:
		return a.Object < b.Object
	case a.Field != b.Field:
		return a.Field < b.Field
	case a.Flag != b.Flag:
		return a.Flag < b.Flag
	default:
		return a.Index < b.Index
	}
}
