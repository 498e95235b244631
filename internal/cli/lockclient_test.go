package cli

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The lock's client speaks HTTP/1.1, so that a retry after a hung
// renewal opens a new connection (which a TCP load balancer may send to
// another apiserver), while the main client keeps HTTP/2.
func TestLockClientIsHTTP1WithATimeout(t *testing.T) {
	var proto atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(int32(r.ProtoMajor))
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"kube-system","uid":"u"}}`))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	cfg := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: ca, ServerName: "example.com"}}
	if _, err := trustLater(cfg); err != nil {
		t.Fatal(err)
	}
	get := func(c *rest.Config) int32 {
		cs, err := kubernetes.NewForConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Namespaces().Get(context.Background(), "kube-system", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		return proto.Load()
	}
	lc := lockConfig(cfg)
	if got := get(lc); got != 1 {
		t.Errorf("the lock's client spoke HTTP/%d, want HTTP/1.1", got)
	}
	if lc.Timeout != lockRequestTimeout {
		t.Errorf("the lock's client has timeout %s, want %s", lc.Timeout, lockRequestTimeout)
	}
	if got := get(cfg); got != 2 {
		t.Errorf("the main client spoke HTTP/%d, want HTTP/2 (lockConfig must not change it)", got)
	}
}
