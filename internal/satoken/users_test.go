package satoken

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestOldKeyUsers(t *testing.T) {
	hour := Token{IssuedAt: issuedAt, Expiry: issuedAt.Add(time.Hour)} // refresh by +48m
	tok := func(node, ns, pod, uid, path, kid string, base Token) Token {
		base.Node, base.Namespace, base.Pod, base.PodUID, base.Path, base.KeyID = node, ns, pod, uid, path, kid
		base.ServiceAccount = "default"
		return base
	}
	twoHours := Token{IssuedAt: issuedAt, Expiry: issuedAt.Add(2 * time.Hour)} // refresh by +96m
	notSA := Token{Node: "cp-1", PodUID: "uid-x", Path: "/x/vault-token", KeyID: "old"}
	noExpiry := Token{IssuedAt: issuedAt}

	tests := []struct {
		name   string
		tokens []Token
		want   []PodUse
	}{
		{name: "none", tokens: nil, want: []PodUse{}},
		{
			name:   "new-key tokens and other JWTs are left out",
			tokens: []Token{tok("cp-1", "ns", "a", "uid-a", "/a/token", "new", hour), notSA},
			want:   []PodUse{},
		},
		{
			name: "grouped per pod, latest refresh, sorted",
			tokens: []Token{
				tok("w-1", "shop", "web-1", "uid-w", "/w/token", "old", hour),
				tok("cp-1", "kube-system", "coredns-abc", "uid-c", "/c/token", "old", hour),
				tok("cp-1", "kube-system", "coredns-abc", "uid-c", "/c/aws/token", "old", twoHours),
				tok("cp-1", "kube-system", "coredns-abc", "uid-c", "/c/new", "new", hour),
			},
			want: []PodUse{
				{Node: "cp-1", Namespace: "kube-system", Pod: "coredns-abc", PodUID: "uid-c",
					Paths: []string{"/c/aws/token", "/c/token"}, RefreshBy: issuedAt.Add(96 * time.Minute)},
				{Node: "w-1", Namespace: "shop", Pod: "web-1", PodUID: "uid-w",
					Paths: []string{"/w/token"}, RefreshBy: issuedAt.Add(48 * time.Minute)},
			},
		},
		{
			name: "a third key, and a token the kubelet never refreshes",
			tokens: []Token{
				tok("cp-1", "ns", "a", "uid-a", "/a/token", "old", hour),
				tok("cp-1", "ns", "a", "uid-a", "/a/legacy", "", noExpiry),
			},
			want: []PodUse{{Node: "cp-1", Namespace: "ns", Pod: "a", PodUID: "uid-a",
				Paths: []string{"/a/legacy", "/a/token"}, UnknownKey: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := OldKeyUsers(tt.tokens, "old", "new")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("OldKeyUsers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMessage(t *testing.T) {
	now := time.Date(2026, 12, 2, 17, 10, 0, 0, time.UTC)
	coredns := PodUse{Node: "cp-1", Namespace: "kube-system", Pod: "coredns-abc", PodUID: "uid-c"}
	with := func(u PodUse, f func(*PodUse)) PodUse { f(&u); return u }
	tests := []struct {
		name string
		use  PodUse
		want string
	}{
		{
			"refresh later today",
			with(coredns, func(u *PodUse) { u.RefreshBy = time.Date(2026, 12, 2, 17, 48, 2, 0, time.UTC) }),
			"kube-system/coredns-abc (node cp-1): token signed by the old key; the kubelet refreshes it by 17:48:02 UTC",
		},
		{
			"refresh tomorrow, in another zone",
			with(coredns, func(u *PodUse) {
				u.RefreshBy = time.Date(2026, 12, 3, 10, 0, 0, 0, time.FixedZone("CET", 3600))
			}),
			"kube-system/coredns-abc (node cp-1): token signed by the old key; the kubelet refreshes it by 2026-12-03 09:00:00 UTC",
		},
		{
			"overdue",
			with(coredns, func(u *PodUse) { u.RefreshBy = time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC) }),
			"kube-system/coredns-abc (node cp-1): token signed by the old key; the kubelet was due to refresh it by 17:00:00 UTC",
		},
		{
			"unknown key, never refreshed, no pod name",
			with(coredns, func(u *PodUse) { u.Pod, u.UnknownKey = "", true }),
			"kube-system/(pod uid-c) (node cp-1): token signed by neither the old nor the new key; it has no expiry, so the kubelet will not replace it",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Message(tt.use, now)); diff != "" {
				t.Errorf("Message (-want +got):\n%s", diff)
			}
		})
	}
}
