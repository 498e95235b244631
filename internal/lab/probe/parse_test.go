package probe

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// cri wraps content the way containerd writes /var/log/pods files.
func cri(stream, tag, content string) string {
	return "2026-11-27T18:00:00.123456789Z " + stream + " " + tag + " " + content
}

const (
	startLine   = `{"time":"2026-11-27T18:00:00Z","kind":"start","node":"w1","pod":"probe-1","namespace":"ns","host":"https://10.96.0.1:443","path":"/api/v1/namespaces/ns/configmaps/kube-root-ca.crt","interval_ms":500,"timeout_ms":3000}`
	rootCALine  = `{"time":"2026-11-27T18:00:00.5Z","kind":"root_ca","sha256":"abc","certs":2}`
	summaryLine = `{"time":"2026-11-27T18:00:05Z","kind":"summary","node":"w1","pod":"probe-1","ok":10,"failed":0,"failing":false}`
	failingLine = `{"time":"2026-11-27T18:00:06Z","kind":"failing","since":"2026-11-27T18:00:06Z","error":"dial tcp 10.96.0.1:443: connect: connection refused"}`
	windowLine  = `{"time":"2026-11-27T18:00:09Z","kind":"window","start":"2026-11-27T18:00:06Z","end":"2026-11-27T18:00:09Z","failed":6,"first_error":"dial tcp 10.96.0.1:443: connect: connection refused","last_error":"x509: certificate signed by unknown authority"}`
	stopLine    = `{"time":"2026-11-27T18:00:10Z","kind":"stop","node":"w1","pod":"probe-1","ok":14,"failed":6}`
)

var outage = Window{
	Start:      ts("2026-11-27T18:00:06Z"),
	End:        ts("2026-11-27T18:00:09Z"),
	Failed:     6,
	FirstError: "dial tcp 10.96.0.1:443: connect: connection refused",
	LastError:  "x509: certificate signed by unknown authority",
}

func TestParseLog(t *testing.T) {
	fullRun := Report{
		Node: "w1", Pod: "probe-1", Runs: 1, OK: 14, Failed: 6,
		Windows: []Window{outage},
		RootCAs: []RootCARecord{{Time: ts("2026-11-27T18:00:00.5Z"), Kind: KindRootCA, SHA256: "abc", Certs: 2}},
		First:   ts("2026-11-27T18:00:00Z"), Last: ts("2026-11-27T18:00:10Z"),
		Records: 6,
	}
	withSkipped := func(r Report, n int) Report { r.Skipped = n; return r }
	lines := []string{startLine, rootCALine, summaryLine, failingLine, windowLine, stopLine}

	tests := []struct {
		name string
		log  string
		want Report
	}{
		{name: "raw stdout", log: strings.Join(lines, "\n") + "\n", want: fullRun},
		{name: "no final newline", log: strings.Join(lines, "\n"), want: fullRun},
		{name: "crlf", log: strings.Join(lines, "\r\n"), want: fullRun},
		{
			name: "cri log file",
			log:  joinCRI(lines) + "\n",
			want: fullRun,
		},
		{
			name: "cri partial lines joined, stderr in between ignored",
			log: strings.Join([]string{
				cri("stdout", "F", startLine),
				cri("stdout", "F", rootCALine),
				cri("stdout", "P", summaryLine[:20]),
				cri("stderr", "F", "W1127 client-go warning"),
				cri("stdout", "P", summaryLine[20:40]),
				cri("stdout", "F", summaryLine[40:]),
				cri("stdout", "F", failingLine),
				cri("stdout", "F", windowLine),
				cri("stdout", "F", stopLine),
			}, "\n"),
			want: withSkipped(fullRun, 1),
		},
		{
			name: "garbage is skipped and counted",
			log: strings.Join([]string{
				"",
				"plain text",
				startLine,
				`{"time":"2026-11-27T18:00:00Z","kind":"something-new"}`,
				rootCALine,
				`{"time": broken`,
				cri("stdout", "X", summaryLine),
				"notatime stdout F " + summaryLine,
				summaryLine, failingLine, windowLine, stopLine,
				cri("stdout", "P", `{"time":"2026-11-27T18:00:11Z","ki`),
			}, "\n"),
			want: withSkipped(fullRun, 7),
		},
		{
			name: "container restarts add up, killed run keeps its open window",
			log: strings.Join([]string{
				startLine, summaryLine, failingLine,
				// killed here: no window, no stop
				startLine, windowLine, stopLine,
			}, "\n"),
			want: Report{
				Node: "w1", Pod: "probe-1", Runs: 2, OK: 10 + 14, Failed: 6,
				Windows: []Window{
					{Start: outage.Start, Failed: 1, FirstError: outage.FirstError, LastError: outage.FirstError, Open: true},
					outage,
				},
				First: ts("2026-11-27T18:00:00Z"), Last: ts("2026-11-27T18:00:10Z"),
				Records: 6,
			},
		},
		{
			name: "stopped mid-outage",
			log: strings.Join([]string{
				startLine, failingLine,
				`{"time":"2026-11-27T18:00:08Z","kind":"window","start":"2026-11-27T18:00:06Z","end":"2026-11-27T18:00:08Z","failed":4,"first_error":"a","last_error":"b","open":true}`,
				`{"time":"2026-11-27T18:00:08Z","kind":"stop","node":"w1","pod":"probe-1","ok":0,"failed":4}`,
			}, "\n"),
			want: Report{
				Node: "w1", Pod: "probe-1", Runs: 1, Failed: 4,
				Windows: []Window{{Start: outage.Start, End: ts("2026-11-27T18:00:08Z"), Failed: 4, FirstError: "a", LastError: "b", Open: true}},
				First:   ts("2026-11-27T18:00:00Z"), Last: ts("2026-11-27T18:00:08Z"),
				Records: 4,
			},
		},
		{name: "empty", log: "", want: Report{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLog(strings.NewReader(tt.log))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseLog (-want +got):\n%s", diff)
			}
		})
	}
}

func joinCRI(lines []string) string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = cri("stdout", "F", l)
	}
	return strings.Join(out, "\n")
}

func TestFailuresBetween(t *testing.T) {
	open := Window{Start: ts("2026-11-27T18:10:00Z"), Failed: 1, Open: true}
	r := Report{Windows: []Window{outage, open}}
	tests := []struct {
		name     string
		from, to string
		want     []Window
	}{
		{name: "before everything", from: "2026-11-27T17:00:00Z", to: "2026-11-27T18:00:05Z"},
		{name: "covers the outage", from: "2026-11-27T18:00:00Z", to: "2026-11-27T18:05:00Z", want: []Window{outage}},
		{name: "inside the outage", from: "2026-11-27T18:00:07Z", to: "2026-11-27T18:00:08Z", want: []Window{outage}},
		{name: "touches the end", from: "2026-11-27T18:00:09Z", to: "2026-11-27T18:00:09Z", want: []Window{outage}},
		{name: "between windows", from: "2026-11-27T18:00:10Z", to: "2026-11-27T18:09:00Z"},
		{name: "open window lasts", from: "2026-11-27T19:00:00Z", to: "2026-11-27T20:00:00Z", want: []Window{open}},
		{name: "all", from: "2026-11-27T00:00:00Z", to: "2026-11-28T00:00:00Z", want: []Window{outage, open}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.FailuresBetween(ts(tt.from), ts(tt.to))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("FailuresBetween (-want +got):\n%s", diff)
			}
		})
	}
}
