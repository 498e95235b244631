package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// The fake clientset checks which calls carotate makes and what it writes;
// how a real apiserver orders concurrent writers is the e2e suite's job.
// The fake tracker neither sets nor checks resourceVersions: the tests
// write them, and inject conflicts with reactors.

var (
	now  = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	me   = Holder{User: "alice", Host: "ws1", PID: 4242, Nonce: "0a1b2c3d", RotationID: "r-mine"}
	bob  = "bob@ws2 pid 7 rotation r-other"
	tick = func() time.Time { return now }
)

var leasesGVR = schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}

// fakeClock is a monotonic clock that moves only when waited on: After(d)
// moves it d ahead and fires at once, so waits take no real time. It
// records the waits.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	waits []time.Duration
}

func newClock() *fakeClock { return &fakeClock{t: now} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.waits = append(c.waits, d)
	ch := make(chan time.Time, 1)
	ch <- c.t
	return ch
}

func (c *fakeClock) advance(d time.Duration) { <-c.After(d) }

func (c *fakeClock) waited() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum time.Duration
	for _, w := range c.waits {
		sum += w
	}
	return sum
}

// options runs on clk, with a wall clock skew ahead of the true time
// (which is now plus whatever clk has waited), and records progress.
func options(clk *fakeClock, skew time.Duration, progress *[]string) Options {
	return Options{
		Now:   func() time.Time { return clk.Now().Add(skew) },
		Clock: clk,
		Progress: func(msg string) {
			if progress != nil {
				*progress = append(*progress, msg)
			}
		},
	}
}

func existing(holder string, renewed time.Time, seconds int32) *coordinationv1.Lease {
	return existingAt("10", holder, renewed, seconds)
}

func existingAt(rv, holder string, renewed time.Time, seconds int32) *coordinationv1.Lease {
	t := metav1.NewMicroTime(renewed)
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: Namespace, ResourceVersion: rv, UID: "uid-1"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &seconds,
			AcquireTime: &t, RenewTime: &t},
	}
}

// calls lists the API calls made, as "verb resource", runs of one call
// as "verb resource xN".
func calls(c *fake.Clientset) []string {
	var out []string
	n := 0
	for i, a := range c.Actions() {
		call := a.GetVerb() + " " + a.GetResource().Resource
		n++
		if i+1 < len(c.Actions()) {
			next := c.Actions()[i+1]
			if next.GetVerb()+" "+next.GetResource().Resource == call {
				continue
			}
		}
		if n > 1 {
			call += fmt.Sprintf(" x%d", n)
		}
		out = append(out, call)
		n = 0
	}
	return out
}

func getLease(t *testing.T, c *fake.Clientset) *coordinationv1.Lease {
	t.Helper()
	l, err := c.Tracker().Get(leasesGVR, Namespace, Name)
	if err != nil {
		t.Fatal(err)
	}
	return l.(*coordinationv1.Lease)
}

// onGet runs f before the n-th get of the lease (1-based) is served.
func onGet(c *fake.Clientset, f func(n int) error) {
	n := 0
	c.PrependReactor("get", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		n++
		if err := f(n); err != nil {
			return true, nil, err
		}
		return false, nil, nil
	})
}

func heldMessage(holder, rest string) string {
	return fmt.Sprintf("rotation lock kube-system/carotate-rotation-lock is held by %q, %s: another carotate is rotating this cluster; "+
		"wait for it to finish, or, only after making sure that process is gone, rerun with --force-unlock=%q", holder, rest, holder)
}

func waitingFor(holder string) []string {
	return []string{fmt.Sprintf("waiting up to 2m for the lease held by %q, which looks expired, to stay unrenewed", holder)}
}

func TestAcquire(t *testing.T) {
	tests := []struct {
		name    string
		objects []runtime.Object
		skew    time.Duration // of this machine's wall clock
		alive   func(me, other Holder) bool
		// before the n-th get (the first is Acquire's own; the rest are
		// polls 2s apart), change the tracked lease (bumpWith nil: delete it)
		bumpAt   int
		bumpWith func(t time.Time) *coordinationv1.Lease

		wantCalls    []string
		wantWaited   time.Duration
		wantProgress []string
		wantErr      string // a *HeldError's message
		wantHolder   string // after a wantErr; default bob
		wantRenewed  time.Duration
		transitions  int32
	}{
		{name: "free: create", wantCalls: []string{"create leases"}},
		{name: "held by another and fresh: fail fast, without waiting",
			objects:   []runtime.Object{existing(bob, now.Add(-30*time.Second), 120)},
			wantCalls: []string{"create leases", "get leases"},
			wantErr:   heldMessage(bob, "last renewed 2026-03-14T11:59:30Z (30s ago), expires in 1m30s")},
		{name: "held by another and fresh by a clock 100s behind: fail fast",
			objects:   []runtime.Object{existing(bob, now.Add(-30*time.Second), 120)},
			skew:      -100 * time.Second,
			wantCalls: []string{"create leases", "get leases"},
			wantErr:   heldMessage(bob, "last renewed 2026-03-14T11:59:30Z (-1m10s ago), expires in 3m10s")},
		{name: "this clock 100s ahead, and the holder renews while we watch: held",
			objects: []runtime.Object{existing(bob, now.Add(-30*time.Second), 120)},
			skew:    100 * time.Second,
			bumpAt:  4,
			bumpWith: func(at time.Time) *coordinationv1.Lease {
				return existingAt("11", bob, at, 120)
			},
			wantCalls:    []string{"create leases", "get leases x4"},
			wantWaited:   6 * time.Second,
			wantProgress: waitingFor(bob),
			wantErr:      heldMessage(bob, "last renewed 2026-03-14T12:00:06Z (1m40s ago), expires in 20s")},
		{name: "this clock 10m ahead, and the holder renews while we watch: held, the clocks disagree",
			objects: []runtime.Object{existing(bob, now.Add(-30*time.Second), 120)},
			skew:    10 * time.Minute,
			bumpAt:  3,
			bumpWith: func(at time.Time) *coordinationv1.Lease {
				return existingAt("11", bob, at, 120)
			},
			wantCalls:    []string{"create leases", "get leases x3"},
			wantWaited:   4 * time.Second,
			wantProgress: waitingFor(bob),
			wantErr: heldMessage(bob, "which renewed it while this carotate watched, although by this machine's clock it looks expired "+
				"(last renewed 2026-03-14T12:00:04Z, 10m0s ago): the two machines' clocks disagree")},
		{name: "looks expired and stays unrenewed for the lease duration: take over",
			objects:      []runtime.Object{existing(bob, now.Add(-10*time.Minute), 120)},
			wantCalls:    []string{"create leases", "get leases x61", "update leases"},
			wantWaited:   2 * time.Minute,
			wantProgress: waitingFor(bob),
			wantRenewed:  2 * time.Minute,
			transitions:  1},
		{name: "no renew or acquire time: watch, then take over",
			objects: []runtime.Object{&coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: Namespace, ResourceVersion: "10"},
				Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr(bob)}}},
			wantCalls:    []string{"create leases", "get leases x61", "update leases"},
			wantWaited:   2 * time.Minute,
			wantProgress: waitingFor(bob),
			wantRenewed:  2 * time.Minute,
			transitions:  1},
		{name: "looks expired, deleted while we watch: create",
			objects:      []runtime.Object{existing(bob, now.Add(-10*time.Minute), 120)},
			bumpAt:       5,
			wantCalls:    []string{"create leases", "get leases x5", "create leases"},
			wantWaited:   8 * time.Second,
			wantProgress: waitingFor(bob),
			wantRenewed:  8 * time.Second},
		{name: "looks expired, released while we watch: take over",
			objects: []runtime.Object{existing(bob, now.Add(-10*time.Minute), 120)},
			bumpAt:  2,
			bumpWith: func(at time.Time) *coordinationv1.Lease {
				return existingAt("11", "", at, 120)
			},
			wantCalls:    []string{"create leases", "get leases x2", "update leases"},
			wantWaited:   2 * time.Second,
			wantProgress: waitingFor(bob),
			wantRenewed:  2 * time.Second},
		{name: "same rotation from a crashed process: take over at once",
			objects:     []runtime.Object{existing("alice@ws1 pid 99 rotation r-mine", now.Add(-5*time.Second), 120)},
			wantCalls:   []string{"create leases", "get leases", "update leases"},
			transitions: 1},
		{name: "same rotation from a live process: fail fast",
			objects:    []runtime.Object{existing("alice@ws1 pid 77 rotation r-mine", now.Add(-5*time.Second), 120)},
			wantCalls:  []string{"create leases", "get leases"},
			wantErr:    heldMessage("alice@ws1 pid 77 rotation r-mine", "last renewed 2026-03-14T11:59:55Z (5s ago), expires in 1m55s"),
			wantHolder: "alice@ws1 pid 77 rotation r-mine"},
		{name: "same rotation, host and PID, another nonce (another container): alive, fail fast",
			objects:    []runtime.Object{existing("alice@ws1 pid 4242 nonce ffffffff rotation r-mine", now.Add(-5*time.Second), 120)},
			alive:      processAlive,
			wantCalls:  []string{"create leases", "get leases"},
			wantErr:    heldMessage("alice@ws1 pid 4242 nonce ffffffff rotation r-mine", "last renewed 2026-03-14T11:59:55Z (5s ago), expires in 1m55s"),
			wantHolder: "alice@ws1 pid 4242 nonce ffffffff rotation r-mine"},
		{name: "same rotation, host and PID, no nonce (an older carotate in another container): alive, fail fast",
			objects:    []runtime.Object{existing("alice@ws1 pid 4242 rotation r-mine", now.Add(-5*time.Second), 120)},
			alive:      processAlive,
			wantCalls:  []string{"create leases", "get leases"},
			wantErr:    heldMessage("alice@ws1 pid 4242 rotation r-mine", "last renewed 2026-03-14T11:59:55Z (5s ago), expires in 1m55s"),
			wantHolder: "alice@ws1 pid 4242 rotation r-mine"},
		{name: "this very process: take over at once",
			objects:   []runtime.Object{existing(me.String(), now.Add(-5*time.Second), 120)},
			alive:     processAlive,
			wantCalls: []string{"create leases", "get leases", "update leases"}},
		{name: "released (no holder): take over at once",
			objects:   []runtime.Object{existing("", now.Add(-5*time.Second), 120)},
			wantCalls: []string{"create leases", "get leases", "update leases"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset(tt.objects...)
			clk := newClock()
			if tt.bumpAt > 0 {
				onGet(c, func(n int) error {
					if n != tt.bumpAt {
						return nil
					}
					if tt.bumpWith == nil {
						return c.Tracker().Delete(leasesGVR, Namespace, Name)
					}
					return c.Tracker().Update(leasesGVR, tt.bumpWith(clk.Now()), Namespace)
				})
			}
			alive := tt.alive
			if alive == nil {
				alive = deadUnless(77)
			}
			var progress []string
			l, err := acquire(context.Background(), c, me, 2*time.Minute, options(clk, tt.skew, &progress), alive)
			if diff := cmp.Diff(tt.wantCalls, calls(c)); diff != "" {
				t.Errorf("API calls (-want +got):\n%s", diff)
			}
			if got := clk.waited(); got != tt.wantWaited {
				t.Errorf("waited %s, want %s", got, tt.wantWaited)
			}
			if diff := cmp.Diff(tt.wantProgress, progress); diff != "" {
				t.Errorf("progress (-want +got):\n%s", diff)
			}
			if tt.wantErr != "" {
				var held *HeldError
				if !errors.As(err, &held) {
					t.Fatalf("Acquire = %v, want a *HeldError", err)
				}
				if diff := cmp.Diff(tt.wantErr, err.Error()); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
				wantHolder := tt.wantHolder
				if wantHolder == "" {
					wantHolder = bob
				}
				if got := *getLease(t, c).Spec.HolderIdentity; got != wantHolder {
					t.Errorf("holder changed to %q", got)
				}
				return
			}
			if err != nil || l == nil {
				t.Fatalf("Acquire = %v", err)
			}
			at := metav1.NewMicroTime(now.Add(tt.skew + tt.wantRenewed))
			got := getLease(t, c).Spec
			want := coordinationv1.LeaseSpec{
				HolderIdentity:       ptr("alice@ws1 pid 4242 nonce 0a1b2c3d rotation r-mine"),
				LeaseDurationSeconds: ptr(int32(120)),
				AcquireTime:          &at,
				RenewTime:            &at,
			}
			if tt.name == "this very process: take over at once" {
				want.AcquireTime = ptr(metav1.NewMicroTime(now.Add(-5 * time.Second)))
			}
			if tt.transitions > 0 {
				want.LeaseTransitions = &tt.transitions
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("lease (-want +got):\n%s", diff)
			}
			if err := l.Held(); err != nil {
				t.Errorf("Held after Acquire = %v", err)
			}
		})
	}
}

func TestAcquireStopsWithContext(t *testing.T) {
	c := fake.NewClientset(existing(bob, now.Add(-10*time.Minute), 120))
	ctx, cancel := context.WithCancel(context.Background())
	clk := newClock()
	o := options(clk, 0, nil)
	o.Progress = func(string) { cancel() }
	_, err := acquire(ctx, c, me, 2*time.Minute, o, deadUnless(0))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire = %v, want context.Canceled", err)
	}
	if diff := cmp.Diff([]string{"create leases", "get leases"}, calls(c)); diff != "" {
		t.Errorf("API calls (-want +got):\n%s", diff)
	}
	if got := *getLease(t, c).Spec.HolderIdentity; got != bob {
		t.Errorf("holder changed to %q", got)
	}
}

func conflict() error {
	return apierrors.NewConflict(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, Name, errors.New("the object has been modified"))
}

func TestAcquireRetriesConflictsBounded(t *testing.T) {
	t.Run("one conflict, then success", func(t *testing.T) {
		c := fake.NewClientset(existing("", now.Add(-time.Hour), 120))
		failed := false
		c.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
			if !failed {
				failed = true
				return true, nil, conflict()
			}
			return false, nil, nil
		})
		if _, err := acquire(context.Background(), c, me, 2*time.Minute, options(newClock(), 0, nil), deadUnless(0)); err != nil {
			t.Fatalf("Acquire = %v", err)
		}
		want := []string{"create leases", "get leases", "update leases", "get leases", "update leases"}
		if diff := cmp.Diff(want, calls(c)); diff != "" {
			t.Errorf("API calls (-want +got):\n%s", diff)
		}
	})
	t.Run("conflicts every time: gives up", func(t *testing.T) {
		c := fake.NewClientset(existing(bob, now.Add(-time.Hour), 120))
		c.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, conflict()
		})
		clk := newClock()
		_, err := acquire(context.Background(), c, me, 2*time.Minute, options(clk, 0, nil), deadUnless(0))
		if !apierrors.IsConflict(err) || !strings.HasPrefix(err.Error(), "acquire rotation lock kube-system/carotate-rotation-lock: ") {
			t.Fatalf("Acquire = %v, want a wrapped conflict", err)
		}
		updates := 0
		for _, a := range c.Actions() {
			if a.GetVerb() == "update" {
				updates++
			}
		}
		if updates < 2 || updates > 10 {
			t.Errorf("%d update attempts, want a small bounded number", updates)
		}
		if got := clk.waited(); got != 2*time.Minute {
			t.Errorf("waited %s, want one lease duration (2m0s)", got)
		}
	})
	t.Run("another carotate wins the race after the watch: held", func(t *testing.T) {
		c := fake.NewClientset(existing(bob, now.Add(-time.Hour), 120))
		clk := newClock()
		carol := "carol@ws3 pid 9 rotation r-third"
		c.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
			if err := c.Tracker().Update(leasesGVR, existingAt("11", carol, clk.Now(), 120), Namespace); err != nil {
				t.Fatal(err)
			}
			return true, nil, conflict()
		})
		_, err := acquire(context.Background(), c, me, 2*time.Minute, options(clk, 0, nil), deadUnless(0))
		var held *HeldError
		if !errors.As(err, &held) || held.Holder != carol {
			t.Fatalf("Acquire = %v, want a *HeldError naming %q", err, carol)
		}
		if diff := cmp.Diff([]string{"create leases", "get leases x61", "update leases", "get leases"}, calls(c)); diff != "" {
			t.Errorf("API calls (-want +got):\n%s", diff)
		}
	})
}

func TestTakeOverCarriesTheWatchedResourceVersion(t *testing.T) {
	// The fake tracker keeps no resource versions of its own; serve the
	// lease the way an apiserver would, with one, to see that it is sent
	// back.
	c := fake.NewClientset(existing(bob, now.Add(-time.Hour), 120))
	c.PrependReactor("get", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, existing(bob, now.Add(-time.Hour), 120), nil
	})
	c.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, nil
	})
	if _, err := acquire(context.Background(), c, me, 2*time.Minute, options(newClock(), 0, nil), deadUnless(0)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"create leases", "get leases x61", "update leases"}, calls(c)); diff != "" {
		t.Errorf("API calls (-want +got):\n%s", diff)
	}
	for _, a := range c.Actions() {
		if u, ok := a.(k8stesting.UpdateAction); ok && a.GetVerb() == "update" {
			if rv := u.GetObject().(*coordinationv1.Lease).ResourceVersion; rv != "10" {
				t.Errorf("update sent resourceVersion %q, want the one it watched (10)", rv)
			}
		}
	}
}

// held is a Lock held by me on clk since clk's now.
func held(c *fake.Clientset, clk *fakeClock) *Lock {
	return &Lock{client: c, holder: me, duration: 2 * time.Minute, want: 2 * time.Minute, now: clk.Now, clock: clk, poll: DefaultPoll, renewed: clk.Now()}
}

func unavailable() error { return apierrors.NewServiceUnavailable("etcdserver: leader changed") }

func TestKeep(t *testing.T) {
	const every = 30 * time.Second
	tests := []struct {
		name    string
		objects []runtime.Object
		fail    func(n int) bool // the n-th renewal's get fails
		stopAt  int              // cancel the context at this get

		wantWaits   []time.Duration
		wantErr     string
		wantLost    string // the *LostError's holder
		wantRenewed time.Duration
	}{
		{name: "transient failures, then success: keeps the lock",
			objects:     []runtime.Object{existing(me.String(), now, 120)},
			fail:        func(n int) bool { return n <= 3 },
			stopAt:      5,
			wantWaits:   []time.Duration{every, 2 * time.Second, 2 * time.Second, 2 * time.Second, every},
			wantRenewed: 66 * time.Second},
		{name: "failing until just before half the lease, then success: keeps the lock",
			objects:     []runtime.Object{existing(me.String(), now, 120)},
			fail:        func(n int) bool { return n <= 14 },
			stopAt:      16,
			wantWaits:   append(append([]time.Duration{every}, repeat(2*time.Second, 14)...), every),
			wantRenewed: 88 * time.Second},
		{name: "failing for half the lease: reports it may be lost",
			objects:   []runtime.Object{existing(me.String(), now, 120)},
			fail:      func(int) bool { return true },
			wantWaits: append([]time.Duration{every}, repeat(2*time.Second, 15)...),
			wantErr: "rotation lock kube-system/carotate-rotation-lock could not be renewed for 1m0s (half its 2m0s lease), " +
				"so it may be lost to another carotate; stop: two rotations must never run at once; " +
				"last error: renew rotation lock kube-system/carotate-rotation-lock: etcdserver: leader changed"},
		{name: "taken over: reports lost at once",
			objects:   []runtime.Object{existing(bob, now, 120)},
			wantWaits: []time.Duration{every},
			wantLost:  bob,
			wantErr:   `rotation lock kube-system/carotate-rotation-lock is now held by "bob@ws2 pid 7 rotation r-other", not by this carotate; stop: two rotations must never run at once`},
		{name: "a failure, then taken over: reports lost at once",
			objects:   []runtime.Object{existing(bob, now, 120)},
			fail:      func(n int) bool { return n == 1 },
			wantWaits: []time.Duration{every, 2 * time.Second},
			wantLost:  bob,
			wantErr:   `rotation lock kube-system/carotate-rotation-lock is now held by "bob@ws2 pid 7 rotation r-other", not by this carotate; stop: two rotations must never run at once`},
		{name: "deleted: reports lost at once",
			wantWaits: []time.Duration{every},
			wantErr:   "rotation lock kube-system/carotate-rotation-lock is no longer held by this carotate (it was released or force-unlocked); stop and rerun to take it again"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset(tt.objects...)
			clk := newClock()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			onGet(c, func(n int) error {
				if n == tt.stopAt {
					cancel()
				}
				if tt.fail != nil && tt.fail(n) {
					return unavailable()
				}
				return nil
			})
			l := held(c, clk)
			var got error
			select {
			case got = <-l.Keep(ctx, every):
			case <-time.After(5 * time.Second):
				t.Fatal("Keep did not stop")
			}
			if diff := cmp.Diff(tt.wantWaits, clk.waits); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
			if tt.wantErr == "" {
				if got != nil {
					t.Fatalf("Keep reported %v", got)
				}
				if err := l.Held(); err != nil {
					t.Errorf("Held = %v", err)
				}
				if r := getLease(t, c).Spec.RenewTime.Time; !r.Equal(now.Add(tt.wantRenewed)) {
					t.Errorf("renewTime = %s, want %s", r, now.Add(tt.wantRenewed))
				}
				return
			}
			if got == nil {
				t.Fatal("Keep reported nothing")
			}
			if diff := cmp.Diff(tt.wantErr, got.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			var lost *LostError
			var unrenewed *UnrenewedError
			switch {
			case errors.As(got, &lost):
				if lost.Holder != tt.wantLost {
					t.Errorf("lost to %q, want %q", lost.Holder, tt.wantLost)
				}
			case errors.As(got, &unrenewed):
				if !apierrors.IsServiceUnavailable(got) {
					t.Errorf("%v does not wrap the renewal's error", got)
				}
			default:
				t.Errorf("Keep reported %T, want a *LostError or *UnrenewedError", got)
			}
			if err := l.Held(); err != got {
				t.Errorf("Held = %v, want what Keep reported", err)
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	var out []time.Duration
	for range n {
		out = append(out, d)
	}
	return out
}

func TestHeld(t *testing.T) {
	c := fake.NewClientset()
	clk := newClock()
	l, err := acquire(context.Background(), c, me, 2*time.Minute, options(clk, 0, nil), deadUnless(0))
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(59 * time.Second)
	if err := l.Held(); err != nil {
		t.Errorf("Held 59s after acquiring = %v", err)
	}
	clk.advance(time.Second)
	var unrenewed *UnrenewedError
	if err := l.Held(); !errors.As(err, &unrenewed) || unrenewed.For != time.Minute {
		t.Errorf("Held 1m after acquiring = %v, want an *UnrenewedError for 1m0s", err)
	}
	if err := l.Renew(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Held(); err != nil {
		t.Errorf("Held after renewing = %v", err)
	}
}

func TestRenewAndRelease(t *testing.T) {
	ctx := context.Background()
	t.Run("renew ours", func(t *testing.T) {
		c := fake.NewClientset()
		clk := newClock()
		l, err := acquire(ctx, c, me, 2*time.Minute, options(clk, 0, nil), deadUnless(0))
		if err != nil {
			t.Fatal(err)
		}
		clk.advance(time.Minute)
		if err := l.Renew(ctx); err != nil {
			t.Fatal(err)
		}
		if got := getLease(t, c).Spec.RenewTime.Time; !got.Equal(now.Add(time.Minute)) {
			t.Errorf("renewTime = %v", got)
		}
		if diff := cmp.Diff([]string{"create leases", "get leases", "update leases"}, calls(c)); diff != "" {
			t.Errorf("API calls (-want +got):\n%s", diff)
		}
	})
	t.Run("renew after someone took over", func(t *testing.T) {
		c := fake.NewClientset(existing(bob, now, 120))
		l := held(c, newClock())
		err := l.Renew(ctx)
		var lost *LostError
		if !errors.As(err, &lost) || lost.Holder != bob {
			t.Fatalf("Renew = %v, want a *LostError naming %q", err, bob)
		}
		if diff := cmp.Diff([]string{"get leases"}, calls(c)); diff != "" {
			t.Errorf("API calls (-want +got):\n%s", diff)
		}
	})
	t.Run("release ours deletes with preconditions", func(t *testing.T) {
		c := fake.NewClientset(existing(me.String(), now, 120))
		l := held(c, newClock())
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"get leases", "delete leases"}, calls(c)); diff != "" {
			t.Errorf("API calls (-want +got):\n%s", diff)
		}
		d := c.Actions()[1].(k8stesting.DeleteAction)
		p := d.GetDeleteOptions().Preconditions
		if p == nil || p.ResourceVersion == nil || *p.ResourceVersion != "10" || p.UID == nil || *p.UID != "uid-1" {
			t.Errorf("delete preconditions = %+v, want uid-1 at resourceVersion 10", p)
		}
	})
	t.Run("release someone else's deletes nothing", func(t *testing.T) {
		c := fake.NewClientset(existing(bob, now, 120))
		l := held(c, newClock())
		var lost *LostError
		if err := l.Release(ctx); !errors.As(err, &lost) {
			t.Fatalf("Release = %v, want a *LostError", err)
		}
		if diff := cmp.Diff([]string{"get leases"}, calls(c)); diff != "" {
			t.Errorf("API calls (-want +got):\n%s", diff)
		}
	})
	t.Run("release when already gone", func(t *testing.T) {
		c := fake.NewClientset()
		l := held(c, newClock())
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release = %v", err)
		}
	})
}

func TestForceUnlock(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientset(existing(bob, now, 120))
	err := ForceUnlock(ctx, c, "carol@ws3 pid 1 rotation r-x")
	if err == nil || !strings.Contains(err.Error(), `now held by "bob@ws2 pid 7 rotation r-other"`) {
		t.Fatalf("ForceUnlock of another holder = %v", err)
	}
	if err := ForceUnlock(ctx, c, bob); err != nil {
		t.Fatalf("ForceUnlock = %v", err)
	}
	if diff := cmp.Diff([]string{"get leases x2", "delete leases"}, calls(c)); diff != "" {
		t.Errorf("API calls (-want +got):\n%s", diff)
	}
}

func TestHolder(t *testing.T) {
	tests := []struct {
		identity string
		want     Holder
		ok       bool
	}{
		{identity: "alice@ws1 pid 4242 nonce 0a1b2c3d rotation r-mine", want: me, ok: true},
		{identity: "bob@ws2 pid 7 rotation r-other", want: Holder{User: "bob", Host: "ws2", PID: 7, RotationID: "r-other"}, ok: true},
		{identity: "kube-controller-manager_abc"},
	}
	for _, tt := range tests {
		got, ok := ParseHolder(tt.identity)
		if diff := cmp.Diff(tt.want, got); diff != "" || ok != tt.ok {
			t.Errorf("ParseHolder(%q) ok %v (-want +got):\n%s", tt.identity, ok, diff)
		}
		if ok && got.String() != tt.identity {
			t.Errorf("ParseHolder(%q).String() = %q", tt.identity, got.String())
		}
	}
	h := CurrentHolder("r-1")
	if h.PID == 0 || h.RotationID != "r-1" || h.Host == "" || !regexp.MustCompile(`^[0-9a-f]{8}$`).MatchString(h.Nonce) {
		t.Errorf("CurrentHolder = %+v", h)
	}
	if again := CurrentHolder("r-1"); again != h {
		t.Errorf("CurrentHolder changed from %+v to %+v", h, again)
	}
	if _, err := Acquire(context.Background(), fake.NewClientset(), Holder{User: "a"}, time.Minute); err == nil {
		t.Error("Acquire without a rotation id succeeded")
	}
}

// deadUnless says every other process is gone but pid.
func deadUnless(pid int) func(me, other Holder) bool {
	return func(_, other Holder) bool { return pid != 0 && other.PID == pid }
}

func TestProcessAlive(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid // reaped: nothing runs under it (barring reuse within the test)
	here := CurrentHolder("r-1")
	tests := []struct {
		name  string
		other Holder
		want  bool
	}{
		{name: "another host: cannot tell, so alive", other: Holder{Host: here.Host + "-other", PID: dead, RotationID: "r-1"}, want: true},
		{name: "this very process", other: here, want: false},
		{name: "same host and PID, another nonce: another PID namespace, alive",
			other: Holder{User: here.User, Host: here.Host, PID: here.PID, Nonce: "not-mine", RotationID: "r-1"}, want: true},
		{name: "same host and PID, no nonce (an older carotate in another PID namespace): alive",
			other: Holder{User: here.User, Host: here.Host, PID: here.PID, RotationID: "r-1"}, want: true},
		{name: "a live process here", other: Holder{Host: here.Host, PID: os.Getppid(), RotationID: "r-1"}, want: true},
		{name: "a process here that is gone", other: Holder{Host: here.Host, PID: dead, RotationID: "r-1"}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := processAlive(here, tt.other); got != tt.want {
				t.Errorf("processAlive(%+v) = %v, want %v", tt.other, got, tt.want)
			}
		})
	}
}

func TestSetDuration(t *testing.T) {
	ctx := context.Background()
	bobHolder, _ := ParseHolder(bob)
	take := func(t *testing.T) (*fake.Clientset, *fakeClock, *Lock) {
		t.Helper()
		c := fake.NewClientset()
		clk := newClock()
		l, err := acquire(ctx, c, me, 2*time.Minute, options(clk, 0, nil), deadUnless(0))
		if err != nil {
			t.Fatal(err)
		}
		return c, clk, l
	}
	leaseSeconds := func(t *testing.T, c *fake.Clientset) int32 {
		t.Helper()
		return *getLease(t, c).Spec.LeaseDurationSeconds
	}
	t.Run("lengthened: written to the lease, judged by it, and another carotate refused for it", func(t *testing.T) {
		c, clk, l := take(t)
		if err := l.SetDuration(ctx, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
		if got := leaseSeconds(t, c); got != 600 {
			t.Errorf("lease duration = %ds, want 600", got)
		}
		clk.advance(4*time.Minute + 59*time.Second)
		if err := l.Held(); err != nil {
			t.Errorf("Held 4m59s after lengthening to 10m = %v", err)
		}
		_, err := acquire(ctx, c, bobHolder, 2*time.Minute, options(clk, 0, nil), deadUnless(0))
		var he *HeldError
		if !errors.As(err, &he) || he.Expires.Sub(he.Now) != 5*time.Minute+time.Second {
			t.Errorf("another carotate's Acquire = %v, want a *HeldError that expires in 5m1s", err)
		}
		clk.advance(time.Second)
		var unrenewed *UnrenewedError
		if err := l.Held(); !errors.As(err, &unrenewed) || unrenewed.Lease != 10*time.Minute {
			t.Errorf("Held 5m after lengthening to 10m = %v, want an *UnrenewedError of a 10m lease", err)
		}
	})
	t.Run("lengthening that fails: still judged by the shorter lease it wrote", func(t *testing.T) {
		c, clk, l := take(t)
		onGet(c, func(int) error { return unavailable() })
		if err := l.SetDuration(ctx, 10*time.Minute); !apierrors.IsServiceUnavailable(err) {
			t.Fatalf("SetDuration = %v, want the renewal's error", err)
		}
		if got := l.Duration(); got != 2*time.Minute {
			t.Errorf("Duration = %s, want 2m0s", got)
		}
		clk.advance(time.Minute)
		if err := l.Held(); err == nil {
			t.Error("Held 1m after acquiring a 2m lease, whose lengthening failed = nil, want an *UnrenewedError")
		}
	})
	t.Run("shortening that fails: judged by the longer lease until a renewal writes the shorter one", func(t *testing.T) {
		c, clk, l := take(t)
		if err := l.SetDuration(ctx, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
		down := true
		onGet(c, func(int) error {
			if down {
				return unavailable()
			}
			return nil
		})
		if err := l.SetDuration(ctx, 2*time.Minute); err == nil {
			t.Fatal("SetDuration with the API away = nil")
		}
		clk.advance(3 * time.Minute)
		if err := l.Held(); err != nil {
			t.Errorf("Held 3m after lengthening to 10m, its shortening failed = %v", err)
		}
		down = false
		if err := l.Renew(ctx); err != nil {
			t.Fatal(err)
		}
		if got := leaseSeconds(t, c); got != 120 {
			t.Errorf("lease duration after the next renewal = %ds, want 120", got)
		}
		clk.advance(time.Minute)
		if err := l.Held(); err == nil {
			t.Error("Held 1m after the renewal that wrote 2m = nil, want an *UnrenewedError")
		}
	})
	t.Run("Keep retries for half the lengthened lease", func(t *testing.T) {
		c, clk, l := take(t)
		if err := l.SetDuration(ctx, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
		onGet(c, func(int) error { return unavailable() })
		var got error
		select {
		case got = <-l.Keep(ctx, 30*time.Second):
		case <-time.After(5 * time.Second):
			t.Fatal("Keep did not stop")
		}
		var unrenewed *UnrenewedError
		if !errors.As(got, &unrenewed) || unrenewed.For != 5*time.Minute {
			t.Errorf("Keep reported %v, want an *UnrenewedError after 5m0s", got)
		}
		if w := clk.waited(); w != 5*time.Minute {
			t.Errorf("Keep waited %s in all, want 5m0s", w)
		}
	})
	t.Run("a duration under a second is refused", func(t *testing.T) {
		c, _, l := take(t)
		if err := l.SetDuration(ctx, 0); err == nil {
			t.Error("SetDuration(0) = nil")
		}
		if got := leaseSeconds(t, c); got != 120 {
			t.Errorf("lease duration = %ds, want 120 unchanged", got)
		}
	})
}
