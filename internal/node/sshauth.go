package node

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// sshAuth collects the client's keys: identity files first, because the
// operator named them, then whatever ssh-agent holds.
type sshAuth struct {
	signers []ssh.Signer
	agent   agent.ExtendedAgent
	conn    net.Conn // to the agent; closed with the client
}

func newSSHAuth(identityFiles []string, agentSocket string) (*sshAuth, error) {
	a := &sshAuth{}
	for _, f := range identityFiles {
		s, err := loadIdentity(f)
		if err != nil {
			return nil, err
		}
		a.signers = append(a.signers, s)
	}
	if agentSocket != "" {
		conn, err := net.Dial("unix", agentSocket)
		switch {
		case err == nil:
			a.conn = conn
			a.agent = agent.NewClient(conn)
		case len(a.signers) == 0:
			return nil, fmt.Errorf("ssh-agent at %s: %w", agentSocket, err)
		}
		// A stale SSH_AUTH_SOCK next to explicit identity files is common
		// and harmless; the identity files are used alone.
	}
	if len(a.signers) == 0 && a.agent == nil {
		return nil, errors.New("no ssh identity file and no ssh-agent: give an identity file or set SSH_AUTH_SOCK")
	}
	return a, nil
}

// methods returns one publickey method: x/crypto tries each method name
// only once, so files and agent keys must share it.
func (a *sshAuth) methods() []ssh.AuthMethod {
	return []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		signers := append([]ssh.Signer(nil), a.signers...)
		if a.agent != nil {
			fromAgent, err := a.agent.Signers()
			if err != nil {
				return nil, fmt.Errorf("ssh-agent: %w", err)
			}
			signers = append(signers, fromAgent...)
		}
		return signers, nil
	})}
}

func (a *sshAuth) close() {
	if a.conn != nil {
		_ = a.conn.Close()
	}
}

// loadIdentity reads a private key file. Like OpenSSH, it refuses a key
// that group or others can read: that key is already compromised, and
// using it quietly would hide the fact.
func loadIdentity(path string) (ssh.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", path, bare(err))
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("identity file %s is readable by others (mode %04o): chmod 600 it", path, perm)
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", path, bare(err))
	}
	signer, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("identity file %s is protected by a passphrase: load it into ssh-agent (ssh-add %s) instead", path, Quote(path))
	}
	if err != nil {
		// The parse error never quotes the key; keep it for the reason.
		return nil, fmt.Errorf("identity file %s: %w", path, err)
	}
	return signer, nil
}
