package rotation

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// extensionAuth rewrites extension-apiserver-authentication's CA bundles
// without the certificates drop says to drop.
func (r *Rotation) extensionAuth(ctx context.Context, drop func(spki string) bool) (engine.Change, error) {
	changed := false
	var removed int
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cms := r.Client.CoreV1().ConfigMaps("kube-system")
		cm, err := cms.Get(ctx, "extension-apiserver-authentication", metav1.GetOptions{})
		if err != nil {
			return err
		}
		removed = 0
		for _, key := range []string{"client-ca-file", "requestheader-client-ca-file"} {
			v, ok := cm.Data[key]
			if !ok {
				continue
			}
			certs, err := pki.ParseCertificatesPEM(ObjExtensionAuth+" "+key, []byte(v))
			if err != nil {
				return err
			}
			var keep []string
			for _, c := range certs {
				if drop(pki.SPKIFingerprint(c)) {
					removed++
					continue
				}
				keep = append(keep, string(pki.EncodeCertificatePEM(c)))
			}
			cm.Data[key] = strings.Join(keep, "")
		}
		if removed == 0 {
			return nil
		}
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		changed = err == nil
		return err
	})
	if err != nil {
		return engine.Change{}, fmt.Errorf("update %s: %w", ObjExtensionAuth, err)
	}
	return engine.Change{Changed: changed, Detail: fmt.Sprintf("%d certificate(s) removed", removed)}, nil
}

func (r *Rotation) spkis(kinds map[model.CAKind]*pkiCA) map[string]bool {
	out := map[string]bool{}
	for _, ca := range kinds {
		out[pki.SPKIFingerprint(ca.Cert)] = true
	}
	return out
}

type pkiCA = pki.CA

// extensionAuthRestoreStep is first in trust so that rollback undoes it
// last: kube-apiserver adds the new CAs to
// extension-apiserver-authentication by itself when its files hold them,
// but never removes them, so rollback does.
func (r *Rotation) extensionAuthRestoreStep() engine.Step[*Rotation] {
	return engine.Step[*Rotation]{
		Name:   "extension-apiserver-authentication",
		Target: engine.Target{Object: ObjExtensionAuth},
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			return true, "kube-apiserver adds the new CAs here by itself", nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) { return engine.Change{}, nil },
		Undo: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			nw := r.spkis(r.M.New)
			return r.extensionAuth(ctx, func(s string) bool { return nw[s] })
		},
	}
}

// extensionAuthCleanStep removes the old CAs once every apiserver trusts
// only the new ones (SEED-GAPS G12): otherwise KCM, the scheduler and every
// aggregated API server still accept old-CA client certificates.
func (r *Rotation) extensionAuthCleanStep() engine.Step[*Rotation] {
	old := func() map[string]bool { return r.spkis(r.M.Old) }
	return engine.Step[*Rotation]{
		Name:   "extension-apiserver-authentication",
		Target: engine.Target{Object: ObjExtensionAuth},
		NoUndo: true, // the apiservers add the old CAs back themselves when their files hold them again
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			cm, err := r.Client.CoreV1().ConfigMaps("kube-system").Get(ctx, "extension-apiserver-authentication", metav1.GetOptions{})
			if err != nil {
				return false, "", err
			}
			o := old()
			for _, key := range []string{"client-ca-file", "requestheader-client-ca-file"} {
				certs, err := pki.ParseCertificatesPEM(key, []byte(cm.Data[key]))
				if err != nil {
					continue
				}
				for _, c := range certs {
					if o[pki.SPKIFingerprint(c)] {
						return false, "still holds an old CA", nil
					}
				}
			}
			return true, "no old CA", nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			o := old()
			return r.extensionAuth(ctx, func(s string) bool { return o[s] })
		},
		Describe: func(ctx context.Context, r *Rotation) (engine.Plan, error) {
			return engine.Plan{Summary: "remove the old CAs from client-ca-file and requestheader-client-ca-file"}, nil
		},
	}
}
