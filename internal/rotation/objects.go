package rotation

import "strings"

// The API objects the rotation changes, as the backup keys them.
const (
	ObjClusterInfo   = "ConfigMap kube-public/cluster-info"
	ObjKubeadmCerts  = "Secret kube-system/kubeadm-certs"
	ObjExtensionAuth = "ConfigMap kube-system/extension-apiserver-authentication"
)

// backedUpObjects are the objects the backup keeps.
var backedUpObjects = []string{ObjClusterInfo, ObjKubeadmCerts, ObjExtensionAuth}

// splitObjectKey is the inverse of objectKey: "Kind ns/name".
func splitObjectKey(k string) (kind, ns, name string) {
	kind, rest, _ := strings.Cut(k, " ")
	ns, name, _ = strings.Cut(rest, "/")
	return kind, ns, name
}
