package rotation

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/retry"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// The caBundle fields of webhook configurations, APIServices and CRD
// conversion webhooks tell kube-apiserver which CAs to verify those
// servers with. One that holds a CA the rotation changes is carried
// along: at trust the new CA joins the old one (right after it), and at
// finalize the old one leaves, once a fresh handshake with the server has
// shown that it presents a certificate the bundle left behind verifies
// (cabundlegate.go). Every other certificate in the bundle stays where it
// is. An object whose bundle another controller injects (cert-manager's
// cainjector, OpenShift's service CA) is left to it, and the plan names
// it.

// injectAnnotations mark an object whose caBundle a controller writes.
var injectAnnotations = []string{
	"cert-manager.io/inject-ca-from",
	"cert-manager.io/inject-ca-from-secret",
	"cert-manager.io/inject-apiserver-ca",
	"service.beta.openshift.io/inject-cabundle",
}

// The kinds whose caBundles are carried, in the order the step visits them.
const (
	kindValidatingWebhook = "ValidatingWebhookConfiguration"
	kindMutatingWebhook   = "MutatingWebhookConfiguration"
	kindAPIService        = "APIService"
	kindCRD               = "CustomResourceDefinition"
)

var (
	apiServiceGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}
	crdGVR        = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// bundleField is one caBundle field, as read from the cluster.
type bundleField struct {
	Kind, Name string // the object (cluster-scoped)
	Field      string // "webhooks[w].clientConfig.caBundle", "spec.caBundle", …
	Data       []byte // the PEM bundle
	// Injected names the annotation by which a controller writes this
	// bundle; carotate leaves it alone.
	Injected string
	// Service or URL is where the server is: the one kube-apiserver calls.
	Service *admissionv1.ServiceReference
	URL     string
}

func (f bundleField) object() string { return f.Kind + " " + f.Name }

func (f bundleField) String() string { return f.object() + " " + f.Field }

// server names where the field's server is, for messages.
func (f bundleField) server() string {
	if f.Service != nil {
		return fmt.Sprintf("service %s/%s port %d", f.Service.Namespace, f.Service.Name, servicePort(f.Service))
	}
	return f.URL
}

func servicePort(s *admissionv1.ServiceReference) int32 {
	if s.Port != nil {
		return *s.Port
	}
	return 443
}

func injectedBy(annotations map[string]string) string {
	for _, a := range injectAnnotations {
		if _, ok := annotations[a]; ok {
			return a
		}
	}
	return ""
}

// carriedAt is the bundle cur at stage s, and the CA kinds of this
// rotation it carries (none: the bundle is not the rotation's business,
// and want is cur). For each rotated CA whose old or new certificate cur
// holds:
//   - Trusted, Switched: old and new, the new right after the old;
//   - Finalized: the new in the old's place;
//   - before Trusted (a rollback of trust): the old in the new's place.
func (m *Material) carriedAt(cur []*x509.Certificate, s Stage) (want []*x509.Certificate, kinds []model.CAKind) {
	want = slices.Clone(cur)
	for _, k := range []model.CAKind{model.ClusterCA, model.FrontProxyCA, model.EtcdCA} {
		oldCA, newCA := m.Old[k], m.New[k]
		if oldCA == nil || newCA == nil {
			continue
		}
		o, n := oldCA.Cert, newCA.Cert
		io, in := indexOf(want, o), indexOf(want, n)
		if io < 0 && in < 0 {
			continue
		}
		kinds = append(kinds, k)
		switch {
		case s == Trusted || s == Switched:
			switch {
			case io < 0:
				want = slices.Insert(want, in, o)
			case in < 0:
				want = slices.Insert(want, io+1, n)
			}
		case s == Finalized:
			if in < 0 {
				want[io] = n
			} else if io >= 0 {
				want = slices.Delete(want, io, io+1)
			}
		default:
			if io < 0 {
				want[in] = o
			} else if in >= 0 {
				want = slices.Delete(want, in, in+1)
			}
		}
	}
	return want, kinds
}

func indexOf(certs []*x509.Certificate, c *x509.Certificate) int {
	return slices.IndexFunc(certs, func(x *x509.Certificate) bool { return bytes.Equal(x.Raw, c.Raw) })
}

func sameCerts(a, b []*x509.Certificate) bool {
	return slices.EqualFunc(a, b, func(x, y *x509.Certificate) bool { return bytes.Equal(x.Raw, y.Raw) })
}

// bundleChange is what stage s does to one field.
type bundleChange struct {
	field     bundleField
	cur, want []*x509.Certificate
	kinds     []model.CAKind
}

func (c bundleChange) changes() bool { return !sameCerts(c.cur, c.want) }

// bundleChanges are the fields that carry a rotated CA, with what each
// holds now and at stage s. A field that does not parse is an error that
// names it: carotate will not guess what a server is trusted with.
func (r *Rotation) bundleChanges(ctx context.Context, s Stage) (carried, injected []bundleChange, err error) {
	fields, err := r.bundleFields(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range fields {
		cur, err := pki.ParseCertificatesPEM(f.String(), f.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("%w; fix or empty that caBundle, then run carotate again", err)
		}
		want, kinds := r.M.carriedAt(cur, s)
		if len(kinds) == 0 {
			continue
		}
		c := bundleChange{field: f, cur: cur, want: want, kinds: kinds}
		if f.Injected != "" {
			c.want = cur
			injected = append(injected, c)
			continue
		}
		carried = append(carried, c)
	}
	return carried, injected, nil
}

// bundleFields reads every non-empty caBundle field of the kinds above.
func (r *Rotation) bundleFields(ctx context.Context) ([]bundleField, error) {
	var out []bundleField
	vs, err := r.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list ValidatingWebhookConfigurations: %w", err)
	}
	for _, c := range vs.Items {
		for _, w := range c.Webhooks {
			out = appendWebhook(out, kindValidatingWebhook, c.Name, c.Annotations, w.Name, w.ClientConfig)
		}
	}
	ms, err := r.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list MutatingWebhookConfigurations: %w", err)
	}
	for _, c := range ms.Items {
		for _, w := range c.Webhooks {
			out = appendWebhook(out, kindMutatingWebhook, c.Name, c.Annotations, w.Name, w.ClientConfig)
		}
	}
	if r.Dynamic == nil {
		return out, nil
	}
	for _, d := range []struct {
		kind string
		gvr  schema.GroupVersionResource
		path []string
	}{
		{kindAPIService, apiServiceGVR, []string{"spec"}},
		{kindCRD, crdGVR, []string{"spec", "conversion", "webhook", "clientConfig"}},
	} {
		list, err := r.Dynamic.Resource(d.gvr).List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list %ss: %w", d.kind, err)
		}
		for _, it := range list.Items {
			f, ok, err := dynamicField(d.kind, it, d.path)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, f)
			}
		}
	}
	return out, nil
}

func appendWebhook(out []bundleField, kind, name string, annotations map[string]string, webhook string, cc admissionv1.WebhookClientConfig) []bundleField {
	if len(cc.CABundle) == 0 {
		return out
	}
	f := bundleField{Kind: kind, Name: name, Field: "webhooks[" + webhook + "].clientConfig.caBundle", Data: cc.CABundle,
		Injected: injectedBy(annotations), Service: cc.Service}
	if cc.URL != nil {
		f.URL = *cc.URL
	}
	return append(out, f)
}

// dynamicField reads the caBundle (base64) under path of an APIService or
// a CRD, and the service beside it.
func dynamicField(kind string, it unstructured.Unstructured, path []string) (bundleField, bool, error) {
	f := bundleField{Kind: kind, Name: it.GetName(), Field: strings.Join(append(slices.Clone(path), "caBundle"), "."), Injected: injectedBy(it.GetAnnotations())}
	enc, _, _ := unstructured.NestedString(it.Object, append(slices.Clone(path), "caBundle")...)
	if enc == "" {
		return f, false, nil
	}
	data, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return f, false, fmt.Errorf("%s: not base64: %w", f, err)
	}
	f.Data = data
	svc, ok, _ := unstructured.NestedMap(it.Object, append(slices.Clone(path), "service")...)
	if ok {
		ref := &admissionv1.ServiceReference{}
		ref.Namespace, _ = svc["namespace"].(string)
		ref.Name, _ = svc["name"].(string)
		if p, ok := svc["port"].(int64); ok {
			port := int32(p)
			ref.Port = &port
		}
		f.Service = ref
	}
	f.URL, _, _ = unstructured.NestedString(it.Object, append(slices.Clone(path), "url")...)
	return f, true, nil
}

// setBundles writes stage s's bundle into every carried field, one
// update per object carrying the resourceVersion it read, and says which
// fields it changed.
func (r *Rotation) setBundles(ctx context.Context, s Stage) (engine.Change, error) {
	carried, injected, err := r.bundleChanges(ctx, s)
	if err != nil {
		return engine.Change{}, err
	}
	var ch engine.Change
	var objs []string
	done := map[string]bool{}
	for _, c := range carried {
		obj := c.field.object()
		if done[obj] || !c.changes() {
			continue
		}
		done[obj] = true
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error { return r.updateBundles(ctx, c.field.Kind, c.field.Name, s) }); err != nil {
			return ch, fmt.Errorf("update the caBundles of %s: %w", obj, err)
		}
		ch.Changed = true
		objs = append(objs, obj)
	}
	if len(objs) > 0 {
		ch.Detail = "updated " + strings.Join(objs, ", ")
		if d := bundlesDetail(nil, injected); d != "" && len(injected) > 0 {
			ch.Detail += "; " + d
		}
	}
	return ch, nil
}

// updateBundles reads one object and writes stage s's bundle into each of
// its caBundle fields that carries a rotated CA.
func (r *Rotation) updateBundles(ctx context.Context, kind, name string, s Stage) error {
	carry := func(field string, data []byte) ([]byte, error) {
		cur, err := pki.ParseCertificatesPEM(kind+" "+name+" "+field, data)
		if err != nil {
			return nil, err
		}
		want, kinds := r.M.carriedAt(cur, s)
		if len(kinds) == 0 || sameCerts(cur, want) {
			return data, nil
		}
		return pki.BuildBundle(want...), nil
	}
	switch kind {
	case kindValidatingWebhook:
		api := r.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
		return carryWebhooks(ctx, api.Get, api.Update, name, carry, func(c *admissionv1.ValidatingWebhookConfiguration) (out []namedConfig) {
			for i := range c.Webhooks {
				out = append(out, namedConfig{c.Webhooks[i].Name, &c.Webhooks[i].ClientConfig})
			}
			return out
		})
	case kindMutatingWebhook:
		api := r.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
		return carryWebhooks(ctx, api.Get, api.Update, name, carry, func(c *admissionv1.MutatingWebhookConfiguration) (out []namedConfig) {
			for i := range c.Webhooks {
				out = append(out, namedConfig{c.Webhooks[i].Name, &c.Webhooks[i].ClientConfig})
			}
			return out
		})
	}
	gvr, path := apiServiceGVR, []string{"spec", "caBundle"}
	if kind == kindCRD {
		gvr, path = crdGVR, []string{"spec", "conversion", "webhook", "clientConfig", "caBundle"}
	}
	api := r.Dynamic.Resource(gvr)
	it, err := api.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if injectedBy(it.GetAnnotations()) != "" {
		return nil
	}
	enc, _, _ := unstructured.NestedString(it.Object, path...)
	data, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return fmt.Errorf("%s %s %s: not base64: %w", kind, name, strings.Join(path, "."), err)
	}
	b, err := carry(strings.Join(path, "."), data)
	if err != nil {
		return err
	}
	if err := unstructured.SetNestedField(it.Object, base64.StdEncoding.EncodeToString(b), path...); err != nil {
		return err
	}
	_, err = api.Update(ctx, it, metav1.UpdateOptions{})
	return err
}

// namedConfig is one webhook's client config in a configuration.
type namedConfig struct {
	name string
	cc   *admissionv1.WebhookClientConfig
}

// carryWebhooks reads a webhook configuration and writes what carry
// makes of each webhook's caBundle, unless a controller injects them.
func carryWebhooks[T metav1.Object](ctx context.Context,
	get func(context.Context, string, metav1.GetOptions) (T, error),
	update func(context.Context, T, metav1.UpdateOptions) (T, error),
	name string, carry func(field string, data []byte) ([]byte, error), hooks func(T) []namedConfig) error {
	c, err := get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if injectedBy(c.GetAnnotations()) != "" {
		return nil
	}
	for _, h := range hooks(c) {
		if len(h.cc.CABundle) == 0 {
			continue
		}
		b, err := carry("webhooks["+h.name+"].clientConfig.caBundle", h.cc.CABundle)
		if err != nil {
			return err
		}
		h.cc.CABundle = b
	}
	_, err = update(ctx, c, metav1.UpdateOptions{})
	return err
}

// caBundlesStep carries every caBundle that holds a rotated CA to stage s.
func (r *Rotation) caBundlesStep(s Stage) engine.Step[*Rotation] {
	name := "webhook, APIService and CRD caBundles trust old and new"
	if s == Finalized {
		name = "webhook, APIService and CRD caBundles trust only the new CA"
	}
	return engine.Step[*Rotation]{
		Name:   name,
		Target: engine.Target{Object: "caBundles of webhooks, APIServices and CRD conversion"},
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			carried, injected, err := r.bundleChanges(ctx, s)
			if err != nil {
				return false, "", err
			}
			var todo []string
			for _, c := range carried {
				if c.changes() {
					todo = append(todo, c.field.String())
				}
			}
			if len(todo) > 0 {
				return false, fmt.Sprintf("%d to change: %s", len(todo), strings.Join(todo, ", ")), nil
			}
			return true, bundlesDetail(carried, injected), nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) { return r.setBundles(ctx, s) },
		Undo:  func(ctx context.Context, r *Rotation) (engine.Change, error) { return r.setBundles(ctx, s-1) },
		Describe: func(ctx context.Context, r *Rotation) (engine.Plan, error) {
			carried, injected, err := r.bundleChanges(ctx, s)
			if err != nil {
				return engine.Plan{}, err
			}
			var pl engine.Plan
			n := 0
			for _, c := range carried {
				if c.changes() {
					n++
					pl.Diffs = append(pl.Diffs, engine.ObjectDiff(c.field.object(), c.field.Field, subjects(c.cur), subjects(c.want)))
				}
			}
			pl.Summary = fmt.Sprintf("%d caBundle(s)", n)
			if d := bundlesDetail(nil, injected); d != "" {
				pl.Summary += "; " + d
			}
			return pl, nil
		},
	}
}

// bundlesDetail says how many fields carry a rotated CA, and names those
// left to the controller that injects them.
func bundlesDetail(carried, injected []bundleChange) string {
	var parts []string
	if len(carried) > 0 {
		parts = append(parts, fmt.Sprintf("%d caBundle(s) carry the rotated CAs", len(carried)))
	}
	if len(injected) > 0 {
		var names []string
		for _, c := range injected {
			names = append(names, c.field.object()+" (its "+c.field.Injected+" controller writes it)")
		}
		parts = append(parts, "left alone: "+strings.Join(slices.Compact(names), ", "))
	}
	if len(parts) == 0 {
		return "no caBundle carries a rotated CA"
	}
	return strings.Join(parts, "; ")
}

func subjects(certs []*x509.Certificate) string {
	var out []string
	for _, c := range certs {
		out = append(out, c.Subject.String())
	}
	return strings.Join(out, " + ")
}
