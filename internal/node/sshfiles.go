package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"math"
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

// Exit statuses of writeScript besides 0 and 1. Each one means the target
// was left as it was and the temporary file removed.
const (
	exitNotWhole = 45 // the data on stdin was short or not the data sent
	exitChanged  = 46 // the target is not what the caller expected
	exitTooLate  = 47 // the write deadline passed before the rename
)

// writeScript: umask 077 keeps the temporary file private while the data
// is written; set -C (noclobber) refuses to reuse an existing name; the
// trap removes the temporary file on any failure before the rename. HUP and
// PIPE are ignored so that a dropped connection cannot kill the script
// before it has cleaned up: it then runs on to its own checks.
//
// A dropped connection or a closed session looks like EOF to cat, so the
// data is checked against the length and sha256 the caller sent ($5, $6)
// before it can go anywhere. Just before the rename the target is checked
// against the caller's expectation ($7 any|absent|sha256, $8 the sha256; a
// target already holding the new data passes too) and the clock against
// the deadline: $9 is in unix seconds, ${10} is the seconds left when the
// caller sent it, counted from the script's start in case the node's clock
// is behind ours. mv would move into a directory found at the target, so
// that is refused.
const writeScript = `set -eu
dst=$1 tmp=$2 mode=$3 dir=$4 size=$5 sum=$6 prev=$7 prevsum=$8 deadline=$9 budget=${10}
start=$(date +%s)
trap 'rm -f -- "$tmp"' EXIT
trap '' HUP PIPE
refuse() { printf '%s\n' "$2" >&2 || :; exit "$1"; }
owner() { set -- $(ls -ldn -- "$1"); printf '%s:%s' "$3" "$4"; }
sum256() { h=$(sha256sum < "$1") && printf '%s' "${h%% *}"; }
umask 077
set -C
cat > "$tmp"
[ "$(stat -c %s -- "$tmp")" = "$size" ] && [ "$(sum256 "$tmp")" = "$sum" ] ||
	refuse 45 "data did not arrive whole"
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
case $prev in
absent)
	if [ -e "$dst" ] || [ -L "$dst" ]; then
		[ -f "$dst" ] && [ ! -L "$dst" ] && [ "$(sum256 "$dst")" = "$sum" ] || refuse 46 "` + changedExists + `"
	fi ;;
sha256)
	if [ -L "$dst" ]; then refuse 46 "` + changedSymlink + `"
	elif [ ! -e "$dst" ]; then refuse 46 "` + changedMissing + `"
	elif [ ! -f "$dst" ]; then refuse 46 "` + changedIrregular + `"
	fi
	h=$(sum256 "$dst")
	[ "$h" = "$prevsum" ] || [ "$h" = "$sum" ] || refuse 46 "` + changedContent + `" ;;
esac
now=$(date +%s)
[ "$now" -lt "$deadline" ] && [ "$now" -lt $((start + budget)) ] ||
	refuse 47 "node time $now, deadline $deadline, started $start with ${budget}s left"
mv -f -- "$tmp" "$dst"
trap - EXIT
if ! sync -- "$dir"; then
	printf '%s\n' "new file is in place but its directory could not be synced, so it may not survive a crash" >&2 || :
	exit 1
fi`

// exitIsDir is batchScript's refusal of a directory in a target's place;
// like its other refusals, it leaves every target as it was.
const exitIsDir = 48

// batchScript is writeScript for several files that must change together.
// $1 is the deadline, $2 the budget (as for writeScript), $3 the number of
// files n; then come seven arguments per file: target, temporary
// file, mode, size, sha256, expectation and expected sha256; then the
// distinct directories to sync. Stdin is the files' data one after the
// other: head -c takes exactly each file's share (GNU head reads no more
// than it was asked for, even from a pipe; a head that did would make the
// next file short, which the check refuses).
//
// The script goes in phases: write and check every temporary file; check
// every target; check the deadline; rename, back to back in the order
// given; sync the directories. Any refusal before the renames leaves every
// target as it was, and the EXIT trap removes each temporary file not yet
// renamed. HUP and PIPE are ignored, as in writeScript, so that a lost
// connection cannot stop the renames once they have begun. A refusal of a
// target (exit 46 or exitIsDir) prints its index (from 1) and the reason.
//
// POSIX sh has no arrays, so the per-file arguments are copied into
// numbered variables (dst_1, tmp_1, ...). The eval text holds only those
// names and argument numbers, never an argument's value.
const batchScript = `set -eu
deadline=$1 budget=$2 n=$3
start=$(date +%s)
shift 3
trap '' HUP PIPE
i=1 k=0
while [ "$i" -le "$n" ]; do
	for v in dst tmp mode size sum prev prevsum; do
		k=$((k + 1))
		eval "${v}_$i=\${$k}"
	done
	i=$((i + 1))
done
shift "$k"
get() { eval "dst=\$dst_$1 tmp=\$tmp_$1 mode=\$mode_$1 size=\$size_$1 sum=\$sum_$1 prev=\$prev_$1 prevsum=\$prevsum_$1"; }
renamed=0
cleanup() {
	j=$((renamed + 1))
	while [ "$j" -le "$n" ]; do
		get "$j"
		rm -f -- "$tmp"
		j=$((j + 1))
	done
}
trap cleanup EXIT
refuse() { printf '%s\n' "$2" >&2 || :; exit "$1"; }
owner() { set -- $(ls -ldn -- "$1"); printf '%s:%s' "$3" "$4"; }
sum256() { h=$(sha256sum < "$1") && printf '%s' "${h%% *}"; }
umask 077
set -C
i=1
while [ "$i" -le "$n" ]; do
	get "$i"
	head -c "$size" > "$tmp"
	[ "$(stat -c %s -- "$tmp")" = "$size" ] && [ "$(sum256 "$tmp")" = "$sum" ] ||
		refuse 45 "data did not arrive whole"
	if [ -f "$dst" ] && [ ! -L "$dst" ]; then
		want=$(owner "$dst")
		[ "$want" = "$(owner "$tmp")" ] || chown "$want" -- "$tmp"
	fi
	chmod "$mode" -- "$tmp"
	sync -- "$tmp"
	i=$((i + 1))
done
i=1
while [ "$i" -le "$n" ]; do
	get "$i"
	[ ! -d "$dst" ] || refuse 48 "$i ` + targetIsDir + `"
	case $prev in
	absent)
		if [ -e "$dst" ] || [ -L "$dst" ]; then
			[ -f "$dst" ] && [ ! -L "$dst" ] && [ "$(sum256 "$dst")" = "$sum" ] || refuse 46 "$i ` + changedExists + `"
		fi ;;
	sha256)
		if [ -L "$dst" ]; then refuse 46 "$i ` + changedSymlink + `"
		elif [ ! -e "$dst" ]; then refuse 46 "$i ` + changedMissing + `"
		elif [ ! -f "$dst" ]; then refuse 46 "$i ` + changedIrregular + `"
		fi
		h=$(sum256 "$dst")
		[ "$h" = "$prevsum" ] || [ "$h" = "$sum" ] || refuse 46 "$i ` + changedContent + `" ;;
	esac
	i=$((i + 1))
done
now=$(date +%s)
[ "$now" -lt "$deadline" ] && [ "$now" -lt $((start + budget)) ] ||
	refuse 47 "node time $now, deadline $deadline, started $start with ${budget}s left"
i=1
while [ "$i" -le "$n" ]; do
	get "$i"
	mv -f -- "$tmp" "$dst" ||
		refuse 1 "rename of target $i failed: the $renamed before it in the batch were replaced, the rest left as they were"
	renamed=$i
	i=$((i + 1))
done
synced=yes
for d do
	sync -- "$d" || synced=no
done
[ "$synced" = yes ] ||
	refuse 1 "new files are in place but a directory could not be synced, so they may not survive a crash"`

// sumScript prints the sha256 and the permission bits (octal) of a file,
// not following a link at the last element for the mode: what a write
// reads back to check that the target holds what it wrote.
const sumScript = `[ -e "$1" ] || [ -L "$1" ] || exit 44
h=$(sha256sum < "$1") || exit 1
m=$(stat -c %a -- "$1") || exit 1
printf '%s %s\n' "${h%% *}" "$m"`

// sumsScript is sumScript for each of "$@", one line each, "missing" for
// a path that is not there.
const sumsScript = `for f do
	if [ -e "$f" ] || [ -L "$f" ]; then
		h=$(sha256sum < "$f") || exit 1
		m=$(stat -c %a -- "$f") || exit 1
		printf '%s %s\n' "${h%% *}" "$m"
	else
		printf 'missing\n'
	fi
done`

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
	res, err := s.exec(ctx, argv, bytes.NewReader(stdin), false)
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
	return s.ReplaceFile(ctx, p, data, mode, Expect{Any: true})
}

// ReplaceFile implements Executor: the write script checks the data and
// the target on the node, then a second session reads the target back.
func (s *SSH) ReplaceFile(ctx context.Context, p string, data []byte, mode fs.FileMode, prev Expect) error {
	if err := checkPath(p); err != nil {
		return s.fail("write", p, err)
	}
	if err := prev.check(); err != nil {
		return s.fail("write", p, err)
	}
	p = path.Clean(p)
	dir, base := path.Split(p)
	tmp := dir + "." + base + ".tmp-" + rand.Text()[:12]
	perm := fmt.Sprintf("%04o", mode.Perm())
	sum := sha256Hex(data)
	deadline, budget := writeDeadline(ctx, time.Now())
	_, err := s.script(ctx, writeScript, data, p, tmp, perm, path.Clean(dir),
		strconv.Itoa(len(data)), sum, prev.kind(), prev.SHA256, deadline, budget)
	var exitErr *ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		return s.fail("write", p, writeExitError(exitErr))
	case ctx.Err() != nil:
		// Cancelled: the script may still run, but it checks the data
		// and the deadline before it renames anything.
		return s.fail("write", p, err)
	default:
		// The session broke: the rename may or may not have happened.
		// The read-back, in a new session, says which.
		if s.readBack(ctx, p, sum, mode.Perm()) == nil {
			return nil
		}
		return s.fail("write", p, err)
	}
	if err := s.readBack(ctx, p, sum, mode.Perm()); err != nil {
		return s.fail("write", p, err)
	}
	return nil
}

// ReplaceFiles implements Executor: one batchScript session writes,
// checks and renames, then one more reads every target back.
func (s *SSH) ReplaceFiles(ctx context.Context, files []FileWrite) error {
	switch len(files) {
	case 0:
		return nil
	case 1:
		f := files[0]
		return s.ReplaceFile(ctx, f.Path, f.Data, f.Mode, f.Prev)
	}
	if i, err := checkBatch(files); err != nil {
		return s.fail("write", files[i].Path, err)
	}
	files = cleanBatch(files)
	all := batchPaths(files)
	deadline, budget := writeDeadline(ctx, time.Now())
	args, stdin, sums := batchArgs(files, deadline, budget)
	_, err := s.script(ctx, batchScript, stdin, args...)
	var exitErr *ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		return s.batchExitError(files, exitErr)
	case ctx.Err() != nil:
		// As in ReplaceFile: the script checks the data and the deadline
		// before it renames anything.
		return s.fail("write", all, err)
	default:
		// The session broke: the renames may or may not have happened,
		// all of them or, if the node crashed meanwhile, some.
		if s.readBackAll(ctx, files, sums) == nil {
			return nil
		}
		return s.fail("write", all, err)
	}
	return s.readBackAll(ctx, files, sums)
}

// batchArgs is batchScript's arguments and stdin for files (checked and
// cleaned), and the sha256 of each file's data.
func batchArgs(files []FileWrite, deadline, budget string) (args []string, stdin []byte, sums []string) {
	args = []string{deadline, budget, strconv.Itoa(len(files))}
	var dirs []string
	seenDir := map[string]bool{}
	data := make([][]byte, len(files))
	sums = make([]string, len(files))
	for i, f := range files {
		dir, base := path.Split(f.Path)
		tmp := dir + "." + base + ".tmp-" + rand.Text()[:12]
		sums[i] = sha256Hex(f.Data)
		data[i] = f.Data
		args = append(args, f.Path, tmp, fmt.Sprintf("%04o", f.Mode.Perm()),
			strconv.Itoa(len(f.Data)), sums[i], f.Prev.kind(), f.Prev.SHA256)
		if dir = path.Clean(dir); !seenDir[dir] {
			seenDir[dir] = true
			dirs = append(dirs, dir)
		}
	}
	return append(args, dirs...), bytes.Join(data, nil), sums
}

// cleanBatch is files with each path path.Clean-ed, as ReplaceFile does.
func cleanBatch(files []FileWrite) []FileWrite {
	out := make([]FileWrite, len(files))
	for i, f := range files {
		f.Path = path.Clean(f.Path)
		out[i] = f
	}
	return out
}

// batchExitError explains batchScript's exit statuses, naming the target
// a refusal is about.
func (s *SSH) batchExitError(files []FileWrite, e *ExitError) error {
	if e.Code == exitChanged || e.Code == exitIsDir {
		idx, why, _ := strings.Cut(e.Stderr, " ")
		if i, err := strconv.Atoi(idx); err == nil && i >= 1 && i <= len(files) {
			if e.Code == exitChanged {
				return s.fail("write", files[i-1].Path, errChanged(why))
			}
			return s.fail("write", files[i-1].Path, errors.New(why))
		}
	}
	switch e.Code {
	case exitNotWhole:
		return s.fail("write", batchPaths(files), errBatchNotWhole)
	case exitTooLate:
		return s.fail("write", batchPaths(files), fmt.Errorf("the write deadline passed before the renames, so every target "+
			"was left as it was (%s; a deadline still ahead here means the node's clock is fast)", e.Stderr))
	}
	return s.fail("write", batchPaths(files), writeExitError(e))
}

// errBatchNotWhole is errNotWhole for a batch.
var errBatchNotWhole = errors.New("the data did not arrive whole (connection lost or cancelled?), so every target was left as it was")

// readBackAll checks, in one session, that every target holds the data
// whose sha256 is in sums, with its mode. The error names the first
// target that does not, or the whole batch.
func (s *SSH) readBackAll(ctx context.Context, files []FileWrite, sums []string) error {
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	res, err := s.script(ctx, sumsScript, nil, paths...)
	if err != nil {
		return s.fail("write", batchPaths(files), fmt.Errorf("read back after the write: %w", err))
	}
	lines := strings.Split(strings.TrimSuffix(string(res.Stdout), "\n"), "\n")
	if len(lines) != len(files) {
		return s.fail("write", batchPaths(files), fmt.Errorf("read back after the write: unexpected output %q", res.Stdout))
	}
	for i, f := range files {
		if err := parseSum(lines[i], sums[i], f.Mode.Perm()); err != nil {
			return s.fail("write", f.Path, err)
		}
	}
	return nil
}

// writeDeadline is the last moment a write may rename, as the two script
// arguments: unix seconds, and whole seconds left (rounded up) from now.
func writeDeadline(ctx context.Context, now time.Time) (unix, left string) {
	d := now.Add(DefaultWriteTimeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	secs := int64(math.Ceil(d.Sub(now).Seconds()))
	return strconv.FormatInt(d.Unix(), 10), strconv.FormatInt(max(secs, 0), 10)
}

// writeExitError explains the write script's own exit statuses.
func writeExitError(e *ExitError) error {
	switch e.Code {
	case exitNotWhole:
		return errNotWhole
	case exitChanged:
		return errChanged(e.Stderr)
	case exitTooLate:
		return fmt.Errorf("the write deadline passed before the rename, so the target was left as it was "+
			"(%s; a deadline still ahead here means the node's clock is fast)", e.Stderr)
	}
	return e
}

// readBack checks that p holds the data whose sha256 is sum, with perm.
func (s *SSH) readBack(ctx context.Context, p, sum string, perm fs.FileMode) error {
	res, err := s.script(ctx, sumScript, nil, p)
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New("read back after the write: the file is missing")
	}
	if err != nil {
		return fmt.Errorf("read back after the write: %w", err)
	}
	return parseSum(string(res.Stdout), sum, perm)
}

// parseSum checks one line of sumScript's or sumsScript's output against
// the sha256 and mode written.
func parseSum(out, sum string, perm fs.FileMode) error {
	if strings.TrimSpace(out) == "missing" {
		return errors.New("read back after the write: the file is missing")
	}
	fields := strings.Fields(out)
	if len(fields) != 2 {
		return fmt.Errorf("read back after the write: unexpected output %q", out)
	}
	got, err := strconv.ParseUint(fields[1], 8, 32)
	if err != nil {
		return fmt.Errorf("read back after the write: unexpected mode %q", fields[1])
	}
	return checkWritten(fields[0] == sum, fs.FileMode(got), perm)
}

// checkWritten is the verdict of a read-back, the same for both executors.
func checkWritten(sameData bool, gotPerm, perm fs.FileMode) error {
	if !sameData {
		return errors.New("read back after the write: the file does not hold the data written")
	}
	if gotPerm != perm {
		return fmt.Errorf("read back after the write: mode is %04o, want %04o", gotPerm, perm)
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
