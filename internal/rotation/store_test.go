package rotation

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/state"
	"github.com/carotate/carotate/internal/state/backup"
)

// testStore is a rotation's store as the CLI makes it: the cluster's state
// directory, the rotation's directory inside it, and a backup key kept
// elsewhere.
func testStore(t *testing.T, rotationID string) (*Store, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "state")
	cluster, err := state.Open(root, "c0ffee")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := state.Open(cluster.Path(), rotationID)
	if err != nil {
		t.Fatal(err)
	}
	key, err := backup.CreateKey(filepath.Join(t.TempDir(), "keys", "c0ffee.backup-key"))
	if err != nil {
		t.Fatal(err)
	}
	return &Store{Dir: dir, Key: key}, root
}

func TestStoreKeepsNoPrivateKeyInTheClear(t *testing.T) {
	m, _ := fixture(t)
	s, root := testStore(t, m.RotationID)
	if s.Saved() {
		t.Fatal("Saved before Save")
	}
	if err := s.Save(m, testNow); err != nil {
		t.Fatal(err)
	}
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.Dir.Path(), p)
		files = append(files, rel)
		if strings.Contains(string(b), "PRIVATE KEY") {
			t.Errorf("%s holds a private key in the clear", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"backup/leaves.enc", "backup/originals.enc", "ca/cluster.crt", "ca/front-proxy.crt", "ca/new-cas.enc", "ca/old-cas.enc"}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("files in the state directory (-want +got):\n%s", diff)
	}
	if !s.Saved() {
		t.Fatal("not Saved after Save")
	}

	got, err := s.Load(m.RotationID)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range caKinds(DefaultRoots()) {
		for side, pair := range map[string][2]*pki.CA{"old": {m.Old[k], got.Old[k]}, "new": {m.New[k], got.New[k]}} {
			if !pair[1].Cert.Equal(pair[0].Cert) || !pki.KeyMatchesCertificate(pair[1].Key, pair[0].Cert) {
				t.Errorf("Load: %s %s ca differs", side, k)
			}
		}
	}
	if diff := cmp.Diff(m.Leaves, got.Leaves); diff != "" {
		t.Errorf("Load: leaves (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(m.Originals, got.Originals, cmp.AllowUnexported(fileKey{})); diff != "" {
		t.Errorf("Load: originals (-want +got):\n%s", diff)
	}

	other, err := backup.CreateKey(filepath.Join(t.TempDir(), "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&Store{Dir: s.Dir, Key: other}).Load(m.RotationID); !errors.Is(err, backup.ErrWrongKey) {
		t.Errorf("Load with another key = %v, want backup.ErrWrongKey", err)
	}
}

func TestDurableKeyCopies(t *testing.T) {
	m, _ := fixture(t)
	s, _ := testStore(t, m.RotationID)
	if err := s.Save(m, testNow); err != nil {
		t.Fatal(err)
	}
	all := func(n int) map[string]int {
		return map[string]int{"old/cluster": n, "old/front-proxy": n, "new/cluster": n, "new/front-proxy": n}
	}
	got, err := s.DurableKeyCopies(m)
	if err != nil {
		t.Fatal(err)
	}
	// originals.enc + old-cas.enc, originals.enc + new-cas.enc.
	if diff := cmp.Diff(all(2), got); diff != "" {
		t.Errorf("copies after Save (-want +got):\n%s", diff)
	}
	// The same from the material as a resume loads it.
	loaded, err := s.Load(m.RotationID)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.DurableKeyCopies(loaded); err != nil || !cmp.Equal(all(2), got) {
		t.Errorf("copies for the loaded material = %v, %v", got, err)
	}

	// Each sealed file counts: without old-cas.enc the old keys are only
	// in the backup.
	if err := os.Remove(s.Dir.Join(state.OldCAs.File())); err != nil {
		t.Fatal(err)
	}
	got, err = s.DurableKeyCopies(m)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"old/cluster": 1, "old/front-proxy": 1, "new/cluster": 2, "new/front-proxy": 2}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("copies without old-cas.enc (-want +got):\n%s", diff)
	}
	if s.Saved() {
		t.Error("Saved without old-cas.enc")
	}

	// Keys that are not the material's are not copies of it.
	other, _ := fixture(t)
	if got, err := s.DurableKeyCopies(other); err != nil || !cmp.Equal(all(0), got) {
		t.Errorf("copies of another material's keys = %v, %v", got, err)
	}
}

func TestStoreSaveAgain(t *testing.T) {
	t.Run("crash before the backup: the material is made again", func(t *testing.T) {
		m, _ := fixture(t)
		s, _ := testStore(t, m.RotationID)
		if err := s.Save(m, testNow); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(s.BackupPath()); err != nil { // the backup is written last
			t.Fatal(err)
		}
		if s.Saved() {
			t.Fatal("Saved without the backup")
		}
		again := *m
		again.New = map[model.CAKind]*pki.CA{model.ClusterCA: newCA(t, "kubernetes-ca-new"), model.FrontProxyCA: newCA(t, "front-proxy-ca-new")}
		if err := s.Save(&again, testNow); err != nil {
			t.Fatal(err)
		}
		got, err := s.DurableKeyCopies(&again)
		if err != nil || !cmp.Equal(map[string]int{"old/cluster": 2, "old/front-proxy": 2, "new/cluster": 2, "new/front-proxy": 2}, got) {
			t.Errorf("copies after saving again = %v, %v", got, err)
		}
		l, err := s.Load(m.RotationID)
		if err != nil || !l.New[model.ClusterCA].Cert.Equal(again.New[model.ClusterCA].Cert) {
			t.Errorf("Load after saving again = %v", err)
		}
	})
	t.Run("a backup of other CAs is never replaced", func(t *testing.T) {
		m, _ := fixture(t)
		s, _ := testStore(t, m.RotationID)
		if err := s.Save(m, testNow); err != nil {
			t.Fatal(err)
		}
		before, err := os.ReadFile(s.BackupPath())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(s.Dir.Join(state.NewCAs.File())); err != nil {
			t.Fatal(err)
		}
		again := *m
		again.New = map[model.CAKind]*pki.CA{model.ClusterCA: newCA(t, "kubernetes-ca-new"), model.FrontProxyCA: newCA(t, "front-proxy-ca-new")}
		err = s.Save(&again, testNow)
		if err == nil || !strings.Contains(err.Error(), "changed by hand") {
			t.Errorf("Save of other CAs beside a backup = %v", err)
		}
		if after, _ := os.ReadFile(s.BackupPath()); string(after) != string(before) {
			t.Error("the backup was rewritten")
		}
		if err := s.Save(m, testNow); err != nil { // the same material restores the missing file
			t.Fatalf("Save of the same material again: %v", err)
		}
		if _, err := s.Load(m.RotationID); err != nil {
			t.Errorf("Load: %v", err)
		}
	})
}
