// Package satoken finds the pods that still hold a service-account token
// signed by the old service-account key, so that finalize can name them
// (or restart them) before kube-apiserver stops trusting that key.
//
// kube-apiserver names the key that signed a token in the token's JWT
// header (kid, see KeyID). The kubelet writes each pod's projected tokens
// under /var/lib/kubelet/pods and replaces them on its own schedule
// (Token.RefreshBy); until it has, a pod whose token carries the old kid
// fails to authenticate the moment the old key is dropped.
//
// A token's signature is a bearer credential, so it never leaves the node:
// Scan runs one shell command there that prints only the header and payload
// of files that look like JWTs, and nothing at all of any other file.
package satoken
