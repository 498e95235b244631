// Package kubeletconfig reads the kubelet's configuration file
// (/var/lib/kubelet/config.yaml on kubeadm nodes) into the upstream
// KubeletConfiguration type, and exposes what concerns trust: the CA the
// kubelet accepts client certificates from, whether it rotates its own
// client and serving certificates, and its serving certificate files.
package kubeletconfig

import (
	"bytes"
	"errors"
	"fmt"
	"path"

	"k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"
)

// MaxSize bounds a kubelet config: real ones are a few kilobytes.
const MaxSize = 1 << 20

// ErrInvalid is matched (errors.Is) by every refusal of a kubelet config.
var ErrInvalid = errors.New("invalid kubelet config")

// Error is a refusal of one kubelet config: where, what, cause and hint.
type Error struct {
	Source string
	Detail string
	Err    error
	Hint   string
}

// Error renders "kubelet config SOURCE: DETAIL: CAUSE; HINT", leaving out empty parts.
func (e *Error) Error() string {
	msg := fmt.Sprintf("kubelet config %s: %s", e.Source, e.Detail)
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

// Config is a parsed KubeletConfiguration.
type Config struct {
	// Source is where it was read from, as given to Parse.
	Source string
	// Kubelet is the whole configuration as written (no defaults applied).
	Kubelet v1beta1.KubeletConfiguration
}

// ClientCAFile is authentication.x509.clientCAFile made absolute against
// the config's directory, as the kubelet does: the CA bundle it accepts
// client certificates (kube-apiserver's apiserver-kubelet-client) from.
func (c *Config) ClientCAFile() string { return c.resolve(c.Kubelet.Authentication.X509.ClientCAFile) }

// TLSCertFile is the serving certificate file, when set (absolute).
func (c *Config) TLSCertFile() string { return c.resolve(c.Kubelet.TLSCertFile) }

// TLSPrivateKeyFile is the serving key file, when set (absolute).
func (c *Config) TLSPrivateKeyFile() string { return c.resolve(c.Kubelet.TLSPrivateKeyFile) }

// RotateCertificates says the kubelet renews its client certificate by CSR
// (kubeadm sets it; unset means false in v1beta1).
func (c *Config) RotateCertificates() bool { return c.Kubelet.RotateCertificates }

// ServerTLSBootstrap says the kubelet requests its serving certificate by CSR.
func (c *Config) ServerTLSBootstrap() bool { return c.Kubelet.ServerTLSBootstrap }

func (c *Config) resolve(p string) string {
	if p == "" || path.IsAbs(p) || !path.IsAbs(c.Source) {
		return p
	}
	return path.Join(path.Dir(c.Source), p)
}

// Parse reads a KubeletConfiguration (kubelet.config.k8s.io/v1beta1).
// source names it in errors (ideally "node:path"); a relative path in it is
// resolved against source's directory. Another kind or version is refused.
func Parse(source string, data []byte) (*Config, error) {
	if len(data) > MaxSize {
		return nil, &Error{Source: source, Detail: fmt.Sprintf("is %d bytes, more than the %d a kubelet config may have", len(data), MaxSize),
			Hint: "check that the path points at the kubelet's config.yaml"}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &Error{Source: source, Detail: "is empty",
			Hint: "restore it from a backup, or rewrite it with `kubeadm upgrade node phase kubelet-config`"}
	}
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(data, &meta); err != nil {
		return nil, &Error{Source: source, Detail: "is not valid yaml", Err: err,
			Hint: "restore it from a backup, or rewrite it with `kubeadm upgrade node phase kubelet-config`"}
	}
	if want := v1beta1.SchemeGroupVersion.String(); meta.APIVersion != want || meta.Kind != "KubeletConfiguration" {
		return nil, &Error{Source: source,
			Detail: fmt.Sprintf("is apiVersion %q kind %q, not %s KubeletConfiguration", meta.APIVersion, meta.Kind, want),
			Hint:   "check that the path is the file the kubelet's --config flag names"}
	}
	c := &Config{Source: source}
	if err := yaml.Unmarshal(data, &c.Kubelet); err != nil {
		return nil, &Error{Source: source, Detail: "is not a valid KubeletConfiguration", Err: err,
			Hint: "restore it from a backup, or rewrite it with `kubeadm upgrade node phase kubelet-config`"}
	}
	return c, nil
}
