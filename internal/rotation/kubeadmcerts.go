package rotation

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/carotate/carotate/internal/engine"
)

// kubeadmCertsStep deletes the kubeadm-certs Secret: it holds the old CA
// keys, encrypted with a key carotate does not have, for a later
// `kubeadm join --control-plane`, which would install the old CA
// (SEED-GAPS G14). Rollback puts it back from the backup.
func (r *Rotation) kubeadmCertsStep() engine.Step[*Rotation] {
	secrets := func() interface {
		Get(context.Context, string, metav1.GetOptions) (*corev1.Secret, error)
	} {
		return r.Client.CoreV1().Secrets("kube-system")
	}
	return engine.Step[*Rotation]{
		Name:   "kubeadm-certs",
		Target: engine.Target{Object: ObjKubeadmCerts},
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			_, err := secrets().Get(ctx, "kubeadm-certs", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, "absent", nil
			}
			return false, "", err
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			err := r.Client.CoreV1().Secrets("kube-system").Delete(ctx, "kubeadm-certs", metav1.DeleteOptions{})
			if apierrors.IsNotFound(err) {
				return engine.Change{}, nil
			}
			if err != nil {
				return engine.Change{}, fmt.Errorf("delete %s: %w", ObjKubeadmCerts, err)
			}
			return engine.Change{Changed: true, Detail: "deleted (it held the old CA keys); to add a control-plane node later, run `kubeadm init phase upload-certs --upload-certs` on a control-plane node"}, nil
		},
		Undo: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			obj, ok := r.M.Objects[ObjKubeadmCerts]
			if !ok {
				return engine.Change{Detail: "there was none"}, nil
			}
			if _, err := secrets().Get(ctx, "kubeadm-certs", metav1.GetOptions{}); err == nil {
				return engine.Change{}, nil
			}
			var s corev1.Secret
			if err := json.Unmarshal(obj.JSON, &s); err != nil {
				return engine.Change{}, err
			}
			s.ObjectMeta = metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: s.Labels, Annotations: s.Annotations}
			if _, err := r.Client.CoreV1().Secrets("kube-system").Create(ctx, &s, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return engine.Change{}, fmt.Errorf("restore %s: %w", ObjKubeadmCerts, err)
			}
			return engine.Change{Changed: true, Detail: "restored from the backup"}, nil
		},
		Describe: func(ctx context.Context, r *Rotation) (engine.Plan, error) {
			return engine.Plan{Summary: "delete: it holds the old CA keys for `kubeadm join --control-plane`"}, nil
		},
	}
}
