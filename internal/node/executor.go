// Package node gives carotate one way to touch a cluster node: read and
// atomically write files, stat them, list directories and run commands.
//
// The rotation code is written once against Executor and runs unchanged on
// the node itself (Local rooted at "/"), against a copied tree in tests (Local
// rooted at a temporary directory) and on remote nodes (SSH). Every error
// names the node and the path so that an operator reading it knows where to
// look; no error ever carries file contents, because the files we handle are
// CA keys.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
)

// Executor is the seam for every side effect on a node. Paths are absolute
// node paths ("/etc/kubernetes/pki/ca.crt"); a path with a ".." element is
// refused so that a bad input can never reach outside the tree we meant.
type Executor interface {
	// Name names the node in errors and progress output ("cp-1").
	Name() string

	// ReadFile returns the whole file. A missing file gives an error that
	// matches fs.ErrNotExist.
	ReadFile(ctx context.Context, path string) ([]byte, error)

	// WriteFile replaces path atomically: the data goes to a dot-prefixed
	// temporary file in the same directory (the kubelet ignores dot files in
	// its manifest directory), which is chmod-ed to exactly mode whatever the
	// umask, fsynced, renamed over path, after which the directory is
	// fsynced. Any failure before the rename leaves the old file intact and
	// removes the temporary file. The owner of a replaced file is kept.
	WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error

	// Stat follows symbolic links. A missing path is not an error: it
	// returns FileInfo{Exists: false}, because "is it there?" is the
	// question most checks ask.
	Stat(ctx context.Context, path string) (FileInfo, error)

	// ReadDir lists dir sorted by name, without following links, the way a
	// kubelet scanning its manifest directory sees it.
	ReadDir(ctx context.Context, dir string) ([]DirEntry, error)

	// MkdirAll creates path and any missing parents with exactly mode
	// (0700 for key directories), whatever the umask. Directories that
	// already exist are left as they are.
	MkdirAll(ctx context.Context, path string, mode fs.FileMode) error

	// Remove removes a file or an empty directory. A path that is already
	// gone is not an error, so that undo steps can be rerun.
	Remove(ctx context.Context, path string) error

	// Run runs argv (no shell on our side; quoted for the remote shell by
	// SSH) with stdin, which may be nil and must reach EOF: both
	// implementations copy it to the end before they report the exit. A
	// non-zero exit returns the full Result together with an error that
	// matches *ExitError. Cancelling ctx returns at once; over SSH the
	// remote command may run on, since OpenSSH often ignores signals.
	Run(ctx context.Context, argv []string, stdin io.Reader) (Result, error)

	// Close releases the connection, if any.
	Close() error
}

// FileInfo is what the rotation checks need to know about a path.
type FileInfo struct {
	Exists  bool
	Size    int64
	Mode    fs.FileMode // type bits and permissions, as in io/fs
	ModTime time.Time
}

// DirEntry is one name in a directory listing.
type DirEntry struct {
	Name string
	Mode fs.FileMode // of the entry itself, links not followed
}

// Result is what a command left behind.
type Result struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// Error says which node and which path an operation failed on. Op is a verb
// ("read", "write", "run", "connect"); Path is the file, or argv[0] for run.
type Error struct {
	Node string
	Op   string
	Path string
	Err  error
}

func (e *Error) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("node %s: %s: %v", e.Node, e.Op, e.Err)
	}
	return fmt.Sprintf("node %s: %s %s: %v", e.Node, e.Op, e.Path, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ExitError reports a command that ran and exited non-zero. Stderr is kept
// short in the message; the full output is in the Result returned with it.
type ExitError struct {
	Code   int
	Stderr string
}

// maxStderrInError bounds how much of a failing command's stderr goes into
// an error message: enough for the tool's own complaint, not a log dump.
const maxStderrInError = 512

func newExitError(code int, stderr []byte) *ExitError {
	s := strings.TrimSpace(string(stderr))
	if len(s) > maxStderrInError {
		s = s[:maxStderrInError] + "..."
	}
	return &ExitError{Code: code, Stderr: s}
}

func (e *ExitError) Error() string {
	if e.Stderr == "" {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return fmt.Sprintf("exit status %d: %s", e.Code, e.Stderr)
}

// ErrBadPath is returned for a path that is relative, contains a NUL byte or
// has a ".." element, before anything is touched on the node.
var ErrBadPath = errors.New(`path must be absolute, without ".." elements`)

// checkPath refuses relative paths and ".." elements before anything is
// touched. Refusing every "..", not only the ones that would escape, keeps
// the rule simple enough to state in an error message.
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		return ErrBadPath
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return ErrBadPath
		}
	}
	return nil
}
