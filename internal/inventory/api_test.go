package inventory

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	certv1 "k8s.io/api/certificates/v1"
	certv1alpha1 "k8s.io/api/certificates/v1alpha1"
	certv1beta1 "k8s.io/api/certificates/v1beta1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/carotate/carotate/internal/inspect"
	"github.com/carotate/carotate/internal/lock"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

var testNow = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

func newCA(t *testing.T, cn string) *pki.CA {
	t.Helper()
	ca, err := pki.GenerateCA(pki.GenerateOptions{Now: testNow, Algorithm: pki.ECDSAP256, CommonName: cn})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func certsOf(cas ...*pki.CA) []model.Cert {
	var out []model.Cert
	for _, ca := range cas {
		out = append(out, inspect.CertOf(ca.Cert))
	}
	return out
}

func pemOf(cas ...*pki.CA) string {
	var s string
	for _, ca := range cas {
		s += string(ca.CertPEM())
	}
	return s
}

func configMap(ns, name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func clusterInfoKubeconfig(caPEM string) string {
	return `apiVersion: v1
kind: Config
clusters:
- name: ""
  cluster:
    server: https://192.0.2.1:6443
    certificate-authority-data: ` + base64.StdEncoding.EncodeToString([]byte(caPEM)) + `
contexts: null
current-context: ""
users: null
`
}

func unstructuredObj(obj map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: obj}
}

func newDynamic(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		apiServicesGVR(): "APIServiceList",
		crdsGVR():        "CustomResourceDefinitionList",
	}, objs...)
}

// csr is an approved, denied or pending CSR holding certPEM.
func csr(name, signer, user, certPEM string, conds ...certv1.RequestConditionType) *certv1.CertificateSigningRequest {
	c := &certv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:   certv1.CertificateSigningRequestSpec{SignerName: signer, Username: user, Groups: []string{"system:authenticated"}},
		Status: certv1.CertificateSigningRequestStatus{Certificate: []byte(certPEM)}}
	for _, t := range conds {
		c.Status.Conditions = append(c.Status.Conditions, certv1.CertificateSigningRequestCondition{Type: t, Status: corev1.ConditionTrue})
	}
	return c
}

func TestGatherAPIMapsObjects(t *testing.T) {
	clusterCA, oldCA, frontProxyCA, webhookCA := newCA(t, "kubernetes"), newCA(t, "kubernetes-old"), newCA(t, "front-proxy-ca"), newCA(t, "webhook-ca")
	holder := "carotate@host-1"
	acquired := metav1.NewMicroTime(testNow.Add(-time.Hour))
	renewed := metav1.NewMicroTime(testNow.Add(-time.Minute))
	cs := fake.NewClientset(
		namespace("default"), namespace("kube-system"), namespace("kube-public"), namespace("fresh"),
		configMap("default", "kube-root-ca.crt", map[string]string{"ca.crt": pemOf(clusterCA)}),
		configMap("kube-system", "kube-root-ca.crt", map[string]string{"ca.crt": pemOf(clusterCA, oldCA)}),
		configMap("kube-public", "kube-root-ca.crt", map[string]string{"ca.crt": pemOf(clusterCA)}),
		configMap("default", "not-the-root-ca", map[string]string{"ca.crt": pemOf(webhookCA)}),
		configMap("kube-public", "cluster-info", map[string]string{"kubeconfig": clusterInfoKubeconfig(pemOf(clusterCA))}),
		configMap("kube-system", "kubeadm-config", map[string]string{"ClusterConfiguration": `apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
controlPlaneEndpoint: lb.example:6443
certificatesDir: /etc/kubernetes/pki
clusterName: lab
etcd:
  local:
    dataDir: /var/lib/etcd
`}),
		configMap("kube-system", "extension-apiserver-authentication", map[string]string{
			"client-ca-file":               pemOf(clusterCA),
			"requestheader-client-ca-file": pemOf(frontProxyCA),
		}),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kubeadm-certs"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "legacy-token"},
			Type: corev1.SecretTypeServiceAccountToken, Data: map[string][]byte{"ca.crt": []byte(pemOf(clusterCA)), "token": []byte("secret-token")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "opaque"},
			Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"ca.crt": []byte(pemOf(webhookCA))}},
		&admissionv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "policy"}, Webhooks: []admissionv1.ValidatingWebhook{
			{Name: "check.policy.example", ClientConfig: admissionv1.WebhookClientConfig{CABundle: []byte(pemOf(webhookCA))}},
			{Name: "system-roots.policy.example"},
		}},
		&admissionv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "injector"}, Webhooks: []admissionv1.MutatingWebhook{
			{Name: "inject.example", ClientConfig: admissionv1.WebhookClientConfig{CABundle: []byte(pemOf(clusterCA))}},
		}},
		&certv1beta1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes.io:kube-apiserver-serving:abc"},
			Spec: certv1beta1.ClusterTrustBundleSpec{SignerName: "kubernetes.io/kube-apiserver-serving", TrustBundle: pemOf(clusterCA)}},
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: lock.Name},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, AcquireTime: &acquired, RenewTime: &renewed}},
		configMap("kube-system", "carotate-status", map[string]string{"rotation": "r-1", "retiredCAs": "cluster aa11\nfront-proxy bb22\n"}),
		csr("alice", certv1.KubeAPIServerClientSignerName, "kubernetes-admin", pemOf(oldCA), certv1.CertificateApproved),
		csr("pending", certv1.KubeAPIServerClientSignerName, "bob", ""),
		csr("approved-not-issued", certv1.KubeAPIServerClientSignerName, "bob", "", certv1.CertificateApproved),
		csr("denied", certv1.KubeAPIServerClientSignerName, "bob", pemOf(oldCA), certv1.CertificateApproved, certv1.CertificateDenied),
		csr("garbled", certv1.KubeAPIServerClientKubeletSignerName, "system:node:w-1", "not a certificate", certv1.CertificateApproved),
	)
	cs.Resources = []*metav1.APIResourceList{{GroupVersion: "certificates.k8s.io/v1beta1", APIResources: []metav1.APIResource{{Name: "clustertrustbundles"}}}}
	dyn := newDynamic(
		unstructuredObj(map[string]any{
			"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
			"metadata": map[string]any{"name": "v1."},
			"spec":     map[string]any{"version": "v1"},
			"status":   map[string]any{"conditions": []any{map[string]any{"type": "Available", "status": "True"}}},
		}),
		unstructuredObj(map[string]any{
			"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
			"metadata": map[string]any{"name": "v1beta1.metrics.k8s.io"},
			"spec": map[string]any{
				"service":  map[string]any{"namespace": "kube-system", "name": "metrics-server"},
				"caBundle": base64.StdEncoding.EncodeToString([]byte(pemOf(frontProxyCA))),
			},
			"status": map[string]any{"conditions": []any{map[string]any{"type": "Available", "status": "False", "message": "failing or missing response"}}},
		}),
		unstructuredObj(map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]any{"name": "widgets.example.com"},
			"spec": map[string]any{"conversion": map[string]any{"strategy": "Webhook", "webhook": map[string]any{
				"clientConfig": map[string]any{"caBundle": base64.StdEncoding.EncodeToString([]byte(pemOf(webhookCA)))}}}},
		}),
		unstructuredObj(map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]any{"name": "gadgets.example.com"},
			"spec":     map[string]any{"conversion": map[string]any{"strategy": "None"}},
		}),
	)

	got, err := GatherAPI(context.Background(), cs, dyn)
	if err != nil {
		t.Fatal(err)
	}
	loc := func(object, field string) model.Location { return model.Location{Object: object, Field: field} }
	want := model.API{
		RootCAConfigMaps: []model.CABundle{
			{Location: loc("ConfigMap default/kube-root-ca.crt", "data[ca.crt]"), Certs: certsOf(clusterCA)},
			{Location: loc("ConfigMap kube-public/kube-root-ca.crt", "data[ca.crt]"), Certs: certsOf(clusterCA)},
			{Location: loc("ConfigMap kube-system/kube-root-ca.crt", "data[ca.crt]"), Certs: certsOf(clusterCA, oldCA)},
		},
		NamespacesWithoutRootCA: []string{"fresh"},
		ClusterInfo: &model.CABundle{
			Location: loc("ConfigMap kube-public/cluster-info", "data[kubeconfig] clusters[].certificate-authority-data"),
			Certs:    certsOf(clusterCA),
		},
		KubeadmConfig: &model.KubeadmConfig{
			KubernetesVersion: "v1.37.2", ControlPlaneEndpoint: "lb.example:6443",
			CertificatesDir: "/etc/kubernetes/pki", ClusterName: "lab",
		},
		KubeadmCertsSecret:    true,
		ClientCA:              &model.CABundle{Location: loc("ConfigMap kube-system/extension-apiserver-authentication", "data[client-ca-file]"), Certs: certsOf(clusterCA)},
		RequestHeaderClientCA: &model.CABundle{Location: loc("ConfigMap kube-system/extension-apiserver-authentication", "data[requestheader-client-ca-file]"), Certs: certsOf(frontProxyCA)},
		ClusterTrustBundles: []model.CABundle{
			{Location: loc("ClusterTrustBundle kubernetes.io:kube-apiserver-serving:abc", "spec.trustBundle"), Certs: certsOf(clusterCA)},
		},
		CABundles: []model.CABundle{
			{Location: loc("APIService v1beta1.metrics.k8s.io", "spec.caBundle"), Certs: certsOf(frontProxyCA)},
			{Location: loc("CustomResourceDefinition widgets.example.com", "spec.conversion.webhook.clientConfig.caBundle"), Certs: certsOf(webhookCA)},
			{Location: loc("MutatingWebhookConfiguration injector", "webhooks[inject.example].clientConfig.caBundle"), Certs: certsOf(clusterCA)},
			{Location: loc("ValidatingWebhookConfiguration policy", "webhooks[check.policy.example].clientConfig.caBundle"), Certs: certsOf(webhookCA)},
		},
		APIServices: []model.APIService{
			{Name: "v1.", Local: true, Available: true},
			{Name: "v1beta1.metrics.k8s.io", Available: false, Message: "failing or missing response"},
		},
		LegacyTokenSecrets: []model.CABundle{
			{Location: loc("Secret default/legacy-token", "data[ca.crt]"), Certs: certsOf(clusterCA)},
		},
		IssuedCertificates: []model.IssuedCertificate{
			{CSR: "alice", Signer: certv1.KubeAPIServerClientSignerName, Username: "kubernetes-admin", Groups: []string{"system:authenticated"}, Cert: &certsOf(oldCA)[0]},
			{CSR: "garbled", Signer: certv1.KubeAPIServerClientKubeletSignerName, Username: "system:node:w-1", Groups: []string{"system:authenticated"},
				Error: "CertificateSigningRequest garbled status.certificate: holds no pem data; expected a PEM-encoded certificate (-----BEGIN ...-----)"},
		},
		RetiredCAs: []model.RetiredCA{{Kind: model.ClusterCA, SPKISHA256: "aa11"}, {Kind: model.FrontProxyCA, SPKISHA256: "bb22"}},
		Lock:       &model.Lock{Holder: holder, Acquired: acquired.Time, RenewedAt: renewed.Time},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GatherAPI (-want +got):\n%s", diff)
	}
}

// TestGatherAPIReadsOnly checks which requests GatherAPI makes: reads only,
// the kubeadm-certs Secret by name only, and Secrets only with the field
// selector that keeps other Secrets' data from being fetched.
func TestGatherAPIReadsOnly(t *testing.T) {
	cs := fake.NewClientset()
	if _, err := GatherAPI(context.Background(), cs, newDynamic()); err != nil {
		t.Fatal(err)
	}
	for _, a := range cs.Actions() {
		switch a.GetVerb() {
		case "get", "list":
		default:
			t.Errorf("GatherAPI made a %s request on %s", a.GetVerb(), a.GetResource())
		}
		if l, ok := a.(k8stesting.ListAction); ok && a.GetResource().Resource == "secrets" {
			if got := l.GetListRestrictions().Fields.String(); got != "type=kubernetes.io/service-account-token" {
				t.Errorf("secrets listed with field selector %q, want only service-account tokens", got)
			}
		}
	}
}

func TestGatherAPIClusterTrustBundleVersion(t *testing.T) {
	ca := newCA(t, "kubernetes")
	tests := []struct {
		name     string
		served   []string // group versions the server serves with clustertrustbundles
		objects  []runtime.Object
		wantList string // the version listed; "" for none
		wantN    int
	}{
		{name: "not served", wantList: ""},
		{name: "v1alpha1 only", served: []string{"v1alpha1"}, wantList: "v1alpha1", wantN: 1,
			objects: []runtime.Object{&certv1alpha1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: certv1alpha1.ClusterTrustBundleSpec{TrustBundle: pemOf(ca)}}}},
		{name: "v1beta1 preferred over v1alpha1", served: []string{"v1alpha1", "v1beta1"}, wantList: "v1beta1", wantN: 1,
			objects: []runtime.Object{&certv1beta1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: certv1beta1.ClusterTrustBundleSpec{TrustBundle: pemOf(ca)}}}},
		{name: "v1 preferred", served: []string{"v1beta1", "v1"}, wantList: "v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := fake.NewClientset(tt.objects...)
			for _, v := range tt.served {
				cs.Resources = append(cs.Resources, &metav1.APIResourceList{GroupVersion: "certificates.k8s.io/" + v,
					APIResources: []metav1.APIResource{{Name: "clustertrustbundles"}}})
			}
			api, err := GatherAPI(context.Background(), cs, newDynamic())
			if err != nil {
				t.Fatal(err)
			}
			var listed []string
			for _, a := range cs.Actions() {
				if a.GetResource().Resource == "clustertrustbundles" {
					listed = append(listed, a.GetResource().Version)
				}
			}
			var want []string
			if tt.wantList != "" {
				want = []string{tt.wantList}
			}
			if diff := cmp.Diff(want, listed); diff != "" {
				t.Errorf("versions listed (-want +got):\n%s", diff)
			}
			if len(api.ClusterTrustBundles) != tt.wantN {
				t.Errorf("got %d ClusterTrustBundles, want %d", len(api.ClusterTrustBundles), tt.wantN)
			}
		})
	}
}

func TestGatherAPIBadContentIsRecorded(t *testing.T) {
	tests := []struct {
		name    string
		objects []runtime.Object
		dyn     []runtime.Object
		get     func(model.API) string
		want    string
	}{
		{
			name:    "kube-root-ca.crt is not PEM",
			objects: []runtime.Object{configMap("default", "kube-root-ca.crt", map[string]string{"ca.crt": "garbage"})},
			get:     func(a model.API) string { return a.RootCAConfigMaps[0].Error },
			want:    "ConfigMap default/kube-root-ca.crt data[ca.crt]",
		},
		{
			name:    "cluster-info is not a kubeconfig",
			objects: []runtime.Object{configMap("kube-public", "cluster-info", map[string]string{"kubeconfig": "{["})},
			get:     func(a model.API) string { return a.ClusterInfo.Error },
			want:    "ConfigMap kube-public/cluster-info data[kubeconfig] is not a kubeconfig",
		},
		{
			name:    "cluster-info without CA data",
			objects: []runtime.Object{configMap("kube-public", "cluster-info", map[string]string{"kubeconfig": clusterInfoKubeconfig("")})},
			get:     func(a model.API) string { return a.ClusterInfo.Error },
			want:    "has no certificate-authority-data",
		},
		{
			name:    "kubeadm-config does not parse",
			objects: []runtime.Object{configMap("kube-system", "kubeadm-config", map[string]string{"ClusterConfiguration": "kubernetesVersion: [1"})},
			get:     func(a model.API) string { return a.KubeadmConfig.Error },
			want:    "ConfigMap kube-system/kubeadm-config data[ClusterConfiguration] does not parse",
		},
		{
			name:    "kubeadm-config without ClusterConfiguration",
			objects: []runtime.Object{configMap("kube-system", "kubeadm-config", map[string]string{})},
			get:     func(a model.API) string { return a.KubeadmConfig.Error },
			want:    "has no data[ClusterConfiguration]",
		},
		{
			name: "APIService caBundle is not base64",
			dyn: []runtime.Object{unstructuredObj(map[string]any{
				"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
				"metadata": map[string]any{"name": "v1.broken.example"},
				"spec":     map[string]any{"service": map[string]any{"name": "x"}, "caBundle": "%%%"},
			})},
			get:  func(a model.API) string { return a.CABundles[0].Error },
			want: "APIService v1.broken.example spec.caBundle is not base64",
		},
		{
			name: "webhook caBundle is not PEM",
			objects: []runtime.Object{&admissionv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Webhooks: []admissionv1.ValidatingWebhook{
				{Name: "w", ClientConfig: admissionv1.WebhookClientConfig{CABundle: []byte("not pem")}}}}},
			get:  func(a model.API) string { return a.CABundles[0].Error },
			want: "ValidatingWebhookConfiguration p webhooks[w].clientConfig.caBundle",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, err := GatherAPI(context.Background(), fake.NewClientset(tt.objects...), newDynamic(tt.dyn...))
			if err != nil {
				t.Fatalf("GatherAPI failed instead of recording the bad content: %v", err)
			}
			if got := tt.get(api); !strings.Contains(got, tt.want) {
				t.Errorf("error = %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

func TestGatherAPIFailsWhenARequestFails(t *testing.T) {
	tests := []struct {
		name     string
		verb     string
		resource string
		want     string
	}{
		{name: "webhooks forbidden", verb: "list", resource: "validatingwebhookconfigurations", want: "read webhook configurations"},
		{name: "lease unreadable", verb: "get", resource: "leases", want: "read Lease kube-system/carotate-rotation-lock"},
		{name: "namespaces forbidden", verb: "list", resource: "namespaces", want: "read kube-root-ca.crt ConfigMaps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := fake.NewClientset()
			cs.PrependReactor(tt.verb, tt.resource, func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: tt.resource}, "", errors.New("no RBAC"))
			})
			_, err := GatherAPI(context.Background(), cs, newDynamic())
			if err == nil {
				t.Fatal("GatherAPI succeeded with a forbidden request")
			}
			if !strings.Contains(err.Error(), tt.want) || !apierrors.IsForbidden(err) {
				t.Errorf("error = %v, want it to say %q and wrap the Forbidden", err, tt.want)
			}
		})
	}
}
