package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// Down tears the lab in stateDir down: it stops every process the lab
// started (all of them live in the lab's cgroup), removes the cgroups, the
// host link and any host path the lab created, restores the sysctls the
// kubelet changed, and removes the state directory. It is idempotent: with
// nothing up it does nothing.
func Down(ctx context.Context, stateDir string, progress func(string)) error {
	say := func(format string, args ...any) {
		if progress != nil {
			progress(fmt.Sprintf(format, args...))
		}
	}
	l, err := Load(stateDir)
	if errors.Is(err, ErrNotUp) {
		say("nothing is up in %s", stateDir)
		return nil
	}
	if err != nil {
		return err
	}
	start := time.Now()
	var errs []error
	// Processes first: once they are gone, their namespaces and mounts go
	// with them.
	if err := killCgroup(l.cgroupRoot()); err != nil {
		errs = append(errs, err)
	}
	say("stopped every process of lab %s", l.Name)
	if err := removeCgroup(l.cgroupRoot()); err != nil {
		errs = append(errs, err)
	}
	// The host end of the lab link dies with the switch namespace, but the
	// kernel frees a namespace's links asynchronously, after its last
	// process: the link may go between the look and the delete, which is
	// the outcome wanted (an e2e run failed on exactly that).
	link := "/sys/class/net/" + l.hostLink()
	if _, err := os.Stat(link); err == nil {
		if _, err := run(ctx, "ip", "link", "del", l.hostLink()); err != nil {
			if _, gone := os.Stat(link); !errors.Is(gone, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if len(l.Sysctls) > 0 {
		if err := writeSysctls(l.Sysctls); err != nil {
			errs = append(errs, err)
		}
	}
	// Deepest first; they are empty on the host (the lab mounted over them
	// only inside its nodes).
	for i := len(l.CreatedHostPaths) - 1; i >= 0; i-- {
		p := l.CreatedHostPaths[i]
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s, which the lab created: %w", p, err))
		}
	}
	if len(errs) > 0 {
		// Keep the state so that a second `lab down` can finish the job.
		return fmt.Errorf("lab down: %w", errors.Join(errs...))
	}
	if err := os.RemoveAll(stateDir); err != nil {
		return fmt.Errorf("lab down: remove %s: %w", stateDir, err)
	}
	say("lab %s is down (%s)", l.Name, time.Since(start).Round(time.Millisecond))
	return nil
}
