package rotation

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/state/backup"
)

// kubeadmCertsRotation is fixture's rotation with cp-1's files on disk
// for the entries the rotation does not back up (sa.key, sa.pub), and
// kubeadm-certs as `kubeadm init --upload-certs` left it, in the cluster
// and in the backup.
func kubeadmCertsRotation(t *testing.T, key []byte) (*Rotation, *corev1.Secret) {
	t.Helper()
	m, nodes := fixture(t)
	cp, _ := localNode(t, map[string]string{saKey: "SA PRIVATE KEY\n", saPub: "SA PUBLIC KEY\n"})
	nodes[0].Exec = cp.Exec
	orig := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: kubeadmCertsName, Namespace: "kube-system"}, Data: map[string][]byte{"ca.key": []byte("sealed by kubeadm")}}
	js, err := json.Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	m.Objects = map[string]backup.Object{ObjKubeadmCerts: {Kind: "Secret", Namespace: "kube-system", Name: kubeadmCertsName, JSON: js}}
	now := testNow
	return &Rotation{M: m, Nodes: nodes, Client: fake.NewClientset(orig.DeepCopy()), CertificateKey: key, Clock: func() time.Time { return now }}, orig
}

func opened(t *testing.T, s *corev1.Secret, key []byte, entry string) []byte {
	t.Helper()
	if len(s.Data[entry]) == 0 {
		return nil
	}
	b, err := openFromKubeadm(key, s.Data[entry])
	if err != nil {
		t.Fatalf("%s: %v", entry, err)
	}
	return b
}

// TestKubeadmCertsUploaded: with a certificate key, switch and finalize
// upload what the control planes hold, sealed as kubeadm seals it, owned
// by a bootstrap token that expires in two hours and readable by
// kubeadm's bootstrap tokens; rollback goes back step by step to the
// backup's Secret.
func TestKubeadmCertsUploaded(t *testing.T) {
	ctx := context.Background()
	key := bytes.Repeat([]byte{7}, CertificateKeySize)
	r, orig := kubeadmCertsRotation(t, key)
	cp := r.Nodes[0]
	secrets := r.Client.CoreV1().Secrets("kube-system")
	get := func() *corev1.Secret {
		t.Helper()
		s, err := secrets.Get(ctx, kubeadmCertsName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	at := func(p string, s Stage) []byte {
		w, err := r.M.At(cp, p, s)
		if err != nil {
			t.Fatal(err)
		}
		return w.Data
	}
	for _, s := range []Stage{Switched, Finalized} {
		step := r.kubeadmCertsStep(s)
		if done, _, err := step.Check(ctx, r); err != nil || done {
			t.Fatalf("%s: check before = %v, %v; want not done", s, done, err)
		}
		if ch, err := step.Apply(ctx, r); err != nil || !ch.Changed || !strings.Contains(ch.Detail, "2026-11-27T14:00:00Z") {
			t.Fatalf("%s: apply = %+v, %v", s, ch, err)
		}
		if done, _, err := step.Check(ctx, r); err != nil || !done {
			t.Fatalf("%s: check after = %v, %v; want done", s, done, err)
		}
		got := get()
		for entry, want := range map[string][]byte{"ca.crt": at(caCert, s), "ca.key": at(caKey, s), "front-proxy-ca.crt": at(frontProxyCert, s),
			"sa.key": []byte("SA PRIVATE KEY\n"), "sa.pub": []byte("SA PUBLIC KEY\n"), "etcd-ca.crt": nil} {
			if b := opened(t, got, key, entry); !bytes.Equal(b, want) {
				t.Errorf("%s: %s opens to %q, want what cp-1 holds at %s", s, entry, b, s)
			}
		}
		if bytes.Contains(got.Data["ca.key"], at(caKey, s)) {
			t.Errorf("%s: ca.key is in the Secret in the clear", s)
		}
		if len(got.OwnerReferences) != 1 || !strings.HasPrefix(got.OwnerReferences[0].Name, "bootstrap-token-") {
			t.Fatalf("%s: owners %+v, want one bootstrap token", s, got.OwnerReferences)
		}
		tok, err := secrets.Get(ctx, got.OwnerReferences[0].Name, metav1.GetOptions{})
		if err != nil || tok.Type != "bootstrap.kubernetes.io/token" || tok.StringData["expiration"] != "2026-11-27T14:00:00Z" || tok.StringData["usage-bootstrap-authentication"] != "" {
			t.Errorf("%s: owner token %+v, %v; want a bootstrap token with no usages that expires in 2h", s, tok, err)
		}
	}
	if got := get().Annotations[UploadedAnnotation]; got != "r-test/finalize" {
		t.Errorf("annotation %s = %q, want r-test/finalize", UploadedAnnotation, got)
	}
	if _, err := r.Client.RbacV1().RoleBindings("kube-system").Get(ctx, kubeadmCertsRole, metav1.GetOptions{}); err != nil {
		t.Errorf("kubeadm's bootstrap tokens cannot read it: %v", err)
	}
	if ca := opened(t, get(), key, "ca.crt"); !bytes.Equal(ca, at(caCert, Finalized)) || bytes.Contains(ca, r.M.Old[model.ClusterCA].CertPEM()) {
		t.Error("after finalize, kubeadm-certs' ca.crt still holds the old CA")
	}

	// A wrong key does not open it, so the check is not fooled.
	want, err := r.kubeadmCertsAt(ctx, Finalized)
	if err != nil {
		t.Fatal(err)
	}
	if kubeadmCertsHolds(get(), bytes.Repeat([]byte{8}, CertificateKeySize), want) {
		t.Error("kubeadm-certs opens with another key")
	}

	if _, err := r.kubeadmCertsStep(Finalized).Undo(ctx, r); err != nil {
		t.Fatal(err)
	}
	if ca := opened(t, get(), key, "ca.crt"); !bytes.Equal(ca, at(caCert, Switched)) {
		t.Error("undoing finalize does not put back the switch's upload")
	}
	if _, err := r.kubeadmCertsStep(Switched).Undo(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got := get(); !bytesMapEqual(got.Data, orig.Data) || len(got.OwnerReferences) != 0 {
		t.Errorf("undoing switch left %+v, want the backup's Secret", got)
	}
}

// TestKubeadmCertsDeleted: without a certificate key, switch deletes the
// Secret (it holds the old CA keys), finalize has no step for it, and
// rollback restores the backup's.
func TestKubeadmCertsDeleted(t *testing.T) {
	ctx := context.Background()
	r, orig := kubeadmCertsRotation(t, nil)
	step := r.kubeadmCertsStep(Switched)
	if _, err := step.Apply(ctx, r); err != nil {
		t.Fatal(err)
	}
	if done, detail, err := step.Check(ctx, r); err != nil || !done || detail != "absent" {
		t.Fatalf("check = %v %q %v, want absent", done, detail, err)
	}
	for _, ph := range r.Phases() {
		for _, st := range ph.Steps {
			if ph.Name == PhaseFinalize && st.Target.Object == ObjKubeadmCerts {
				t.Errorf("finalize has a kubeadm-certs step without a certificate key: %q", st.Name)
			}
		}
	}
	if _, err := r.kubeadmCertsStep(Switched).Undo(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := r.Client.CoreV1().Secrets("kube-system").Get(ctx, kubeadmCertsName, metav1.GetOptions{})
	if err != nil || !bytesMapEqual(got.Data, orig.Data) {
		t.Fatalf("rollback: %v, %+v; want the backup's Secret", err, got)
	}
	// A rotation with no kubeadm-certs before: a rollback of an upload
	// deletes it.
	r2, _ := kubeadmCertsRotation(t, bytes.Repeat([]byte{7}, CertificateKeySize))
	delete(r2.M.Objects, ObjKubeadmCerts)
	if _, err := r2.kubeadmCertsStep(Switched).Apply(ctx, r2); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.kubeadmCertsStep(Switched).Undo(ctx, r2); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Client.CoreV1().Secrets("kube-system").Get(ctx, kubeadmCertsName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("rollback of an upload where there was none: %v, want it gone", err)
	}
}

func TestParseCertificateKey(t *testing.T) {
	good := strings.Repeat("0a", CertificateKeySize)
	if k, err := ParseCertificateKey("f", []byte(good+"\n")); err != nil || len(k) != CertificateKeySize {
		t.Errorf("a key as kubeadm prints it: %v", err)
	}
	for _, bad := range []string{"", good[:62], good + "00", strings.Repeat("zz", CertificateKeySize)} {
		if _, err := ParseCertificateKey("--certificate-key-file /k", []byte(bad)); err == nil || !strings.Contains(err.Error(), "--certificate-key-file /k: not a kubeadm certificate key (64 hex digits") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestKubeadmCertsPreflight: finalize without the key refuses while
// kubeadm-certs is this rotation's switch upload, and says what to do;
// an operator's own upload, or none, is no reason to refuse.
func TestKubeadmCertsPreflight(t *testing.T) {
	ctx := context.Background()
	key := bytes.Repeat([]byte{7}, CertificateKeySize)
	r, _ := kubeadmCertsRotation(t, key)
	if err := r.KubeadmCertsPreflight(ctx, Finalize); err != nil {
		t.Fatalf("with the key: %v", err)
	}
	r.CertificateKey = nil
	if err := r.KubeadmCertsPreflight(ctx, Finalize); err != nil {
		t.Fatalf("kubeadm's own kubeadm-certs: %v", err)
	}
	r.CertificateKey = key
	if _, err := r.kubeadmCertsStep(Switched).Apply(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.CertificateKey = nil
	err := r.KubeadmCertsPreflight(ctx, Finalize)
	if err == nil || !strings.Contains(err.Error(), "give --certificate-key-file again") || !strings.Contains(err.Error(), ObjKubeadmCerts) {
		t.Fatalf("finalize without the key after an upload: %v", err)
	}
	if err := r.KubeadmCertsPreflight(ctx, Rollback); err != nil {
		t.Errorf("rollback without the key: %v (it restores the backup's)", err)
	}
}
