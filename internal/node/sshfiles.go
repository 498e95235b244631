package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// exitMissing is the exit status our scripts use for "no such file", so
// that a missing file over SSH matches fs.ErrNotExist as it does locally.
const exitMissing = 44

// The scripts below are POSIX sh and take their inputs as positional
// parameters ("$1"), never spliced into the script text, so a path cannot
// change what the script does. File data only ever travels on stdin.

const readScript = `[ -e "$1" ] || exit 44
exec cat -- "$1"`

// statScript prints size, raw st_mode in hex and mtime in seconds.
const statScript = `[ -e "$1" ] || exit 44
exec stat -L -c '%s %f %Y' -- "$1"`

// listScript prints "<st_mode hex> <name>" NUL-terminated per entry, links
// not followed; NUL because a file name may contain a newline.
const listScript = `[ -e "$1" ] || exit 44
cd -- "$1" || exit 1
for f in * .[!.]* ..?*; do
	[ -e "$f" ] || [ -L "$f" ] || continue
	m=$(stat -c %f -- "$f") || exit 1
	printf '%s %s\0' "$m" "$f"
done`

// writeScript: umask 077 keeps the temporary file private while the data
// is written; set -C (noclobber) refuses to reuse an existing name; the
// trap removes the temporary file on any failure before the rename. mv
// would move into a directory found at the target, so that is refused.
const writeScript = `set -eu
dst=$1 tmp=$2 mode=$3 dir=$4
trap 'rm -f -- "$tmp"' EXIT
owner() { set -- $(ls -ldn -- "$1"); printf '%s:%s' "$3" "$4"; }
umask 077
set -C
cat > "$tmp"
if [ -f "$dst" ] && [ ! -L "$dst" ]; then
	want=$(owner "$dst")
	[ "$want" = "$(owner "$tmp")" ] || chown "$want" -- "$tmp"
fi
chmod "$mode" -- "$tmp"
sync -- "$tmp"
if [ -d "$dst" ]; then
	printf '%s\n' "target exists and is a directory" >&2
	exit 1
fi
mv -f -- "$tmp" "$dst"
trap - EXIT
if ! sync -- "$dir"; then
	printf '%s\n' "new file is in place but its directory could not be synced, so it may not survive a crash" >&2
	exit 1
fi`

// mkdirScript creates each missing directory of "$@" with mode "$1";
// mkdir -m sets the mode exactly, without the umask.
const mkdirScript = `mode=$1
shift
for d do
	[ -d "$d" ] && continue
	if [ -e "$d" ] || [ -L "$d" ]; then
		printf '%s exists and is not a directory\n' "$d" >&2
		exit 1
	fi
	mkdir -m "$mode" -- "$d" || [ -d "$d" ] || exit 1
	p=${d%/*}
	sync -- "${p:-/}" || exit 1
done`

const removeScript = `if [ -d "$1" ] && [ ! -L "$1" ]; then
	rmdir -- "$1" || exit 1
elif [ -e "$1" ] || [ -L "$1" ]; then
	rm -f -- "$1" || exit 1
else
	exit 0
fi
exec sync -- "$2"`

// script runs one of the scripts above with args and stdin and maps our
// "missing" exit status to fs.ErrNotExist.
func (s *SSH) script(ctx context.Context, script string, stdin []byte, args ...string) (Result, error) {
	argv := append([]string{"sh", "-c", script, "sh"}, args...)
	res, err := s.exec(ctx, argv, bytes.NewReader(stdin))
	var exitErr *ExitError
	if errors.As(err, &exitErr) && exitErr.Code == exitMissing {
		return res, syscall.ENOENT
	}
	return res, err
}

// ReadFile implements Executor.
func (s *SSH) ReadFile(ctx context.Context, p string) ([]byte, error) {
	if err := checkPath(p); err != nil {
		return nil, s.fail("read", p, err)
	}
	res, err := s.script(ctx, readScript, nil, p)
	if err != nil {
		return nil, s.fail("read", p, err)
	}
	return res.Stdout, nil
}

// WriteFile implements Executor.
func (s *SSH) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode) error {
	if err := checkPath(p); err != nil {
		return s.fail("write", p, err)
	}
	p = path.Clean(p)
	dir, base := path.Split(p)
	tmp := dir + "." + base + ".tmp-" + rand.Text()[:12]
	perm := fmt.Sprintf("%04o", mode.Perm())
	if _, err := s.script(ctx, writeScript, data, p, tmp, perm, path.Clean(dir)); err != nil {
		return s.fail("write", p, err)
	}
	return nil
}

// Stat implements Executor. Modification times have second precision.
func (s *SSH) Stat(ctx context.Context, p string) (FileInfo, error) {
	if err := checkPath(p); err != nil {
		return FileInfo{}, s.fail("stat", p, err)
	}
	res, err := s.script(ctx, statScript, nil, p)
	if errors.Is(err, fs.ErrNotExist) {
		return FileInfo{}, nil
	}
	if err != nil {
		return FileInfo{}, s.fail("stat", p, err)
	}
	fi, err := parseStat(string(res.Stdout))
	if err != nil {
		return FileInfo{}, s.fail("stat", p, err)
	}
	return fi, nil
}

func parseStat(out string) (FileInfo, error) {
	fields := strings.Fields(out)
	if len(fields) != 3 {
		return FileInfo{}, fmt.Errorf("unexpected stat output %q", out)
	}
	size, err1 := strconv.ParseInt(fields[0], 10, 64)
	raw, err2 := strconv.ParseUint(fields[1], 16, 32)
	mtime, err3 := strconv.ParseInt(fields[2], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return FileInfo{}, fmt.Errorf("unexpected stat output %q: %w", out, err)
	}
	return FileInfo{Exists: true, Size: size, Mode: fileModeFromUnix(uint32(raw)), ModTime: time.Unix(mtime, 0)}, nil
}

// ReadDir implements Executor.
func (s *SSH) ReadDir(ctx context.Context, dir string) ([]DirEntry, error) {
	if err := checkPath(dir); err != nil {
		return nil, s.fail("list", dir, err)
	}
	res, err := s.script(ctx, listScript, nil, dir)
	if err != nil {
		return nil, s.fail("list", dir, err)
	}
	var out []DirEntry
	for rec := range strings.SplitSeq(string(res.Stdout), "\x00") {
		if rec == "" {
			continue
		}
		hexMode, name, ok := strings.Cut(rec, " ")
		raw, err := strconv.ParseUint(hexMode, 16, 32)
		if !ok || err != nil {
			return nil, s.fail("list", dir, fmt.Errorf("unexpected listing record %q", rec))
		}
		out = append(out, DirEntry{Name: name, Mode: fileModeFromUnix(uint32(raw))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// MkdirAll implements Executor.
func (s *SSH) MkdirAll(ctx context.Context, p string, mode fs.FileMode) error {
	if err := checkPath(p); err != nil {
		return s.fail("mkdir", p, err)
	}
	args := append([]string{fmt.Sprintf("%04o", mode.Perm())}, parents(path.Clean(p))...)
	if _, err := s.script(ctx, mkdirScript, nil, args...); err != nil {
		return s.fail("mkdir", p, err)
	}
	return nil
}

// parents lists "/a", "/a/b", "/a/b/c" for "/a/b/c".
func parents(p string) []string {
	var out []string
	for i := 1; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			out = append(out, p[:i])
		}
	}
	if p == "/" {
		return nil
	}
	return out
}

// Remove implements Executor.
func (s *SSH) Remove(ctx context.Context, p string) error {
	if err := checkPath(p); err != nil {
		return s.fail("remove", p, err)
	}
	p = path.Clean(p)
	if _, err := s.script(ctx, removeScript, nil, p, path.Dir(p)); err != nil {
		return s.fail("remove", p, err)
	}
	return nil
}

// fileModeFromUnix converts a raw st_mode to io/fs bits, the conversion os
// does for local files.
func fileModeFromUnix(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & syscall.S_IFMT {
	case syscall.S_IFDIR:
		mode |= fs.ModeDir
	case syscall.S_IFLNK:
		mode |= fs.ModeSymlink
	case syscall.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		mode |= fs.ModeSocket
	case syscall.S_IFBLK:
		mode |= fs.ModeDevice
	case syscall.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	}
	if m&syscall.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&syscall.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&syscall.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
