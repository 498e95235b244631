package rotation

// The API objects the rotation changes, as the backup keys them.
const (
	ObjClusterInfo   = "ConfigMap kube-public/cluster-info"
	ObjKubeadmCerts  = "Secret kube-system/kubeadm-certs"
	ObjExtensionAuth = "ConfigMap kube-system/extension-apiserver-authentication"
)

// BackedUpObjects are the objects the backup keeps: kind, namespace, name.
var BackedUpObjects = [][3]string{
	{"ConfigMap", "kube-public", "cluster-info"},
	{"Secret", "kube-system", "kubeadm-certs"},
	{"ConfigMap", "kube-system", "extension-apiserver-authentication"},
}
