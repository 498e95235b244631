// Package probe is the availability probe that runs in a pod during CA
// rotations, and the reader for its log.
//
// The probe GETs its namespace's kube-root-ca.crt ConfigMap every interval
// over a new TLS connection, so each success proves that the trust the pod
// loaded at start still accepts the serving certificate the apiserver
// presents now, and that the apiserver still accepts the pod's token.
//
// # Log format
//
// The probe writes one JSON object per line to stdout. Every object has
// "time" (RFC 3339 with nanoseconds, UTC) and "kind"; times inside records
// use the same encoding. The kinds, in the order they can appear:
//
//	{"time":T,"kind":"start","node":N,"pod":P,"namespace":NS,"host":URL,"path":PATH,"interval_ms":500,"timeout_ms":3000}
//	{"time":T,"kind":"root_ca","sha256":HEX,"certs":1}
//	{"time":T,"kind":"failing","since":T0,"error":E}
//	{"time":T,"kind":"window","start":T0,"end":T1,"failed":K,"first_error":E1,"last_error":E2}
//	{"time":T,"kind":"summary","node":N,"pod":P,"ok":N,"failed":M,"failing":false}
//	{"time":T,"kind":"stop","node":N,"pod":P,"ok":N,"failed":M}
//
// "root_ca" is written when the ca.crt the ConfigMap holds changes (and on
// the first success): sha256 is over the PEM bytes. "failing" is written
// when a failure window opens, "window" when it closes. A window starts
// at the first failed attempt and ends at the first successful attempt
// after it (attempt start times); "failed" is the number of failed
// attempts in it. A window still open when the probe stops is written
// with "open":true and the stop time as "end". "summary" comes every
// summary interval (5 s by default) and "stop" on a clean shutdown; their
// "ok" and "failed" are totals since "start".
package probe

import "time"

// Record kinds, the "kind" field of every log line.
const (
	KindStart   = "start"
	KindRootCA  = "root_ca"
	KindFailing = "failing"
	KindWindow  = "window"
	KindSummary = "summary"
	KindStop    = "stop"
)

// StartRecord opens a probe run.
type StartRecord struct {
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`
	Node       string    `json:"node"`
	Pod        string    `json:"pod"`
	Namespace  string    `json:"namespace"`
	Host       string    `json:"host"`
	Path       string    `json:"path"`
	IntervalMS int64     `json:"interval_ms"`
	TimeoutMS  int64     `json:"timeout_ms"`
}

// RootCARecord tells which CA bundle kube-root-ca.crt held.
type RootCARecord struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`
	SHA256 string    `json:"sha256"`
	Certs  int       `json:"certs"`
}

// FailingRecord says a failure window opened.
type FailingRecord struct {
	Time  time.Time `json:"time"`
	Kind  string    `json:"kind"`
	Since time.Time `json:"since"`
	Error string    `json:"error"`
}

// WindowRecord describes a failure window that closed.
type WindowRecord struct {
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Failed     int64     `json:"failed"`
	FirstError string    `json:"first_error"`
	LastError  string    `json:"last_error"`
	Open       bool      `json:"open,omitempty"`
}

// SummaryRecord carries the running totals.
type SummaryRecord struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Node    string    `json:"node"`
	Pod     string    `json:"pod"`
	OK      int64     `json:"ok"`
	Failed  int64     `json:"failed"`
	Failing bool      `json:"failing"`
}

// StopRecord closes a probe run with its final totals.
type StopRecord struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`
	Node   string    `json:"node"`
	Pod    string    `json:"pod"`
	OK     int64     `json:"ok"`
	Failed int64     `json:"failed"`
}

// Window is one stretch of consecutive failed attempts.
type Window struct {
	Start      time.Time `json:"start"`
	End        time.Time `json:"end,omitzero"`
	Failed     int64     `json:"failed"`
	FirstError string    `json:"first_error"`
	LastError  string    `json:"last_error"`
	// Open is true when the probe stopped, or its log ended, while the
	// window was still open. End is then the stop time, or zero when the
	// log just ends.
	Open bool `json:"open,omitempty"`
}
