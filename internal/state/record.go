package state

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/state/backup"
)

// Record is the rotation record: which rotation this is, where the journal
// last saw it, and which CAs it moves from and to. The phase in it is what
// carotate last wrote, not the truth: the truth is re-derived from the
// cluster on every run and only cross-checked against the record.
type Record struct {
	RotationID  string                    `json:"rotationID"`
	Phase       string                    `json:"phase"`
	StartedAt   time.Time                 `json:"startedAt"`
	UpdatedAt   time.Time                 `json:"updatedAt"`
	CAs         map[model.CAKind]CAChange `json:"cas"`
	ToolVersion string                    `json:"toolVersion"`
	// Roots are the roots of trust the rotation changes, by the names
	// --roots gives them; a record without them (written before carotate
	// recorded them) rotates the default, the cluster and front-proxy CAs.
	Roots []string `json:"roots,omitempty"`
	// BackupKeyPath is the file of the backup key the rotation was started
	// with, and BackupKeyID that key's id (backup.Key.ID, public): a
	// resume loads the key from there unless told otherwise, and refuses
	// any other key (CheckKey).
	BackupKeyPath string `json:"backupKeyPath,omitempty"`
	BackupKeyID   string `json:"backupKeyID,omitempty"`
	// FinalizeStartedAt is when finalize first began to change the
	// cluster: a rollback from a partly run finalize restarts the pods
	// started since, which may have read a new-only kube-root-ca.crt.
	FinalizeStartedAt time.Time `json:"finalizeStartedAt,omitzero"`
	// Renew: the rotation renews the CAs (`carotate renew`), the same keys
	// with new certificates; Reason is the operator's --reason for it.
	Renew  bool   `json:"renew,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// CAChange is one CA's old and new SPKI sha256 fingerprints.
type CAChange struct {
	Old string `json:"old"`
	New string `json:"new,omitempty"`
}

// NewRotationID returns a random rotation id, e.g. "r-7kq2m4xw9c3v5tbn".
// It names the rotation in the lock, the journal and the restart
// annotations, so it is short and unguessable but not secret.
func NewRotationID() string {
	return "r-" + strings.ToLower(rand.Text()[:16])
}

// ErrNoRecord means no rotation has been recorded for this cluster.
var ErrNoRecord = errors.New("no rotation record")

// SaveRecord writes the record atomically, 0600.
func (d *Dir) SaveRecord(r Record) error {
	if r.RotationID == "" {
		return errors.New("save rotation record: no rotation id")
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("save rotation record: %w", err)
	}
	if err := d.writeFile(RecordFile, append(data, '\n')); err != nil {
		return fmt.Errorf("save rotation record in %s: %w", d.path, err)
	}
	return nil
}

// LoadRecord reads the record; ErrNoRecord if there is none.
func (d *Dir) LoadRecord() (Record, error) {
	path := d.Join(RecordFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, fmt.Errorf("%s: %w", path, ErrNoRecord)
	}
	if err != nil {
		return Record{}, fmt.Errorf("load rotation record: %w", err)
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return Record{}, fmt.Errorf("load rotation record %s: %w; it is written atomically, so it was changed by hand or the disk is damaged", path, err)
	}
	return r, nil
}

// SetBackupKey records which key the rotation is sealed with and where it
// is kept.
func (r *Record) SetBackupKey(path string, k backup.Key) {
	r.BackupKeyPath, r.BackupKeyID = path, k.ID()
}

// KeyMismatchError is a backup key other than the one a rotation was
// started with.
type KeyMismatchError struct {
	RotationID string
	Path       string // where the record says the key is kept
	Want, Got  string // key ids
}

func (e *KeyMismatchError) Error() string {
	where := ""
	if e.Path != "" {
		where = ", kept in " + e.Path
	}
	return fmt.Sprintf("rotation %s was started with the backup key %s%s, but the key given is %s; nothing it sealed can be read with another key: pass --backup-key with the key this rotation was started with",
		e.RotationID, e.Want, where, e.Got)
}

// CheckKey refuses a backup key other than the one rec was started with,
// naming both key ids and the key file the record names. A record that
// names no key (written before carotate recorded it) accepts any key; the
// sealed files still refuse a wrong one when read.
func CheckKey(rec Record, k backup.Key) error {
	if k.IsZero() {
		return errors.New("no backup key given")
	}
	if rec.BackupKeyID == "" || rec.BackupKeyID == k.ID() {
		return nil
	}
	return &KeyMismatchError{RotationID: rec.RotationID, Path: rec.BackupKeyPath, Want: rec.BackupKeyID, Got: k.ID()}
}
