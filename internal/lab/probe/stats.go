package probe

import (
	"encoding/json"
	"net/http"
	"time"
)

// Stats is what GET /stats returns: the probe's counters right now.
type Stats struct {
	Node      string `json:"node"`
	Pod       string `json:"pod"`
	Namespace string `json:"namespace"`
	OK        int64  `json:"ok"`
	Failed    int64  `json:"failed"`
	Failing   bool   `json:"failing"`
	// Current is the open failure window, if any.
	Current *Window `json:"current,omitempty"`
	// Windows are the most recent closed windows, oldest first, at most
	// 100 of them; WindowsTotal counts all.
	Windows      []Window  `json:"windows"`
	WindowsTotal int64     `json:"windows_total"`
	LastOK       time.Time `json:"last_ok,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
	RootCASHA256 string    `json:"root_ca_sha256,omitempty"`
}

// Stats returns a copy of the counters, safe to use while Run goes on.
func (p *Prober) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.st
	s.Windows = append([]Window{}, p.st.Windows...)
	if p.st.Current != nil {
		w := *p.st.Current
		s.Current = &w
	}
	return s
}

// Handler serves GET /stats and GET /healthz.
func (p *Prober) Handler() http.Handler {
	mux := HealthMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p.Stats())
	})
	return mux
}

// HealthMux serves GET /healthz, which answers 200 whenever the process
// is up. It does not reflect API failures: a liveness probe that did would
// have the kubelet restart the probe mid-rotation and lose its counters.
func HealthMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}
