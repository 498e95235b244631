package node

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Through a jump host, as ssh -J: a real sshd forwards to another, each
// host key is checked against its own known_hosts, and commands run on
// the node. A jump host that forwards nothing, or whose key is unknown,
// fails naming the jump host, and nothing reaches the node.
func TestSSHThroughAJumpHost(t *testing.T) {
	target := startSSHD(t, "ed25519")
	jump := startSSHD(t, "ed25519")
	closed := startSSHDWith(t, func(*testSSHD) string { return "AllowTcpForwarding no\n" }, "ed25519")

	hop := func(d *testSSHD, known string) SSHConfig {
		c := d.config(known)
		c.Name = ""
		return c
	}
	cfg := target.config(target.knownHosts(t, target.hostKeys...))
	cfg.Jump = []SSHConfig{hop(jump, jump.knownHosts(t, jump.hostKeys...))}
	s := target.dial(t, cfg)
	res, err := s.Run(context.Background(), []string{"sh", "-c", "echo $SSH_CONNECTION"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The node sees the connection come from the jump host's sshd, to its
	// own port.
	if f := strings.Fields(string(res.Stdout)); len(f) != 4 || f[3] != strings.TrimPrefix(target.addr, "127.0.0.1:") {
		t.Errorf("SSH_CONNECTION on the node = %q", res.Stdout)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}

	// A node whose sshd forwards nothing says so, distinctly, when a
	// health probe would dial through it.
	direct := closed.dial(t, closed.config(closed.knownHosts(t, closed.hostKeys...)))
	if _, err := direct.Dial(context.Background(), target.addr); !errors.Is(err, ErrForwardingRefused) {
		t.Errorf("Dial through an sshd with AllowTcpForwarding no: %v, want ErrForwardingRefused", err)
	}

	cfg.Jump = []SSHConfig{hop(closed, closed.knownHosts(t, closed.hostKeys...))}
	if _, err := DialSSH(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "through jump host 127.0.0.1") {
		t.Errorf("through a jump host that forwards nothing: %v", err)
	}

	other := startSSHD(t, "ed25519")
	cfg.Jump = []SSHConfig{hop(jump, other.knownHosts(t, other.hostKeys...))} // jump's key is not in it
	_, err = DialSSH(context.Background(), cfg)
	var hk *HostKeyError
	if !errors.As(err, &hk) || !strings.Contains(err.Error(), "jump host 127.0.0.1") {
		t.Errorf("a jump host with an unknown key: %v, want a host key error naming the jump host", err)
	}
	if n := strings.Count(target.log.String(), "Accepted publickey"); n != 1 {
		t.Errorf("the node accepted %d logins, want the one through the open jump host:\n%s", n, target.log)
	}
}

func TestParseJump(t *testing.T) {
	hops, err := ParseJump("admin@bastion.example:2222, core@10.0.0.5,gw")
	if err != nil {
		t.Fatal(err)
	}
	want := []SSHConfig{{Address: "bastion.example:2222", User: "admin"}, {Address: "10.0.0.5", User: "core"}, {Address: "gw"}}
	if len(hops) != len(want) {
		t.Fatalf("ParseJump = %+v", hops)
	}
	for i := range want {
		if hops[i].Address != want[i].Address || hops[i].User != want[i].User {
			t.Errorf("hop %d = %+v, want %+v", i, hops[i], want[i])
		}
	}
	if hops, err := ParseJump("none"); err != nil || hops != nil {
		t.Errorf("none: %v, %v", hops, err)
	}
	for _, bad := range []string{"", "@host", "user@", "host:0", "host:ssh", "a b", "bastion,,gw"} {
		if _, err := ParseJump(bad); err == nil {
			t.Errorf("ParseJump(%q) accepted it", bad)
		}
	}
}
