package rotation

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/node"
	"github.com/carotate/carotate/internal/satoken"
)

// TestOldTokensGate: finalize refuses while a pod uses a token the old
// key signed, names the pod, its node and when the kubelet refreshes it,
// and says how to go on; it passes when the old key signed none. A token
// from a key carotate did not write is not the gate's business. The scan
// of the nodes is replaced by the tokens it would have found.
func TestOldTokensGate(t *testing.T) {
	m, nodes := saFixture(t, true)
	oldKID, _ := satoken.KeyID(m.OldSA.Public())
	newKID, _ := satoken.KeyID(m.NewSA.Public())
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	tok := func(node, ns, pod, uid, kid string) satoken.Token {
		return satoken.Token{Node: node, Namespace: ns, Pod: pod, ServiceAccount: "default", PodUID: uid, KeyID: kid,
			Path:     "/var/lib/kubelet/pods/" + uid + "/volumes/kubernetes.io~projected/kube-api-access/token",
			IssuedAt: now.Add(-10 * time.Minute), Expiry: now.Add(50 * time.Minute)}
	}
	tests := []struct {
		name    string
		tokens  map[string][]satoken.Token
		refused []string // what the refusal names; none means it passes
	}{
		{"no old token", map[string][]satoken.Token{"cp-1": {tok("cp-1", "kube-system", "coredns-a", "u1", newKID)}}, nil},
		{"an old token", map[string][]satoken.Token{
			"cp-1":     {tok("cp-1", "kube-system", "coredns-a", "u1", newKID)},
			"worker-1": {tok("worker-1", "app", "web-1", "u2", oldKID)},
		}, []string{"app/web-1 (node worker-1)", "token signed by the old key", "12:38:00 UTC", "--restart-old-token-pods"}},
		{"a third key's token", map[string][]satoken.Token{"worker-1": {tok("worker-1", "app", "web-1", "u2", "someone-else")}}, nil},
	}
	for _, n := range nodes {
		n.Exec = nameOnly{name: n.Name}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Rotation{M: m, Nodes: nodes, Clock: func() time.Time { return now },
				scanTokens: func(ctx context.Context, ex node.Executor) ([]satoken.Token, error) {
					return tt.tokens[ex.Name()], nil
				}}
			step := r.oldTokensStep()
			done, detail, err := step.Check(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			if done != (len(tt.refused) == 0) {
				t.Errorf("check: done %v (%s)", done, detail)
			}
			_, err = step.Apply(context.Background(), r)
			if len(tt.refused) == 0 {
				if err != nil {
					t.Errorf("apply refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrOldTokensInUse) {
				t.Fatalf("apply: %v, want ErrOldTokensInUse", err)
			}
			for _, want := range tt.refused {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the refusal does not say %q:\n%v", want, err)
				}
			}
		})
	}
}

// nameOnly is an executor that only has a name: the scan it stands in for
// is replaced.
type nameOnly struct {
	node.Executor
	name string
}

func (n nameOnly) Name() string { return n.name }
