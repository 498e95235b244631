package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/carotate/carotate/internal/lock"
)

// lockDuration is the rotation lock's lease. Renewed every quarter of it;
// a run that cannot renew it for half of it stops.
const lockDuration = 2 * time.Minute

// LockOptions say how to take the rotation lock.
type LockOptions struct {
	// ForceUnlock is the holder, as a refusal names it, whose lock is
	// deleted first: the operator made sure that process is gone.
	ForceUnlock string
	// Progress tells the operator what the lock is waiting for, and what
	// was forced.
	Progress func(string)
	Log      *slog.Logger
}

// Lock is the rotation lock, held by a command that changes the cluster.
type Lock struct {
	lk      *lock.Lock
	ctx     context.Context
	release func()

	outages sync.Mutex
	active  int // outages under way (Outage)
}

// TakeLock takes the rotation lock before anything is gathered, so that a
// second carotate is refused in the time of two API calls, before it
// prints a plan or generates a CA. The lock's Context is cancelled, with
// the lock's error as its cause, as soon as the lock cannot be relied on:
// the step running then stops at its next check, and no further step
// starts. Release stops renewing it and deletes the lease if it is ours.
func TakeLock(ctx context.Context, client kubernetes.Interface, rotationID string, o LockOptions) (*Lock, error) {
	progress := o.Progress
	if progress == nil {
		progress = func(string) {}
	}
	if o.ForceUnlock != "" {
		if err := lock.ForceUnlock(ctx, client, o.ForceUnlock); err != nil {
			return nil, err
		}
		progress(fmt.Sprintf("Deleted the rotation lock held by %q.", o.ForceUnlock))
	}
	lk, err := lock.AcquireWith(ctx, client, lock.CurrentHolder(rotationID), lockDuration, lock.Options{Progress: progress})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	lctx, cancel := context.WithCancelCause(ctx)
	keepCtx, stopKeep := context.WithCancel(context.WithoutCancel(ctx))
	lost := lk.Keep(keepCtx, lockDuration/4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err, ok := <-lost; ok && err != nil {
			cancel(err)
		}
	}()
	release := func() {
		stopKeep()
		<-done
		cancel(nil)
		if err := lk.Release(context.WithoutCancel(ctx)); err != nil && o.Log != nil {
			o.Log.Warn("release the rotation lock", "err", err)
		}
	}
	return &Lock{lk: lk, ctx: lctx, release: release}, nil
}

// Context is cancelled, with the lock's error as its cause, once the lock
// is lost.
func (l *Lock) Context() context.Context { return l.ctx }

// Held says whether the lock can still be relied on.
func (l *Lock) Held() error { return l.lk.Held() }

// refreshTimeout bounds the renewal before a step.
const refreshTimeout = 5 * time.Second

// Refresh renews the lock now, before a step that may take the API away
// (kube-apiserver or etcd restarting on a single control plane): the
// keeper then has its whole half-lease of retries from the start of the
// outage, not from its last periodic renewal, which may have been 30 s
// earlier. A failure is left to the keeper, which retries and reports.
func (l *Lock) Refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	_ = l.lk.Renew(ctx)
}

// outageLease is the lock's lease while a step takes the API away on a
// single control plane: etcd's restart under its only kube-apiserver kept
// /readyz from 200 for 66 s on carotate's lab, longer than the half of
// lockDuration a run may go unrenewed. Half of it, 5 minutes, covers the
// static pod's wait (DefaultTimeouts.StaticPod, 4 minutes) and the
// health wait after it; another carotate is told the lease expires that
// much later, and the watch a takeover needs is that much longer.
const outageLease = 10 * time.Minute

// outageRetry bounds how long Outage tries to lengthen the lease.
const outageRetry = 20 * time.Second

// Outage lengthens the lease to outageLease before a step takes the API
// away (what names it, for the error: "etcd on cp-1"), and end shortens it again once the
// API is back and no other outage is under way. If the lease cannot be
// lengthened, within outageRetry, the step must not start: the outage
// would outlast the lock. If it cannot be shortened, the keeper's next
// renewal shortens it. A nil Lock (a run without one) does nothing.
func (l *Lock) Outage(ctx context.Context, what string) (end func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	l.outages.Lock()
	defer l.outages.Unlock()
	var last error
	err = wait.PollUntilContextTimeout(ctx, 2*time.Second, outageRetry, true, func(ctx context.Context) (bool, error) {
		rctx, cancel := context.WithTimeout(ctx, refreshTimeout)
		defer cancel()
		last = l.lk.SetDuration(rctx, outageLease)
		var lost *lock.LostError
		if errors.As(last, &lost) {
			return false, last
		}
		return last == nil, nil
	})
	if err != nil {
		if last == nil {
			last = err
		}
		if l.active == 0 {
			// The lease was not lengthened: have the renewals go on
			// writing lockDuration.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
			_ = l.lk.SetDuration(rctx, lockDuration)
			cancel()
		}
		return nil, fmt.Errorf("before restarting %s, which takes the API away: could not lengthen the rotation lock's lease to %s, so the lock could be lost during it; "+
			"%s was not restarted: rerun when the API answers: %w", what, outageLease, what, last)
	}
	l.active++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.outages.Lock()
			defer l.outages.Unlock()
			if l.active--; l.active > 0 {
				return
			}
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
			defer cancel()
			_ = l.lk.SetDuration(ctx, lockDuration)
		})
	}, nil
}

// Release lets the lock go.
func (l *Lock) Release() { l.release() }

// Explain adds to err, the error a run ended with, that the run stopped
// because the lock was lost, when it did and err does not say so already.
// Call it before Release.
func (l *Lock) Explain(err error) error {
	if cause := context.Cause(l.ctx); err != nil && cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("%w\nstopped: %w", err, cause)
	}
	return err
}
