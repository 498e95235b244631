package satoken

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// PodUse is one pod that holds service-account tokens kube-apiserver will
// stop accepting once it trusts only the new key.
type PodUse struct {
	Node      string
	Namespace string
	Pod       string // empty if no token names it
	PodUID    string
	Paths     []string // the tokens, sorted
	// RefreshBy is the latest Token.RefreshBy among them: by then the
	// kubelet will have wanted new tokens for all of them. Zero when one of
	// them has no expiry, so that the kubelet never replaces it.
	RefreshBy time.Time
	// UnknownKey is set when one of them was signed by neither the old nor
	// the new key (or names no key at all).
	UnknownKey bool
}

// OldKeyUsers picks, from the tokens of one or more scans, the
// service-account tokens (those with the kubernetes.io claim) not signed by
// newKID, and groups them per pod, sorted by namespace, pod name, UID and
// node. Those are the ones signed by oldKID and, so that nothing is missed,
// any signed by a third key, which UnknownKey tells apart: after finalize
// kube-apiserver verifies with the new key only. Other JWTs a projected
// volume may hold are not kube-apiserver's and are left out.
func OldKeyUsers(tokens []Token, oldKID, newKID string) []PodUse {
	byPod := map[[2]string]*PodUse{}
	for _, t := range tokens {
		if t.ServiceAccount == "" || t.KeyID == newKID {
			continue
		}
		key := [2]string{t.Node, t.PodUID}
		u, seen := byPod[key]
		if !seen {
			u = &PodUse{Node: t.Node, Namespace: t.Namespace, Pod: t.Pod, PodUID: t.PodUID, RefreshBy: t.RefreshBy()}
			byPod[key] = u
		} else {
			u.RefreshBy = laterRefresh(u.RefreshBy, t.RefreshBy())
		}
		u.Paths = append(u.Paths, t.Path)
		u.UnknownKey = u.UnknownKey || t.KeyID != oldKID
	}
	uses := make([]PodUse, 0, len(byPod))
	for _, u := range byPod {
		slices.Sort(u.Paths)
		uses = append(uses, *u)
	}
	slices.SortFunc(uses, func(a, b PodUse) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Pod, b.Pod),
			cmp.Compare(a.PodUID, b.PodUID), cmp.Compare(a.Node, b.Node))
	})
	return uses
}

// laterRefresh is the later of two RefreshBy times, where zero (never)
// is the latest of all.
func laterRefresh(a, b time.Time) time.Time {
	if a.IsZero() || b.IsZero() {
		return time.Time{}
	}
	if b.After(a) {
		return b
	}
	return a
}

// Message is the line finalize prints for u, e.g. "kube-system/coredns-abc
// (node cp-1): token signed by the old key; the kubelet refreshes it by
// 17:48:02 UTC". Times are UTC, with the date when it is not now's.
func Message(u PodUse, now time.Time) string {
	pod := u.Namespace + "/" + u.Pod
	if u.Pod == "" {
		pod = u.Namespace + "/(pod " + u.PodUID + ")"
	}
	signed := "token signed by the old key"
	if u.UnknownKey {
		signed = "token signed by neither the old nor the new key"
	}
	return fmt.Sprintf("%s (node %s): %s; %s", pod, u.Node, signed, refreshNote(u.RefreshBy, now))
}

func refreshNote(by, now time.Time) string {
	switch {
	case by.IsZero():
		return "it has no expiry, so the kubelet will not replace it"
	case by.Before(now):
		return "the kubelet was due to refresh it by " + clock(by, now)
	}
	return "the kubelet refreshes it by " + clock(by, now)
}

// clock formats t as "15:04:05 UTC", with the date in front unless t falls
// on now's UTC day.
func clock(t, now time.Time) string {
	t, now = t.UTC(), now.UTC()
	if y, m, d := t.Date(); now.Year() == y && now.Month() == m && now.Day() == d {
		return t.Format("15:04:05 UTC")
	}
	return t.Format("2006-01-02 15:04:05 UTC")
}
