package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/carotate/carotate/internal/lab"
	"github.com/carotate/carotate/internal/lab/probe"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/rotation"
)

// labWebhook is a real validating webhook in the lab: the probe image in
// webhook mode behind a Service, with a serving certificate from the
// cluster CA, called by kube-apiserver for every ConfigMap labelled
// webhookLabel (failurePolicy Fail), and denying those annotated
// probe.DenyAnnotation.
const (
	labWebhook   = "e2e-webhook"
	webhookLabel = "e2e.carotate.io/webhook"
)

// startLabWebhook deploys labWebhook with a certificate that the node's
// current cluster CA (ca.crt and ca.key on nodeName) issues, and waits
// until kube-apiserver's calls to it succeed.
func startLabWebhook(t *testing.T, l *lab.Lab, kubeconfig, nodeName string) {
	t.Helper()
	ctx := context.Background()
	cs := clientFor(t, kubeconfig)
	crt, key := webhookCert(t, l, nodeName)
	_, err := cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: labWebhook},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": crt, "tls.key": key}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": labWebhook}
	_, err = cs.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: labWebhook},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				AutomountServiceAccountToken: new(false),
				Tolerations:                  []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
				Containers: []corev1.Container{{
					Name: "webhook", Image: lab.ProbeImage, ImagePullPolicy: corev1.PullIfNotPresent, Args: []string{"webhook"},
					VolumeMounts: []corev1.VolumeMount{{Name: "tls", MountPath: "/tls", ReadOnly: true}},
					ReadinessProbe: &corev1.Probe{PeriodSeconds: 2, ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
						Path: "/healthz", Port: intstr.FromInt32(8443), Scheme: corev1.URISchemeHTTPS}}},
				}},
				Volumes:                       []corev1.Volume{{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: labWebhook}}}},
				TerminationGracePeriodSeconds: new(int64(2)),
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().Services("default").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: labWebhook},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 443, TargetPort: intstr.FromInt32(8443)}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	caPath, _ := l.NodePath(nodeName, rotation.PKIDir+"/ca.crt")
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	fail, none, path := admissionv1.Fail, admissionv1.SideEffectClassNone, "/validate"
	_, err = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: labWebhook},
		Webhooks: []admissionv1.ValidatingWebhook{{
			Name:                    "configmaps.e2e.carotate.io",
			ClientConfig:            admissionv1.WebhookClientConfig{CABundle: caPEM, Service: &admissionv1.ServiceReference{Namespace: "default", Name: labWebhook, Path: &path}},
			Rules:                   []admissionv1.RuleWithOperations{{Operations: []admissionv1.OperationType{admissionv1.Create}, Rule: admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}}},
			ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{webhookLabel: "yes"}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			TimeoutSeconds:          new(int32(5)),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, labWebhook+" answers", 2*time.Minute, func() (bool, error) { return webhookAnswers(kubeconfig) })
}

// webhookCert is a serving certificate for labWebhook's Service name from
// the cluster CA that nodeName's ca.crt (first certificate) and ca.key
// hold now.
func webhookCert(t *testing.T, l *lab.Lab, nodeName string) (certPEM, keyPEM []byte) {
	t.Helper()
	read := func(p string) []byte {
		hp, _ := l.NodePath(nodeName, p)
		b, err := os.ReadFile(hp)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cas, err := pki.ParseCertificatesPEM("ca.crt", read(rotation.PKIDir+"/ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := pki.ParsePrivateKeyPEM("ca.key", read(rotation.PKIDir+"/ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	name := labWebhook + ".default.svc"
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, cas[0], &key.PublicKey, caKey.Signer())
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

// webhookAnswers creates two ConfigMaps that kube-apiserver sends to
// labWebhook: the one it must deny is denied with the webhook's message,
// and the other is admitted (and deleted again).
func webhookAnswers(kubeconfig string) (bool, error) {
	ctx := context.Background()
	cs, err := clientFromFile(kubeconfig)
	if err != nil {
		return false, err
	}
	cms := cs.CoreV1().ConfigMaps("default")
	labels := map[string]string{webhookLabel: "yes"}
	_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-denied-", Labels: labels,
		Annotations: map[string]string{probe.DenyAnnotation: "test"}}}, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "denied by the lab webhook: test") {
		return false, errorf("the ConfigMap the webhook denies: %v", err)
	}
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-admitted-", Labels: labels}}, metav1.CreateOptions{})
	if err != nil {
		return false, errorf("the ConfigMap the webhook admits: %v", err)
	}
	if err := cms.Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	return true, nil
}

// checkFinalizeRefusesStaleWebhook: finalize, with everything else ready,
// refuses while labWebhook still serves a certificate from the old CA,
// naming it, and changes nothing; then the webhook gets a certificate
// from the new CA (as its owner would do), and answers again.
func checkFinalizeRefusesStaleWebhook(t *testing.T, r *rotator, l *lab.Lab, nodeName string, finalize []string) {
	t.Helper()
	before, _ := r.record()
	res := r.run(finalize...)
	for _, want := range []string{
		"finalize would take the old CA out of these caBundles",
		"ValidatingWebhookConfiguration " + labWebhook + " webhooks[configmaps.e2e.carotate.io].clientConfig.caBundle (service default/" + labWebhook + " port 443): ",
		`presents a certificate issued by "CN=kubernetes"`,
	} {
		if res.code == 0 || !strings.Contains(res.stdout+res.stderr, want) {
			t.Errorf("finalize with the webhook's certificate from the old CA: exit %d, want it to say %q:\n%s\n%s", res.code, want, tail(res.stdout, 2000), tail(res.stderr, 2000))
		}
	}
	if after, _ := r.record(); after.Phase != before.Phase {
		t.Errorf("the refused finalize moved the record from %q to %q", before.Phase, after.Phase)
	}
	// Its owner reissues the certificate from the new CA; the webhook
	// reads it at each handshake, once the kubelet has updated the volume.
	ctx := context.Background()
	admin, _ := l.NodePath(nodeName, rotation.KubernetesDir+"/admin.conf")
	cs := clientFor(t, admin)
	crt, key := webhookCert(t, l, nodeName)
	s, err := cs.CoreV1().Secrets("default").Get(ctx, labWebhook, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Data = map[string][]byte{"tls.crt": crt, "tls.key": key}
	if _, err := cs.CoreV1().Secrets("default").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A restart is quicker than the kubelet's sync of the volume.
	if err := cs.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "app=" + labWebhook}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, labWebhook+" back with its new certificate", 2*time.Minute, func() (bool, error) {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, labWebhook, metav1.GetOptions{})
		if err != nil || d.Status.ReadyReplicas < 1 || d.Status.UpdatedReplicas < 1 {
			return false, err
		}
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + labWebhook})
		if err != nil {
			return false, err
		}
		ready := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && podReady(&p) {
				ready++
			}
		}
		if ready != len(pods.Items) || ready == 0 {
			return false, errorf("%d of %d pods ready", ready, len(pods.Items))
		}
		return webhookAnswers(admin)
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// clientFromFile is clientFor for a poll: an error instead of a failure.
func clientFromFile(kubeconfig string) (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 10 * time.Second
	return kubernetes.NewForConfig(cfg)
}

var errorf = fmt.Errorf
