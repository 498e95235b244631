// Package etcd asks a kubeadm cluster's etcd members, one by one, whether
// the cluster is healthy enough for one of them to restart, and whether a
// member refuses a client certificate. carotate restarts etcd members
// only from a cluster where every member answers a linearizable read,
// all agree on one leader, none is a learner and no alarm is raised; and
// waits for that again after each restart, so that a three-member
// cluster never has two members down.
package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/util/wait"
)

// callTimeout bounds each request to one member.
const callTimeout = 5 * time.Second

// Endpoint is one member as carotate reaches it: the node it runs on,
// its client URL, and the TLS configuration (a client certificate the
// member trusts, and the CAs to verify it by).
type Endpoint struct {
	Node string
	URL  string
	TLS  *tls.Config
}

// Member is one entry of etcd's member list.
type Member struct {
	ID         uint64
	Name       string
	ClientURLs []string
	PeerURLs   []string
	Learner    bool
}

// MemberStatus is what one endpoint answered, or Err when it did not.
type MemberStatus struct {
	Node    string
	URL     string
	ID      uint64
	Leader  uint64
	Version string
	Learner bool
	Errors  []string
	Err     error
}

// Alarm is an alarm raised on a member (NOSPACE, CORRUPT).
type Alarm struct {
	Member uint64
	Type   string
}

// Health is the state of the cluster as its members answered.
type Health struct {
	Members  []Member
	Statuses []MemberStatus
	Alarms   []Alarm
}

// Check asks every endpoint for its status and for a linearizable read,
// and the first that answers for the member list and the alarms. A
// member that does not answer is recorded in its status; Check returns
// an error only for an endpoint it cannot even try.
func Check(ctx context.Context, eps []Endpoint) (Health, error) {
	var h Health
	if len(eps) == 0 {
		return h, errors.New("no etcd endpoints to check")
	}
	listed := false
	for _, ep := range eps {
		if _, err := url.Parse(ep.URL); err != nil || ep.TLS == nil {
			return h, fmt.Errorf("node %s: etcd endpoint %q is not an https URL with a client certificate", ep.Node, ep.URL)
		}
		st, members, alarms, err := ask(ctx, ep, !listed)
		if err != nil {
			st.Err = err
		} else if !listed {
			h.Members, h.Alarms, listed = members, alarms, true
		}
		h.Statuses = append(h.Statuses, st)
	}
	return h, nil
}

// ask talks to one endpoint only, so that its answer is that member's.
func ask(ctx context.Context, ep Endpoint, list bool) (MemberStatus, []Member, []Alarm, error) {
	st := MemberStatus{Node: ep.Node, URL: ep.URL}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:            []string{ep.URL},
		TLS:                  ep.TLS.Clone(),
		DialTimeout:          callTimeout,
		DialKeepAliveTimeout: callTimeout,
		Logger:               zap.NewNop(),
		Context:              ctx,
	})
	if err != nil {
		return st, nil, nil, err
	}
	defer c.Close()
	call := func(f func(context.Context) error) error {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		return f(cctx)
	}
	if err := call(func(ctx context.Context) error {
		s, err := c.Status(ctx, ep.URL)
		if err != nil {
			return err
		}
		st.ID, st.Leader, st.Version, st.Learner, st.Errors = s.Header.MemberId, s.Leader, s.Version, s.IsLearner, s.Errors
		return nil
	}); err != nil {
		return st, nil, nil, fmt.Errorf("status: %w", err)
	}
	// A linearizable read goes through the leader: it fails on a member
	// that lost quorum even when the member itself answers.
	if err := call(func(ctx context.Context) error {
		_, err := c.Get(ctx, "carotate/health", clientv3.WithCountOnly())
		return err
	}); err != nil {
		return st, nil, nil, fmt.Errorf("linearizable read: %w", err)
	}
	if !list {
		return st, nil, nil, nil
	}
	var members []Member
	var alarms []Alarm
	if err := call(func(ctx context.Context) error {
		resp, err := c.MemberList(ctx)
		if err != nil {
			return err
		}
		for _, m := range resp.Members {
			members = append(members, Member{ID: m.ID, Name: m.Name, ClientURLs: m.ClientURLs, PeerURLs: m.PeerURLs, Learner: m.IsLearner})
		}
		return nil
	}); err != nil {
		return st, nil, nil, fmt.Errorf("member list: %w", err)
	}
	if err := call(func(ctx context.Context) error {
		resp, err := c.AlarmList(ctx)
		if err != nil {
			return err
		}
		for _, a := range resp.Alarms {
			alarms = append(alarms, Alarm{Member: a.MemberID, Type: a.Alarm.String()})
		}
		return nil
	}); err != nil {
		return st, nil, nil, fmt.Errorf("alarm list: %w", err)
	}
	return st, members, alarms, nil
}

// Problem says what keeps the cluster from being healthy, or nil: a
// member that did not answer, no leader or members that disagree on it,
// a learner, an alarm, or members and endpoints that are not one to one.
func (h Health) Problem() error {
	for _, s := range h.Statuses {
		if s.Err != nil {
			return fmt.Errorf("node %s: etcd at %s does not answer: %v; check the etcd pod on %s (crictl ps -a; crictl logs)", s.Node, s.URL, s.Err, s.Node)
		}
		if len(s.Errors) > 0 {
			return fmt.Errorf("node %s: etcd at %s reports %s; fix that member first", s.Node, s.URL, strings.Join(s.Errors, "; "))
		}
	}
	if len(h.Statuses) == 0 {
		return errors.New("no etcd member answered")
	}
	leader := h.Statuses[0].Leader
	for _, s := range h.Statuses {
		if s.Leader == 0 {
			return fmt.Errorf("node %s: etcd at %s has no leader; wait for an election, and check that a majority of members run", s.Node, s.URL)
		}
		if s.Leader != leader {
			return fmt.Errorf("etcd members disagree on the leader (%s says %x, %s says %x); wait for the election to settle", h.Statuses[0].Node, leader, s.Node, s.Leader)
		}
	}
	for _, a := range h.Alarms {
		return fmt.Errorf("etcd member %x has alarm %s raised; fix its cause and clear it (etcdctl alarm disarm) first", a.Member, a.Type)
	}
	for _, m := range h.Members {
		if m.Learner {
			return fmt.Errorf("etcd member %s (%x) is a learner; promote or remove it (etcdctl member promote|remove) first", m.Name, m.ID)
		}
	}
	byURL := map[string]string{}
	for _, s := range h.Statuses {
		byURL[normalize(s.URL)] = s.Node
	}
	seen := map[string]bool{}
	for _, m := range h.Members {
		var nodes []string
		for _, u := range m.ClientURLs {
			if n, ok := byURL[normalize(u)]; ok && !slices.Contains(nodes, n) {
				nodes = append(nodes, n)
			}
		}
		switch len(nodes) {
		case 0:
			return fmt.Errorf("etcd member %s (%x, %s) is not the etcd of any control plane carotate knows; remove it (etcdctl member remove) or add its node to the inventory", m.Name, m.ID, strings.Join(m.ClientURLs, ","))
		case 1:
			if seen[nodes[0]] {
				return fmt.Errorf("node %s: two etcd members advertise its client URL; remove the stale one (etcdctl member list, member remove)", nodes[0])
			}
			seen[nodes[0]] = true
		default:
			return fmt.Errorf("etcd member %s (%x) advertises the client URLs of nodes %s; each control plane must run its own member", m.Name, m.ID, strings.Join(nodes, ", "))
		}
	}
	for _, s := range h.Statuses {
		if !seen[s.Node] {
			return fmt.Errorf("node %s: its etcd at %s is not in the member list; check the member's --advertise-client-urls", s.Node, s.URL)
		}
	}
	return nil
}

// normalize makes client URLs comparable: lower case, no trailing slash.
func normalize(u string) string { return strings.TrimSuffix(strings.ToLower(u), "/") }

// WaitHealthy checks every poll until the cluster is healthy or timeout
// passes; on timeout the error says what was still wrong.
func WaitHealthy(ctx context.Context, eps []Endpoint, timeout, poll time.Duration) (Health, error) {
	var h Health
	var last error
	err := wait.PollUntilContextTimeout(ctx, poll, timeout, true, func(ctx context.Context) (bool, error) {
		var err error
		h, err = Check(ctx, eps)
		if err != nil {
			return false, err
		}
		last = h.Problem()
		return last == nil, nil
	})
	if err != nil && last != nil {
		return h, fmt.Errorf("not healthy after %s: %w", timeout, last)
	}
	return h, err
}

// Rejects returns nil when the member at ep refuses ep's client
// certificate, and an error when it accepts it or cannot be asked. With
// TLS 1.3 the server's verdict on the client certificate arrives after
// the handshake, so Rejects sends a request and reads the answer.
func Rejects(ctx context.Context, ep Endpoint) error {
	u, err := url.Parse(ep.URL)
	if err != nil {
		return fmt.Errorf("node %s: etcd endpoint %q: %w", ep.Node, ep.URL, err)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	d := tls.Dialer{Config: ep.TLS.Clone()}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		if refused(err) {
			return nil
		}
		return fmt.Errorf("node %s: etcd at %s: %w", ep.Node, ep.URL, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(conn, "GET /health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", u.Host); err != nil {
		if refused(err) {
			return nil
		}
		return fmt.Errorf("node %s: etcd at %s: %w", ep.Node, ep.URL, err)
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if n > 0 {
		return fmt.Errorf("node %s: etcd at %s accepted the client certificate %q; its --trusted-ca-file still trusts the CA that issued it", ep.Node, ep.URL, subjectOf(ep.TLS))
	}
	if refused(err) {
		return nil
	}
	return fmt.Errorf("node %s: etcd at %s neither answered nor refused the client certificate: %v", ep.Node, ep.URL, err)
}

// refused says whether err is the peer's TLS alert about our certificate.
func refused(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return true
	}
	return err != nil && strings.Contains(err.Error(), "remote error: tls:")
}

func subjectOf(cfg *tls.Config) string {
	if cfg == nil || len(cfg.Certificates) == 0 || len(cfg.Certificates[0].Certificate) == 0 {
		return "(none)"
	}
	c, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		return "(unparseable)"
	}
	return c.Subject.String()
}

// PeerHandshake does a TLS handshake with the peer port at peerURL,
// verified by cfg's CAs, and returns the certificate the member serves.
func PeerHandshake(ctx context.Context, peerURL string, cfg *tls.Config) (*x509.Certificate, error) {
	u, err := url.Parse(peerURL)
	if err != nil {
		return nil, fmt.Errorf("etcd peer URL %q: %w", peerURL, err)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	c := cfg.Clone()
	c.ServerName = u.Hostname()
	d := tls.Dialer{Config: c}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("handshake with %s: %w", peerURL, err)
	}
	defer conn.Close()
	state := conn.(*tls.Conn).ConnectionState()
	if len(state.PeerCertificates) == 0 {
		return nil, fmt.Errorf("%s served no certificate", peerURL)
	}
	return state.PeerCertificates[0], nil
}
