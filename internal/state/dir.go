// Package state keeps what a rotation must not lose on the operator's
// machine: one directory per cluster (0700) holding the rotation record, an
// append-only journal of every side effect, the old and new CAs sealed
// with the backup key (the new ones before they go anywhere else), and the
// encrypted backup (package backup). No private key is kept there
// unencrypted.
//
// Every file is written crash-safe (temporary file in the same directory,
// fsync, rename, fsync of the directory) through the same atomic write the
// node executor uses, with its mode set explicitly so the umask never
// decides who can read a CA key.
package state

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"syscall"

	"github.com/carotate/carotate/internal/node"
)

// Modes of everything under the state directory.
const (
	DirMode  fs.FileMode = 0o700
	FileMode fs.FileMode = 0o600
)

// File names inside a cluster's state directory.
const (
	RecordFile  = "record.json"
	JournalFile = "journal.jsonl"
	CADir       = "ca"
	BackupDir   = "backup"
)

// DefaultRoot is where state directories live unless the operator says
// otherwise: $XDG_STATE_HOME/carotate, else ~/.local/state/carotate.
func DefaultRoot() (string, error) {
	if x := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "carotate"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the state directory: %w; pass --state-dir", err)
	}
	return filepath.Join(home, ".local", "state", "carotate"), nil
}

// Dir is one cluster's state directory.
type Dir struct {
	path string
	fs   *node.Local // the atomic writer, rooted at path
	// Tightened lists directories whose mode Open had to tighten to 0700,
	// so the caller can tell the operator.
	Tightened []string
}

// clusterIDPattern keeps the id a single harmless path element.
var clusterIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Open creates (or opens) root/clusterID and its subdirectories, all 0700.
// The caller derives clusterID from something that stays the same across a
// rotation. A directory that already exists with a looser mode is
// tightened if it is ours, and refused if someone else owns it, since they
// could have planted or read what is in it.
func Open(root, clusterID string) (*Dir, error) {
	if !clusterIDPattern.MatchString(clusterID) {
		return nil, fmt.Errorf("state directory: cluster id %q must be letters, digits, '.', '_' or '-', at most 128, not starting with a dot or dash", clusterID)
	}
	if root == "" {
		return nil, errors.New("state directory: no root given")
	}
	if err := ensureRoot(root); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(root, clusterID)
	d := &Dir{path: path}
	for _, p := range []string{path, filepath.Join(path, CADir), filepath.Join(path, BackupDir)} {
		tightened, err := ensurePrivateDir(p)
		if err != nil {
			return nil, fmt.Errorf("state directory: %w", err)
		}
		if tightened {
			d.Tightened = append(d.Tightened, p)
		}
	}
	fsys, err := node.NewLocal("state", path)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", path, err)
	}
	d.fs = fsys
	return d, nil
}

// ErrNotCreated is a write to a directory that OpenIfExists found missing:
// a read-only command creates nothing.
var ErrNotCreated = errors.New("the state directory was not created: this command only reads")

// OpenIfExists is Open for a command that only reads (plan, status): a
// directory that does not exist yet is not created. It then reads as
// empty (no record, no journal, no material), and any write fails with
// ErrNotCreated.
func OpenIfExists(root, clusterID string) (*Dir, error) {
	if !clusterIDPattern.MatchString(clusterID) {
		return Open(root, clusterID) // for its error
	}
	path := filepath.Join(root, clusterID)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return &Dir{path: path}, nil
	}
	return Open(root, clusterID)
}

// Created says whether the directory exists: false for one OpenIfExists
// did not create.
func (d *Dir) Created() bool { return d.fs != nil }

// Path is the directory.
func (d *Dir) Path() string { return d.path }

// Join names a file in the directory.
func (d *Dir) Join(elem ...string) string { return filepath.Join(append([]string{d.path}, elem...)...) }

// ModeError is a state directory or file that others could read or write.
type ModeError struct {
	Path  string
	Mode  fs.FileMode
	Owner int // uid
	Why   string
}

func (e *ModeError) Error() string {
	return fmt.Sprintf("%s has mode %04o and is owned by uid %d: %s", e.Path, e.Mode.Perm(), e.Owner, e.Why)
}

// ensureRoot creates root 0700 if it is missing. An existing root is the
// operator's (it may be a shared directory) and keeps its mode, but one that
// others can write to without the sticky bit is refused: they could swap
// the cluster's directory for their own.
func ensureRoot(root string) error {
	fi, err := os.Stat(root)
	if errors.Is(err, fs.ErrNotExist) {
		return mkdirPrivate(root)
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s exists and is not a directory", root)
	}
	if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		return &ModeError{Path: root, Mode: fi.Mode(), Owner: owner(fi),
			Why: "others can write to it, so they could replace the state kept there; run chmod go-w on it or choose another --state-dir"}
	}
	return nil
}

// ensurePrivateDir makes path a directory only its owner can use, creating
// it (and missing parents) 0700 whatever the umask.
func ensurePrivateDir(path string) (tightened bool, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := mkdirPrivate(path); err != nil {
			return false, err
		}
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return false, fmt.Errorf("%s is a symbolic link; carotate keeps CA keys there and wants a real directory: move it away", path)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("%s exists and is not a directory", path)
	}
	if fi.Mode().Perm() == DirMode {
		return false, nil
	}
	uid := owner(fi)
	if uid != os.Geteuid() {
		if fi.Mode().Perm()&0o077 != 0 {
			return false, &ModeError{Path: path, Mode: fi.Mode(), Owner: uid,
				Why: "it belongs to another user and others can use it, so a CA key kept there is not safe; choose another --state-dir, or have its owner run chmod 700 on it"}
		}
		return false, nil
	}
	if err := os.Chmod(path, DirMode); err != nil {
		return false, fmt.Errorf("tighten %s to 0700: %w", path, err)
	}
	return true, nil
}

func mkdirPrivate(path string) error {
	parent := filepath.Dir(path)
	if _, err := os.Stat(parent); errors.Is(err, fs.ErrNotExist) {
		if err := mkdirPrivate(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(path, DirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	// Mkdir applied the umask; the mode must not depend on it.
	if err := os.Chmod(path, DirMode); err != nil {
		return err
	}
	return syncDir(parent)
}

func owner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return os.Geteuid()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// writeFile writes name (relative to the directory) atomically with mode
// 0600.
func (d *Dir) writeFile(name string, data []byte) error {
	if d.fs == nil {
		return fmt.Errorf("write %s: %w", d.Join(name), ErrNotCreated)
	}
	return d.fs.WriteFile(context.Background(), "/"+filepath.ToSlash(name), data, FileMode)
}
