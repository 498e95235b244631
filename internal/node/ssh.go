package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Defaults for SSHConfig fields left zero.
const (
	DefaultSSHPort        = "22"
	DefaultSSHDialTimeout = 10 * time.Second
	DefaultSSHKeepAlive   = 30 * time.Second
)

// SSHConfig says how to reach one node. Complete fills the zero fields from
// the operator's environment; DialSSH uses the fields exactly as given.
type SSHConfig struct {
	// Name names the node in errors; the host when empty.
	Name string
	// Address is "host" or "host:port"; the port defaults to 22.
	Address string
	// User is the login name.
	User string
	// IdentityFiles are private key files, tried before any agent key.
	IdentityFiles []string
	// AgentSocket is ssh-agent's socket (SSH_AUTH_SOCK); empty for none.
	AgentSocket string
	// KnownHostsFiles are checked for the node's host key. There is no
	// option to skip the check.
	KnownHostsFiles []string
	// Sudo runs every command as root through "sudo -n --", for logins
	// that are not root. -n makes a password prompt fail instead of hang.
	Sudo bool
	// DialTimeout bounds the TCP connect and the SSH handshake.
	DialTimeout time.Duration
	// KeepAlive is the interval of keepalive requests; a node that misses
	// one is disconnected. Negative disables them.
	KeepAlive time.Duration
	// Jump are the hosts to go through, first to last, as ssh -J and
	// ProxyJump do: the first is dialed, each next one (and then the
	// node) through a TCP channel of the one before. Each hop's host key
	// is checked against its own KnownHostsFiles, and it logs in with its
	// own user and keys. A hop's own Jump is not followed.
	Jump []SSHConfig
}

// SSH is an Executor for a remote node: one SSH connection, one session per
// command. Files are handled by small POSIX sh scripts whose data travels
// on stdin, so no file content, key material included, ever appears in a
// command line or the environment. The node is assumed to be Linux with
// coreutils (stat -c, sync FILE, sha256sum, date +%s), as kubeadm nodes
// are, and the login shell must be POSIX-compatible, since it parses the
// quoted command line. Writes compare the node's clock with ours for their
// deadline, so the node's clock must be roughly right (NTP).
type SSH struct {
	name   string
	sudo   bool
	client *ssh.Client
	auth   *sshAuth
	hops   []*SSH // jump hosts, closed after client

	closeOnce sync.Once
	closeErr  error
	stop      chan struct{} // closed by Close; ends the keepalive loop
}

var _ Executor = (*SSH)(nil)

// DialSSH connects to the node and authenticates. The host key is checked
// against cfg.KnownHostsFiles during the handshake, before authentication:
// an unknown, changed or revoked key fails with a *HostKeyError (wrapped in
// *Error) and nothing is sent to the node.
func DialSSH(ctx context.Context, cfg SSHConfig) (*SSH, error) {
	addr, host, err := sshAddress(cfg.Address)
	name := cfg.Name
	if name == "" {
		name = host
	}
	fail := func(err error) error { return &Error{Node: name, Op: "connect", Path: addr, Err: err} }
	if err != nil {
		return nil, fail(err)
	}
	if cfg.User == "" {
		return nil, fail(errors.New("no ssh user given"))
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultSSHDialTimeout
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultSSHKeepAlive
	}
	hostKeys, err := newHostKeyChecker(cfg.KnownHostsFiles)
	if err != nil {
		return nil, fail(err)
	}
	auth, err := newSSHAuth(cfg.IdentityFiles, cfg.AgentSocket)
	if err != nil {
		return nil, fail(err)
	}
	dial, hops, err := dialThrough(ctx, cfg)
	if err != nil {
		auth.close()
		return nil, fail(err)
	}
	client, err := handshake(ctx, dial, addr, cfg, hostKeys, auth)
	if err != nil {
		auth.close()
		closeHops(hops)
		return nil, fail(err)
	}
	s := &SSH{name: name, sudo: cfg.Sudo, client: client, auth: auth, hops: hops, stop: make(chan struct{})}
	if cfg.KeepAlive > 0 {
		go s.keepAlive(cfg.KeepAlive)
	}
	return s, nil
}

// sshAddress adds the default port and returns the host alone for naming.
func sshAddress(address string) (addr, host string, err error) {
	if address == "" {
		return "", "", errors.New("no ssh address given")
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		// No port: the whole thing is the host (brackets allowed for IPv6).
		host, port = strings.TrimSuffix(strings.TrimPrefix(address, "["), "]"), DefaultSSHPort
	}
	return net.JoinHostPort(host, port), host, nil
}

// dialFunc opens the connection a handshake runs on: TCP, or a channel
// through a jump host.
type dialFunc func(ctx context.Context, addr string) (net.Conn, error)

// dialThrough returns how to reach cfg's node: directly, or through its
// jump hosts, each connected (and its host key checked) in turn. The
// clients it returns are the hops, to close after the node's.
func dialThrough(ctx context.Context, cfg SSHConfig) (dialFunc, []*SSH, error) {
	direct := func(ctx context.Context, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: cfg.DialTimeout}
		return d.DialContext(ctx, "tcp", addr)
	}
	dial, hops := dialFunc(direct), []*SSH(nil)
	for i, h := range cfg.Jump {
		h.Jump = nil
		if h.DialTimeout <= 0 {
			h.DialTimeout = cfg.DialTimeout
		}
		h.KeepAlive = -1 // the node's keepalive goes through it
		addr, host, err := sshAddress(h.Address)
		if err != nil {
			closeHops(hops)
			return nil, nil, fmt.Errorf("jump host %d: %w", i+1, err)
		}
		if h.User == "" {
			closeHops(hops)
			return nil, nil, fmt.Errorf("jump host %s: no ssh user given", host)
		}
		hostKeys, err := newHostKeyChecker(h.KnownHostsFiles)
		if err != nil {
			closeHops(hops)
			return nil, nil, fmt.Errorf("jump host %s: %w", host, err)
		}
		auth, err := newSSHAuth(h.IdentityFiles, h.AgentSocket)
		if err != nil {
			closeHops(hops)
			return nil, nil, fmt.Errorf("jump host %s: %w", host, err)
		}
		client, err := handshake(ctx, dial, addr, h, hostKeys, auth)
		if err != nil {
			auth.close()
			closeHops(hops)
			return nil, nil, fmt.Errorf("jump host %s (%s): %w", host, addr, err)
		}
		hop := &SSH{name: "jump " + host, client: client, auth: auth, stop: make(chan struct{})}
		hops = append(hops, hop)
		dial = func(ctx context.Context, addr string) (net.Conn, error) {
			conn, err := hop.client.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, fmt.Errorf("through jump host %s: %w", host, err)
			}
			return conn, nil
		}
	}
	return dial, hops, nil
}

// closeHops closes jump hosts' clients, the last one first.
func closeHops(hops []*SSH) {
	for i := len(hops) - 1; i >= 0; i-- {
		_ = hops[i].Close()
	}
}

func handshake(ctx context.Context, dial dialFunc, addr string, cfg SSHConfig, hostKeys *hostKeyChecker, auth *sshAuth) (*ssh.Client, error) {
	// The handshake honours both the timeout and ctx: a node that accepts
	// TCP but never speaks must not stall the rotation. A channel through
	// a jump host has no deadlines, so the timeout is also ctx's.
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	conn, err := dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(cfg.DialTimeout)) // unsupported on a jump's channel; ctx bounds it then
	stopWatch := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stopWatch()
	clientCfg := &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              auth.methods(),
		HostKeyCallback:   hostKeys.callback,
		HostKeyAlgorithms: hostKeys.algorithmsFor(addr, conn.RemoteAddr()),
		Timeout:           cfg.DialTimeout,
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, clientCfg)
	if err != nil {
		_ = conn.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	if !stopWatch() {
		_ = c.Close()
		return nil, ctx.Err()
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// keepAlive pings the server every interval. A reply that does not come
// within the interval closes the connection, so that commands on a dead
// node fail instead of waiting for TCP to give up.
func (s *SSH) keepAlive(every time.Duration) {
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-ticker.C:
		}
		replied := make(chan error, 1)
		go func() {
			_, _, err := s.client.SendRequest("keepalive@openssh.com", true, nil)
			replied <- err
		}()
		select {
		case <-s.stop:
			return
		case err := <-replied:
			if err == nil {
				continue
			}
		case <-time.After(every):
		}
		_ = s.client.Close()
		return
	}
}

// Name implements Executor.
func (s *SSH) Name() string { return s.name }

// String names the node, so that an SSH can be printed in progress lines.
func (s *SSH) String() string { return s.name }

// Close implements Executor.
func (s *SSH) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.closeErr = s.client.Close()
		s.auth.close()
		closeHops(s.hops)
		if errors.Is(s.closeErr, net.ErrClosed) {
			s.closeErr = nil
		}
	})
	return s.closeErr
}

func (s *SSH) fail(op, path string, err error) error {
	return &Error{Node: s.name, Op: op, Path: path, Err: err}
}

// Dial implements Executor: a direct-tcpip channel from the node's sshd.
func (s *SSH) Dial(ctx context.Context, address string) (net.Conn, error) {
	conn, err := s.client.DialContext(ctx, "tcp", address)
	if err != nil {
		var oc *ssh.OpenChannelError
		if errors.As(err, &oc) && oc.Reason == ssh.Prohibited {
			err = fmt.Errorf("%w: %w", ErrForwardingRefused, err)
		}
		return nil, s.fail("dial", address, err)
	}
	return conn, nil
}

// Run implements Executor.
func (s *SSH) Run(ctx context.Context, argv []string, stdin io.Reader) (Result, error) {
	res, err := s.exec(ctx, argv, stdin, true)
	if err != nil {
		arg0 := ""
		if len(argv) > 0 {
			arg0 = argv[0]
		}
		return res, s.fail("run", arg0, err)
	}
	return res, nil
}

// commandLine is what the remote login shell is given for argv.
func (s *SSH) commandLine(argv []string) (string, error) {
	line, err := shellJoin(argv)
	if err != nil {
		return "", err
	}
	if s.sudo {
		line = "sudo -n -- " + line
	}
	return line, nil
}

// exec runs argv in a new session and returns an unwrapped error. When
// ctx ends first, exec returns at once and the session is closed in the
// background, which the command sees as EOF on stdin; with kill it is also
// sent SIGKILL. Our scripts are not killed: they check their input and
// clean up after themselves, which a killed script cannot.
func (s *SSH) exec(ctx context.Context, argv []string, stdin io.Reader, kill bool) (Result, error) {
	line, err := s.commandLine(argv)
	if err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	// Opening the session and starting the command each wait for the
	// node; on a stalled connection that can take forever, so they run
	// aside and ctx is watched meanwhile. Stdin is held back until we know
	// the start was not abandoned: a command that starts late must not get
	// its input.
	var stdout, stderr bytes.Buffer
	var gate *gatedReader
	if stdin != nil {
		gate = &gatedReader{r: stdin, open: make(chan struct{})}
	}
	type started struct {
		sess *ssh.Session
		err  error
	}
	startc := make(chan started, 1)
	go func() {
		sess, err := s.client.NewSession()
		if err != nil {
			startc <- started{err: fmt.Errorf("open session: %w", err)}
			return
		}
		if err := ctx.Err(); err != nil {
			_ = sess.Close()
			startc <- started{err: err}
			return
		}
		if gate != nil {
			sess.Stdin = gate
		}
		sess.Stdout = &stdout
		sess.Stderr = &stderr
		if err := sess.Start(line); err != nil {
			_ = sess.Close()
			startc <- started{err: fmt.Errorf("start command: %w", err)}
			return
		}
		startc <- started{sess: sess}
	}()
	var sess *ssh.Session
	select {
	case st := <-startc:
		if st.err != nil {
			return Result{}, st.err
		}
		sess = st.sess
	case <-ctx.Done():
		gate.release(false)
		go func() {
			if st := <-startc; st.sess != nil {
				abandon(st.sess, kill)
			}
		}()
		return Result{}, ctx.Err()
	}
	gate.release(true)
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
		_ = sess.Close()
	case <-ctx.Done():
		// Abandoned in the background: on a stalled connection even
		// sending the signal blocks. The waiting goroutine ends with the
		// session.
		go abandon(sess, kill)
		return Result{}, ctx.Err()
	}
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var exitErr *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &exitErr):
		res.ExitCode = exitErr.ExitStatus()
		if exitErr.Signal() != "" {
			res.ExitCode = -1 // as os/exec reports a killed process
		}
		return res, newExitError(res.ExitCode, res.Stderr)
	case errors.As(err, &missing):
		res.ExitCode = -1
		return res, errors.New("connection closed before the command reported its exit status")
	default:
		res.ExitCode = -1
		return res, err
	}
}

// abandon closes a session we no longer wait for. The signal is best
// effort: OpenSSH honours signal requests only in some setups (not for a
// command run through sudo by another user), so the remote command may run
// on to its end.
func abandon(sess *ssh.Session, kill bool) {
	if kill {
		_ = sess.Signal(ssh.SIGKILL)
	}
	_ = sess.Close()
}

// errAbandoned is what a gated stdin gives a session started too late.
var errAbandoned = errors.New("command abandoned before it started")

// gatedReader holds reads back until release: with true they go to r,
// with false they fail.
type gatedReader struct {
	r    io.Reader
	open chan struct{}
	once sync.Once
	ok   bool // written before open is closed
}

func (g *gatedReader) release(ok bool) {
	if g == nil {
		return
	}
	g.once.Do(func() {
		g.ok = ok
		close(g.open)
	})
}

func (g *gatedReader) Read(p []byte) (int, error) {
	<-g.open
	if !g.ok {
		return 0, errAbandoned
	}
	return g.r.Read(p)
}
