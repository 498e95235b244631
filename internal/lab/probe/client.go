package probe

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// RootCAConfigMap is the ConfigMap kube-controller-manager publishes into
// every namespace. Any pod's service account may be granted get on it,
// and its content shows which CA bundle the controllers distribute.
const RootCAConfigMap = "kube-root-ca.crt"

// NewClient returns a core/v1 REST client for cfg whose every request
// dials a new connection and makes a full TLS handshake.
//
// client-go normally pools connections, and a pooled connection keeps
// working after the apiserver starts serving a certificate the pod would
// reject. Here keep-alives are off and there is no TLS session cache, so
// each request verifies the certificate served right now against the CA
// bundle read once from cfg, as a freshly started client would. Bearer
// token authentication still comes from client-go's wrappers, which
// re-read cfg.BearerTokenFile as the kubelet rotates it. cfg is not
// modified.
func NewClient(cfg *rest.Config) (rest.Interface, error) {
	cfg = rest.CopyConfig(cfg)
	tlsConf, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("tls config for %s: %w", cfg.Host, err)
	}
	if tlsConf != nil {
		tlsConf.ClientSessionCache = nil // resumption would skip verification
		tlsConf.NextProtos = []string{"http/1.1"}
	}
	proxy := cfg.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	cfg.Transport = &http.Transport{
		Proxy:               proxy,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: 5 * time.Second,
		DisableKeepAlives:   true,
	}
	// client-go refuses a custom Transport next to TLS options; the
	// options already live in tlsConf.
	cfg.TLSClientConfig = rest.TLSClientConfig{}
	// One tick is one request: no client-side throttling to delay it.
	cfg.QPS, cfg.Burst, cfg.RateLimiter = -1, 0, nil
	cfg.APIPath = "/api"
	cfg.GroupVersion = &corev1.SchemeGroupVersion
	// A scheme with core/v1 alone keeps the static binary small; it
	// still decodes the metav1.Status of error responses.
	sch := runtime.NewScheme()
	if err := corev1.AddToScheme(sch); err != nil {
		return nil, fmt.Errorf("core/v1 scheme: %w", err)
	}
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(sch).WithoutConversion()
	if cfg.UserAgent == "" {
		cfg.UserAgent = "carotate-probe"
	}
	client, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("rest client for %s: %w", cfg.Host, err)
	}
	return client, nil
}

// getRootCA fetches the namespace's kube-root-ca.crt once. Retries are
// off so that one call is one attempt, and one attempt one handshake.
func getRootCA(ctx context.Context, client rest.Interface, namespace string) (*corev1.ConfigMap, error) {
	var cm corev1.ConfigMap
	err := client.Get().
		Namespace(namespace).
		Resource("configmaps").
		Name(RootCAConfigMap).
		MaxRetries(0).
		Do(ctx).
		Into(&cm)
	if err != nil {
		return nil, err
	}
	return &cm, nil
}

// rootCAPath is the request path, for the start record.
func rootCAPath(namespace string) string {
	return "/api/v1/namespaces/" + namespace + "/configmaps/" + RootCAConfigMap
}
