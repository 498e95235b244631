package node

import (
	"net"
	"sync"
	"testing"
	"time"
)

// faultProxy is a TCP proxy on 127.0.0.1 in front of a test sshd that
// breaks the network on demand: it cuts connections (optionally once a
// number of bytes has gone one way, so that a cut lands mid-stream) and
// stalls them, forwarding nothing either way until resumed, the way a
// partition does. Faults are armed on the connections open at the time;
// connections made later are forwarded normally, like a reconnect on a
// path that works again.
type faultProxy struct {
	t        *testing.T
	listener net.Listener
	target   string

	mu     sync.Mutex
	cond   *sync.Cond // signalled on every state change
	conns  map[*proxyConn]bool
	stalls int // connections that have entered a stall
	closed bool
	wg     sync.WaitGroup
}

// Directions, an index into proxyConn's arrays.
const (
	up   = 0 // client to server
	down = 1 // server to client
)

type faultAction int

const (
	faultNone faultAction = iota
	faultCut
	faultStall
)

type proxyConn struct {
	client, server net.Conn
	forwarded      [2]int64       // bytes forwarded each way
	limit          [2]int64       // act when forwarded reaches this; 0 for never
	action         [2]faultAction // what to do at limit
	stalled        bool
	closed         bool
	pumpsDone      int
}

// proxyDrainTimeout bounds how long cleanup waits for the pumps to end.
const proxyDrainTimeout = 5 * time.Second

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, listener: l, target: target, conns: map[*proxyConn]bool{}}
	p.cond = sync.NewCond(&p.mu)
	t.Cleanup(p.close)
	p.wg.Add(1)
	go p.accept()
	return p
}

func (p *faultProxy) addr() string { return p.listener.Addr().String() }

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.listener.Accept()
		if err != nil {
			return // closed at cleanup
		}
		server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			p.t.Logf("proxy: dial %s: %v", p.target, err)
			_ = client.Close()
			continue
		}
		c := &proxyConn{client: client, server: server}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = client.Close()
			_ = server.Close()
			return
		}
		p.conns[c] = true
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pump(c, up)
		go p.pump(c, down)
	}
}

// pump forwards one direction of c, honouring stalls and limits. At EOF it
// half-closes the other side, as a TCP proxy should, so that data still in
// flight the other way is delivered rather than reset. When dst no longer
// takes data, src is read on and discarded, for the same reason.
func (p *faultProxy) pump(c *proxyConn, dir int) {
	defer p.wg.Done()
	src, dst := c.client, c.server
	if dir == down {
		src, dst = c.server, c.client
	}
	buf := make([]byte, 32<<10)
	writable := true
	for {
		n, err := src.Read(buf)
		chunk := buf[:n]
		for writable && len(chunk) > 0 {
			k := p.admit(c, dir, len(chunk))
			if k == 0 {
				return // cut
			}
			if _, werr := dst.Write(chunk[:k]); werr != nil {
				writable = false
				break
			}
			chunk = chunk[k:]
			p.forwarded(c, dir, k)
		}
		if err != nil {
			if tcp, ok := dst.(*net.TCPConn); ok {
				_ = tcp.CloseWrite()
			}
			p.pumpDone(c)
			return
		}
	}
}

// pumpDone closes c once both directions have ended.
func (p *faultProxy) pumpDone(c *proxyConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.pumpsDone++
	if c.pumpsDone == 2 {
		p.closeLocked(c)
		p.cond.Broadcast()
	}
}

// admit waits out a stall and returns how many of n bytes may go now,
// stopping at an armed limit; 0 once c is closed.
func (p *faultProxy) admit(c *proxyConn, dir, n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c.stalled && !c.closed {
		p.cond.Wait()
	}
	if c.closed {
		return 0
	}
	if lim := c.limit[dir]; lim > 0 && lim-c.forwarded[dir] < int64(n) {
		return int(lim - c.forwarded[dir])
	}
	return n
}

// forwarded counts k bytes and fires the armed fault at its limit.
func (p *faultProxy) forwarded(c *proxyConn, dir, k int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.forwarded[dir] += int64(k)
	if lim := c.limit[dir]; lim == 0 || c.forwarded[dir] < lim {
		return
	}
	c.limit[dir] = 0
	switch c.action[dir] {
	case faultCut:
		p.closeLocked(c)
	case faultStall:
		if !c.stalled {
			c.stalled = true
			p.stalls++
		}
	}
	p.cond.Broadcast()
}

// arm sets action to happen on every open connection once n more bytes
// have been forwarded in direction dir.
func (p *faultProxy) arm(dir int, n int64, action faultAction) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) == 0 {
		p.t.Fatal("proxy: no connection to arm a fault on")
	}
	for c := range p.conns {
		c.limit[dir] = c.forwarded[dir] + n
		c.action[dir] = action
	}
}

// cutAfter closes the open connections once n more bytes went dir.
func (p *faultProxy) cutAfter(dir int, n int64) { p.arm(dir, n, faultCut) }

// stallAfter stops forwarding on the open connections, both ways, once n
// more bytes went dir, until resume.
func (p *faultProxy) stallAfter(dir int, n int64) { p.arm(dir, n, faultStall) }

// cutAll closes every open connection now.
func (p *faultProxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		p.closeLocked(c)
	}
	p.cond.Broadcast()
}

// resume ends every stall.
func (p *faultProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.stalled = false
	}
	p.cond.Broadcast()
}

// stallCount is how many connections have entered a stall so far.
func (p *faultProxy) stallCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stalls
}

// waitStalls waits, at most timeout, until n connections have stalled in
// total.
func (p *faultProxy) waitStalls(n int, timeout time.Duration) bool {
	timer := time.AfterFunc(timeout, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.cond.Broadcast()
	})
	defer timer.Stop()
	deadline := time.Now().Add(timeout)
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.stalls < n && time.Now().Before(deadline) {
		p.cond.Wait()
	}
	return p.stalls >= n
}

func (p *faultProxy) closeLocked(c *proxyConn) {
	if c.closed {
		return
	}
	c.closed = true
	_ = c.client.Close()
	_ = c.server.Close()
	delete(p.conns, c)
}

func (p *faultProxy) close() {
	p.mu.Lock()
	p.closed = true
	_ = p.listener.Close()
	for c := range p.conns {
		p.closeLocked(c)
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(proxyDrainTimeout):
		p.t.Logf("proxy: pumps still running after %v", proxyDrainTimeout)
	}
}
