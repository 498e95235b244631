package rotation

import (
	"strings"
	"sync"
	"time"

	"github.com/carotate/carotate/internal/state"
	"github.com/carotate/carotate/internal/verify"
)

// A certificate and its key written together (etcd's leaves at switch,
// see etcdrows.go) are renamed back to back, yet a component that reads
// both at every new connection can read one before the renames and the
// other after them. CI saw it once (2026-12-07, 3+1 lab, switch): etcd
// on cp-2 rejected one peer connection with "tls: private key does not
// match public key", and nothing after; the peer's next attempt
// succeeded. The gate
// forgives exactly that, on that node and while the write ran (plus
// pairSlack for the clocks of node and carotate), and the other side's
// view of the same handshake anywhere in that window; a pair that stays
// wrong goes on failing afterwards and fails the gate.

// pairSlack widens a pair write's window on both sides: log times come
// from the node's clock, the window from carotate's.
const pairSlack = 2 * time.Second

// The lines a torn read of a pair logs: by the side that read it, and by
// its peer, to which Go's TLS stack sends an internal-error alert.
const (
	tornPairLine = "tls: private key does not match public key"
	tornPeerLine = "remote error: tls: internal error"
)

// pairWrite is one write on a node that replaced a certificate and its key.
type pairWrite struct {
	node     string
	from, to time.Time
}

// pairWrites is what a run wrote in pairs, for the gates; steps may write
// side by side.
type pairWrites struct {
	mu     sync.Mutex
	writes []pairWrite
}

func (p *pairWrites) add(w pairWrite) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writes = append(p.writes, w)
}

// forgiven is what the log scan forgives for the pair writes that ended
// at or after since.
func (p *pairWrites) forgiven(since time.Time) []verify.Forgiven {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []verify.Forgiven
	for _, w := range p.writes {
		if w.to.Before(since) {
			continue
		}
		from, to := w.from.Add(-pairSlack), w.to.Add(pairSlack)
		out = append(out,
			verify.Forgiven{Node: w.node, Contains: tornPairLine, From: from, To: to},
			verify.Forgiven{Contains: tornPeerLine, From: from, To: to})
	}
	return out
}

// replacesPair reports whether the changes replaced both X.crt and X.key
// for some X on the node.
func replacesPair(changes []state.FileChange) bool {
	written := map[string]bool{}
	for _, c := range changes {
		if c.After != "" {
			written[c.Target] = true
		}
	}
	for t := range written {
		if stem, ok := strings.CutSuffix(t, ".crt"); ok && written[stem+".key"] {
			return true
		}
	}
	return false
}
