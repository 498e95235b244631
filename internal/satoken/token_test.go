package satoken

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const volPath = "/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~projected/kube-api-access-x/token"

func TestRefreshBy(t *testing.T) {
	tests := []struct {
		name  string
		token Token
		want  time.Time
	}{
		{"one hour: 80 %", Token{IssuedAt: issuedAt, Expiry: issuedAt.Add(time.Hour)}, issuedAt.Add(48 * time.Minute)},
		// The kubelet's whole seconds: 3607*20/100 = 721, not 721.4.
		{"3607 s, whole seconds", Token{IssuedAt: issuedAt, Expiry: issuedAt.Add(3607 * time.Second)}, issuedAt.Add(2886 * time.Second)},
		{
			"extended expiry: the requested lifetime counts",
			Token{IssuedAt: issuedAt, Expiry: issuedAt.Add(365 * 24 * time.Hour), WarnAfter: issuedAt.Add(3607 * time.Second)},
			issuedAt.Add(2886 * time.Second),
		},
		{"48 h: 24 h comes first", Token{IssuedAt: issuedAt, Expiry: issuedAt.Add(48 * time.Hour)}, issuedAt.Add(24 * time.Hour)},
		{"30 h: exactly 24 h either way", Token{IssuedAt: issuedAt, Expiry: issuedAt.Add(30 * time.Hour)}, issuedAt.Add(24 * time.Hour)},
		{"no expiry: never", Token{IssuedAt: issuedAt}, time.Time{}},
		{"no iat: the expiry", Token{Expiry: issuedAt.Add(time.Hour)}, issuedAt.Add(time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.token.RefreshBy()); diff != "" {
				t.Errorf("RefreshBy (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParse(t *testing.T) {
	hdr := func(v any) string { return segment(t, v) }
	good := hdr(map[string]string{"alg": "RS256", "kid": "old"}) + "." +
		hdr(saClaims("kube-system", "coredns-abc", "uid-1", "coredns", time.Hour, false))
	goodToken := Token{
		Node: "cp-1", Path: volPath, PodUID: "uid-1", Volume: "kube-api-access-x",
		Namespace: "kube-system", Pod: "coredns-abc", ServiceAccount: "coredns", KeyID: "old",
		IssuedAt: issuedAt, Expiry: issuedAt.Add(time.Hour),
	}
	noKid := hdr(map[string]string{"alg": "RS256"}) + "." + hdr(saClaims("ns", "p", "uid-1", "sa", time.Hour, false))
	notSA := hdr(map[string]string{"alg": "ES256", "kid": "vault"}) + "." + hdr(map[string]any{"sub": "x", "exp": issuedAt.Unix()})
	rec := func(jwt, p string) string { return jwt + " " + p + "\x00" }

	tests := []struct {
		name    string
		out     string
		want    []Token
		wantErr []string // substrings, each must appear
	}{
		{name: "empty output", out: ""},
		{name: "one token", out: rec(good, volPath), want: []Token{goodToken}},
		{
			name: "missing kid is kept, with no key",
			out:  rec(noKid, volPath),
			want: []Token{{Node: "cp-1", Path: volPath, PodUID: "uid-1", Volume: "kube-api-access-x",
				Namespace: "ns", Pod: "p", ServiceAccount: "sa", IssuedAt: issuedAt, Expiry: issuedAt.Add(time.Hour)}},
		},
		{
			name: "a JWT that is not a service-account token",
			out:  rec(notSA, "/pods/uid-2/volumes/kubernetes.io~projected/vault/sub/vault-token"),
			want: []Token{{Node: "cp-1", Path: "/pods/uid-2/volumes/kubernetes.io~projected/vault/sub/vault-token",
				PodUID: "uid-2", Volume: "vault", KeyID: "vault", Expiry: issuedAt}},
		},
		{
			name:    "header not base64url, the others still returned",
			out:     rec("e30!."+strings.SplitN(good, ".", 2)[1], "/pods/uid-9/volumes/kubernetes.io~projected/v/bad") + rec(good, volPath),
			want:    []Token{goodToken},
			wantErr: []string{"node cp-1: token /pods/uid-9/volumes/kubernetes.io~projected/v/bad: JWT header: not base64url"},
		},
		{
			name:    "payload not JSON",
			out:     rec(hdr(map[string]string{"kid": "k"})+"."+"bm90IGpzb24", volPath),
			wantErr: []string{"node cp-1: token " + volPath + ": JWT payload: not the JSON object"},
		},
		{
			name:    "only one segment",
			out:     rec("eyJhbGciOiJSUzI1NiJ9", volPath),
			wantErr: []string{"token " + volPath + ": not the header and payload of a JWT"},
		},
		{
			name:    "three segments are refused, not parsed",
			out:     rec(good+".c2lnbmF0dXJl", volPath),
			wantErr: []string{"token " + volPath + ": not the header and payload of a JWT"},
		},
		{name: "no path", out: good + "\x00", wantErr: []string{"node cp-1: the token scan printed a malformed record"}},
		{name: "relative path", out: rec(good, "token"), wantErr: []string{"malformed record"}},
		{
			name:    "not in a projected volume",
			out:     rec(good, "/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~secret/s/token"),
			wantErr: []string{"not a file in a pod's projected volume"},
		},
		{
			name:    "the volume directory itself",
			out:     rec(good, "/pods/uid-1/volumes/kubernetes.io~projected/v"),
			wantErr: []string{"not a file in a pod's projected volume"},
		},
		{
			name:    "cut short",
			out:     rec(good, volPath) + good + " /var/lib",
			want:    []Token{goodToken},
			wantErr: []string{"node cp-1: the token scan's output ends in the middle of a record"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse("cp-1", []byte(tt.out))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("tokens (-want +got):\n%s", diff)
			}
			checkErr(t, err, tt.wantErr)
			if err != nil && strings.Contains(err.Error(), "c2lnbmF0dXJl") {
				t.Errorf("error %q carries the signature", err)
			}
		})
	}
}

// checkErr wants err to contain each of want, or to be nil if want is empty.
func checkErr(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Errorf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}
