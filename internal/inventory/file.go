package inventory

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"

	"sigs.k8s.io/yaml"

	"github.com/carotate/carotate/internal/node"
)

// Executor kinds an inventory file may name.
const (
	ExecutorSSH   = "ssh"
	ExecutorLocal = "local" // carotate runs on that node itself, rooted at "/"
)

// MaxFileSize bounds an inventory file; a real one is a few kilobytes.
const MaxFileSize = 1 << 20

// ErrInvalidFile matches every refusal of an inventory file.
var ErrInvalidFile = errors.New("invalid inventory file")

// File is an inventory file: how to reach particular nodes when the
// defaults (SSH to the node's InternalIP with the command-line settings) do
// not fit, and which nodes to leave alone.
//
//	nodes:
//	- name: cp-1
//	  address: 192.0.2.10      # host or host:port
//	  user: ubuntu
//	  port: 2222
//	  sudo: true
//	- name: cp-2
//	  executor: local          # carotate runs on cp-2 itself
//	- name: win-1
//	  skip: true
type File struct {
	// Source is where the file was read from, for errors.
	Source string  `json:"-"`
	Nodes  []Entry `json:"nodes"`
}

// Entry overrides how one node is reached. Unset fields keep the defaults.
type Entry struct {
	Name     string `json:"name"`
	Address  string `json:"address,omitempty"`
	User     string `json:"user,omitempty"`
	Port     int    `json:"port,omitempty"`
	Executor string `json:"executor,omitempty"`
	Sudo     *bool  `json:"sudo,omitempty"`
	// Jump are this node's jump hosts, as --ssh-jump: [user@]host[:port],
	// comma-separated, or none to go direct; it wins over --ssh-jump.
	Jump string `json:"jump,omitempty"`
	// Skip leaves the node out: it is neither inspected nor changed.
	Skip bool `json:"skip,omitempty"`
}

// FileError is a refusal of an inventory file: which file, which entry
// (empty for the file as a whole), what is wrong and what to do.
type FileError struct {
	Source string
	Entry  string // "nodes[2] (cp-3)"
	Detail string
	Err    error
}

func (e *FileError) Error() string {
	msg := "inventory file " + e.Source
	if e.Entry != "" {
		msg += ": " + e.Entry
	}
	msg += ": " + e.Detail
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *FileError) Unwrap() error { return e.Err }

// Is makes every FileError match ErrInvalidFile.
func (e *FileError) Is(target error) bool { return target == ErrInvalidFile }

// LoadFile reads and parses the inventory file at path.
func LoadFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &FileError{Source: path, Detail: "cannot read it; check --inventory", Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &FileError{Source: path, Detail: "cannot read it", Err: err}
	}
	if len(data) > MaxFileSize {
		return nil, &FileError{Source: path, Detail: fmt.Sprintf("larger than %d bytes; is it the right file?", MaxFileSize)}
	}
	return ParseFile(path, data)
}

// ParseFile parses an inventory file; source names it in errors. Unknown
// fields are refused, so that a typo ("adress") never silently falls back
// to a default.
func ParseFile(source string, data []byte) (*File, error) {
	f := &File{Source: source}
	if err := yaml.UnmarshalStrict(data, f); err != nil {
		return nil, &FileError{Source: source, Detail: "not a valid inventory (YAML with a nodes: list of name, address, user, port, executor, sudo, skip)", Err: err}
	}
	seen := map[string]int{}
	for i, e := range f.Nodes {
		where := fmt.Sprintf("nodes[%d]", i)
		if e.Name != "" {
			where += " (" + e.Name + ")"
		}
		bad := func(format string, args ...any) error {
			return &FileError{Source: source, Entry: where, Detail: fmt.Sprintf(format, args...)}
		}
		switch {
		case e.Name == "":
			return nil, bad("name is required: the node's name as `kubectl get nodes` shows it")
		case seen[e.Name] > 0:
			return nil, bad("node %q is listed twice (also nodes[%d]); merge the entries", e.Name, seen[e.Name]-1)
		}
		seen[e.Name] = i + 1
		switch e.Executor {
		case "", ExecutorSSH, ExecutorLocal:
		default:
			return nil, bad("executor %q is not one of %q or %q", e.Executor, ExecutorSSH, ExecutorLocal)
		}
		if e.Port < 0 || e.Port > 65535 {
			return nil, bad("port %d is out of range 1-65535", e.Port)
		}
		if e.Address != "" {
			if _, port, err := net.SplitHostPort(e.Address); err == nil {
				if e.Port != 0 && strconv.Itoa(e.Port) != port {
					return nil, bad("address %q has port %s but port is %d; give the port once", e.Address, port, e.Port)
				}
			}
		}
		if e.Jump != "" {
			if _, err := node.ParseJump(e.Jump); err != nil {
				return nil, bad("jump %q: %v; give [user@]host[:port], comma-separated, or none", e.Jump, err)
			}
		}
		if e.Executor == ExecutorLocal && (e.Address != "" || e.User != "" || e.Port != 0 || e.Sudo != nil || e.Jump != "") {
			return nil, bad("executor local runs on the node itself, so address, user, port, sudo and jump do not apply; remove them")
		}
		if e.Skip && (e.Executor != "" || e.Address != "" || e.User != "" || e.Port != 0 || e.Sudo != nil || e.Jump != "") {
			return nil, bad("a skipped node is not reached, so address, user, port, executor, sudo and jump do not apply; remove them or skip")
		}
	}
	return f, nil
}

// entry returns the entry for node name, if any.
func (f *File) entry(name string) (Entry, bool) {
	if f == nil {
		return Entry{}, false
	}
	for _, e := range f.Nodes {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}
