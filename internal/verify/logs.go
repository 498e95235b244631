package verify

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultTLSErrorPatterns are the substrings (case-sensitive) that mark a
// log line as a TLS error: what Go's crypto/tls and crypto/x509 put into
// every error they return, and the alerts peers send back.
func DefaultTLSErrorPatterns() []string {
	return []string{"x509:", "unknown authority", "bad certificate", "tls:"}
}

// DefaultLogPodPrefixes are the pods whose container logs the scan reads:
// the control plane's static pods, kube-proxy and a cloud controller
// manager, each a "<prefix><suffix>" pod in kube-system.
func DefaultLogPodPrefixes() []string {
	return []string{
		"kube-apiserver-",
		"kube-controller-manager-",
		"kube-scheduler-",
		"etcd-",
		"kube-proxy-",
		"cloud-controller-manager-",
	}
}

// SincePlaceholder in a kubelet log command is replaced by the start of the
// window as journalctl reads it: "2006-01-02 15:04:05 UTC". Naming the zone
// makes the command mean the same instant whatever the node's time zone.
const SincePlaceholder = "{since}"

// SinceRFC3339Placeholder is replaced by the start of the window in RFC 3339
// ("2006-01-02T15:04:05Z"), for commands that do not read journalctl's
// format. journalctl itself accepts it only from systemd 250 or so.
const SinceRFC3339Placeholder = "{since-rfc3339}"

// DefaultKubeletLogCommand prints the kubelet's journal since the window
// began, one message per line, without journald's own prefix.
func DefaultKubeletLogCommand() []string {
	return []string{"journalctl", "-u", "kubelet", "--since", SincePlaceholder, "--no-pager", "-o", "cat"}
}

// expandCommand substitutes the placeholders in a command template. since
// is truncated to the second, which widens the window by less than a second
// rather than narrowing it.
func expandCommand(template []string, since time.Time) []string {
	s := since.UTC().Truncate(time.Second)
	r := strings.NewReplacer(
		SinceRFC3339Placeholder, s.Format(time.RFC3339),
		SincePlaceholder, s.Format("2006-01-02 15:04:05")+" UTC",
	)
	out := make([]string, len(template))
	for i, arg := range template {
		out[i] = r.Replace(arg)
	}
	return out
}

// Finding is one log line that looks like a TLS error.
type Finding struct {
	Node      string
	Component string
	// Source is the file on the node, or the command that printed the line.
	Source string
	// Time is when the line was logged; zero when the line carries no
	// time we could read.
	Time time.Time
	Line string
}

// maxFindingShown bounds how much of a line String shows.
const maxFindingShown = 300

// String renders "cp-1 kube-controller-manager: <line>", the line cut to
// a readable length.
func (f Finding) String() string {
	return f.Node + " " + f.Component + ": " + truncate(f.Line, maxFindingShown)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// lineMatcher decides whether a line is a TLS error: it contains one of
// patterns and none of ignore, all as case-sensitive substrings. A
// matching line that forgive covers is counted apart (see Forgiven).
type lineMatcher struct {
	patterns []string
	ignore   []string
	forgive  []Forgiven
}

// forgiven reports whether a matching line logged at t is one that forgive
// covers. A line whose time we could not read is never forgiven.
func (m lineMatcher) forgiven(t time.Time, line string) bool {
	if t.IsZero() {
		return false
	}
	return slices.ContainsFunc(m.forgive, func(f Forgiven) bool {
		return f.Contains != "" && strings.Contains(line, f.Contains) && !t.Before(f.From) && !t.After(f.To)
	})
}

func (m lineMatcher) match(line string) bool {
	// A line that is nothing but a pattern is a YAML key in a config dump
	// (the kubelet logs its configuration, "x509:" included), not an error.
	if slices.Contains(m.patterns, strings.TrimSpace(line)) {
		return false
	}
	hit := slices.ContainsFunc(m.patterns, func(p string) bool { return p != "" && strings.Contains(line, p) })
	if !hit {
		return false
	}
	return !slices.ContainsFunc(m.ignore, func(p string) bool { return p != "" && strings.Contains(line, p) })
}

// criLine is one physical line of a CRI container log:
//
//	2026-11-27T21:30:01.123456789Z stdout F message
//
// Tag P marks a partial line that the following lines of the same stream
// continue, up to one tagged F.
type criLine struct {
	Time    time.Time
	Stream  string
	Partial bool
	Message string
}

// parseCRILine reads one line of a CRI log. It reports false for anything
// else, e.g. a Docker JSON log line.
func parseCRILine(line string) (criLine, bool) {
	line = strings.TrimSuffix(line, "\r")
	ts, rest, ok := strings.Cut(line, " ")
	if !ok {
		return criLine{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return criLine{}, false
	}
	stream, rest, ok := strings.Cut(rest, " ")
	if !ok || (stream != "stdout" && stream != "stderr") {
		return criLine{}, false
	}
	tags, msg, _ := strings.Cut(rest, " ")
	tag, _, _ := strings.Cut(tags, ":")
	if tag != "P" && tag != "F" {
		return criLine{}, false
	}
	return criLine{Time: t, Stream: stream, Partial: tag == "P", Message: msg}, true
}

// maxLineKept bounds a log line as we keep it: a partial line that never
// ends, or a component dumping a huge object, must not fill our memory.
const maxLineKept = 16 << 10

// hit is a matching line before it is attributed to a node and component.
type hit struct {
	Time time.Time
	Line string
}

// matches collects hits, keeping the first keep and counting all, and
// counts the forgiven lines apart.
type matches struct {
	Keep     int
	Hits     []hit
	Total    int
	Forgiven int
}

// take adds a matching line, or counts it as forgiven.
func (m *matches) take(lm lineMatcher, h hit) {
	if lm.forgiven(h.Time, h.Line) {
		m.Forgiven++
		return
	}
	m.add(h)
}

func (m *matches) add(h hit) {
	m.Total++
	if len(m.Hits) < m.Keep {
		m.Hits = append(m.Hits, h)
	}
}

// criScan is what scanCRI found in one file.
type criScan struct {
	Matches matches
	// Parsed and Unparsed count physical lines; a file with lines but
	// none parsed is in a format we do not read, and must not pass as
	// clean.
	Parsed, Unparsed int
}

// scanCRI finds the logical lines of a CRI log logged at or after since that
// m matches. Partial lines are joined per stream before matching, so a
// pattern split across the kubelet's 16 KiB chunks is still found; a
// joined line takes the time of its first chunk.
func scanCRI(data []byte, since time.Time, m lineMatcher, keep int) criScan {
	type pending struct {
		time time.Time
		text strings.Builder
	}
	out := criScan{Matches: matches{Keep: keep}}
	partial := map[string]*pending{}
	emit := func(t time.Time, text string) {
		if !t.Before(since) && m.match(text) {
			out.Matches.take(m, hit{Time: t, Line: truncate(text, maxLineKept)})
		}
	}
	for raw := range bytes.Lines(data) {
		line := strings.TrimRight(string(raw), "\r\n")
		if line == "" {
			continue
		}
		cl, ok := parseCRILine(line)
		if !ok {
			out.Unparsed++
			continue
		}
		out.Parsed++
		p := partial[cl.Stream]
		if cl.Partial {
			if p == nil {
				p = &pending{time: cl.Time}
				partial[cl.Stream] = p
			}
			if p.text.Len() < maxLineKept {
				p.text.WriteString(cl.Message)
			}
			continue
		}
		if p == nil {
			emit(cl.Time, cl.Message)
			continue
		}
		if p.text.Len() < maxLineKept {
			p.text.WriteString(cl.Message)
		}
		emit(p.time, p.text.String())
		delete(partial, cl.Stream)
	}
	// A line still being written when we read the file.
	for _, stream := range []string{"stdout", "stderr"} {
		if p := partial[stream]; p != nil {
			emit(p.time, p.text.String())
		}
	}
	return out
}

// maxZoneOffset is the widest offset of any time zone from UTC (UTC+14):
// a klog time read in an unknown zone can be off by that much either way.
const maxZoneOffset = 14 * time.Hour

// parseKlogTime reads the time in a klog header
//
//	E1127 21:30:01.123456    1234 file.go:123] message
//
// which has no year and no zone. The time is read in loc and given the year
// that puts it closest to ref (so a December line read in January belongs to
// the year before).
func parseKlogTime(line string, ref time.Time, loc *time.Location) (time.Time, bool) {
	const layout = "0102 15:04:05.000000"
	if len(line) < 1+len(layout) || !strings.ContainsRune("IWEF", rune(line[0])) {
		return time.Time{}, false
	}
	if len(line) > 1+len(layout) && line[1+len(layout)] != ' ' {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation(layout, line[1:1+len(layout)], loc)
	if err != nil {
		return time.Time{}, false
	}
	refYear := ref.In(loc).Year()
	var best time.Time
	for _, year := range []int{refYear - 1, refYear, refYear + 1} {
		c := time.Date(year, t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc)
		if c.Month() != t.Month() {
			continue // 29 February in a year without one
		}
		if best.IsZero() || absDuration(c.Sub(ref)) < absDuration(best.Sub(ref)) {
			best = c
		}
	}
	return best, !best.IsZero()
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// klogBefore reports whether a klog header time lies clearly before since.
// With the writer's time zone unknown (loc nil) the header is read as UTC
// and only counts as before since when it is more than maxZoneOffset
// earlier, so that no zone can make a line from inside the window look old.
func klogBefore(t, since time.Time, loc *time.Location) bool {
	if loc == nil {
		return t.Before(since.Add(-maxZoneOffset))
	}
	return t.Before(since)
}

// scanKlog finds the lines of a command's output (the kubelet's journal)
// that m matches. The command is trusted to have printed only the window;
// lines whose klog header is clearly before since are dropped anyway, and
// lines without a header (continuations of a multi-line message) follow
// the header line before them.
func scanKlog(data []byte, since time.Time, loc *time.Location, m lineMatcher, keep int) matches {
	out := matches{Keep: keep}
	readIn := loc
	if readIn == nil {
		readIn = time.UTC
	}
	var (
		entryTime time.Time
		old       bool
	)
	for raw := range bytes.Lines(data) {
		line := strings.TrimRight(string(raw), "\r\n")
		if line == "" {
			continue
		}
		if t, ok := parseKlogTime(line, since, readIn); ok {
			entryTime, old = t, klogBefore(t, since, loc)
		}
		if old || !m.match(line) {
			continue
		}
		out.take(m, hit{Time: entryTime, Line: truncate(line, maxLineKept)})
	}
	return out
}

// podLogComponent reads a /var/log/pods directory name,
// "<namespace>_<pod>_<uid>", and returns the component the pod runs when
// it is in namespace and its name starts with one of prefixes (the longest
// match wins): pod kube-proxy-abcde → kube-proxy.
func podLogComponent(dir, namespace string, prefixes []string) (string, bool) {
	parts := strings.Split(dir, "_")
	if len(parts) != 3 || parts[0] != namespace || parts[1] == "" || parts[2] == "" {
		return "", false
	}
	pod := parts[1]
	best := ""
	for _, p := range prefixes {
		if p != "" && strings.HasPrefix(pod, p) && len(pod) > len(p) && len(p) > len(best) {
			best = p
		}
	}
	if best == "" {
		return "", false
	}
	return strings.TrimSuffix(best, "-"), true
}

// isContainerLog reports whether a file in a container's log directory is
// one to scan: the current "<restart>.log" or a rotated, uncompressed
// "<restart>.log.<timestamp>" (kubelet writes 20060102-150405). Compressed
// rotations (.gz) are older than anything a phase produced.
func isContainerLog(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	if strings.HasSuffix(name, ".log") {
		return len(name) > len(".log")
	}
	i := strings.LastIndex(name, ".log.")
	if i <= 0 {
		return false
	}
	suffix := name[i+len(".log."):]
	return suffix != "" && strings.Trim(suffix, "0123456789-") == ""
}

// sortFindings orders findings by time, those without one last, keeping
// the order of discovery among equals.
func sortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		switch {
		case a.Time.IsZero() && b.Time.IsZero():
			return 0
		case a.Time.IsZero():
			return 1
		case b.Time.IsZero():
			return -1
		}
		return a.Time.Compare(b.Time)
	})
}

// TLSErrorsFound is the log gate's failure: TLS errors were logged since
// the phase began.
type TLSErrorsFound struct {
	Since    time.Time
	Findings []Finding
	Total    int
}

// maxFindingsInError bounds how many lines the error message quotes; the
// rest are in Findings.
const maxFindingsInError = 10

func (e *TLSErrorsFound) Error() string {
	var b strings.Builder
	noun := "lines"
	if e.Total == 1 {
		noun = "line"
	}
	fmt.Fprintf(&b, "%d TLS error %s logged since %s:", e.Total, noun, e.Since.UTC().Format(time.RFC3339))
	shown := min(len(e.Findings), maxFindingsInError)
	for _, f := range e.Findings[:shown] {
		b.WriteString("\n\t")
		b.WriteString(f.String())
	}
	if rest := e.Total - shown; rest > 0 {
		fmt.Fprintf(&b, "\n\t… and %d more", rest)
	}
	b.WriteString("\nsomething still presents or trusts a certificate the phase replaced: find the component and peer in the lines above and fix it before going on")
	return b.String()
}
