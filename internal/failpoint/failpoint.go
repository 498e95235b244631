// Package failpoint is a test hook that kills carotate at a chosen side
// effect, so that the crash tests can prove a resume converges from every
// point of a rotation, not only from the few moments a person can time a
// kill -9 by hand.
//
// CAROTATE_FAILPOINT=[PHASE:]before:N or [PHASE:]after:N makes the process
// SIGKILL itself just before or just after its N-th side effect (counted
// from 1 in this process, within PHASE when one is given). A side effect is
// a file written, removed or linked on a node, a directory made there, a
// kubelet restarted, or a write to the Kubernetes API other than renewing
// the rotation lock (whose count would depend on time). Reads are never
// counted. SIGKILL is what a crash, an OOM kill or a pulled plug look like
// to the cluster: no deferred cleanup runs, no lock is released.
package failpoint

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Env is the variable that arms a failpoint.
const Env = "CAROTATE_FAILPOINT"

// Where a failpoint fires relative to its side effect.
const (
	Before = "before"
	After  = "after"
)

// Counter counts side effects and fires at the armed one. A nil *Counter
// counts nothing and never fires, so callers need no "is it armed" checks.
type Counter struct {
	phase string // "" counts every phase
	when  string
	at    int

	mu      sync.Mutex
	current string // the phase the run is in
	n       int
	log     io.Writer
	kill    func()
}

// Parse reads a failpoint spec, "" meaning none (a nil Counter). log gets
// one line when the failpoint fires, so a test can tell which side effect
// it killed.
func Parse(spec string, log io.Writer) (*Counter, error) {
	if spec == "" {
		return nil, nil
	}
	parts := strings.Split(spec, ":")
	c := &Counter{log: log, kill: killSelf}
	if len(parts) == 3 {
		c.phase, parts = parts[0], parts[1:]
	}
	if len(parts) != 2 || (parts[0] != Before && parts[0] != After) {
		return nil, fmt.Errorf("%s=%q: want [PHASE:]before:N or [PHASE:]after:N", Env, spec)
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil || n < 1 {
		return nil, fmt.Errorf("%s=%q: N must be a whole number from 1", Env, spec)
	}
	if c.phase == "" && len(strings.Split(spec, ":")) == 3 {
		return nil, fmt.Errorf("%s=%q: the phase is empty", Env, spec)
	}
	c.when, c.at = parts[0], n
	return c, nil
}

// EnterPhase tells the counter which phase the run is in now. Side effects
// before any phase (saving the material) count as prepare's.
func (c *Counter) EnterPhase(phase string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current = phase
}

// Do counts one side effect, what, and runs it, firing before or after it
// when it is the armed one.
func (c *Counter) Do(what string, fn func() error) error {
	fire := c.next(what)
	if fire == Before {
		c.fire(what)
	}
	err := fn()
	if fire == After {
		c.fire(what)
	}
	return err
}

// next counts what and says whether to fire around it.
func (c *Counter) next(what string) string {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	phase := c.current
	if phase == "" {
		phase = "prepare"
	}
	if c.phase != "" && c.phase != phase {
		return ""
	}
	c.n++
	if c.n == c.at {
		return c.when
	}
	return ""
}

func (c *Counter) fire(what string) {
	c.mu.Lock()
	n, phase := c.n, c.current
	c.mu.Unlock()
	if c.log != nil {
		fmt.Fprintf(c.log, "failpoint: SIGKILL %s side effect %d (phase %s): %s\n", c.when, n, orPrepare(phase), what)
	}
	c.kill()
}

// Count is how many side effects were counted so far.
func (c *Counter) Count() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func orPrepare(p string) string {
	if p == "" {
		return "prepare"
	}
	return p
}

func killSelf() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught; wait for it to land
}
