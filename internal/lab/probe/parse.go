package probe

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Report is what a probe log says, read by ParseLog.
type Report struct {
	// Node and Pod are from the last start record.
	Node, Pod string
	// Runs counts start records: more than one means the container
	// restarted and the logs were concatenated.
	Runs int
	// OK and Failed add up each run's last summary or stop record. A run
	// killed without a stop record loses the attempts after its last
	// summary (at most one summary interval).
	OK, Failed int64
	// Windows are the failure windows in log order. A window whose
	// "failing" record has no matching "window" record, because the
	// probe was killed or the log ends, has Open set, a zero End and
	// Failed 1: the log does not say how many attempts failed after the
	// first.
	Windows []Window
	// RootCAs lists each root_ca record in log order.
	RootCAs []RootCARecord
	// First and Last are the times of the first and last records.
	First, Last time.Time
	// Records counts the lines that were probe records; Skipped counts
	// the lines that were not (see ParseLog).
	Records, Skipped int
}

// FailuresBetween returns the windows that overlap [from, to]. An open
// window without an end is taken to last until the end of time.
func (r Report) FailuresBetween(from, to time.Time) []Window {
	var out []Window
	for _, w := range r.Windows {
		if w.Start.After(to) {
			continue
		}
		if !w.End.IsZero() && w.End.Before(from) {
			continue
		}
		out = append(out, w)
	}
	return out
}

// ParseLog reads a probe log: either the probe's raw stdout, or a CRI log
// file from /var/log/pods, whose lines look like
//
//	2026-11-27T18:00:00.123456789Z stdout F {"time":...}
//
// CRI partial lines (tag P) are joined with the lines that follow on the
// same stream until a full line (tag F). stderr lines are ignored.
//
// Lines that are not probe records (stderr, blank lines, text that is not
// JSON, JSON without a known "kind", a line cut short when the container
// was killed) are skipped and counted in Report.Skipped rather than
// failing the parse: a log file the kubelet wrote during an outage is
// exactly what must still be readable. Callers that want a clean log check
// Skipped. Only a read error fails ParseLog.
func ParseLog(r io.Reader) (Report, error) {
	var p logParser
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			p.line(strings.TrimRight(line, "\r\n"))
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Report{}, fmt.Errorf("read probe log: %w", err)
		}
	}
	// Partial lines never completed are a cut-off record.
	for _, pending := range p.partial {
		if pending != "" {
			p.report.Skipped++
		}
	}
	p.endRun()
	return p.report, nil
}

// logParser holds the state between lines.
type logParser struct {
	report  Report
	partial map[string]string // CRI stream → content of P lines so far
	// The current run's latest totals and open window.
	runOK, runFailed int64
	open             *Window
}

// line handles one physical line.
func (p *logParser) line(line string) {
	if strings.HasPrefix(line, "{") {
		p.record(line)
		return
	}
	// CRI: time, stream, tags, content; content may be empty.
	parts := strings.SplitN(line, " ", 4)
	if len(parts) < 3 {
		p.report.Skipped++
		return
	}
	if _, err := time.Parse(time.RFC3339Nano, parts[0]); err != nil {
		p.report.Skipped++
		return
	}
	stream, tags := parts[1], parts[2]
	content := ""
	if len(parts) == 4 {
		content = parts[3]
	}
	if stream != "stdout" {
		p.report.Skipped++
		return
	}
	tag, _, _ := strings.Cut(tags, ":")
	switch tag {
	case "P":
		if p.partial == nil {
			p.partial = make(map[string]string)
		}
		p.partial[stream] += content
	case "F":
		content = p.partial[stream] + content
		delete(p.partial, stream)
		p.record(content)
	default:
		p.report.Skipped++
	}
}

// logLine is the union of every record kind's fields.
type logLine struct {
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`
	Node       string    `json:"node"`
	Pod        string    `json:"pod"`
	OK         int64     `json:"ok"`
	Failed     int64     `json:"failed"`
	Since      time.Time `json:"since"`
	Error      string    `json:"error"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	FirstError string    `json:"first_error"`
	LastError  string    `json:"last_error"`
	Open       bool      `json:"open"`
	SHA256     string    `json:"sha256"`
	Certs      int       `json:"certs"`
}

// record handles one complete JSON line.
func (p *logParser) record(text string) {
	var l logLine
	if err := json.Unmarshal([]byte(text), &l); err != nil || !knownKind(l.Kind) {
		p.report.Skipped++
		return
	}
	r := &p.report
	r.Records++
	if r.First.IsZero() {
		r.First = l.Time
	}
	r.Last = l.Time
	switch l.Kind {
	case KindStart:
		p.endRun()
		r.Runs++
		r.Node, r.Pod = l.Node, l.Pod
	case KindSummary, KindStop:
		p.runOK, p.runFailed = l.OK, l.Failed
	case KindFailing:
		p.open = &Window{Start: l.Since, Failed: 1, FirstError: l.Error, LastError: l.Error, Open: true}
	case KindWindow:
		p.open = nil
		r.Windows = append(r.Windows, Window{
			Start: l.Start, End: l.End, Failed: l.Failed,
			FirstError: l.FirstError, LastError: l.LastError, Open: l.Open,
		})
	case KindRootCA:
		r.RootCAs = append(r.RootCAs, RootCARecord{Time: l.Time, Kind: l.Kind, SHA256: l.SHA256, Certs: l.Certs})
	}
}

// endRun folds the finished run into the report.
func (p *logParser) endRun() {
	p.report.OK += p.runOK
	p.report.Failed += p.runFailed
	p.runOK, p.runFailed = 0, 0
	if p.open != nil {
		p.report.Windows = append(p.report.Windows, *p.open)
		p.open = nil
	}
}

func knownKind(kind string) bool {
	switch kind {
	case KindStart, KindRootCA, KindFailing, KindWindow, KindSummary, KindStop:
		return true
	}
	return false
}
