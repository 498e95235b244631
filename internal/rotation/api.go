package rotation

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/workload"
)

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

// rootCAStep waits until kube-controller-manager published the stage's
// root CA bundle into every namespace. The control-plane steps before it
// restarted every KCM with that --root-ca-file, so whichever holds the
// leader lease publishes it (SEED-GAPS G17).
func (r *Rotation) rootCAStep(s Stage) engine.Step[*Rotation] {
	want := func() []byte {
		if s == Finalized {
			return pki.BuildBundle(r.M.New[model.ClusterCA].Cert)
		}
		return pki.BuildBundle(r.M.Old[model.ClusterCA].Cert, r.M.New[model.ClusterCA].Cert)
	}
	return engine.Step[*Rotation]{
		Name:   "kube-root-ca.crt",
		Target: engine.Target{Object: "ConfigMap */kube-root-ca.crt"},
		NoUndo: true, // KCM republishes whatever its --root-ca-file holds once rolled back
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			st, _, err := workload.RootCAStatusNow(ctx, r.Client, want())
			if err != nil {
				return false, "", err
			}
			return st.Matching == st.Namespaces, fmt.Sprintf("%s in %d/%d namespaces", describeBundle(s), st.Matching, st.Namespaces), nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			st, err := workload.WaitRootCA(ctx, r.Client, want(), r.timeouts().RootCA)
			if err != nil {
				return engine.Change{}, err
			}
			// Changed: the step had to wait for it, which is worth seeing.
			return engine.Change{Changed: true, Detail: fmt.Sprintf("kube-root-ca.crt holds the %s in %d/%d namespaces", describeBundle(s), st.Matching, st.Namespaces)}, nil
		},
		Describe: func(ctx context.Context, r *Rotation) (engine.Plan, error) {
			return engine.Plan{Summary: "wait until every namespace's kube-root-ca.crt holds the " + describeBundle(s)}, nil
		},
	}
}

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

// reloadWaitStep waits until every apiserver has had time to re-read
// apiserver-kubelet-client.crt, which it polls every 5 minutes: until then
// it may still present the old-CA certificate to kubelets, which finalize
// makes them reject (kubectl logs/exec would fail, FAILURE-MODES #12).
func (r *Rotation) reloadWaitStep() engine.Step[*Rotation] {
	remaining := func(ctx context.Context) (time.Duration, error) {
		var longest time.Duration
		for _, n := range r.controlPlanes() {
			st, err := n.Exec.Stat(ctx, PKIDir+"/apiserver-kubelet-client.crt")
			if err != nil {
				return 0, err
			}
			if d := st.ModTime.Add(r.ReloadWait).Sub(r.now()); d > longest {
				longest = d
			}
		}
		return longest, nil
	}
	return engine.Step[*Rotation]{
		Name:   "kube-apiserver re-reads apiserver-kubelet-client.crt",
		Target: engine.Target{Object: "kube-apiserver --kubelet-client-certificate"},
		NoUndo: true,
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			d, err := remaining(ctx)
			if err != nil {
				return false, "", err
			}
			if d <= 0 {
				return true, "re-read", nil
			}
			return false, fmt.Sprintf("%s to wait", d.Round(time.Second)), nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			d, err := remaining(ctx)
			if err != nil {
				return engine.Change{}, err
			}
			if d > 0 {
				select {
				case <-ctx.Done():
					return engine.Change{}, ctx.Err()
				case <-time.After(d):
				}
			}
			return engine.Change{Changed: d > 0, Detail: fmt.Sprintf("waited %s", d.Round(time.Second))}, nil
		},
		Describe: func(ctx context.Context, r *Rotation) (engine.Plan, error) {
			d, _ := remaining(ctx)
			return engine.Plan{Summary: fmt.Sprintf("wait up to %s: the apiserver polls this file every 5 minutes", d.Round(time.Second))}, nil
		},
	}
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

// rootCARestoredStep is first in trust so that rollback undoes it last,
// once every kube-controller-manager runs with its original --root-ca-file
// again: it waits until every namespace's kube-root-ca.crt is back to the
// old CA alone, so that a rolled-back cluster is whole (and a new rotation
// does not find a bundle there).
func (r *Rotation) rootCARestoredStep() engine.Step[*Rotation] {
	return engine.Step[*Rotation]{
		Name:   "kube-root-ca.crt back to the old CA",
		Target: engine.Target{Object: "ConfigMap */kube-root-ca.crt"},
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			return true, "only rollback waits here", nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) { return engine.Change{}, nil },
		Undo: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			want, err := r.originalRootCA()
			if err != nil {
				return engine.Change{}, err
			}
			st, _, err := workload.RootCAStatusNow(ctx, r.Client, want)
			if err != nil {
				return engine.Change{}, err
			}
			if st.Matching == st.Namespaces {
				return engine.Change{}, nil
			}
			if st, err = workload.WaitRootCA(ctx, r.Client, want, r.timeouts().RootCA); err != nil {
				return engine.Change{}, err
			}
			return engine.Change{Changed: true, Detail: fmt.Sprintf("kube-root-ca.crt holds the old CA again in %d/%d namespaces", st.Matching, st.Namespaces)}, nil
		},
	}
}

// originalRootCA is what kube-controller-manager published before the
// rotation: the bytes of the first control plane's ca.crt.
func (r *Rotation) originalRootCA() ([]byte, error) {
	for _, n := range r.controlPlanes() {
		if f, ok := r.M.original(n.Name, caCert); ok {
			return f.Content, nil
		}
	}
	return nil, fmt.Errorf("no control plane's %s is in the backup", caCert)
}
