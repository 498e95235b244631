package state

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Entry is one journal line: one side effect, or the intent to make it.
type Entry struct {
	Time   time.Time    `json:"time"`
	Phase  string       `json:"phase,omitempty"`
	Step   string       `json:"step,omitempty"`
	Target string       `json:"target,omitempty"` // node, object, or "node object"
	Action string       `json:"action"`
	Detail string       `json:"detail,omitempty"`
	Files  []FileChange `json:"files,omitempty"`
	Error  string       `json:"error,omitempty"`
}

// FileChange is one file a step touched, by the sha256 of its content
// before and after; "" means the file did not exist.
type FileChange struct {
	Target string `json:"target"` // "node:path"
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
}

// ActionTornRepaired is the entry OpenJournal appends after terminating a
// line that a crash cut short, so that readers know the line before it is
// expected to be damaged.
const ActionTornRepaired = "torn-line-repaired"

// Journal appends entries to the journal file, one JSON object per line,
// each fsynced before Append returns. It is safe for concurrent use.
type Journal struct {
	mu  sync.Mutex
	f   *os.File
	now func() time.Time
	// Repaired is true if opening found a torn last line and terminated it.
	Repaired bool
}

// OpenJournal opens the directory's journal for appending, creating it
// 0600. now stamps entries that have no time; nil means time.Now. Lines a
// crash cut short at the end of the journal are each terminated and
// followed by a repair entry, so the next entry does not run into them.
// The repair replaces the journal in one atomic step (temporary file,
// fsync, rename, fsync of the directory): a crash during it leaves either
// the journal as it was or the repaired one, both readable.
func (d *Dir) OpenJournal(now func() time.Time) (*Journal, error) {
	if now == nil {
		now = time.Now
	}
	path := d.Join(JournalFile)
	if !d.Created() {
		return nil, fmt.Errorf("open journal %s: %w", path, ErrNotCreated)
	}
	repaired, err := d.repairJournal(now)
	if err != nil {
		return nil, fmt.Errorf("open journal %s: repair the lines a crash cut short: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, FileMode)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	j := &Journal{f: f, now: now, Repaired: repaired}
	if err := j.open(path); err != nil {
		f.Close()
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	return j, nil
}

func (j *Journal) open(path string) error {
	if err := j.f.Chmod(FileMode); err != nil {
		return err
	}
	fi, err := j.f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return syncDir(filepath.Dir(path))
	}
	return nil
}

// repairJournal rewrites the journal, atomically, if its last lines were
// cut short by a crash: every line after the last complete entry (an
// unterminated last line, or complete lines that are not entries, which a
// crash of an older carotate in the middle of its two-write repair could
// leave) is terminated and followed by a repair entry. Nothing before them
// changes.
func (d *Dir) repairJournal(now func() time.Time) (bool, error) {
	data, err := os.ReadFile(d.Join(JournalFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// good is the length up to and including the last complete entry's
	// newline, found from the end: usually the last line is one.
	good := 0
	for end := bytes.LastIndexByte(data, '\n') + 1; end > 0; {
		start := bytes.LastIndexByte(data[:end-1], '\n') + 1
		var e Entry
		if json.Unmarshal(data[start:end-1], &e) == nil {
			good = end
			break
		}
		end = start
	}
	if good == len(data) {
		return false, nil
	}
	marker, err := json.Marshal(Entry{Time: now(), Action: ActionTornRepaired,
		Detail: "the line before this one was cut short, most likely by a crash while it was written"})
	if err != nil {
		return false, err
	}
	out := append([]byte(nil), data[:good]...)
	for _, line := range bytes.SplitAfter(data[good:], []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		out = append(out, bytes.TrimSuffix(line, []byte("\n"))...)
		out = append(out, '\n')
		out = append(out, marker...)
		out = append(out, '\n')
	}
	if err := d.writeFile(JournalFile, out); err != nil {
		return false, err
	}
	return true, nil
}

// Append writes e as one line and fsyncs it.
func (j *Journal) Append(e Entry) error {
	if e.Time.IsZero() {
		e.Time = j.now()
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	// One write call per line: with O_APPEND it lands whole or, after a
	// crash, as a prefix that the reader recognises as torn.
	if _, err := j.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("journal: append: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: fsync: %w", err)
	}
	return nil
}

// Close closes the file.
func (j *Journal) Close() error { return j.f.Close() }

// TornLine is a journal line that could not be read because a crash cut it
// short.
type TornLine struct {
	Line  int // 1-based
	Bytes int
}

// JournalContents is what ReadJournal found.
type JournalContents struct {
	Entries []Entry
	// Torn are lines cut short by a crash: the lines after the last
	// entry (not yet repaired), and any line that OpenJournal marked as
	// repaired.
	Torn []TornLine
}

// CorruptError is a journal line that is neither an entry nor a torn line:
// the journal was edited or the disk is damaged.
type CorruptError struct {
	Path string
	Line int
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("journal %s line %d is damaged (not a crash-cut line): %v", e.Path, e.Line, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// ReadJournal reads the directory's journal. A missing journal is empty.
func (d *Dir) ReadJournal() (JournalContents, error) {
	return ReadJournal(d.Join(JournalFile))
}

// ReadJournal reads a journal file, tolerating lines cut short by a crash
// and reporting them in Torn.
func ReadJournal(path string) (JournalContents, error) {
	var out JournalContents
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("read journal: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	// Bad lines are held until the next entry: one followed by a repair
	// entry is a line a crash cut short; bad lines at the very end are
	// what a crash leaves before the next OpenJournal repairs them; any
	// other is damage.
	var pending []TornLine
	var firstErr *CorruptError
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) && len(line) == 0 {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return out, fmt.Errorf("read journal %s: %w", path, err)
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		var e Entry
		if uerr := json.Unmarshal(line, &e); uerr != nil {
			if firstErr == nil {
				firstErr = &CorruptError{Path: path, Line: n, Err: uerr}
			}
			pending = append(pending, TornLine{Line: n, Bytes: len(line)})
			continue
		}
		if len(pending) > 0 {
			if len(pending) > 1 || e.Action != ActionTornRepaired {
				return out, firstErr
			}
			out.Torn = append(out.Torn, pending...)
			pending, firstErr = nil, nil
		}
		out.Entries = append(out.Entries, e)
	}
	out.Torn = append(out.Torn, pending...)
	return out, nil
}
