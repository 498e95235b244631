package inventory

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/carotate/carotate/internal/clusterstatus"
	"github.com/carotate/carotate/internal/inspect"
	"github.com/carotate/carotate/internal/lock"
	"github.com/carotate/carotate/internal/model"
)

// The API objects that carry or name a CA in a kubeadm cluster.
const (
	rootCAConfigMap     = "kube-root-ca.crt"
	extensionAuthConfig = "extension-apiserver-authentication"
	legacyTokenType     = "kubernetes.io/service-account-token"
)

// Resources read through the dynamic client, so that carotate needs no
// kube-aggregator or apiextensions module.
func apiServicesGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}
}

func crdsGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
}

// GatherAPI reads every API object that carries or names a CA: the
// kube-root-ca.crt ConfigMap of every namespace, cluster-info, kubeadm-config
// and kubeadm-certs, extension-apiserver-authentication, ClusterTrustBundles
// (whichever version the server serves, if any), the caBundles of webhook
// configurations, APIServices and CRD conversion webhooks, legacy
// service-account token Secrets, the certificates of approved
// CertificateSigningRequests, the CAs finalized rotations retired
// (carotate's status ConfigMap), and carotate's lock Lease.
//
// Content that does not parse goes into the model (CABundle.Error,
// KubeadmConfig.Error). A request that fails (forbidden, timeout) fails the
// whole gathering: a partial inventory would hide the very objects a
// rotation must not miss.
func GatherAPI(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface) (model.API, error) {
	var api model.API
	steps := []struct {
		what string
		run  func() error
	}{
		{"kube-root-ca.crt ConfigMaps", func() error { return gatherRootCAs(ctx, cs, &api) }},
		{"ConfigMap kube-public/cluster-info", func() error { return gatherClusterInfo(ctx, cs, &api) }},
		{"ConfigMap kube-system/kubeadm-config", func() error { return gatherKubeadmConfig(ctx, cs, &api) }},
		{"Secret kube-system/kubeadm-certs", func() error { return gatherKubeadmCerts(ctx, cs, &api) }},
		{"ConfigMap kube-system/" + extensionAuthConfig, func() error { return gatherExtensionAuth(ctx, cs, &api) }},
		{"ClusterTrustBundles", func() error { return gatherClusterTrustBundles(ctx, cs, &api) }},
		{"webhook configurations", func() error { return gatherWebhooks(ctx, cs, &api) }},
		{"APIServices", func() error { return gatherAPIServices(ctx, dyn, &api) }},
		{"CustomResourceDefinitions", func() error { return gatherCRDConversions(ctx, dyn, &api) }},
		{"service-account token Secrets", func() error { return gatherLegacyTokens(ctx, cs, &api) }},
		{"CertificateSigningRequests", func() error { return gatherIssuedCertificates(ctx, cs, &api) }},
		{"ConfigMap " + clusterstatus.Namespace + "/" + clusterstatus.Name, func() error { return gatherRetired(ctx, cs, &api) }},
		{"Lease " + lock.Namespace + "/" + lock.Name, func() error { return gatherLock(ctx, cs, &api) }},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			return model.API{}, fmt.Errorf("read %s: %w", s.what, err)
		}
	}
	sortBundles(api.CABundles)
	return api, nil
}

// bundle parses PEM held in an object field into a CABundle; content that
// does not parse is recorded, not fatal.
func bundle(loc model.Location, pemData []byte) model.CABundle {
	b := model.CABundle{Location: loc}
	certs, err := inspect.CertsFromPEM(loc.Object+" "+loc.Field, pemData)
	if err != nil {
		b.Error = err.Error()
		return b
	}
	b.Certs = certs
	return b
}

func objectField(object, field string) model.Location {
	return model.Location{Object: object, Field: field}
}

func gatherRootCAs(ctx context.Context, cs kubernetes.Interface, api *model.API) error {
	nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	cms, err := cs.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + rootCAConfigMap})
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, cm := range cms.Items {
		if cm.Name != rootCAConfigMap {
			continue
		}
		have[cm.Namespace] = true
		loc := objectField("ConfigMap "+cm.Namespace+"/"+rootCAConfigMap, "data[ca.crt]")
		api.RootCAConfigMaps = append(api.RootCAConfigMaps, bundle(loc, []byte(cm.Data["ca.crt"])))
	}
	sort.Slice(api.RootCAConfigMaps, func(i, j int) bool {
		return api.RootCAConfigMaps[i].Location.Object < api.RootCAConfigMaps[j].Location.Object
	})
	for _, ns := range nss.Items {
		if !have[ns.Name] {
			api.NamespacesWithoutRootCA = append(api.NamespacesWithoutRootCA, ns.Name)
		}
	}
	sort.Strings(api.NamespacesWithoutRootCA)
	return nil
}

func gatherClusterInfo(ctx context.Context, cs kubernetes.Interface, api *model.API) error {
	cm, err := cs.CoreV1().ConfigMaps("kube-public").Get(ctx, "cluster-info", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	const object = "ConfigMap kube-public/cluster-info"
	b := model.CABundle{Location: objectField(object, "data[kubeconfig]")}
	cfg, err := clientcmd.Load([]byte(cm.Data["kubeconfig"]))
	if err != nil {
		b.Error = fmt.Sprintf("%s data[kubeconfig] is not a kubeconfig: %v; kubeadm join cannot use it, re-create it with `kubeadm init phase bootstrap-token`", object, err)
		api.ClusterInfo = &b
		return nil
	}
	names := make([]string, 0, len(cfg.Clusters))
	for name := range cfg.Clusters {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if data := cfg.Clusters[name].CertificateAuthorityData; len(data) > 0 {
			b = bundle(objectField(object, "data[kubeconfig] clusters["+name+"].certificate-authority-data"), data)
			api.ClusterInfo = &b
			return nil
		}
	}
	b.Error = object + " data[kubeconfig] has no certificate-authority-data; kubeadm join cannot verify the cluster"
	api.ClusterInfo = &b
	return nil
}

// clusterConfiguration is the part of kubeadm's ClusterConfiguration
// (v1beta3 and v1beta4 agree on these fields) that carotate needs.
type clusterConfiguration struct {
	KubernetesVersion    string `json:"kubernetesVersion"`
	ControlPlaneEndpoint string `json:"controlPlaneEndpoint"`
	CertificatesDir      string `json:"certificatesDir"`
	ClusterName          string `json:"clusterName"`
	Etcd                 struct {
		External *struct{} `json:"external"`
	} `json:"etcd"`
}

func gatherKubeadmConfig(ctx context.Context, cs kubernetes.Interface, api *model.API) error {
	cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubeadm-config", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	kc := &model.KubeadmConfig{}
	api.KubeadmConfig = kc
	raw, ok := cm.Data["ClusterConfiguration"]
	if !ok {
		kc.Error = "ConfigMap kube-system/kubeadm-config has no data[ClusterConfiguration]; was the cluster made by kubeadm?"
		return nil
	}
	var cc clusterConfiguration
	if err := yaml.Unmarshal([]byte(raw), &cc); err != nil {
		kc.Error = fmt.Sprintf("ConfigMap kube-system/kubeadm-config data[ClusterConfiguration] does not parse: %v", err)
		return nil
	}
	*kc = model.KubeadmConfig{
		KubernetesVersion:    cc.KubernetesVersion,
		ControlPlaneEndpoint: cc.ControlPlaneEndpoint,
		CertificatesDir:      cc.CertificatesDir,
		ClusterName:          cc.ClusterName,
		ExternalEtcd:         cc.Etcd.External != nil,
	}
	return nil
}

func gatherKubeadmCerts(ctx context.Context, cs kubernetes.Interface, api *model.API) error {
	// Only whether it exists matters. Its content (the CA keys, encrypted
	// with kubeadm's certificate key) comes along with the Get and is
	// dropped here, never kept or logged.
	_, err := cs.CoreV1().Secrets("kube-system").Get(ctx, "kubeadm-certs", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return err
	}
	api.KubeadmCertsSecret = true
	return nil
}

func gatherExtensionAuth(ctx context.Context, cs kubernetes.Interface, api *model.API) error {
	cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, extensionAuthConfig, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	object := "ConfigMap kube-system/" + extensionAuthConfig
	if v, ok := cm.Data["client-ca-file"]; ok {
		b := bundle(objectField(object, "data[client-ca-file]"), []byte(v))
		api.ClientCA = &b
	}
	if v, ok := cm.Data["requestheader-client-ca-file"]; ok {
		b := bundle(objectField(object, "data[requestheader-client-ca-file]"), []byte(v))
		api.RequestHeaderClientCA = &b
	}
	return nil
}

// gatherClusterTrustBundles reads ClusterTrustBundles from the newest
// version the server serves; a server without the API has none.
func gatherClusterTrustBundles(ctx context.Context, cs kubernetes.Interface, api *model.API) error {
	version, err := servedVersion(cs, "certificates.k8s.io", "clustertrustbundles", "v1", "v1beta1", "v1alpha1")
	if err != nil || version == "" {
		return err
	}
	type ctb struct{ name, signer, pem string }
	var items []ctb
	switch version {
	case "v1":
		l, err := cs.CertificatesV1().ClusterTrustBundles().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, b := range l.Items {
			items = append(items, ctb{b.Name, b.Spec.SignerName, b.Spec.TrustBundle})
		}
	case "v1beta1":
		l, err := cs.CertificatesV1beta1().ClusterTrustBundles().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, b := range l.Items {
			items = append(items, ctb{b.Name, b.Spec.SignerName, b.Spec.TrustBundle})
		}
	case "v1alpha1":
		l, err := cs.CertificatesV1alpha1().ClusterTrustBundles().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, b := range l.Items {
			items = append(items, ctb{b.Name, b.Spec.SignerName, b.Spec.TrustBundle})
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].name < items[j].name })
	for _, it := range items {
		api.ClusterTrustBundles = append(api.ClusterTrustBundles,
			bundle(objectField("ClusterTrustBundle "+it.name, "spec.trustBundle"), []byte(it.pem)))
	}
	return nil
}

// servedVersion returns the first of versions in which the server serves
// resource of group, or "" when it serves none of them.
func servedVersion(cs kubernetes.Interface, group, resource string, versions ...string) (string, error) {
	for _, v := range versions {
		list, err := cs.Discovery().ServerResourcesForGroupVersion(group + "/" + v)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("discover %s/%s: %w", group, v, err)
		}
		for _, r := range list.APIResources {
			if r.Name == resource {
				return v, nil
			}
		}
	}
	return "", nil
}

func gatherWebhooks(ctx context.Context, cs kubernetes.Interface, api *model.API) error {
	vw, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, c := range vw.Items {
		for _, w := range c.Webhooks {
			addCABundle(api, "ValidatingWebhookConfiguration "+c.Name, "webhooks["+w.Name+"].clientConfig.caBundle", w.ClientConfig.CABundle)
		}
	}
	mw, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, c := range mw.Items {
		for _, w := range c.Webhooks {
			addCABundle(api, "MutatingWebhookConfiguration "+c.Name, "webhooks["+w.Name+"].clientConfig.caBundle", w.ClientConfig.CABundle)
		}
	}
	return nil
}

// addCABundle records a caBundle field; an empty one means the system's
// roots and names no CA of ours.
func addCABundle(api *model.API, object, field string, pemData []byte) {
	if len(pemData) == 0 {
		return
	}
	api.CABundles = append(api.CABundles, bundle(objectField(object, field), pemData))
}

// listDynamic lists a resource; a server that does not serve it has none.
func listDynamic(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource) ([]unstructured.Unstructured, error) {
	l, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].GetName() < l.Items[j].GetName() })
	return l.Items, nil
}

// dynamicCABundle reads a base64 caBundle field of an unstructured object.
// It returns the bundle and whether the field is set.
func dynamicCABundle(obj map[string]any, object string, fields ...string) (model.CABundle, bool) {
	field := strings.Join(fields, ".")
	s, found, err := unstructured.NestedString(obj, fields...)
	loc := objectField(object, field)
	if err != nil {
		return model.CABundle{Location: loc, Error: fmt.Sprintf("%s %s is not a string: %v", object, field, err)}, true
	}
	if !found || s == "" {
		return model.CABundle{}, false
	}
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return model.CABundle{Location: loc, Error: fmt.Sprintf("%s %s is not base64: %v", object, field, err)}, true
	}
	return bundle(loc, data), true
}

func gatherAPIServices(ctx context.Context, dyn dynamic.Interface, api *model.API) error {
	items, err := listDynamic(ctx, dyn, apiServicesGVR())
	if err != nil {
		return err
	}
	for _, it := range items {
		object := "APIService " + it.GetName()
		svc := model.APIService{Name: it.GetName()}
		_, hasService, _ := unstructured.NestedMap(it.Object, "spec", "service")
		svc.Local = !hasService
		conds, _, _ := unstructured.NestedSlice(it.Object, "status", "conditions")
		for _, c := range conds {
			m, ok := c.(map[string]any)
			if !ok || m["type"] != "Available" {
				continue
			}
			svc.Available = m["status"] == "True"
			svc.Message, _ = m["message"].(string)
		}
		api.APIServices = append(api.APIServices, svc)
		if b, ok := dynamicCABundle(it.Object, object, "spec", "caBundle"); ok {
			api.CABundles = append(api.CABundles, b)
		}
	}
	return nil
}

func gatherCRDConversions(ctx context.Context, dyn dynamic.Interface, api *model.API) error {
	items, err := listDynamic(ctx, dyn, crdsGVR())
	if err != nil {
		return err
	}
	for _, it := range items {
		if s, _, _ := unstructured.NestedString(it.Object, "spec", "conversion", "strategy"); s != "Webhook" {
			continue
		}
		object := "CustomResourceDefinition " + it.GetName()
		if b, ok := dynamicCABundle(it.Object, object, "spec", "conversion", "webhook", "clientConfig", "caBundle"); ok {
			api.CABundles = append(api.CABundles, b)
		}
	}
	return nil
}

func gatherLegacyTokens(ctx context.Context, cs kubernetes.Interface, api *model.API) error {
	// The field selector keeps the other Secrets' data from ever being
	// fetched; the type check below guards against a server that ignored it.
	l, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{FieldSelector: "type=" + legacyTokenType})
	if err != nil {
		return err
	}
	for _, s := range l.Items {
		if string(s.Type) != legacyTokenType {
			continue
		}
		loc := objectField("Secret "+s.Namespace+"/"+s.Name, "data[ca.crt]")
		api.LegacyTokenSecrets = append(api.LegacyTokenSecrets, bundle(loc, s.Data["ca.crt"]))
	}
	sortBundles(api.LegacyTokenSecrets)
	return nil
}

func gatherLock(ctx context.Context, cs kubernetes.Interface, api *model.API) error {
	l, err := cs.CoordinationV1().Leases(lock.Namespace).Get(ctx, lock.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	lock := &model.Lock{}
	if l.Spec.HolderIdentity != nil {
		lock.Holder = *l.Spec.HolderIdentity
	}
	if l.Spec.AcquireTime != nil {
		lock.Acquired = l.Spec.AcquireTime.Time
	}
	if l.Spec.RenewTime != nil {
		lock.RenewedAt = l.Spec.RenewTime.Time
	}
	api.Lock = lock
	return nil
}

func sortBundles(bs []model.CABundle) {
	sort.SliceStable(bs, func(i, j int) bool {
		a, b := bs[i].Location, bs[j].Location
		if a.Object != b.Object {
			return a.Object < b.Object
		}
		return a.Field < b.Field
	})
}

// gatherIssuedCertificates reads the certificate of every approved
// CertificateSigningRequest that has one: the only record the cluster keeps
// of client certificates issued outside kubeadm's files.
func gatherIssuedCertificates(ctx context.Context, cs kubernetes.Interface, api *model.API) error {
	l, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
	for _, csr := range l.Items {
		if len(csr.Status.Certificate) == 0 || !approved(csr.Status.Conditions) {
			continue
		}
		ic := model.IssuedCertificate{CSR: csr.Name, Signer: csr.Spec.SignerName, Username: csr.Spec.Username, Groups: csr.Spec.Groups}
		certs, err := inspect.CertsFromPEM("CertificateSigningRequest "+csr.Name+" status.certificate", csr.Status.Certificate)
		if err != nil {
			ic.Error = err.Error()
		} else {
			ic.Cert = &certs[0]
		}
		api.IssuedCertificates = append(api.IssuedCertificates, ic)
	}
	return nil
}

// approved says a CSR was approved and not denied or failed since.
func approved(conds []certificatesv1.CertificateSigningRequestCondition) bool {
	ok := false
	for _, c := range conds {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case certificatesv1.CertificateApproved:
			ok = true
		case certificatesv1.CertificateDenied, certificatesv1.CertificateFailed:
			return false
		}
	}
	return ok
}

// gatherRetired reads the CAs finalized rotations retired.
func gatherRetired(ctx context.Context, cs kubernetes.Interface, api *model.API) error {
	st, ok, err := clusterstatus.Read(ctx, cs)
	if err != nil || !ok {
		return err
	}
	for _, r := range st.Retired {
		api.RetiredCAs = append(api.RetiredCAs, model.RetiredCA{Kind: model.CAKind(r.Kind), SPKISHA256: r.SPKISHA256})
	}
	return nil
}
