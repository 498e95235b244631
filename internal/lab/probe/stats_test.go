package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestHandler(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	srv := newAPIServer(t, ca.serving(t))
	p, err := New(inClusterConfig(t, srv, ca, testToken), &bytes.Buffer{}, fastOptions(2))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	h := p.Handler()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/stats", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /stats: %d %s", rec.Code, rec.Body)
	}
	var got Stats
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("GET /stats body %s: %v", rec.Body, err)
	}
	if diff := cmp.Diff(p.Stats(), got); diff != "" {
		t.Errorf("GET /stats (-Stats() +served):\n%s", diff)
	}
	if got.OK != 2 || got.Node != "worker-1" || got.Namespace != testNamespace {
		t.Errorf("served stats %+v", got)
	}

	for _, h := range []http.Handler{h, HealthMux()} {
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		if rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
			t.Errorf("GET /healthz: %d %q", rec.Code, rec.Body)
		}
	}
}
