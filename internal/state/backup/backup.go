// Package backup writes and reads carotate's encrypted backup: every file
// and API object a rotation will touch, CA keys included, sealed under a
// key the operator keeps.
//
// A backup key is an age X25519 identity, and a backup is an age file
// (https://age-encryption.org/v1) encrypted to it, of the JSON Contents:
// `age -d -i KEYFILE FILE` opens it without carotate.
//
// Key files of 32 raw bytes, which older carotate versions created, still
// read and write the format of those versions (all of it authenticated):
//
//	magic "CAROTATE-BACKUP-1\n"
//	key id (8 bytes)    tells a wrong key from a damaged file
//	salt (32 bytes)     per file: the sealing key is HKDF-SHA256(key, salt)
//	nonce (12 bytes)
//	ciphertext + tag    of the JSON Contents (AES-256-GCM)
package backup

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"

	"github.com/carotate/carotate/internal/node"
)

// File is a file from a node.
type File struct {
	Node    string      `json:"node"`
	Path    string      `json:"path"`
	Mode    fs.FileMode `json:"mode"`
	Content []byte      `json:"content"`
}

// Object is an API object as JSON.
type Object struct {
	Kind      string          `json:"kind"`
	Namespace string          `json:"namespace,omitempty"`
	Name      string          `json:"name"`
	JSON      json.RawMessage `json:"json"`
}

// Contents is what one backup holds.
type Contents struct {
	CreatedAt  time.Time `json:"createdAt"`
	RotationID string    `json:"rotationID,omitempty"`
	Files      []File    `json:"files"`
	Objects    []Object  `json:"objects"`
}

const (
	magic    = "CAROTATE-BACKUP-1\n"
	saltSize = 32
	idSize   = 8
	info     = "carotate backup v1"
)

// Errors Read returns, wrapped with the path; decide with errors.Is.
var (
	// ErrWrongKey: the backup was sealed with another key.
	ErrWrongKey = errors.New("the backup was written with a different key")
	// ErrAuthentication: the key is right but the content does not
	// authenticate: the file was modified or damaged.
	ErrAuthentication = errors.New("the backup does not authenticate: it was modified or damaged")
	// ErrFormat: not a carotate backup at all.
	ErrFormat = errors.New("not a carotate backup file")
)

// Write seals c under key into path, atomically and 0600; the directory
// must exist (the state directory's backup/, 0700).
func Write(path string, key Key, c Contents) error {
	if key.IsZero() {
		return errors.New("write backup: no key")
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	defer clear(plain)
	var out []byte
	if key.isAge() {
		out, err = sealAge(key, plain)
	} else {
		out, err = sealRaw(key, plain)
	}
	if err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	dir, err := node.NewLocal("backup", filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	if err := dir.WriteFile(context.Background(), "/"+filepath.Base(path), out, 0o600); err != nil {
		return fmt.Errorf("write backup %s: %w", path, err)
	}
	return nil
}

// sealAge encrypts plain to an age key's recipient.
func sealAge(key Key, plain []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, key.h.identity().Recipient())
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sealRaw seals plain under a raw key, in the format of older versions.
func sealRaw(key Key, plain []byte) ([]byte, error) {
	salt := make([]byte, saltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	aead, err := key.aead(salt)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	var header bytes.Buffer
	header.WriteString(magic)
	header.Write(key.id())
	header.Write(salt)
	header.Write(nonce)
	return aead.Seal(header.Bytes(), nonce, plain, header.Bytes()), nil
}

// Read opens and verifies the backup at path.
func Read(path string, key Key) (Contents, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Contents{}, fmt.Errorf("read backup: %w", err)
	}
	c, err := open(data, key)
	if err != nil {
		return Contents{}, fmt.Errorf("read backup %s: %w", path, err)
	}
	return c, nil
}

func open(data []byte, key Key) (Contents, error) {
	if key.IsZero() {
		return Contents{}, errors.New("no key")
	}
	var plain []byte
	var err error
	switch {
	case bytes.HasPrefix(data, []byte(ageMagic)):
		plain, err = openAge(data, key)
	case bytes.HasPrefix(data, []byte(magic)):
		plain, err = openRaw(data, key)
	default:
		return Contents{}, ErrFormat
	}
	if err != nil {
		return Contents{}, err
	}
	defer clear(plain)
	var c Contents
	if err := json.Unmarshal(plain, &c); err != nil {
		return Contents{}, fmt.Errorf("authenticated but unreadable, written by another carotate version?: %w", err)
	}
	return c, nil
}

// ageMagic starts every age file.
const ageMagic = "age-encryption.org/v1\n"

// openAge decrypts an age file. age names no recipient in its header, so
// a key that matches no stanza is the wrong key, and anything else that
// fails (a header MAC, a payload chunk) is damage.
func openAge(data []byte, key Key) ([]byte, error) {
	if !key.isAge() {
		return nil, fmt.Errorf("%w: it is an age file, and the key given (%s) is a raw key of an older carotate", ErrWrongKey, key.ID())
	}
	r, err := age.Decrypt(bytes.NewReader(data), key.h.identity())
	var noMatch *age.NoIdentityMatchError
	switch {
	case errors.As(err, &noMatch):
		return nil, fmt.Errorf("%w, or its age header is damaged (the key given has id %s)", ErrWrongKey, key.ID())
	case err != nil:
		return nil, ErrAuthentication
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		return nil, ErrAuthentication
	}
	return plain, nil
}

// openRaw opens the format of older versions.
func openRaw(data []byte, key Key) ([]byte, error) {
	if key.isAge() {
		return nil, fmt.Errorf("%w: an older carotate wrote it with a raw key, and the key given (%s) is an age identity", ErrWrongKey, key.ID())
	}
	headerSize := len(magic) + idSize + saltSize + 12
	if len(data) < headerSize {
		return nil, ErrFormat
	}
	header := data[:headerSize]
	rest := header[len(magic):]
	id, salt, nonce := rest[:idSize], rest[idSize:idSize+saltSize], rest[idSize+saltSize:]
	aead, err := key.aead(salt)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nonce, data[headerSize:], header)
	if err != nil {
		if !bytes.Equal(id, key.id()) {
			return nil, fmt.Errorf("%w (its key id is %x, the key given has %s)", ErrWrongKey, id, key.ID())
		}
		return nil, ErrAuthentication
	}
	return plain, nil
}

// aead derives the per-file sealing key from salt.
func (k Key) aead(salt []byte) (cipher.AEAD, error) {
	sealing, err := hkdf.Key(sha256.New, k.h.bytes(), salt, info, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(sealing)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
