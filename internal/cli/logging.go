package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
)

// Log formats for --log-format.
const (
	LogText = "text"
	LogJSON = "json"
)

// Verbosity levels, klog's: -v 4 adds debug lines (each node's connection,
// each step as it starts and ends), -v 6 each API request.
const (
	levelDebug    = slog.LevelDebug // -v 4
	levelRequests = slog.Level(-6)  // -v 6
	maxVerbosity  = 10
)

// LogFlags are the root's -v and --log-format, shared by every command:
// the diagnostics on stderr. What a command reports goes to stdout.
type LogFlags struct {
	Verbosity int
	Format    string
}

// AddFlags registers the flags, for every command.
func (l *LogFlags) AddFlags(f *pflag.FlagSet) {
	f.IntVarP(&l.Verbosity, "v", "v", l.Verbosity, "log verbosity, as kubectl's: 4 adds each node connection and each step, 6 each API request")
	f.StringVar(&l.Format, "log-format", l.Format, "format of the log lines on stderr: text or json")
}

// Validate refuses a level or format carotate does not have.
func (l *LogFlags) Validate() error {
	if l.Verbosity < 0 || l.Verbosity > maxVerbosity {
		return fmt.Errorf("-v %d is out of range 0-%d", l.Verbosity, maxVerbosity)
	}
	if l.Format != LogText && l.Format != LogJSON {
		return fmt.Errorf("--log-format %q is not one of %s or %s", l.Format, LogText, LogJSON)
	}
	return nil
}

// Logger writes to w at the flags' level and format.
func (l *LogFlags) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo - slog.Level(l.Verbosity)}
	if l.Format == LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// logRequests makes cfg log each API request at -v 6: method, URL,
// status and time, never headers or bodies (they carry credentials and
// Secrets).
func logRequests(cfg *rest.Config, log *slog.Logger) {
	if log == nil || !log.Enabled(context.Background(), levelRequests) {
		return
	}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			start := time.Now()
			resp, err := rt.RoundTrip(req)
			attrs := []any{"method", req.Method, "url", req.URL.Redacted(), "took", time.Since(start).Round(time.Millisecond)}
			if err != nil {
				attrs = append(attrs, "err", err)
			} else {
				attrs = append(attrs, "status", resp.StatusCode)
			}
			log.Log(req.Context(), levelRequests, "API request", attrs...)
			return resp, err
		})
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
