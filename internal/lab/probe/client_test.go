package probe

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/rest"
)

func TestNewClientHandshakesPerRequest(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	srv := newAPIServer(t, ca.serving(t))
	client, err := NewClient(inClusterConfig(t, srv, ca, testToken))
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cm, err := getRootCA(ctx, client, testNamespace)
		cancel()
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		if cm.Data["ca.crt"] != testBundle {
			t.Fatalf("get %d: ca.crt = %q", i, cm.Data["ca.crt"])
		}
	}
	if got := srv.handshakes.Load(); got != n {
		t.Errorf("%d requests made %d TLS handshakes, want one each", n, got)
	}
	if got := srv.connections.Load(); got != n {
		t.Errorf("%d requests used %d connections, want one each", n, got)
	}
}

func TestNewClientErrors(t *testing.T) {
	trusted := newTestCA(t, "cluster-ca")
	other := newTestCA(t, "other-ca")
	tests := []struct {
		name      string
		serveBy   testCA
		token     string
		namespace string
		wantErr   string
	}{
		{name: "untrusted serving certificate", serveBy: other, token: testToken, namespace: testNamespace, wantErr: "x509: certificate signed by unknown authority"},
		{name: "rejected token", serveBy: trusted, token: "stale", namespace: testNamespace, wantErr: "Unauthorized"},
		{name: "no configmap", serveBy: trusted, token: testToken, namespace: "elsewhere", wantErr: "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newAPIServer(t, tt.serveBy.serving(t))
			client, err := NewClient(inClusterConfig(t, srv, trusted, tt.token))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = getRootCA(ctx, client, tt.namespace)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			// One attempt, no retries behind the caller's back.
			if got := srv.handshakes.Load(); got != 1 {
				t.Errorf("%d handshakes for one attempt", got)
			}
		})
	}
}

func TestNewClientLeavesConfigAlone(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	srv := newAPIServer(t, ca.serving(t))
	cfg := inClusterConfig(t, srv, ca, testToken)
	before := rest.CopyConfig(cfg)
	if _, err := NewClient(cfg); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before.String(), cfg.String()); diff != "" {
		t.Errorf("NewClient changed its config (-before +after):\n%s", diff)
	}
	if cfg.Transport != nil || cfg.TLSClientConfig.CAFile == "" {
		t.Errorf("NewClient changed its config: transport %v, CA file %q", cfg.Transport, cfg.TLSClientConfig.CAFile)
	}
}
