package lock

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
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

var (
	now  = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	me   = Holder{User: "alice", Host: "ws1", PID: 4242, RotationID: "r-mine"}
	bob  = "bob@ws2 pid 7 rotation r-other"
	tick = func() time.Time { return now }
)

func existing(holder string, renewed time.Time, seconds int32) *coordinationv1.Lease {
	t := metav1.NewMicroTime(renewed)
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: Namespace, ResourceVersion: "10", UID: "uid-1"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &seconds,
			AcquireTime: &t, RenewTime: &t},
	}
}

// calls lists the API calls made, as "verb resource".
func calls(c *fake.Clientset) []string {
	var out []string
	for _, a := range c.Actions() {
		out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
	}
	return out
}

func getLease(t *testing.T, c *fake.Clientset) *coordinationv1.Lease {
	t.Helper()
	l, err := c.Tracker().Get(schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}, Namespace, Name)
	if err != nil {
		t.Fatal(err)
	}
	return l.(*coordinationv1.Lease)
}

func TestAcquire(t *testing.T) {
	tests := []struct {
		name        string
		objects     []runtime.Object
		wantCalls   []string
		wantErr     string
		wantHolder  string
		transitions int32
	}{
		{name: "free: create", wantCalls: []string{"create leases"}},
		{name: "held by another and fresh: fail fast",
			objects:   []runtime.Object{existing(bob, now.Add(-30*time.Second), 120)},
			wantCalls: []string{"create leases", "get leases"},
			wantErr: `rotation lock kube-system/carotate-rotation-lock is held by "bob@ws2 pid 7 rotation r-other", ` +
				`last renewed 2026-03-14T11:59:30Z (30s ago), expires in 1m30s: another carotate is rotating this cluster; ` +
				`wait for it to finish, or, only after making sure that process is gone, rerun with --force-unlock="bob@ws2 pid 7 rotation r-other"`},
		{name: "held by another but expired: take over",
			objects:     []runtime.Object{existing(bob, now.Add(-10*time.Minute), 120)},
			wantCalls:   []string{"create leases", "get leases", "update leases"},
			transitions: 1},
		{name: "same rotation from a crashed process: take over",
			objects:     []runtime.Object{existing("alice@ws1 pid 99 rotation r-mine", now.Add(-5*time.Second), 120)},
			wantCalls:   []string{"create leases", "get leases", "update leases"},
			transitions: 1},
		{name: "same rotation from a live process: fail fast",
			objects:   []runtime.Object{existing("alice@ws1 pid 77 rotation r-mine", now.Add(-5*time.Second), 120)},
			wantCalls: []string{"create leases", "get leases"},
			wantErr: `rotation lock kube-system/carotate-rotation-lock is held by "alice@ws1 pid 77 rotation r-mine", ` +
				`last renewed 2026-03-14T11:59:55Z (5s ago), expires in 1m55s: another carotate is rotating this cluster; ` +
				`wait for it to finish, or, only after making sure that process is gone, rerun with --force-unlock="alice@ws1 pid 77 rotation r-mine"`,
			wantHolder: "alice@ws1 pid 77 rotation r-mine"},
		{name: "released (no holder): take over",
			objects:   []runtime.Object{existing("", now.Add(-5*time.Second), 120)},
			wantCalls: []string{"create leases", "get leases", "update leases"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset(tt.objects...)
			l, err := acquire(context.Background(), c, me, 2*time.Minute, tick, deadUnless(77))
			if diff := cmp.Diff(tt.wantCalls, calls(c)); diff != "" {
				t.Errorf("API calls (-want +got):\n%s", diff)
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
			got := getLease(t, c).Spec
			want := coordinationv1.LeaseSpec{
				HolderIdentity:       ptr("alice@ws1 pid 4242 rotation r-mine"),
				LeaseDurationSeconds: ptr(int32(120)),
				AcquireTime:          ptr(metav1.NewMicroTime(now)),
				RenewTime:            ptr(metav1.NewMicroTime(now)),
			}
			if tt.transitions > 0 {
				want.LeaseTransitions = &tt.transitions
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("lease (-want +got):\n%s", diff)
			}
		})
	}
}

func conflict() error {
	return apierrors.NewConflict(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, Name, errors.New("the object has been modified"))
}

func TestAcquireRetriesConflictsBounded(t *testing.T) {
	t.Run("one conflict, then success", func(t *testing.T) {
		c := fake.NewClientset(existing(bob, now.Add(-time.Hour), 120))
		failed := false
		c.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
			if !failed {
				failed = true
				return true, nil, conflict()
			}
			return false, nil, nil
		})
		if _, err := acquire(context.Background(), c, me, 2*time.Minute, tick, deadUnless(0)); err != nil {
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
		_, err := acquire(context.Background(), c, me, 2*time.Minute, tick, deadUnless(0))
		if !apierrors.IsConflict(err) || !strings.HasPrefix(err.Error(), "acquire rotation lock kube-system/carotate-rotation-lock: ") {
			t.Fatalf("Acquire = %v, want a wrapped conflict", err)
		}
		updates := 0
		for _, call := range calls(c) {
			if call == "update leases" {
				updates++
			}
		}
		if updates < 2 || updates > 10 {
			t.Errorf("%d update attempts, want a small bounded number", updates)
		}
	})
}

func TestUpdatesCarryResourceVersion(t *testing.T) {
	// The fake tracker keeps its own resource versions; serve the lease
	// the way an apiserver would, with one, to see that it is sent back.
	c := fake.NewClientset(existing(bob, now.Add(-time.Hour), 120))
	c.PrependReactor("get", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, existing(bob, now.Add(-time.Hour), 120), nil
	})
	c.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, nil
	})
	if _, err := acquire(context.Background(), c, me, 2*time.Minute, tick, deadUnless(0)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"create leases", "get leases", "update leases"}, calls(c)); diff != "" {
		t.Errorf("API calls (-want +got):\n%s", diff)
	}
	for _, a := range c.Actions() {
		if u, ok := a.(k8stesting.UpdateAction); ok && a.GetVerb() == "update" {
			if rv := u.GetObject().(*coordinationv1.Lease).ResourceVersion; rv != "10" {
				t.Errorf("update sent resourceVersion %q, want the one it read (10)", rv)
			}
		}
	}
}

func TestRenewAndRelease(t *testing.T) {
	ctx := context.Background()
	t.Run("renew ours", func(t *testing.T) {
		c := fake.NewClientset()
		l, err := acquire(ctx, c, me, 2*time.Minute, tick, deadUnless(0))
		if err != nil {
			t.Fatal(err)
		}
		l.now = func() time.Time { return now.Add(time.Minute) }
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
		l := &Lock{client: c, holder: me, duration: 2 * time.Minute, now: tick}
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
		l := &Lock{client: c, holder: me, duration: 2 * time.Minute, now: tick}
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
		l := &Lock{client: c, holder: me, duration: 2 * time.Minute, now: tick}
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
		l := &Lock{client: c, holder: me, duration: 2 * time.Minute, now: tick}
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
	if diff := cmp.Diff([]string{"get leases", "get leases", "delete leases"}, calls(c)); diff != "" {
		t.Errorf("API calls (-want +got):\n%s", diff)
	}
}

func TestHolder(t *testing.T) {
	got, ok := ParseHolder(me.String())
	if !ok || got != me {
		t.Errorf("ParseHolder(%q) = %+v, %v", me.String(), got, ok)
	}
	if _, ok := ParseHolder("kube-controller-manager_abc"); ok {
		t.Error("ParseHolder accepted another tool's identity")
	}
	if h := CurrentHolder("r-1"); h.PID == 0 || h.RotationID != "r-1" || h.Host == "" {
		t.Errorf("CurrentHolder = %+v", h)
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
		{name: "another host: cannot tell, so alive", other: Holder{Host: here.Host + "-other", PID: dead}, want: true},
		{name: "this process", other: Holder{Host: here.Host, PID: here.PID}, want: false},
		{name: "a live process here", other: Holder{Host: here.Host, PID: os.Getppid()}, want: true},
		{name: "a process here that is gone", other: Holder{Host: here.Host, PID: dead}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := processAlive(here, tt.other); got != tt.want {
				t.Errorf("processAlive(%+v) = %v, want %v", tt.other, got, tt.want)
			}
		})
	}
}
