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
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path"
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

	// ReplaceFile is WriteFile made safe against races and broken
	// connections. WriteFile(ctx, p, data, mode) is ReplaceFile(ctx, p,
	// data, mode, Expect{Any: true}).
	//
	// Just before the rename, the target must be what prev says (absent,
	// or a regular file, not a symbolic link, whose content has the
	// SHA256); otherwise nothing is changed, the temporary file is removed
	// and the error matches ErrChanged. A target that already holds
	// exactly data also satisfies prev, so that a write retried after an
	// ambiguous failure (the connection lost just after the rename)
	// converges instead of reporting ErrChanged.
	//
	// The data is checked (length and SHA-256) after it has reached the
	// node and before it can replace anything, so a dropped connection or a
	// cancelled ctx never installs a truncated file. The rename is refused
	// after ctx's deadline, or DefaultWriteTimeout after the call if that
	// is sooner, so that a session held up by a network partition cannot
	// land late over a newer write. After the rename the target is read
	// back: its content and mode must be what was written. When the
	// outcome is unknown because the connection failed, the read-back
	// decides: a target that holds data with mode is a success.
	//
	// On any error the target holds either its old content or, when the
	// error comes after the rename (a failed directory fsync or read-back,
	// or a connection lost just then), the whole new content; never a part
	// of it. The zero Expect is refused.
	ReplaceFile(ctx context.Context, path string, data []byte, mode fs.FileMode, prev Expect) error

	// ReplaceFiles replaces every file of the batch, or none: for files
	// that must change together, such as a CA certificate and its key.
	//
	// It is ReplaceFile for all the files at once, in three steps. First
	// every file's data is written to its temporary file, checked (length
	// and SHA-256), chmod-ed and fsynced. Then every target is checked
	// against its Prev (and refused if it is a directory, or a link to one,
	// whatever Prev says), and the deadline (ReplaceFile's, for the whole
	// batch) against the clock. Only if all of that passed are the
	// temporary files renamed over their targets, back to back in the
	// order given, with no round trip to carotate in between: over SSH the
	// whole batch is one remote script that ignores hangups, so that once
	// the renames have begun, carotate dying or the connection dropping
	// does not stop them. Last, each distinct directory is fsynced and
	// every target read back.
	//
	// If any data did not arrive whole, any target fails its Prev (the
	// error matches ErrChanged and names that target), the deadline passed
	// or anything else fails before the renames, all temporary files are
	// removed and no target is changed. An error that comes after the
	// renames (a failed directory fsync or read-back, a connection lost
	// just then) leaves every target with its whole new content. When the
	// outcome is unknown because the connection failed, the read-back
	// decides: the call succeeds only if every target holds its new data
	// with its mode. On any error each target holds its old content or its
	// whole new content, never a part of it, and a rerun of the same batch
	// converges, since a target already holding its new data satisfies
	// any Prev.
	//
	// What the batch does not survive is the node itself crashing (power
	// lost, kernel panic) between the first rename and the directory
	// fsyncs: then some targets may be new and the rest old, which a rerun
	// repairs. Put first the file whose early
	// change does the least harm. The renames are also not atomic against
	// another writer on the node, no more than ReplaceFile's rename is.
	// One rename could in principle fail after the checks passed (an I/O
	// error); the batch then stops there, with the targets before it new
	// and the rest old, and the error says so.
	//
	// A batch of one is ReplaceFile; an empty batch does nothing. A bad
	// path or Prev, or two files naming the same path, are refused before
	// anything is touched. Errors name the target they are about, or every
	// path of the batch, joined by ", ", when they are about the batch.
	ReplaceFiles(ctx context.Context, files []FileWrite) error

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

	// Dial opens a TCP connection from the node to address (host:port),
	// as a process on the node would: to a component's health port on
	// 127.0.0.1, say. Over SSH it is a direct-tcpip channel, which sshd
	// may refuse (AllowTcpForwarding no): that error matches
	// ErrForwardingRefused, and the caller should find another way.
	Dial(ctx context.Context, address string) (net.Conn, error)

	// Close releases the connection, if any.
	Close() error
}

// ErrForwardingRefused: the node's sshd does not forward connections.
var ErrForwardingRefused = errors.New("the node's sshd refuses to forward connections (AllowTcpForwarding)")

// FileWrite is one file of a ReplaceFiles batch: what ReplaceFile takes.
type FileWrite struct {
	Path string
	Data []byte
	Mode fs.FileMode
	Prev Expect
}

// batchPaths names a whole batch in an error: its paths, joined by ", ".
func batchPaths(files []FileWrite) string {
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	return strings.Join(paths, ", ")
}

// errTwice refuses a batch that names one path twice: which write would
// win would depend on the order, and the second's Prev could never hold.
var errTwice = errors.New("the batch writes this path twice")

// checkBatch refuses a bad path or Prev, or a path named twice (after
// path.Clean), before anything is touched. It returns the index of the
// file at fault.
func checkBatch(files []FileWrite) (int, error) {
	seen := make(map[string]bool, len(files))
	for i, f := range files {
		if err := checkPath(f.Path); err != nil {
			return i, err
		}
		if err := f.Prev.check(); err != nil {
			return i, err
		}
		p := path.Clean(f.Path)
		if seen[p] {
			return i, errTwice
		}
		seen[p] = true
	}
	return 0, nil
}

// DefaultWriteTimeout bounds how late a write may replace its target when
// ctx has no earlier deadline: after it, the rename is refused on the node.
const DefaultWriteTimeout = 2 * time.Minute

// Expect is what a write expects to find at the target just before it
// replaces it: Any (no condition), Absent, or a file whose sha256 is SHA256
// (lowercase hex). Exactly one must be set; the zero Expect is refused, so
// that a forgotten condition cannot silently mean "any".
type Expect struct {
	Any    bool
	Absent bool
	SHA256 string
}

// ExpectContent is the Expect for a target that must still hold data,
// typically what an earlier ReadFile returned.
func ExpectContent(data []byte) Expect { return Expect{SHA256: sha256Hex(data)} }

// ErrChanged matches (errors.Is) a conditional write refused because the
// target no longer held what the caller read. Nothing was changed.
var ErrChanged = errors.New("target no longer holds what was expected, so nothing was written")

// check refuses an Expect that does not say exactly one thing.
func (e Expect) check() error {
	n := 0
	for _, set := range []bool{e.Any, e.Absent, e.SHA256 != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("write expectation must be exactly one of any, absent or a sha256")
	}
	if e.SHA256 != "" && !isSHA256Hex(e.SHA256) {
		return errors.New("expected sha256 must be 64 lowercase hex digits")
	}
	return nil
}

// kind is how an Expect is handed to the write script: "any", "absent"
// or "sha256".
func (e Expect) kind() string {
	switch {
	case e.Any:
		return "any"
	case e.Absent:
		return "absent"
	}
	return "sha256"
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func isSHA256Hex(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Why a conditional write found the target changed; the same words from
// both executors (the SSH write script prints them).
const (
	changedExists    = "it exists"
	changedMissing   = "it is missing"
	changedSymlink   = "it is a symbolic link"
	changedIrregular = "it is not a regular file"
	changedContent   = "its content differs"
)

// targetIsDir is why a write refuses a directory in its target's place.
const targetIsDir = "target exists and is a directory"

func errChanged(why string) error { return fmt.Errorf("%w (%s)", ErrChanged, why) }

// errNotWhole is a write whose data did not reach the node whole.
var errNotWhole = errors.New("the data did not arrive whole (connection lost or cancelled?), so the target was left as it was")

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
