package backup

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// canary is "key material" that must never show up in an error or log.
const canary = "-----BEGIN EC PRIVATE KEY-----CANARY-7f3e9a1c-----END EC PRIVATE KEY-----"

func withUmask(t *testing.T) {
	t.Helper()
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
}

func privateDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := os.Chmod(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

func contents() Contents {
	return Contents{
		CreatedAt:  time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC),
		RotationID: "r-abc",
		Files: []File{
			{Node: "cp-1", Path: "/etc/kubernetes/pki/ca.key", Mode: 0o600, Content: []byte(canary)},
			{Node: "cp-1", Path: "/etc/kubernetes/pki/ca.crt", Mode: 0o644, Content: []byte("cert")},
		},
		Objects: []Object{{Kind: "ConfigMap", Namespace: "kube-public", Name: "cluster-info",
			JSON: json.RawMessage(`{"data":{"kubeconfig":"x"}}`)}},
	}
}

func newKey(t *testing.T, dir string) Key {
	t.Helper()
	k, err := CreateKey(filepath.Join(dir, "keys", "backup.key"))
	if err != nil {
		t.Fatalf("CreateKey = %v", err)
	}
	return k
}

// noCanary fails if anything the test can print holds key or backup
// secrets.
func noCanary(t *testing.T, what string, secrets ...[]byte) {
	t.Helper()
	for _, s := range append(secrets, []byte(canary)) {
		if len(s) > 0 && (strings.Contains(what, string(s)) ||
			strings.Contains(what, base64.StdEncoding.EncodeToString(s)) ||
			strings.Contains(what, fmt.Sprintf("%x", s))) {
			t.Errorf("secret in %q", what)
		}
	}
}

func TestRoundTripModesAndNoTempFiles(t *testing.T) {
	withUmask(t)
	dir := privateDir(t)
	key := newKey(t, dir)
	path := filepath.Join(dir, "backup-r-abc.enc")
	if err := Write(path, key, contents()); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got, err := Read(path, key)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if diff := cmp.Diff(contents(), got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "CANARY") || strings.Contains(string(raw), "cluster-info") {
		t.Error("backup file holds plaintext")
	}
	var names []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		fi, _ := d.Info()
		rel, _ := filepath.Rel(dir, p)
		names = append(names, fmt.Sprintf("%s %04o", rel, fi.Mode().Perm()))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{". 0700", "backup-r-abc.enc 0600", "keys 0700", "keys/backup.key 0600"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestTamperAndWrongKey(t *testing.T) {
	dir := privateDir(t)
	key := newKey(t, dir)
	path := filepath.Join(dir, "b.enc")
	if err := Write(path, key, contents()); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	hdr := len(magic)
	for _, tc := range []struct {
		name string
		at   int
		want error
	}{
		{"magic", 0, ErrFormat},
		{"key id", hdr, ErrWrongKey},
		{"salt", hdr + idSize, ErrAuthentication},
		{"nonce", hdr + idSize + saltSize, ErrAuthentication},
		{"ciphertext", hdr + idSize + saltSize + 12 + 5, ErrAuthentication},
		{"tag", len(orig) - 1, ErrAuthentication},
	} {
		t.Run("flip a byte of the "+tc.name, func(t *testing.T) {
			b := append([]byte(nil), orig...)
			b[tc.at] ^= 0x01
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Read(path, key)
			if !errors.Is(err, tc.want) {
				t.Errorf("Read = %v, want %v", err, tc.want)
			}
			errs = append(errs, err)
		})
	}
	t.Run("truncated", func(t *testing.T) {
		if err := os.WriteFile(path, orig[:len(orig)-20], 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Read(path, key)
		if !errors.Is(err, ErrAuthentication) {
			t.Errorf("Read = %v", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		if err := os.WriteFile(path, orig, 0o600); err != nil {
			t.Fatal(err)
		}
		other := newKey(t, privateDir(t))
		_, err := Read(path, other)
		if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), other.ID()) || !strings.Contains(err.Error(), key.ID()) {
			t.Errorf("Read with another key = %v, want ErrWrongKey naming both key ids", err)
		}
		errs = append(errs, err)
	})
	keyBytes := key.h.bytes()
	for _, err := range errs {
		if err != nil {
			noCanary(t, err.Error(), keyBytes)
		}
	}
}

func TestCreateAndLoadKey(t *testing.T) {
	withUmask(t)
	dir := privateDir(t)
	path := filepath.Join(dir, "sub", "backup.key")
	k1, err := CreateKey(path)
	if err != nil {
		t.Fatalf("CreateKey = %v", err)
	}
	for p, want := range map[string]fs.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %04o, want %04o", p, fi.Mode().Perm(), want)
		}
	}
	k2, err := LoadKey(path)
	if err != nil || k2.ID() != k1.ID() {
		t.Fatalf("LoadKey = %v, same key %v", err, k2.ID() == k1.ID())
	}
	raw, err := os.ReadFile(path)
	if err != nil || len(raw) != KeySize {
		t.Fatalf("key file holds %d bytes, %v", len(raw), err)
	}

	t.Run("existing key file never replaced", func(t *testing.T) {
		_, err := CreateKey(path)
		var kfe *KeyFileError
		if !errors.As(err, &kfe) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "already exists") {
			t.Errorf("CreateKey of an existing file = %v, want a *KeyFileError naming it", err)
		}
		if now, _ := os.ReadFile(path); string(now) != string(raw) {
			t.Error("CreateKey changed an existing key file")
		}
	})
	t.Run("missing key file refused, not created", func(t *testing.T) {
		p := filepath.Join(dir, "lost.key")
		_, err := LoadKey(p)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "--backup-key") {
			t.Errorf("LoadKey of a missing file = %v, want fs.ErrNotExist naming %s and --backup-key", err, p)
		}
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("LoadKey created %s", p)
		}
	})
	t.Run("writable directory refused", func(t *testing.T) {
		for _, mode := range []fs.FileMode{0o770, 0o777 | fs.ModeSticky} {
			d := filepath.Join(dir, fmt.Sprintf("shared-%o", mode.Perm()))
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(d, mode); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(d, "backup.key")
			_, err := CreateKey(p)
			var kfe *KeyFileError
			if !errors.As(err, &kfe) || !strings.Contains(err.Error(), "chmod go-w") {
				t.Errorf("CreateKey in a %04o directory = %v, want a *KeyFileError", mode.Perm(), err)
			}
			if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("CreateKey in a %04o directory left %s", mode.Perm(), p)
			}
		}
	})
	t.Run("base64 key file", func(t *testing.T) {
		p := filepath.Join(dir, "b64.key")
		if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(raw)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := LoadKey(p)
		if err != nil || k.ID() != k1.ID() {
			t.Errorf("LoadKey(base64) = %v", err)
		}
	})
	t.Run("group-readable key file refused", func(t *testing.T) {
		p := filepath.Join(dir, "loose.key")
		if err := os.WriteFile(p, raw, 0o640); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKey(p)
		var kfe *KeyFileError
		if !errors.As(err, &kfe) || !strings.Contains(err.Error(), "mode 0640") || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("LoadKey = %v, want a *KeyFileError naming the mode and the fix", err)
		}
		noCanary(t, err.Error(), raw)
	})
	t.Run("wrong size refused without echoing content", func(t *testing.T) {
		p := filepath.Join(dir, "short.key")
		if err := os.WriteFile(p, []byte(canary), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKey(p)
		var kfe *KeyFileError
		if !errors.As(err, &kfe) {
			t.Fatalf("LoadKey = %v", err)
		}
		noCanary(t, err.Error())
	})
	t.Run("deprecated LoadOrCreateKey", func(t *testing.T) {
		k, created, err := LoadOrCreateKey(path)
		if err != nil || created || k.ID() != k1.ID() {
			t.Errorf("LoadOrCreateKey of an existing key = %v, created %v", err, created)
		}
		p := filepath.Join(dir, "fresh.key")
		if _, created, err := LoadOrCreateKey(p); err != nil || !created {
			t.Errorf("LoadOrCreateKey of a missing key = %v, created %v", err, created)
		}
	})
}

func TestKeyNeverPrints(t *testing.T) {
	dir := privateDir(t)
	key := newKey(t, dir)
	secret := key.h.bytes()
	var sb strings.Builder
	logger := slog.New(slog.NewJSONHandler(&sb, nil))
	logger.Info("backup", "key", key, "ptr", &key)
	j, err := json.Marshal(struct{ K Key }{key})
	if err != nil {
		t.Fatal(err)
	}
	out := []string{sb.String(), string(j),
		fmt.Sprint(key), fmt.Sprintf("%v %+v %#v %s %x %q", key, key, key, key, key, key),
		fmt.Sprintf("%v %+v", &key, struct{ K Key }{key})}
	for _, s := range out {
		noCanary(t, s, secret)
		if !strings.Contains(s, key.ID()) {
			t.Errorf("%q does not name the key id", s)
		}
	}
}
