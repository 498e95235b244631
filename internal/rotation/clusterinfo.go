package rotation

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// clusterInfoAt is cluster-info's kubeconfig at stage s: old and new
// during the overlap, so joins with either discovery hash work, and new
// only once finalized.
func (r *Rotation) clusterInfoAt(s Stage) (string, error) {
	obj, ok := r.M.Objects[ObjClusterInfo]
	if !ok {
		return "", fmt.Errorf("%s is not in the backup", ObjClusterInfo)
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(obj.JSON, &cm); err != nil {
		return "", fmt.Errorf("%s in the backup: %w", ObjClusterInfo, err)
	}
	orig := cm.Data["kubeconfig"]
	var bundle []byte
	switch s {
	case Trusted, Switched:
		bundle = pki.BuildBundle(r.M.Old[model.ClusterCA].Cert, r.M.New[model.ClusterCA].Cert)
	case Finalized:
		bundle = pki.BuildBundle(r.M.New[model.ClusterCA].Cert)
	default:
		return orig, nil
	}
	// cluster-info's kubeconfig has a cluster and nothing else: no
	// context, no user. Every cluster in it gets the bundle.
	cfg, err := clientcmd.Load([]byte(orig))
	if err != nil {
		return "", fmt.Errorf("%s: data.kubeconfig: %w", ObjClusterInfo, err)
	}
	for _, c := range cfg.Clusters {
		c.CertificateAuthorityData = bundle
	}
	out, err := clientcmd.Write(*cfg)
	return string(out), err
}

func (r *Rotation) clusterInfoStep(s Stage) engine.Step[*Rotation] {
	get := func(ctx context.Context) (*corev1.ConfigMap, error) {
		return r.Client.CoreV1().ConfigMaps("kube-public").Get(ctx, "cluster-info", metav1.GetOptions{})
	}
	set := func(ctx context.Context, to Stage) (engine.Change, error) {
		want, err := r.clusterInfoAt(to)
		if err != nil {
			return engine.Change{}, err
		}
		changed := false
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cm, err := get(ctx)
			if err != nil {
				return err
			}
			if cm.Data["kubeconfig"] == want {
				return nil
			}
			cm.Data["kubeconfig"] = want
			delete(cm.Annotations, corev1.LastAppliedConfigAnnotation) // a stale copy of the old kubeconfig (SEED-GAPS G11)
			_, err = r.Client.CoreV1().ConfigMaps("kube-public").Update(ctx, cm, metav1.UpdateOptions{})
			changed = err == nil
			return err
		})
		if err != nil {
			return engine.Change{}, fmt.Errorf("update %s: %w", ObjClusterInfo, err)
		}
		detail := "joins accept the old and the new discovery hash"
		if to < Trusted {
			detail = "restored: joins use the old discovery hash"
		} else if to == Finalized {
			detail = "kubeadm join --discovery-token-ca-cert-hash " + pki.DiscoveryHash(r.M.New[model.ClusterCA].Cert)
		}
		return engine.Change{Changed: changed, Detail: detail}, nil
	}
	return engine.Step[*Rotation]{
		Name:   "cluster-info",
		Target: engine.Target{Object: ObjClusterInfo},
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			want, err := r.clusterInfoAt(s)
			if err != nil {
				return false, "", err
			}
			cm, err := get(ctx)
			if err != nil {
				return false, "", fmt.Errorf("read %s: %w", ObjClusterInfo, err)
			}
			return cm.Data["kubeconfig"] == want, "", nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) { return set(ctx, s) },
		Undo:  func(ctx context.Context, r *Rotation) (engine.Change, error) { return set(ctx, s-1) },
		Describe: func(ctx context.Context, r *Rotation) (engine.Plan, error) {
			cm, err := get(ctx)
			if err != nil {
				return engine.Plan{}, err
			}
			want, err := r.clusterInfoAt(s)
			if err != nil {
				return engine.Plan{}, err
			}
			return engine.Plan{Summary: "certificate-authority-data → " + describeBundle(s),
				Diffs: []engine.Diff{engine.ObjectDiff(ObjClusterInfo, "data.kubeconfig certificate-authority-data", caSubjects(cm.Data["kubeconfig"]), caSubjects(want))}}, nil
		},
	}
}

func describeBundle(s Stage) string {
	switch s {
	case Trusted, Switched:
		return "old + new CA"
	case Finalized:
		return "new CA only"
	}
	return "old CA"
}

// caSubjects names the CAs a kubeconfig's clusters trust, for the plan.
func caSubjects(kc string) string {
	cfg, err := clientcmd.Load([]byte(kc))
	if err != nil {
		return "unreadable kubeconfig"
	}
	var out []string
	for _, c := range cfg.Clusters {
		certs, err := pki.ParseCertificatesPEM("kubeconfig", c.CertificateAuthorityData)
		if err != nil {
			continue
		}
		for _, crt := range certs {
			out = append(out, crt.Subject.String())
		}
	}
	return strings.Join(out, " + ")
}
