package cli

import (
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
)

// commandFlags lists each command's flags by name, with their usage.
func commandFlags(t *testing.T) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, cmd := range NewRootCommand(Env{}).Commands() {
		flags := map[string]string{}
		cmd.Flags().VisitAll(func(f *pflag.Flag) { flags[f.Name] = f.Usage })
		out[cmd.Name()] = flags
	}
	return out
}

// TestEachCommandShowsTheFlagsItUses: every command shows the flags it
// reads and no other, and the flags commands share mean the same on each.
func TestEachCommandShowsTheFlagsItUses(t *testing.T) {
	cluster := []string{"kubeconfig", "context"}
	nodes := []string{"ssh-user", "ssh-key", "ssh-known-hosts", "ssh-port", "ssh-jump", "sudo", "inventory"}
	state := []string{"state-dir", "backup-key", "roots"}
	imports := []string{"ca-cert", "ca-key", "front-proxy-ca-cert", "front-proxy-ca-key", "service-account-key", "service-account-key-type"}
	change := []string{"yes", "force-unlock", "output", "parallelism", "workload-concurrency", "allow-unready", "kubelet-restart-command", "certificate-key-file"}
	cat := func(lists ...[]string) []string {
		var out []string
		for _, l := range lists {
			out = append(out, l...)
		}
		sort.Strings(out)
		return out
	}
	want := map[string][]string{
		"check":    cat(cluster, nodes, []string{"node-concurrency", "output", "expiry-threshold", "max-clock-skew", "metrics-listen", "metrics-interval"}),
		"plan":     cat(cluster, nodes, state, imports, []string{"output", "allow-unready", "reload-wait"}),
		"rotate":   cat(cluster, nodes, state, imports, change, []string{"kubelet-log-command", "until"}),
		"renew":    cat(cluster, nodes, state, change, []string{"kubelet-log-command", "until", "validity", "leaves", "reason"}),
		"finalize": cat(cluster, nodes, state, change, []string{"kubelet-log-command", "reload-wait", "restart-old-token-pods"}),
		"rollback": cat(cluster, nodes, state, change),
		// status reads the sealed material to compare the nodes with, so it
		// needs the backup key; it runs nothing and prints text only.
		"status":  cat(cluster, nodes, state, []string{"output"}),
		"version": {"output"},
	}
	// What each command ignores, named so that a flag added back by
	// mistake says why it must not be there.
	ignored := map[string][]string{
		"status":   {"parallelism", "allow-unready", "yes", "until", "ca-cert"},
		"finalize": {"ca-cert", "ca-key", "front-proxy-ca-cert", "front-proxy-ca-key", "service-account-key", "until"},
		"rollback": {"ca-cert", "ca-key", "front-proxy-ca-cert", "front-proxy-ca-key", "until", "kubelet-log-command", "reload-wait"},
		"rotate":   {"reload-wait"},
		"renew":    {"ca-cert", "ca-key", "front-proxy-ca-cert", "front-proxy-ca-key", "service-account-key", "reload-wait"},
		"plan":     {"parallelism", "kubelet-restart-command", "kubelet-log-command", "yes", "force-unlock", "until"},
	}
	got := commandFlags(t)
	for name, w := range want {
		var names []string
		for f := range got[name] {
			names = append(names, f)
		}
		sort.Strings(names)
		if diff := cmp.Diff(w, names); diff != "" {
			t.Errorf("%s's flags (-want +got):\n%s", name, diff)
		}
		for _, f := range ignored[name] {
			if _, ok := got[name][f]; ok {
				t.Errorf("%s shows --%s, which it ignores", name, f)
			}
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("command %s is not listed here", name)
		}
	}
	usage := map[string]string{}
	for _, name := range []string{"check", "plan", "rotate", "finalize", "rollback", "status"} {
		for _, f := range cat(cluster, nodes) {
			if u, ok := usage[f]; ok && got[name][f] != u {
				t.Errorf("--%s of %s says %q, elsewhere %q", f, name, got[name][f], u)
			}
			usage[f] = got[name][f]
		}
	}
}

// TestStateFromTheEnvironment: $CAROTATE_STATE_DIR and
// $CAROTATE_BACKUP_KEY fill what the flags leave empty, a flag wins, and
// a relative directory from the variable is refused by the variable's name.
func TestStateFromTheEnvironment(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	tests := []struct {
		name        string
		flags       StateFlags
		vars        map[string]string
		dir, key    string
		invalidWant string
	}{
		{"variables only", StateFlags{}, map[string]string{EnvStateDir: "/srv/carotate", EnvBackupKey: "/media/key"}, "/srv/carotate", "/media/key", ""},
		{"flags win", StateFlags{StateDir: "/a", BackupKeyFile: "/b"}, map[string]string{EnvStateDir: "/srv/carotate", EnvBackupKey: "/media/key"}, "/a", "/b", ""},
		{"relative from the variable", StateFlags{}, map[string]string{EnvStateDir: "state"}, "state", "", `$CAROTATE_STATE_DIR "state" must be an absolute path`},
		{"relative from the flag", StateFlags{StateDir: "state"}, map[string]string{EnvStateDir: "/srv/carotate"}, "state", "", `--state-dir "state" must be an absolute path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.flags
			if err := s.Complete(env(tt.vars)); err != nil {
				t.Fatal(err)
			}
			if s.StateDir != tt.dir || s.BackupKeyFile != tt.key {
				t.Errorf("state dir %q, backup key %q; want %q, %q", s.StateDir, s.BackupKeyFile, tt.dir, tt.key)
			}
			err := s.Validate()
			switch {
			case tt.invalidWant == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.invalidWant != "" && (err == nil || err.Error() != tt.invalidWant):
				t.Errorf("error %v, want %q", err, tt.invalidWant)
			}
		})
	}
}
