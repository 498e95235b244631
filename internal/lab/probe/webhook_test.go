package probe

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestWebhookMux(t *testing.T) {
	srv := httptest.NewServer(WebhookMux())
	defer srv.Close()
	review := func(t *testing.T, object string) *admissionv1.AdmissionResponse {
		t.Helper()
		body, _ := json.Marshal(admissionv1.AdmissionReview{Request: &admissionv1.AdmissionRequest{UID: "u-1", Object: runtime.RawExtension{Raw: []byte(object)}}})
		resp, err := http.Post(srv.URL+"/validate", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out admissionv1.AdmissionReview
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil {
			t.Fatalf("response %d: %v", resp.StatusCode, err)
		}
		if out.Response.UID != "u-1" {
			t.Errorf("uid %q, want u-1", out.Response.UID)
		}
		return out.Response
	}
	if r := review(t, `{"metadata":{"name":"a"}}`); !r.Allowed {
		t.Errorf("a plain object was denied: %+v", r)
	}
	r := review(t, `{"metadata":{"name":"b","annotations":{"e2e.carotate.io/deny":"because"}}}`)
	if r.Allowed || r.Result == nil || r.Result.Message != "denied by the lab webhook: because" {
		t.Errorf("an annotated object: %+v, want denied with the annotation's reason", r)
	}
	resp, err := http.Post(srv.URL+"/validate", "application/json", bytes.NewReader([]byte("{}")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a review without a request: %d, want 400", resp.StatusCode)
	}
}
