package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const cgroupFS = "/sys/fs/cgroup"

// kubeletSysctls are the global sysctls the kubelet rewrites; the lab saves
// them before and restores them after.
var kubeletSysctls = []string{"kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory"}

func readSysctls() (map[string]string, error) {
	out := map[string]string{}
	for _, k := range kubeletSysctls {
		v, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err != nil {
			return nil, fmt.Errorf("read sysctl %s: %w", k, err)
		}
		out[k] = strings.TrimSpace(string(v))
	}
	return out, nil
}

func writeSysctls(values map[string]string) error {
	var errs []error
	for k, v := range values {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

// cgroupHierarchies lists the mounted hierarchies: every cgroup v1 controller
// and the unified v2 tree, as directories under /sys/fs/cgroup.
func cgroupHierarchies() ([]string, error) {
	entries, err := os.ReadDir(cgroupFS)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(cgroupFS, e.Name())
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err == nil {
			out = append(out, dir)
		}
	}
	if len(out) == 0 {
		// A pure cgroup v2 host.
		if _, err := os.Stat(filepath.Join(cgroupFS, "cgroup.procs")); err == nil {
			out = append(out, cgroupFS)
		}
	}
	return out, nil
}

// makeCgroup creates rel in every hierarchy. cpuset children start empty in
// v1, so their cpus and mems are copied from the parent.
func makeCgroup(rel string) ([]string, error) {
	hierarchies, err := cgroupHierarchies()
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, h := range hierarchies {
		parts := strings.Split(strings.Trim(rel, "/"), "/")
		cur := h
		for _, p := range parts {
			parent := cur
			cur = filepath.Join(cur, p)
			if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return nil, fmt.Errorf("create cgroup %s: %w", cur, err)
			}
			if filepath.Base(h) == "cpuset" {
				for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
					v, err := os.ReadFile(filepath.Join(parent, f))
					if err != nil {
						return nil, err
					}
					cur := filepath.Join(cur, f)
					if have, _ := os.ReadFile(cur); len(bytes.TrimSpace(have)) == 0 {
						if err := os.WriteFile(cur, v, 0o644); err != nil {
							return nil, fmt.Errorf("set %s: %w", cur, err)
						}
					}
				}
			}
		}
		dirs = append(dirs, cur)
	}
	return dirs, nil
}

// cgroupPIDs lists every process in rel and below, in one hierarchy.
func cgroupPIDs(hierarchy, rel string) []int {
	var pids []int
	root := filepath.Join(hierarchy, rel)
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		data, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// killCgroup stops every process the lab started: they all live in rel. The
// freezer stops them forking while they are killed.
func killCgroup(rel string) error {
	freezer := filepath.Join(cgroupFS, "freezer", rel)
	frozen := false
	if _, err := os.Stat(freezer); err == nil {
		frozen = os.WriteFile(filepath.Join(freezer, "freezer.state"), []byte("FROZEN"), 0o644) == nil
	}
	hierarchy := filepath.Join(cgroupFS, "pids")
	if _, err := os.Stat(hierarchy); err != nil {
		hierarchy = cgroupFS
	}
	deadline := time.Now().Add(60 * time.Second)
	for attempt := 0; ; attempt++ {
		pids := cgroupPIDs(hierarchy, rel)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v in cgroup %s survived SIGKILL for 60s", pids, rel)
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if frozen && attempt == 0 {
			os.WriteFile(filepath.Join(freezer, "freezer.state"), []byte("THAWED"), 0o644)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// removeCgroup removes rel and everything below it from every hierarchy,
// deepest first.
func removeCgroup(rel string) error {
	hierarchies, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hierarchies {
		root := filepath.Join(h, rel)
		var dirs []string
		filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			var err error
			for try := 0; try < 50; try++ {
				if err = os.Remove(d); err == nil || errors.Is(err, os.ErrNotExist) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// run runs a host command and returns its combined output in the error.
func run(ctx context.Context, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// inNetns runs a host command inside the network namespace of pid.
func inNetns(ctx context.Context, pid int, argv ...string) (string, error) {
	return run(ctx, append([]string{"nsenter", "--target", strconv.Itoa(pid), "--net", "--"}, argv...)...)
}

func processAlive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

// Usage is what a lab costs the host right now.
type Usage struct {
	Processes int
	// RSS is the resident memory of every lab process, summed.
	RSS int64
}

// Usage sums the resident memory of every process in the lab's cgroup.
func (l *Lab) Usage() Usage {
	hierarchy := filepath.Join(cgroupFS, "pids")
	if _, err := os.Stat(hierarchy); err != nil {
		hierarchy = cgroupFS
	}
	var u Usage
	for _, pid := range cgroupPIDs(hierarchy, l.cgroupRoot()) {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		u.Processes++
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				u.RSS += kb * 1024
			}
		}
	}
	return u
}

// DiskUsage is the size of the lab's state directory.
func (l *Lab) DiskUsage() int64 {
	var total int64
	filepath.WalkDir(l.StateDir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}
