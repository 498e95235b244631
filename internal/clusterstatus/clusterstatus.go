// Package clusterstatus says where a rotation stands where operators look:
// the ConfigMap kube-system/carotate-status, which `kubectl get` shows from
// any machine, and Events about it, which `kubectl get events` and
// `kubectl describe configmap carotate-status -n kube-system` show.
//
// Both hold names, phases, times and messages only: never key material,
// hashes of it or file contents. The one exception is public: once a
// rotation is finalized, the ConfigMap keeps the SHA-256 of each retired
// CA's public key (as `openssl x509 -pubkey | openssl pkey -pubin -outform
// der | sha256sum` prints it), so that check can tell a caBundle that
// still trusts one. Publishing is best effort: a request that
// fails (the API restarting, RBAC) is logged and the rotation goes on; the
// local record and journal stay the truth. Each request is bounded by
// RequestTimeout.
package clusterstatus

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/carotate/carotate/internal/engine"
)

// Where the status lives.
const (
	Namespace = "kube-system"
	Name      = "carotate-status"
	// Controller is the Events' reportingController.
	Controller = "carotate.io/carotate"
	// RequestTimeout bounds each request.
	RequestTimeout = 3 * time.Second
	// noteMax is the API's limit on an Event's note.
	noteMax = 1024
)

// The ConfigMap's keys.
const (
	KeyRotation  = "rotation"
	KeyRoots     = "roots"
	KeyCommand   = "command"
	KeyState     = "state"
	KeyRecord    = "record"
	KeyHolder    = "holder"
	KeyStarted   = "startedAt"
	KeyUpdated   = "updatedAt"
	KeyLastEvent = "message"
	// KeyRetired lists the CAs finalized rotations retired, one per line:
	// the CA's kind and its public key's SHA-256 (hex). It accumulates
	// over rotations.
	KeyRetired = "retiredCAs"
)

// RetiredCA is a CA a finalized rotation distrusted.
type RetiredCA struct {
	Kind       string
	SPKISHA256 string
}

// States a command leaves in the ConfigMap.
const (
	Running = "running"
	Done    = "done"
	Failed  = "failed"
	Refused = "refused"
)

// Status is what the ConfigMap says.
type Status struct {
	Rotation, Command, State, Record, Holder, Message string
	Roots                                             []string
	StartedAt, UpdatedAt                              time.Time
	Retired                                           []RetiredCA
}

// Publisher writes one rotation's status and Events.
type Publisher struct {
	Client    kubernetes.Interface
	Rotation  string
	Roots     []string
	Holder    string // who runs the command: the lock's holder
	StartedAt time.Time
	Now       func() time.Time
	Log       *slog.Logger
	// Retired are the CAs this rotation distrusted, once finalize is
	// done; Set adds them to those the ConfigMap lists.
	Retired []RetiredCA

	mu     sync.Mutex
	uid    string // the ConfigMap's, for the Events' regarding
	seq    int
	warned bool
}

// Who is the holder the status names; "" for no publisher.
func (p *Publisher) Who() string {
	if p == nil {
		return ""
	}
	return p.Holder
}

// Set records that command is in state, with the record's stage and a
// message, creating the ConfigMap if it is missing.
func (p *Publisher) Set(ctx context.Context, command, state, record, message string) {
	if p == nil {
		return
	}
	data := map[string]string{
		KeyRotation: p.Rotation, KeyRoots: strings.Join(p.Roots, ","), KeyCommand: command, KeyState: state,
		KeyRecord: record, KeyHolder: p.Holder, KeyStarted: p.StartedAt.UTC().Format(time.RFC3339),
		KeyUpdated: p.now().UTC().Format(time.RFC3339), KeyLastEvent: truncate(message, noteMax),
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RequestTimeout)
	defer cancel()
	cms := p.Client.CoreV1().ConfigMaps(Namespace)
	cm, err := cms.Get(ctx, Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		setRetired(data, p.Retired)
		cm, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "carotate"}},
			Data:       data,
		}, metav1.CreateOptions{FieldManager: "carotate"})
	case err == nil:
		setRetired(data, mergeRetired(parseRetired(cm.Data[KeyRetired]), p.Retired))
		cm.Data = data
		cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "carotate"})
	}
	if err != nil {
		p.warn("update ConfigMap "+Namespace+"/"+Name, err)
		return
	}
	p.mu.Lock()
	p.uid = string(cm.UID)
	p.mu.Unlock()
}

// Event records one Event about the ConfigMap: eventType is
// corev1.EventTypeNormal or EventTypeWarning, reason a CamelCase word,
// action what carotate was doing (the command).
func (p *Publisher) Event(ctx context.Context, eventType, reason, action, note string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	uid := p.uid
	p.seq++
	seq := p.seq
	p.mu.Unlock()
	now := p.now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RequestTimeout)
	defer cancel()
	_, err := p.Client.EventsV1().Events(Namespace).Create(ctx, &eventsv1.Event{
		// Named as client-go's recorder names them, the time in hex, and a
		// sequence number for two in one clock tick.
		ObjectMeta:          metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x.%d", Name, now.UnixNano(), seq), Namespace: Namespace},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: Controller,
		ReportingInstance:   truncate(p.Holder, 128),
		Action:              action,
		Reason:              reason,
		Type:                eventType,
		Note:                truncate(note, noteMax),
		Regarding: corev1.ObjectReference{APIVersion: "v1", Kind: "ConfigMap", Namespace: Namespace, Name: Name,
			UID: types.UID(uid)},
	}, metav1.CreateOptions{FieldManager: "carotate"})
	if err != nil {
		p.warn("create Event about ConfigMap "+Namespace+"/"+Name, err)
	}
}

// Reporter passes every event on to next, and records an Event for each
// gate (a phase verified) and each failed step.
func (p *Publisher) Reporter(ctx context.Context, command string, next engine.Reporter) engine.Reporter {
	if p == nil {
		return next
	}
	return engine.ReporterFunc(func(e engine.Event) {
		next.Report(e)
		switch {
		case e.Outcome == engine.Failed:
			what := e.Step
			if t := e.Target.Node + e.Target.Object; t != "" {
				what += " on " + t
			}
			msg := fmt.Sprintf("%s: %s failed", e.Phase, what)
			if e.Err != nil {
				msg += ": " + e.Err.Error()
			}
			p.Event(ctx, corev1.EventTypeWarning, "StepFailed", command, msg)
		case e.Gate && e.Outcome == engine.Passed:
			p.Event(ctx, corev1.EventTypeNormal, "PhaseVerified", command, fmt.Sprintf("%s verified: %s", e.Phase, e.Detail))
		}
	})
}

// Read returns what the ConfigMap says; false when there is none.
func Read(ctx context.Context, client kubernetes.Interface) (Status, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	cm, err := client.CoreV1().ConfigMaps(Namespace).Get(ctx, Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Status{}, false, nil
	}
	if err != nil {
		return Status{}, false, err
	}
	d := cm.Data
	st := Status{Rotation: d[KeyRotation], Command: d[KeyCommand], State: d[KeyState], Record: d[KeyRecord], Holder: d[KeyHolder], Message: d[KeyLastEvent]}
	if d[KeyRoots] != "" {
		st.Roots = strings.Split(d[KeyRoots], ",")
	}
	st.Retired = parseRetired(d[KeyRetired])
	st.StartedAt, _ = time.Parse(time.RFC3339, d[KeyStarted])
	st.UpdatedAt, _ = time.Parse(time.RFC3339, d[KeyUpdated])
	return st, true, nil
}

func (p *Publisher) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// warn logs the first failure only: one line, not one per step, while the
// API is away.
func (p *Publisher) warn(what string, err error) {
	p.mu.Lock()
	first := !p.warned
	p.warned = true
	p.mu.Unlock()
	if first && p.Log != nil {
		p.Log.Warn("could not publish the rotation's status in the cluster; the rotation goes on", "request", what, "err", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-3], "") + "..."
}

func parseRetired(s string) []RetiredCA {
	var out []RetiredCA
	for _, line := range strings.Split(s, "\n") {
		if kind, spki, ok := strings.Cut(strings.TrimSpace(line), " "); ok && kind != "" && spki != "" {
			out = append(out, RetiredCA{Kind: kind, SPKISHA256: spki})
		}
	}
	return out
}

// mergeRetired is have, then whatever of add it lacks.
func mergeRetired(have, add []RetiredCA) []RetiredCA {
	out := append([]RetiredCA(nil), have...)
	for _, r := range add {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

func setRetired(data map[string]string, rs []RetiredCA) {
	if len(rs) == 0 {
		return
	}
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s %s\n", r.Kind, r.SPKISHA256)
	}
	data[KeyRetired] = b.String()
}
