package inspect

import (
	"net"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/carotate/carotate/internal/kubeconfig"
	"github.com/carotate/carotate/internal/manifest"
	"github.com/carotate/carotate/internal/model"
)

// Server names in trust edges. A server on one node is "NAME@NODE".
const (
	serverAPIServer          = manifest.KubeAPIServer
	serverExtensionAPIServer = "extension-apiservers"
	serverEtcd               = manifest.Etcd
)

// nodeView indexes one node's observation for the edges.
type nodeView struct {
	n     *model.Node
	files map[string]*model.File
	comps map[string]*model.Manifest
}

func newNodeView(n *model.Node) nodeView {
	v := nodeView{n: n, files: map[string]*model.File{}, comps: map[string]*model.Manifest{}}
	for i := range n.Files {
		v.files[n.Files[i].Path] = &n.Files[i]
	}
	for i := range n.Manifests {
		v.comps[n.Manifests[i].Component] = &n.Manifests[i]
	}
	return v
}

// flagFile is the file a component's flag names on this node, with the
// location that says so; ok is false when the flag is not set.
func (v nodeView) flagFile(component, flag string) (*model.File, model.Location, bool) {
	m, ok := v.comps[component]
	if !ok {
		return nil, model.Location{}, false
	}
	p, ok := m.Value(flag)
	if !ok || p == "" {
		return nil, model.Location{}, false
	}
	p = path.Clean(p)
	return v.files[p], model.Location{Node: v.n.Name, Path: p, Flag: component + " --" + flag}, true
}

// trusts lists the distinct SPKIs of the certificates in a trust file.
func trusts(f *model.File) []string { return spkis(fileCerts(f)) }

func fileCerts(f *model.File) []model.Cert {
	if f == nil {
		return nil
	}
	return f.Certs
}

func spkis(cs []model.Cert) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range cs {
		if !seen[c.SPKISHA256] {
			seen[c.SPKISHA256] = true
			out = append(out, c.SPKISHA256)
		}
	}
	return out
}

// issuerOf is the issuer of the first certificate of a file: the one a
// client presents.
func issuerOf(f *model.File) string {
	if f == nil || len(f.Certs) == 0 {
		return ""
	}
	return f.Certs[0].IssuerSPKISHA256
}

// apiserver is one kube-apiserver instance.
type apiserver struct {
	view      nodeView
	name      string // "kube-apiserver@cp-1"
	advertise string
	accepts   []string
	acceptsAt model.Location
}

func apiservers(views []nodeView) []apiserver {
	var out []apiserver
	for _, v := range views {
		m, ok := v.comps[serverAPIServer]
		if !ok {
			continue
		}
		a := apiserver{view: v, name: serverAPIServer + "@" + v.n.Name}
		a.advertise, _ = m.Value("advertise-address")
		if f, loc, ok := v.flagFile(serverAPIServer, "client-ca-file"); ok {
			a.accepts, a.acceptsAt = trusts(f), loc
		}
		out = append(out, a)
	}
	return out
}

// targets are the apiservers a kubeconfig on node reaches: its own for a
// loopback address, the one advertising the host, else every one (a load
// balancer or a DNS name).
func targets(all []apiserver, server, node string) []apiserver {
	host := server
	if u, err := url.Parse(server); err == nil && u.Host != "" {
		host = u.Hostname()
	} else if h, _, err := net.SplitHostPort(server); err == nil {
		host = h
	}
	var out []apiserver
	for _, a := range all {
		loopback := host == "localhost" || net.ParseIP(host).IsLoopback()
		if (loopback && a.view.n.Name == node) || (!loopback && a.advertise != "" && a.advertise == host) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return all
	}
	return out
}

func edges(c *model.Cluster) []model.TrustEdge {
	views := make([]nodeView, len(c.Nodes))
	for i := range c.Nodes {
		views[i] = newNodeView(&c.Nodes[i])
	}
	as := apiservers(views)
	var out []model.TrustEdge
	for _, v := range views {
		out = append(out, kubeconfigEdges(v, as)...)
	}
	out = append(out, podEdges(c.API, as)...)
	for _, a := range as {
		out = append(out, kubeletEdges(a, views)...)
		out = append(out, etcdEdges(a, views)...)
		out = append(out, aggregatorEdge(a, c.API)...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		switch {
		case a.Client != b.Client:
			return a.Client < b.Client
		case a.Server != b.Server:
			return a.Server < b.Server
		default:
			return locationLess(a.TrustsFrom, b.TrustsFrom)
		}
	})
	return out
}

// toAPIServer is an edge from a client to every apiserver it reaches, with
// what each apiserver accepts from clients (--client-ca-file).
func toAPIServer(as []apiserver, e model.TrustEdge, server, node string) []model.TrustEdge {
	ts := targets(as, server, node)
	if len(ts) == 0 {
		e.Server = serverAPIServer
		return []model.TrustEdge{e}
	}
	out := make([]model.TrustEdge, 0, len(ts))
	for _, a := range ts {
		e := e
		e.Server = a.name
		if e.Presents != "" {
			e.Accepts, e.AcceptsFrom = a.accepts, a.acceptsAt
		}
		out = append(out, e)
	}
	return out
}

// kubeconfigEdges: kubelet, KCM, scheduler, admin and every other
// kubeconfig on the node, to the apiservers.
func kubeconfigEdges(v nodeView, as []apiserver) []model.TrustEdge {
	var out []model.TrustEdge
	for _, kc := range v.n.Kubeconfigs {
		e := model.TrustEdge{Client: clientName(kc) + "@" + v.n.Name, Trusts: spkis(kc.CACerts)}
		if kc.CAFile != "" {
			e.TrustsFrom = model.Location{Node: v.n.Name, Path: kc.CAFile, Flag: "kubeconfig " + kc.Path,
				Field: "clusters[" + kc.Cluster + "].certificate-authority"}
		} else {
			e.TrustsFrom = model.Location{Node: v.n.Name, Path: kc.Path, Field: "clusters[" + kc.Cluster + "].certificate-authority-data"}
		}
		if kc.ClientCert != nil {
			e.Presents = kc.ClientCert.IssuerSPKISHA256
			if kc.ClientCertFile != "" {
				e.PresentsFrom = model.Location{Node: v.n.Name, Path: kc.ClientCertFile, Flag: "kubeconfig " + kc.Path,
					Field: "users[" + kc.User + "].client-certificate"}
			} else {
				e.PresentsFrom = model.Location{Node: v.n.Name, Path: kc.Path, Field: "users[" + kc.User + "].client-certificate-data"}
			}
		}
		out = append(out, toAPIServer(as, e, kc.Server, v.n.Name)...)
	}
	return out
}

func clientName(kc model.Kubeconfig) string {
	switch kc.Role {
	case kubeconfig.RoleControllerManager:
		return manifest.KubeControllerManager
	case kubeconfig.RoleScheduler:
		return manifest.KubeScheduler
	case kubeconfig.RoleOther, "":
		return "kubeconfig " + kc.Path
	default:
		return kc.Role
	}
}

// podEdges: pods that use in-cluster config trust their namespace's
// kube-root-ca.crt and reach every apiserver through the service IP.
func podEdges(api model.API, as []apiserver) []model.TrustEdge {
	var out []model.TrustEdge
	for _, b := range api.RootCAConfigMaps {
		e := model.TrustEdge{Client: "pods using " + b.Location.Object, Trusts: spkis(b.Certs), TrustsFrom: b.Location}
		if len(as) == 0 {
			e.Server = serverAPIServer
			out = append(out, e)
		}
		for _, a := range as {
			e := e
			e.Server = a.name
			out = append(out, e)
		}
	}
	return out
}

// kubeletEdges: the apiserver calls every kubelet (logs, exec) presenting
// --kubelet-client-certificate; the kubelet accepts its clientCAFile. The
// apiserver verifies the kubelet only with --kubelet-certificate-authority.
func kubeletEdges(a apiserver, views []nodeView) []model.TrustEdge {
	present, presentAt, _ := a.view.flagFile(serverAPIServer, "kubelet-client-certificate")
	ca, caAt, verifies := a.view.flagFile(serverAPIServer, "kubelet-certificate-authority")
	var out []model.TrustEdge
	for _, v := range views {
		k := v.n.Kubelet
		if k == nil {
			continue
		}
		e := model.TrustEdge{Client: a.name, Server: "kubelet@" + v.n.Name, Presents: issuerOf(present), PresentsFrom: presentAt}
		if verifies {
			e.Trusts, e.TrustsFrom = trusts(ca), caAt
		}
		if k.ClientCAFile != "" {
			e.Accepts = trusts(v.files[path.Clean(k.ClientCAFile)])
			e.AcceptsFrom = model.Location{Node: v.n.Name, Path: path.Clean(k.ClientCAFile), Flag: "KubeletConfiguration clientCAFile"}
		}
		out = append(out, e)
	}
	return out
}

// etcdEdges: the apiserver to etcd, --etcd-cafile and --etcd-certfile; the
// etcd members accept --trusted-ca-file. kubeadm's stacked etcd is the one
// on the same node; otherwise every etcd found, or "etcd" when external.
func etcdEdges(a apiserver, views []nodeView) []model.TrustEdge {
	ca, caAt, ok := a.view.flagFile(serverAPIServer, "etcd-cafile")
	if !ok {
		return nil
	}
	cert, certAt, _ := a.view.flagFile(serverAPIServer, "etcd-certfile")
	base := model.TrustEdge{Client: a.name, Trusts: trusts(ca), TrustsFrom: caAt, Presents: issuerOf(cert), PresentsFrom: certAt}
	var members []nodeView
	if _, local := a.view.comps[serverEtcd]; local && pointsAtLoopback(a.view) {
		members = []nodeView{a.view}
	} else {
		for _, v := range views {
			if _, ok := v.comps[serverEtcd]; ok {
				members = append(members, v)
			}
		}
	}
	if len(members) == 0 {
		base.Server = serverEtcd
		return []model.TrustEdge{base}
	}
	var out []model.TrustEdge
	for _, v := range members {
		e := base
		e.Server = serverEtcd + "@" + v.n.Name
		if f, loc, ok := v.flagFile(serverEtcd, "trusted-ca-file"); ok {
			e.Accepts, e.AcceptsFrom = trusts(f), loc
		}
		out = append(out, e)
	}
	return out
}

// pointsAtLoopback says the apiserver's --etcd-servers are all on the node
// itself, as kubeadm writes them for stacked etcd.
func pointsAtLoopback(v nodeView) bool {
	servers, _ := v.comps[serverAPIServer].Value("etcd-servers")
	if servers == "" {
		return false
	}
	for _, s := range strings.Split(servers, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil {
			return false
		}
		if h := u.Hostname(); h != "localhost" && !net.ParseIP(h).IsLoopback() {
			return false
		}
	}
	return true
}

// aggregatorEdge: the apiserver proxies to extension apiservers presenting
// --proxy-client-cert-file; they accept the requestheader CA that
// extension-apiserver-authentication publishes (or, before the API was
// read, the apiserver's own --requestheader-client-ca-file). Which CA the
// apiserver trusts for each extension server is its APIService's caBundle.
func aggregatorEdge(a apiserver, api model.API) []model.TrustEdge {
	cert, certAt, ok := a.view.flagFile(serverAPIServer, "proxy-client-cert-file")
	if !ok {
		return nil
	}
	e := model.TrustEdge{Client: a.name, Server: serverExtensionAPIServer, Presents: issuerOf(cert), PresentsFrom: certAt}
	if b := api.RequestHeaderClientCA; b != nil {
		e.Accepts, e.AcceptsFrom = spkis(b.Certs), b.Location
	} else if f, loc, ok := a.view.flagFile(serverAPIServer, "requestheader-client-ca-file"); ok {
		e.Accepts, e.AcceptsFrom = trusts(f), loc
	}
	return []model.TrustEdge{e}
}
