package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// hostSnapshot is what `lab down` must leave as it found it.
type hostSnapshot struct {
	Files     []string // paths under the directories a lab could touch
	Mounts    []string
	Links     []string
	Netns     []string
	Rules     string // iptables and nftables rules of the host
	Sysctls   map[string]string
	Cgroups   []string // lab cgroups in any hierarchy
	Processes []string // processes whose command line names the lab
}

// watchedDirs are where something of a lab could be left on the host.
var watchedDirs = []string{"/etc", "/run", "/var/lib", "/var/log", "/opt", "/usr/local", "/usr/lib/modules", "/root"}

func snapshotHost(t *testing.T) hostSnapshot {
	t.Helper()
	var s hostSnapshot
	for _, dir := range watchedDirs {
		filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			// Package and tool caches come and go on their own.
			for _, skip := range []string{"/var/lib/apt", "/var/lib/dpkg", "/var/cache", "/root/.cache", "/root/go", "/root/.config", "/var/lib/carotate-lab"} {
				if path == skip {
					return filepath.SkipDir
				}
			}
			s.Files = append(s.Files, path)
			return nil
		})
	}
	mountinfo, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(strings.TrimSpace(string(mountinfo)), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			s.Mounts = append(s.Mounts, f[4])
		}
	}
	sort.Strings(s.Mounts)
	links, _ := os.ReadDir("/sys/class/net")
	for _, l := range links {
		s.Links = append(s.Links, l.Name())
	}
	netns, _ := os.ReadDir("/run/netns")
	for _, n := range netns {
		s.Netns = append(s.Netns, n.Name())
	}
	for _, argv := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"nft", "list", "ruleset"}} {
		if out, err := exec.Command(argv[0], argv[1:]...).Output(); err == nil {
			for _, line := range strings.Split(string(out), "\n") {
				if !strings.HasPrefix(line, "#") {
					s.Rules += line + "\n"
				}
			}
		}
	}
	s.Sysctls = map[string]string{}
	for _, k := range []string{"kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory"} {
		v, _ := os.ReadFile("/proc/sys/" + k)
		s.Sysctls[k] = strings.TrimSpace(string(v))
	}
	s.Cgroups, _ = filepath.Glob("/sys/fs/cgroup/*/carotate-*")
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, _ := os.ReadFile(p)
		c := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if strings.Contains(c, "carotate-testbin") || strings.Contains(c, "/lab-") && strings.Contains(c, "agent") {
			s.Processes = append(s.Processes, filepath.Base(filepath.Dir(p))+": "+c)
		}
	}
	return s
}

// compare reports what s (after) has that before did not, and what changed.
func (s hostSnapshot) compare(t *testing.T, before hostSnapshot) {
	t.Helper()
	if added := newItems(before.Files, s.Files); len(added) > 0 {
		t.Errorf("files left outside the state directory: %v", added)
	}
	if added := newItems(before.Mounts, s.Mounts); len(added) > 0 {
		t.Errorf("mounts left: %v", added)
	}
	if added := newItems(before.Links, s.Links); len(added) > 0 {
		t.Errorf("network links left: %v", added)
	}
	if added := newItems(before.Netns, s.Netns); len(added) > 0 {
		t.Errorf("network namespaces left: %v", added)
	}
	if diff := cmp.Diff(before.Rules, s.Rules); diff != "" {
		t.Errorf("host firewall rules changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(before.Sysctls, s.Sysctls); diff != "" {
		t.Errorf("sysctls not restored (-before +after):\n%s", diff)
	}
	if len(s.Cgroups) > 0 {
		t.Errorf("cgroups left: %v", s.Cgroups)
	}
	if len(s.Processes) > 0 {
		t.Errorf("processes left: %v", s.Processes)
	}
}

func newItems(before, after []string) []string {
	had := map[string]bool{}
	for _, b := range before {
		had[b] = true
	}
	var out []string
	for _, a := range after {
		if !had[a] {
			out = append(out, a)
		}
	}
	return out
}
