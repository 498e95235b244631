// Package lock makes sure only one carotate rotates a cluster at a time,
// with a coordination.k8s.io/v1 Lease in kube-system that names its
// holder. A second carotate fails fast and says who holds the lock, since
// last when, and what to do.
//
// Every write carries the resourceVersion it was decided on, so two
// carotates racing for an expired lock cannot both win: the loser gets a
// conflict, looks again, and then sees the winner.
package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"regexp"
	"strconv"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Where the lock lives.
const (
	Namespace = "kube-system"
	Name      = "carotate-rotation-lock"
)

// Holder identifies who holds the lock: which operator, where, which
// process and which rotation. A rerun of the same rotation (after a crash,
// from another process) may take the lock over; anyone else must wait.
type Holder struct {
	User       string
	Host       string
	PID        int
	RotationID string
}

// String is the lease's holderIdentity:
// "<user>@<host> pid <pid> rotation <id>".
func (h Holder) String() string {
	return fmt.Sprintf("%s@%s pid %d rotation %s", h.User, h.Host, h.PID, h.RotationID)
}

var holderPattern = regexp.MustCompile(`^(.*)@(\S*) pid (\d+) rotation (\S+)$`)

// ParseHolder reads a holderIdentity written by String; ok is false for an
// identity some other tool wrote.
func ParseHolder(s string) (h Holder, ok bool) {
	m := holderPattern.FindStringSubmatch(s)
	if m == nil {
		return Holder{}, false
	}
	pid, err := strconv.Atoi(m[3])
	if err != nil {
		return Holder{}, false
	}
	return Holder{User: m[1], Host: m[2], PID: pid, RotationID: m[4]}, true
}

// CurrentHolder is this process, running rotationID.
func CurrentHolder(rotationID string) Holder {
	h := Holder{User: "unknown", Host: "unknown", PID: os.Getpid(), RotationID: rotationID}
	if u, err := user.Current(); err == nil && u.Username != "" {
		h.User = u.Username
	}
	if host, err := os.Hostname(); err == nil && host != "" {
		h.Host = host
	}
	return h
}

// HeldError says the lock is held by another rotation that has renewed it
// recently enough.
type HeldError struct {
	Holder    string
	RenewedAt time.Time
	Expires   time.Time
	Now       time.Time
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("rotation lock %s/%s is held by %q, last renewed %s (%s ago), expires in %s: another carotate is rotating this cluster; "+
		"wait for it to finish, or, only after making sure that process is gone, rerun with --force-unlock=%q",
		Namespace, Name, e.Holder, e.RenewedAt.UTC().Format(time.RFC3339),
		e.Now.Sub(e.RenewedAt).Round(time.Second), e.Expires.Sub(e.Now).Round(time.Second), e.Holder)
}

// LostError says the lock we held is now someone else's (it expired and
// was taken over, or was force-unlocked): stop before changing anything else.
type LostError struct {
	Holder string // who holds it now; "" if nobody
}

func (e *LostError) Error() string {
	if e.Holder == "" {
		return fmt.Sprintf("rotation lock %s/%s is no longer held by this carotate (it was released or force-unlocked); stop and rerun to take it again", Namespace, Name)
	}
	return fmt.Sprintf("rotation lock %s/%s is now held by %q, not by this carotate; stop: two rotations must never run at once", Namespace, Name, e.Holder)
}

// Lock is a held rotation lock.
type Lock struct {
	client   kubernetes.Interface
	holder   Holder
	duration time.Duration
	now      func() time.Time
}

// Holder is who holds it.
func (l *Lock) Holder() Holder { return l.holder }

// Acquire takes the lock for holder for duration (renew it well within
// that). It creates the Lease; if the Lease exists, it takes it over when it
// is free, expired, or held by the same rotation (a rerun after a crash),
// and otherwise fails with a *HeldError.
func Acquire(ctx context.Context, client kubernetes.Interface, holder Holder, duration time.Duration) (*Lock, error) {
	return acquire(ctx, client, holder, duration, time.Now, processAlive)
}

// processAlive reports whether other may still be running: a process of
// the same rotation on another host, or one that is running here, may be
// mid-step, and two carotates must never change the same cluster at once.
// Only a process of this host that no longer exists (a crash, kill -9) is
// taken over before its lease expires.
func processAlive(me, other Holder) bool {
	if other.Host != me.Host || other.PID <= 0 {
		return true
	}
	if other.PID == me.PID {
		return false
	}
	err := syscall.Kill(other.PID, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func acquire(ctx context.Context, client kubernetes.Interface, holder Holder, duration time.Duration, now func() time.Time, alive func(me, other Holder) bool) (*Lock, error) {
	if holder.RotationID == "" {
		return nil, errors.New("acquire rotation lock: holder has no rotation id")
	}
	if duration < time.Second {
		return nil, fmt.Errorf("acquire rotation lock: lease duration %s is shorter than a second", duration)
	}
	l := &Lock{client: client, holder: holder, duration: duration, now: now}
	leases := client.CoordinationV1().Leases(Namespace)
	t := metav1.NewMicroTime(now())
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: Namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "carotate"}},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr(holder.String()),
			LeaseDurationSeconds: ptr(seconds(duration)),
			AcquireTime:          &t,
			RenewTime:            &t,
		},
	}
	_, err := leases.Create(ctx, lease, metav1.CreateOptions{})
	if err == nil {
		return l, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("acquire rotation lock %s/%s: %w", Namespace, Name, err)
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := leases.Get(ctx, Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		at := now()
		identity := deref(cur.Spec.HolderIdentity)
		other, _ := ParseHolder(identity)
		switch {
		case identity == "":
		case other.RotationID == holder.RotationID && !alive(holder, other):
		case expired(cur, at):
		default:
			return heldError(cur, at)
		}
		mt := metav1.NewMicroTime(at)
		if identity != holder.String() {
			cur.Spec.AcquireTime = &mt
			if identity != "" {
				cur.Spec.LeaseTransitions = ptr(deref(cur.Spec.LeaseTransitions) + 1)
			}
		}
		cur.Spec.HolderIdentity = ptr(holder.String())
		cur.Spec.RenewTime = &mt
		cur.Spec.LeaseDurationSeconds = ptr(seconds(duration))
		_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	var held *HeldError
	if errors.As(err, &held) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("acquire rotation lock %s/%s: %w", Namespace, Name, err)
	}
	return l, nil
}

// Renew moves the lease's renew time to now. It fails with a *LostError if
// the lock is no longer ours.
func (l *Lock) Renew(ctx context.Context) error {
	leases := l.client.CoordinationV1().Leases(Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := leases.Get(ctx, Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return &LostError{}
		}
		if err != nil {
			return err
		}
		if id := deref(cur.Spec.HolderIdentity); id != l.holder.String() {
			return &LostError{Holder: id}
		}
		t := metav1.NewMicroTime(l.now())
		cur.Spec.RenewTime = &t
		cur.Spec.LeaseDurationSeconds = ptr(seconds(l.duration))
		_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	return wrapOwn("renew", err)
}

// Release deletes the lease if it is still ours; already gone is fine.
func (l *Lock) Release(ctx context.Context) error {
	return wrapOwn("release", deleteIf(ctx, l.client, func(id string) error {
		if id != l.holder.String() {
			return &LostError{Holder: id}
		}
		return nil
	}))
}

// ForceUnlock deletes the lease for an operator who has made sure its
// holder is gone. expectedHolder is the holderIdentity the operator saw
// (the one a HeldError named); if the lease is now held by someone else,
// nothing is deleted.
func ForceUnlock(ctx context.Context, client kubernetes.Interface, expectedHolder string) error {
	err := deleteIf(ctx, client, func(id string) error {
		if id != expectedHolder {
			return fmt.Errorf("the lock is now held by %q, not %q; look again before forcing it", id, expectedHolder)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("force-unlock rotation lock %s/%s: %w", Namespace, Name, err)
	}
	return nil
}

// deleteIf deletes the lease when ok accepts its holder, with preconditions
// so that a lease taken over in between is not deleted.
func deleteIf(ctx context.Context, client kubernetes.Interface, ok func(holder string) error) error {
	leases := client.CoordinationV1().Leases(Namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := leases.Get(ctx, Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ok(deref(cur.Spec.HolderIdentity)); err != nil {
			return err
		}
		uid, rv := cur.UID, cur.ResourceVersion
		err = leases.Delete(ctx, Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
}

func wrapOwn(op string, err error) error {
	if err == nil {
		return nil
	}
	var lost *LostError
	if errors.As(err, &lost) {
		return err
	}
	return fmt.Errorf("%s rotation lock %s/%s: %w", op, Namespace, Name, err)
}

// expired is true when the lease has not been renewed within its duration.
// It compares the lease's times with our clock; clock skew beyond a bound is
// refused by preflight, and a lease duration of minutes dwarfs what is left.
func expired(l *coordinationv1.Lease, now time.Time) bool {
	last := l.Spec.RenewTime
	if last == nil {
		last = l.Spec.AcquireTime
	}
	if last == nil || l.Spec.LeaseDurationSeconds == nil {
		return true
	}
	return now.After(last.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second))
}

func heldError(l *coordinationv1.Lease, now time.Time) *HeldError {
	e := &HeldError{Holder: deref(l.Spec.HolderIdentity), Now: now}
	if l.Spec.RenewTime != nil {
		e.RenewedAt = l.Spec.RenewTime.Time
	} else if l.Spec.AcquireTime != nil {
		e.RenewedAt = l.Spec.AcquireTime.Time
	}
	e.Expires = e.RenewedAt.Add(time.Duration(deref(l.Spec.LeaseDurationSeconds)) * time.Second)
	return e
}

func seconds(d time.Duration) int32 { return int32((d + time.Second - 1) / time.Second) }

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
