package node

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kevinburke/ssh_config"
)

// SSHEnv is the operator's environment that SSH defaults come from. It is
// passed in rather than read behind the caller's back, so that tests never
// depend on the real ~/.ssh.
type SSHEnv struct {
	// HomeDir holds .ssh/config, .ssh/known_hosts and the default keys.
	HomeDir string
	// User is the login name when neither the caller nor ~/.ssh/config
	// gives one.
	User string
	// AgentSocket is SSH_AUTH_SOCK; empty when no agent runs.
	AgentSocket string
}

// HostSSHEnv reads SSHEnv from this process: $HOME, the current user
// (root when it cannot be found) and SSH_AUTH_SOCK.
func HostSSHEnv() SSHEnv {
	env := SSHEnv{User: "root", AgentSocket: os.Getenv("SSH_AUTH_SOCK")}
	if home, err := os.UserHomeDir(); err == nil {
		env.HomeDir = home
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		env.User = u.Username
	}
	return env
}

// Complete fills the fields left zero in c the way ssh(1) would: first from
// the Host blocks of ~/.ssh/config that match the host in c.Address, then
// from env. Fields the caller set always win.
//
// The file is read by github.com/kevinburke/ssh_config (Host, Match and
// Include), for the keywords HostName, User, Port, IdentityFile,
// UserKnownHostsFile and ProxyJump, with ~, %d, %h and %% expanded;
// everything else is ignored: a setup that needs it should pass explicit
// fields. Each jump host is completed from its own Host block.
func (c SSHConfig) Complete(env SSHEnv) (SSHConfig, error) {
	alias, port, err := net.SplitHostPort(c.Address)
	if err != nil {
		alias, port = strings.TrimSuffix(strings.TrimPrefix(c.Address, "["), "]"), ""
	}
	if alias == "" {
		return c, errors.New("no ssh address given")
	}
	file := ""
	if env.HomeDir != "" {
		file = filepath.Join(env.HomeDir, ".ssh", "config")
	}
	opts, err := readSSHConfig(file, alias, env.HomeDir)
	if err != nil {
		return c, err
	}

	if c.Name == "" {
		c.Name = alias
	}
	host := alias
	if v := opts.first("hostname"); v != "" {
		host = v
	}
	if port == "" {
		port = opts.first("port")
	}
	if port == "" {
		port = DefaultSSHPort
	}
	c.Address = net.JoinHostPort(host, port)
	if c.User == "" {
		c.User = opts.first("user")
	}
	if c.User == "" {
		c.User = env.User
	}
	if c.User == "" {
		c.User = "root"
	}
	if len(c.IdentityFiles) == 0 {
		c.IdentityFiles = opts.all("identityfile")
	}
	if len(c.IdentityFiles) == 0 && env.HomeDir != "" {
		// The keys ssh(1) tries when none is configured; only those
		// that exist are used.
		for _, f := range []string{".ssh/id_ed25519", ".ssh/id_ecdsa", ".ssh/id_rsa"} {
			p := filepath.Join(env.HomeDir, f)
			if _, err := os.Stat(p); err == nil {
				c.IdentityFiles = append(c.IdentityFiles, p)
			}
		}
	}
	if len(c.KnownHostsFiles) == 0 {
		c.KnownHostsFiles = opts.all("userknownhostsfile")
	}
	if len(c.KnownHostsFiles) == 0 && env.HomeDir != "" {
		c.KnownHostsFiles = []string{filepath.Join(env.HomeDir, ".ssh", "known_hosts")}
	}
	if c.AgentSocket == "" {
		c.AgentSocket = env.AgentSocket
	}
	if c.Jump == nil {
		if v := opts.first("proxyjump"); v != "" && !strings.EqualFold(v, "none") {
			if c.Jump, err = ParseJump(v); err != nil {
				return c, fmt.Errorf("ssh config ProxyJump for %s: %w", alias, err)
			}
		}
	}
	for i := range c.Jump {
		// Each hop as ssh(1) would reach it, from its own Host block;
		// its own ProxyJump is not followed.
		h := c.Jump[i]
		h.Jump = []SSHConfig{}
		if h, err = h.Complete(env); err != nil {
			return c, fmt.Errorf("jump host %s: %w", c.Jump[i].Address, err)
		}
		h.Jump = nil
		c.Jump[i] = h
	}
	return c, nil
}

// ParseJump reads a jump host list as ssh -J and ProxyJump write it:
// [user@]host[:port], comma-separated, first hop first. "none" is none.
func ParseJump(spec string) ([]SSHConfig, error) {
	if strings.EqualFold(strings.TrimSpace(spec), "none") {
		return nil, nil
	}
	var hops []SSHConfig
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if strings.HasPrefix(part, "ssh://") {
			part = strings.TrimPrefix(part, "ssh://")
		}
		user, addr, hasUser := strings.Cut(part, "@")
		if !hasUser {
			user, addr = "", part
		}
		if addr == "" || (hasUser && user == "") || strings.ContainsAny(addr, " /@") {
			return nil, fmt.Errorf("%q is not [user@]host[:port]", part)
		}
		if h, p, err := net.SplitHostPort(addr); err == nil {
			if h == "" {
				return nil, fmt.Errorf("%q is not [user@]host[:port]", part)
			}
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("%q: port %q is out of range 1-65535", part, p)
			}
		}
		hops = append(hops, SSHConfig{Address: addr, User: user})
	}
	return hops, nil
}

// sshOptions holds the values given for one host, in file order, keyed by
// lower-case keyword.
type sshOptions map[string][]string

// first is the value that counts for a single-valued keyword: in
// ssh_config the first one obtained wins.
func (o sshOptions) first(key string) string {
	if v := o[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (o sshOptions) all(key string) []string { return o[key] }

// readSSHConfig reads what file (~/.ssh/config) says for alias, through
// github.com/kevinburke/ssh_config: Host blocks with * ? and ! patterns,
// Match (host, originalhost, user, localuser, all) and Include. A file
// that does not exist says nothing; one it cannot read is refused, naming
// it.
func readSSHConfig(file, alias, home string) (sshOptions, error) {
	opts := sshOptions{}
	if file == "" {
		return opts, nil
	}
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return opts, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ssh config %s: %w", file, bare(err))
	}
	cfg, err := ssh_config.DecodeBytes(data)
	if err != nil {
		return nil, fmt.Errorf("ssh config %s: %w; fix it, or give the nodes' address, user and keys with the --ssh-* flags or --inventory", file, err)
	}
	for _, key := range []string{"hostname", "user", "port", "proxyjump"} {
		v, err := cfg.Get(alias, key)
		if err != nil {
			return nil, fmt.Errorf("ssh config %s: %s for %s: %w", file, key, alias, err)
		}
		if v != "" {
			opts[key] = []string{expandSSHToken(v, alias, home)}
		}
	}
	for _, key := range []string{"identityfile", "userknownhostsfile"} {
		vals, err := cfg.GetAll(alias, key)
		if err != nil {
			return nil, fmt.Errorf("ssh config %s: %s for %s: %w", file, key, alias, err)
		}
		for _, v := range vals {
			args := []string{v} // IdentityFile is one path
			if key == "userknownhostsfile" {
				// several files, a quoted one may hold spaces
				if args, err = splitSSHArgs(v); err != nil {
					return nil, fmt.Errorf("ssh config %s: %s for %s: %w", file, key, alias, err)
				}
			}
			for _, a := range args {
				opts[key] = append(opts[key], expandSSHToken(a, alias, home))
			}
		}
	}
	return opts, nil
}

// splitSSHArgs splits a value into its blank-separated arguments, with
// double quotes around one that holds blanks.
func splitSSHArgs(rest string) ([]string, error) {
	var args []string
	rest = strings.TrimSpace(rest)
	for rest != "" {
		var arg string
		if rest[0] == '"' {
			closing := strings.IndexByte(rest[1:], '"')
			if closing < 0 {
				return nil, errors.New("unterminated quote")
			}
			arg, rest = rest[1:1+closing], rest[2+closing:]
		} else {
			end := strings.IndexAny(rest, " \t")
			if end < 0 {
				end = len(rest)
			}
			arg, rest = rest[:end], rest[end:]
		}
		args = append(args, arg)
		rest = strings.TrimLeft(rest, " \t")
	}
	return args, nil
}

// expandSSHToken expands a leading ~ and the tokens %d (home), %h (host as
// given) and %%.
func expandSSHToken(v, host, home string) string {
	if v == "~" || strings.HasPrefix(v, "~/") {
		v = home + v[1:]
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' || i+1 == len(v) {
			b.WriteByte(v[i])
			continue
		}
		i++
		switch v[i] {
		case 'd':
			b.WriteString(home)
		case 'h':
			b.WriteString(host)
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(v[i])
		}
	}
	return b.String()
}
