// Package agent is the process that plays a lab node's init system. It runs
// inside the node's own network, mount and UTS namespaces, sets up the node's
// view of the filesystem, and supervises the node's daemons (containerd, sshd,
// the kubelet) the way systemd would: a unit runs while it is active and is
// restarted when it exits. A `systemctl`-compatible client talks to it over a
// unix socket, so kubeadm and operators drive the kubelet exactly as on a
// systemd host.
package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config is what the lab hands an agent, as JSON in a file.
type Config struct {
	// Hostname becomes the node's UTS hostname.
	Hostname string `json:"hostname"`
	// Cgroups are the cgroup directories (one per hierarchy) the agent moves
	// itself into before it starts anything, so everything it starts can be
	// found and stopped by cgroup at teardown.
	Cgroups []string `json:"cgroups"`
	// Mounts are bind mounts made inside the node's private mount namespace.
	Mounts []Mount `json:"mounts"`
	// Socket is the control socket's path inside the node.
	Socket string `json:"socket"`
	// Units are the daemons the agent supervises.
	Units []Unit `json:"units"`
	// Env is the environment every unit starts with.
	Env []string `json:"env"`
}

// Mount is a bind mount of Source over Target.
type Mount struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

// Unit is a supervised daemon, a small subset of a systemd service unit.
type Unit struct {
	Name string `json:"name"`
	// Argv is the command line. A word that is exactly "$VAR" expands to the
	// variable's value split on white space, as systemd's ExecStart does.
	Argv []string `json:"argv"`
	// EnvironmentFiles are read at each start; missing files are skipped
	// (systemd's "EnvironmentFile=-path").
	EnvironmentFiles []string `json:"environmentFiles"`
	// Enabled units start when the agent is told to boot.
	Enabled bool `json:"enabled"`
	// Log is the file the unit's output is appended to.
	Log string `json:"log"`
	// RestartDelay is how long the agent waits before restarting an exited
	// unit (systemd's RestartSec).
	RestartDelay time.Duration `json:"restartDelay"`
}

// Request is one control command, sent as a JSON line.
type Request struct {
	Verb string   `json:"verb"`
	Args []string `json:"args"`
}

// Response answers a Request.
type Response struct {
	Code   int    `json:"code"`
	Output string `json:"output"`
}

// Run is the agent's main: it sets up the node and serves until SIGTERM or a
// "shutdown" request.
func Run(configPath string, log *slog.Logger) error {
	data, err := os.ReadFile(configPath)
	if err != nil {
		return fmt.Errorf("read agent config: %w", err)
	}
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("parse agent config %s: %w", configPath, err)
	}
	if err := joinCgroups(cfg.Cgroups); err != nil {
		return err
	}
	if err := setupNamespaces(cfg); err != nil {
		return err
	}
	s := newSupervisor(cfg, log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return s.serve(ctx)
}

func joinCgroups(dirs []string) error {
	pid := []byte(fmt.Sprint(os.Getpid()))
	for _, dir := range dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), pid, 0o644); err != nil {
			return fmt.Errorf("join cgroup %s: %w", dir, err)
		}
	}
	return nil
}

// setupNamespaces makes the mount namespace private, so nothing mounted on
// the node leaks to the host, bind-mounts the node's own directories, and sets
// the hostname. The caller started this process in new namespaces.
func setupNamespaces(cfg Config) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	for _, m := range cfg.Mounts {
		if err := syscall.Mount(m.Source, m.Target, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s over %s: %w", m.Source, m.Target, err)
		}
	}
	if cfg.Hostname != "" {
		if err := syscall.Sethostname([]byte(cfg.Hostname)); err != nil {
			return fmt.Errorf("set hostname: %w", err)
		}
	}
	return nil
}

type supervisor struct {
	cfg   Config
	log   *slog.Logger
	mu    sync.Mutex
	units map[string]*unitState
	done  chan struct{}
}

type unitState struct {
	Unit
	active   bool
	enabled  bool
	cmd      *exec.Cmd
	exited   chan struct{}
	restarts int
	since    time.Time
}

func newSupervisor(cfg Config, log *slog.Logger) *supervisor {
	s := &supervisor{cfg: cfg, log: log, units: map[string]*unitState{}, done: make(chan struct{})}
	for _, u := range cfg.Units {
		if u.RestartDelay == 0 {
			u.RestartDelay = 2 * time.Second
		}
		s.units[u.Name] = &unitState{Unit: u, enabled: u.Enabled}
	}
	return s
}

func (s *supervisor) serve(ctx context.Context) error {
	_ = os.Remove(s.cfg.Socket)
	ln, err := net.Listen("unix", s.cfg.Socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Socket, err)
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		ln.Close()
	}()
	s.log.Info("agent ready", "socket", s.cfg.Socket)
	for {
		conn, err := ln.Accept()
		if err != nil {
			break
		}
		go s.handle(conn)
	}
	s.stopAll()
	return nil
}

func (s *supervisor) handle(conn net.Conn) {
	defer conn.Close()
	line, err := bufio.NewReader(io.LimitReader(conn, 64<<10)).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return
	}
	var req Request
	resp := Response{Code: 1}
	if err := json.Unmarshal(line, &req); err != nil {
		resp.Output = fmt.Sprintf("bad request: %v\n", err)
	} else {
		resp = s.do(req)
	}
	out, _ := json.Marshal(resp)
	conn.Write(append(out, '\n'))
}

// do carries out one systemctl-like verb.
func (s *supervisor) do(req Request) Response {
	switch req.Verb {
	case "boot":
		for _, name := range s.names() {
			if u := s.units[name]; u.enabled {
				s.start(u)
			}
		}
		return Response{}
	case "shutdown":
		s.stopAll()
		close(s.done)
		return Response{}
	case "daemon-reload", "reset-failed":
		return Response{}
	case "list-units":
		var b strings.Builder
		for _, name := range s.names() {
			fmt.Fprintf(&b, "%s %s\n", name, s.state(s.units[name]))
		}
		return Response{Output: b.String()}
	}
	if len(req.Args) == 0 {
		return Response{Code: 1, Output: fmt.Sprintf("systemctl %s: no unit given\n", req.Verb)}
	}
	var out strings.Builder
	code := 0
	for _, arg := range req.Args {
		if strings.HasPrefix(arg, "-") {
			continue
		}
		name := strings.TrimSuffix(arg, ".service")
		u, ok := s.units[name]
		if !ok {
			fmt.Fprintf(&out, "Unit %s.service could not be found.\n", name)
			code = 4
			continue
		}
		switch req.Verb {
		case "start":
			s.start(u)
		case "stop":
			s.stop(u)
		case "restart", "try-restart", "reload-or-restart":
			s.stop(u)
			s.start(u)
		case "enable":
			s.setEnabled(u, true)
		case "disable":
			s.setEnabled(u, false)
		case "is-active":
			st := s.state(u)
			fmt.Fprintln(&out, st)
			if st != "active" {
				code = 3
			}
		case "is-enabled":
			if s.isEnabled(u) {
				fmt.Fprintln(&out, "enabled")
			} else {
				fmt.Fprintln(&out, "disabled")
				code = 1
			}
		case "status":
			st := s.state(u)
			s.mu.Lock()
			fmt.Fprintf(&out, "● %s.service\n     Active: %s since %s; restarts %d\n", name, st, u.since.Format(time.RFC3339), u.restarts)
			if u.cmd != nil && u.cmd.Process != nil && st == "active" {
				fmt.Fprintf(&out, "   Main PID: %d\n", u.cmd.Process.Pid)
			}
			s.mu.Unlock()
			if st != "active" {
				code = 3
			}
		default:
			return Response{Code: 1, Output: fmt.Sprintf("systemctl: unknown verb %q\n", req.Verb)}
		}
	}
	return Response{Code: code, Output: out.String()}
}

func (s *supervisor) names() []string {
	names := make([]string, 0, len(s.units))
	for n := range s.units {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (s *supervisor) setEnabled(u *unitState, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u.enabled = on
}

func (s *supervisor) isEnabled(u *unitState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return u.enabled
}

func (s *supervisor) state(u *unitState) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case u.active && u.cmd != nil:
		return "active"
	case u.active:
		return "activating"
	default:
		return "inactive"
	}
}

// start makes u active and runs it, restarting it whenever it exits until
// it is stopped.
func (s *supervisor) start(u *unitState) {
	s.mu.Lock()
	if u.active {
		s.mu.Unlock()
		return
	}
	u.active = true
	u.since = time.Now()
	exited := make(chan struct{})
	u.exited = exited
	s.mu.Unlock()
	go s.runLoop(u, exited)
}

func (s *supervisor) runLoop(u *unitState, exited chan struct{}) {
	defer close(exited)
	for {
		s.mu.Lock()
		if !u.active {
			s.mu.Unlock()
			return
		}
		cmd, err := s.command(u.Unit)
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			s.log.Error("unit failed to start", "unit", u.Name, "err", err)
			u.cmd = nil
		} else {
			u.cmd = cmd
		}
		s.mu.Unlock()
		if err == nil {
			err = cmd.Wait()
			s.log.Info("unit exited", "unit", u.Name, "err", err)
			if f, ok := cmd.Stdout.(*os.File); ok {
				f.Close()
			}
		}
		s.mu.Lock()
		u.cmd = nil
		active := u.active
		if active {
			u.restarts++
		}
		s.mu.Unlock()
		if !active {
			return
		}
		time.Sleep(u.RestartDelay)
	}
}

// stop makes u inactive: SIGTERM, then SIGKILL after a grace period.
func (s *supervisor) stop(u *unitState) {
	s.mu.Lock()
	if !u.active {
		s.mu.Unlock()
		return
	}
	u.active = false
	cmd, exited := u.cmd, u.exited
	s.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			return
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	}
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
	}
}

func (s *supervisor) stopAll() {
	// The kubelet goes first so that it does not restart what goes after it.
	names := s.names()
	sort.SliceStable(names, func(i, j int) bool { return names[i] == "kubelet" && names[j] != "kubelet" })
	for _, n := range names {
		s.stop(s.units[n])
	}
}

// command builds the exec.Cmd for u, expanding its environment files the way
// systemd does.
func (s *supervisor) command(u Unit) (*exec.Cmd, error) {
	env := append([]string(nil), s.cfg.Env...)
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	for _, f := range u.EnvironmentFiles {
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("unit %s: %w", u.Name, err)
		}
		for k, v := range ParseEnvironmentFile(string(data)) {
			vars[k] = v
			env = append(env, k+"="+v)
		}
	}
	argv := ExpandArgv(u.Argv, vars)
	if len(argv) == 0 {
		return nil, fmt.Errorf("unit %s has no command", u.Name)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = "/"
	if u.Log != "" {
		f, err := os.OpenFile(u.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("unit %s: open log: %w", u.Name, err)
		}
		cmd.Stdout, cmd.Stderr = f, f
	}
	// Its own process group, so that a signal to the agent's terminal does not
	// reach the daemons.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

// ParseEnvironmentFile reads KEY=VALUE lines as systemd's EnvironmentFile
// does: comments and blank lines are skipped, and one pair of surrounding
// quotes is removed from the value.
func ParseEnvironmentFile(data string) map[string]string {
	vars := map[string]string{}
	for _, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			v = v[1 : len(v)-1]
		}
		vars[strings.TrimSpace(k)] = v
	}
	return vars
}

// ExpandArgv expands argv as systemd's ExecStart does: a word that is
// exactly "$VAR" becomes the variable's value split on white space (an unset
// or empty variable gives no words), "${VAR}" inside a word becomes the value
// as it is, and "$$" is a literal "$".
func ExpandArgv(argv []string, vars map[string]string) []string {
	var out []string
	for _, w := range argv {
		if name, ok := strings.CutPrefix(w, "$"); ok && isVarName(name) {
			out = append(out, strings.Fields(vars[name])...)
			continue
		}
		var b strings.Builder
		for i := 0; i < len(w); i++ {
			switch {
			case strings.HasPrefix(w[i:], "$$"):
				b.WriteByte('$')
				i++
			case strings.HasPrefix(w[i:], "${"):
				end := strings.IndexByte(w[i:], '}')
				if end < 0 {
					b.WriteString(w[i:])
					i = len(w)
					continue
				}
				b.WriteString(vars[w[i+2:i+end]])
				i += end
			default:
				b.WriteByte(w[i])
			}
		}
		out = append(out, b.String())
	}
	return out
}

func isVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// Call sends one request to the agent listening on socket.
func Call(socket string, req Request, timeout time.Duration) (Response, error) {
	conn, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		return Response{}, fmt.Errorf("agent at %s: %w", socket, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	data, _ := json.Marshal(req)
	if _, err := conn.Write(append(data, '\n')); err != nil {
		return Response{}, fmt.Errorf("agent at %s: %w", socket, err)
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		return Response{}, fmt.Errorf("agent at %s: %w", socket, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return Response{}, fmt.Errorf("agent at %s: bad response: %w", socket, err)
	}
	return resp, nil
}

// Systemctl is the `systemctl` command inside a node: it forwards its
// arguments to the agent and returns systemctl's exit code.
func Systemctl(socket string, args []string, stdout, stderr io.Writer) int {
	var verb string
	var rest []string
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "-"):
			// --no-pager, --quiet, --now and friends change nothing here.
		case verb == "":
			verb = a
		default:
			rest = append(rest, a)
		}
	}
	if verb == "" {
		verb = "list-units"
	}
	resp, err := Call(socket, Request{Verb: verb, Args: rest}, 60*time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "systemctl: %v\n", err)
		return 1
	}
	quiet := false
	for _, a := range args {
		if a == "-q" || a == "--quiet" {
			quiet = true
		}
	}
	if !quiet {
		io.WriteString(stdout, resp.Output)
	}
	return resp.Code
}
