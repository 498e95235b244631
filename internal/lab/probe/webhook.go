package probe

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DenyAnnotation on an object makes the lab's webhook deny it, so that a
// test can tell that kube-apiserver really called the webhook.
const DenyAnnotation = "e2e.carotate.io/deny"

// WebhookMux answers POST /validate with an AdmissionReview v1 that
// allows every object but one annotated DenyAnnotation, and GET /healthz.
func WebhookMux() *http.ServeMux {
	mux := HealthMux()
	mux.HandleFunc("POST /validate", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
			http.Error(w, fmt.Sprintf("not an AdmissionReview with a request: %v", err), http.StatusBadRequest)
			return
		}
		resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
		var obj metav1.PartialObjectMetadata
		if err := json.Unmarshal(review.Request.Object.Raw, &obj); err == nil {
			if v, ok := obj.Annotations[DenyAnnotation]; ok {
				resp.Allowed = false
				resp.Result = &metav1.Status{Message: "denied by the lab webhook: " + v}
			}
		}
		review.Response, review.Request = resp, nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(review)
	})
	return mux
}

// FileCertificate loads the serving certificate from certFile and keyFile
// at each handshake, so that a Secret the kubelet updates in the pod's
// volume is served without a restart.
func FileCertificate(certFile, keyFile string) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		return &c, nil
	}
}
