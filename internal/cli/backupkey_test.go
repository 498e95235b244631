package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carotate/carotate/internal/rotation"
	"github.com/carotate/carotate/internal/state"
	"github.com/carotate/carotate/internal/state/backup"
)

// TestBackupKeyRules: a key is created only for a fresh rotation, never
// inside the state directory, and a rotation in progress accepts only the
// key it was started with. Every refusal names what to pass, and changes
// nothing.
func TestBackupKeyRules(t *testing.T) {
	withKey := func(t *testing.T, dir string) (string, backup.Key) {
		p := filepath.Join(dir, "k")
		k, err := backup.CreateKey(p)
		if err != nil {
			t.Fatal(err)
		}
		return p, k
	}
	type setup struct {
		o     *rotationOptions
		s     *session
		files func() []string
	}
	newSetup := func(t *testing.T, command rotation.Command, fresh bool) setup {
		stateDir, keyDir := t.TempDir(), t.TempDir()
		o := &rotationOptions{IOStreams: IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}, In: strings.NewReader("")}, StateFlags: StateFlags{StateDir: stateDir}}
		s := &session{o: o, cmd: command, clusterID: "uid-1", lc: &rotation.Lifecycle{Fresh: fresh, Record: state.Record{RotationID: "r-test"}}}
		list := func() []string {
			var out []string
			for _, d := range []string{stateDir, keyDir} {
				filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
					if err == nil && !fi.IsDir() {
						out = append(out, p)
					}
					return nil
				})
			}
			return out
		}
		o.BackupKeyFile = filepath.Join(keyDir, "new.key")
		return setup{o: o, s: s, files: list}
	}
	refused := func(t *testing.T, st setup, err error, mention ...string) {
		t.Helper()
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("err = %v, want a refusal", err)
		}
		for _, m := range mention {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("%v\ndoes not mention %q", err, m)
			}
		}
	}

	t.Run("fresh rotate creates the key and records it", func(t *testing.T) {
		st := newSetup(t, rotation.Rotate, true)
		k, err := st.s.backupKey()
		if err != nil {
			t.Fatal(err)
		}
		if st.s.lc.Record.BackupKeyPath != st.o.BackupKeyFile || st.s.lc.Record.BackupKeyID != k.ID() {
			t.Errorf("record %+v does not name %s (id %s)", st.s.lc.Record, st.o.BackupKeyFile, k.ID())
		}
		// Nothing is written until the command is confirmed.
		if f := st.files(); len(f) != 0 {
			t.Errorf("backupKey wrote %v before the command was confirmed", f)
		}
		var err2 error
		if st.s.dir, err2 = state.OpenIfExists(st.o.StateDir, "uid-1"); err2 != nil {
			t.Fatal(err2)
		}
		rotDir, err := state.OpenIfExists(st.s.dir.Path(), "r-test")
		if err != nil {
			t.Fatal(err)
		}
		st.s.rot = &rotation.Rotation{Store: &rotation.Store{Dir: rotDir, Key: k}}
		if err := st.s.createLocal(); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(st.o.BackupKeyFile); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("key file: %v, %v", fi, err)
		}
		if loaded, err := backup.LoadKey(st.o.BackupKeyFile); err != nil || loaded.ID() != k.ID() {
			t.Errorf("the key file holds %v (%v), want the key %s", loaded, err, k.ID())
		}
		if !st.s.dir.Created() || !st.s.rot.Store.Dir.Created() {
			t.Error("createLocal did not create the state directories")
		}
	})
	t.Run("fresh rotate refuses a key path in a shared directory before anything is written", func(t *testing.T) {
		st := newSetup(t, rotation.Rotate, true)
		shared := filepath.Join(t.TempDir(), "shared")
		if err := os.Mkdir(shared, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(shared, 0o777); err != nil {
			t.Fatal(err)
		}
		st.o.BackupKeyFile = filepath.Join(shared, "k")
		_, err := st.s.backupKey()
		if err == nil || !strings.Contains(err.Error(), "chmod go-w") || !strings.Contains(err.Error(), shared) {
			t.Errorf("err = %v, want a refusal naming %s and chmod go-w", err, shared)
		}
		if st.s.newKeyPath != "" {
			t.Errorf("a refused key path is still to be written: %s", st.s.newKeyPath)
		}
	})
	t.Run("fresh plan needs no key and creates none", func(t *testing.T) {
		st := newSetup(t, rotation.Plan, true)
		if _, err := st.s.backupKey(); err != nil {
			t.Fatal(err)
		}
		if f := st.files(); len(f) != 0 {
			t.Errorf("plan created %v", f)
		}
	})
	t.Run("fresh rotate without --backup-key is refused", func(t *testing.T) {
		st := newSetup(t, rotation.Rotate, true)
		st.o.BackupKeyFile = ""
		_, err := st.s.backupKey()
		refused(t, st, err, "--backup-key")
		if f := st.files(); len(f) != 0 {
			t.Errorf("the refusal created %v", f)
		}
	})
	t.Run("a key inside the state directory is refused", func(t *testing.T) {
		st := newSetup(t, rotation.Rotate, true)
		st.o.BackupKeyFile = filepath.Join(st.o.StateDir, "sub", "k")
		_, err := st.s.backupKey()
		refused(t, st, err, st.o.BackupKeyFile, "inside the state directory")
		if f := st.files(); len(f) != 0 {
			t.Errorf("the refusal created %v", f)
		}
	})
	t.Run("a resume finds the key where the record says", func(t *testing.T) {
		st := newSetup(t, rotation.Rotate, false)
		p, k := withKey(t, t.TempDir())
		st.s.lc.Record.SetBackupKey(p, k)
		st.o.BackupKeyFile = ""
		got, err := st.s.backupKey()
		if err != nil || got.ID() != k.ID() {
			t.Fatalf("got %v, %v; want the recorded key %s", got, err, k.ID())
		}
	})
	t.Run("a resume with the key missing is refused, not replaced", func(t *testing.T) {
		st := newSetup(t, rotation.Rollback, false)
		p, k := withKey(t, t.TempDir())
		st.s.lc.Record.SetBackupKey(p, k)
		os.Remove(p)
		st.o.BackupKeyFile = ""
		_, err := st.s.backupKey()
		refused(t, st, err, "r-test", k.ID(), "--backup-key")
		if _, err := os.Stat(p); err == nil {
			t.Errorf("the refusal made a new key at %s", p)
		}
	})
	t.Run("a resume with another key is refused, naming both", func(t *testing.T) {
		st := newSetup(t, rotation.Status, false)
		p, k := withKey(t, t.TempDir())
		st.s.lc.Record.SetBackupKey(p, k)
		other, ok := withKey(t, t.TempDir())
		st.o.BackupKeyFile = other
		_, err := st.s.backupKey()
		refused(t, st, err, k.ID(), ok.ID(), "--backup-key")
	})
	t.Run("a rotation started by an older carotate resumes from the old default", func(t *testing.T) {
		st := newSetup(t, rotation.Rotate, false)
		legacy := legacyKeyFile(st.o.StateDir, "uid-1")
		k, err := backup.CreateKey(legacy)
		if err != nil {
			t.Fatal(err)
		}
		st.o.BackupKeyFile = ""
		got, err := st.s.backupKey()
		if err != nil || got.ID() != k.ID() {
			t.Fatalf("got %v, %v", got, err)
		}
		if !strings.Contains(st.o.ErrOut.(*bytes.Buffer).String(), "Move it out of the state directory") {
			t.Errorf("no advice to move the key: %q", st.o.ErrOut)
		}
	})
}
