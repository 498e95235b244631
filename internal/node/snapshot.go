package node

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"syscall"
	"time"
)

// MaxSnapshot bounds what TakeSnapshot reads from a node, in KiB as du
// counts it; a larger tree is read file by file instead. A variable so
// that a test can lower it.
var MaxSnapshot = 64 << 10

// ErrNoSnapshot: TakeSnapshot did not take one (the executor reads files
// cheaply itself, or the node could not give a consistent one); use the
// executor as it is.
var ErrNoSnapshot = errors.New("no snapshot")

// exitTooLarge is snapshotScript's exit status for trees over MaxSnapshot.
const exitTooLarge = 47

// snapshotScript archives those of its arguments that exist (absolute
// paths, given without their leading slash to tar, from /), after checking
// their size, and prints nothing at all when none exists. tar's exit status
// is kept: 1 means a file changed while it was read.
const snapshotScript = `n=$#
for r in "$@"; do
	if [ -e "$r" ] || [ -L "$r" ]; then set -- "$@" "${r#/}"; fi
done
shift $n
[ $# -gt 0 ] || exit 0
cd / || exit 1
kb=$(du -sk -- "$@" | awk '{s += $1} END {print s}') || exit 1
[ "$kb" -le ` + "%d" + ` ] || exit ` + "%d" + `
exec tar -cf - --numeric-owner -- "$@"`

// Snapshot is a read-only view of directory trees of a node, taken in one
// command: what a gather reads, in one round trip rather than one per file.
// ReadFile, Stat and ReadDir of a path under one of its roots answer from
// it, as the node would have when it was taken, following links the way
// the node would; a path outside the roots, or a link that leads out of
// them, goes to the node. Run, Dial, Name and Close are the node's. Writes
// are refused: the view would go stale.
type Snapshot struct {
	Executor
	roots   []string
	entries map[string]*snapEntry // by clean absolute path
}

type snapEntry struct {
	mode    fs.FileMode
	size    int64
	modTime time.Time
	link    string // a symbolic link's target
	data    []byte
}

// TakeSnapshot reads roots (absolute paths) from ex in one command. It
// takes one only over SSH, where each read is a round trip; for any other
// executor, and when the node cannot give a whole one (a file changed
// while it was read, the trees are larger than MaxSnapshot, tar is
// missing), it returns ErrNoSnapshot, with the reason.
func TakeSnapshot(ctx context.Context, ex Executor, roots []string) (*Snapshot, error) {
	if _, ok := ex.(*SSH); !ok {
		return nil, ErrNoSnapshot
	}
	return takeSnapshot(ctx, ex, roots)
}

func takeSnapshot(ctx context.Context, ex Executor, roots []string) (*Snapshot, error) {
	s := &Snapshot{Executor: ex, entries: map[string]*snapEntry{}}
	for _, r := range roots {
		if err := checkPath(r); err != nil {
			return nil, err
		}
		s.roots = append(s.roots, path.Clean(r))
	}
	script := fmt.Sprintf(snapshotScript, MaxSnapshot, exitTooLarge)
	res, err := ex.Run(ctx, append([]string{"sh", "-c", script, "sh"}, s.roots...), nil)
	if err != nil {
		var exitErr *ExitError
		if errors.As(err, &exitErr) && exitErr.Code == exitTooLarge {
			return nil, fmt.Errorf("%w: %s hold more than %d KiB", ErrNoSnapshot, strings.Join(s.roots, ", "), MaxSnapshot)
		}
		return nil, fmt.Errorf("%w: %w", ErrNoSnapshot, err)
	}
	if len(res.Stdout) == 0 {
		return s, nil // none of the roots exists
	}
	tr := tar.NewReader(bytes.NewReader(res.Stdout))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: read the archive: %w", ErrNoSnapshot, err)
		}
		p := path.Clean("/" + hdr.Name)
		e := &snapEntry{mode: hdr.FileInfo().Mode(), size: hdr.Size, modTime: hdr.ModTime}
		switch hdr.Typeflag {
		case tar.TypeReg:
			if e.data, err = io.ReadAll(tr); err != nil {
				return nil, fmt.Errorf("%w: read %s from the archive: %w", ErrNoSnapshot, p, err)
			}
		case tar.TypeSymlink:
			e.link = hdr.Linkname
		case tar.TypeLink: // a hard link to a file archived before
			first, ok := s.entries[path.Clean("/"+hdr.Linkname)]
			if !ok {
				return nil, fmt.Errorf("%w: %s links to %s, which the archive does not hold", ErrNoSnapshot, p, hdr.Linkname)
			}
			copied := *first
			e = &copied
		case tar.TypeDir:
		default:
			e = nil // a device, fifo or socket: the node answers for it
		}
		if e != nil {
			s.entries[p] = e
		}
	}
	return s, nil
}

// root is the root that holds p, "" for none.
func (s *Snapshot) root(p string) string {
	for _, r := range s.roots {
		if p == r || strings.HasPrefix(p, r+"/") || r == "/" {
			return r
		}
	}
	return ""
}

// maxLinks is how many symbolic links a lookup follows, as Linux's
// MAXSYMLINKS.
const maxLinks = 40

// lookup finds p as the node would, following every link on the way and,
// with follow, the last one too, and returns the entry and the path it is
// at once the links are followed. inside is false when the answer is not
// in the snapshot: a path outside the roots, a link out of them, a special
// file, or too many links. Inside, a nil entry means there is none.
func (s *Snapshot) lookup(p string, follow bool) (at string, e *snapEntry, inside bool) {
	p = path.Clean(p)
	for range maxLinks {
		r := s.root(p)
		if r == "" {
			return p, nil, false
		}
		rest := strings.TrimPrefix(strings.TrimPrefix(p, r), "/")
		parts := []string{}
		if rest != "" {
			parts = strings.Split(rest, "/")
		}
		cur, relinked := r, false
		for i := -1; i < len(parts); i++ {
			if i >= 0 {
				cur = path.Join(cur, parts[i])
			}
			e, ok := s.entries[cur]
			if !ok {
				return cur, nil, true
			}
			last := i == len(parts)-1
			if e.mode&fs.ModeSymlink == 0 || (last && !follow) {
				if last {
					return cur, e, true
				}
				continue
			}
			target := e.link
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(cur), target)
			}
			p = path.Join(append([]string{target}, parts[i+1:]...)...)
			relinked = true
			break
		}
		if !relinked {
			return cur, s.entries[cur], true
		}
	}
	return p, nil, false
}

func (s *Snapshot) fail(op, p string, err error) error {
	return &Error{Node: s.Name(), Op: op, Path: p, Err: err}
}

// ReadFile implements Executor.
func (s *Snapshot) ReadFile(ctx context.Context, p string) ([]byte, error) {
	if err := checkPath(p); err != nil {
		return nil, s.fail("read", p, err)
	}
	_, e, inside := s.lookup(p, true)
	switch {
	case !inside:
		return s.Executor.ReadFile(ctx, p)
	case e == nil:
		return nil, s.fail("read", p, syscall.ENOENT)
	case e.mode.IsDir():
		return nil, s.fail("read", p, syscall.EISDIR)
	}
	return bytes.Clone(e.data), nil
}

// Stat implements Executor. A directory's is the node's: an archive does
// not say a directory's size.
func (s *Snapshot) Stat(ctx context.Context, p string) (FileInfo, error) {
	if err := checkPath(p); err != nil {
		return FileInfo{}, s.fail("stat", p, err)
	}
	_, e, inside := s.lookup(p, true)
	switch {
	case !inside || (e != nil && e.mode.IsDir()):
		return s.Executor.Stat(ctx, p)
	case e == nil:
		return FileInfo{}, nil
	}
	return FileInfo{Exists: true, Size: e.size, Mode: e.mode, ModTime: e.modTime}, nil
}

// ReadDir implements Executor.
func (s *Snapshot) ReadDir(ctx context.Context, dir string) ([]DirEntry, error) {
	if err := checkPath(dir); err != nil {
		return nil, s.fail("list", dir, err)
	}
	at, e, inside := s.lookup(dir, true)
	switch {
	case !inside:
		return s.Executor.ReadDir(ctx, dir)
	case e == nil:
		return nil, s.fail("list", dir, syscall.ENOENT)
	case !e.mode.IsDir():
		return nil, s.fail("list", dir, syscall.ENOTDIR)
	}
	// The entries under the directory the lookup reached, which a link
	// may have moved away from dir.
	var out []DirEntry
	for p, x := range s.entries {
		if p != at && path.Dir(p) == at {
			out = append(out, DirEntry{Name: path.Base(p), Mode: x.mode})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

var errReadOnly = errors.New("a snapshot is read-only")

// WriteFile implements Executor: refused.
func (s *Snapshot) WriteFile(_ context.Context, p string, _ []byte, _ fs.FileMode) error {
	return s.fail("write", p, errReadOnly)
}

// ReplaceFile implements Executor: refused.
func (s *Snapshot) ReplaceFile(_ context.Context, p string, _ []byte, _ fs.FileMode, _ Expect) error {
	return s.fail("write", p, errReadOnly)
}

// ReplaceFiles implements Executor: refused.
func (s *Snapshot) ReplaceFiles(_ context.Context, files []FileWrite) error {
	return s.fail("write", batchPaths(files), errReadOnly)
}

// MkdirAll implements Executor: refused.
func (s *Snapshot) MkdirAll(_ context.Context, p string, _ fs.FileMode) error {
	return s.fail("mkdir", p, errReadOnly)
}

// Remove implements Executor: refused.
func (s *Snapshot) Remove(_ context.Context, p string) error {
	return s.fail("remove", p, errReadOnly)
}
