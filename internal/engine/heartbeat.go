package engine

import (
	"context"
	"sync"
	"time"
)

// Defaults for the runner's heartbeat.
const (
	DefaultHeartbeatAfter = 2 * time.Second
	DefaultHeartbeatEvery = time.Second
)

// waitingKey carries a running step's heartbeat in its context.
type waitingKey struct{}

// heartbeat is what a running step says it waits for.
type heartbeat struct {
	mu   sync.Mutex
	what string
}

// Wait tells the heartbeat of the step that runs with ctx what it waits
// for now ("kube-scheduler on cp-1 to serve"), until the next Wait; ""
// says nothing in particular. Outside a step it does nothing.
func Wait(ctx context.Context, what string) {
	if hb, ok := ctx.Value(waitingKey{}).(*heartbeat); ok {
		hb.mu.Lock()
		hb.what = what
		hb.mu.Unlock()
	}
}

func (hb *heartbeat) waitingFor() string {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	return hb.what
}

// beat reports Waiting events for e's step while it runs longer than
// HeartbeatAfter, one every HeartbeatEvery, each saying what the step
// waits for and, in Duration, how long it has run. stop ends them; no
// Waiting event of this step comes after stop returns.
func (r *Runner[D]) beat(ctx context.Context, e Event, start time.Time) (context.Context, func()) {
	hb := &heartbeat{}
	ctx = context.WithValue(ctx, waitingKey{}, hb)
	if r.Reporter == nil {
		return ctx, func() {}
	}
	after, every := r.HeartbeatAfter, r.HeartbeatEvery
	if after <= 0 {
		after = DefaultHeartbeatAfter
	}
	if every <= 0 {
		every = DefaultHeartbeatEvery
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		first := time.NewTimer(after)
		defer first.Stop()
		select {
		case <-first.C:
		case <-done:
			return
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			w := e
			w.Outcome, w.Detail, w.Duration = Waiting, hb.waitingFor(), r.since(start)
			r.report(w)
			select {
			case <-tick.C:
			case <-done:
				return
			}
		}
	})
	return ctx, func() {
		close(done)
		wg.Wait()
	}
}
