package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

// The server runs on this machine, so what SSH does to a path can be
// checked through the local filesystem.
func TestSSHConformance(t *testing.T) {
	d := startSSHD(t, "ed25519")
	s := d.dial(t, d.config(d.knownHosts(t, d.hostKeys[0])))
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	testExecutor(t, s, nodeTree{base: dir, host: func(p string) string { return p }})
}

func TestSSHQuotingRoundTrips(t *testing.T) {
	d := startSSHD(t, "ed25519")
	s := d.dial(t, d.config(d.knownHosts(t, d.hostKeys[0])))
	for _, tc := range nastyArgs {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.Run(context.Background(), []string{"printf", "%s", tc.arg}, nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if diff := cmp.Diff(tc.arg, string(res.Stdout)); diff != "" {
				t.Errorf("printf %%s %q (-want +got):\n%s", tc.arg, diff)
			}
		})
	}
	t.Run("all at once keeps argument boundaries", func(t *testing.T) {
		argv := []string{"printf", "<%s>"}
		want := ""
		for _, tc := range nastyArgs {
			argv = append(argv, tc.arg)
			want += "<" + tc.arg + ">"
		}
		res, err := s.Run(context.Background(), argv, nil)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if diff := cmp.Diff(want, string(res.Stdout)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

// TestSSHHostKeyRefused checks that a node whose host key is not on record
// is refused during the handshake: the ssh-agent is never asked for a key,
// sshd never logs an accepted login, and the command the caller would have
// run next never creates its marker file.
func TestSSHHostKeyRefused(t *testing.T) {
	d := startSSHD(t, "ed25519")
	otherKey := writeTestKey(t, "ed25519", filepath.Join(t.TempDir(), "other"))
	offered := ssh.FingerprintSHA256(d.hostKeys[0])
	port := strconv.Itoa(d.port)

	tests := []struct {
		name         string
		knownHosts   func(t *testing.T) string
		wantAccepted bool
		wantKnown    int
		wantInError  []string
	}{
		{
			name:         "key on record is accepted",
			knownHosts:   func(t *testing.T) string { return d.knownHosts(t, d.hostKeys[0]) },
			wantAccepted: true,
		},
		{
			name:       "unknown host, known_hosts missing",
			knownHosts: func(t *testing.T) string { return filepath.Join(t.TempDir(), "known_hosts") },
			wantInError: []string{
				"node cp-1: connect " + d.addr + ": ",
				"host key of [127.0.0.1]:" + port + " is unknown",
				"ssh-ed25519 key " + offered,
				"known_hosts",
				"ssh-keyscan -p " + port + " -t ed25519 127.0.0.1 >> ",
				"ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub",
			},
		},
		{
			name: "unknown host, known_hosts lists only other hosts",
			knownHosts: func(t *testing.T) string {
				f := filepath.Join(t.TempDir(), "known_hosts")
				line := "[127.0.0.1]:" + strconv.Itoa(d.port+1) + " " + string(ssh.MarshalAuthorizedKey(d.hostKeys[0]))
				if err := os.WriteFile(f, []byte(line), 0o600); err != nil {
					t.Fatal(err)
				}
				return f
			},
			wantInError: []string{"is unknown", offered},
		},
		{
			name:       "changed host key",
			knownHosts: func(t *testing.T) string { return d.knownHosts(t, otherKey) },
			wantKnown:  1,
			wantInError: []string{
				"host key of [127.0.0.1]:" + port + " has CHANGED",
				"offered ssh-ed25519 key " + offered,
				ssh.FingerprintSHA256(otherKey),
				"ssh-keygen -R '[127.0.0.1]:" + port + "' -f ",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "ran")
			sock, agent := d.startAgent(t)
			cfg := d.config(tc.knownHosts(t))
			cfg.IdentityFiles = nil
			cfg.AgentSocket = sock
			logBefore := strings.Count(d.log.String(), "Accepted publickey")

			s, err := DialSSH(context.Background(), cfg)
			if err == nil {
				_, err = s.Run(context.Background(), []string{"touch", marker}, nil)
				_ = s.Close()
			}

			accepted := strings.Count(d.log.String(), "Accepted publickey") > logBefore
			got := map[string]bool{"marker": fileExists(t, marker), "agent asked": agent.Requests() > 0, "login accepted": accepted}
			want := map[string]bool{"marker": tc.wantAccepted, "agent asked": tc.wantAccepted, "login accepted": tc.wantAccepted}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("what reached the node (-want +got):\n%s", diff)
			}
			if tc.wantAccepted {
				if err != nil {
					t.Fatalf("DialSSH: %v", err)
				}
				return
			}
			var hkErr *HostKeyError
			if !errors.As(err, &hkErr) {
				t.Fatalf("error = %v, want a *HostKeyError", err)
			}
			if len(hkErr.Known) != tc.wantKnown || hkErr.Fingerprint != offered || hkErr.Algorithm != ssh.KeyAlgoED25519 {
				t.Errorf("HostKeyError = %+v", hkErr)
			}
			for _, want := range tc.wantInError {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not contain %q:\n%v", want, err)
				}
			}
		})
	}
}

// TestSSHHostKeyAlgorithmFollowsKnownHosts covers a node with several host
// keys: whichever one known_hosts lists must be the one negotiated, or a
// good node would look like a changed key.
func TestSSHHostKeyAlgorithmFollowsKnownHosts(t *testing.T) {
	d := startSSHD(t, "ed25519", "rsa")
	tests := []struct {
		name  string
		known []ssh.PublicKey
	}{
		{"only ed25519 on record", d.hostKeys[:1]},
		{"only rsa on record", d.hostKeys[1:]},
		{"both on record", d.hostKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := d.dial(t, d.config(d.knownHosts(t, tc.known...)))
			if _, err := s.Run(context.Background(), []string{"true"}, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSSHKeepAliveAndClose(t *testing.T) {
	d := startSSHD(t, "ed25519")
	cfg := d.config(d.knownHosts(t, d.hostKeys[0]))
	cfg.KeepAlive = 50 * time.Millisecond
	s := d.dial(t, cfg)
	time.Sleep(300 * time.Millisecond) // several keepalive rounds
	if _, err := s.Run(context.Background(), []string{"true"}, nil); err != nil {
		t.Fatalf("Run after keepalives: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Run(context.Background(), []string{"true"}, nil); err == nil {
		t.Error("Run after Close succeeded")
	}
}

func TestSSHDialRefusedBeforeConnecting(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	writeTestKey(t, "ed25519", key)
	loose := filepath.Join(dir, "id_loose")
	writeTestKey(t, "ed25519", loose)
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	known := filepath.Join(dir, "known_hosts")
	// Port 1 on 127.0.0.1: nothing listens, and nothing is dialled anyway
	// when the configuration is refused first.
	base := SSHConfig{Address: "127.0.0.1:1", User: "root", IdentityFiles: []string{key}, KnownHostsFiles: []string{known}, DialTimeout: time.Second}
	tests := []struct {
		name   string
		modify func(c *SSHConfig)
		want   string
	}{
		{"no user", func(c *SSHConfig) { c.User = "" }, "no ssh user given"},
		{"no known_hosts", func(c *SSHConfig) { c.KnownHostsFiles = nil }, "no known_hosts file given"},
		{"no key at all", func(c *SSHConfig) { c.IdentityFiles = nil }, "no ssh identity file and no ssh-agent"},
		{"world-readable key", func(c *SSHConfig) { c.IdentityFiles = []string{loose} }, "is readable by others (mode 0644): chmod 600 it"},
		{"nothing listening", func(c *SSHConfig) {}, "connection refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.modify(&cfg)
			_, err := DialSSH(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "node 127.0.0.1: connect 127.0.0.1:1: ") {
				t.Errorf("error = %v, want one naming the node and containing %q", err, tc.want)
			}
		})
	}
}

// TestSSHBatchDeadline runs the batch script with a deadline already
// passed, as a session held up past it would: no target may change.
func TestSSHBatchDeadline(t *testing.T) {
	d := startSSHD(t, "ed25519")
	s := d.dial(t, d.config(d.knownHosts(t, d.hostKeys[0])))
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	crt, key := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	for _, f := range []string{crt, key} {
		if err := os.WriteFile(f, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	files := []FileWrite{
		{Path: crt, Data: []byte("new crt"), Mode: 0o644, Prev: ExpectContent([]byte("old"))},
		{Path: key, Data: []byte("new key"), Mode: 0o600, Prev: ExpectContent([]byte("old"))},
	}
	now := time.Now().Unix()
	for _, tc := range []struct{ name, deadline, budget string }{
		{"deadline passed", strconv.FormatInt(now-1, 10), "60"},
		{"no time left when sent", strconv.FormatInt(now+60, 10), "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, stdin, _ := batchArgs(files, tc.deadline, tc.budget)
			_, err := s.script(context.Background(), batchScript, stdin, args...)
			var exitErr *ExitError
			if !errors.As(err, &exitErr) || exitErr.Code != exitTooLate {
				t.Fatalf("batch script: %v, want exit %d", err, exitTooLate)
			}
			want := "node cp-1: write " + crt + ", " + key + ": the write deadline passed before the renames, so every target was left as it was"
			if got := s.batchExitError(files, exitErr).Error(); !strings.HasPrefix(got, want) {
				t.Errorf("error = %q, want it to start with %q", got, want)
			}
			for _, f := range []string{crt, key} {
				if got, err := os.ReadFile(f); err != nil || string(got) != "old" {
					t.Errorf("%s holds %q, %v; want old", f, got, err)
				}
			}
			if dots := dotFiles(t, dir); len(dots) > 0 {
				t.Errorf("temporary files left behind: %v", dots)
			}
		})
	}
}
