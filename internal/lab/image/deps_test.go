package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseLDD(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    []string
		wantErr error
	}{
		{
			name: "glibc binary",
			out: "\tlinux-vdso.so.1 (0x00007ffd3c5f0000)\n" +
				"\tlibresolv.so.2 => /lib/x86_64-linux-gnu/libresolv.so.2 (0x00007f0a1c000000)\n" +
				"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f06cc4a3000)\n" +
				"\t/lib64/ld-linux-x86-64.so.2 (0x00007f06cc6a5000)\n",
			want: []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libresolv.so.2", "/lib64/ld-linux-x86-64.so.2"},
		},
		{
			name: "old style vdso with empty arrow",
			out:  "\tlinux-vdso.so.1 =>  (0x00007ffd3c5f0000)\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n",
			want: []string{"/lib/libc.so.6"},
		},
		{
			name: "library listed twice",
			out:  "\tlibc.so.6 => /lib/libc.so.6 (0x1)\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n",
			want: []string{"/lib/libc.so.6"},
		},
		{name: "static", out: "\tstatically linked\n"},
		{name: "not dynamic", out: "\tnot a dynamic executable\n"},
		{
			name:    "missing library",
			out:     "\tlibfoo.so.1 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n",
			wantErr: ErrMissingLibrary,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLDD([]byte(tt.out))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("parseLDD error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseLDD (-want +got):\n%s", diff)
			}
		})
	}
}

// dynamicHostBinary returns a glibc-linked binary of this host, or skips.
func dynamicHostBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/env", "/bin/true"} {
		if interp, _, err := interpreter(p); err == nil && interp != "" {
			return p
		}
	}
	t.Skip("no dynamically linked /usr/bin/env or /bin/true on this host")
	return ""
}

// staticBinary builds a tiny Go program with cgo off, the way the probe
// and pause binaries are built.
func staticBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH, cannot build a static test binary")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module static\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "static")
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestELFDepsStatic(t *testing.T) {
	deps, err := ELFDeps(staticBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(deps) != 0 {
		t.Errorf("ELFDeps(static) = %v, want none", deps)
	}
}

func TestELFDepsNotELF(t *testing.T) {
	script := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ELFDeps(script); err == nil {
		t.Error("ELFDeps(shell script) succeeded, want an error")
	}
}

func TestELFDepsDynamic(t *testing.T) {
	bin := dynamicHostBinary(t)
	interp, _, err := interpreter(bin)
	if err != nil {
		t.Fatal(err)
	}
	deps, err := ELFDeps(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(deps, interp) {
		t.Errorf("ELFDeps(%s) = %v, missing the loader %s", bin, deps, interp)
	}
	if !slices.ContainsFunc(deps, func(d string) bool { return filepath.Base(d) == "libc.so.6" }) {
		t.Errorf("ELFDeps(%s) = %v, missing libc.so.6", bin, deps)
	}
}

func TestAddBinaryWithDeps(t *testing.T) {
	dynamic := dynamicHostBinary(t)
	static := staticBinary(t)
	spec := Spec{Ref: "example.test/tools:v1"}
	if err := AddBinaryWithDeps(&spec, dynamic, "/usr/bin/env"); err != nil {
		t.Fatal(err)
	}
	if err := AddBinaryWithDeps(&spec, static, "/usr/local/bin/static"); err != nil {
		t.Fatal(err)
	}
	// Adding the same binary again must not duplicate its libraries.
	before := len(spec.Files)
	if err := AddBinaryWithDeps(&spec, dynamic, "/usr/bin/env"); err != nil {
		t.Fatal(err)
	}
	if len(spec.Files) != before {
		t.Errorf("second AddBinaryWithDeps grew Files from %d to %d", before, len(spec.Files))
	}
	if err := AddBinaryWithDeps(&spec, static, "/usr/bin/env"); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("adding another binary at the same path: error %v, want ErrInvalidSpec", err)
	}

	deps, err := ELFDeps(dynamic)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := writeArchive(t, spec)
	want := append([]string{"/usr/bin/env", "/usr/local/bin/static"}, deps...)
	for _, p := range want {
		host := p
		switch p {
		case "/usr/bin/env":
			host = dynamic
		case "/usr/local/bin/static":
			host = static
		}
		content, err := os.ReadFile(host) // follows symlinks, as Write must
		if err != nil {
			t.Fatal(err)
		}
		e, ok := findEntry(a.layer, p[1:])
		if !ok {
			t.Errorf("%s missing from the layer", p)
			continue
		}
		if e.Type != tar.TypeReg || !bytes.Equal([]byte(e.Body), content) {
			t.Errorf("%s: type %q, %d bytes; want a regular file with the host's %d bytes", p, e.Type, len(e.Body), len(content))
		}
		if strings.HasPrefix(p, "/usr/") && e.Mode&0o111 == 0 {
			t.Errorf("%s: mode %o is not executable", p, e.Mode)
		}
	}
}

// TestDynamicBinaryRunsFromLayer proves the copied libraries are enough:
// it unpacks the layer and runs the binary chrooted into it.
func TestDynamicBinaryRunsFromLayer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	dynamic := dynamicHostBinary(t)
	spec := Spec{Ref: "example.test/env:v1"}
	if err := AddBinaryWithDeps(&spec, dynamic, "/usr/bin/env"); err != nil {
		t.Fatal(err)
	}
	a, _ := writeArchive(t, spec)
	root := t.TempDir()
	for _, e := range a.layer {
		dst := filepath.Join(root, filepath.FromSlash(e.Name))
		var err error
		switch e.Type {
		case tar.TypeDir:
			err = os.MkdirAll(dst, os.FileMode(e.Mode))
		case tar.TypeSymlink:
			err = os.Symlink(e.Linkname, dst)
		default:
			err = os.WriteFile(dst, []byte(e.Body), os.FileMode(e.Mode))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("/usr/bin/env")
	cmd.Env = []string{"IN_IMAGE=yes"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run /usr/bin/env inside the layer: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "IN_IMAGE=yes" {
		t.Errorf("env output %q, want IN_IMAGE=yes", got)
	}
}

func findEntry(entries []tarEntry, name string) (tarEntry, bool) {
	for _, e := range entries {
		if e.Name == name {
			return e, true
		}
	}
	return tarEntry{}, false
}
