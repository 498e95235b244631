package rotation

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/state"
	"github.com/carotate/carotate/internal/verify"
)

func TestReplacesPair(t *testing.T) {
	fc := func(target, after string) state.FileChange {
		return state.FileChange{Target: target, Before: "old", After: after}
	}
	tests := []struct {
		name    string
		changes []state.FileChange
		want    bool
	}{
		{"certificate and its key", []state.FileChange{fc("cp-1:/etc/kubernetes/pki/etcd/peer.crt", "a"), fc("cp-1:/etc/kubernetes/pki/etcd/peer.key", "b")}, true},
		{"certificate alone (key kept)", []state.FileChange{fc("cp-1:/etc/kubernetes/pki/apiserver.crt", "a")}, false},
		{"key of another certificate", []state.FileChange{fc("cp-1:/etc/kubernetes/pki/etcd/peer.crt", "a"), fc("cp-1:/etc/kubernetes/pki/etcd/server.key", "b")}, false},
		{"key removed", []state.FileChange{fc("cp-1:/etc/kubernetes/pki/etcd/peer.crt", "a"), fc("cp-1:/etc/kubernetes/pki/etcd/peer.key", "")}, false},
		{"nothing", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replacesPair(tt.changes); got != tt.want {
				t.Errorf("replacesPair = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPairWritesForgiveTheirWindowOnly(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 4, 2, 36, 0, time.UTC)
	var p pairWrites
	p.add(pairWrite{node: "cp-1", from: t0.Add(-time.Hour), to: t0.Add(-time.Hour + time.Second)})
	p.add(pairWrite{node: "cp-2", from: t0, to: t0.Add(300 * time.Millisecond)})

	got := p.forgiven(t0.Add(-time.Minute))
	want := []verify.Forgiven{
		{Node: "cp-2", Contains: tornPairLine, From: t0.Add(-pairSlack), To: t0.Add(300*time.Millisecond + pairSlack)},
		{Contains: tornPeerLine, From: t0.Add(-pairSlack), To: t0.Add(300*time.Millisecond + pairSlack)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("forgiven since the phase began (-want +got):\n%s", diff)
	}
	if got := p.forgiven(t0.Add(time.Minute)); len(got) != 0 {
		t.Errorf("forgiven after every write ended = %v, want none", got)
	}
}

// TestPairWriteIsNoted: writing a certificate with its key notes the
// window for the gate; a rerun that changes nothing, or a certificate
// written alone, notes nothing.
func TestPairWriteIsNoted(t *testing.T) {
	const crt, key = PKIDir + "/etcd/peer.crt", PKIDir + "/etcd/peer.key"
	n, _ := localNode(t, map[string]string{crt: "old cert", key: "old key", caCert: "old ca"})
	r := &Rotation{}
	pair := []Want{{Data: []byte("new cert"), Mode: 0o644}, {Data: []byte("new key"), Mode: 0o600, Secret: true}}
	before := time.Now()
	var ch engine.Change
	if err := r.ensureOn(context.Background(), n, []string{crt, key}, pair, &ch); err != nil {
		t.Fatal(err)
	}
	if len(r.pairs.writes) != 1 || r.pairs.writes[0].node != "cp-1" || r.pairs.writes[0].from.Before(before) || r.pairs.writes[0].to.Before(r.pairs.writes[0].from) {
		t.Fatalf("after a pair write: %+v, want one write on cp-1 that began at or after %s", r.pairs.writes, before)
	}
	if err := r.ensureOn(context.Background(), n, []string{crt, key}, pair, &ch); err != nil {
		t.Fatal(err)
	}
	if err := r.ensureOn(context.Background(), n, []string{caCert}, []Want{{Data: []byte("new ca"), Mode: 0o644}}, &ch); err != nil {
		t.Fatal(err)
	}
	if len(r.pairs.writes) != 1 {
		t.Errorf("a rerun and a lone certificate noted %d pair writes in all, want 1", len(r.pairs.writes))
	}
}
