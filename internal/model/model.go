// Package model is carotate's picture of a cluster: every CA, every
// certificate and kubeconfig it signed, every flag, file and API object that
// trusts it, on every node, and the trust edges between components. The
// inventory gathers it; checks, the plan, verification, resume and rollback
// decide on it without any I/O. Everything here is plain data that marshals
// to JSON (`carotate check --output json`).
package model

import "time"

// Cluster is one observation of the whole cluster.
type Cluster struct {
	ObservedAt time.Time `json:"observedAt"`
	// Nodes are every node the API lists (plus inventory-file-only nodes).
	Nodes []Node `json:"nodes"`
	// CAs are the certificate authorities found, identified by their
	// public key; see CA.
	CAs []CA `json:"cas"`
	// API is what the Kubernetes API holds that carries or names a CA.
	API API `json:"api"`
	// Edges are the TLS trust edges between components.
	Edges []TrustEdge `json:"edges"`
}

// CAKind names the trust domains of a kubeadm cluster.
type CAKind string

const (
	ClusterCA        CAKind = "cluster"         // pki/ca.crt: clients and the apiserver's serving cert
	FrontProxyCA     CAKind = "front-proxy"     // pki/front-proxy-ca.crt: aggregation
	EtcdCA           CAKind = "etcd"            // pki/etcd/ca.crt: etcd peers and clients
	ServiceAccountCA CAKind = "service-account" // pki/sa.key/sa.pub: token signing (a key pair, no certificate)
	UnknownCA        CAKind = "unknown"         // a CA found somewhere that is none of the above
)

// CA is one certificate authority. Two certificates with the same subject
// public key are the same CA (a re-signed CA keeps its key).
type CA struct {
	Kind CAKind `json:"kind"`
	Cert Cert   `json:"cert"`
	// KeyAlgorithm is the key's type and size ("RSA-2048"), for a root
	// that is a key pair without a certificate: the service-account key.
	KeyAlgorithm string `json:"keyAlgorithm,omitempty"`
	// KeyFiles are where its private key was found (node:path).
	KeyFiles []Location `json:"keyFiles,omitempty"`
	// References are every place its certificate appears.
	References []Location `json:"references"`
	// Signed are the leaf certificates it issued, wherever found.
	Signed []Location `json:"signed"`
}

// Location says where something is: a file on a node (with the flag or
// field that names it), or a field of an API object.
type Location struct {
	Node string `json:"node,omitempty"`
	Path string `json:"path,omitempty"`
	// Flag is the component flag or config field that points at Path, e.g.
	// "kube-apiserver --client-ca-file" or "KubeletConfiguration clientCAFile".
	Flag string `json:"flag,omitempty"`
	// Object is an API object, e.g. "ConfigMap kube-public/cluster-info".
	Object string `json:"object,omitempty"`
	// Field is the field within a kubeconfig or an object, e.g.
	// "clusters[kubernetes].certificate-authority-data".
	Field string `json:"field,omitempty"`
	// Index is the position of the certificate in a bundle (0 = first).
	Index int `json:"index"`
}

// Cert summarises one X.509 certificate; it never holds key material.
type Cert struct {
	Subject        string    `json:"subject"`
	Issuer         string    `json:"issuer"`
	Serial         string    `json:"serial"`
	SPKISHA256     string    `json:"spkiSHA256"`
	SHA256         string    `json:"sha256"`
	SubjectKeyID   string    `json:"subjectKeyID,omitempty"`
	AuthorityKeyID string    `json:"authorityKeyID,omitempty"`
	IsCA           bool      `json:"isCA"`
	NotBefore      time.Time `json:"notBefore"`
	NotAfter       time.Time `json:"notAfter"`
	DNSNames       []string  `json:"dnsNames,omitempty"`
	IPAddresses    []string  `json:"ipAddresses,omitempty"`
	ExtKeyUsage    []string  `json:"extKeyUsage,omitempty"`
	// IssuerSPKISHA256 is the SPKI fingerprint of the CA that signed it,
	// when that CA is known (verified by signature, not by name).
	IssuerSPKISHA256 string `json:"issuerSPKISHA256,omitempty"`
	// Raw is the DER encoding. A certificate is public; keeping it lets the
	// decisions verify signatures (who signed what) without any I/O.
	Raw []byte `json:"raw,omitempty"`
}

// Node is what was found on one node.
type Node struct {
	Name       string   `json:"name"`
	Roles      []string `json:"roles"`
	InternalIP string   `json:"internalIP"`
	Ready      bool     `json:"ready"`
	// Reachable is false when the node could not be inspected; Error says why.
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// Skipped says the inventory file told carotate to leave the node
	// alone: it was not inspected, and nothing on it will be changed.
	Skipped bool `json:"skipped,omitempty"`
	// Executor is how it was reached: "ssh", "local".
	Executor string `json:"executor,omitempty"`
	// ClockOffset is the node's clock minus ours.
	ClockOffset time.Duration `json:"clockOffset"`
	// Files are every file under the PKI directory and every file the
	// kubelet would load from the manifests directory, plus files that
	// kubeconfigs and the kubelet config reference.
	Files       []File       `json:"files"`
	Manifests   []Manifest   `json:"manifests"`
	Kubeconfigs []Kubeconfig `json:"kubeconfigs"`
	Kubelet     *Kubelet     `json:"kubelet,omitempty"`
	// StrayManifests are non-dot files in manifests/ that are not one of
	// the static pods (for example kube-apiserver.yaml.bak): the kubelet
	// loads them too.
	StrayManifests []string `json:"strayManifests,omitempty"`
	// Warnings are what could not be read on a node that was otherwise
	// inspected (a kubeconfig that does not parse, a missing kubelet
	// config, a failed clock probe), each naming the file and what to do.
	Warnings []string `json:"warnings,omitempty"`
}

// FileKind classifies a file by content.
type FileKind string

const (
	FileCertificate FileKind = "certificate" // exactly one certificate
	FileBundle      FileKind = "bundle"      // more than one certificate
	FileKey         FileKind = "private-key" // content never recorded
	FilePublicKey   FileKind = "public-key"
	FileCertAndKey  FileKind = "certificate-and-key" // e.g. kubelet-client-current.pem
	FileOther       FileKind = "other"
)

// File is a file on a node. For keys only metadata is kept.
type File struct {
	Path string   `json:"path"`
	Kind FileKind `json:"kind"`
	Mode uint32   `json:"mode"`
	Size int64    `json:"size"`
	// SHA256 of the content (for keys too: it identifies, it does not reveal).
	SHA256 string `json:"sha256"`
	// LinkTarget is set for symlinks (kubelet-client-current.pem).
	LinkTarget string `json:"linkTarget,omitempty"`
	Certs      []Cert `json:"certs,omitempty"`
	// KeySPKISHA256 is the public key fingerprint of a private or public
	// key file, so keys can be paired with certificates.
	KeySPKISHA256 string `json:"keySPKISHA256,omitempty"`
	// KeyAlgorithm is the key's type and size, e.g. "RSA-2048" or
	// "ECDSA-P256", for a private or public key file.
	KeyAlgorithm string `json:"keyAlgorithm,omitempty"`
	// ParseError says why the content could not be read as what its name
	// suggests.
	ParseError string `json:"parseError,omitempty"`
}

// Manifest is a static pod manifest.
type Manifest struct {
	Path      string `json:"path"`
	Component string `json:"component"` // kube-apiserver, kube-controller-manager, kube-scheduler, etcd, cloud-controller-manager
	// Flags are the command-line flags of the component's container, in
	// order, as written.
	Flags       []Flag            `json:"flags"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// HostPathMounts are the hostPath volumes mounted into the container.
	HostPathMounts []string `json:"hostPathMounts,omitempty"`
}

// Flag is one --name=value flag.
type Flag struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Value returns the value of flag name and whether it is set.
func (m Manifest) Value(name string) (string, bool) {
	for _, f := range m.Flags {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

// Kubeconfig is a kubeconfig file on a node.
type Kubeconfig struct {
	Path string `json:"path"`
	// Role says which kubeadm kubeconfig it is: admin, super-admin,
	// controller-manager, scheduler, kubelet, bootstrap-kubelet, or other.
	Role    string `json:"role"`
	Server  string `json:"server"`
	Cluster string `json:"cluster"`
	User    string `json:"user"`
	// CACerts are the certificates in certificate-authority-data, or in
	// the certificate-authority file (CAFile) when it references one.
	CACerts []Cert `json:"caCerts"`
	CAFile  string `json:"caFile,omitempty"`
	// ClientCert is the client certificate, embedded or from ClientCertFile.
	ClientCert     *Cert  `json:"clientCert,omitempty"`
	ClientCertFile string `json:"clientCertFile,omitempty"`
	ClientKeyFile  string `json:"clientKeyFile,omitempty"`
	// Token says the user authenticates with a bearer token (bootstrap).
	Token bool `json:"token,omitempty"`
}

// Kubelet is the node's KubeletConfiguration, as far as trust goes.
type Kubelet struct {
	ConfigPath         string `json:"configPath"`
	ClientCAFile       string `json:"clientCAFile"`
	RotateCertificates bool   `json:"rotateCertificates"`
	ServerTLSBootstrap bool   `json:"serverTLSBootstrap"`
	TLSCertFile        string `json:"tlsCertFile,omitempty"`
	TLSPrivateKeyFile  string `json:"tlsPrivateKeyFile,omitempty"`
}

// API is what the Kubernetes API holds.
type API struct {
	// RootCAConfigMaps is kube-root-ca.crt per namespace.
	RootCAConfigMaps []CABundle `json:"rootCAConfigMaps"`
	// NamespacesWithoutRootCA lists namespaces that have no kube-root-ca.crt.
	NamespacesWithoutRootCA []string  `json:"namespacesWithoutRootCA,omitempty"`
	ClusterInfo             *CABundle `json:"clusterInfo,omitempty"`
	// KubeadmConfig holds the fields of kubeadm-config that matter here.
	KubeadmConfig *KubeadmConfig `json:"kubeadmConfig,omitempty"`
	// KubeadmCertsSecret says kube-system/kubeadm-certs exists (HA uploads).
	KubeadmCertsSecret bool `json:"kubeadmCertsSecret"`
	// ExtensionAPIServerAuthentication is kube-system/extension-apiserver-authentication.
	ClientCA              *CABundle  `json:"clientCA,omitempty"`
	RequestHeaderClientCA *CABundle  `json:"requestHeaderClientCA,omitempty"`
	ClusterTrustBundles   []CABundle `json:"clusterTrustBundles,omitempty"`
	// CABundles are the caBundle fields of webhook configurations,
	// APIServices and CRD conversion webhooks.
	CABundles   []CABundle   `json:"caBundles,omitempty"`
	APIServices []APIService `json:"apiServices,omitempty"`
	// LegacyTokenSecrets are kubernetes.io/service-account-token Secrets
	// (namespace/name); they embed ca.crt.
	LegacyTokenSecrets []CABundle `json:"legacyTokenSecrets,omitempty"`
	// IssuedCertificates are the certificates of approved
	// CertificateSigningRequests (status.certificate). KCM's cleaner
	// deletes such a CSR one to two hours after its approval, so these are
	// the recent ones only.
	IssuedCertificates []IssuedCertificate `json:"issuedCertificates,omitempty"`
	// RetiredCAs are the CAs finalized rotations distrusted, as
	// carotate's status ConfigMap lists them.
	RetiredCAs []RetiredCA `json:"retiredCAs,omitempty"`
	// Lock is the carotate rotation lock Lease, when held.
	Lock *Lock `json:"lock,omitempty"`
}

// IssuedCertificate is the certificate an approved
// CertificateSigningRequest holds, with who asked for it.
type IssuedCertificate struct {
	CSR      string   `json:"csr"`
	Signer   string   `json:"signer"`
	Username string   `json:"username"`
	Groups   []string `json:"groups,omitempty"`
	// Cert is the first certificate of status.certificate.
	Cert *Cert `json:"cert,omitempty"`
	// Error says why status.certificate could not be parsed.
	Error string `json:"error,omitempty"`
}

// RetiredCA is a CA a finalized rotation distrusted: its kind and the
// SHA-256 of its public key.
type RetiredCA struct {
	Kind       CAKind `json:"kind"`
	SPKISHA256 string `json:"spkiSHA256"`
}

// CABundle is a set of CA certificates held in an API object field.
type CABundle struct {
	Location Location `json:"location"`
	Certs    []Cert   `json:"certs"`
	// Error says why the field could not be parsed.
	Error string `json:"error,omitempty"`
}

// KubeadmConfig is what carotate needs from ClusterConfiguration.
type KubeadmConfig struct {
	KubernetesVersion    string `json:"kubernetesVersion"`
	ControlPlaneEndpoint string `json:"controlPlaneEndpoint,omitempty"`
	CertificatesDir      string `json:"certificatesDir"`
	ClusterName          string `json:"clusterName"`
	ExternalEtcd         bool   `json:"externalEtcd"`
	// Error says why ClusterConfiguration could not be read; the other
	// fields are then empty.
	Error string `json:"error,omitempty"`
}

// APIService is one aggregated API.
type APIService struct {
	Name      string `json:"name"`
	Local     bool   `json:"local"` // served by kube-apiserver itself
	Available bool   `json:"available"`
	Message   string `json:"message,omitempty"`
}

// Lock is a held rotation lock.
type Lock struct {
	Holder    string    `json:"holder"`
	Acquired  time.Time `json:"acquired"`
	RenewedAt time.Time `json:"renewedAt"`
}

// TrustEdge is one TLS connection between components: Client connects to
// Server, verifies it against Trusts, and presents Presents (if any).
type TrustEdge struct {
	Client string `json:"client"` // e.g. "kubelet@worker-1"
	Server string `json:"server"` // e.g. "kube-apiserver"
	// Trusts are the SPKI fingerprints of the CAs the client accepts for
	// the server, and where that trust comes from.
	Trusts     []string `json:"trusts"`
	TrustsFrom Location `json:"trustsFrom"`
	// Presents is the SPKI fingerprint of the client certificate's issuer,
	// and where the certificate comes from; empty for token clients.
	Presents     string   `json:"presents,omitempty"`
	PresentsFrom Location `json:"presentsFrom,omitempty"`
	// Accepts are the SPKI fingerprints of the CAs the server accepts client
	// certificates from (e.g. kube-apiserver --client-ca-file, the kubelet's
	// clientCAFile), and where that comes from; empty when unknown.
	Accepts     []string `json:"accepts,omitempty"`
	AcceptsFrom Location `json:"acceptsFrom,omitempty"`
}
