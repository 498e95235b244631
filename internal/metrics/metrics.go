// Package metrics exposes what `carotate check` found as Prometheus
// metrics: the seconds to expiry of every CA, certificate and kubeconfig
// client certificate, the findings by severity, and whether a rotation
// holds the lock. `carotate check --metrics-listen` serves them.
//
// The collector holds the last gathered cluster and computes expiry at
// scrape time, so a scrape between two gathers still counts down. Where
// two certificates share every label (a bundle of an old and a new CA of
// the same subject) the one that expires first is kept: that is the one
// an alert is for.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carotate/carotate/internal/check"
	"github.com/carotate/carotate/internal/model"
)

// Namespace prefixes every metric's name.
const Namespace = "carotate"

var (
	expiryDesc = prometheus.NewDesc(Namespace+"_certificate_expiry_seconds",
		"Seconds until the certificate's notAfter (negative once expired), as found by the last check.",
		[]string{"kind", "root", "node", "path", "role", "subject"}, nil)
	notAfterDesc = prometheus.NewDesc(Namespace+"_certificate_not_after_timestamp_seconds",
		"The certificate's notAfter, in seconds since the epoch.",
		[]string{"kind", "root", "node", "path", "role", "subject"}, nil)
	findingsDesc = prometheus.NewDesc(Namespace+"_check_findings",
		"Findings of the last check, by severity.", []string{"severity"}, nil)
	upDesc = prometheus.NewDesc(Namespace+"_check_up",
		"1 if the last check inspected the API and every node, 0 if something could not be inspected.", nil, nil)
	lastDesc = prometheus.NewDesc(Namespace+"_check_last_run_timestamp_seconds",
		"When the last check ended, in seconds since the epoch.", nil, nil)
	durationDesc = prometheus.NewDesc(Namespace+"_check_duration_seconds",
		"How long the last check took.", nil, nil)
	lockDesc = prometheus.NewDesc(Namespace+"_rotation_lock_held",
		"1 while a carotate command holds the rotation lock (Lease kube-system/carotate-rotation-lock).", nil, nil)
	inProgressDesc = prometheus.NewDesc(Namespace+"_rotation_in_progress",
		"1 while a rotation is under way: the lock is held, or the cluster holds two CAs of one kind (between rotate and finalize).", nil, nil)
)

// Result is one check: the cluster it found, its findings, when it ended
// and how long it took, and whether it inspected everything.
type Result struct {
	Cluster  model.Cluster
	Findings []check.Finding
	Ended    time.Time
	Took     time.Duration
	Complete bool
}

// Collector is a prometheus.Collector of the last Result.
type Collector struct {
	now func() time.Time

	mu   sync.Mutex
	last *Result
}

// NewCollector returns a collector with no check yet; now is the clock
// (time.Now when nil).
func NewCollector(now func() time.Time) *Collector {
	if now == nil {
		now = time.Now
	}
	return &Collector{now: now}
}

// Set replaces the result the metrics show.
func (c *Collector) Set(r Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = &r
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{expiryDesc, notAfterDesc, findingsDesc, upDesc, lastDesc, durationDesc, lockDesc, inProgressDesc} {
		ch <- d
	}
}

// Collect sends the metrics of the last result; before the first one,
// only carotate_check_up 0.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	r := c.last
	c.mu.Unlock()
	if r == nil {
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0)
		return
	}
	now := c.now()
	for _, e := range Expiries(r.Cluster) {
		labels := []string{e.Kind, e.Root, e.Node, e.Path, e.Role, e.Subject}
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, e.NotAfter.Sub(now).Seconds(), labels...)
		ch <- prometheus.MustNewConstMetric(notAfterDesc, prometheus.GaugeValue, float64(e.NotAfter.Unix()), labels...)
	}
	for _, s := range []check.Severity{check.Blocking, check.Warning, check.Info} {
		ch <- prometheus.MustNewConstMetric(findingsDesc, prometheus.GaugeValue, float64(check.Count(r.Findings, s)), string(s))
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, boolValue(r.Complete))
	ch <- prometheus.MustNewConstMetric(lastDesc, prometheus.GaugeValue, float64(r.Ended.UnixMilli())/1000)
	ch <- prometheus.MustNewConstMetric(durationDesc, prometheus.GaugeValue, r.Took.Seconds())
	locked := r.Cluster.API.Lock != nil
	ch <- prometheus.MustNewConstMetric(lockDesc, prometheus.GaugeValue, boolValue(locked))
	ch <- prometheus.MustNewConstMetric(inProgressDesc, prometheus.GaugeValue, boolValue(locked || twoOfAKind(r.Cluster)))
}

// Expiry is one certificate's place and notAfter.
type Expiry struct {
	// Kind is "ca" (a CA of the cluster), "certificate" (in a file on a
	// node) or "kubeconfig" (a kubeconfig's client certificate).
	Kind string
	// Root is the kind of CA it is, or that issued it ("cluster",
	// "front-proxy", "etcd"); "" when no known CA did.
	Root    string
	Node    string
	Path    string
	Role    string // a kubeconfig's role (admin, kubelet, …)
	Subject string
	// NotAfter is when it expires.
	NotAfter time.Time
}

type expiryKey struct{ kind, root, node, path, role, subject string }

// Expiries lists every certificate of the cluster with its expiry: the
// CAs, each certificate in a node's files, and each kubeconfig's client
// certificate. Certificates that share every label keep the earliest
// notAfter. The CA certificates a kubeconfig embeds are the CAs' own,
// already listed.
func Expiries(c model.Cluster) []Expiry {
	roots := map[string]string{} // SPKI → CA kind
	for _, ca := range c.CAs {
		roots[ca.Cert.SPKISHA256] = string(ca.Kind)
	}
	rootOf := func(cert model.Cert) string {
		if cert.IsCA {
			if r, ok := roots[cert.SPKISHA256]; ok {
				return r
			}
		}
		return roots[cert.IssuerSPKISHA256]
	}
	var out []Expiry
	seen := map[expiryKey]int{}
	add := func(e Expiry) {
		k := expiryKey{e.Kind, e.Root, e.Node, e.Path, e.Role, e.Subject}
		if i, ok := seen[k]; ok {
			if e.NotAfter.Before(out[i].NotAfter) {
				out[i].NotAfter = e.NotAfter
			}
			return
		}
		seen[k] = len(out)
		out = append(out, e)
	}
	for _, ca := range c.CAs {
		if ca.Cert.NotAfter.IsZero() {
			continue // the service-account key: a key pair, no certificate
		}
		e := Expiry{Kind: "ca", Root: string(ca.Kind), Subject: ca.Cert.Subject, NotAfter: ca.Cert.NotAfter}
		if len(ca.KeyFiles) > 0 {
			e.Node, e.Path = ca.KeyFiles[0].Node, ca.KeyFiles[0].Path
		}
		add(e)
	}
	for _, n := range c.Nodes {
		for _, f := range n.Files {
			for _, cert := range f.Certs {
				add(Expiry{Kind: "certificate", Root: rootOf(cert), Node: n.Name, Path: f.Path, Subject: cert.Subject, NotAfter: cert.NotAfter})
			}
		}
		for _, kc := range n.Kubeconfigs {
			if kc.ClientCert != nil {
				add(Expiry{Kind: "kubeconfig", Root: rootOf(*kc.ClientCert), Node: n.Name, Path: kc.Path, Role: kc.Role,
					Subject: kc.ClientCert.Subject, NotAfter: kc.ClientCert.NotAfter})
			}
		}
	}
	return out
}

// twoOfAKind says the cluster holds two CAs of one kind: a rotation is
// between its prepare and its finalize.
func twoOfAKind(c model.Cluster) bool {
	kinds := map[model.CAKind]int{}
	for _, ca := range c.CAs {
		if ca.Kind == model.UnknownCA {
			continue // a webhook's or an imported CA: not a root of the cluster's
		}
		kinds[ca.Kind]++
		if kinds[ca.Kind] > 1 {
			return true
		}
	}
	return false
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
