package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/state"
)

// system is the fake cluster: files by "node:path", and how many Apply
// calls changed something. It is pure data, so faking it is fine; real
// nodes are the e2e suite's job.
type system struct {
	mu      sync.Mutex
	files   map[string]string
	initial map[string]string // what the backup would restore
	applied int               // Apply calls that changed something
	gateErr map[string]error  // phase → gate failure
}

func newSystem() *system {
	files := map[string]string{}
	for _, n := range []string{"cp-1", "cp-2", "cp-3"} {
		files[n+":/etc/kubernetes/pki/ca.crt"] = "old"
		files[n+":/etc/kubernetes/manifests/kube-controller-manager.yaml"] = "root-ca=ca.crt"
	}
	for _, n := range []string{"w-1", "w-2", "w-3", "w-4"} {
		files[n+":/var/lib/kubelet/config.yaml"] = "clientCAFile=ca.crt"
	}
	files["api:ConfigMap kube-public/cluster-info"] = "old"
	return &system{files: files, initial: maps.Clone(files), gateErr: map[string]error{}}
}

func (s *system) snapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.files)
}

// ensure is the shape of most rotation steps: make one value what it must
// be, undo by restoring what the backup holds.
func ensure(node, path, want string, opts ...func(*Step[*system])) Step[*system] {
	key := node + ":" + path
	if node == "" {
		key = "api:" + path
	}
	st := Step[*system]{
		Name:   "set " + path,
		Target: Target{Node: node},
		Check: func(_ context.Context, s *system) (bool, string, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.files[key] == want {
				return true, path + " is " + want, nil
			}
			return false, "", nil
		},
		Apply: func(_ context.Context, s *system) (Change, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			before := s.files[key]
			if before == want {
				return Change{}, nil
			}
			s.files[key] = want
			s.applied++
			return Change{Changed: true, Detail: path + " → " + want,
				Files: []state.FileChange{{Target: key, Before: hash([]byte(before)), After: hash([]byte(want))}}}, nil
		},
		Undo: func(_ context.Context, s *system) (Change, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			cur, exists := s.files[key]
			orig, existed := s.initial[key]
			if cur == orig && exists == existed {
				return Change{}, nil
			}
			if existed {
				s.files[key] = orig
			} else {
				delete(s.files, key) // the file the step created goes
			}
			return Change{Changed: true, Detail: path + " restored"}, nil
		},
		Describe: func(_ context.Context, s *system) (Plan, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			return Plan{Summary: path + " → " + want,
				Diffs: []Diff{FileDiff(node, path, []byte(s.files[key]), []byte(want))}}, nil
		},
	}
	if node == "" {
		st.Target = Target{Object: path}
	}
	for _, o := range opts {
		o(&st)
	}
	return st
}

func wave(name string) func(*Step[*system]) { return func(s *Step[*system]) { s.Wave = name } }
func named(name string) func(*Step[*system]) {
	return func(s *Step[*system]) { s.Name = name }
}
func restarts(component string) func(*Step[*system]) {
	return func(s *Step[*system]) {
		describe := s.Describe
		node := s.Target.Node
		s.Describe = func(ctx context.Context, sys *system) (Plan, error) {
			p, err := describe(ctx, sys)
			p.Restarts = append(p.Restarts, Restart{Component: component, Node: node})
			return p, err
		}
	}
}

func gate(phase string) *Gate[*system] {
	return &Gate[*system]{Name: phase + "-healthy", Verify: func(_ context.Context, s *system, _ time.Time) (string, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.gateErr[phase]; err != nil {
			return "", err
		}
		return "all healthy", nil
	}}
}

// rotation is a small rotation in the real one's shape: waves of
// control-plane and worker steps, an API object, gates between phases.
func rotation() []Phase[*system] {
	cps := []string{"cp-1", "cp-2", "cp-3"}
	workers := []string{"w-1", "w-2", "w-3", "w-4"}
	var prepare, trust, sw []Step[*system]
	for _, n := range cps {
		prepare = append(prepare, ensure(n, "/etc/kubernetes/pki/ca-new.crt", "new", wave("distribute"), named("distribute new ca")))
	}
	for _, n := range cps {
		trust = append(trust, ensure(n, "/etc/kubernetes/manifests/kube-controller-manager.yaml", "root-ca=bundle",
			wave("kcm"), named("kcm root-ca-file"), restarts("kube-controller-manager")))
	}
	for _, n := range workers {
		trust = append(trust, ensure(n, "/var/lib/kubelet/config.yaml", "clientCAFile=bundle",
			wave("kubelets"), named("kubelet client-ca"), restarts("kubelet")))
	}
	trust = append(trust, ensure("", "ConfigMap kube-public/cluster-info", "bundle", named("cluster-info")))
	for _, n := range cps {
		sw = append(sw, ensure(n, "/etc/kubernetes/pki/ca.crt", "new", named("ca.crt new")))
	}
	return []Phase[*system]{
		{Name: "prepare", Steps: prepare},
		{Name: "trust", Steps: trust, Gate: gate("trust")},
		{Name: "switch", Steps: sw, Gate: gate("switch")},
	}
}

func stepCount(phases []Phase[*system]) int {
	n := 0
	for _, p := range phases {
		n += len(p.Steps)
	}
	return n
}

func isCP(node string) bool { return strings.HasPrefix(node, "cp-") }

type fakeJournal struct {
	mu      sync.Mutex
	entries []state.Entry
}

func (j *fakeJournal) Append(e state.Entry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, e)
	return nil
}

// stepKey names a step outcome for comparisons.
type stepKey struct{ Phase, Step, Target string }

func keys(events []Event, outcomes ...Outcome) []stepKey {
	var out []stepKey
	for _, e := range events {
		if !e.Gate && (len(outcomes) == 0 || contains(outcomes, e.Outcome)) {
			out = append(out, stepKey{e.Phase, e.Step, e.Target.String()})
		}
	}
	return out
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func sortKeys(k []stepKey) []stepKey {
	out := append([]stepKey(nil), k...)
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}

func TestPlanEqualsApply(t *testing.T) {
	tests := []struct {
		name        string
		parallelism int
		prepare     func(*system) // state before plan: fresh, or half rotated
	}{
		{name: "fresh, one at a time", parallelism: 1, prepare: func(*system) {}},
		{name: "fresh, parallel", parallelism: 4, prepare: func(*system) {}},
		{name: "half rotated", parallelism: 1, prepare: func(s *system) {
			s.files["cp-2:/etc/kubernetes/pki/ca-new.crt"] = "new"
			s.files["w-3:/var/lib/kubelet/config.yaml"] = "clientCAFile=bundle"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sys := newSystem()
			tt.prepare(sys)
			ctx := context.Background()
			before := sys.snapshot()
			planned := &Recorder{}
			r := &Runner[*system]{Reporter: planned, Parallelism: tt.parallelism, IsControlPlane: isCP}
			events, err := r.Plan(ctx, sys, rotation())
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			if diff := cmp.Diff(before, sys.snapshot()); diff != "" {
				t.Fatalf("plan changed the system (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(planned.Events(), events, cmp.Comparer(errEqual)); diff != "" {
				t.Errorf("Plan's return differs from what it reported (-reported +returned):\n%s", diff)
			}
			applied := &Recorder{}
			r = &Runner[*system]{Reporter: applied, Parallelism: tt.parallelism, IsControlPlane: isCP}
			if err := r.Apply(ctx, sys, rotation()); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			wantChanged, gotChanged := keys(events, Planned), keys(applied.Events(), Changed)
			wantSame, gotSame := keys(events, Unchanged), keys(applied.Events(), Unchanged)
			if tt.parallelism > 1 { // waves finish in any order
				wantChanged, gotChanged = sortKeys(wantChanged), sortKeys(gotChanged)
				wantSame, gotSame = sortKeys(wantSame), sortKeys(gotSame)
			}
			if diff := cmp.Diff(wantChanged, gotChanged); diff != "" {
				t.Errorf("apply changed other steps than plan listed (-planned +changed):\n%s", diff)
			}
			if diff := cmp.Diff(wantSame, gotSame); diff != "" {
				t.Errorf("apply skipped other steps than plan showed as done (-plan +apply):\n%s", diff)
			}
			if sys.applied != len(wantChanged) {
				t.Errorf("%d apply calls changed something, plan listed %d", sys.applied, len(wantChanged))
			}
			if got := CountRestarts(events); len(got) != 2 {
				t.Errorf("CountRestarts = %v, want kube-controller-manager and kubelet", got)
			}
		})
	}
}

func errEqual(a, b error) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func TestRerunChangesNothing(t *testing.T) {
	ctx := context.Background()
	sys := newSystem()
	r := &Runner[*system]{Parallelism: 3, IsControlPlane: isCP}
	if err := r.Apply(ctx, sys, rotation()); err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	end, appliedBefore := sys.snapshot(), sys.applied
	rec, j := &Recorder{}, &fakeJournal{}
	r = &Runner[*system]{Reporter: rec, Journal: j, Parallelism: 3, IsControlPlane: isCP}
	if err := r.Apply(ctx, sys, rotation()); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if sys.applied != appliedBefore {
		t.Errorf("rerun made %d changing apply calls, want 0", sys.applied-appliedBefore)
	}
	if diff := cmp.Diff(end, sys.snapshot()); diff != "" {
		t.Errorf("rerun changed the system:\n%s", diff)
	}
	if len(j.entries) != 0 {
		t.Errorf("rerun journaled %d entries, want none: %v", len(j.entries), j.entries)
	}
	for _, e := range rec.Events() {
		if e.Outcome != Unchanged && e.Outcome != Passed {
			t.Errorf("rerun event %s/%s on %s: %s, want unchanged", e.Phase, e.Step, e.Target, e.Outcome)
		}
	}
	if got, want := len(keys(rec.Events(), Unchanged)), stepCount(rotation()); got != want {
		t.Errorf("rerun reported %d unchanged steps, want %d", got, want)
	}
}

// failAt fails the n-th (0-based) call of the hook at point when.
func failAt(n int, when string) Hook {
	var mu sync.Mutex
	calls := 0
	return func(phase, step string, _ Target, w string) error {
		if w != when {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls-1 == n {
			return fmt.Errorf("injected failure %s %s/%s", w, phase, step)
		}
		return nil
	}
}

func TestFailureAtEveryStepThenResume(t *testing.T) {
	ctx := context.Background()
	ref := newSystem()
	if err := (&Runner[*system]{IsControlPlane: isCP}).Apply(ctx, ref, rotation()); err != nil {
		t.Fatalf("reference Apply: %v", err)
	}
	want := ref.snapshot()
	for _, when := range []string{BeforeApply, AfterApply} {
		for i := range stepCount(rotation()) {
			for _, par := range []int{1, 3} {
				t.Run(fmt.Sprintf("%s step %d parallel %d", when, i, par), func(t *testing.T) {
					sys := newSystem()
					r := &Runner[*system]{Hook: failAt(i, when), Parallelism: par, IsControlPlane: isCP}
					err := r.Apply(ctx, sys, rotation())
					var se *StepError
					if !errors.As(err, &se) || se.Op != when {
						t.Fatalf("Apply with a failure at step %d: %v, want a *StepError at %s", i, err, when)
					}
					r = &Runner[*system]{Parallelism: par, IsControlPlane: isCP}
					if err := r.Apply(ctx, sys, rotation()); err != nil {
						t.Fatalf("resume: %v", err)
					}
					if diff := cmp.Diff(want, sys.snapshot()); diff != "" {
						t.Errorf("resume ended elsewhere than an uninterrupted run (-want +got):\n%s", diff)
					}
					if sys.applied != ref.applied {
						t.Errorf("failed run + resume changed %d times, an uninterrupted run %d", sys.applied, ref.applied)
					}
				})
			}
		}
	}
}

func TestRollbackFromEveryStep(t *testing.T) {
	ctx := context.Background()
	n := stepCount(rotation())
	for _, when := range []string{BeforeApply, AfterApply} {
		for i := range n + 1 { // n: no failure, rollback after a full apply
			t.Run(fmt.Sprintf("%s step %d", when, i), func(t *testing.T) {
				sys := newSystem()
				r := &Runner[*system]{Hook: failAt(i, when), Parallelism: 2, IsControlPlane: isCP}
				err := r.Apply(ctx, sys, rotation())
				if (i < n) != (err != nil) {
					t.Fatalf("Apply: %v", err)
				}
				rec := &Recorder{}
				r = &Runner[*system]{Reporter: rec, Parallelism: 2, IsControlPlane: isCP}
				if err := r.Rollback(ctx, sys, rotation()); err != nil {
					t.Fatalf("Rollback: %v", err)
				}
				if diff := cmp.Diff(sys.initial, sys.snapshot()); diff != "" {
					t.Errorf("rollback did not restore the initial state (-initial +got):\n%s", diff)
				}
				if got := len(keys(rec.Events())); got != n {
					t.Errorf("rollback reported %d steps, want %d", got, n)
				}
				// A second rollback finds nothing to do.
				rec = &Recorder{}
				r.Reporter = rec
				if err := r.Rollback(ctx, sys, rotation()); err != nil {
					t.Fatalf("second Rollback: %v", err)
				}
				if got := keys(rec.Events(), Undone); len(got) != 0 {
					t.Errorf("second rollback undid %v", got)
				}
			})
		}
	}
}

func TestRollbackOrderAndNoUndo(t *testing.T) {
	ctx := context.Background()
	noUndo := func(s *Step[*system]) { s.Undo = nil }
	phases := func(last func(*Step[*system])) []Phase[*system] {
		return []Phase[*system]{
			{Name: "prepare", Steps: []Step[*system]{ensure("cp-1", "/a", "new", named("a"))}},
			{Name: "trust", Steps: []Step[*system]{
				ensure("cp-1", "/b", "new", named("b")),
				ensure("cp-1", "/c", "new", named("c"), last),
			}},
		}
	}
	t.Run("reverse order", func(t *testing.T) {
		sys := newSystem()
		if err := (&Runner[*system]{}).Apply(ctx, sys, phases(func(*Step[*system]) {})); err != nil {
			t.Fatal(err)
		}
		rec := &Recorder{}
		if err := (&Runner[*system]{Reporter: rec}).Rollback(ctx, sys, phases(func(*Step[*system]) {})); err != nil {
			t.Fatal(err)
		}
		want := []stepKey{{"trust", "c", "cp-1"}, {"trust", "b", "cp-1"}, {"prepare", "a", "cp-1"}}
		if diff := cmp.Diff(want, keys(rec.Events(), Undone)); diff != "" {
			t.Errorf("undo order (-want +got):\n%s", diff)
		}
	})
	t.Run("done step without undo stops rollback", func(t *testing.T) {
		sys := newSystem()
		if err := (&Runner[*system]{}).Apply(ctx, sys, phases(noUndo)); err != nil {
			t.Fatal(err)
		}
		err := (&Runner[*system]{}).Rollback(ctx, sys, phases(noUndo))
		var nu *NoUndoError
		if !errors.As(err, &nu) || nu.Step != "c" {
			t.Fatalf("Rollback = %v, want a *NoUndoError for step c", err)
		}
		if !strings.Contains(err.Error(), "restore what it changed from the backup") {
			t.Errorf("error does not say what to do: %v", err)
		}
		if sys.snapshot()["cp-1:/b"] != "new" {
			t.Errorf("rollback went past the step it could not undo")
		}
	})
	t.Run("step without undo that is not done is skipped", func(t *testing.T) {
		sys := newSystem()
		if err := (&Runner[*system]{}).Rollback(ctx, sys, phases(noUndo)); err != nil {
			t.Fatalf("Rollback: %v", err)
		}
	})
	t.Run("step marked as needing no undo is skipped", func(t *testing.T) {
		sys := newSystem()
		mark := func(s *Step[*system]) { s.Undo, s.NoUndo = nil, true }
		if err := (&Runner[*system]{}).Apply(ctx, sys, phases(mark)); err != nil {
			t.Fatal(err)
		}
		if err := (&Runner[*system]{}).Rollback(ctx, sys, phases(mark)); err != nil {
			t.Fatalf("Rollback: %v", err)
		}
	})
}

func TestGateFailureStops(t *testing.T) {
	ctx := context.Background()
	sys := newSystem()
	sys.gateErr["trust"] = errors.New("node w-2 NotReady")
	rec := &Recorder{}
	err := (&Runner[*system]{Reporter: rec, Parallelism: 2, IsControlPlane: isCP}).Apply(ctx, sys, rotation())
	var ge *GateError
	if !errors.As(err, &ge) || ge.Phase != "trust" || ge.Gate != "trust-healthy" {
		t.Fatalf("Apply = %v, want a *GateError for trust", err)
	}
	for k, v := range sys.snapshot() {
		if strings.HasSuffix(k, "/pki/ca.crt") && v != "old" {
			t.Errorf("%s = %q: the switch phase ran after the trust gate failed", k, v)
		}
	}
	for _, e := range rec.Events() {
		if e.Phase == "switch" {
			t.Errorf("event from the switch phase after the trust gate failed: %+v", e)
		}
	}
	last := rec.Events()[len(rec.Events())-1]
	if !last.Gate || last.Outcome != Failed {
		t.Errorf("last event = %+v, want the failed gate", last)
	}
	// Fixing the cause and rerunning resumes: trust steps unchanged, switch done.
	delete(sys.gateErr, "trust")
	applied := sys.applied
	if err := (&Runner[*system]{IsControlPlane: isCP}).Apply(ctx, sys, rotation()); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if got := sys.applied - applied; got != 3 {
		t.Errorf("rerun changed %d steps, want the 3 switch steps", got)
	}
}

func TestJournalAroundEveryChange(t *testing.T) {
	ctx := context.Background()
	sys := newSystem()
	sys.files["w-1:/var/lib/kubelet/config.yaml"] = "clientCAFile=bundle" // already done: no entries
	j := &fakeJournal{}
	phases := rotation()[1:2]
	if err := (&Runner[*system]{Journal: j, IsControlPlane: isCP}).Apply(ctx, sys, phases); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range j.entries {
		got = append(got, e.Action+" "+e.Step+" "+e.Target)
		if e.Time.IsZero() {
			t.Errorf("entry without time: %+v", e)
		}
	}
	var want []string
	for _, tg := range []string{"cp-1", "cp-2", "cp-3"} {
		want = append(want, "apply kcm root-ca-file "+tg, "applied kcm root-ca-file "+tg)
	}
	for _, tg := range []string{"w-2", "w-3", "w-4"} {
		want = append(want, "apply kubelet client-ca "+tg, "applied kubelet client-ca "+tg)
	}
	want = append(want, "apply cluster-info ConfigMap kube-public/cluster-info", "applied cluster-info ConfigMap kube-public/cluster-info")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("journal (-want +got):\n%s", diff)
	}
	if f := j.entries[1].Files; len(f) != 1 || f[0].Target != "cp-1:/etc/kubernetes/manifests/kube-controller-manager.yaml" || f[0].Before == f[0].After {
		t.Errorf("applied entry files = %+v, want the manifest with its before/after hashes", f)
	}
}

// concurrency counts steps running at once.
type concurrency struct {
	mu              sync.Mutex
	running, cp     int
	maxRunning, max int
}

func (c *concurrency) step(node string, controlPlane bool) Step[*concurrency] {
	done := false
	var mu sync.Mutex
	return Step[*concurrency]{
		Name: "work", Target: Target{Node: node}, Wave: "all", ControlPlane: controlPlane,
		Check: func(context.Context, *concurrency) (bool, string, error) {
			mu.Lock()
			defer mu.Unlock()
			return done, "", nil
		},
		Apply: func(_ context.Context, c *concurrency) (Change, error) {
			cpNode := strings.HasPrefix(node, "cp-")
			c.mu.Lock()
			c.running++
			c.maxRunning = max(c.maxRunning, c.running)
			if cpNode {
				c.cp++
				c.maxCP(c.cp)
			}
			c.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
			c.mu.Lock()
			c.running--
			if cpNode {
				c.cp--
			}
			c.mu.Unlock()
			mu.Lock()
			done = true
			mu.Unlock()
			return Change{Changed: true}, nil
		},
		NoUndo: true,
	}
}

func (c *concurrency) maxCP(n int) { c.maximum(n) }
func (c *concurrency) maximum(n int) {
	if n > c.max {
		c.max = n
	}
}

func TestConcurrencyBoundAndOneControlPlaneAtATime(t *testing.T) {
	tests := []struct {
		name     string
		marked   bool // steps say ControlPlane themselves, else the resolver knows
		resolver func(string) bool
	}{
		{name: "steps marked control-plane", marked: true},
		{name: "roles from the resolver", resolver: isCP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &concurrency{}
			var steps []Step[*concurrency]
			for i := range 5 {
				steps = append(steps, c.step(fmt.Sprintf("cp-%d", i), tt.marked))
				steps = append(steps, c.step(fmt.Sprintf("w-%d", i), false), c.step(fmt.Sprintf("w-%d", i+5), false))
			}
			r := &Runner[*concurrency]{Parallelism: 4, IsControlPlane: tt.resolver}
			if err := r.Apply(context.Background(), c, []Phase[*concurrency]{{Name: "trust", Steps: steps}}); err != nil {
				t.Fatal(err)
			}
			if c.max != 1 {
				t.Errorf("%d control-plane steps ran at once, want 1", c.max)
			}
			if c.maxRunning > 4 {
				t.Errorf("%d steps ran at once, bound is 4", c.maxRunning)
			}
			if c.maxRunning < 2 {
				t.Errorf("at most %d step ran at once: the wave did not run in parallel", c.maxRunning)
			}
		})
	}
}

func TestWaveFailureStartsNoMoreSteps(t *testing.T) {
	var mu sync.Mutex
	var checked []string
	step := func(node string, fail bool) Step[struct{}] {
		return Step[struct{}]{Name: "s", Target: Target{Node: node}, Wave: "w", NoUndo: true,
			Check: func(context.Context, struct{}) (bool, string, error) {
				mu.Lock()
				checked = append(checked, node)
				mu.Unlock()
				return false, "", nil
			},
			Apply: func(context.Context, struct{}) (Change, error) {
				if fail {
					return Change{}, errors.New("kubelet did not come back")
				}
				return Change{Changed: true}, nil
			}}
	}
	phases := []Phase[struct{}]{{Name: "trust", Steps: []Step[struct{}]{
		step("w-1", false), step("w-2", true), step("w-3", false), step("w-4", false)}}}
	err := (&Runner[struct{}]{Parallelism: 1}).Apply(context.Background(), struct{}{}, phases)
	if err == nil || !strings.Contains(err.Error(), "phase trust: step s on w-2: apply: kubelet did not come back") {
		t.Fatalf("Apply = %v", err)
	}
	if diff := cmp.Diff([]string{"w-1", "w-2"}, checked); diff != "" {
		t.Errorf("steps started (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	ok := func(context.Context, struct{}) (bool, string, error) { return true, "", nil }
	apply := func(context.Context, struct{}) (Change, error) { return Change{}, nil }
	tests := []struct {
		name   string
		phases []Phase[struct{}]
		want   string
	}{
		{"duplicate step", []Phase[struct{}]{{Name: "p", Steps: []Step[struct{}]{{Name: "a", Check: ok, Apply: apply}, {Name: "a", Check: ok, Apply: apply}}}}, `phase p: step "a" on "" is listed twice`},
		{"no check", []Phase[struct{}]{{Name: "p", Steps: []Step[struct{}]{{Name: "a", Apply: apply}}}}, "phase p: step a has no check"},
		{"no phase name", []Phase[struct{}]{{}}, "a phase has no name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Runner[struct{}]{}).Apply(context.Background(), struct{}{}, tt.phases)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Apply = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestGateGetsItsPhaseStart: each gate is told when its own phase began in
// this run (the log gate looks for errors since then), not when the run
// began nor when the gate itself starts.
func TestGateGetsItsPhaseStart(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	clock := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	}
	began := map[string]time.Time{}
	stepStart := map[string]time.Time{}
	phases := rotation()
	for i := range phases {
		p := &phases[i]
		first := p.Steps[0].Check
		name := p.Name
		p.Steps[0].Check = func(ctx context.Context, s *system) (bool, string, error) {
			stepStart[name] = now() // one step per phase writes here, and phases run one after another
			return first(ctx, s)
		}
		p.Gate = &Gate[*system]{Name: name + "-healthy", Verify: func(_ context.Context, _ *system, phaseBegan time.Time) (string, error) {
			began[name] = phaseBegan
			return "ok", nil
		}}
	}
	if err := (&Runner[*system]{IsControlPlane: isCP, Now: now}).Apply(ctx, newSystem(), phases); err != nil {
		t.Fatal(err)
	}
	for _, p := range phases {
		b, ok := began[p.Name]
		if !ok {
			t.Errorf("gate of %s did not run", p.Name)
			continue
		}
		if b.After(stepStart[p.Name]) {
			t.Errorf("gate of %s told the phase began at %s, after its first step started (%s)", p.Name, b, stepStart[p.Name])
		}
	}
	if !began["prepare"].Before(began["trust"]) || !began["trust"].Before(began["switch"]) {
		t.Errorf("phase starts %v are not each phase's own", began)
	}
}
