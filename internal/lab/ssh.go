package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/carotate/carotate/internal/lab/agent"
)

// makeSSHKeys creates the operator's login key and each node's host key.
func (l *Lab) makeSSHKeys(ctx context.Context) error {
	dir := filepath.Join(l.StateDir, "ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(l.SSHKey()); os.IsNotExist(err) {
		if _, err := run(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab-"+l.Name+"-admin", "-f", l.SSHKey()); err != nil {
			return err
		}
	}
	pub, err := os.ReadFile(l.SSHKey() + ".pub")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		return err
	}
	for i := range l.Nodes {
		n := &l.Nodes[i]
		key := filepath.Join(l.nodeDir(n.Name), "ssh_host_ed25519_key")
		if err := os.MkdirAll(filepath.Dir(key), 0o700); err != nil {
			return err
		}
		if _, err := os.Stat(key); os.IsNotExist(err) {
			if _, err := run(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", n.Name, "-f", key); err != nil {
				return err
			}
		}
		hostPub, err := os.ReadFile(key + ".pub")
		if err != nil {
			return err
		}
		fields := strings.Fields(string(hostPub))
		if len(fields) < 2 {
			return fmt.Errorf("%s.pub: not a public key", key)
		}
		n.HostKey = fields[0] + " " + fields[1]
	}
	return nil
}

// writeKnownHosts writes every node's real host key, by address and name.
func (l *Lab) writeKnownHosts() error {
	var b strings.Builder
	for _, n := range l.Nodes {
		fmt.Fprintf(&b, "%s,%s %s\n", n.IP, n.Name, n.HostKey)
	}
	return writeFileAtomic(l.KnownHosts(), []byte(b.String()), 0o644)
}

func systemctlAt(socket, verb string, units ...string) (string, error) {
	resp, err := agent.Call(socket, agent.Request{Verb: verb, Args: units}, 60*time.Second)
	if err != nil {
		return "", err
	}
	if resp.Code != 0 {
		return resp.Output, fmt.Errorf("systemctl %s %s: exit %d: %s", verb, strings.Join(units, " "), resp.Code, strings.TrimSpace(resp.Output))
	}
	return resp.Output, nil
}
