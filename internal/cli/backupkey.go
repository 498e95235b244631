package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/carotate/carotate/internal/state"
	"github.com/carotate/carotate/internal/state/backup"
)

// The backup key seals the backup of the originals, the old and new CA
// keys and the reissued certificates. It has no default location: a key
// beside the state directory would be copied, backed up and leaked with
// it, and whoever has both can read every CA key of the cluster. A fresh
// rotation asks where to put it (or takes --backup-key); a resume, a
// rollback, plan or status of a rotation in progress finds it where the
// record says, and refuses any other key, naming the one it expects.

// legacyKeyFile is where carotate before v0.2 kept the key, inside the
// state directory. A rotation it started is still resumed from there.
func legacyKeyFile(stateDir, clusterID string) string {
	return filepath.Join(stateDir, clusterID+".backup-key")
}

// backupKey returns the key of the session's rotation. For a fresh
// rotation that will change the cluster it creates the key, if the file
// does not exist yet, and records its path and id in the record. A plan or
// status of no rotation needs no key: nothing is sealed.
func (s *session) backupKey() (backup.Key, error) {
	o, rec := s.o, &s.lc.Record
	if s.lc.Fresh {
		if !s.cmd.Mutates() {
			return backup.Key{}, nil
		}
		return s.newBackupKey()
	}
	path := o.BackupKeyFile
	if path == "" {
		path = rec.BackupKeyPath
	}
	if path == "" {
		legacy := legacyKeyFile(o.StateDir, s.clusterID)
		if _, err := os.Stat(legacy); err != nil {
			return backup.Key{}, fmt.Errorf("%w: rotation %s's record names no backup key file; pass --backup-key with the key it was started with", ErrRefused, rec.RotationID)
		}
		fmt.Fprintf(o.ErrOut, "Using the backup key %s, where an older carotate kept it. Move it out of the state directory and pass --backup-key from now on.\n", legacy)
		path = legacy
	}
	key, err := backup.LoadKey(path)
	if err != nil {
		return backup.Key{}, fmt.Errorf("%w: rotation %s was started with backup key %s: %w; pass --backup-key with that key", ErrRefused, rec.RotationID, orUnknown(rec.BackupKeyID), err)
	}
	if err := state.CheckKey(*rec, key); err != nil {
		return backup.Key{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if abs, err := filepath.Abs(path); err == nil && abs != rec.BackupKeyPath {
		rec.SetBackupKey(abs, key) // the operator moved it; the next record says where
	}
	return key, nil
}

func (s *session) newBackupKey() (backup.Key, error) {
	o := s.o
	path := o.BackupKeyFile
	if path == "" {
		if o.interactive == nil || !o.interactive() {
			return backup.Key{}, fmt.Errorf("%w: a new rotation needs --backup-key FILE: the key that seals its backup and CA keys, kept apart from the state directory %s (it is created 0600 if missing)", ErrRefused, o.StateDir)
		}
		fmt.Fprintf(o.Out, "This rotation seals its backup and CA keys with a backup key. Where should carotate keep it (a file outside %s, e.g. on removable media)? ", o.StateDir)
		if path = o.readAnswer(); path == "" {
			return backup.Key{}, fmt.Errorf("%w: no backup key file given", ErrRefused)
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return backup.Key{}, fmt.Errorf("--backup-key %s: %w", path, err)
	}
	if within(abs, o.StateDir) {
		return backup.Key{}, fmt.Errorf("%w: --backup-key %s is inside the state directory %s; keep it elsewhere, or a copy of the state directory carries the key to every CA key in it", ErrRefused, abs, o.StateDir)
	}
	key, err := backup.LoadKey(abs)
	if errors.Is(err, fs.ErrNotExist) {
		// Made now, written by createLocal once the command is confirmed;
		// where it goes is checked now, so that a bad path is refused
		// before anything changes.
		if err = backup.CheckNewKeyPath(abs); err == nil {
			key, err = backup.GenerateKey()
			s.newKeyPath = abs
		}
	}
	if err != nil {
		return backup.Key{}, fmt.Errorf("--backup-key: %w", err)
	}
	s.lc.Record.SetBackupKey(abs, key)
	return key, nil
}

func within(p, dir string) bool {
	d, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func orUnknown(s string) string {
	if s == "" {
		return "(id not recorded)"
	}
	return "id " + s
}
