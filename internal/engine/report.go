package engine

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/yaml"
)

// Outcome is what happened to a step (or a gate) in one run.
type Outcome string

const (
	Planned   Outcome = "planned"   // plan: apply would change it
	Unchanged Outcome = "unchanged" // already done; nothing touched
	Changed   Outcome = "changed"   // apply changed it
	Undone    Outcome = "undone"    // rollback changed it back
	Failed    Outcome = "failed"
	Passed    Outcome = "passed" // a gate verified
	// Waiting: a step or gate still running, reported while it runs
	// longer than the runner's HeartbeatAfter. Detail says what it waits
	// for (see Wait), Duration how long it has run. Its final event comes
	// after its last Waiting one.
	Waiting Outcome = "waiting"
)

// Event is one step's (or one gate's) outcome. Reporters get exactly one per
// step per run, besides the Waiting ones while it runs.
type Event struct {
	Phase    string
	Step     string
	Gate     bool // Step names the phase's gate
	Target   Target
	Outcome  Outcome
	Detail   string
	Err      error
	Duration time.Duration
	// Plan is what apply would change; set on planned events whose step
	// has a Describe.
	Plan *Plan
}

// Reporter receives progress events. The runner never calls it from two
// goroutines at once.
type Reporter interface {
	Report(Event)
}

// ReporterFunc adapts a function to Reporter.
type ReporterFunc func(Event)

func (f ReporterFunc) Report(e Event) { f(e) }

// Recorder keeps every event, in the order reported; useful to tests and to
// a CLI that prints a summary at the end.
type Recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *Recorder) Report(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// Events returns a copy of what was reported so far.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// HumanReporter writes one line per event for an operator:
//
//	[trust] cp-1: kube-controller-manager restarted, kube-root-ca.crt in 37/37 namespaces (4.1s)
//
// Write errors are kept (Err) rather than stopping a rotation half way
// because a terminal went away.
//
// Waiting events are shown only when Live (W is a terminal): as one line
// rewritten in place, which the next event replaces. With Term, the
// terminal that other writers share, the reporter writes through it and
// W is not used.
type HumanReporter struct {
	W    io.Writer
	Live bool
	Term *LiveTerminal
	err  error
	// showing: a Waiting line is on the terminal, not yet replaced.
	showing bool
}

// clearLine returns the cursor to the start of the line and clears it.
const clearLine = "\r\x1b[K"

func (h *HumanReporter) Report(e Event) {
	if h.Term != nil {
		var err error
		if e.Outcome == Waiting {
			err = h.Term.show(strings.TrimSuffix(HumanLine(e), "\n"))
		} else {
			err = h.Term.print(HumanLine(e))
		}
		if err != nil && h.err == nil {
			h.err = fmt.Errorf("write progress: %w", err)
		}
		return
	}
	var out string
	switch {
	case e.Outcome == Waiting && !h.Live:
		return
	case e.Outcome == Waiting:
		out = clearLine + strings.TrimSuffix(HumanLine(e), "\n")
		h.showing = true
	case h.showing:
		out = clearLine + HumanLine(e)
		h.showing = false
	default:
		out = HumanLine(e)
	}
	if _, err := io.WriteString(h.W, out); err != nil && h.err == nil {
		h.err = fmt.Errorf("write progress: %w", err)
	}
}

// Err is the first write error, if any.
func (h *HumanReporter) Err() error { return h.err }

// HumanLine renders an event the way HumanReporter prints it, newline
// included; a planned step's diffs follow on indented lines.
func HumanLine(e Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] ", e.Phase)
	if e.Gate {
		b.WriteString("gate ")
	}
	if t := e.Target.String(); t != "" && !e.Gate {
		b.WriteString(t + ": ")
	}
	switch e.Outcome {
	case Changed:
		b.WriteString(orName(e.Detail, e.Step))
	case Unchanged:
		fmt.Fprintf(&b, "%s: already done", e.Step)
		if e.Detail != "" {
			fmt.Fprintf(&b, " (%s)", e.Detail)
		}
	case Undone:
		fmt.Fprintf(&b, "%s: undone", e.Step)
		if e.Detail != "" {
			b.WriteString(", " + e.Detail)
		}
	case Failed:
		fmt.Fprintf(&b, "%s: failed: %v", e.Step, e.Err)
	case Passed:
		fmt.Fprintf(&b, "%s: passed", e.Step)
		if e.Detail != "" {
			b.WriteString(", " + e.Detail)
		}
	case Waiting:
		fmt.Fprintf(&b, "%s: waiting", e.Step)
		if e.Detail != "" {
			b.WriteString(" for " + e.Detail)
		}
	case Planned:
		if e.Gate {
			fmt.Fprintf(&b, "%s: will verify", e.Step)
			break
		}
		fmt.Fprintf(&b, "%s: will change", e.Step)
		if e.Plan != nil && e.Plan.Summary != "" {
			b.WriteString(": " + e.Plan.Summary)
		} else if e.Detail != "" {
			b.WriteString(": " + e.Detail)
		}
	default:
		fmt.Fprintf(&b, "%s: %s", e.Step, e.Outcome)
	}
	if e.Outcome != Planned {
		fmt.Fprintf(&b, " (%s)", seconds(e.Duration))
	}
	b.WriteString("\n")
	if e.Outcome == Planned && e.Plan != nil {
		for _, d := range e.Plan.Diffs {
			b.WriteString("    " + diffLine(d) + "\n")
		}
		for _, r := range e.Plan.Restarts {
			if r.Node != "" {
				fmt.Fprintf(&b, "    restarts %s on %s\n", r.Component, r.Node)
			} else {
				fmt.Fprintf(&b, "    restarts %s\n", r.Component)
			}
		}
	}
	return b.String()
}

// diffLine is a one-line summary of a diff; the CLI renders the full
// before/after (unified diffs, certificate tables) from the Diff itself.
func diffLine(d Diff) string {
	where := d.Path
	if d.Node != "" && (d.Kind == DiffFile || d.Kind == DiffCert) {
		where = d.Node + ":" + d.Path
	}
	if d.Field != "" {
		where += " " + d.Field
	}
	switch d.Kind {
	case DiffFile:
		return fmt.Sprintf("file %s: %s → %s", where, shortHash(d.BeforeSHA256), shortHash(d.AfterSHA256))
	case DiffCert:
		before, after := certLine(d.BeforeCert), certLine(d.AfterCert)
		if b, a := d.BeforeCert, d.AfterCert; b != nil && a != nil && b.Subject == a.Subject && b.Issuer == a.Issuer &&
			b.SPKISHA256 == a.SPKISHA256 && b.CertificateSHA256 != a.CertificateSHA256 {
			// A renewed CA: the same name and key, another certificate.
			before += ", cert " + shortHash(b.CertificateSHA256)
			after += ", cert " + shortHash(a.CertificateSHA256)
		}
		return fmt.Sprintf("cert %s: %s → %s", where, before, after)
	default:
		return fmt.Sprintf("%s %s: %s → %s", d.Kind, where, value(d.Before), value(d.After))
	}
}

func shortHash(h string) string {
	if h == "" {
		return "(absent)"
	}
	return "sha256:" + h[:min(12, len(h))]
}

func certLine(c *CertSummary) string {
	if c == nil {
		return "(absent)"
	}
	return fmt.Sprintf("%q issued by %q, spki %s, until %s", c.Subject, c.Issuer,
		c.SPKISHA256[:min(12, len(c.SPKISHA256))], c.NotAfter.Format(time.DateOnly))
}

func value(s *string) string {
	if s == nil {
		return "(absent)"
	}
	return *s
}

func orName(detail, name string) string {
	if detail != "" {
		return detail
	}
	return name
}

func seconds(d time.Duration) string {
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// APIVersion is the version of carotate's structured output: every JSON
// document and event carries it with its kind, and a change that breaks a
// reader changes it.
const APIVersion = "carotate.io/v1alpha1"

// JSONReporter writes one JSON object per line per event, for
// `--output json`, or one YAML document per event for `--output yaml`.
type JSONReporter struct {
	W io.Writer
	// YAML writes each event as a YAML document ("---" first) instead.
	YAML bool
	// Rotation is the rotation id every event names ("" for none).
	Rotation string
	// Now stamps each event; time.Now when nil.
	Now func() time.Time
	// HeartbeatEvery is the least time between two Waiting events of one
	// step (DefaultJSONHeartbeat when zero); the others are dropped.
	HeartbeatEvery time.Duration
	err            error
	lastBeat       map[string]time.Time
}

// DefaultJSONHeartbeat: in JSON, a step that waits says so every 5 s.
const DefaultJSONHeartbeat = 5 * time.Second

// jsonEvent is the wire form of an Event: stable field names, the error as
// text and the duration in seconds.
type jsonEvent struct {
	APIVersion string  `json:"apiVersion"`
	Kind       string  `json:"kind"`
	Time       string  `json:"time"`
	Rotation   string  `json:"rotation,omitempty"`
	Phase      string  `json:"phase"`
	Step       string  `json:"step"`
	Gate       bool    `json:"gate,omitempty"`
	Node       string  `json:"node,omitempty"`
	Object     string  `json:"object,omitempty"`
	Outcome    Outcome `json:"outcome"`
	Detail     string  `json:"detail,omitempty"`
	Error      string  `json:"error,omitempty"`
	Duration   string  `json:"duration"`
	Seconds    float64 `json:"seconds"`
	Plan       *Plan   `json:"plan,omitempty"`
}

func (j *JSONReporter) Report(e Event) {
	now := time.Now
	if j.Now != nil {
		now = j.Now
	}
	if e.Outcome == Waiting {
		every := j.HeartbeatEvery
		if every <= 0 {
			every = DefaultJSONHeartbeat
		}
		key := e.Phase + "\x00" + e.Step + "\x00" + e.Target.String()
		if last, ok := j.lastBeat[key]; ok && now().Sub(last) < every {
			return
		}
		if j.lastBeat == nil {
			j.lastBeat = map[string]time.Time{}
		}
		j.lastBeat[key] = now()
	}
	d := e.Duration.Round(time.Millisecond)
	je := jsonEvent{
		APIVersion: APIVersion, Kind: "Event", Time: now().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		Rotation: j.Rotation,
		Phase:    e.Phase, Step: e.Step, Gate: e.Gate,
		Node: e.Target.Node, Object: e.Target.Object,
		Outcome: e.Outcome, Detail: e.Detail, Plan: e.Plan,
		Duration: d.String(), Seconds: math.Round(e.Duration.Seconds()*1000) / 1000,
	}
	if e.Err != nil {
		je.Error = e.Err.Error()
	}
	line, err := json.Marshal(je)
	if err == nil && j.YAML {
		line, err = yaml.JSONToYAML(line)
		line = append([]byte("---\n"), line...)
	} else {
		line = append(line, '\n')
	}
	if err == nil {
		_, err = j.W.Write(line)
	}
	if err != nil && j.err == nil {
		j.err = fmt.Errorf("write json progress: %w", err)
	}
}

// Err is the first encoding or write error, if any.
func (j *JSONReporter) Err() error { return j.err }
