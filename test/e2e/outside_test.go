package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/carotate/carotate/internal/check"
	"github.com/carotate/carotate/internal/clusterstatus"
	"github.com/carotate/carotate/internal/lab"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/rotation"
)

// outsideCSR is the CSR through which the 3+1 lab issues a user
// certificate outside carotate, as an operator hands one out.
const outsideCSR = "e2e-jane"

// outsideConf is a kubeconfig carotate does not own in /etc/kubernetes on
// the first control plane: a copy of admin.conf, as operators keep.
const outsideConf = rotation.KubernetesDir + "/ops.conf"

// issueOutside has the cluster sign a client certificate for jane (group
// ops) through an approved CSR of kubernetes.io/kube-apiserver-client. It
// returns the certificate and its key, PEM.
func issueOutside(t *testing.T, kubeconfig string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "jane", Organization: []string{"ops"}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cs := clientFor(t, kubeconfig)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	day := int32(86400)
	csr, err := cs.CertificatesV1().CertificateSigningRequests().Create(ctx, &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: outsideCSR},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:           pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName:        certificatesv1.KubeAPIServerClientSignerName,
			ExpirationSeconds: &day,
			Usages:            []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create CSR %s: %v", outsideCSR, err)
	}
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "E2E", Message: "a user certificate issued outside carotate"})
	if _, err := cs.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, outsideCSR, csr, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("approve CSR %s: %v", outsideCSR, err)
	}
	err = wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err := cs.CertificatesV1().CertificateSigningRequests().Get(ctx, outsideCSR, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		certPEM = got.Status.Certificate
		return len(certPEM) > 0, nil
	})
	if err != nil {
		t.Fatalf("CSR %s was approved but KCM issued no certificate within a minute: %v", outsideCSR, err)
	}
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

func clientFor(t *testing.T, kubeconfig string) *kubernetes.Clientset {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = 10 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// certAuthenticates reports whether the apiserver behind kubeconfig
// authenticates the client certificate.
func certAuthenticates(t *testing.T, kubeconfig string, certPEM, keyPEM []byte) bool {
	t.Helper()
	return authenticates(t, kubeconfig, "jane's certificate", func(cfg *rest.Config) { cfg.CertData, cfg.KeyData = certPEM, keyPEM })
}

// writeOutsideConf copies admin.conf to outsideConf on node: a kubeconfig
// whose client certificate the old CA signed, which carotate neither
// owns nor reissues.
func writeOutsideConf(t *testing.T, l *lab.Lab, node string) {
	t.Helper()
	src, err := l.NodePath(node, rotation.KubernetesDir+"/admin.conf")
	if err != nil {
		t.Fatal(err)
	}
	dst, err := l.NodePath(node, outsideConf)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkFinalizeRefusesOutside runs finalize with one --yes while jane's
// CSR certificate and node's outsideConf still depend on the old CA: it
// must list both, refuse, and change nothing. outsideConf is then removed,
// as an operator who reissued it would, so the finalize that follows
// lists jane alone.
func checkFinalizeRefusesOutside(t *testing.T, r *rotator, l *lab.Lab, node string, finalize []string, janeCert, janeKey []byte) {
	t.Helper()
	before, _ := r.record()
	res := r.run(finalize...)
	if i := strings.Index(res.stdout, "client certificates issued outside carotate"); i >= 0 {
		t.Logf("what the refused finalize listed:\n%s%s", res.stdout[max(0, strings.LastIndex(res.stdout[:i], "\n")+1):], tail(res.stderr, 400))
	}
	for _, want := range []string{
		"2 client certificates issued outside carotate still depend on the old CA; every apiserver rejects them once finalize distrusts that CA:",
		"  CertificateSigningRequest " + outsideCSR + ": CN=jane,O=ops, expires ",
		", signer kubernetes.io/kube-apiserver-client, requested by kubernetes-admin",
		"  " + node + ":" + outsideConf + ": ",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("finalize with one --yes does not say %q:\n%s", want, tail(res.stdout, 3000))
		}
	}
	if want := "finalize would lock out the 2 client certificates listed above; reissue them from the new CA, or pass --yes twice (--yes --yes) to lock them out"; res.code != 3 || !strings.Contains(res.stderr, want) {
		t.Errorf("finalize with one --yes: exit %d, want 3 and %q:\n%s", res.code, want, tail(res.stderr, 2000))
	}
	if after, _ := r.record(); after.Phase != before.Phase || after.Phase != "switch" {
		t.Errorf("the refused finalize moved the record from %q to %q", before.Phase, after.Phase)
	}
	newAdmin, _ := l.NodePath(node, rotation.KubernetesDir+"/admin.conf")
	if !certAuthenticates(t, newAdmin, janeCert, janeKey) {
		t.Error("jane's certificate from the old CA is rejected before finalize")
	}
	p, _ := l.NodePath(node, outsideConf)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

// oldCAWebhook is a ValidatingWebhookConfiguration whose caBundle is the
// cluster CA before the rotation, and which says a controller injects its
// bundle (cert-manager's annotation), so carotate leaves it alone; that
// controller never comes, so it keeps the old CA. carriedWebhook has the
// same bundle and no such annotation: carotate carries it along. Both
// match no request (a resource nothing serves, failurePolicy Ignore), and
// their service does not exist, so nothing calls it.
const (
	oldCAWebhook   = "e2e-old-ca"
	carriedWebhook = "e2e-carried"
)

// createOldCAWebhook creates oldCAWebhook and carriedWebhook with caPEM,
// and returns the SHA-256 of that CA's public key.
func createOldCAWebhook(t *testing.T, kubeconfig string, caPEM []byte) string {
	t.Helper()
	ca, err := pki.ParseCertificatePEM("ca.crt", caPEM)
	if err != nil {
		t.Fatal(err)
	}
	ignore, none, path := admissionv1.Ignore, admissionv1.SideEffectClassNone, "/validate"
	for name, annotations := range map[string]map[string]string{
		oldCAWebhook:   {"cert-manager.io/inject-ca-from": "default/nowhere"},
		carriedWebhook: nil,
	} {
		_, err = clientFor(t, kubeconfig).AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(context.Background(), &admissionv1.ValidatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
			Webhooks: []admissionv1.ValidatingWebhook{{
				Name:                    "widgets.e2e.carotate.io",
				ClientConfig:            admissionv1.WebhookClientConfig{CABundle: caPEM, Service: &admissionv1.ServiceReference{Namespace: "default", Name: "nowhere", Path: &path}},
				Rules:                   []admissionv1.RuleWithOperations{{Operations: []admissionv1.OperationType{admissionv1.Create}, Rule: admissionv1.Rule{APIGroups: []string{"e2e.carotate.io"}, APIVersions: []string{"v1"}, Resources: []string{"widgets"}}}},
				FailurePolicy:           &ignore,
				SideEffects:             &none,
				AdmissionReviewVersions: []string{"v1"},
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create ValidatingWebhookConfiguration %s: %v", name, err)
		}
	}
	return pki.SPKIFingerprint(ca)
}

// checkWebhookBundles: carriedWebhook's caBundle holds want (the CAs'
// certificates, in order), and oldCAWebhook's still holds only old.
func checkWebhookBundles(t *testing.T, kubeconfig, when string, old *x509.Certificate, want ...*x509.Certificate) {
	t.Run("caBundles "+when, func(t *testing.T) {
		for name, w := range map[string][]*x509.Certificate{carriedWebhook: want, oldCAWebhook: {old}} {
			c, err := clientFor(t, kubeconfig).AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := pki.ParseCertificatesPEM(name, c.Webhooks[0].ClientConfig.CABundle)
			if err != nil {
				t.Fatal(err)
			}
			subjects := func(cs []*x509.Certificate) (out []string) {
				for _, c := range cs {
					out = append(out, c.Subject.String()+" "+pki.SPKIFingerprint(c))
				}
				return out
			}
			if diff := cmp.Diff(subjects(w), subjects(got)); diff != "" {
				t.Errorf("%s caBundle %s (-want +got):\n%s", name, when, diff)
			}
		}
	})
}

// checkRetiredCAReported: after finalize, the status ConfigMap lists the
// retired cluster CA and check warns about oldCAWebhook, which still
// carries it. The webhook is deleted after, as its owner would fix it.
func checkRetiredCAReported(t *testing.T, l *lab.Lab, r *rotator, kubeconfig, oldSPKI string) {
	t.Run("check warns about a caBundle that still carries the retired CA", func(t *testing.T) {
		cs := clientFor(t, kubeconfig)
		st, ok, err := clusterstatus.Read(context.Background(), cs)
		if err != nil || !ok {
			t.Fatalf("ConfigMap %s/%s: found %v, %v", clusterstatus.Namespace, clusterstatus.Name, ok, err)
		}
		if !slices.Contains(st.Retired, clusterstatus.RetiredCA{Kind: string(model.ClusterCA), SPKISHA256: oldSPKI}) {
			t.Errorf("the ConfigMap lists %v as retired, not the old cluster CA %s", st.Retired, oldSPKI)
		}
		report, _ := runCheck(t, l, exec.Command(r.bin, "check", "--output", "json", "--kubeconfig", kubeconfig), sshEnv(l, l.KnownHosts()))
		found := false
		for _, f := range report.Findings {
			if f.ID == "cabundle-retired-ca" {
				found = true
				if !strings.HasPrefix(f.Subject, "ValidatingWebhookConfiguration "+oldCAWebhook+" ") || f.Severity != check.Warning {
					t.Errorf("finding %+v, want a warning about %s", f, oldCAWebhook)
				}
			}
		}
		if !found {
			t.Errorf("no cabundle-retired-ca finding; findings: %+v", report.Findings)
		}
	})
	for _, name := range []string{oldCAWebhook, carriedWebhook} {
		if err := clientFor(t, kubeconfig).AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}
