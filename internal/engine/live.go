package engine

import (
	"io"
	"sync"
)

// LiveTerminal is a terminal on which HumanReporter rewrites one line in
// place (the step being waited for), shared with the log, which writes to
// the same terminal through another stream (stderr): a log line clears
// the live line first and draws it again after, so that the two never
// run into one line.
type LiveTerminal struct {
	mu   sync.Mutex
	out  io.Writer
	line string // the live line on the terminal, "" when there is none
}

// NewLiveTerminal is the live line on out, the progress stream.
func NewLiveTerminal(out io.Writer) *LiveTerminal { return &LiveTerminal{out: out} }

// show replaces whatever line is live by line, with no newline.
func (t *LiveTerminal) show(line string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.line = line
	_, err := io.WriteString(t.out, clearLine+line)
	return err
}

// print writes s, whole lines, in place of the live line, which is then
// gone.
func (t *LiveTerminal) print(s string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.line != "" {
		s = clearLine + s
		t.line = ""
	}
	_, err := io.WriteString(t.out, s)
	return err
}

// Beside is w, another stream to the same terminal, writing above the
// live line.
func (t *LiveTerminal) Beside(w io.Writer) io.Writer { return besideLive{t: t, w: w} }

type besideLive struct {
	t *LiveTerminal
	w io.Writer
}

func (b besideLive) Write(p []byte) (int, error) {
	b.t.mu.Lock()
	defer b.t.mu.Unlock()
	if b.t.line == "" {
		return b.w.Write(p)
	}
	io.WriteString(b.t.out, clearLine)
	n, err := b.w.Write(p)
	io.WriteString(b.t.out, b.t.line)
	return n, err
}
