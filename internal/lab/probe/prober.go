package probe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
)

// Defaults for Options, chosen so that a control-plane restart of a few
// seconds shows as a window of several failed attempts.
const (
	DefaultInterval     = 500 * time.Millisecond
	DefaultTimeout      = 3 * time.Second
	DefaultSummaryEvery = 5 * time.Second
)

// maxWindows bounds how many closed windows Stats keeps; the log has all.
const maxWindows = 100

// ErrInvalidOptions marks Options the probe cannot run with.
var ErrInvalidOptions = errors.New("invalid probe options")

// Options configures a Prober. Zero durations take the defaults.
type Options struct {
	// Namespace holds the kube-root-ca.crt ConfigMap to read: the pod's own.
	Namespace string
	// Node and Pod only label the log and the stats.
	Node, Pod    string
	Interval     time.Duration
	Timeout      time.Duration
	SummaryEvery time.Duration
	// MaxAttempts stops Run after that many attempts; 0 runs until the
	// context ends, as the daemon does.
	MaxAttempts int
	// Now is the clock for log timestamps; nil means time.Now.
	Now func() time.Time
}

// Prober runs the probe loop, writes its log and keeps its counters.
type Prober struct {
	client rest.Interface
	host   string
	out    io.Writer
	opts   Options

	mu sync.Mutex
	st Stats
}

// New builds a Prober that talks to the apiserver of cfg (in the pod,
// rest.InClusterConfig) through NewClient and logs to out.
func New(cfg *rest.Config, out io.Writer, opts Options) (*Prober, error) {
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.SummaryEvery == 0 {
		opts.SummaryEvery = DefaultSummaryEvery
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	switch {
	case opts.Namespace == "":
		return nil, fmt.Errorf("namespace is empty: %w", ErrInvalidOptions)
	case opts.Interval < 0 || opts.Timeout < 0 || opts.SummaryEvery < 0:
		return nil, fmt.Errorf("interval %s, timeout %s, summary every %s: durations must be positive: %w",
			opts.Interval, opts.Timeout, opts.SummaryEvery, ErrInvalidOptions)
	case opts.MaxAttempts < 0:
		return nil, fmt.Errorf("max attempts %d is negative: %w", opts.MaxAttempts, ErrInvalidOptions)
	}
	client, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Prober{
		client: client,
		host:   cfg.Host,
		out:    out,
		opts:   opts,
		st:     Stats{Node: opts.Node, Pod: opts.Pod, Namespace: opts.Namespace, Windows: []Window{}},
	}, nil
}

// Run probes every interval until ctx ends or MaxAttempts is reached, then
// closes any open window and writes the stop record. At most one request
// is in flight; a tick that falls during a slow request is dropped. Run
// returns an error only when the log cannot be written.
func (p *Prober) Run(ctx context.Context) error {
	if err := p.emit(p.startRecord()); err != nil {
		return err
	}
	tick := time.NewTicker(p.opts.Interval)
	defer tick.Stop()
	summary := time.NewTicker(p.opts.SummaryEvery)
	defer summary.Stop()

	for attempts := 0; ; {
		if err := p.emit(p.attempt(ctx)...); err != nil {
			return err
		}
		attempts++
		if p.opts.MaxAttempts > 0 && attempts >= p.opts.MaxAttempts {
			break
		}
		more, err := p.waitTick(ctx, tick.C, summary.C)
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	return p.emit(p.stopRecords()...)
}

// waitTick waits for the next tick, writing summaries that fall due
// meanwhile. It reports false when ctx ended first.
func (p *Prober) waitTick(ctx context.Context, tick, summary <-chan time.Time) (bool, error) {
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case <-tick:
			return true, nil
		case <-summary:
			if err := p.emit(p.summaryRecord()); err != nil {
				return false, err
			}
		}
	}
}

// attempt makes one request and returns the records it caused.
func (p *Prober) attempt(ctx context.Context) []any {
	if ctx.Err() != nil {
		return nil
	}
	start := p.now()
	reqCtx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	cm, err := getRootCA(reqCtx, p.client, p.opts.Namespace)
	cancel()
	if ctx.Err() != nil {
		return nil // cut short by shutdown: proves nothing either way
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		return p.failed(start, err.Error())
	}
	return p.succeeded(start, cm)
}

// failed counts a failed attempt; the first of a run opens a window.
// Callers hold p.mu.
func (p *Prober) failed(start time.Time, msg string) []any {
	p.st.Failed++
	p.st.LastError = msg
	if p.st.Current != nil {
		p.st.Current.Failed++
		p.st.Current.LastError = msg
		return nil
	}
	p.st.Failing = true
	p.st.Current = &Window{Start: start, Failed: 1, FirstError: msg, LastError: msg}
	return []any{FailingRecord{Time: p.now(), Kind: KindFailing, Since: start, Error: msg}}
}

// succeeded counts a successful attempt, closes an open window and notes
// a changed root CA bundle. Callers hold p.mu.
func (p *Prober) succeeded(start time.Time, cm *corev1.ConfigMap) []any {
	var records []any
	p.st.OK++
	p.st.LastOK = start
	if w := p.st.Current; w != nil {
		w.End = start
		records = append(records, p.closeWindow(*w))
	}
	if bundle, ok := cm.Data["ca.crt"]; ok {
		sum := sha256.Sum256([]byte(bundle))
		if digest := hex.EncodeToString(sum[:]); digest != p.st.RootCASHA256 {
			p.st.RootCASHA256 = digest
			records = append(records, RootCARecord{Time: p.now(), Kind: KindRootCA, SHA256: digest, Certs: countCerts(bundle)})
		}
	}
	return records
}

// closeWindow moves w into the history. Callers hold p.mu.
func (p *Prober) closeWindow(w Window) WindowRecord {
	p.st.Current, p.st.Failing = nil, false
	p.st.WindowsTotal++
	p.st.Windows = append(p.st.Windows, w)
	if len(p.st.Windows) > maxWindows {
		p.st.Windows = append([]Window(nil), p.st.Windows[len(p.st.Windows)-maxWindows:]...)
	}
	return WindowRecord{
		Time: p.now(), Kind: KindWindow, Start: w.Start, End: w.End, Failed: w.Failed,
		FirstError: w.FirstError, LastError: w.LastError, Open: w.Open,
	}
}

func (p *Prober) startRecord() StartRecord {
	return StartRecord{
		Time: p.now(), Kind: KindStart, Node: p.opts.Node, Pod: p.opts.Pod, Namespace: p.opts.Namespace,
		Host: p.host, Path: rootCAPath(p.opts.Namespace),
		IntervalMS: p.opts.Interval.Milliseconds(), TimeoutMS: p.opts.Timeout.Milliseconds(),
	}
}

func (p *Prober) summaryRecord() SummaryRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return SummaryRecord{
		Time: p.now(), Kind: KindSummary, Node: p.opts.Node, Pod: p.opts.Pod,
		OK: p.st.OK, Failed: p.st.Failed, Failing: p.st.Failing,
	}
}

// stopRecords closes an open window at the stop time, so the log says how
// long the probe saw failures even when it is stopped mid-outage.
func (p *Prober) stopRecords() []any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var records []any
	if w := p.st.Current; w != nil {
		w.End, w.Open = p.now(), true
		records = append(records, p.closeWindow(*w))
	}
	return append(records, StopRecord{
		Time: p.now(), Kind: KindStop, Node: p.opts.Node, Pod: p.opts.Pod, OK: p.st.OK, Failed: p.st.Failed,
	})
}

// emit writes each record as one line. Marshalling and writing a line
// whole keeps lines intact when the runtime splits long output.
func (p *Prober) emit(records ...any) error {
	for _, r := range records {
		line, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode log record: %w", err)
		}
		if _, err := p.out.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("write probe log: %w", err)
		}
	}
	return nil
}

func (p *Prober) now() time.Time { return p.opts.Now().UTC() }

func countCerts(bundle string) int {
	n := 0
	remaining := []byte(bundle)
	for {
		var block *pem.Block
		block, remaining = pem.Decode(remaining)
		if block == nil {
			return n
		}
		if block.Type == "CERTIFICATE" {
			n++
		}
	}
}
