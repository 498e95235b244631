// Package backup writes and reads carotate's encrypted backup: every file
// and API object a rotation will touch, CA keys included, sealed with
// AES-256-GCM under a key the operator keeps.
//
// File format (all of it authenticated):
//
//	magic "CAROTATE-BACKUP-1\n"
//	key id (8 bytes)    tells a wrong key from a damaged file
//	salt (32 bytes)     per file: the sealing key is HKDF-SHA256(key, salt)
//	nonce (12 bytes)
//	ciphertext + tag    of the JSON Contents
//
// Deriving a fresh sealing key per file keeps random nonces safe however
// many backups one key protects.
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
	"io/fs"
	"os"
	"path/filepath"
	"time"

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
	salt := make([]byte, saltSize)
	if _, err := rand.Read(salt); err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	aead, err := key.aead(salt)
	if err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	var header bytes.Buffer
	header.WriteString(magic)
	header.Write(key.id())
	header.Write(salt)
	header.Write(nonce)
	out := aead.Seal(header.Bytes(), nonce, plain, header.Bytes())
	dir, err := node.NewLocal("backup", filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	if err := dir.WriteFile(context.Background(), "/"+filepath.Base(path), out, 0o600); err != nil {
		return fmt.Errorf("write backup %s: %w", path, err)
	}
	return nil
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
	headerSize := len(magic) + idSize + saltSize + 12
	if len(data) < headerSize || string(data[:len(magic)]) != magic {
		return Contents{}, ErrFormat
	}
	header := data[:headerSize]
	rest := header[len(magic):]
	id, salt, nonce := rest[:idSize], rest[idSize:idSize+saltSize], rest[idSize+saltSize:]
	aead, err := key.aead(salt)
	if err != nil {
		return Contents{}, err
	}
	plain, err := aead.Open(nil, nonce, data[headerSize:], header)
	if err != nil {
		if !bytes.Equal(id, key.id()) {
			return Contents{}, fmt.Errorf("%w (its key id is %x, the key given has %s)", ErrWrongKey, id, key.ID())
		}
		return Contents{}, ErrAuthentication
	}
	var c Contents
	if err := json.Unmarshal(plain, &c); err != nil {
		return Contents{}, fmt.Errorf("authenticated but unreadable, written by another carotate version?: %w", err)
	}
	return c, nil
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
