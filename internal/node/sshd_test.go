package node

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

const (
	sshdPath = "/usr/sbin/sshd"
	// privsepDir must exist for sshd to start; Debian creates it at boot
	// only when the service runs.
	privsepDir       = "/run/sshd"
	sshdStartTimeout = 10 * time.Second
	sshdStartTries   = 3
)

// testSSHD is a real OpenSSH server on 127.0.0.1 with keys made for the
// test. Its host and client keys live in dir.
type testSSHD struct {
	addr      string // 127.0.0.1:port
	port      int
	dir       string
	hostKeys  []ssh.PublicKey // in the order of the HostKey lines
	clientKey string          // private key file, 0600
	clientPub ssh.PublicKey
	log       *lockedBuffer
}

// lockedBuffer collects sshd's log while its process writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// requireSSHD skips unless this machine can run a test sshd.
func requireSSHD(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("ssh tests need root to run sshd")
	}
	if _, err := os.Stat(sshdPath); err != nil {
		t.Skipf("ssh tests need %s (Debian package openssh-server)", sshdPath)
	}
}

// startSSHD starts sshd with one host key per given type ("ed25519",
// "rsa"), logging in root with a fresh client key. The server is killed,
// by its PID, when the test ends, even on failure.
func startSSHD(t *testing.T, hostKeyTypes ...string) *testSSHD {
	t.Helper()
	return startSSHDWith(t, nil, hostKeyTypes...)
}

// startSSHDWith is startSSHD with more sshd_config lines: extra is called
// once the host keys exist (to certify them, say) and returns the lines.
func startSSHDWith(t *testing.T, extra func(d *testSSHD) string, hostKeyTypes ...string) *testSSHD {
	t.Helper()
	requireSSHD(t)
	ensurePrivsepDir(t)
	dir := t.TempDir()
	d := &testSSHD{dir: dir, log: &lockedBuffer{}}
	var hostKeyLines string
	for _, typ := range hostKeyTypes {
		file := filepath.Join(dir, "ssh_host_"+typ+"_key")
		d.hostKeys = append(d.hostKeys, writeTestKey(t, typ, file))
		hostKeyLines += "HostKey " + file + "\n"
	}
	d.clientKey = filepath.Join(dir, "id_ed25519")
	d.clientPub = writeTestKey(t, "ed25519", d.clientKey)
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(d.clientPub), 0o600); err != nil {
		t.Fatal(err)
	}
	if extra != nil {
		hostKeyLines += extra(d)
	}

	var lastErr error
	for try := 0; try < sshdStartTries; try++ {
		port := freePort(t)
		cfg := filepath.Join(dir, "sshd_config")
		config := fmt.Sprintf(`ListenAddress 127.0.0.1
Port %d
%sAuthorizedKeysFile %s
PidFile %s
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
LogLevel VERBOSE
`, port, hostKeyLines, authorized, filepath.Join(dir, "sshd.pid"))
		if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		if lastErr = d.run(t, cfg, port); lastErr == nil {
			return d
		}
	}
	t.Fatalf("sshd did not start after %d tries: %v\nlog:\n%s", sshdStartTries, lastErr, d.log)
	return nil
}

// run starts sshd on port and waits, bounded, until it accepts TCP.
func (d *testSSHD) run(t *testing.T, cfg string, port int) error {
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", cfg)
	cmd.Stdout = d.log
	cmd.Stderr = d.log
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			t.Logf("sshd pid %d did not exit after SIGKILL", cmd.Process.Pid)
		}
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(sshdStartTimeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("sshd exited: %v", err)
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = conn.Close()
			d.addr, d.port = addr, port
			t.Cleanup(stop)
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return fmt.Errorf("sshd not listening on %s after %v", addr, sshdStartTimeout)
}

// ensurePrivsepDir creates /run/sshd if missing and removes it afterwards,
// only then.
func ensurePrivsepDir(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(privsepDir); err == nil {
		return
	}
	if err := os.Mkdir(privsepDir, 0o755); err != nil {
		t.Fatalf("create %s for sshd: %v", privsepDir, err)
	}
	t.Cleanup(func() { _ = os.Remove(privsepDir) })
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeTestKey writes a new private key of typ to file in OpenSSH format,
// mode 0600, and returns its public key.
func writeTestKey(t *testing.T, typ, file string) ssh.PublicKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch typ {
	case "ed25519":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "rsa":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("unknown key type %q", typ)
	}
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// knownHosts writes a known_hosts file listing keys for the server's
// address and returns its path.
func (d *testSSHD) knownHosts(t *testing.T, keys ...ssh.PublicKey) string {
	t.Helper()
	var buf bytes.Buffer
	for _, k := range keys {
		buf.WriteString(knownhosts.Line([]string{d.addr}, k) + "\n")
	}
	file := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// config is a client configuration for root with the test's client key.
func (d *testSSHD) config(knownHostsFile string) SSHConfig {
	return SSHConfig{
		Name:            "cp-1",
		Address:         d.addr,
		User:            "root",
		IdentityFiles:   []string{d.clientKey},
		KnownHostsFiles: []string{knownHostsFile},
		DialTimeout:     5 * time.Second,
	}
}

func (d *testSSHD) dial(t *testing.T, cfg SSHConfig) *SSH {
	t.Helper()
	s, err := DialSSH(context.Background(), cfg)
	if err != nil {
		t.Fatalf("DialSSH: %v\nsshd log:\n%s", err, d.log)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// countingAgent is an ssh-agent that counts the requests it serves, to
// prove that a refused node never got as far as authentication.
type countingAgent struct {
	agent.Agent
	mu       sync.Mutex
	requests int
}

func (a *countingAgent) count() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests++
}

func (a *countingAgent) List() ([]*agent.Key, error) { a.count(); return a.Agent.List() }

func (a *countingAgent) Signers() ([]ssh.Signer, error) { a.count(); return a.Agent.Signers() }

func (a *countingAgent) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	a.count()
	return a.Agent.Sign(key, data)
}

func (a *countingAgent) Requests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests
}

// startAgent serves an agent holding the client key on a socket in a temp
// directory and returns the socket path.
func (d *testSSHD) startAgent(t *testing.T) (string, *countingAgent) {
	t.Helper()
	raw, err := os.ReadFile(d.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParseRawPrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	counting := &countingAgent{Agent: keyring}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return // closed at cleanup
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				_ = agent.ServeAgent(counting, conn)
			}()
		}
	}()
	return sock, counting
}

func fileExists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Lstat(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}
