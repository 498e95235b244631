package backup

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"filippo.io/age"
)

// KeySize is the length of a key file from before carotate wrote age
// identities: 32 random bytes, an AES-256 key.
const KeySize = 32

// Key is a backup key: an age X25519 identity, or a key file of 32 raw
// bytes that an older carotate created. Like pki.PrivateKey it never
// prints: every fmt verb, slog and JSON see only its id, a hash that tells
// keys apart.
type Key struct {
	h *keyHolder
}

// keyHolder keeps the secret behind funcs so that reflection-based
// printing of the struct shows an address, never the key.
type keyHolder struct {
	identity func() *age.X25519Identity // nil for a raw key
	bytes    func() []byte              // nil for an age identity
}

// NewKey wraps 32 key bytes (copied): a key file of an older carotate.
func NewKey(b []byte) (Key, error) {
	if len(b) != KeySize {
		return Key{}, fmt.Errorf("a backup key is %d bytes, got %d", KeySize, len(b))
	}
	c := append([]byte(nil), b...)
	return Key{h: &keyHolder{bytes: func() []byte { return c }}}, nil
}

// newAgeKey wraps an age identity.
func newAgeKey(id *age.X25519Identity) Key {
	return Key{h: &keyHolder{identity: func() *age.X25519Identity { return id }}}
}

// IsZero is true for a Key that holds nothing.
func (k Key) IsZero() bool { return k.h == nil }

// isAge says the key is an age identity, which reads and writes age files.
func (k Key) isAge() bool { return k.h != nil && k.h.identity != nil }

// Recipient is the public half of an age key, "age1…", which the backup is
// encrypted to; "" for a raw key.
func (k Key) Recipient() string {
	if !k.isAge() {
		return ""
	}
	return k.h.identity().Recipient().String()
}

// id is a one-way function of the key: for an age key, of its public
// recipient; for a raw key, what its backups' header stores.
func (k Key) id() []byte {
	if k.isAge() {
		sum := sha256.Sum256([]byte("carotate backup key id\x00" + k.Recipient()))
		return sum[:idSize]
	}
	id, err := hkdf.Key(sha256.New, k.h.bytes(), nil, "carotate backup key id", idSize)
	if err != nil {
		panic(err) // only for lengths hkdf cannot give; idSize is not one
	}
	return id
}

// ID is a short public name for the key, to tell the operator which key a
// backup needs.
func (k Key) ID() string {
	if k.IsZero() {
		return "none"
	}
	return hex.EncodeToString(k.id())
}

func (k Key) String() string             { return "BackupKey(" + k.ID() + ")" }
func (k Key) GoString() string           { return k.String() }
func (k Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }
func (k Key) LogValue() slog.Value       { return slog.StringValue(k.String()) }
func (k Key) MarshalJSON() ([]byte, error) {
	return json.Marshal(k.String())
}
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// KeyFileError is a key file carotate refuses to use.
type KeyFileError struct {
	Path string
	Why  string
}

func (e *KeyFileError) Error() string { return fmt.Sprintf("backup key file %s: %s", e.Path, e.Why) }

// LoadKey reads the key file at path. A missing file is refused (the
// error wraps fs.ErrNotExist): a lost key is never replaced behind the
// operator's back, since whatever it sealed can only be read with it. A key
// file group or others can read, or that another user owns, is refused. The
// file is an age identity file, as age-keygen writes one (comments, then
// one AGE-SECRET-KEY-1… line); a file of 32 raw bytes or their base64, as
// older carotate versions created, is accepted too.
func LoadKey(path string) (Key, error) {
	k, err := loadKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Key{}, fmt.Errorf("backup key file %s does not exist: carotate reads the backup and the sealed CA keys only with the key they were written with, and never makes a new one in place of a lost one; pass --backup-key with that key's file: %w", path, fs.ErrNotExist)
	}
	return k, err
}

// CreateKey creates the key file at path with a fresh age X25519
// identity, 0600, and returns it: `age -d -i FILE` opens every backup. It refuses a path that exists (an existing key is never
// replaced) and a directory group or others can write to (they could
// replace the key, or read what it seals, by swapping the file); a missing
// directory is created 0700. The file appears whole or not at all. The
// caller must tell the operator where the key is and that without it the
// backup cannot be read.
func CreateKey(path string) (Key, error) {
	if _, err := os.Lstat(path); err == nil {
		return Key{}, &KeyFileError{Path: path, Why: "already exists; carotate never replaces a backup key (load it instead, or choose another path)"}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Key{}, fmt.Errorf("create backup key file %s: %w", path, err)
	}
	if err := createKey(path); err != nil {
		if errors.Is(err, fs.ErrExist) { // someone else created it meanwhile
			return Key{}, &KeyFileError{Path: path, Why: "was created by someone else while carotate created it; carotate never replaces a backup key"}
		}
		var kfe *KeyFileError
		if errors.As(err, &kfe) {
			return Key{}, err
		}
		return Key{}, fmt.Errorf("create backup key file %s: %w", path, err)
	}
	return loadKey(path)
}

// GenerateKey makes a new age key in memory, to be written with SaveKey.
func GenerateKey() (Key, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return Key{}, err
	}
	return newAgeKey(id), nil
}

// CheckNewKeyPath refuses, without creating anything, a path SaveKey would
// refuse: one that exists, or whose directory group or others can write.
// A missing directory is fine: SaveKey creates it 0700.
func CheckNewKeyPath(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return &KeyFileError{Path: path, Why: "already exists; carotate never replaces a backup key (load it instead, or choose another path)"}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup key file %s: %w", path, err)
	}
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if errors.Is(err, fs.ErrNotExist) && dir != filepath.Dir(dir) {
			continue // created 0700 by SaveKey; its parent is what matters
		}
		if err != nil {
			return fmt.Errorf("backup key file %s: %w", path, err)
		}
		return checkKeyDir(path, dir, fi, dir == filepath.Dir(path))
	}
}

// checkKeyDir refuses a key's directory (or the nearest existing parent of
// a missing one) that is not a directory, or that group or others may
// write to: they could replace the key, or read what it seals.
func checkKeyDir(path, dir string, fi fs.FileInfo, own bool) error {
	if !fi.IsDir() {
		return &KeyFileError{Path: path, Why: dir + " is not a directory"}
	}
	if own && fi.Mode().Perm()&0o022 != 0 {
		return &KeyFileError{Path: path, Why: fmt.Sprintf(
			"its directory %s has mode %04o, so group or others could replace the key; run chmod go-w on it or choose another --backup-key path",
			dir, fi.Mode().Perm())}
	}
	return nil
}

// SaveKey writes k, from GenerateKey, to a new key file at path, as
// CreateKey does.
func SaveKey(path string, k Key) error {
	if !k.isAge() {
		return errors.New("only an age key is written to a new key file")
	}
	if err := CheckNewKeyPath(path); err != nil {
		return err
	}
	err := writeKeyFile(path, k.h.identity())
	if errors.Is(err, fs.ErrExist) {
		return &KeyFileError{Path: path, Why: "was created by someone else while carotate created it; carotate never replaces a backup key"}
	}
	var kfe *KeyFileError
	if err != nil && !errors.As(err, &kfe) {
		return fmt.Errorf("create backup key file %s: %w", path, err)
	}
	return err
}

// LoadOrCreateKey loads the key at path, or creates it if there is none.
//
// Deprecated: it replaces a lost key with a new one, after which nothing
// sealed with the lost key can be read. Use LoadKey to resume a rotation,
// and CreateKey only when starting one. Kept until internal/cli stops
// calling it; nothing else uses it.
func LoadOrCreateKey(path string) (key Key, created bool, err error) {
	key, err = LoadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	key, err = CreateKey(path)
	if err != nil {
		return Key{}, false, err
	}
	return key, true, nil
}

func loadKey(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("backup key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("backup key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Key{}, &KeyFileError{Path: path, Why: "not a regular file"}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return Key{}, &KeyFileError{Path: path, Why: fmt.Sprintf(
			"mode %04o lets group or others read it; anyone who could read it can read the backup, so check who copied it, then run chmod 600 on it",
			fi.Mode().Perm())}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() && os.Geteuid() != 0 {
		return Key{}, &KeyFileError{Path: path, Why: fmt.Sprintf("owned by uid %d, not by the user running carotate", st.Uid)}
	}
	buf := make([]byte, 4096)
	n, err := io.ReadFull(f, buf)
	if n == 0 || (err != nil && !errors.Is(err, io.ErrUnexpectedEOF)) {
		return Key{}, &KeyFileError{Path: path, Why: "empty or unreadable"}
	}
	raw := buf[:n]
	defer clear(buf)
	if bytes.Contains(raw, []byte("AGE-SECRET-KEY-1")) {
		ids, err := age.ParseIdentities(bytes.NewReader(raw))
		if err != nil || len(ids) != 1 {
			// Not the parser's words: they may quote the file.
			return Key{}, &KeyFileError{Path: path, Why: "is not one age X25519 identity (comment lines, then one AGE-SECRET-KEY-1… line, as age-keygen writes)"}
		}
		id, ok := ids[0].(*age.X25519Identity)
		if !ok {
			return Key{}, &KeyFileError{Path: path, Why: "holds an age identity that is not X25519"}
		}
		return newAgeKey(id), nil
	}
	if n == KeySize {
		return NewKey(raw)
	}
	dec, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if derr != nil || len(dec) != KeySize {
		// The length only: the content may be a key in the wrong form.
		return Key{}, &KeyFileError{Path: path, Why: fmt.Sprintf(
			"holds %d bytes; a backup key is an age identity (age-keygen), or, from an older carotate, %d random bytes or their base64", n, KeySize)}
	}
	return NewKey(dec)
}

// createKey writes a new key to a dot-named temporary file and links it into
// place, so path never exists half written and an existing key is never
// replaced.
func createKey(path string) error {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	return writeKeyFile(path, id)
}

// writeKeyFile writes id as an age identity file, the way createKey says.
func writeKeyFile(path string, id *age.X25519Identity) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return err
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if err := checkKeyDir(path, dir, fi, true); err != nil {
		return err
	}
	b := fmt.Appendf(nil, "# carotate backup key, created %s\n# public key: %s\n%s\n",
		time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
	defer clear(b)
	tmp := filepath.Join(dir, "."+filepath.Base(path)+".tmp-"+strings.ToLower(rand.Text()[:12]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
