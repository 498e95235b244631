// Package lock makes sure only one carotate rotates a cluster at a time,
// with a coordination.k8s.io/v1 Lease in kube-system that names its
// holder. A second carotate fails fast and says who holds the lock, since
// last when, and what to do.
//
// # Holders
//
// The holderIdentity is Holder.String():
// "<user>@<host> pid <pid> nonce <nonce> rotation <id>". The nonce is random
// per process (CurrentHolder fills it), so "this very process" means an
// identical holder string, nonce included. A holder with this host and PID
// but another nonce is another process in another PID namespace (two
// containers both running as PID 1 under one hostname), and alive.
// Identities without a nonce, written by older versions, still parse.
//
// # Taking the lock
//
// Acquire creates the Lease, or, if it exists, takes it over:
//   - at once when nobody holds it (empty holderIdentity) or this very
//     process does;
//   - at once when it is held by the same rotation (a rerun after a crash)
//     and that process is provably gone: same host, no process with its PID,
//     and not the same PID with another nonce;
//   - otherwise never on the evidence of timestamps alone, since they were
//     written by another machine's clock. If, by this machine's clock, the
//     lease does not even look expired (renewTime + duration > now), Acquire
//     fails at once with a *HeldError. If it looks expired (or has no times),
//     Acquire watches it, the way client-go's leader election does: it
//     re-reads the Lease every 2s, fails with a *HeldError as soon as its
//     resourceVersion changes (its holder is alive and renewing, whatever
//     the clocks say), and takes it over only after seeing the same
//     resourceVersion for the full lease duration measured on this process's
//     monotonic clock, with an Update that carries that resourceVersion.
//
// Every write carries the resourceVersion it was decided on, so two
// carotates racing for an expired lock cannot both win: the loser gets a
// conflict, looks again, and then sees the winner. Acquire tries a bounded
// number of times, watches at most once per call for at most the lease
// duration, and stops when its context is done.
//
// # Keeping the lock
//
// A holder renews well within the lease duration and stops working once
// half of it has passed since its last successful renewal (taken from when
// that renewal was sent), which is long before anyone watching the lease
// may take it over. Keep renews in the background, retries failed renewals
// every 2s, and reports on its channel a *LostError at once (someone else
// holds the lock, or it was deleted) or an *UnrenewedError once half the
// lease has passed without a successful renewal. Held says whether the lock
// can still be relied on. A holder about to take the API away for longer
// than half the lease first lengthens it with SetDuration, so that the
// lease itself tells everyone to wait longer, and shortens it afterwards.
// A caller such as carotate rotate does:
//
//	lk, err := lock.AcquireWith(ctx, cs, lock.CurrentHolder(id), 2*time.Minute,
//		lock.Options{Progress: func(msg string) { fmt.Fprintln(stderr, msg) }})
//	if err != nil { ... } // a *HeldError: refuse
//	lctx, cancel := context.WithCancelCause(ctx)
//	kept := lk.Keep(lctx, 30*time.Second)
//	go func() {
//		if err := <-kept; err != nil {
//			cancel(err) // lost, or may be lost: stop the current step
//		}
//	}()
//	defer func() {
//		cancel(nil) // stops Keep, which closes kept
//		lk.Release(context.WithoutCancel(ctx))
//	}()
//	for _, step := range steps {
//		if err := lk.Held(); err != nil {
//			return err // before changing anything else
//		}
//		if err := step(lctx); err != nil {
//			return errors.Join(err, context.Cause(lctx))
//		}
//	}
package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"sync"
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

// DefaultPoll is how often Acquire re-reads a lease it is watching, and how
// often Keep retries a failed renewal, unless Options say otherwise.
const DefaultPoll = 2 * time.Second

// renewTimeout bounds each of Keep's renewals, so that one sent while the
// API was away does not hang past its return.
const renewTimeout = 15 * time.Second

// maxTries bounds how often Acquire looks at the lease again after a
// conflict or a lease deleted under it.
const maxTries = 5

// Holder identifies who holds the lock: which operator, where, which
// process and which rotation. A rerun of the same rotation (after a crash,
// from another process) may take the lock over; anyone else must wait.
type Holder struct {
	User string
	Host string
	PID  int
	// Nonce is random per process, so that two processes with the same
	// host name and PID (in two containers) are told apart. Empty in
	// identities written by older versions.
	Nonce      string
	RotationID string
}

// String is the lease's holderIdentity:
// "<user>@<host> pid <pid> nonce <nonce> rotation <id>", or, without a
// nonce, the older "<user>@<host> pid <pid> rotation <id>".
func (h Holder) String() string {
	if h.Nonce == "" {
		return fmt.Sprintf("%s@%s pid %d rotation %s", h.User, h.Host, h.PID, h.RotationID)
	}
	return fmt.Sprintf("%s@%s pid %d nonce %s rotation %s", h.User, h.Host, h.PID, h.Nonce, h.RotationID)
}

var holderPattern = regexp.MustCompile(`^(.*)@(\S*) pid (\d+)(?: nonce (\S+))? rotation (\S+)$`)

// ParseHolder reads a holderIdentity written by String, with or without a
// nonce; ok is false for an identity some other tool wrote.
func ParseHolder(s string) (h Holder, ok bool) {
	m := holderPattern.FindStringSubmatch(s)
	if m == nil {
		return Holder{}, false
	}
	pid, err := strconv.Atoi(m[3])
	if err != nil {
		return Holder{}, false
	}
	return Holder{User: m[1], Host: m[2], PID: pid, Nonce: m[4], RotationID: m[5]}, true
}

// processNonce is this process's nonce: 8 hex characters from crypto/rand.
var processNonce = sync.OnceValue(func() string {
	b := make([]byte, 4)
	rand.Read(b) // never fails (it crashes the program instead)
	return hex.EncodeToString(b)
})

// CurrentHolder is this process, running rotationID.
func CurrentHolder(rotationID string) Holder {
	h := Holder{User: "unknown", Host: "unknown", PID: os.Getpid(), Nonce: processNonce(), RotationID: rotationID}
	if u, err := user.Current(); err == nil && u.Username != "" {
		h.User = u.Username
	}
	if host, err := os.Hostname(); err == nil && host != "" {
		h.Host = host
	}
	return h
}

// HeldError says the lock is held by another rotation that has renewed it
// recently enough, or that renewed it while Acquire watched.
type HeldError struct {
	Holder    string
	RenewedAt time.Time // the lease's renewTime, by its holder's clock
	Expires   time.Time // RenewedAt plus the lease duration
	Now       time.Time // this machine's clock
	// SeenRenewed is set when the lease looked expired by this machine's
	// clock but changed while Acquire watched it: the clocks disagree.
	SeenRenewed bool
}

func (e *HeldError) Error() string {
	what := fmt.Sprintf("last renewed %s (%s ago), expires in %s",
		e.RenewedAt.UTC().Format(time.RFC3339), e.Now.Sub(e.RenewedAt).Round(time.Second), e.Expires.Sub(e.Now).Round(time.Second))
	if e.SeenRenewed {
		what = fmt.Sprintf("which renewed it while this carotate watched, although by this machine's clock it looks expired "+
			"(last renewed %s, %s ago): the two machines' clocks disagree",
			e.RenewedAt.UTC().Format(time.RFC3339), e.Now.Sub(e.RenewedAt).Round(time.Second))
	}
	return fmt.Sprintf("rotation lock %s/%s is held by %q, %s: another carotate is rotating this cluster; "+
		"wait for it to finish, or, only after making sure that process is gone, rerun with --force-unlock=%q",
		Namespace, Name, e.Holder, what, e.Holder)
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

// UnrenewedError says the lock has not been renewed successfully for half
// its lease duration, so another carotate may soon take it over: stop
// before changing anything else. It is not a *LostError (nobody else is
// known to hold the lock); Err is the last renewal's error, if any.
type UnrenewedError struct {
	For   time.Duration // since the last successful renewal
	Lease time.Duration // the lease duration
	Err   error
}

func (e *UnrenewedError) Error() string {
	s := fmt.Sprintf("rotation lock %s/%s could not be renewed for %s (half its %s lease), so it may be lost to another carotate; stop: two rotations must never run at once",
		Namespace, Name, e.For, e.Lease)
	if e.Err != nil {
		s += "; last error: " + e.Err.Error()
	}
	return s
}

func (e *UnrenewedError) Unwrap() error { return e.Err }

// Clock is the monotonic clock that Acquire measures how long it has
// watched a lease with, and that Keep and Held measure the time since the
// last renewal with. Time read from it is only ever subtracted from other
// readings of it.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options tune AcquireWith; the zero value is what Acquire uses.
type Options struct {
	// Now is the wall clock, written into the lease's acquire and renew
	// times and compared with them to judge whether a lease looks
	// expired. Default time.Now.
	Now func() time.Time
	// Clock measures waits; default the real (monotonic) clock.
	Clock Clock
	// Poll is how often Acquire re-reads a lease it is watching and how
	// often Keep retries a failed renewal. Default DefaultPoll.
	Poll time.Duration
	// Progress, if set, is told when Acquire starts to watch a lease, for
	// the operator: it may take the lease duration.
	Progress func(msg string)
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
	return o
}

// Lock is a held rotation lock.
type Lock struct {
	client kubernetes.Interface
	holder Holder
	now    func() time.Time
	clock  Clock
	poll   time.Duration

	// writing serializes the renewals, so that the duration a write
	// carries and the one the lock is then judged by are the same.
	writing sync.Mutex

	mu       sync.Mutex
	renewed  time.Time     // l.clock reading from before the last write that succeeded
	duration time.Duration // the lease duration that write carried
	want     time.Duration // the duration the next write carries (SetDuration)
	lost     error         // what Keep reported; Held returns it from then on
}

// Holder is who holds it.
func (l *Lock) Holder() Holder { return l.holder }

// Acquire is AcquireWith with the zero Options.
func Acquire(ctx context.Context, client kubernetes.Interface, holder Holder, duration time.Duration) (*Lock, error) {
	return AcquireWith(ctx, client, holder, duration, Options{})
}

// AcquireWith takes the lock for holder for duration (renew it well within
// that, with Keep). It creates the Lease; if the Lease exists, it takes it
// over by the rules in the package documentation, and otherwise fails with
// a *HeldError: at once when the lease does not look expired, or, when it
// does, as soon as it changes while AcquireWith watches it for up to the
// lease duration.
func AcquireWith(ctx context.Context, client kubernetes.Interface, holder Holder, duration time.Duration, opts Options) (*Lock, error) {
	return acquire(ctx, client, holder, duration, opts, processAlive)
}

// processAlive reports whether other, of the same rotation, may still be
// running: a process on another host, or one that is running here, may be
// mid-step, and two carotates must never change the same cluster at once.
// Only this very process (an identical identity, nonce included) and a
// process of this host that no longer exists (a crash, kill -9) count as
// gone. The same host and PID with another nonce is another process in
// another PID namespace (containers sharing a hostname), so alive. A
// different PID on this host is still judged by kill(pid, 0), which only
// sees this PID namespace: containers that share a hostname should not
// share a rotation id.
func processAlive(me, other Holder) bool {
	if other.String() == me.String() {
		return false
	}
	if other.Host != me.Host || other.PID <= 0 || other.PID == me.PID {
		return true
	}
	err := syscall.Kill(other.PID, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func acquire(ctx context.Context, client kubernetes.Interface, holder Holder, duration time.Duration, opts Options, alive func(me, other Holder) bool) (*Lock, error) {
	if holder.RotationID == "" {
		return nil, errors.New("acquire rotation lock: holder has no rotation id")
	}
	if duration < time.Second {
		return nil, fmt.Errorf("acquire rotation lock: lease duration %s is shorter than a second", duration)
	}
	opts = opts.withDefaults()
	l := &Lock{client: client, holder: holder, duration: duration, want: duration, now: opts.Now, clock: opts.Clock, poll: opts.Poll}
	err := l.acquire(ctx, opts.Progress, alive)
	var held *HeldError
	if errors.As(err, &held) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("acquire rotation lock %s/%s: %w", Namespace, Name, err)
	}
	return l, nil
}

func (l *Lock) acquire(ctx context.Context, progress func(string), alive func(me, other Holder) bool) error {
	leases := l.client.CoordinationV1().Leases(Namespace)
	// What Acquire has seen of a lease it watches, as client-go's leader
	// election keeps observedRecord and observedTime.
	var (
		watching bool
		seenRV   string
		seenAt   time.Time // l.clock, when the lease was first seen at seenRV
		wait     time.Duration
	)
	var cur *coordinationv1.Lease // nil: read it; gone: create it
	gone := true
	var lastErr error
	for try := 0; try < maxTries; try++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if gone {
			sent := l.clock.Now()
			_, err := leases.Create(ctx, l.newLease(), metav1.CreateOptions{})
			if err == nil {
				l.setRenewed(sent)
				return nil
			}
			if !apierrors.IsAlreadyExists(err) {
				return err
			}
			lastErr, gone = err, false
		}
		if cur == nil {
			got, err := leases.Get(ctx, Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				lastErr, gone = err, true
				continue
			}
			if err != nil {
				return err
			}
			cur = got
		}
		at := l.now()
		identity := deref(cur.Spec.HolderIdentity)
		other, _ := ParseHolder(identity)
		switch {
		case identity == "" || identity == l.holder.String():
		case other.RotationID == l.holder.RotationID && !alive(l.holder, other):
		case !looksExpired(cur, at):
			return heldError(cur, at, false)
		case watching && cur.ResourceVersion != seenRV:
			return heldError(cur, at, true)
		default:
			if !watching {
				watching, seenRV, seenAt = true, cur.ResourceVersion, l.clock.Now()
				wait = max(l.duration, time.Duration(deref(cur.Spec.LeaseDurationSeconds))*time.Second)
				progress(fmt.Sprintf("waiting up to %s for the lease held by %q, which looks expired, to stay unrenewed", short(wait), identity))
			}
			latest, changed, err := l.watch(ctx, seenRV, seenAt, wait)
			if err != nil {
				return err
			}
			if changed {
				cur, gone = latest, latest == nil
				continue
			}
			at = l.now()
		}
		sent := l.clock.Now()
		_, err := leases.Update(ctx, l.takeOver(cur, at), metav1.UpdateOptions{})
		if err == nil {
			l.setRenewed(sent)
			return nil
		}
		if !apierrors.IsConflict(err) {
			return err
		}
		lastErr, cur = err, nil
	}
	return lastErr
}

// watch re-reads the lease every l.poll until it has stayed at rv for wait
// since seenAt, or has changed (latest is nil if it was deleted). Failed
// reads are let pass: the takeover's Update carries rv, so a renewal that
// was missed still stops it.
func (l *Lock) watch(ctx context.Context, rv string, seenAt time.Time, wait time.Duration) (latest *coordinationv1.Lease, changed bool, err error) {
	leases := l.client.CoordinationV1().Leases(Namespace)
	polls := int(wait/l.poll) + 2
	for range polls {
		left := wait - l.clock.Now().Sub(seenAt)
		if left <= 0 {
			return nil, false, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-l.clock.After(min(l.poll, left)):
		}
		got, err := leases.Get(ctx, Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, true, nil
		}
		if err == nil && got.ResourceVersion != rv {
			return got, true, nil
		}
	}
	if l.clock.Now().Sub(seenAt) >= wait {
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("watched the lease %d times without %s passing on the clock", polls, wait)
}

func (l *Lock) newLease() *coordinationv1.Lease {
	t := metav1.NewMicroTime(l.now())
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: Namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "carotate"}},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr(l.holder.String()),
			LeaseDurationSeconds: ptr(seconds(l.duration)),
			AcquireTime:          &t,
			RenewTime:            &t,
		},
	}
}

// takeOver is cur, at its resourceVersion, held by l from at.
func (l *Lock) takeOver(cur *coordinationv1.Lease, at time.Time) *coordinationv1.Lease {
	cur = cur.DeepCopy()
	identity := deref(cur.Spec.HolderIdentity)
	mt := metav1.NewMicroTime(at)
	if identity != l.holder.String() {
		cur.Spec.AcquireTime = &mt
		if identity != "" {
			cur.Spec.LeaseTransitions = ptr(deref(cur.Spec.LeaseTransitions) + 1)
		}
	}
	cur.Spec.HolderIdentity = ptr(l.holder.String())
	cur.Spec.RenewTime = &mt
	cur.Spec.LeaseDurationSeconds = ptr(seconds(l.duration))
	return cur
}

func (l *Lock) setRenewed(sent time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sent.After(l.renewed) {
		l.renewed = sent
	}
}

// sinceRenewed is how long ago the last successful write was sent, and
// the lease duration it carried.
func (l *Lock) sinceRenewed() (since, duration time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.clock.Now().Sub(l.renewed), l.duration
}

// Renew moves the lease's renew time to now. It fails with a *LostError if
// the lock is no longer ours.
func (l *Lock) Renew(ctx context.Context) error {
	l.writing.Lock()
	defer l.writing.Unlock()
	l.mu.Lock()
	d := l.want
	l.mu.Unlock()
	leases := l.client.CoordinationV1().Leases(Namespace)
	sent := l.clock.Now()
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
		cur.Spec.LeaseDurationSeconds = ptr(seconds(d))
		_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err == nil {
		l.mu.Lock()
		if sent.After(l.renewed) {
			l.renewed = sent
		}
		l.duration = d
		l.mu.Unlock()
	}
	return wrapOwn("renew", err)
}

// SetDuration has every renewal from now on write a lease duration of d,
// and renews at once. The lock is judged by the duration the last
// successful renewal wrote: a longer one only once it is in the lease
// (nobody watching the lease waits longer than the lease says), a shorter
// one as soon as it is. So a holder about to take the API away for longer
// than half the lease (etcd restarting under a single kube-apiserver)
// lengthens the lease first, and shortens it again once the API is back;
// if that renewal fails, the next one that succeeds shortens it. The
// error is the renewal's.
func (l *Lock) SetDuration(ctx context.Context, d time.Duration) error {
	if d < time.Second {
		return fmt.Errorf("rotation lock %s/%s: lease duration %s is shorter than a second", Namespace, Name, d)
	}
	l.mu.Lock()
	l.want = d
	l.mu.Unlock()
	return l.Renew(ctx)
}

// Duration is the lease duration the last successful write carried.
func (l *Lock) Duration() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.duration
}

// Keep renews the lock every every (at most a quarter of the lease
// duration; more is cut to that) until ctx is done. A failed renewal is
// retried every poll (Options.Poll), each try for at most renewTimeout,
// until half the lease duration (the one the last successful renewal
// wrote) has passed since it. The channel gets at most one error, and
// then Keep stops: a *LostError at once when the lock is
// someone else's or gone, or an *UnrenewedError when renewals kept failing
// for half the lease. It is closed when Keep stops. From then on Held
// returns that error. Cancel ctx when done (before Release) and call Keep
// once per Lock.
func (l *Lock) Keep(ctx context.Context, every time.Duration) <-chan error {
	if _, d := l.sinceRenewed(); every <= 0 || every > d/4 {
		every = d / 4
	}
	out := make(chan error, 1)
	go func() {
		defer close(out)
		wait := every
		var last error
		for {
			if ctx.Err() != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-l.clock.After(wait):
			}
			if since, d := l.sinceRenewed(); since < d/2 {
				rctx, cancel := context.WithTimeout(ctx, min(d/2-since, renewTimeout))
				err := l.Renew(rctx)
				cancel()
				if ctx.Err() != nil {
					return
				}
				if err == nil {
					wait = every
					continue
				}
				last = err
				var lost *LostError
				if errors.As(err, &lost) {
					l.report(out, err)
					return
				}
			}
			since, d := l.sinceRenewed()
			if since >= d/2 {
				l.report(out, &UnrenewedError{For: since.Round(time.Second), Lease: d, Err: last})
				return
			}
			wait = min(l.poll, d/2-since)
		}
	}()
	return out
}

func (l *Lock) report(out chan<- error, err error) {
	l.mu.Lock()
	l.lost = err
	l.mu.Unlock()
	out <- err
}

// Held is nil while the lock can be relied on: the last successful
// renewal (or the acquisition) was sent less than half the lease duration
// ago, by this process's monotonic clock, and Keep has reported nothing.
// Otherwise it is what Keep reported, or an *UnrenewedError. Call it
// before every step that changes the cluster.
func (l *Lock) Held() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	if since := l.clock.Now().Sub(l.renewed); since >= l.duration/2 {
		return &UnrenewedError{For: since.Round(time.Second), Lease: l.duration}
	}
	return nil
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

// looksExpired is true when, by this machine's clock, the lease has not
// been renewed within its duration (renewTime + duration <= now), or has no
// times. Its times come from another machine's clock, so this only decides
// between failing at once and watching the lease.
func looksExpired(l *coordinationv1.Lease, now time.Time) bool {
	last := l.Spec.RenewTime
	if last == nil {
		last = l.Spec.AcquireTime
	}
	if last == nil || l.Spec.LeaseDurationSeconds == nil {
		return true
	}
	return !last.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second).After(now)
}

func heldError(l *coordinationv1.Lease, now time.Time, seenRenewed bool) *HeldError {
	e := &HeldError{Holder: deref(l.Spec.HolderIdentity), Now: now, SeenRenewed: seenRenewed}
	if l.Spec.RenewTime != nil {
		e.RenewedAt = l.Spec.RenewTime.Time
	} else if l.Spec.AcquireTime != nil {
		e.RenewedAt = l.Spec.AcquireTime.Time
	}
	e.Expires = e.RenewedAt.Add(time.Duration(deref(l.Spec.LeaseDurationSeconds)) * time.Second)
	return e
}

// short is d without trailing zero units: 2m rather than 2m0s.
func short(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
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
