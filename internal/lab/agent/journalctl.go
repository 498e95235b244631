package agent

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Journalctl is the `journalctl -u UNIT [--since TIME]` command inside a
// node. Units log to /var/log/<unit>.log; with --since, klog lines older than
// TIME are left out (klog headers carry month, day and time, not the year).
func Journalctl(logDir string, args []string, now time.Time, stdout, stderr io.Writer) int {
	var unit, since string
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch {
		case a == "-u" || a == "--unit":
			unit = next()
		case strings.HasPrefix(a, "--unit="):
			unit = strings.TrimPrefix(a, "--unit=")
		case a == "-S" || a == "--since":
			since = next()
		case strings.HasPrefix(a, "--since="):
			since = strings.TrimPrefix(a, "--since=")
		}
	}
	if unit == "" {
		fmt.Fprintln(stderr, "journalctl: only -u UNIT is supported here")
		return 1
	}
	unit = strings.TrimSuffix(unit, ".service")
	if unit == "ssh" || unit == "sshd" {
		unit = "sshd"
	}
	var from time.Time
	if since != "" {
		var err error
		if from, err = parseSince(since, now); err != nil {
			fmt.Fprintf(stderr, "journalctl: --since %q: %v\n", since, err)
			return 1
		}
	}
	f, err := os.Open(logDir + "/" + unit + ".log")
	if err != nil {
		fmt.Fprintf(stderr, "journalctl: no entries for unit %s: %v\n", unit, err)
		return 1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	keep := from.IsZero()
	for sc.Scan() {
		line := sc.Text()
		if !from.IsZero() {
			if t, ok := KlogTime(line, now); ok {
				keep = !t.Before(from)
			}
		}
		if keep {
			fmt.Fprintln(stdout, line)
		}
	}
	return 0
}

func parseSince(s string, now time.Time) (time.Time, error) {
	// journalctl takes a time zone after the time, e.g. "... UTC".
	if rest, ok := strings.CutSuffix(s, " UTC"); ok {
		if t, err := time.ParseInLocation("2006-01-02 15:04:05", rest, time.UTC); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339, "2006-01-02 15:04:05", "2006-01-02 15:04"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	if strings.HasSuffix(s, " ago") {
		d, err := time.ParseDuration(strings.TrimPrefix(strings.TrimSuffix(s, " ago"), "-"))
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("want RFC 3339, \"YYYY-MM-DD HH:MM:SS\" or \"<duration> ago\"")
}

// KlogTime reads the time of a klog header line ("I1127 18:00:00.123456 ...").
func KlogTime(line string, now time.Time) (time.Time, bool) {
	if len(line) < 21 || !strings.ContainsRune("IWEF", rune(line[0])) {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation("0102 15:04:05.000000", line[1:21], time.Local)
	if err != nil {
		return time.Time{}, false
	}
	t = t.AddDate(now.Year(), 0, 0)
	if t.After(now.Add(24 * time.Hour)) {
		t = t.AddDate(-1, 0, 0)
	}
	return t, true
}
