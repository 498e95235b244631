package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

// maxSymlinks bounds link resolution the way the kernel's ELOOP does.
const maxSymlinks = 40

// localWaitDelay bounds how long Run waits for a killed command's pipes to
// close, so that a grandchild holding stdout cannot hang the rotation.
const localWaitDelay = 5 * time.Second

// Local is an Executor for the machine carotate runs on. Every node path is
// interpreted under root, so the same code works on a node itself (root "/")
// and in tests against a copied tree.
//
// Symbolic links are resolved by us, as if root were "/": an absolute target
// such as kubelet's /var/lib/kubelet/pki/kubelet-client-current.pem link is
// looked up under root, and ".." in a link target stops at root. A link can
// therefore never lead outside the tree. The resolution and the operation are
// two steps, so a process racing us on the node could still swap a directory
// for a link in between; that needs root on the node, which already owns
// everything we protect.
//
// Run is not rooted: commands see the real filesystem, with root as their
// working directory.
type Local struct {
	name string
	root string
	// syncFile is (*os.File).Sync; tests replace it to make fsync fail.
	syncFile func(*os.File) error
	// rename is os.Rename; tests replace it to see the order of renames.
	rename func(oldpath, newpath string) error
}

var _ Executor = (*Local)(nil)

// NewLocal returns an Executor named name for the tree at root, which must
// be an existing directory.
func NewLocal(name, root string) (*Local, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("node %s: root %s: %w", name, root, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("node %s: root %s: %w", name, root, bare(err))
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("node %s: root %s: %w", name, root, bare(err))
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("node %s: root %s: not a directory", name, root)
	}
	return &Local{name: name, root: real, syncFile: (*os.File).Sync, rename: os.Rename}, nil
}

// Name implements Executor.
func (l *Local) Name() string { return l.name }

// String names the node, so that a Local can be printed in progress lines.
func (l *Local) String() string { return l.name }

// Root is the host directory that node paths are interpreted under.
func (l *Local) Root() string { return l.root }

// Close implements Executor; a Local holds nothing open.
func (l *Local) Close() error { return nil }

func (l *Local) fail(op, path string, err error) error {
	return &Error{Node: l.name, Op: op, Path: path, Err: err}
}

// resolve maps a node path to a host path under root, following symbolic
// links with root as "/". When followLast is false the last element is kept
// as it is, so that writing or removing a link replaces the link itself, as
// rename(2) and unlink(2) do. Elements that do not exist are kept as they
// are; the operation itself reports them or creates them.
func (l *Local) resolve(p string, followLast bool) (string, error) {
	if err := checkPath(p); err != nil {
		return "", err
	}
	var done []string
	pending := strings.Split(p, "/")
	links := 0
	for len(pending) > 0 {
		elem := pending[0]
		pending = pending[1:]
		switch elem {
		case "", ".":
			continue
		case "..": // only from link targets: checkPath refused it in p
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		if len(pending) == 0 && !followLast {
			done = append(done, elem)
			break
		}
		host := filepath.Join(l.root, filepath.Join(done...), elem)
		fi, err := os.Lstat(host)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, elem)
			continue
		}
		links++
		if links > maxSymlinks {
			return "", errors.New("too many levels of symbolic links")
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", bare(err)
		}
		if strings.HasPrefix(target, "/") {
			done = done[:0]
		}
		pending = append(strings.Split(target, "/"), pending...)
	}
	return filepath.Join(l.root, filepath.Join(done...)), nil
}

// ReadFile implements Executor.
func (l *Local) ReadFile(ctx context.Context, p string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, l.fail("read", p, err)
	}
	h, err := l.resolve(p, true)
	if err != nil {
		return nil, l.fail("read", p, err)
	}
	data, err := os.ReadFile(h)
	if err != nil {
		return nil, l.fail("read", p, bare(err))
	}
	return data, nil
}

// WriteFile implements Executor.
func (l *Local) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode) error {
	return l.ReplaceFile(ctx, p, data, mode, Expect{Any: true})
}

// ReplaceFile implements Executor. renameio would fit apart from two
// things: it does not fsync the directory after the rename, and with
// os.Root it puts the temporary file in the root's top directory rather
// than next to the target. The steps are few, so they are spelled out here.
// The data cannot arrive short locally, but the expectation, the deadline
// (ctx, checked just before the rename) and the read-back are as over SSH.
func (l *Local) ReplaceFile(ctx context.Context, p string, data []byte, mode fs.FileMode, prev Expect) error {
	if err := ctx.Err(); err != nil {
		return l.fail("write", p, err)
	}
	h, err := l.resolve(p, false)
	if err != nil {
		return l.fail("write", p, err)
	}
	if err := prev.check(); err != nil {
		return l.fail("write", p, err)
	}
	sum := sha256Hex(data)
	beforeRename := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return targetAsExpected(h, prev, sum)
	}
	if err := l.writeAtomic(h, data, mode.Perm(), beforeRename); err != nil {
		return l.fail("write", p, err)
	}
	if err := readBackLocal(h, sum, mode.Perm()); err != nil {
		return l.fail("write", p, err)
	}
	return nil
}

// targetAsExpected is the write script's check of the target, for Local.
func targetAsExpected(h string, prev Expect, sum string) error {
	fi, err := os.Lstat(h)
	switch {
	case isMissing(err):
		if prev.Any || prev.Absent {
			return nil
		}
		return errChanged(changedMissing)
	case err != nil:
		return bare(err)
	case prev.Any:
		return nil
	case fi.IsDir():
		return errors.New("target exists and is a directory")
	}
	regular := fi.Mode().IsRegular()
	var got string
	if regular {
		if got, err = fileSHA256(h); err != nil {
			return err
		}
	}
	switch {
	case regular && got == sum:
		return nil
	case prev.Absent:
		return errChanged(changedExists)
	case fi.Mode()&fs.ModeSymlink != 0:
		return errChanged(changedSymlink)
	case !regular:
		return errChanged(changedIrregular)
	case got != prev.SHA256:
		return errChanged(changedContent)
	}
	return nil
}

func fileSHA256(h string) (string, error) {
	f, err := os.Open(h)
	if err != nil {
		return "", bare(err)
	}
	defer f.Close()
	hash := sha256.New()
	if _, err := io.Copy(hash, f); err != nil {
		return "", bare(err)
	}
	return hex.EncodeToString(hash.Sum(nil)), nil
}

// readBackLocal checks that h holds the data whose sha256 is sum, with perm.
func readBackLocal(h, sum string, perm fs.FileMode) error {
	fi, err := os.Lstat(h)
	if err != nil {
		return fmt.Errorf("read back after the write: %w", bare(err))
	}
	got := ""
	if fi.Mode().IsRegular() {
		if got, err = fileSHA256(h); err != nil {
			return fmt.Errorf("read back after the write: %w", err)
		}
	}
	return checkWritten(got == sum, fi.Mode().Perm(), perm)
}

// writeAtomic writes data next to h and renames it over h if beforeRename,
// called just before, allows it.
func (l *Local) writeAtomic(h string, data []byte, perm fs.FileMode, beforeRename func() error) error {
	tmp, err := l.writeTemp(h, data, perm)
	if err != nil {
		return err
	}
	if err := beforeRename(); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := l.rename(tmp, h); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("rename temporary file into place: %w", bare(err))
	}
	if err := l.syncDir(filepath.Dir(h)); err != nil {
		return fmt.Errorf("new file is in place but its directory could not be synced, so it may not survive a crash: %w", err)
	}
	return nil
}

// writeTemp writes data to a new temporary file next to h, with perm and
// h's owner, fsynced, and returns its name. On failure nothing is left.
func (l *Local) writeTemp(h string, data []byte, perm fs.FileMode) (string, error) {
	dir, base := filepath.Dir(h), filepath.Base(h)
	// The dot prefix is what keeps the kubelet from starting a static pod
	// from a half-written manifest.
	tmp := filepath.Join(dir, "."+base+".tmp-"+rand.Text()[:12])
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create temporary file: %w", bare(err))
	}
	done := false
	defer func() {
		if !done {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return "", fmt.Errorf("write temporary file: %w", bare(err))
	}
	if err := keepOwner(f, h); err != nil {
		return "", err
	}
	// Explicit, after any chown (which may clear bits): the mode must not
	// depend on the umask.
	if err := f.Chmod(perm); err != nil {
		return "", fmt.Errorf("chmod temporary file: %w", bare(err))
	}
	if err := l.syncFile(f); err != nil {
		return "", fmt.Errorf("fsync temporary file: %w", bare(err))
	}
	done = true
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("close temporary file: %w", bare(err))
	}
	return tmp, nil
}

// ReplaceFiles implements Executor. The renames are back to back in this
// process; the steps around them are ReplaceFile's.
func (l *Local) ReplaceFiles(ctx context.Context, files []FileWrite) error {
	switch len(files) {
	case 0:
		return nil
	case 1:
		f := files[0]
		return l.ReplaceFile(ctx, f.Path, f.Data, f.Mode, f.Prev)
	}
	all := batchPaths(files)
	if err := ctx.Err(); err != nil {
		return l.fail("write", all, err)
	}
	if i, err := checkBatch(files); err != nil {
		return l.fail("write", files[i].Path, err)
	}
	// Two node paths may still be one file once links are followed.
	hosts := make([]string, len(files))
	seen := make(map[string]bool, len(files))
	for i, f := range files {
		h, err := l.resolve(f.Path, false)
		if err != nil {
			return l.fail("write", f.Path, err)
		}
		if seen[h] {
			return l.fail("write", f.Path, errTwice)
		}
		seen[h] = true
		hosts[i] = h
	}
	tmps := make([]string, 0, len(files))
	renamed := 0
	defer func() {
		for _, tmp := range tmps[renamed:] {
			_ = os.Remove(tmp)
		}
	}()
	sums := make([]string, len(files))
	for i, f := range files {
		tmp, err := l.writeTemp(hosts[i], f.Data, f.Mode.Perm())
		if err != nil {
			return l.fail("write", f.Path, err)
		}
		tmps = append(tmps, tmp)
		sums[i] = sha256Hex(f.Data)
	}
	for i, f := range files {
		if err := l.batchTargetAsExpected(f.Path, hosts[i], f.Prev, sums[i]); err != nil {
			return l.fail("write", f.Path, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return l.fail("write", all, err)
	}
	for i, f := range files {
		if err := l.rename(tmps[i], hosts[i]); err != nil {
			return l.fail("write", f.Path, fmt.Errorf("rename temporary file into place: %w; "+
				"the %d before it in the batch were replaced, the rest left as they were", bare(err), renamed))
		}
		renamed++
	}
	var synced []string
	for _, h := range hosts {
		dir := filepath.Dir(h)
		if slices.Contains(synced, dir) {
			continue
		}
		synced = append(synced, dir)
		if err := l.syncDir(dir); err != nil {
			return l.fail("write", all, fmt.Errorf("new files are in place but a directory could not be synced, so they may not survive a crash: %w", err))
		}
	}
	for i, f := range files {
		if err := readBackLocal(hosts[i], sums[i], f.Mode.Perm()); err != nil {
			return l.fail("write", f.Path, err)
		}
	}
	return nil
}

// batchTargetAsExpected is targetAsExpected for the target p (host path
// h), refusing also a directory in its place, or a link to one, whatever
// prev says, as the SSH script does: a rename that failed once others of
// the batch were done would leave the batch half applied.
func (l *Local) batchTargetAsExpected(p, h string, prev Expect, sum string) error {
	followed, err := l.resolve(p, true)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(followed); err == nil && fi.IsDir() {
		return errors.New(targetIsDir)
	}
	return targetAsExpected(h, prev, sum)
}

// keepOwner gives the temporary file the owner of the file it replaces, so
// that a file another user reads keeps working after we rewrite it.
func keepOwner(f *os.File, target string) error {
	old, err := os.Lstat(target)
	if err != nil || !old.Mode().IsRegular() {
		return nil
	}
	want, ok := old.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	cur, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat temporary file: %w", bare(err))
	}
	if got, ok := cur.Sys().(*syscall.Stat_t); ok && got.Uid == want.Uid && got.Gid == want.Gid {
		return nil
	}
	if err := f.Chown(int(want.Uid), int(want.Gid)); err != nil {
		return fmt.Errorf("keep owner %d:%d of the replaced file: %w", want.Uid, want.Gid, bare(err))
	}
	return nil
}

func (l *Local) syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return bare(err)
	}
	defer d.Close()
	if err := l.syncFile(d); err != nil {
		return fmt.Errorf("fsync directory: %w", bare(err))
	}
	return nil
}

// Stat implements Executor.
func (l *Local) Stat(ctx context.Context, p string) (FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return FileInfo{}, l.fail("stat", p, err)
	}
	h, err := l.resolve(p, true)
	if err != nil {
		return FileInfo{}, l.fail("stat", p, err)
	}
	fi, err := os.Stat(h)
	if isMissing(err) {
		return FileInfo{}, nil
	}
	if err != nil {
		return FileInfo{}, l.fail("stat", p, bare(err))
	}
	return FileInfo{Exists: true, Size: fi.Size(), Mode: fi.Mode(), ModTime: fi.ModTime()}, nil
}

// isMissing treats "a parent is not a directory" like "not there", as the
// shell's test -e does, so both executors answer Stat the same way.
func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// ReadDir implements Executor.
func (l *Local) ReadDir(ctx context.Context, dir string) ([]DirEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, l.fail("list", dir, err)
	}
	h, err := l.resolve(dir, true)
	if err != nil {
		return nil, l.fail("list", dir, err)
	}
	entries, err := os.ReadDir(h)
	if err != nil {
		return nil, l.fail("list", dir, bare(err))
	}
	out := make([]DirEntry, 0, len(entries))
	for _, e := range entries {
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed while we listed
		}
		if err != nil {
			return nil, l.fail("list", dir, bare(err))
		}
		out = append(out, DirEntry{Name: e.Name(), Mode: fi.Mode()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// MkdirAll implements Executor.
func (l *Local) MkdirAll(ctx context.Context, p string, mode fs.FileMode) error {
	if err := ctx.Err(); err != nil {
		return l.fail("mkdir", p, err)
	}
	h, err := l.resolve(p, true)
	if err != nil {
		return l.fail("mkdir", p, err)
	}
	rel, err := filepath.Rel(l.root, h)
	if err != nil {
		return l.fail("mkdir", p, err)
	}
	cur := l.root
	for _, elem := range strings.Split(rel, string(filepath.Separator)) {
		if elem == "." {
			continue
		}
		parent := cur
		cur = filepath.Join(cur, elem)
		if err := l.mkdirOne(parent, cur, mode.Perm()); err != nil {
			return l.fail("mkdir", p, err)
		}
	}
	return nil
}

func (l *Local) mkdirOne(parent, dir string, perm fs.FileMode) error {
	err := os.Mkdir(dir, perm)
	if errors.Is(err, fs.ErrExist) {
		fi, err := os.Stat(dir)
		if err != nil {
			return bare(err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", strings.TrimPrefix(dir, l.root))
		}
		return nil
	}
	if err != nil {
		return bare(err)
	}
	if err := os.Chmod(dir, perm); err != nil {
		return bare(err)
	}
	return l.syncDir(parent)
}

// Remove implements Executor.
func (l *Local) Remove(ctx context.Context, p string) error {
	if err := ctx.Err(); err != nil {
		return l.fail("remove", p, err)
	}
	h, err := l.resolve(p, false)
	if err != nil {
		return l.fail("remove", p, err)
	}
	err = os.Remove(h)
	if isMissing(err) {
		return nil
	}
	if err != nil {
		return l.fail("remove", p, bare(err))
	}
	if err := l.syncDir(filepath.Dir(h)); err != nil {
		return l.fail("remove", p, err)
	}
	return nil
}

// Dial implements Executor: this machine is the node.
func (l *Local) Dial(ctx context.Context, address string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, l.fail("dial", address, err)
	}
	return conn, nil
}

// Run implements Executor. argv goes to exec directly; no shell is involved.
func (l *Local) Run(ctx context.Context, argv []string, stdin io.Reader) (Result, error) {
	if len(argv) == 0 {
		return Result{}, l.fail("run", "", errors.New("empty argv"))
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = l.root
	cmd.Stdin = stdin
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = localWaitDelay
	err := cmd.Run()
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	if ctxErr := ctx.Err(); err != nil && ctxErr != nil {
		return res, l.fail("run", argv[0], ctxErr)
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return res, l.fail("run", argv[0], newExitError(res.ExitCode, res.Stderr))
	}
	if err != nil {
		return res, l.fail("run", argv[0], err)
	}
	return res, nil
}

// bare strips the host path that os errors carry: our errors name the node
// path instead, and the host path of a rooted tree would only confuse.
func bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
