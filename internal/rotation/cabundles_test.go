package rotation

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// bundleMaterial has an old and a new cluster CA and front-proxy CA, and
// names every certificate for the tests: O, N (cluster), FO, FN (front
// proxy), and X, a CA the rotation does not touch.
func bundleMaterial(t *testing.T) (*Material, map[string]*x509.Certificate, map[string]*pki.CA) {
	t.Helper()
	now := time.Now()
	gen := func(cn string) *pki.CA {
		t.Helper()
		ca, err := pki.GenerateCA(pki.GenerateOptions{Now: now, Algorithm: pki.ECDSAP256, CommonName: cn})
		if err != nil {
			t.Fatal(err)
		}
		return ca
	}
	cas := map[string]*pki.CA{"O": gen("old"), "N": gen("new"), "FO": gen("fp-old"), "FN": gen("fp-new"), "X": gen("other")}
	m := &Material{
		Old: map[model.CAKind]*pki.CA{model.ClusterCA: cas["O"], model.FrontProxyCA: cas["FO"]},
		New: map[model.CAKind]*pki.CA{model.ClusterCA: cas["N"], model.FrontProxyCA: cas["FN"]},
	}
	certs := map[string]*x509.Certificate{}
	for k, ca := range cas {
		certs[k] = ca.Cert
	}
	return m, certs, cas
}

func names(certs map[string]*x509.Certificate, list []*x509.Certificate) string {
	var out []string
	for _, c := range list {
		for k, v := range certs {
			if bytes.Equal(v.Raw, c.Raw) {
				out = append(out, k)
			}
		}
	}
	return strings.Join(out, " ")
}

func pick(certs map[string]*x509.Certificate, list string) []*x509.Certificate {
	var out []*x509.Certificate
	for _, k := range strings.Fields(list) {
		out = append(out, certs[k])
	}
	return out
}

func TestCarriedAt(t *testing.T) {
	m, certs, _ := bundleMaterial(t)
	for _, tt := range []struct {
		cur   string
		stage Stage
		want  string
		kinds []model.CAKind
	}{
		{"X", Trusted, "X", nil},
		{"X", Finalized, "X", nil},
		{"O", Trusted, "O N", []model.CAKind{model.ClusterCA}},
		{"O", Switched, "O N", []model.CAKind{model.ClusterCA}},
		{"O", Finalized, "N", []model.CAKind{model.ClusterCA}},
		{"O", Prepared, "O", []model.CAKind{model.ClusterCA}},
		{"X O", Trusted, "X O N", []model.CAKind{model.ClusterCA}},
		{"O X", Trusted, "O N X", []model.CAKind{model.ClusterCA}},
		{"O N X", Finalized, "N X", []model.CAKind{model.ClusterCA}},
		{"O N", Prepared, "O", []model.CAKind{model.ClusterCA}},
		{"N", Prepared, "O", []model.CAKind{model.ClusterCA}},
		{"N", Switched, "O N", []model.CAKind{model.ClusterCA}},
		{"N X", Finalized, "N X", []model.CAKind{model.ClusterCA}},
		{"FO O", Trusted, "FO FN O N", []model.CAKind{model.ClusterCA, model.FrontProxyCA}},
		{"FO FN O N", Finalized, "FN N", []model.CAKind{model.ClusterCA, model.FrontProxyCA}},
	} {
		t.Run(tt.cur+" at "+tt.stage.String(), func(t *testing.T) {
			got, kinds := m.carriedAt(pick(certs, tt.cur), tt.stage)
			if g := names(certs, got); g != tt.want {
				t.Errorf("bundle %q, want %q", g, tt.want)
			}
			if diff := cmp.Diff(tt.kinds, kinds); diff != "" {
				t.Errorf("kinds (-want +got):\n%s", diff)
			}
		})
	}
}

func webhookConfig(name string, annotations map[string]string, bundle []byte, svc string) *admissionv1.ValidatingWebhookConfiguration {
	return &admissionv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Webhooks: []admissionv1.ValidatingWebhook{{Name: "w." + name,
			ClientConfig: admissionv1.WebhookClientConfig{CABundle: bundle, Service: &admissionv1.ServiceReference{Namespace: "default", Name: svc}}}},
	}
}

func crd(name string, bundle []byte) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{"conversion": map[string]any{"strategy": "Webhook", "webhook": map[string]any{"clientConfig": map[string]any{
			"caBundle": base64.StdEncoding.EncodeToString(bundle),
			"service":  map[string]any{"namespace": "default", "name": "convert", "port": int64(8443)}}}}},
	}}
}

func apiService(name string, bundle []byte) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{"caBundle": base64.StdEncoding.EncodeToString(bundle),
			"service": map[string]any{"namespace": "default", "name": "metrics", "port": int64(443)}},
	}}
}

// TestCABundlesStep: trust adds the new CA beside the old one in every
// caBundle that holds it, webhook configurations and APIServices alike,
// and leaves alone the bundles that hold no rotated CA and those a
// controller injects; the undo puts the old bundles back, and finalize
// leaves the new CA alone. The fake clients stand for the objects.
func TestCABundlesStep(t *testing.T) {
	m, certs, _ := bundleMaterial(t)
	ctx := context.Background()
	b := func(list string) []byte { return pki.BuildBundle(pick(certs, list)...) }
	cs := fake.NewClientset(
		webhookConfig("ours", nil, b("X O"), "ours"),
		webhookConfig("injected", map[string]string{"cert-manager.io/inject-ca-from": "default/cert"}, b("O"), "injected"),
		webhookConfig("other", nil, b("X"), "other"),
	)
	scheme := runtime.NewScheme()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme,
		map[schema.GroupVersionResource]string{apiServiceGVR: "APIServiceList", crdGVR: "CustomResourceDefinitionList"},
		apiService("v1beta1.metrics.k8s.io", b("FO")), crd("widgets.e2e.carotate.io", b("O")))
	r := &Rotation{M: m, Client: cs, Dynamic: dyn}
	held := func(name string) string {
		t.Helper()
		c, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := pki.ParseCertificatesPEM(name, c.Webhooks[0].ClientConfig.CABundle)
		if err != nil {
			t.Fatal(err)
		}
		return names(certs, got)
	}
	dynHeld := func(gvr schema.GroupVersionResource, name string, path ...string) string {
		t.Helper()
		it, err := dyn.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		enc, _, _ := unstructured.NestedString(it.Object, path...)
		data, _ := base64.StdEncoding.DecodeString(enc)
		got, err := pki.ParseCertificatesPEM("apiservice", data)
		if err != nil {
			t.Fatal(err)
		}
		return names(certs, got)
	}
	state := func() string {
		return "ours: " + held("ours") + "; injected: " + held("injected") + "; other: " + held("other") +
			"; apiservice: " + dynHeld(apiServiceGVR, "v1beta1.metrics.k8s.io", "spec", "caBundle") +
			"; crd: " + dynHeld(crdGVR, "widgets.e2e.carotate.io", "spec", "conversion", "webhook", "clientConfig", "caBundle")
	}

	trust := r.caBundlesStep(Trusted)
	pl, err := trust.Describe(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if want := "3 caBundle(s); left alone: ValidatingWebhookConfiguration injected (its cert-manager.io/inject-ca-from controller writes it)"; pl.Summary != want {
		t.Errorf("plan summary %q, want %q", pl.Summary, want)
	}
	if done, _, err := trust.Check(ctx, r); err != nil || done {
		t.Fatalf("Check before trust = %v, %v; want not done", done, err)
	}
	ch, err := trust.Apply(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if want := "ours: X O N; injected: O; other: X; apiservice: FO FN; crd: O N"; state() != want {
		t.Errorf("after trust: %s, want %s", state(), want)
	}
	if want := "updated ValidatingWebhookConfiguration ours, APIService v1beta1.metrics.k8s.io, CustomResourceDefinition widgets.e2e.carotate.io; left alone: ValidatingWebhookConfiguration injected (its cert-manager.io/inject-ca-from controller writes it)"; !ch.Changed || ch.Detail != want {
		t.Errorf("change %+v, want %q", ch, want)
	}
	if done, detail, err := trust.Check(ctx, r); err != nil || !done {
		t.Errorf("Check after trust = %v, %q, %v; want done", done, detail, err)
	}
	if ch, err := trust.Apply(ctx, r); err != nil || ch.Changed {
		t.Errorf("a second trust = %+v, %v; want nothing changed", ch, err)
	}
	if _, err := trust.Undo(ctx, r); err != nil {
		t.Fatal(err)
	}
	if want := "ours: X O; injected: O; other: X; apiservice: FO; crd: O"; state() != want {
		t.Errorf("after the undo of trust: %s, want %s", state(), want)
	}
	if _, err := trust.Apply(ctx, r); err != nil {
		t.Fatal(err)
	}
	fin := r.caBundlesStep(Finalized)
	if _, err := fin.Apply(ctx, r); err != nil {
		t.Fatal(err)
	}
	if want := "ours: X N; injected: O; other: X; apiservice: FN; crd: N"; state() != want {
		t.Errorf("after finalize: %s, want %s", state(), want)
	}
	if _, err := fin.Undo(ctx, r); err != nil {
		t.Fatal(err)
	}
	if want := "ours: X O N; injected: O; other: X; apiservice: FO FN; crd: O N"; state() != want {
		t.Errorf("after the undo of finalize: %s, want %s", state(), want)
	}
}

func TestCABundlesStepRefusesAnUnreadableBundle(t *testing.T) {
	m, _, _ := bundleMaterial(t)
	cs := fake.NewClientset(webhookConfig("broken", nil, []byte("not a certificate"), "broken"))
	r := &Rotation{M: m, Client: cs}
	_, err := r.caBundlesStep(Trusted).Apply(context.Background(), r)
	if err == nil || !strings.Contains(err.Error(), "ValidatingWebhookConfiguration broken webhooks[w.broken].clientConfig.caBundle") ||
		!strings.Contains(err.Error(), "fix or empty that caBundle") {
		t.Errorf("error %v, want it to name the field and say what to do", err)
	}
	if len(cs.Actions()) != 2 { // the two lists
		t.Errorf("API calls %v, want only the lists", cs.Actions())
	}
}

// serveTLS serves TLS on loopback with a certificate for
// <name>.default.svc issued by ca, until the test ends; it returns the port.
func serveTLS(t *testing.T, ca *pki.CA, name string) int {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name + ".default.svc"},
		DNSNames: []string{name + ".default.svc"}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key.Signer())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func service(name string, port int) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{ClusterIP: "127.0.0.1", Ports: []corev1.ServicePort{{Port: int32(port)}}}}
}

// TestBundleServersStep: before finalize takes the old CA out of a
// caBundle, a fresh handshake with its server (here on loopback, dialled
// from the local node) must verify with the new bundle. A server that
// still presents a certificate from the old CA refuses finalize, naming
// the object, the field, the service and the issuer; a missing service is
// noted and lets it pass.
func TestBundleServersStep(t *testing.T) {
	m, certs, cas := bundleMaterial(t)
	ctx := context.Background()
	b := func(list string) []byte { return pki.BuildBundle(pick(certs, list)...) }
	n, _ := localNode(t, nil)
	withPort := func(c *admissionv1.ValidatingWebhookConfiguration, port int) *admissionv1.ValidatingWebhookConfiguration {
		p := int32(port)
		c.Webhooks[0].ClientConfig.Service.Port = &p
		return c
	}
	oldPort, newPort := serveTLS(t, cas["O"], "stale"), serveTLS(t, cas["N"], "fresh")
	for _, tt := range []struct {
		name    string
		objects []runtime.Object
		wantErr []string
		detail  string
	}{
		{name: "a server from the new CA passes",
			objects: []runtime.Object{withPort(webhookConfig("fresh", nil, b("O N"), "fresh"), newPort), service("fresh", newPort)},
			detail:  "1 server(s) verify with the new bundle"},
		{name: "a server from the old CA refuses finalize",
			objects: []runtime.Object{withPort(webhookConfig("stale", nil, b("O N"), "stale"), oldPort), service("stale", oldPort)},
			wantErr: []string{"finalize would take the old CA out of these caBundles",
				"ValidatingWebhookConfiguration stale webhooks[w.stale].clientConfig.caBundle (service default/stale port " + strconv.Itoa(oldPort) + "): ",
				`presents a certificate issued by "CN=old" that the bundle finalize leaves (CN=new) does not verify`,
				"reissue each server's certificate from the new CA"}},
		{name: "a missing service is noted",
			objects: []runtime.Object{webhookConfig("gone", nil, b("O N"), "nowhere")},
			detail:  "0 server(s) verify with the new bundle; not asked: ValidatingWebhookConfiguration gone: service default/nowhere does not exist, so nothing can be called with either bundle"},
		{name: "a bundle that loses no CA is not asked",
			objects: []runtime.Object{withPort(webhookConfig("stale", nil, b("X"), "stale"), oldPort), service("stale", oldPort)},
			detail:  "no caBundle loses a CA"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &Rotation{M: m, Client: fake.NewClientset(tt.objects...), Nodes: []*Node{n}}
			st := r.bundleServersStep()
			ch, err := st.Apply(ctx, r)
			if tt.wantErr == nil {
				if err != nil || ch.Detail != tt.detail {
					t.Errorf("Apply = %q, %v; want %q", ch.Detail, err, tt.detail)
				}
				return
			}
			if err == nil {
				t.Fatal("Apply passed")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %v\ndoes not say %q", err, w)
				}
			}
		})
	}
}
