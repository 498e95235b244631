package satoken

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// header is the part of a JWT header we need.
type header struct {
	KeyID string `json:"kid"`
}

// claims is the part of a service-account token's payload we need, as
// kube-apiserver writes it (kubernetes/kubernetes pkg/serviceaccount/claims.go).
type claims struct {
	IssuedAt   numericDate `json:"iat"`
	Expiry     numericDate `json:"exp"`
	Kubernetes *struct {
		Namespace      string      `json:"namespace"`
		Pod            *ref        `json:"pod"`
		ServiceAccount ref         `json:"serviceaccount"`
		WarnAfter      numericDate `json:"warnafter"`
	} `json:"kubernetes.io"`
}

type ref struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// numericDate is a JWT time: seconds since the epoch, possibly fractional.
type numericDate float64

func (d numericDate) time() time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Unix(int64(d), 0).UTC()
}

// readJWT fills t from "<header>.<payload>". Neither is verified: which key
// signed the token is all we ask, and the kid answers it without the
// signature.
func (t *Token) readJWT(s string) error {
	h, p, ok := strings.Cut(s, ".")
	if !ok || strings.Contains(p, ".") {
		return errors.New("not the header and payload of a JWT")
	}
	var hdr header
	if err := decodeSegment(h, &hdr); err != nil {
		return fmt.Errorf("JWT header: %w", err)
	}
	var c claims
	if err := decodeSegment(p, &c); err != nil {
		return fmt.Errorf("JWT payload: %w", err)
	}
	t.KeyID = hdr.KeyID
	t.IssuedAt, t.Expiry = c.IssuedAt.time(), c.Expiry.time()
	if k := c.Kubernetes; k != nil {
		t.Namespace, t.ServiceAccount = k.Namespace, k.ServiceAccount.Name
		t.WarnAfter = k.WarnAfter.time()
		if k.Pod != nil {
			t.Pod = k.Pod.Name
		}
	}
	return nil
}

// decodeSegment decodes one base64url JSON segment of a JWT into v.
func decodeSegment(seg string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return fmt.Errorf("not base64url: %w", err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("not the JSON object of a service-account token: %w", err)
	}
	return nil
}

// HeaderKeyID is the kid in the header of a whole token, such as a legacy
// token Secret's: only the header is read, and nothing of the token is in
// the error.
func HeaderKeyID(token []byte) (string, error) {
	h, _, ok := strings.Cut(string(token), ".")
	if !ok {
		return "", errors.New("not a JWT")
	}
	var hdr header
	if err := decodeSegment(h, &hdr); err != nil {
		return "", fmt.Errorf("JWT header: %w", err)
	}
	return hdr.KeyID, nil
}
