package state

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/state/backup"
)

// withUmask runs the test with umask 000, so that any mode left to the
// umask shows up as world-writable. The umask is process-wide: tests that
// use it do not run in parallel.
func withUmask(t *testing.T) {
	t.Helper()
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
}

// rootDir is a temporary root as an operator would have it: private.
// t.TempDir under umask 000 would be world-writable.
func rootDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func modeOf(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// listTree lists every name under dir with its mode, to catch stray
// temporary files and loose modes in one comparison.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, fmt.Sprintf("%s %04o", rel, fi.Mode().Perm()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.GenerateCA(pki.GenerateOptions{Now: time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC), Algorithm: pki.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// newKey makes a backup key outside the state directory.
func newKey(t *testing.T) backup.Key {
	t.Helper()
	k, err := backup.CreateKey(filepath.Join(t.TempDir(), "keys", "backup.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestStateDirModesAndNoTempFiles(t *testing.T) {
	withUmask(t)
	root := filepath.Join(t.TempDir(), "state", "carotate")
	d, err := Open(root, "c0ffee")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	rec := Record{RotationID: NewRotationID(), Phase: "prepare", StartedAt: now, UpdatedAt: now,
		CAs: map[model.CAKind]CAChange{model.ClusterCA: {Old: "aa", New: "bb"}}, ToolVersion: "v0.1.0"}
	for range 3 { // rewrites leave no temporary files behind
		if err := d.SaveRecord(rec); err != nil {
			t.Fatalf("SaveRecord: %v", err)
		}
	}
	ca := newCA(t)
	if err := d.SaveCAs(NewCAs, newKey(t), map[model.CAKind]*pki.CA{model.ClusterCA: ca}); err != nil {
		t.Fatalf("SaveCAs: %v", err)
	}
	j, err := d.OpenJournal(func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Append(Entry{Action: "apply"}); err != nil {
		t.Fatal(err)
	}
	j.Close()

	want := []string{
		". 0700", "backup 0700", "ca 0700", "ca/cluster.crt 0600", "ca/new-cas.enc 0600",
		"journal.jsonl 0600", "record.json 0600",
	}
	if diff := cmp.Diff(want, listTree(t, d.Path())); diff != "" {
		t.Errorf("state directory (-want +got):\n%s", diff)
	}
	for _, p := range []string{root, filepath.Dir(root)} {
		if m := modeOf(t, p); m != 0o700 {
			t.Errorf("%s created with mode %04o, want 0700", p, m)
		}
	}
	got, err := d.LoadRecord()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rec, got); diff != "" {
		t.Errorf("record round trip (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(rec.RotationID, "r-") || len(rec.RotationID) != 18 || NewRotationID() == rec.RotationID {
		t.Errorf("rotation id %q", rec.RotationID)
	}
}

func TestOpenExistingDirectories(t *testing.T) {
	withUmask(t)
	t.Run("loose directory of ours is tightened", func(t *testing.T) {
		root := rootDir(t)
		if err := os.Mkdir(filepath.Join(root, "c1"), 0o755); err != nil {
			t.Fatal(err)
		}
		d, err := Open(root, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if m := modeOf(t, d.Path()); m != 0o700 {
			t.Errorf("mode %04o, want 0700", m)
		}
		if diff := cmp.Diff([]string{d.Path()}, d.Tightened); diff != "" {
			t.Errorf("Tightened (-want +got):\n%s", diff)
		}
	})
	t.Run("symlink refused", func(t *testing.T) {
		root := rootDir(t)
		if err := os.Symlink(t.TempDir(), filepath.Join(root, "c1")); err != nil {
			t.Fatal(err)
		}
		_, err := Open(root, "c1")
		if err == nil || !strings.Contains(err.Error(), "is a symbolic link") {
			t.Errorf("Open = %v, want a symlink refusal", err)
		}
	})
	t.Run("world-writable root without sticky bit refused", func(t *testing.T) {
		root := t.TempDir()
		if err := os.Chmod(root, 0o777); err != nil {
			t.Fatal(err)
		}
		_, err := Open(root, "c1")
		var me *ModeError
		if !errors.As(err, &me) || me.Path != root || !strings.Contains(err.Error(), "others can write to it") {
			t.Errorf("Open = %v, want a *ModeError for the root", err)
		}
	})
	t.Run("sticky shared root is fine", func(t *testing.T) {
		root := t.TempDir()
		if err := os.Chmod(root, 0o777|fs.ModeSticky); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(root, "c1"); err != nil {
			t.Errorf("Open: %v", err)
		}
	})
	t.Run("loose directory of another user refused", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to give a directory to another user")
		}
		root := rootDir(t)
		dir := filepath.Join(root, "c1")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		_, err := Open(root, "c1")
		var me *ModeError
		if !errors.As(err, &me) || me.Owner != 12345 || !strings.Contains(err.Error(), "belongs to another user") {
			t.Errorf("Open = %v, want a *ModeError naming uid 12345", err)
		}
		if m := modeOf(t, dir); m != 0o755 {
			t.Errorf("another user's directory was changed to %04o", m)
		}
	})
	for _, id := range []string{"", "..", ".hidden", "a/b", "-x", strings.Repeat("a", 129)} {
		t.Run("cluster id "+id, func(t *testing.T) {
			if _, err := Open(t.TempDir(), id); err == nil || !strings.Contains(err.Error(), "cluster id") {
				t.Errorf("Open(%q) = %v, want a refusal", id, err)
			}
		})
	}
}

func TestLoadRecordMissing(t *testing.T) {
	d, err := Open(t.TempDir(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.LoadRecord(); !errors.Is(err, ErrNoRecord) {
		t.Errorf("LoadRecord = %v, want ErrNoRecord", err)
	}
	if _, err := d.LoadCAs(NewCAs, newKey(t)); !errors.Is(err, ErrNoCA) {
		t.Errorf("LoadCAs = %v, want ErrNoCA", err)
	}
	if _, err := d.LoadCACert(model.ClusterCA); !errors.Is(err, ErrNoCA) {
		t.Errorf("LoadCACert = %v, want ErrNoCA", err)
	}
}

func TestJournalTornLine(t *testing.T) {
	d, err := Open(t.TempDir(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	j, err := d.OpenJournal(func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	first := Entry{Phase: "trust", Step: "kcm root-ca-file", Target: "cp-1", Action: "applied",
		Files: []FileChange{{Target: "cp-1:/etc/kubernetes/manifests/kube-controller-manager.yaml", Before: "aa", After: "bb"}}}
	if err := j.Append(first); err != nil {
		t.Fatal(err)
	}
	j.Close()
	first.Time = t0

	// A crash in the middle of the next write leaves a prefix of a line.
	path := d.Join(JournalFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	torn := `{"time":"2026-03-14T12:00:01Z","phase":"trust","st`
	if _, err := f.WriteString(torn); err != nil {
		t.Fatal(err)
	}
	f.Close()

	got, err := d.ReadJournal()
	if err != nil {
		t.Fatalf("ReadJournal with a torn last line: %v", err)
	}
	want := JournalContents{Entries: []Entry{first}, Torn: []TornLine{{Line: 2, Bytes: len(torn)}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("torn last line (-want +got):\n%s", diff)
	}

	// The next run terminates the torn line, says so, and appends cleanly.
	j, err = d.OpenJournal(func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	if !j.Repaired {
		t.Error("OpenJournal did not report the repair")
	}
	if err := j.Append(Entry{Action: "apply", Step: "next"}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	got, err = d.ReadJournal()
	if err != nil {
		t.Fatalf("ReadJournal after repair: %v", err)
	}
	var actions []string
	for _, e := range got.Entries {
		actions = append(actions, e.Action)
	}
	if diff := cmp.Diff([]string{"applied", ActionTornRepaired, "apply"}, actions); diff != "" {
		t.Errorf("entries after repair (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]TornLine{{Line: 2, Bytes: len(torn)}}, got.Torn); diff != "" {
		t.Errorf("torn lines after repair (-want +got):\n%s", diff)
	}

	// A damaged line that no crash explains is an error.
	if err := os.WriteFile(path, []byte("{\"action\":\"a\"}\nnot json\n{\"action\":\"b\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = d.ReadJournal()
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Line != 2 {
		t.Errorf("ReadJournal of a damaged journal = %v, want a *CorruptError at line 2", err)
	}
}

func TestSaveAndLoadCAsSealed(t *testing.T) {
	withUmask(t)
	root := rootDir(t)
	d, err := Open(root, "c1")
	if err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	ca, fp, other := newCA(t), newCA(t), newCA(t)
	// What an older carotate left: the new CA key in the clear.
	legacyPEM, err := ca.Key.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.Join(CADir, "cluster.key"), legacyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.SaveCAs(NewCAs, key, map[model.CAKind]*pki.CA{model.ClusterCA: ca, model.FrontProxyCA: fp}); err != nil {
		t.Fatal(err)
	}
	if err := d.SaveCAs(OldCAs, key, map[model.CAKind]*pki.CA{model.ClusterCA: other}); err != nil {
		t.Fatal(err)
	}
	noPlainKeys(t, root)
	want := []string{". 0700", "backup 0700", "ca 0700", "ca/cluster.crt 0600", "ca/front-proxy.crt 0600", "ca/new-cas.enc 0600", "ca/old-cas.enc 0600"}
	if diff := cmp.Diff(want, listTree(t, d.Path())); diff != "" {
		t.Errorf("state directory (-want +got):\n%s", diff)
	}

	got, err := d.LoadCAs(NewCAs, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[model.ClusterCA].Cert.Equal(ca.Cert) || !pki.KeyMatchesCertificate(got[model.ClusterCA].Key, ca.Cert) ||
		!got[model.FrontProxyCA].Cert.Equal(fp.Cert) || !pki.KeyMatchesCertificate(got[model.FrontProxyCA].Key, fp.Cert) {
		t.Error("LoadCAs(new) returned other CAs")
	}
	if c, err := d.LoadNewCA(model.FrontProxyCA, key); err != nil || !c.Cert.Equal(fp.Cert) {
		t.Errorf("LoadNewCA = %v", err)
	}
	if o, err := d.LoadCAs(OldCAs, key); err != nil || len(o) != 1 || !o[model.ClusterCA].Cert.Equal(other.Cert) {
		t.Errorf("LoadCAs(old) = %v", err)
	}
	if c, err := d.LoadCACert(model.ClusterCA); err != nil || !c.Equal(ca.Cert) {
		t.Errorf("LoadCACert = %v", err)
	}
	if c, err := d.LoadCA(model.ClusterCA); err != nil || !c.Cert.Equal(ca.Cert) || !c.Key.IsZero() {
		t.Errorf("deprecated LoadCA = %v, want the certificate only", err)
	}

	if _, err := d.LoadCAs(NewCAs, newKey(t)); !errors.Is(err, backup.ErrWrongKey) {
		t.Errorf("LoadCAs with another key = %v, want backup.ErrWrongKey", err)
	}
	err = d.SaveCAs(NewCAs, key, map[model.CAKind]*pki.CA{model.ClusterCA: {Cert: ca.Cert, Key: other.Key}})
	if err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("SaveCAs with another CA's key = %v", err)
	}
	if err := d.SaveCAs(NewCAs, key, map[model.CAKind]*pki.CA{model.ServiceAccountCA: ca}); err == nil {
		t.Error("SaveCAs accepted a service-account 'ca'")
	}

	// A readable certificate that is not the sealed one was changed by hand.
	if err := os.WriteFile(d.Join(CADir, "cluster.crt"), other.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.LoadCAs(NewCAs, key); err == nil || !strings.Contains(err.Error(), "changed by hand") {
		t.Errorf("LoadCAs with a swapped certificate = %v", err)
	}
	// A sealed file someone loosened is refused.
	if err := os.Chmod(d.Join(OldCAs.File()), 0o644); err != nil {
		t.Fatal(err)
	}
	var me *ModeError
	if _, err := d.LoadCAs(OldCAs, key); !errors.As(err, &me) {
		t.Errorf("LoadCAs of a 0644 file = %v, want a *ModeError", err)
	}
}

// noPlainKeys fails if any file under dir holds a private key in the
// clear.
func noPlainKeys(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		if strings.Contains(string(b), "PRIVATE KEY") {
			t.Errorf("%s holds a private key in the clear", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Errorf("no files under %s", dir)
	}
}

func TestCheckKey(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "keys", "c1.backup-key")
	key, err := backup.CreateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	var rec Record
	rec.RotationID = "r-abc"
	rec.SetBackupKey(keyPath, key)
	d, err := Open(rootDir(t), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SaveRecord(rec); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(d.Join(RecordFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"backupKeyPath": "`+keyPath+`"`) || !strings.Contains(string(raw), `"backupKeyID": "`+key.ID()+`"`) {
		t.Errorf("record does not name the key:\n%s", raw)
	}
	rec, err = d.LoadRecord()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("missing key refused", func(t *testing.T) {
		_, err := backup.LoadKey(filepath.Join(dir, "keys", "lost"))
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(dir, "keys", "lost")) {
			t.Errorf("LoadKey of a missing file = %v", err)
		}
		if err := CheckKey(rec, backup.Key{}); err == nil {
			t.Error("CheckKey accepted no key")
		}
	})
	t.Run("wrong key refused", func(t *testing.T) {
		other := newKey(t)
		err := CheckKey(rec, other)
		var kme *KeyMismatchError
		if !errors.As(err, &kme) {
			t.Fatalf("CheckKey with another key = %v, want a *KeyMismatchError", err)
		}
		for _, s := range []string{key.ID(), other.ID(), keyPath, "--backup-key", "r-abc"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%q does not name %s", err, s)
			}
		}
	})
	t.Run("right key accepted", func(t *testing.T) {
		k, err := backup.LoadKey(rec.BackupKeyPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckKey(rec, k); err != nil {
			t.Errorf("CheckKey with the right key = %v", err)
		}
		if err := CheckKey(Record{RotationID: "r-old"}, k); err != nil {
			t.Errorf("CheckKey of a record naming no key = %v", err)
		}
	})
}

// tornJournal is a journal with one entry and a crash-cut second line.
func tornJournal(t *testing.T) (*Dir, string, string) {
	t.Helper()
	d, err := Open(t.TempDir(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	path := d.Join(JournalFile)
	torn := `{"time":"2026-03-14T12:00:01Z","phase":"trust","st`
	if err := os.WriteFile(path, []byte(`{"time":"2026-03-14T12:00:00Z","action":"applied"}`+"\n"+torn), 0o600); err != nil {
		t.Fatal(err)
	}
	return d, path, torn
}

func actionsOf(c JournalContents) []string {
	var out []string
	for _, e := range c.Entries {
		out = append(out, e.Action)
	}
	return out
}

// TestJournalRepairCrashBetweenWrites: the repair used to terminate the
// torn line and append its repair entry in two writes. A crash between
// them (or during the second) left a journal that neither ReadJournal nor
// later runs could read.
func TestJournalRepairCrashBetweenWrites(t *testing.T) {
	t0 := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	marker := `{"time":"2026-03-14T12:00:02Z","action":"` + ActionTornRepaired + `","det`
	for name, tail := range map[string]string{
		"after the first write":       "\n",
		"during the repair entry":     "\n" + marker,
		"repair entry cut to nothing": "\n" + marker[:1],
	} {
		t.Run(name, func(t *testing.T) {
			d, path, torn := tornJournal(t)
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(tail); err != nil {
				t.Fatal(err)
			}
			f.Close()
			got, err := d.ReadJournal()
			if err != nil {
				t.Fatalf("ReadJournal after a crash %s: %v", name, err)
			}
			if len(got.Entries) != 1 || len(got.Torn) == 0 || got.Torn[0] != (TornLine{Line: 2, Bytes: len(torn)}) {
				t.Errorf("ReadJournal = %+v", got)
			}
			j, err := d.OpenJournal(func() time.Time { return t0 })
			if err != nil {
				t.Fatal(err)
			}
			if !j.Repaired {
				t.Error("OpenJournal did not repair")
			}
			if err := j.Append(Entry{Action: "apply"}); err != nil {
				t.Fatal(err)
			}
			j.Close()
			got, err = d.ReadJournal()
			if err != nil {
				t.Fatalf("ReadJournal after the next run: %v", err)
			}
			if a := actionsOf(got); a[0] != "applied" || a[len(a)-1] != "apply" || len(got.Torn) != len(a)-2 || got.Torn[0].Line != 2 {
				t.Errorf("after the next run: actions %v, torn %v", a, got.Torn)
			}
		})
	}
}

// TestJournalRepairIsOneAtomicStep: the repair replaces the journal by a
// rename, never writing into the file it found, so a crash at any point
// leaves either the old journal or the repaired one, both readable.
func TestJournalRepairIsOneAtomicStep(t *testing.T) {
	d, path, _ := tornJournal(t)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old, err := os.Open(path) // the file as the crash left it
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	j, err := d.OpenJournal(nil)
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	fi, err := old.Stat()
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]byte, fi.Size())
	if _, err := old.ReadAt(seen, 0); err != nil {
		t.Fatal(err)
	}
	if string(seen) != string(before) {
		t.Errorf("the repair wrote into the journal in place: %q became %q", before, seen)
	}
	if got, err := d.ReadJournal(); err != nil || len(got.Torn) != 1 {
		t.Errorf("repaired journal: %+v, %v", got, err)
	}
	if diff := cmp.Diff([]string{". 0700", "backup 0700", "ca 0700", "journal.jsonl 0600"}, listTree(t, d.Path())); diff != "" {
		t.Errorf("state directory (-want +got):\n%s", diff)
	}
}

// A read-only command's directory: missing, it is not created, reads as
// empty and refuses writes; present, it is the same as Open's.
func TestOpenIfExistsCreatesNothing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "state")
	d, err := OpenIfExists(root, "cluster-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenIfExists created %s (%v)", root, err)
	}
	if d.Created() {
		t.Error("Created() on a directory that does not exist")
	}
	if _, err := d.LoadRecord(); !errors.Is(err, ErrNoRecord) {
		t.Errorf("LoadRecord: %v, want ErrNoRecord", err)
	}
	if jc, err := d.ReadJournal(); err != nil || len(jc.Entries) != 0 {
		t.Errorf("ReadJournal of a directory that does not exist: %d entries, %v", len(jc.Entries), err)
	}
	if err := d.SaveRecord(Record{RotationID: "r-1"}); !errors.Is(err, ErrNotCreated) {
		t.Errorf("SaveRecord: %v, want ErrNotCreated", err)
	}
	if _, err := d.OpenJournal(nil); !errors.Is(err, ErrNotCreated) {
		t.Errorf("OpenJournal: %v, want ErrNotCreated", err)
	}
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused write created %s (%v)", root, err)
	}

	if _, err := Open(root, "cluster-1"); err != nil {
		t.Fatal(err)
	}
	d, err = OpenIfExists(root, "cluster-1")
	if err != nil || !d.Created() {
		t.Fatalf("OpenIfExists of an existing directory: %v, created %v", err, d != nil && d.Created())
	}
	if err := d.SaveRecord(Record{RotationID: "r-1"}); err != nil {
		t.Errorf("SaveRecord in an existing directory: %v", err)
	}
	if _, err := OpenIfExists(root, "../x"); err == nil {
		t.Error("OpenIfExists accepted a cluster id that is a path")
	}
}

// TestSaveAndLoadCAsKeepsTheChain: an imported intermediate comes back
// with its chain, so that a resumed run has it too.
func TestSaveAndLoadCAsKeepsTheChain(t *testing.T) {
	withUmask(t)
	d, err := Open(rootDir(t), "c1")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	root := newCA(t)
	k, err := pki.SystemKeyGenerator{}.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "issuing ca"},
		NotBefore: now, NotAfter: now.Add(5 * 365 * 24 * time.Hour), BasicConstraintsValid: true, IsCA: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}, root.Cert, k.Public(), root.Key.Signer())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	inter := &pki.CA{Cert: cert, Key: k, Chain: []*x509.Certificate{root.Cert}}
	key := newKey(t)
	if err := d.SaveCAs(NewCAs, key, map[model.CAKind]*pki.CA{model.ClusterCA: inter}); err != nil {
		t.Fatal(err)
	}
	got, err := d.LoadNewCA(model.ClusterCA, key)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.Equal(inter.Cert) || len(got.Chain) != 1 || !got.Chain[0].Equal(root.Cert) {
		t.Errorf("LoadNewCA = %s with a chain of %d, want the intermediate and its root", got.Cert.Subject, len(got.Chain))
	}
	if readable, _ := os.ReadFile(d.Join(CADir, "cluster.crt")); string(readable) != string(inter.CertPEM()) {
		t.Error("ca/cluster.crt is not the intermediate's certificate alone")
	}
}
