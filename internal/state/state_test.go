package state

import (
	"errors"
	"fmt"
	"io/fs"
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
	if err := d.SaveCA(model.ClusterCA, ca.CertPEM(), ca.Key); err != nil {
		t.Fatalf("SaveCA: %v", err)
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
		". 0700", "backup 0700", "ca 0700", "ca/cluster.crt 0600", "ca/cluster.key 0600",
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
	if _, err := d.LoadCA(model.ClusterCA); !errors.Is(err, ErrNoCA) {
		t.Errorf("LoadCA = %v, want ErrNoCA", err)
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

func TestSaveAndLoadCA(t *testing.T) {
	withUmask(t)
	d, err := Open(rootDir(t), "c1")
	if err != nil {
		t.Fatal(err)
	}
	ca, other := newCA(t), newCA(t)
	if err := d.SaveCA(model.FrontProxyCA, ca.CertPEM(), ca.Key); err != nil {
		t.Fatal(err)
	}
	got, err := d.LoadCA(model.FrontProxyCA)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.Equal(ca.Cert) || !pki.KeyMatchesCertificate(got.Key, ca.Cert) {
		t.Error("LoadCA returned another CA")
	}

	keyPEM, err := other.Key.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	err = d.SaveCA(model.ClusterCA, ca.CertPEM(), other.Key)
	if err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("SaveCA with another CA's key = %v", err)
	}
	if err := d.SaveCA(model.ServiceAccountCA, ca.CertPEM(), ca.Key); err == nil {
		t.Error("SaveCA accepted a service-account 'ca'")
	}

	// A key file someone loosened is refused, and its content never
	// appears in the error.
	if err := os.Chmod(d.Join(CADir, "front-proxy.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = d.LoadCA(model.FrontProxyCA)
	var me *ModeError
	if !errors.As(err, &me) {
		t.Fatalf("LoadCA of a 0644 key = %v, want a *ModeError", err)
	}
	// Swap in the other key: mismatch is reported by path.
	if err := os.WriteFile(d.Join(CADir, "front-proxy.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d.Join(CADir, "front-proxy.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = d.LoadCA(model.FrontProxyCA)
	if err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("LoadCA with a swapped key = %v", err)
	}
	for _, e := range []error{err} {
		if strings.Contains(e.Error(), string(keyPEM[30:60])) {
			t.Errorf("key material in error: %v", e)
		}
	}
}
