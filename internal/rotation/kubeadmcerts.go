package rotation

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/carotate/carotate/internal/engine"
)

// kubeadm-certs is the Secret `kubeadm join --control-plane
// --certificate-key KEY` downloads the control plane's CAs and
// service-account key from: each entry is the file, encrypted with
// AES-256-GCM under KEY (a random nonce, then the sealed bytes), as
// `kubeadm init phase upload-certs` writes it. It expires with a
// bootstrap token made for it, two hours after the upload.
//
// At switch it holds the old CA keys, which a joining control plane would
// install (SEED-GAPS G14). Without a certificate key carotate deletes it;
// with one (CertificateKey, from --certificate-key-file) it uploads what
// the control planes hold at switch, and at finalize what they hold then,
// so that a join gets the new CA. Rollback puts back the original from the
// backup.

const (
	kubeadmCertsName = "kubeadm-certs"
	// kubeadmCertsRole is kubeadm's Role and RoleBinding that let a
	// joining node's bootstrap token read the Secret.
	kubeadmCertsRole = "kubeadm:kubeadm-certs"
	// kubeadmBootstrappers is the group of kubeadm's default bootstrap
	// tokens.
	kubeadmBootstrappers = "system:bootstrappers:kubeadm:default-node-token"
	// kubeadmCertsTTL is how long the upload lives, as kubeadm's.
	kubeadmCertsTTL = 2 * time.Hour
	// CertificateKeySize is the size of kubeadm's certificate key.
	CertificateKeySize = 32
	// UploadedAnnotation marks a kubeadm-certs carotate uploaded:
	// "rotation-id/stage".
	UploadedAnnotation = "carotate.io/uploaded"
)

// KubeadmCertsPreflight refuses a finalize without the certificate key
// when kubeadm-certs is this rotation's upload of switch: it holds the
// old CA beside the new, which a control plane joined after finalize would
// trust, and finalize could neither renew it nor tell it from the
// operator's own upload.
func (r *Rotation) KubeadmCertsPreflight(ctx context.Context, cmd Command) error {
	if cmd != Finalize || r.CertificateKey != nil {
		return nil
	}
	s, err := r.Client.CoreV1().Secrets("kube-system").Get(ctx, kubeadmCertsName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", ObjKubeadmCerts, err)
	}
	if id, _, _ := strings.Cut(s.Annotations[UploadedAnnotation], "/"); id != r.M.RotationID {
		return nil
	}
	return fmt.Errorf("%s is what rotate uploaded at switch with --certificate-key-file, and holds the old CA beside the new one; give --certificate-key-file again so that finalize uploads the new CAs alone, or delete it first (kubectl -n kube-system delete secret kubeadm-certs)", ObjKubeadmCerts)
}

// kubeadmCertsEntries are the Secret's entries and the files they hold,
// in kubeadm's names (etcd/ca.crt is etcd-ca.crt).
var kubeadmCertsEntries = []struct{ entry, path string }{
	{"ca.crt", caCert}, {"ca.key", caKey},
	{"front-proxy-ca.crt", frontProxyCert}, {"front-proxy-ca.key", frontProxyKey},
	{"sa.pub", saPub}, {"sa.key", saKey},
	{"etcd-ca.crt", etcdCACert}, {"etcd-ca.key", etcdCAKey},
}

// ParseCertificateKey reads a certificate key as kubeadm prints it: 64
// hex digits.
func ParseCertificateKey(source string, data []byte) ([]byte, error) {
	s := strings.TrimSpace(string(data))
	key, err := hex.DecodeString(s)
	if err != nil || len(key) != CertificateKeySize {
		return nil, fmt.Errorf("%s: not a kubeadm certificate key (%d hex digits, as `kubeadm certs certificate-key` prints one); it holds %d characters", source, 2*CertificateKeySize, len(s))
	}
	return key, nil
}

// sealForKubeadm encrypts data as kubeadm's cryptoutil.EncryptBytes does.
func sealForKubeadm(key, data []byte) ([]byte, error) {
	gcm, err := kubeadmGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(nonce, nonce, data, nil), nil
}

// openFromKubeadm decrypts what sealForKubeadm (or kubeadm) sealed.
func openFromKubeadm(key, sealed []byte) ([]byte, error) {
	gcm, err := kubeadmGCM(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize() {
		return nil, errors.New("shorter than its nonce")
	}
	return gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], nil)
}

func kubeadmGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// kubeadmCertsAt is what the Secret's entries hold at stage s: the first
// control plane's files at s (the control planes hold the same), empty for
// a file it does not have, as kubeadm uploads one.
func (r *Rotation) kubeadmCertsAt(ctx context.Context, s Stage) (map[string][]byte, error) {
	cps := r.controlPlanes()
	if len(cps) == 0 {
		return nil, errors.New("no control-plane node")
	}
	n := cps[0]
	out := map[string][]byte{}
	for _, e := range kubeadmCertsEntries {
		var data []byte
		if _, had := r.M.original(n.Name, e.path); had || r.M.row(e.path) != nil {
			w, err := r.M.At(n, e.path, s)
			if err != nil {
				return nil, err
			}
			data = w.Data
		} else {
			// Not a file this rotation changes or backs up: as it is.
			b, err := n.Exec.ReadFile(ctx, e.path)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("node %s: read %s for %s: %w", n.Name, e.path, ObjKubeadmCerts, err)
			}
			data = b
		}
		out[e.entry] = data
	}
	return out, nil
}

// kubeadmCertsHolds says whether the Secret decrypts, with key, to want.
func kubeadmCertsHolds(s *corev1.Secret, key []byte, want map[string][]byte) bool {
	for entry, w := range want {
		sealed, ok := s.Data[entry]
		if !ok {
			return false
		}
		if len(sealed) == 0 && len(w) == 0 {
			continue
		}
		got, err := openFromKubeadm(key, sealed)
		if err != nil || !bytes.Equal(got, w) {
			return false
		}
	}
	return true
}

// kubeadmCertsStep keeps kubeadm-certs in step with the control planes
// at stage s (Switched or Finalized): uploaded with the certificate key,
// else deleted.
func (r *Rotation) kubeadmCertsStep(s Stage) engine.Step[*Rotation] {
	secrets := func() interface {
		Get(context.Context, string, metav1.GetOptions) (*corev1.Secret, error)
	} {
		return r.Client.CoreV1().Secrets("kube-system")
	}
	name := map[Stage]string{Switched: "kubeadm-certs", Finalized: "kubeadm-certs holds only the new CAs"}[s]
	// Finalize has this step only with a certificate key.
	return engine.Step[*Rotation]{
		Name:   name,
		Target: engine.Target{Object: ObjKubeadmCerts},
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			cur, err := secrets().Get(ctx, kubeadmCertsName, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err) && r.CertificateKey == nil:
				return true, "absent", nil
			case apierrors.IsNotFound(err):
				return false, "", nil
			case err != nil:
				return false, "", err
			case r.CertificateKey == nil:
				return false, "", nil
			}
			want, err := r.kubeadmCertsAt(ctx, s)
			if err != nil {
				return false, "", err
			}
			if kubeadmCertsHolds(cur, r.CertificateKey, want) {
				return true, "uploaded with the certificate key", nil
			}
			return false, "", nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			if r.CertificateKey != nil {
				return r.uploadKubeadmCerts(ctx, s)
			}
			err := r.Client.CoreV1().Secrets("kube-system").Delete(ctx, kubeadmCertsName, metav1.DeleteOptions{})
			if apierrors.IsNotFound(err) {
				return engine.Change{}, nil
			}
			if err != nil {
				return engine.Change{}, fmt.Errorf("delete %s: %w", ObjKubeadmCerts, err)
			}
			return engine.Change{Changed: true, Detail: "deleted (it held the old CA keys); to add a control-plane node later, run `kubeadm init phase upload-certs --upload-certs` on a control-plane node, or give carotate --certificate-key-file"}, nil
		},
		Undo: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			if s == Finalized {
				if r.CertificateKey == nil {
					return engine.Change{Detail: "no certificate key: left as it is"}, nil
				}
				return r.uploadKubeadmCerts(ctx, Switched)
			}
			return r.restoreKubeadmCerts(ctx)
		},
		Describe: func(ctx context.Context, r *Rotation) (engine.Plan, error) {
			if r.CertificateKey != nil {
				return engine.Plan{Summary: fmt.Sprintf("upload what the control planes hold at %s, encrypted with the certificate key, for `kubeadm join --control-plane` in the next %s", s, kubeadmCertsTTL)}, nil
			}
			return engine.Plan{Summary: "delete: it holds the old CA keys for `kubeadm join --control-plane`"}, nil
		},
	}
}

// uploadKubeadmCerts writes kubeadm-certs as kubeadm's upload-certs does:
// every entry encrypted with the certificate key, owned by a new
// bootstrap token that expires in two hours (and takes the Secret with
// it), readable by kubeadm's bootstrap tokens.
func (r *Rotation) uploadKubeadmCerts(ctx context.Context, s Stage) (engine.Change, error) {
	want, err := r.kubeadmCertsAt(ctx, s)
	if err != nil {
		return engine.Change{}, err
	}
	data := map[string][]byte{}
	for entry, plain := range want {
		if len(plain) == 0 {
			data[entry] = nil
			continue
		}
		if data[entry], err = sealForKubeadm(r.CertificateKey, plain); err != nil {
			return engine.Change{}, fmt.Errorf("encrypt %s for %s: %w", entry, ObjKubeadmCerts, err)
		}
	}
	owner, err := r.kubeadmCertsToken(ctx)
	if err != nil {
		return engine.Change{}, err
	}
	secrets := r.Client.CoreV1().Secrets("kube-system")
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: kubeadmCertsName, Namespace: "kube-system",
			Annotations:     map[string]string{UploadedAnnotation: r.M.RotationID + "/" + s.String()},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(owner, schema.GroupVersionKind{Version: "v1", Kind: "Secret"})}},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}
	cur, err := secrets.Get(ctx, kubeadmCertsName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = secrets.Create(ctx, secret, metav1.CreateOptions{})
	case err == nil:
		secret.ResourceVersion = cur.ResourceVersion
		_, err = secrets.Update(ctx, secret, metav1.UpdateOptions{})
	}
	if err != nil {
		return engine.Change{}, fmt.Errorf("upload %s: %w", ObjKubeadmCerts, err)
	}
	if err := r.kubeadmCertsRBAC(ctx); err != nil {
		return engine.Change{}, err
	}
	return engine.Change{Changed: true, Detail: fmt.Sprintf("uploaded what the control planes hold at %s, encrypted with the certificate key; `kubeadm join --control-plane --certificate-key` works until %s",
		s, r.now().Add(kubeadmCertsTTL).UTC().Format(time.RFC3339))}, nil
}

// kubeadmCertsToken makes the bootstrap token whose expiry the upload
// shares, as kubeadm does: a token with no usages, which authenticates
// nobody, and which the token cleaner deletes when it expires.
func (r *Rotation) kubeadmCertsToken(ctx context.Context) (*corev1.Secret, error) {
	id, err := randomTokenPart(6)
	if err != nil {
		return nil, err
	}
	secret, err := randomTokenPart(16)
	if err != nil {
		return nil, err
	}
	tok := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + id, Namespace: "kube-system"},
		Type:       corev1.SecretType("bootstrap.kubernetes.io/token"),
		StringData: map[string]string{
			"token-id":     id,
			"token-secret": secret,
			"expiration":   r.now().Add(kubeadmCertsTTL).UTC().Format(time.RFC3339),
			"description":  "Proxy for managing TTL for the kubeadm-certs secret (made by carotate)",
		},
	}
	created, err := r.Client.CoreV1().Secrets("kube-system").Create(ctx, tok, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create the bootstrap token that %s expires with: %w", ObjKubeadmCerts, err)
	}
	return created, nil
}

// randomTokenPart is n characters of [a-z0-9], a bootstrap token's
// alphabet.
func randomTokenPart(n int) (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}

// kubeadmCertsRBAC makes sure kubeadm's bootstrap tokens may read the
// Secret, as `kubeadm init --upload-certs` set up.
func (r *Rotation) kubeadmCertsRBAC(ctx context.Context) error {
	rbac := r.Client.RbacV1()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: kubeadmCertsRole, Namespace: "kube-system"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{kubeadmCertsName}}}}
	if _, err := rbac.Roles("kube-system").Get(ctx, kubeadmCertsRole, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		if _, err := rbac.Roles("kube-system").Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create Role kube-system/%s: %w", kubeadmCertsRole, err)
		}
	} else if err != nil {
		return err
	}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: kubeadmCertsRole, Namespace: "kube-system"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: kubeadmCertsRole},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: kubeadmBootstrappers}}}
	if _, err := rbac.RoleBindings("kube-system").Get(ctx, kubeadmCertsRole, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		if _, err := rbac.RoleBindings("kube-system").Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create RoleBinding kube-system/%s: %w", kubeadmCertsRole, err)
		}
	} else if err != nil {
		return err
	}
	return nil
}

// restoreKubeadmCerts puts back the Secret as it was before the rotation,
// from the backup (without its owner, a token that may be gone).
func (r *Rotation) restoreKubeadmCerts(ctx context.Context) (engine.Change, error) {
	secrets := r.Client.CoreV1().Secrets("kube-system")
	obj, ok := r.M.Objects[ObjKubeadmCerts]
	if !ok {
		if r.CertificateKey == nil {
			return engine.Change{Detail: "there was none"}, nil
		}
		// carotate uploaded one at switch where there was none.
		err := secrets.Delete(ctx, kubeadmCertsName, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return engine.Change{Detail: "there was none"}, nil
		}
		if err != nil {
			return engine.Change{}, fmt.Errorf("delete %s: %w", ObjKubeadmCerts, err)
		}
		return engine.Change{Changed: true, Detail: "deleted: there was none before the rotation"}, nil
	}
	var s corev1.Secret
	if err := json.Unmarshal(obj.JSON, &s); err != nil {
		return engine.Change{}, err
	}
	if cur, err := secrets.Get(ctx, kubeadmCertsName, metav1.GetOptions{}); err == nil {
		if bytesMapEqual(cur.Data, s.Data) {
			return engine.Change{}, nil
		}
		// The upload of switch: the backup's replaces it.
		if err := secrets.Delete(ctx, kubeadmCertsName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return engine.Change{}, fmt.Errorf("delete %s: %w", ObjKubeadmCerts, err)
		}
	} else if !apierrors.IsNotFound(err) {
		return engine.Change{}, err
	}
	s.ObjectMeta = metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: s.Labels, Annotations: s.Annotations}
	if _, err := secrets.Create(ctx, &s, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return engine.Change{}, fmt.Errorf("restore %s: %w", ObjKubeadmCerts, err)
	}
	return engine.Change{Changed: true, Detail: "restored from the backup"}, nil
}

func bytesMapEqual(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}
