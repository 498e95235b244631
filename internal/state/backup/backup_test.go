package backup

import (
	"bytes"
	"crypto/rand"
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

	"filippo.io/age"
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

// secretOf is what a key must never print.
func secretOf(k Key) []byte {
	if k.isAge() {
		return []byte(k.h.identity().String())
	}
	return k.h.bytes()
}

func rawKey(t *testing.T) Key {
	t.Helper()
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	k, err := NewKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// flipAt is a byte to flip in a backup, and what Read must then say.
type flipAt struct {
	name string
	at   func(orig []byte) int
	want error
	// or is another answer that is as right: a flipped base64 character
	// of an age stanza may still decode (another key's share) or not
	// (a damaged header), depending on the character.
	or error
}

func checkTamper(t *testing.T, key Key, flips []flipAt) {
	dir := privateDir(t)
	path := filepath.Join(dir, "b.enc")
	if err := Write(path, key, contents()); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	for _, tc := range flips {
		t.Run("flip a byte of the "+tc.name, func(t *testing.T) {
			b := append([]byte(nil), orig...)
			b[tc.at(orig)] ^= 0x01
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Read(path, key)
			if !errors.Is(err, tc.want) && (tc.or == nil || !errors.Is(err, tc.or)) {
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
	for _, other := range []Key{newKey(t, privateDir(t)), rawKey(t)} {
		t.Run("wrong key", func(t *testing.T) {
			if err := os.WriteFile(path, orig, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Read(path, other)
			if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), other.ID()) {
				t.Errorf("Read with another key = %v, want ErrWrongKey naming the key's id", err)
			}
			if !key.isAge() && other.isAge() == key.isAge() && !strings.Contains(err.Error(), key.ID()) {
				t.Errorf("Read with another raw key = %v, want the file's key id too", err)
			}
			errs = append(errs, err)
		})
	}
	for _, err := range errs {
		if err != nil {
			noCanary(t, err.Error(), secretOf(key))
		}
	}
}

// TestTamperAndWrongKey: an age backup. age names no recipient, so a
// damaged X25519 stanza reads as another key's, or as damage when the
// flipped character no longer decodes; every other change is damage.
func TestTamperAndWrongKey(t *testing.T) {
	line := func(n int) func([]byte) int {
		return func(b []byte) int {
			at := 0
			for range n {
				at += bytes.IndexByte(b[at:], '\n') + 1
			}
			return at + len("-> X25519 ") + 10 // inside the share
		}
	}
	macAt := func(b []byte) int { return bytes.Index(b, []byte("\n--- ")) + 6 }
	checkTamper(t, newKey(t, privateDir(t)), []flipAt{
		{"magic", func([]byte) int { return 0 }, ErrFormat, nil},
		{"X25519 stanza", line(1), ErrWrongKey, ErrAuthentication},
		{"header MAC", macAt, ErrAuthentication, nil},
		{"payload", func(b []byte) int { return bytes.Index(b, []byte("\n--- ")) + 60 }, ErrAuthentication, nil},
		{"last chunk", func(b []byte) int { return len(b) - 1 }, ErrAuthentication, nil},
	})
}

// TestTamperAndWrongKeyRaw: a backup an older carotate wrote with a raw
// key still opens, and its header tells a wrong key from damage.
func TestTamperAndWrongKeyRaw(t *testing.T) {
	hdr := len(magic)
	at := func(n int) func([]byte) int { return func([]byte) int { return n } }
	checkTamper(t, rawKey(t), []flipAt{
		{"magic", at(0), ErrFormat, nil},
		{"key id", at(hdr), ErrWrongKey, nil},
		{"salt", at(hdr + idSize), ErrAuthentication, nil},
		{"nonce", at(hdr + idSize + saltSize), ErrAuthentication, nil},
		{"ciphertext", at(hdr + idSize + saltSize + 12 + 5), ErrAuthentication, nil},
		{"tag", func(b []byte) int { return len(b) - 1 }, ErrAuthentication, nil},
	})
}

// TestAgeOpensIt: the age library alone (as `age -d -i KEYFILE` does)
// opens a backup with the key file.
func TestAgeOpensIt(t *testing.T) {
	dir := privateDir(t)
	keyPath := filepath.Join(dir, "keys", "backup.key")
	key, err := CreateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "b.enc")
	if err := Write(path, key, contents()); err != nil {
		t.Fatal(err)
	}
	kf, err := os.Open(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	ids, err := age.ParseIdentities(kf)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := age.Decrypt(f, ids...)
	if err != nil {
		t.Fatal(err)
	}
	var got Contents
	if err := json.NewDecoder(r).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(contents(), got); diff != "" {
		t.Errorf("age -d (-want +got):\n%s", diff)
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
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(raw)), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "# carotate backup key, created ") ||
		lines[1] != "# public key: "+k1.Recipient() || !strings.HasPrefix(lines[2], "AGE-SECRET-KEY-1") {
		t.Errorf("key file is not an age identity file as age-keygen writes one:\n%s", strings.ReplaceAll(string(raw), string(secretOf(k1)), "AGE-SECRET-KEY-1…"))
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
	t.Run("raw and base64 key files of older versions", func(t *testing.T) {
		old := rawKey(t)
		for name, content := range map[string][]byte{"raw.key": secretOf(old), "b64.key": []byte(base64.StdEncoding.EncodeToString(secretOf(old)) + "\n")} {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, content, 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := LoadKey(p)
			if err != nil || k.ID() != old.ID() || k.isAge() {
				t.Errorf("LoadKey(%s) = %v", name, err)
			}
		}
	})
	t.Run("two age identities refused", func(t *testing.T) {
		p := filepath.Join(dir, "two.key")
		if err := os.WriteFile(p, append(append([]byte(nil), raw...), raw...), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKey(p)
		var kfe *KeyFileError
		if !errors.As(err, &kfe) || !strings.Contains(err.Error(), "is not one age X25519 identity") {
			t.Errorf("LoadKey = %v", err)
		}
		noCanary(t, err.Error(), secretOf(k1))
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
	secret := secretOf(key)
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
