package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSSHConfigComplete(t *testing.T) {
	const sshConfig = `# defaults for the cluster
Host cp-* !cp-9
    HostName %h.cluster.example
    User admin
    Port 2222
    IdentityFile ~/.ssh/cluster_ed25519
    UserKnownHostsFile ~/.ssh/cluster_known_hosts "/etc/ssh/with space"

Host cp-1
    User=other
    IdentityFile %d/.ssh/cp1

Match host cp-2
    User matched

Host worker-?
    hostname 10.0.0.7
    user worker

Host *
    User fallback
`
	tests := []struct {
		name     string
		config   string // contents of ~/.ssh/config; "" for no file
		defaults []string
		in       SSHConfig
		want     SSHConfig
	}{
		{
			name: "no config file: environment defaults",
			in:   SSHConfig{Address: "10.0.0.5"},
			want: SSHConfig{Name: "10.0.0.5", Address: "10.0.0.5:22", User: "operator",
				KnownHostsFiles: []string{"HOME/.ssh/known_hosts"}, AgentSocket: "/run/agent.sock"},
		},
		{
			name:     "default identity files that exist",
			defaults: []string{"id_ed25519", "id_rsa"},
			in:       SSHConfig{Address: "[fd00::1]:2200"},
			want: SSHConfig{Name: "fd00::1", Address: "[fd00::1]:2200", User: "operator",
				IdentityFiles:   []string{"HOME/.ssh/id_ed25519", "HOME/.ssh/id_rsa"},
				KnownHostsFiles: []string{"HOME/.ssh/known_hosts"}, AgentSocket: "/run/agent.sock"},
		},
		{
			name:   "first value wins, identity files add up",
			config: sshConfig,
			in:     SSHConfig{Address: "cp-1"},
			want: SSHConfig{Name: "cp-1", Address: "cp-1.cluster.example:2222", User: "admin",
				IdentityFiles:   []string{"HOME/.ssh/cluster_ed25519", "HOME/.ssh/cp1"},
				KnownHostsFiles: []string{"HOME/.ssh/cluster_known_hosts", "/etc/ssh/with space"},
				AgentSocket:     "/run/agent.sock"},
		},
		{
			name:   "explicit fields win over the config",
			config: sshConfig,
			in: SSHConfig{Name: "node-a", Address: "cp-1:22", User: "root", IdentityFiles: []string{"/k"},
				KnownHostsFiles: []string{"/kh"}, AgentSocket: "/other.sock", Sudo: true},
			want: SSHConfig{Name: "node-a", Address: "cp-1.cluster.example:22", User: "root", IdentityFiles: []string{"/k"},
				KnownHostsFiles: []string{"/kh"}, AgentSocket: "/other.sock", Sudo: true},
		},
		{
			name:   "a negated pattern excludes the host",
			config: sshConfig,
			in:     SSHConfig{Address: "cp-9"},
			want: SSHConfig{Name: "cp-9", Address: "cp-9:22", User: "fallback",
				KnownHostsFiles: []string{"HOME/.ssh/known_hosts"}, AgentSocket: "/run/agent.sock"},
		},
		{
			name:   "Match host before Host: its User wins",
			config: "Match host cp-2\n    User matched\nHost cp-*\n    User admin\n",
			in:     SSHConfig{Address: "cp-2"},
			want: SSHConfig{Name: "cp-2", Address: "cp-2:22", User: "matched",
				KnownHostsFiles: []string{"HOME/.ssh/known_hosts"}, AgentSocket: "/run/agent.sock"},
		},
		{
			name:   "Include of another file (absolute path)",
			config: "Include INCLUDED\nHost *\n    User fallback\n",
			in:     SSHConfig{Address: "db-1"},
			want: SSHConfig{Name: "db-1", Address: "10.9.9.9:2201", User: "included",
				KnownHostsFiles: []string{"HOME/.ssh/known_hosts"}, AgentSocket: "/run/agent.sock"},
		},
		{
			name:   "question mark matches one character, keywords in any case",
			config: sshConfig,
			in:     SSHConfig{Address: "worker-3"},
			want: SSHConfig{Name: "worker-3", Address: "10.0.0.7:22", User: "worker",
				KnownHostsFiles: []string{"HOME/.ssh/known_hosts"}, AgentSocket: "/run/agent.sock"},
		},
		{
			name: "ProxyJump: each hop completed from its own Host block",
			config: `Host 10.0.0.*
    ProxyJump admin@bastion:2222,gw

Host bastion
    HostName bastion.example
    IdentityFile ~/.ssh/bastion
    UserKnownHostsFile ~/.ssh/bastion_known_hosts
    ProxyJump ignored

Host gw
    User gwuser
`,
			in: SSHConfig{Address: "10.0.0.5", User: "root"},
			want: SSHConfig{Name: "10.0.0.5", Address: "10.0.0.5:22", User: "root",
				KnownHostsFiles: []string{"HOME/.ssh/known_hosts"}, AgentSocket: "/run/agent.sock",
				Jump: []SSHConfig{
					{Name: "bastion", Address: "bastion.example:2222", User: "admin", IdentityFiles: []string{"HOME/.ssh/bastion"},
						KnownHostsFiles: []string{"HOME/.ssh/bastion_known_hosts"}, AgentSocket: "/run/agent.sock"},
					{Name: "gw", Address: "gw:22", User: "gwuser", KnownHostsFiles: []string{"HOME/.ssh/known_hosts"}, AgentSocket: "/run/agent.sock"},
				}},
		},
		{
			name:   "ProxyJump none is none",
			config: "Host a\n    ProxyJump bastion\nHost b\n    ProxyJump none\n",
			in:     SSHConfig{Address: "b", User: "root"},
			want: SSHConfig{Name: "b", Address: "b:22", User: "root",
				KnownHostsFiles: []string{"HOME/.ssh/known_hosts"}, AgentSocket: "/run/agent.sock"},
		},
		{
			name:   "an explicit jump (--ssh-jump) wins over ProxyJump",
			config: "Host a\n    ProxyJump bastion\n",
			in:     SSHConfig{Address: "a", User: "root", Jump: []SSHConfig{{Address: "other:2200", User: "ops"}}},
			want: SSHConfig{Name: "a", Address: "a:22", User: "root",
				KnownHostsFiles: []string{"HOME/.ssh/known_hosts"}, AgentSocket: "/run/agent.sock",
				Jump: []SSHConfig{{Name: "other", Address: "other:2200", User: "ops", KnownHostsFiles: []string{"HOME/.ssh/known_hosts"}, AgentSocket: "/run/agent.sock"}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			if err := os.Mkdir(filepath.Join(home, ".ssh"), 0o700); err != nil {
				t.Fatal(err)
			}
			if tc.config != "" {
				included := filepath.Join(home, ".ssh", "included.conf")
				if err := os.WriteFile(included, []byte("Host db-*\n    HostName 10.9.9.9\n    Port 2201\n    User included\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				config := strings.ReplaceAll(tc.config, "INCLUDED", included)
				if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(config), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range tc.defaults {
				if err := os.WriteFile(filepath.Join(home, ".ssh", f), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := tc.in.Complete(SSHEnv{HomeDir: home, User: "operator", AgentSocket: "/run/agent.sock"})
			if err != nil {
				t.Fatal(err)
			}
			// Write HOME in place of the temporary home so that the
			// table reads like the config.
			unhome := cmp.Transformer("unhome", func(s string) string {
				if rel, err := filepath.Rel(home, s); err == nil && filepath.IsAbs(s) && !strings.HasPrefix(rel, "..") {
					return "HOME/" + rel
				}
				return s
			})
			if diff := cmp.Diff(tc.want, got, unhome); diff != "" {
				t.Errorf("Complete (-want +got):\n%s", diff)
			}
		})
	}
}

// A config the library cannot read is refused, naming the file and what
// to do: never half-read.
func TestSSHConfigRefused(t *testing.T) {
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(home, ".ssh", "config")
	if err := os.WriteFile(file, []byte("Match exec \"true\"\n    User x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := SSHConfig{Address: "cp-1"}.Complete(SSHEnv{HomeDir: home, User: "operator"})
	if err == nil || !strings.Contains(err.Error(), "ssh config "+file) || !strings.Contains(err.Error(), "Match Exec is not supported") || !strings.Contains(err.Error(), "--inventory") {
		t.Errorf("Complete with Match exec: %v", err)
	}
}
