package image

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// ErrMissingLibrary marks a binary whose shared libraries the host lacks.
var ErrMissingLibrary = errors.New("shared library not found")

// ELFDeps returns the absolute host paths of the shared libraries a
// dynamically linked binary loads, including its dynamic loader, sorted.
// A static binary has none and gets an empty list without running ldd. A
// shared object (an iptables extension, say) has no loader of its own but
// does have libraries: those are listed too.
//
// The paths are where the loader found each library on this host. Put in
// an image at those same paths, the loader finds them again through its
// built-in search directories, so the image needs no ld.so.cache. Symlinks
// such as /lib64/ld-linux-x86-64.so.2 stay at their own path; Write then
// copies the target's bytes there.
//
// glibc's ldd runs the binary's loader on it, so only pass binaries you
// would run anyway, such as the components the lab builds itself.
func ELFDeps(binary string) ([]string, error) {
	interp, needed, err := interpreter(binary)
	if err != nil {
		return nil, err
	}
	if interp == "" && !needed {
		return nil, nil
	}
	var stderr bytes.Buffer
	cmd := exec.Command("ldd", binary)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %s: %w", binary, strings.TrimSpace(stderr.String()), err)
	}
	deps, err := parseLDD(out)
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", binary, err)
	}
	// The kernel starts the loader by the exact PT_INTERP path, so it must
	// be there even if some ldd spelled it differently.
	if interp != "" && !slices.Contains(deps, interp) {
		deps = append(deps, interp)
		slices.Sort(deps)
	}
	return deps, nil
}

// interpreter returns the binary's PT_INTERP path ("" when it has none),
// and whether it needs shared libraries.
func interpreter(binary string) (string, bool, error) {
	f, err := elf.Open(binary)
	if err != nil {
		return "", false, fmt.Errorf("read elf %s: %w", binary, err)
	}
	defer f.Close()
	libs, _ := f.ImportedLibraries()
	needed := len(libs) > 0
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		buf := make([]byte, p.Filesz)
		if _, err := p.ReadAt(buf, 0); err != nil {
			return "", needed, fmt.Errorf("read elf %s: interpreter: %w", binary, err)
		}
		return string(bytes.TrimRight(buf, "\x00")), needed, nil
	}
	return "", needed, nil
}

// parseLDD reads glibc ldd output. Lines look like
//
//	linux-vdso.so.1 (0x00007ffd...)                    kernel-provided, skipped
//	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)  library
//	/lib64/ld-linux-x86-64.so.2 (0x…)                   loader
//	libfoo.so.1 => not found                             error
func parseLDD(out []byte) ([]string, error) {
	var deps, missing []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line == "statically linked" || line == "not a dynamic executable" {
			continue
		}
		target := line
		if name, resolved, ok := strings.Cut(line, "=>"); ok {
			target = strings.TrimSpace(resolved)
			if target == "not found" {
				missing = append(missing, strings.TrimSpace(name))
				continue
			}
		}
		if i := strings.Index(target, " ("); i >= 0 {
			target = target[:i]
		}
		if !strings.HasPrefix(target, "/") {
			continue // the vDSO has no file
		}
		if !slices.Contains(deps, target) {
			deps = append(deps, target)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: %w", strings.Join(missing, ", "), ErrMissingLibrary)
	}
	slices.Sort(deps)
	return deps, nil
}

// AddBinaryWithDeps adds the host binary at imagePath, and every shared
// library it needs at the library's host path, to spec. Entries already in
// spec with the same source are kept once, so several binaries sharing
// libc can be added in turn.
func AddBinaryWithDeps(spec *Spec, hostPath, imagePath string) error {
	deps, err := ELFDeps(hostPath)
	if err != nil {
		return err
	}
	if err := addFile(spec, File{Path: imagePath, Source: hostPath}); err != nil {
		return err
	}
	for _, dep := range deps {
		if err := addFile(spec, File{Path: dep, Source: dep}); err != nil {
			return err
		}
	}
	return nil
}

// addFile appends f unless an identical entry is already there.
func addFile(spec *Spec, f File) error {
	for _, have := range spec.Files {
		if have.Path != f.Path {
			continue
		}
		if have.Source == f.Source && have.Data == nil && have.Symlink == "" {
			return nil
		}
		return fmt.Errorf("file %s: already in the image from another source: %w", f.Path, ErrInvalidSpec)
	}
	spec.Files = append(spec.Files, f)
	return nil
}
