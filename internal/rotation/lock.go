package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

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
