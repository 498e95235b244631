package verify

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseCRILine(t *testing.T) {
	ts := time.Date(2026, 11, 27, 21, 30, 1, 123456789, time.UTC)
	tests := []struct {
		name   string
		line   string
		want   criLine
		wantOK bool
	}{
		{name: "full stdout", line: "2026-11-27T21:30:01.123456789Z stdout F hello world",
			want: criLine{Time: ts, Stream: "stdout", Message: "hello world"}, wantOK: true},
		{name: "partial stderr", line: "2026-11-27T21:30:01.123456789Z stderr P E1127 part",
			want: criLine{Time: ts, Stream: "stderr", Partial: true, Message: "E1127 part"}, wantOK: true},
		{name: "empty message with separator", line: "2026-11-27T21:30:01.123456789Z stdout F ",
			want: criLine{Time: ts, Stream: "stdout"}, wantOK: true},
		{name: "empty message without separator", line: "2026-11-27T21:30:01.123456789Z stdout F",
			want: criLine{Time: ts, Stream: "stdout"}, wantOK: true},
		{name: "message keeps its spaces", line: "2026-11-27T21:30:01.123456789Z stdout F  a  b ",
			want: criLine{Time: ts, Stream: "stdout", Message: " a  b "}, wantOK: true},
		{name: "zone offset", line: "2026-11-27T22:30:01.123456789+01:00 stdout F x",
			want: criLine{Time: ts, Stream: "stdout", Message: "x"}, wantOK: true},
		{name: "extra tags", line: "2026-11-27T21:30:01.123456789Z stdout F:x tail",
			want: criLine{Time: ts, Stream: "stdout", Message: "tail"}, wantOK: true},
		{name: "carriage return", line: "2026-11-27T21:30:01.123456789Z stdout F msg\r",
			want: criLine{Time: ts, Stream: "stdout", Message: "msg"}, wantOK: true},
		{name: "docker json", line: `{"log":"x509: bad\n","stream":"stderr","time":"2026-11-27T21:30:01.123456789Z"}`},
		{name: "bad stream", line: "2026-11-27T21:30:01.123456789Z stdin F x"},
		{name: "bad tag", line: "2026-11-27T21:30:01.123456789Z stdout X x"},
		{name: "bad time", line: "2026-11-27 21:30:01 stdout F x"},
		{name: "klog line", line: "E1127 21:30:01.123456 1 x.go:1] x509: oops"},
		{name: "empty", line: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseCRILine(tt.line)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if diff := cmp.Diff(tt.want, got, cmpTime); diff != "" {
				t.Errorf("parseCRILine mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// cmpTime compares instants, not locations.
var cmpTime = cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

func TestParseKlogTime(t *testing.T) {
	utc := time.UTC
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		name   string
		line   string
		ref    time.Time
		loc    *time.Location
		want   time.Time
		wantOK bool
	}{
		{name: "error line", line: "E1127 21:30:01.123456    1234 file.go:123] x509: oops", ref: fixedNow(), loc: utc,
			want: time.Date(2026, 11, 27, 21, 30, 1, 123456000, utc), wantOK: true},
		{name: "info, header only", line: "I1127 21:30:01.000001", ref: fixedNow(), loc: utc,
			want: time.Date(2026, 11, 27, 21, 30, 1, 1000, utc), wantOK: true},
		{name: "read in the writer's zone", line: "W1127 22:30:01.000000 1 f.go:1] x", ref: fixedNow(), loc: berlin,
			want: time.Date(2026, 11, 27, 21, 30, 1, 0, utc), wantOK: true},
		{name: "december line read in january", line: "F1231 23:59:59.000000 1 f.go:1] x", ref: time.Date(2027, 1, 1, 0, 0, 10, 0, utc), loc: utc,
			want: time.Date(2026, 12, 31, 23, 59, 59, 0, utc), wantOK: true},
		{name: "january line read in december", line: "I0101 00:00:05.000000 1 f.go:1] x", ref: time.Date(2026, 12, 31, 23, 59, 0, 0, utc), loc: utc,
			want: time.Date(2027, 1, 1, 0, 0, 5, 0, utc), wantOK: true},
		{name: "29 february", line: "I0229 12:00:00.000000 1 f.go:1] x", ref: time.Date(2028, 3, 1, 0, 0, 0, 0, utc), loc: utc,
			want: time.Date(2028, 2, 29, 12, 0, 0, 0, utc), wantOK: true},
		{name: "not a severity", line: "X1127 21:30:01.123456 1 f.go:1] x", ref: fixedNow(), loc: utc},
		{name: "no header", line: "x509: certificate signed by unknown authority", ref: fixedNow(), loc: utc},
		{name: "short", line: "E1127 21:30", ref: fixedNow(), loc: utc},
		{name: "bad month", line: "E1327 21:30:01.123456 1 f.go:1] x", ref: fixedNow(), loc: utc},
		{name: "glued to the rest", line: "E1127 21:30:01.1234567 1 f.go:1] x", ref: fixedNow(), loc: utc},
		{name: "word that starts like one", line: "Error: tls: bad certificate", ref: fixedNow(), loc: utc},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseKlogTime(tt.line, tt.ref, tt.loc)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v (time %s)", ok, tt.wantOK, got)
			}
			if ok && !got.Equal(tt.want) {
				t.Errorf("time = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestKlogBefore(t *testing.T) {
	since := fixedNow()
	tests := []struct {
		name string
		t    time.Time
		loc  *time.Location
		want bool
	}{
		{name: "zone known, just before", t: since.Add(-time.Millisecond), loc: time.UTC, want: true},
		{name: "zone known, at since", t: since, loc: time.UTC, want: false},
		{name: "zone known, after", t: since.Add(time.Second), loc: time.UTC, want: false},
		{name: "zone unknown, hours before may be a western zone", t: since.Add(-10 * time.Hour), want: false},
		{name: "zone unknown, 14 hours before", t: since.Add(-14 * time.Hour), want: false},
		{name: "zone unknown, clearly before", t: since.Add(-14*time.Hour - time.Second), want: true},
		{name: "zone unknown, after", t: since.Add(time.Hour), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := klogBefore(tt.t, since, tt.loc); got != tt.want {
				t.Errorf("klogBefore = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLineMatcher(t *testing.T) {
	defaults := lineMatcher{patterns: DefaultTLSErrorPatterns()}
	tests := []struct {
		name string
		m    lineMatcher
		line string
		want bool
	}{
		{name: "x509", m: defaults, line: `E1127 … "Unable to authenticate the request" err="verifying certificate SN=1 failed: x509: certificate signed by unknown authority"`, want: true},
		{name: "handshake error", m: defaults, line: "http: TLS handshake error from 10.0.0.2:51234: remote error: tls: bad certificate", want: true},
		{name: "unknown authority alone", m: defaults, line: "transport: authentication handshake failed: unknown authority", want: true},
		{name: "bad certificate alone", m: defaults, line: "rejected connection: bad certificate", want: true},
		{name: "case-sensitive", m: defaults, line: "X509: TLS: nothing to see", want: false},
		{name: "flag dump is not an error", m: defaults, line: `I1127 … FLAG: --tls-cert-file="/etc/kubernetes/pki/apiserver.crt"`, want: false},
		{name: "config dump key is not an error", m: defaults, line: "\t  x509:", want: false},
		{name: "ordinary line", m: defaults, line: "Successfully acquired lease kube-system/kube-scheduler", want: false},
		{name: "ignored", m: lineMatcher{patterns: DefaultTLSErrorPatterns(), ignore: []string{"SN=42,"}},
			line: "verifying certificate SN=42, SKID=… failed: x509: certificate signed by unknown authority", want: false},
		{name: "ignore is exact", m: lineMatcher{patterns: DefaultTLSErrorPatterns(), ignore: []string{"SN=42,"}},
			line: "verifying certificate SN=421, SKID=… failed: x509: certificate signed by unknown authority", want: true},
		{name: "empty pattern matches nothing", m: lineMatcher{patterns: []string{""}}, line: "anything", want: false},
		{name: "empty ignore ignores nothing", m: lineMatcher{patterns: []string{"x509:"}, ignore: []string{""}}, line: "x509: x", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.match(tt.line); got != tt.want {
				t.Errorf("match(%q) = %v, want %v", tt.line, got, tt.want)
			}
		})
	}
}

func TestScanCRI(t *testing.T) {
	since := fixedNow()
	at := func(d time.Duration) string { return since.Add(d).Format(time.RFC3339Nano) }
	m := lineMatcher{patterns: DefaultTLSErrorPatterns()}
	lines := func(ls ...string) []byte { return []byte(strings.Join(ls, "\n") + "\n") }
	tests := []struct {
		name string
		data []byte
		keep int
		want criScan
	}{
		{
			name: "only lines since the window began",
			data: lines(
				at(-time.Second)+" stderr F E1127 x509: before the phase",
				at(0)+" stderr F E1127 x509: at the start",
				at(time.Second)+" stdout F all fine",
				at(2*time.Second)+" stderr F http: TLS handshake error from 10.0.0.2:1: remote error: tls: bad certificate",
			),
			keep: 10,
			want: criScan{Matches: matches{Keep: 10, Total: 2, Hits: []hit{
				{Time: since, Line: "E1127 x509: at the start"},
				{Time: since.Add(2 * time.Second), Line: "http: TLS handshake error from 10.0.0.2:1: remote error: tls: bad certificate"},
			}}, Parsed: 4},
		},
		{
			name: "partial lines joined per stream, first chunk's time",
			data: lines(
				at(time.Second)+" stderr P E1127 verifying certificate failed: x5",
				at(time.Second)+" stdout P unrelated ",
				at(2*time.Second)+" stderr F 09: certificate signed by unknown",
				at(2*time.Second)+" stdout F output",
			),
			keep: 10,
			want: criScan{Matches: matches{Keep: 10, Total: 1, Hits: []hit{
				{Time: since.Add(time.Second), Line: "E1127 verifying certificate failed: x509: certificate signed by unknown"},
			}}, Parsed: 4},
		},
		{
			name: "partial line still being written",
			data: lines(at(time.Second) + " stderr P tls: bad cert"),
			keep: 10,
			want: criScan{Matches: matches{Keep: 10, Total: 1, Hits: []hit{{Time: since.Add(time.Second), Line: "tls: bad cert"}}}, Parsed: 1},
		},
		{
			name: "keeps the first, counts all",
			data: lines(at(1)+" stderr F x509: 1", at(2)+" stderr F x509: 2", at(3)+" stderr F x509: 3"),
			keep: 2,
			want: criScan{Matches: matches{Keep: 2, Total: 3, Hits: []hit{
				{Time: since.Add(1), Line: "x509: 1"}, {Time: since.Add(2), Line: "x509: 2"},
			}}, Parsed: 3},
		},
		{
			name: "unparsed lines counted, blank lines not",
			data: lines(`{"log":"x509: json\n"}`, "", at(1)+" stderr F fine"),
			keep: 10,
			want: criScan{Matches: matches{Keep: 10}, Parsed: 1, Unparsed: 1},
		},
		{name: "empty file", data: nil, keep: 10, want: criScan{Matches: matches{Keep: 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := scanCRI(tt.data, since, m, tt.keep)
			if diff := cmp.Diff(tt.want, got, cmpTime); diff != "" {
				t.Errorf("scanCRI mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScanCRIBoundsLongLines(t *testing.T) {
	since := fixedNow()
	chunk := strings.Repeat("a", 16<<10)
	var b strings.Builder
	for range 100 {
		b.WriteString(since.Format(time.RFC3339Nano) + " stderr P " + chunk + "\n")
	}
	b.WriteString(since.Format(time.RFC3339Nano) + " stderr F x509: end\n")
	got := scanCRI([]byte(b.String()), since, lineMatcher{patterns: []string{"a"}}, 10)
	if got.Matches.Total != 1 || len(got.Matches.Hits[0].Line) > maxLineKept+len("…") {
		t.Errorf("total %d, kept line of %d bytes; want 1 line of at most %d", got.Matches.Total, len(got.Matches.Hits[0].Line), maxLineKept)
	}
}

func TestScanKlog(t *testing.T) {
	since := fixedNow()
	m := lineMatcher{patterns: DefaultTLSErrorPatterns()}
	data := []byte(strings.Join([]string{
		"E1126 01:00:00.000000 1 a.go:1] x509: yesterday, left over",
		"  continuation of yesterday's message: tls: old",
		"E1127 21:29:59.000000 1 a.go:1] x509: a second before since",
		"I1127 21:30:01.000000 1 a.go:1] starting",
		"E1127 21:30:02.000000 1 a.go:1] x509: certificate signed by unknown authority",
		"  and its continuation: tls: bad certificate",
		"plain line without header: tls: handshake failure",
	}, "\n"))
	tests := []struct {
		name string
		loc  *time.Location
		want matches
	}{
		{
			name: "zone unknown: only the clearly old entry dropped",
			want: matches{Keep: 10, Total: 4, Hits: []hit{
				{Time: since.Add(-time.Second), Line: "E1127 21:29:59.000000 1 a.go:1] x509: a second before since"},
				{Time: since.Add(2 * time.Second), Line: "E1127 21:30:02.000000 1 a.go:1] x509: certificate signed by unknown authority"},
				{Time: since.Add(2 * time.Second), Line: "  and its continuation: tls: bad certificate"},
				{Time: since.Add(2 * time.Second), Line: "plain line without header: tls: handshake failure"},
			}},
		},
		{
			name: "zone known: everything before since dropped",
			loc:  time.UTC,
			want: matches{Keep: 10, Total: 3, Hits: []hit{
				{Time: since.Add(2 * time.Second), Line: "E1127 21:30:02.000000 1 a.go:1] x509: certificate signed by unknown authority"},
				{Time: since.Add(2 * time.Second), Line: "  and its continuation: tls: bad certificate"},
				{Time: since.Add(2 * time.Second), Line: "plain line without header: tls: handshake failure"},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := scanKlog(data, since, tt.loc, m, 10)
			if diff := cmp.Diff(tt.want, got, cmpTime); diff != "" {
				t.Errorf("scanKlog mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPodLogComponent(t *testing.T) {
	prefixes := DefaultLogPodPrefixes()
	tests := []struct {
		dir    string
		ns     string
		want   string
		wantOK bool
	}{
		{dir: "kube-system_kube-controller-manager-cp-1_0f1e2d3c-aaaa-bbbb-cccc-000000000001", ns: "kube-system", want: "kube-controller-manager", wantOK: true},
		{dir: "kube-system_kube-proxy-abcde_uid", ns: "kube-system", want: "kube-proxy", wantOK: true},
		{dir: "kube-system_etcd-cp-1_uid", ns: "kube-system", want: "etcd", wantOK: true},
		{dir: "kube-system_kube-apiserver-cp-1_uid", ns: "kube-system", want: "kube-apiserver", wantOK: true},
		{dir: "kube-system_cloud-controller-manager-x_uid", ns: "kube-system", want: "cloud-controller-manager", wantOK: true},
		{dir: "kube-system_coredns-5d78c9869d-abcde_uid", ns: "kube-system"},
		{dir: "default_kube-apiserver-cp-1_uid", ns: "kube-system"},
		{dir: "kube-system_kube-apiserver-_uid", ns: "kube-system"},
		{dir: "kube-system_kube-apiserver-cp-1", ns: "kube-system"},
		{dir: "kube-system_kube-apiserver-cp-1_uid_extra", ns: "kube-system"},
		{dir: "kube-system__uid", ns: "kube-system"},
		{dir: "kube-proxy-abcde", ns: "kube-system"},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			got, ok := podLogComponent(tt.dir, tt.ns, prefixes)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("podLogComponent = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
	t.Run("longest prefix wins", func(t *testing.T) {
		got, ok := podLogComponent("kube-system_kube-proxy-windows-x_uid", "kube-system", []string{"kube-proxy-", "kube-proxy-windows-"})
		if got != "kube-proxy-windows" || !ok {
			t.Errorf("podLogComponent = %q, %v; want kube-proxy-windows", got, ok)
		}
	})
}

func TestIsContainerLog(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"0.log", true},
		{"12.log", true},
		{"0.log.20261127-213001", true},
		{"0.log.1", true},
		{"0.log.20261127-213001.gz", false},
		{"0.log.gz", false},
		{".log", false},
		{".0.log.tmp", false},
		{"0.log.tmp", false},
		{"0.txt", false},
		{"0.log.", false},
	}
	for _, tt := range tests {
		if got := isContainerLog(tt.name); got != tt.want {
			t.Errorf("isContainerLog(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestExpandCommand(t *testing.T) {
	since := time.Date(2026, 11, 27, 22, 30, 1, 999_000_000, time.FixedZone("CET", 3600))
	tests := []struct {
		name     string
		template []string
		want     []string
	}{
		{name: "default", template: DefaultKubeletLogCommand(),
			want: []string{"journalctl", "-u", "kubelet", "--since", "2026-11-27 21:30:01 UTC", "--no-pager", "-o", "cat"}},
		{name: "rfc 3339 inside an argument", template: []string{"journalctl", "--since={since-rfc3339}"},
			want: []string{"journalctl", "--since=2026-11-27T21:30:01Z"}},
		{name: "no placeholder", template: []string{"cat", "/var/log/kubelet.log"}, want: []string{"cat", "/var/log/kubelet.log"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, expandCommand(tt.template, since)); diff != "" {
				t.Errorf("expandCommand mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFindingString(t *testing.T) {
	tests := []struct {
		name string
		f    Finding
		want string
	}{
		{name: "short", f: Finding{Node: "cp-1", Component: "kube-controller-manager", Line: "x509: oops"},
			want: "cp-1 kube-controller-manager: x509: oops"},
		{name: "long line cut", f: Finding{Node: "cp-1", Component: "kubelet", Line: strings.Repeat("x", 400)},
			want: "cp-1 kubelet: " + strings.Repeat("x", 300) + "…"},
		{name: "cut never splits a rune", f: Finding{Node: "w-1", Component: "kube-proxy", Line: strings.Repeat("x", 299) + "é" + "tail"},
			want: "w-1 kube-proxy: " + strings.Repeat("x", 299) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.f.String()); diff != "" {
				t.Errorf("String mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSortFindings(t *testing.T) {
	at := func(s int) time.Time { return fixedNow().Add(time.Duration(s) * time.Second) }
	got := []Finding{
		{Line: "untimed a"}, {Time: at(3), Line: "3"}, {Time: at(1), Line: "1 first"},
		{Line: "untimed b"}, {Time: at(1), Line: "1 second"}, {Time: at(2), Line: "2"},
	}
	sortFindings(got)
	var lines []string
	for _, f := range got {
		lines = append(lines, f.Line)
	}
	want := []string{"1 first", "1 second", "2", "3", "untimed a", "untimed b"}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("order mismatch (-want +got):\n%s", diff)
	}
}

func TestTLSErrorsFound(t *testing.T) {
	var findings []Finding
	for i := range 12 {
		findings = append(findings, Finding{Node: "cp-1", Component: "kube-apiserver", Line: "x509: line " + string(rune('a'+i))})
	}
	err := (&TLSErrorsFound{Since: fixedNow(), Findings: findings, Total: 40}).Error()
	for _, want := range []string{"40 TLS error lines logged since 2026-11-27T21:30:00Z", "cp-1 kube-apiserver: x509: line a", "x509: line j", "… and 30 more"} {
		if !strings.Contains(err, want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	if strings.Contains(err, "line k") {
		t.Errorf("message quotes more than %d lines: %q", maxFindingsInError, err)
	}
	one := (&TLSErrorsFound{Since: fixedNow(), Findings: findings[:1], Total: 1}).Error()
	if !strings.Contains(one, "1 TLS error line logged") || strings.Contains(one, "more") {
		t.Errorf("single finding message: %q", one)
	}
}
