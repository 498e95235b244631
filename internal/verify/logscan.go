package verify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/carotate/carotate/internal/node"
)

// DefaultPodLogDir is where the kubelet keeps container logs.
const DefaultPodLogDir = "/var/log/pods"

// DefaultMaxFindings bounds the findings a scan returns.
const DefaultMaxFindings = 50

// mtimeSlack is how far before since a log file's modification time may lie
// and the file still be read: it covers the one-second resolution of mtime
// over SSH and small clock differences.
const mtimeSlack = time.Minute

// NodeLogs is one node whose logs ScanTLSErrors reads.
type NodeLogs struct {
	// Name names the node in findings; default Exec.Name().
	Name string
	Exec node.Executor
}

// ScanOptions configures ScanTLSErrors. The zero value scans with the
// defaults.
type ScanOptions struct {
	// Patterns mark a line as a TLS error (case-sensitive substrings).
	// Default (also for an empty list) DefaultTLSErrorPatterns().
	Patterns []string
	// Ignore excludes lines containing any of these substrings, e.g. a
	// benign message measured on a healthy cluster, or
	// ClientCertLogMarker of a certificate we expect to be refused.
	Ignore []string
	// Namespace of the pods to read. Default "kube-system".
	Namespace string
	// PodPrefixes select the pods to read by name. Default (also for an
	// empty list) DefaultLogPodPrefixes().
	PodPrefixes []string
	// PodLogDir is the kubelet's pod log directory. Default DefaultPodLogDir.
	PodLogDir string
	// KubeletCommand prints the kubelet's log since the window began; see
	// SincePlaceholder. Default DefaultKubeletLogCommand().
	KubeletCommand []string
	// KubeletTimeZone is the zone the kubelet writes klog header times
	// in (the node's local zone). When nil the zone is taken as unknown:
	// headers are read as UTC and a line is only dropped as older than
	// the window when it is more than 14 hours older.
	KubeletTimeZone *time.Location
	// MaxFindings bounds the findings returned; Total still counts all.
	// Default DefaultMaxFindings.
	MaxFindings int
	// Forgive lists the TLS errors that carotate caused itself and knows
	// to be harmless; see Forgiven.
	Forgive []Forgiven
}

// Forgiven is a TLS error that a step of carotate caused and that is
// harmless, so that the gate does not fail on it: the line must contain
// Contains, be logged on Node (any node when empty) and carry a time
// from From to To, both included. The scan counts such lines in
// ScanResult.Forgiven instead of Total; a line without a readable time is
// never forgiven.
//
// The one case is a certificate and its key replaced together on a node
// while a component re-reads both at each new connection (etcd): the two
// renames are back to back, but a handshake that reads the certificate
// before them and the key after them (or the other way round) finds a
// pair that does not match, and fails once; the peer retries with the
// pair that matches. A pair that stays wrong goes on failing after the
// window and is found.
type Forgiven struct {
	Node     string
	Contains string
	From, To time.Time
}

func (o ScanOptions) withDefaults() ScanOptions {
	// An empty list would silently turn the gate off; it means the default.
	if len(o.Patterns) == 0 {
		o.Patterns = DefaultTLSErrorPatterns()
	}
	if o.Namespace == "" {
		o.Namespace = "kube-system"
	}
	if len(o.PodPrefixes) == 0 {
		o.PodPrefixes = DefaultLogPodPrefixes()
	}
	if o.PodLogDir == "" {
		o.PodLogDir = DefaultPodLogDir
	}
	if len(o.KubeletCommand) == 0 {
		o.KubeletCommand = DefaultKubeletLogCommand()
	}
	if o.MaxFindings <= 0 {
		o.MaxFindings = DefaultMaxFindings
	}
	return o
}

// ScanResult is what a scan found.
type ScanResult struct {
	Since time.Time
	// Findings are the earliest matching lines, at most MaxFindings.
	Findings []Finding
	// Total counts every matching line that was not forgiven.
	Total int
	// Forgiven counts the matching lines that ScanOptions.Forgive covered.
	Forgiven int
	// Scanned lists what was read, "node:path" or "node:command", so that
	// a report can show the scan was not blind.
	Scanned []string
}

// Err is the gate's verdict: nil when no TLS error was logged, otherwise a
// *TLSErrorsFound quoting the first lines.
func (r ScanResult) Err() error {
	if r.Total == 0 {
		return nil
	}
	return &TLSErrorsFound{Since: r.Since, Findings: r.Findings, Total: r.Total}
}

// ScanTLSErrors reads, on every node at once, the container logs of the
// selected kube-system pods and the kubelet's log, and returns the lines
// logged at or after since that look like TLS errors.
//
// Container logs are read from PodLogDir (the kubelet's
// "<namespace>_<pod>_<uid>/<container>/<restart>.log" tree, in CRI format)
// and filtered by their CRI timestamps; files not modified since the window
// began are not read. The kubelet's log comes from KubeletCommand, which
// does its own filtering.
//
// A node that cannot be read does not stop the others: the result holds
// what was found, and the error says which nodes could not be checked. A
// caller must treat such an error as a failed gate, since an unread log may
// hold the TLS error.
func ScanTLSErrors(ctx context.Context, nodes []NodeLogs, since time.Time, opts ScanOptions) (ScanResult, error) {
	opts = opts.withDefaults()
	type nodeResult struct {
		findings        []Finding
		total, forgiven int
		scanned         []string
		err             error
	}
	results := make([]nodeResult, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			s := &nodeScan{ctx: ctx, node: n, since: since, opts: opts}
			s.m = lineMatcher{patterns: opts.Patterns, ignore: opts.Ignore, forgive: forgivenOn(opts.Forgive, s.name())}
			results[i].err = s.run()
			results[i].findings, results[i].total, results[i].forgiven, results[i].scanned = s.findings, s.total, s.forgiven, s.scanned
		})
	}
	wg.Wait()
	res := ScanResult{Since: since}
	var errs []error
	for _, r := range results {
		res.Findings = append(res.Findings, r.findings...)
		res.Total += r.total
		res.Forgiven += r.forgiven
		res.Scanned = append(res.Scanned, r.scanned...)
		errs = append(errs, r.err)
	}
	sortFindings(res.Findings)
	if len(res.Findings) > opts.MaxFindings {
		res.Findings = res.Findings[:opts.MaxFindings]
	}
	return res, errors.Join(errs...)
}

// nodeScan scans one node.
type nodeScan struct {
	ctx   context.Context
	node  NodeLogs
	since time.Time
	opts  ScanOptions
	m     lineMatcher

	findings []Finding
	total    int
	forgiven int
	scanned  []string
}

// forgivenOn keeps what fs forgives on the node named name.
func forgivenOn(fs []Forgiven, name string) []Forgiven {
	var out []Forgiven
	for _, f := range fs {
		if f.Node == "" || f.Node == name {
			out = append(out, f)
		}
	}
	return out
}

func (s *nodeScan) name() string {
	if s.node.Name != "" {
		return s.node.Name
	}
	if s.node.Exec != nil {
		return s.node.Exec.Name()
	}
	return "(unnamed)"
}

func (s *nodeScan) run() error {
	if s.node.Exec == nil {
		return fmt.Errorf("node %s: no executor to read its logs with", s.name())
	}
	const cannotTell = "the gate cannot tell whether components logged TLS errors there"
	var errs []error
	if err := s.containerLogs(); err != nil {
		errs = append(errs, fmt.Errorf("scanning container logs on node %s (%s): %w", s.name(), cannotTell, err))
	}
	if err := s.kubeletLog(); err != nil {
		errs = append(errs, fmt.Errorf("scanning the kubelet log on node %s (%s; set the kubelet log command if the node does not log to journald): %w",
			s.name(), cannotTell, err))
	}
	return errors.Join(errs...)
}

func (s *nodeScan) record(component, source string, found matches) {
	s.total += found.Total
	s.forgiven += found.Forgiven
	for _, h := range found.Hits {
		s.findings = append(s.findings, Finding{Node: s.name(), Component: component, Source: source, Time: h.Time, Line: h.Line})
	}
}

// containerLogs scans every selected pod's container log files. Pods and
// files that disappear while we read (a pod replaced, a log rotated away)
// are skipped: they are gone from the node, and a replacement pod has a
// directory of its own.
func (s *nodeScan) containerLogs() error {
	ex := s.node.Exec
	pods, err := ex.ReadDir(s.ctx, s.opts.PodLogDir)
	if err != nil {
		return err
	}
	var errs []error
	for _, pod := range pods {
		component, ok := podLogComponent(pod.Name, s.opts.Namespace, s.opts.PodPrefixes)
		if !ok || !pod.Mode.IsDir() {
			continue
		}
		podDir := path.Join(s.opts.PodLogDir, pod.Name)
		containers, err := ex.ReadDir(s.ctx, podDir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, c := range containers {
			if !c.Mode.IsDir() {
				continue
			}
			if err := s.containerDir(component, path.Join(podDir, c.Name)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (s *nodeScan) containerDir(component, dir string) error {
	ex := s.node.Exec
	files, err := ex.ReadDir(s.ctx, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range files {
		// Links are followed: with cri-dockerd the kubelet's log files are
		// links to the runtime's own.
		if !isContainerLog(f.Name) || !(f.Mode.IsRegular() || f.Mode&fs.ModeSymlink != 0) {
			continue
		}
		if err := s.containerFile(component, path.Join(dir, f.Name)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *nodeScan) containerFile(component, file string) error {
	ex := s.node.Exec
	info, err := ex.Stat(s.ctx, file)
	if err != nil {
		return err
	}
	if !info.Exists || !info.Mode.IsRegular() || info.ModTime.Before(s.since.Add(-mtimeSlack)) {
		return nil
	}
	data, err := ex.ReadFile(s.ctx, file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	found := scanCRI(data, s.since, s.m, s.opts.MaxFindings)
	if found.Parsed == 0 && found.Unparsed > 0 {
		return fmt.Errorf("%s: not in the CRI log format (\"<time> <stdout|stderr> <P|F> <message>\"; %d lines, none parsed), so it cannot be scanned; "+
			"the container runtime writes another format", file, found.Unparsed)
	}
	s.scanned = append(s.scanned, s.name()+":"+file)
	s.record(component, file, found.Matches)
	return nil
}

func (s *nodeScan) kubeletLog() error {
	argv := expandCommand(s.opts.KubeletCommand, s.since)
	res, err := s.node.Exec.Run(s.ctx, argv, nil)
	if err != nil {
		return err
	}
	source := strings.Join(argv, " ")
	s.scanned = append(s.scanned, s.name()+":"+source)
	s.record("kubelet", source, scanKlog(res.Stdout, s.since, s.opts.KubeletTimeZone, s.m, s.opts.MaxFindings))
	return nil
}
