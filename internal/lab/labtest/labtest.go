// Package labtest starts lab clusters from Go tests:
//
//	l := labtest.Start(t, lab.Options{ControlPlanes: 1, Workers: 2})
//
// The lab is torn down when the test ends, also when it fails, and a failed
// test gets the lab's logs in its output. Without root or without the built
// components the test is skipped with one line saying why, unless
// CAROTATE_E2E=require (what `make test` sets), which makes that a failure.
package labtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/lab"
	"github.com/carotate/carotate/internal/manifest"
)

// Components is where the built upstream binaries are looked for.
func Components() string {
	if d := os.Getenv("CAROTATE_COMPONENTS"); d != "" {
		return d
	}
	return "/var/cache/carotate/components"
}

// Require skips (or, with CAROTATE_E2E=require, fails) t unless the
// machine can run a lab.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short mode")
	}
	var why string
	switch {
	case os.Geteuid() != 0:
		why = "needs root"
	case !exists(filepath.Join(Components(), "kube-apiserver")):
		why = "needs the built components in " + Components() + " (make components)"
	case !exists("/usr/bin/containerd") || !exists("/usr/sbin/sshd") || !exists("/usr/sbin/haproxy"):
		why = "needs containerd, sshd and haproxy (make deps)"
	}
	if why == "" {
		return
	}
	if os.Getenv("CAROTATE_E2E") == "require" {
		t.Fatalf("end-to-end: %s, and CAROTATE_E2E=require", why)
	}
	t.Skipf("end-to-end: %s", why)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the lab and probe commands once per test process, into a
// directory outside the repository.
func binaries() (labBin, probeBin string, err error) {
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		repo := filepath.Join(filepath.Dir(file), "..", "..", "..")
		binDir, buildErr = os.MkdirTemp("", "carotate-testbin-")
		if buildErr != nil {
			return
		}
		for _, b := range []struct{ out, pkg, cgo string }{
			{"lab", "./cmd/lab", "1"},
			{"probe", "./cmd/probe", "0"},
			{"carotate", "./cmd/carotate", "1"},
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, b.out), b.pkg)
			cmd.Dir = repo
			cmd.Env = append(os.Environ(), "CGO_ENABLED="+b.cgo)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %w\n%s", b.pkg, err, out)
				return
			}
		}
	})
	return filepath.Join(binDir, "lab"), filepath.Join(binDir, "probe"), buildErr
}

// Start stands up a lab for t and tears it down when t ends.
func Start(t *testing.T, o lab.Options) *lab.Lab {
	t.Helper()
	Require(t)
	var err error
	if o.LabBinary, o.ProbeBinary, err = binaries(); err != nil {
		t.Fatal(err)
	}
	if o.Components == "" {
		o.Components = Components()
	}
	if o.ImageCache == "" {
		o.ImageCache = os.Getenv("CAROTATE_IMAGE_CACHE")
	}
	if o.Name == "" {
		o.Name = "t"
	}
	// Short: unix socket paths under it must stay below 108 bytes.
	if o.StateDir, err = os.MkdirTemp("", "lab-"); err != nil {
		t.Fatal(err)
	}
	o.Progress = testWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	l, upErr := lab.Up(ctx, o)
	t.Cleanup(func() {
		if t.Failed() && l != nil {
			DumpLogs(t, l)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := lab.Down(ctx, o.StateDir, func(s string) { t.Log("lab: " + s) }); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	if upErr != nil {
		t.Fatal(upErr)
	}
	return l
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// DumpLogs writes the tail of every log the lab has into t's output.
func DumpLogs(t *testing.T, l *lab.Lab) {
	t.Helper()
	tail := func(path string, n int) string {
		data, err := os.ReadFile(path)
		if err != nil {
			return err.Error()
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		return strings.Join(lines, "\n")
	}
	agents, _ := filepath.Glob(filepath.Join(l.StateDir, "agents", "*.log"))
	for _, a := range agents {
		t.Logf("--- %s\n%s", a, tail(a, 20))
	}
	for _, n := range l.Nodes {
		for _, unit := range []string{"kubelet", "containerd"} {
			if p, err := l.UnitLog(n.Name, unit); err == nil {
				t.Logf("--- %s %s\n%s", n.Name, unit, tail(p, 40))
			}
		}
		for _, f := range []string{"kubeadm-init.log", "kubeadm-join.log"} {
			if p := filepath.Join(l.StateDir, "nodes", n.Name, f); exists(p) {
				t.Logf("--- %s %s\n%s", n.Name, f, tail(p, 40))
			}
		}
		if n.ControlPlane {
			for _, c := range []string{manifest.KubeAPIServer, manifest.KubeControllerManager, manifest.KubeScheduler, manifest.Etcd} {
				if data, err := l.ComponentLog(n.Name, c); err == nil {
					lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
					if len(lines) > 30 {
						lines = lines[len(lines)-30:]
					}
					t.Logf("--- %s %s\n%s", n.Name, c, strings.Join(lines, "\n"))
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if h, err := l.CheckHealth(ctx); err == nil {
		t.Logf("--- cluster: %s", h)
	}
}

// Carotate is the carotate binary built for this test process.
func Carotate(t testing.TB) string {
	t.Helper()
	if _, _, err := binaries(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(binDir, "carotate")
}
