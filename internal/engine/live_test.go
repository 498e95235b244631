package engine

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// screen is what a terminal shows after out was written to it: each
// "\r\x1b[K" returns to the start of the line and clears it.
func screen(out string) []string {
	var lines []string
	var cur string
	for len(out) > 0 {
		switch {
		case strings.HasPrefix(out, clearLine):
			cur, out = "", out[len(clearLine):]
		case out[0] == '\n':
			lines, cur, out = append(lines, cur), "", out[1:]
		default:
			cur, out = cur+out[:1], out[1:]
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

// TestLiveTerminalKeepsLogLinesApart: log lines written to stderr while a
// waiting step's line is live on the same terminal each get a line of
// their own, and the live line comes back under them; the next event
// replaces it.
func TestLiveTerminalKeepsLogLinesApart(t *testing.T) {
	var tty bytes.Buffer // stdout and stderr, one terminal
	term := NewLiveTerminal(&tty)
	log := slog.New(slog.NewTextHandler(term.Beside(&tty), &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
	h := &HumanReporter{Term: term, Live: true}
	waiting := Event{Phase: "finalize", Step: "kube-apiserver re-reads apiserver-kubelet-client.crt", Outcome: Waiting, Detail: "the re-read", Duration: 10 * time.Second}
	log.Info("before any live line")
	h.Report(waiting)
	log.Info("waiting", "left", "4m30s")
	waiting.Duration = 20 * time.Second
	h.Report(waiting)
	log.Info("waiting", "left", "4m20s")
	h.Report(Event{Phase: "finalize", Step: "kube-apiserver re-reads apiserver-kubelet-client.crt", Outcome: Changed, Detail: "waited 4m38s", Duration: 278 * time.Second})
	log.Info("after the step")
	want := []string{
		`level=INFO msg="before any live line"`,
		`level=INFO msg=waiting left=4m30s`,
		`level=INFO msg=waiting left=4m20s`,
		"[finalize] waited 4m38s (278.0s)",
		`level=INFO msg="after the step"`,
	}
	if diff := cmp.Diff(want, screen(tty.String())); diff != "" {
		t.Errorf("the terminal shows (-want +got):\n%s\nwritten: %q", diff, tty.String())
	}
	// While the step waits, the live line is under the last log line.
	mid := tty.String()[:strings.Index(tty.String(), clearLine+"[finalize] waited")]
	if got := screen(mid); got[len(got)-1] != strings.TrimSuffix(HumanLine(waiting), "\n") {
		t.Errorf("while waiting the last line is %q", got[len(got)-1])
	}
	if h.Err() != nil {
		t.Error(h.Err())
	}
}

// A log line with no live line is written as it is.
func TestBesideLiveWithoutLiveLine(t *testing.T) {
	var out, errOut bytes.Buffer
	w := NewLiveTerminal(&out).Beside(&errOut)
	fmt.Fprintln(w, "a log line")
	if out.Len() != 0 || errOut.String() != "a log line\n" {
		t.Errorf("stdout %q, stderr %q", out.String(), errOut.String())
	}
}
