package pki

import (
	"crypto/x509"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBuildBundle(t *testing.T) {
	key := newKey(t, "ECDSA-P256")
	a := kubeadmCA(t, "kubernetes-ca-new", key, testNow()).Cert
	b := kubeadmCA(t, "kubernetes", key, testNow()).Cert
	c := kubeadmCA(t, "front-proxy-ca", key, testNow()).Cert
	tests := []struct {
		name string
		in   []*x509.Certificate
		want []*x509.Certificate
	}{
		{name: "caller's order, new first", in: []*x509.Certificate{a, b}, want: []*x509.Certificate{a, b}},
		{name: "caller's order, old first", in: []*x509.Certificate{b, a}, want: []*x509.Certificate{b, a}},
		{name: "duplicates removed, first occurrence kept", in: []*x509.Certificate{a, b, a, c, b}, want: []*x509.Certificate{a, b, c}},
		{name: "nil entries skipped", in: []*x509.Certificate{nil, a, nil}, want: []*x509.Certificate{a}},
		{name: "empty", in: nil, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := BuildBundle(tt.in...)
			if len(tt.want) == 0 {
				if len(data) != 0 {
					t.Errorf("BuildBundle() = %q, want nothing", data)
				}
				return
			}
			got, err := ParseCertificatesPEM("bundle", data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(rawOf(tt.want), rawOf(got)); diff != "" {
				t.Errorf("bundle mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(data, BuildBundle(tt.in...)); diff != "" {
				t.Errorf("BuildBundle is not stable (-first +second):\n%s", diff)
			}
		})
	}
}

func TestParseBundleAndDuplicates(t *testing.T) {
	key := newKey(t, "ECDSA-P256")
	a := kubeadmCA(t, "kubernetes-ca-new", key, testNow()).Cert
	b := kubeadmCA(t, "kubernetes", key, testNow()).Cert
	pemA, pemB := EncodeCertificatePEM(a), EncodeCertificatePEM(b)
	tests := []struct {
		name      string
		data      []byte
		wantDedup []*x509.Certificate
		wantDups  []Duplicate
		fragments []string
	}{
		{name: "no duplicates", data: concat(pemA, pemB), wantDedup: []*x509.Certificate{a, b}},
		{name: "repeated certificate", data: concat(pemA, pemB, pemA), wantDedup: []*x509.Certificate{a, b},
			wantDups: []Duplicate{{Index: 2, First: 0}}, fragments: []string{"certificate 3", "repeats certificate 1", "kubernetes-ca-new"}},
		{name: "several repeats", data: concat(pemB, pemB, pemA, pemB), wantDedup: []*x509.Certificate{b, a},
			wantDups: []Duplicate{{Index: 1, First: 0}, {Index: 3, First: 0}}, fragments: []string{"certificate 2", "and 1 more"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBundle("ca.crt", tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(rawOf(tt.wantDedup), rawOf(got)); diff != "" {
				t.Errorf("ParseBundle mismatch (-want +got):\n%s", diff)
			}
			all, err := ParseCertificatesPEM("ca.crt", tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantDups, FindDuplicates(all)); diff != "" {
				t.Errorf("FindDuplicates mismatch (-want +got):\n%s", diff)
			}
			err = CheckNoDuplicates("ca.crt", all)
			if len(tt.wantDups) == 0 {
				checkError(t, err, "", "")
				return
			}
			checkError(t, err, ReasonDuplicate, "ca.crt", tt.fragments...)
		})
	}
}

func TestParseBundleBounds(t *testing.T) {
	_, err := ParseBundle("ca.crt", make([]byte, MaxPEMSize+1))
	checkError(t, err, ReasonTooLarge, "ca.crt")
	_, err = ParseBundle("ca.crt", nil)
	checkError(t, err, ReasonEmpty, "ca.crt")
}
