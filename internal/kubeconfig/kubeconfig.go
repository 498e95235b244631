// Package kubeconfig reads the kubeconfig files kubeadm writes on every node
// (admin.conf, controller-manager.conf, kubelet.conf, ...) into what carotate
// needs to know about trust: which CA the client trusts for the server, which
// client certificate it presents, and which files it names instead of
// embedding data. The parser is pure; the caller resolves file references
// through the node's executor.
//
// Private key material and tokens are never kept: only whether they are there
// and, for keys, which file holds them.
package kubeconfig

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// MaxSize bounds a kubeconfig: real ones are a few kilobytes.
const MaxSize = 1 << 20

// Roles of the kubeconfigs kubeadm writes, by file name.
const (
	RoleAdmin             = "admin"
	RoleSuperAdmin        = "super-admin"
	RoleControllerManager = "controller-manager"
	RoleScheduler         = "scheduler"
	RoleKubelet           = "kubelet"
	RoleBootstrapKubelet  = "bootstrap-kubelet"
	RoleOther             = "other"
)

// ErrInvalid is matched (errors.Is) by every refusal of a kubeconfig.
var ErrInvalid = errors.New("invalid kubeconfig")

// Error is a refusal of one kubeconfig: where (Source), what (Detail), and
// the underlying cause, if any. It never quotes the file's content, which may
// hold keys and tokens.
type Error struct {
	Source string
	Detail string
	Err    error
	Hint   string
}

// Error renders "kubeconfig SOURCE: DETAIL: CAUSE; HINT", leaving out empty parts.
func (e *Error) Error() string {
	msg := fmt.Sprintf("kubeconfig %s: %s", e.Source, e.Detail)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes every Error match ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Config is the part of a kubeconfig that concerns trust, resolved through
// its current context.
type Config struct {
	// Source is where it was read from (a node path), as given to Parse.
	Source string
	// Role is the kubeadm role derived from the file name (RoleOf).
	Role           string
	CurrentContext string
	// Cluster and User are the names the current context points at.
	Cluster string
	User    string
	Server  string

	// CAData is certificate-authority-data; CAFile is certificate-authority,
	// made absolute against the kubeconfig's directory. At most one of them
	// matters: client-go prefers the file when both are set.
	CAData []byte
	CAFile string
	// InsecureSkipTLSVerify says the client does not verify the server.
	InsecureSkipTLSVerify bool

	// ClientCertData is client-certificate-data; ClientCertFile is
	// client-certificate (absolute), e.g. the kubelet's
	// /var/lib/kubelet/pki/kubelet-client-current.pem.
	ClientCertData []byte
	ClientCertFile string
	// ClientKeyFile is client-key (absolute); HasClientKeyData says
	// client-key-data is set. The key itself is dropped at once.
	ClientKeyFile    string
	HasClientKeyData bool
	// Token says the user authenticates with a bearer token (token or
	// tokenFile), like bootstrap-kubelet.conf. The token is not kept.
	Token bool
	// Exec says the user gets credentials from an exec plugin.
	Exec bool
}

// FileRef is a file a kubeconfig names instead of embedding its content.
type FileRef struct {
	// Field is the kubeconfig field, e.g. "users[system:node:cp-1].client-certificate".
	Field string
	Path  string
}

// FileRefs lists the files the current context refers to, in the order
// certificate-authority, client-certificate, client-key.
func (c *Config) FileRefs() []FileRef {
	var refs []FileRef
	if c.CAFile != "" {
		refs = append(refs, FileRef{Field: c.ClusterField("certificate-authority"), Path: c.CAFile})
	}
	if c.ClientCertFile != "" {
		refs = append(refs, FileRef{Field: c.UserField("client-certificate"), Path: c.ClientCertFile})
	}
	if c.ClientKeyFile != "" {
		refs = append(refs, FileRef{Field: c.UserField("client-key"), Path: c.ClientKeyFile})
	}
	return refs
}

// ClusterField names a field of the current cluster the way errors and
// model.Location show it: "clusters[kubernetes].certificate-authority-data".
func (c *Config) ClusterField(field string) string {
	return fmt.Sprintf("clusters[%s].%s", c.Cluster, field)
}

// UserField names a field of the current user: "users[kubernetes-admin].client-certificate-data".
func (c *Config) UserField(field string) string {
	return fmt.Sprintf("users[%s].%s", c.User, field)
}

// RoleOf derives the kubeadm role from a kubeconfig's file name:
// "/etc/kubernetes/admin.conf" is RoleAdmin; unknown names are RoleOther.
func RoleOf(p string) string {
	switch path.Base(p) {
	case "admin.conf":
		return RoleAdmin
	case "super-admin.conf":
		return RoleSuperAdmin
	case "controller-manager.conf":
		return RoleControllerManager
	case "scheduler.conf":
		return RoleScheduler
	case "kubelet.conf":
		return RoleKubelet
	case "bootstrap-kubelet.conf":
		return RoleBootstrapKubelet
	default:
		return RoleOther
	}
}

// Parse reads a kubeconfig. source names it in errors (a node path, ideally
// "node:path") and relative file references are made absolute against its
// directory, as client-go does for files it loads. A kubeconfig without a
// current context, or whose current context names a cluster or user that is
// not there, is refused: nothing could connect with it.
func Parse(source string, data []byte) (*Config, error) {
	if len(data) > MaxSize {
		return nil, invalid(source, "is %d bytes, more than the %d a kubeconfig may have; check that the path points at a kubeconfig", len(data), MaxSize)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, invalid(source, "is empty: restore it from a backup or regenerate it with `kubeadm init phase kubeconfig`")
	}
	raw, err := clientcmd.Load(data)
	if err != nil {
		return nil, &Error{Source: source, Detail: "cannot be parsed", Err: err,
			Hint: "restore it from a backup or regenerate it with `kubeadm init phase kubeconfig`"}
	}
	return fromAPI(source, raw)
}

func fromAPI(source string, raw *clientcmdapi.Config) (*Config, error) {
	if len(raw.Clusters) == 0 {
		return nil, invalid(source, "has no cluster: add a clusters entry with the server and its certificate-authority-data")
	}
	if raw.CurrentContext == "" {
		return nil, invalid(source, "has no current-context: set one with `kubectl config use-context --kubeconfig %s NAME`", source)
	}
	ctx, ok := raw.Contexts[raw.CurrentContext]
	if !ok || ctx == nil {
		return nil, invalid(source, "current-context %q names a context that does not exist", raw.CurrentContext)
	}
	if ctx.Cluster == "" {
		return nil, invalid(source, "context %q names no cluster: set its cluster to one of the clusters entries", raw.CurrentContext)
	}
	cluster, ok := raw.Clusters[ctx.Cluster]
	if !ok || cluster == nil {
		return nil, invalid(source, "context %q names cluster %q, which does not exist", raw.CurrentContext, ctx.Cluster)
	}
	c := &Config{
		Source:                source,
		Role:                  RoleOf(source),
		CurrentContext:        raw.CurrentContext,
		Cluster:               ctx.Cluster,
		User:                  ctx.AuthInfo,
		Server:                cluster.Server,
		CAData:                cluster.CertificateAuthorityData,
		CAFile:                resolve(source, cluster.CertificateAuthority),
		InsecureSkipTLSVerify: cluster.InsecureSkipTLSVerify,
	}
	if c.Server == "" {
		return nil, invalid(source, "cluster %q has no server", ctx.Cluster)
	}
	if ctx.AuthInfo == "" {
		return c, nil
	}
	user, ok := raw.AuthInfos[ctx.AuthInfo]
	if !ok || user == nil {
		return nil, invalid(source, "context %q names user %q, which does not exist", raw.CurrentContext, ctx.AuthInfo)
	}
	c.ClientCertData = user.ClientCertificateData
	c.ClientCertFile = resolve(source, user.ClientCertificate)
	c.ClientKeyFile = resolve(source, user.ClientKey)
	c.HasClientKeyData = len(user.ClientKeyData) > 0
	c.Token = user.Token != "" || user.TokenFile != ""
	c.Exec = user.Exec != nil
	return c, nil
}

// resolve makes a file reference absolute against the kubeconfig's
// directory, when the kubeconfig's own path is absolute.
func resolve(source, ref string) string {
	if ref == "" || path.IsAbs(ref) || !path.IsAbs(source) {
		return ref
	}
	return path.Join(path.Dir(source), ref)
}

func invalid(source, format string, args ...any) error {
	return &Error{Source: source, Detail: fmt.Sprintf(format, args...)}
}
