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
