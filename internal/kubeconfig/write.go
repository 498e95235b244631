package kubeconfig

import (
	"bytes"
	"errors"
	"fmt"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"

	"github.com/carotate/carotate/internal/pki"
)

// Edits. Each function below takes a kubeconfig's bytes and returns them
// edited, with changed=false and the input unchanged when the kubeconfig
// already is as asked: an idempotent ensure with no I/O. It acts on the
// cluster or user of the current context, like Parse.
//
// The kubeconfig is rewritten through client-go's clientcmd, which is how
// kubeadm writes it: a kubeconfig kubeadm wrote comes back byte for byte
// but for the field that changed, and every other cluster, user, context,
// preference and extension is kept. A field clientcmd does not know would
// be lost, so a kubeconfig with one is refused (ErrUnknownFields) rather
// than silently trimmed.
//
// Errors never quote key material.

// ErrFileReference is matched when the field to set names a file instead of
// embedding data (kubelet.conf's client-certificate, for one): the caller
// must write the file, or decide to embed.
var ErrFileReference = errors.New("kubeconfig refers to a file")

// ErrEmbeddedData is matched when SetCAFile finds the CA embedded.
var ErrEmbeddedData = errors.New("kubeconfig embeds the data")

// ErrUnknownFields is matched when rewriting would drop fields clientcmd
// does not know.
var ErrUnknownFields = errors.New("kubeconfig has fields carotate would lose")

// ErrConflict is matched when the edit contradicts the kubeconfig: CA data
// with insecure-skip-tls-verify, a client certificate for a user that
// authenticates another way.
var ErrConflict = errors.New("kubeconfig edit conflicts with the kubeconfig")

// SetCAData ensures the current context's cluster trusts caPEM (one CA
// certificate or a bundle) through certificate-authority-data. A cluster
// that names a certificate-authority file is refused with ErrFileReference,
// naming the file: update that file, or call SetCAFile.
func SetCAData(source string, data, caPEM []byte) (out []byte, changed bool, err error) {
	certs, err := pki.ParseCertificatesPEM("kubeconfig "+source+": new certificate-authority-data", caPEM)
	if err != nil {
		return nil, false, err
	}
	for i, c := range certs {
		if !c.IsCA {
			return nil, false, fmt.Errorf("kubeconfig %s: new certificate-authority-data: certificate %d (%s) is not a CA: %w",
				source, i+1, c.Subject, ErrConflict)
		}
	}
	return edit(source, data, func(cfg *Config, raw *clientcmdapi.Config) (bool, error) {
		cluster := raw.Clusters[cfg.Cluster]
		if cluster.CertificateAuthority != "" {
			return false, &Error{Source: source, Err: ErrFileReference,
				Detail: fmt.Sprintf("%s names the file %s instead of embedding the CA", cfg.ClusterField("certificate-authority"), cluster.CertificateAuthority),
				Hint:   "write the CA to that file, or point the cluster at a new file"}
		}
		if cluster.InsecureSkipTLSVerify {
			return false, &Error{Source: source, Err: ErrConflict,
				Detail: fmt.Sprintf("%s is set, so the client trusts no CA", cfg.ClusterField("insecure-skip-tls-verify")),
				Hint:   "remove insecure-skip-tls-verify by hand if the client should verify the server"}
		}
		if bytes.Equal(cluster.CertificateAuthorityData, caPEM) {
			return false, nil
		}
		cluster.CertificateAuthorityData = bytes.Clone(caPEM)
		return true, nil
	})
}

// SetCAFile ensures the current context's cluster trusts the CA file path
// (certificate-authority). A cluster that embeds certificate-authority-data
// is refused with ErrEmbeddedData: client-go refuses a cluster with both.
func SetCAFile(source string, data []byte, path string) (out []byte, changed bool, err error) {
	if path == "" {
		return nil, false, fmt.Errorf("kubeconfig %s: empty certificate-authority path: %w", source, ErrConflict)
	}
	return edit(source, data, func(cfg *Config, raw *clientcmdapi.Config) (bool, error) {
		cluster := raw.Clusters[cfg.Cluster]
		if len(cluster.CertificateAuthorityData) > 0 {
			return false, &Error{Source: source, Err: ErrEmbeddedData,
				Detail: fmt.Sprintf("%s is set, not a file", cfg.ClusterField("certificate-authority-data")),
				Hint:   "set the CA data instead"}
		}
		if cluster.InsecureSkipTLSVerify {
			return false, &Error{Source: source, Err: ErrConflict,
				Detail: fmt.Sprintf("%s is set, so the client trusts no CA", cfg.ClusterField("insecure-skip-tls-verify")),
				Hint:   "remove insecure-skip-tls-verify by hand if the client should verify the server"}
		}
		if cluster.CertificateAuthority == path {
			return false, nil
		}
		cluster.CertificateAuthority = path
		return true, nil
	})
}

// SetClientCertAndKey ensures the current context's user presents certPEM
// (the certificate, optionally followed by its chain) with keyPEM, embedded
// as client-certificate-data and client-key-data. The key must match the
// certificate. A user that names certificate or key files is refused with
// ErrFileReference (write those files instead), and one that authenticates
// with a token, exec plugin, auth provider or password with ErrConflict.
func SetClientCertAndKey(source string, data, certPEM, keyPEM []byte) (out []byte, changed bool, err error) {
	certs, err := pki.ParseCertificatesPEM("kubeconfig "+source+": new client-certificate-data", certPEM)
	if err != nil {
		return nil, false, err
	}
	key, err := pki.ParsePrivateKeyPEM("kubeconfig "+source+": new client-key-data", keyPEM)
	if err != nil {
		return nil, false, err
	}
	if !pki.KeyMatchesCertificate(key, certs[0]) {
		return nil, false, fmt.Errorf("kubeconfig %s: the new client key does not match the new client certificate (%s): %w",
			source, certs[0].Subject, ErrConflict)
	}
	return edit(source, data, func(cfg *Config, raw *clientcmdapi.Config) (bool, error) {
		if cfg.User == "" {
			return false, &Error{Source: source, Err: ErrConflict,
				Detail: fmt.Sprintf("context %q names no user to give a client certificate", cfg.CurrentContext)}
		}
		user := raw.AuthInfos[cfg.User]
		if user.ClientCertificate != "" || user.ClientKey != "" {
			return false, &Error{Source: source, Err: ErrFileReference,
				Detail: fmt.Sprintf("%s and %s name the files %q and %q instead of embedding them",
					cfg.UserField("client-certificate"), cfg.UserField("client-key"), user.ClientCertificate, user.ClientKey),
				Hint: "write the certificate and key to those files"}
		}
		if other := otherCredential(user); other != "" {
			return false, &Error{Source: source, Err: ErrConflict,
				Detail: fmt.Sprintf("user %q authenticates with %s; a client certificate would be a second credential", cfg.User, other)}
		}
		if bytes.Equal(user.ClientCertificateData, certPEM) && bytes.Equal(user.ClientKeyData, keyPEM) {
			return false, nil
		}
		user.ClientCertificateData = bytes.Clone(certPEM)
		user.ClientKeyData = bytes.Clone(keyPEM)
		return true, nil
	})
}

func otherCredential(u *clientcmdapi.AuthInfo) string {
	switch {
	case u.Token != "" || u.TokenFile != "":
		return "a bearer token"
	case u.Exec != nil:
		return "an exec plugin"
	case u.AuthProvider != nil:
		return "an auth provider"
	case u.Username != "" || u.Password != "":
		return "a username and password"
	}
	return ""
}

// edit parses data, lets change edit the clientcmd config, and writes it
// back when change reports a change.
func edit(source string, data []byte, change func(*Config, *clientcmdapi.Config) (bool, error)) ([]byte, bool, error) {
	cfg, err := Parse(source, data)
	if err != nil {
		return nil, false, err
	}
	raw, err := clientcmd.Load(data)
	if err != nil {
		return nil, false, &Error{Source: source, Detail: "cannot be parsed", Err: err}
	}
	changed, err := change(cfg, raw)
	if err != nil || !changed {
		if err != nil {
			return nil, false, err
		}
		return data, false, nil
	}
	if err := yaml.UnmarshalStrict(data, &clientcmdv1.Config{}); err != nil {
		return nil, false, &Error{Source: source, Detail: "cannot be rewritten without losing fields", Err: fmt.Errorf("%w: %v", ErrUnknownFields, err),
			Hint: "remove or fix the fields client-go does not know, or edit the file by hand"}
	}
	out, err := clientcmd.Write(*raw)
	if err != nil {
		return nil, false, &Error{Source: source, Detail: "cannot be written", Err: err}
	}
	if _, err := Parse(source, out); err != nil {
		return nil, false, fmt.Errorf("kubeconfig %s: the edited kubeconfig does not parse: %w", source, err)
	}
	return out, true, nil
}
