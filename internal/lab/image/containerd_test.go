package image

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestContainerdImportsArchive loads an image written by Write into a
// private containerd 1.6 with the same `ctr images import` the lab uses,
// unpacking it into the overlayfs snapshotter, and checks the tag and the
// image ID it reports.
func TestContainerdImportsArchive(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a private containerd")
	}
	for _, bin := range []string{"containerd", "ctr"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s in PATH (Debian package containerd)", bin)
		}
	}
	dynamic := dynamicHostBinary(t)

	const ref = "registry.k8s.io/kube-apiserver:v1.37.2"
	spec := Spec{Ref: ref, Entrypoint: []string{"/usr/bin/env"}}
	if err := AddBinaryWithDeps(&spec, dynamic, "/usr/bin/env"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tarball := filepath.Join(dir, "image.tar")
	f, err := os.Create(tarball)
	if err != nil {
		t.Fatal(err)
	}
	id, err := Write(f, spec)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	sock := startContainerd(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctr := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", sock, "--namespace", "test"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	ctr("images", "import", tarball)

	if refs := strings.Fields(ctr("images", "ls", "--quiet")); !slices.Contains(refs, ref) {
		t.Errorf("ctr images ls = %v, want %s", refs, ref)
	}
	// The config blob is stored under the digest Write returned, which is
	// the image ID the kubelet and crictl report.
	if content := ctr("content", "ls", "--quiet"); !strings.Contains(content, id) {
		t.Errorf("ctr content ls does not hold config %s:\n%s", id, content)
	}
	// Unpacking must have produced a snapshot for the layer.
	if snaps := ctr("snapshots", "ls"); len(strings.Split(strings.TrimSpace(snaps), "\n")) < 2 {
		t.Errorf("no snapshot after import:\n%s", snaps)
	}
}

// startContainerd runs containerd with every path under dir and the CRI
// plugin off, and returns its socket. At cleanup it kills exactly that
// process and unmounts whatever it left mounted under dir.
func startContainerd(t *testing.T, dir string) string {
	t.Helper()
	sock := filepath.Join(dir, "containerd.sock")
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc", filepath.Join(dir, "opt"))
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "containerd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	cmd := exec.Command("containerd", "--config", configPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("kill containerd pid %d: %v", cmd.Process.Pid, err)
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("containerd pid %d did not exit after kill", cmd.Process.Pid)
		}
		unmountUnder(t, dir)
		if t.Failed() {
			if log, err := os.ReadFile(logPath); err == nil {
				t.Logf("containerd log:\n%s", tail(log, 40))
			}
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for {
		if conn, err := net.Dial("unix", sock); err == nil {
			conn.Close()
			return sock
		}
		select {
		case err := <-exited:
			exited <- err // let the cleanup see it too
			t.Fatalf("containerd exited before serving: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not listen on %s within 30s", sock)
		}
	}
}

// unmountUnder detaches every mount below dir, deepest first, so that
// t.TempDir's removal cannot descend into a live overlay or bind mount.
func unmountUnder(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Errorf("read mountinfo: %v", err)
		return
	}
	var points []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMountinfo(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", p, err)
		}
	}
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) that
// /proc/self/mountinfo uses in paths.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

func tail(b []byte, lines int) string {
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
