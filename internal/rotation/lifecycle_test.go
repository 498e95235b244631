package rotation

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/state"
)

// TestSelect: which phases each command runs from each record state, what
// has nothing to do, and what is refused before anything is contacted.
func TestSelect(t *testing.T) {
	inProgress := func(s RecordState) *Lifecycle {
		return &Lifecycle{Record: state.Record{RotationID: "r-test", Phase: s.Phase()}, state: s}
	}
	fresh := &Lifecycle{Record: state.Record{RotationID: "r-test"}, state: Started, Fresh: true}
	finalized := &Lifecycle{Record: state.Record{RotationID: "r-new"}, state: Started, Fresh: true,
		finalized: &state.Record{RotationID: "r-test", Phase: Completed.Phase(), UpdatedAt: time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)}}
	type want struct {
		from, to Stage
		nothing  string // part of the message
		refused  string // part of the error
	}
	tests := []struct {
		name string
		l    *Lifecycle
		req  Request
		want want
	}{
		{"rotate fresh runs prepare to switch", fresh, Request{Command: Rotate}, want{from: Original, to: Switched}},
		{"rotate --until prepare", fresh, Request{Command: Rotate, Until: Prepared}, want{from: Original, to: Prepared}},
		{"rotate resumes after prepare", inProgress(PrepareDone), Request{Command: Rotate}, want{from: Prepared, to: Switched}},
		{"rotate resumes a started one from the start", inProgress(Started), Request{Command: Rotate}, want{from: Original, to: Switched}},
		{"rotate --until trust after trust", inProgress(TrustDone), Request{Command: Rotate, Until: Trusted}, want{nothing: "has already finished trust"}},
		{"rotate --until prepare after trust", inProgress(TrustDone), Request{Command: Rotate, Until: Prepared}, want{nothing: "has already finished trust"}},
		{"rotate after switch", inProgress(SwitchDone), Request{Command: Rotate}, want{nothing: "already switched to the new CAs; nothing to do. Run `carotate finalize`"}},
		{"rotate after finalize's phase", inProgress(FinalizeDone), Request{Command: Rotate}, want{nothing: "already switched"}},
		{"finalize after switch", inProgress(SwitchDone), Request{Command: Finalize}, want{from: Switched, to: Finalized}},
		{"finalize fresh", fresh, Request{Command: Finalize}, want{refused: "finalize needs a rotation that has switched to the new CA (record: none)"}},
		{"finalize after trust", inProgress(TrustDone), Request{Command: Finalize}, want{refused: "(record: trust)"}},
		{"finalize after finalize's phase only closes the record", inProgress(FinalizeDone), Request{Command: Finalize}, want{from: Finalized, to: Finalized}},
		{"finalize after a finalized rotation", finalized, Request{Command: Finalize}, want{nothing: "Rotation r-test was finalized at 2026-03-14T12:00:00Z; nothing to do."}},
		{"rotate after a finalized rotation starts a new one", finalized, Request{Command: Rotate}, want{from: Original, to: Switched}},
		{"rollback after a finalized rotation", finalized, Request{Command: Rollback}, want{refused: "a finalized rotation cannot be rolled back"}},
		{"rollback fresh", fresh, Request{Command: Rollback}, want{refused: "no rotation in progress to roll back"}},
		{"rollback of a started one undoes prepare", inProgress(Started), Request{Command: Rollback}, want{from: Original, to: Prepared}},
		{"rollback after trust undoes switch too, which may be part way", inProgress(TrustDone), Request{Command: Rollback}, want{from: Original, to: Switched}},
		{"rollback after switch undoes a partly run finalize", inProgress(SwitchDone), Request{Command: Rollback}, want{from: Original, to: Finalized}},
		{"rollback after finalize's phase", inProgress(FinalizeDone), Request{Command: Rollback}, want{from: Original, to: Finalized}},
		{"plan fresh shows every phase", fresh, Request{Command: Plan}, want{from: Original, to: Finalized}},
		{"plan after trust shows the rest", inProgress(TrustDone), Request{Command: Plan}, want{from: Trusted, to: Finalized}},
		{"status", inProgress(SwitchDone), Request{Command: Status}, want{from: Switched, to: Finalized}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := tt.l.Select(tt.req)
			if tt.want.refused != "" {
				if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.want.refused) {
					t.Fatalf("err = %v, want a refusal saying %q", err, tt.want.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.nothing != "" {
				if !strings.Contains(sel.Nothing, tt.want.nothing) || !strings.Contains(sel.Nothing, "r-test") {
					t.Errorf("nothing to do = %q, want it to name r-test and say %q", sel.Nothing, tt.want.nothing)
				}
				return
			}
			if sel.Nothing != "" {
				t.Errorf("nothing to do: %q", sel.Nothing)
			}
			if got := [2]Stage{sel.From, sel.To}; got != [2]Stage{tt.want.from, tt.want.to} {
				t.Errorf("selected %s..%s, want %s..%s", sel.From, sel.To, tt.want.from, tt.want.to)
			}
			if sel.Rollback() != (tt.req.Command == Rollback) || sel.Command != tt.req.Command {
				t.Errorf("selection %+v is not for %s", sel, tt.req.Command)
			}
		})
	}
}

// TestSelectionPhases: a selection is a slice of the runbook, by stage.
func TestSelectionPhases(t *testing.T) {
	m, nodes := fixture(t)
	r := &Rotation{M: m, Nodes: nodes}
	var got []string
	for _, p := range (Selection{Command: Rotate, From: Prepared, To: Switched}).Phases(r) {
		got = append(got, p.Name)
	}
	if diff := cmp.Diff([]string{PhaseTrust, PhaseSwitch}, got); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
}

func TestRotateUntil(t *testing.T) {
	for phase, want := range map[string]Stage{"prepare": Prepared, "trust": Trusted, "switch": Switched} {
		if got, err := RotateUntil(phase); err != nil || got != want {
			t.Errorf("RotateUntil(%q) = %s, %v; want %s", phase, got, err, want)
		}
	}
	for _, phase := range []string{"finalize", "later", ""} {
		if _, err := RotateUntil(phase); err == nil || !strings.Contains(err.Error(), "is not one of prepare, trust or switch") {
			t.Errorf("RotateUntil(%q): %v", phase, err)
		}
	}
}

// TestOpenLifecycle: every record carotate writes loads; a closed rotation,
// or none, makes a fresh one; a record changed by hand is refused.
func TestOpenLifecycle(t *testing.T) {
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		record    string // record.json, "" for none
		wantFresh bool
		wantState RecordState
		wantErr   string
	}{
		{name: "no record", wantFresh: true, wantState: Started},
		{name: "started", record: `{"rotationID": "r-old", "phase": ""}`, wantState: Started},
		{name: "after prepare", record: `{"rotationID": "r-old", "phase": "prepare"}`, wantState: PrepareDone},
		{name: "after switch", record: `{"rotationID": "r-old", "phase": "switch"}`, wantState: SwitchDone},
		{name: "after finalize's phase", record: `{"rotationID": "r-old", "phase": "finalize"}`, wantState: FinalizeDone},
		{name: "finalized", record: `{"rotationID": "r-old", "phase": "finalized"}`, wantFresh: true, wantState: Started},
		{name: "rolled back", record: `{"rotationID": "r-old", "phase": "rolled-back"}`, wantFresh: true, wantState: Started},
		{name: "changed by hand", record: `{"rotationID": "r-old", "phase": "done"}`, wantErr: `phase "done" is none carotate writes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, err := state.Open(t.TempDir(), "uid-1")
			if err != nil {
				t.Fatal(err)
			}
			if tt.record != "" {
				if err := os.WriteFile(dir.Join(state.RecordFile), []byte(tt.record), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			l, err := OpenLifecycle(dir, func() time.Time { return now }, "v-test")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := l.finalized != nil && l.finalized.RotationID == "r-old"; got != (tt.name == "finalized") {
				t.Errorf("the finalized rotation kept: %+v", l.finalized)
			}
			if l.Fresh != tt.wantFresh || l.State() != tt.wantState {
				t.Errorf("fresh %v, state %v; want %v, %v", l.Fresh, l.State(), tt.wantFresh, tt.wantState)
			}
			switch {
			case tt.wantFresh && (l.Record.RotationID == "r-old" || !strings.HasPrefix(l.Record.RotationID, "r-") || !l.Record.StartedAt.Equal(now) || l.Record.ToolVersion != "v-test"):
				t.Errorf("fresh record %+v is not a new rotation started now", l.Record)
			case !tt.wantFresh && l.Record.RotationID != "r-old":
				t.Errorf("record %+v is not the one in progress", l.Record)
			}
		})
	}
}

// TestSelectRoots: a fresh rotation records the roots named, or the
// default; one in progress keeps its record's, and a command that names
// others is refused, saying what the record holds.
func TestSelectRoots(t *testing.T) {
	inProgress := func(roots ...string) *Lifecycle {
		return &Lifecycle{Record: state.Record{RotationID: "r-test", Phase: PhaseTrust, Roots: roots}, state: TrustDone}
	}
	tests := []struct {
		name    string
		l       *Lifecycle
		cmd     Command
		named   Roots
		want    []string // the record's roots afterwards
		refused string   // part of the error
	}{
		{"fresh, not named: the default", &Lifecycle{Fresh: true}, Rotate, nil, []string{"cluster-ca", "front-proxy-ca"}, ""},
		{"fresh, named", &Lifecycle{Fresh: true}, Plan, AllRoots(), AllRoots().Names(), ""},
		{"resume, not named", inProgress("cluster-ca", "front-proxy-ca"), Rotate, nil, []string{"cluster-ca", "front-proxy-ca"}, ""},
		{"resume, same roots", inProgress("cluster-ca", "front-proxy-ca"), Rotate, DefaultRoots(), []string{"cluster-ca", "front-proxy-ca"}, ""},
		{"record without roots is the default", inProgress(), Rollback, DefaultRoots(), nil, ""},
		{"resume, other roots", inProgress("cluster-ca", "front-proxy-ca"), Rotate, AllRoots(),
			nil, "--roots cluster-ca,front-proxy-ca,service-account-key,etcd-ca: rotation r-test was started with --roots cluster-ca,front-proxy-ca, which its record holds"},
		{"finalize, other roots", inProgress("cluster-ca", "front-proxy-ca"), Finalize, Roots{RootClusterCA}, nil, "started with --roots cluster-ca,front-proxy-ca"},
		{"rollback, other roots than an old record's", inProgress(), Rollback, Roots{RootEtcdCA}, nil, "started with --roots cluster-ca,front-proxy-ca"},
		{"status, other roots", inProgress("cluster-ca", "front-proxy-ca", "etcd-ca"), Status, DefaultRoots(), nil, "started with --roots cluster-ca,front-proxy-ca,etcd-ca"},
		{"record changed by hand", inProgress("sa"), Rotate, nil, nil, `"sa" is not a root`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.l.Fresh {
				tt.l.Record.RotationID, tt.l.state = "r-test", Started
			}
			_, err := tt.l.Select(Request{Command: tt.cmd, Roots: tt.named})
			if tt.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tt.refused) {
					t.Fatalf("err = %v, want a refusal saying %q", err, tt.refused)
				}
				if strings.Contains(tt.refused, "started with") && !errors.Is(err, ErrRefused) {
					t.Errorf("err = %v is not ErrRefused", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, tt.l.Record.Roots); diff != "" {
				t.Errorf("record's roots (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSelectRenew: renew starts a renewal and records it with its
// reason; rotate does not resume a renewal, nor renew a rotation; and a
// renewal of a root without a certificate is refused before anything.
func TestSelectRenew(t *testing.T) {
	inProgress := func(renew bool) *Lifecycle {
		return &Lifecycle{Record: state.Record{RotationID: "r-test", Phase: PhaseTrust, Renew: renew}, state: TrustDone}
	}
	fresh := &Lifecycle{Record: state.Record{RotationID: "r-test"}, state: Started, Fresh: true}
	sel, err := fresh.Select(Request{Command: Renew, Reason: "expires 2027-01-02"})
	if err != nil || sel.From != Original || sel.To != Switched || !fresh.Record.Renew || fresh.Record.Reason != "expires 2027-01-02" {
		t.Fatalf("renew fresh: %+v %v, record %+v", sel, err, fresh.Record)
	}
	if sel, err := inProgress(true).Select(Request{Command: Renew}); err != nil || sel.From != Trusted {
		t.Errorf("renew resumes a renewal: %+v %v", sel, err)
	}
	if _, err := inProgress(true).Select(Request{Command: Finalize}); err == nil || !strings.Contains(err.Error(), "(record: trust)") {
		t.Errorf("finalize of a renewal before switch: %v", err)
	}
	done := &Lifecycle{Record: state.Record{RotationID: "r-test", Phase: PhaseSwitch, Renew: true}, state: SwitchDone}
	if sel, err := done.Select(Request{Command: Renew}); err != nil || !strings.Contains(sel.Nothing, "Renewal r-test has already switched to the renewed CA certificates") {
		t.Errorf("renew after switch: %+v %v", sel, err)
	}
	for _, tc := range []struct {
		name string
		l    *Lifecycle
		req  Request
		want string
	}{
		{"rotate on a renewal", inProgress(true), Request{Command: Rotate}, "r-test is a renewal (the same keys, new certificates); run `carotate renew` to resume it"},
		{"renew on a rotation", inProgress(false), Request{Command: Renew}, "rotation r-test is in progress with new keys"},
		{"renew the service-account key", &Lifecycle{Record: state.Record{RotationID: "r-x"}, state: Started, Fresh: true},
			Request{Command: Renew, Roots: AllRoots()}, "--roots service-account-key: the service-account key has no certificate to renew"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.l.Select(tc.req)
			if err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a refusal saying %q", err, tc.want)
			}
		})
	}
}
