package image

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"time"
)

// epoch is every entry's mtime. A fixed time keeps the layer digest a
// function of the content alone.
func epoch() time.Time { return time.Unix(0, 0) }

// layerEntry is one resolved tar entry of the layer.
type layerEntry struct {
	path     string // clean, absolute: "/usr/bin/etcd"
	typeflag byte
	mode     int64
	size     int64
	source   string
	data     []byte
	linkname string
}

// planLayer validates files and resolves them, with every parent
// directory, into entries sorted by path. Sorting by path puts each
// directory before its children, which extractors expect.
func planLayer(files []File) ([]layerEntry, error) {
	byPath := make(map[string]layerEntry, len(files))
	for _, f := range files {
		e, err := resolve(f)
		if err != nil {
			return nil, err
		}
		if _, dup := byPath[e.path]; dup {
			return nil, fmt.Errorf("file %s: listed twice: %w", e.path, ErrInvalidSpec)
		}
		byPath[e.path] = e
	}
	for p := range byPath {
		for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
			parent, ok := byPath[dir]
			if !ok {
				byPath[dir] = layerEntry{path: dir, typeflag: tar.TypeDir, mode: 0o755}
				continue
			}
			if parent.typeflag != tar.TypeDir {
				return nil, fmt.Errorf("file %s: parent %s is not a directory: %w", p, dir, ErrInvalidSpec)
			}
		}
	}
	entries := make([]layerEntry, 0, len(byPath))
	for _, e := range byPath {
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].path < entries[j].path })
	return entries, nil
}

// resolve turns one File into a layer entry, reading the host file's
// size and mode now so that both layer passes agree on the headers.
func resolve(f File) (layerEntry, error) {
	if f.Path == "" || f.Path[0] != '/' || path.Clean(f.Path) != f.Path || f.Path == "/" {
		return layerEntry{}, fmt.Errorf("file path %q must be absolute and clean: %w", f.Path, ErrInvalidSpec)
	}
	e := layerEntry{path: f.Path, mode: tarMode(f.Mode)}
	sources := 0
	for _, set := range []bool{f.Source != "", f.Data != nil, f.Symlink != ""} {
		if set {
			sources++
		}
	}
	switch {
	case sources > 1:
		return layerEntry{}, fmt.Errorf("file %s: set only one of Source, Data and Symlink: %w", f.Path, ErrInvalidSpec)
	case f.Source != "":
		st, err := os.Stat(f.Source)
		if err != nil {
			return layerEntry{}, fmt.Errorf("file %s: %w", f.Path, err)
		}
		if !st.Mode().IsRegular() {
			return layerEntry{}, fmt.Errorf("file %s: source %s is not a regular file: %w", f.Path, f.Source, ErrInvalidSpec)
		}
		e.typeflag, e.source, e.size = tar.TypeReg, f.Source, st.Size()
		if f.Mode == 0 {
			e.mode = tarMode(st.Mode())
		}
	case f.Data != nil:
		e.typeflag, e.data, e.size = tar.TypeReg, f.Data, int64(len(f.Data))
		if f.Mode == 0 {
			e.mode = 0o644
		}
	case f.Symlink != "":
		e.typeflag, e.linkname = tar.TypeSymlink, f.Symlink
		if f.Mode == 0 {
			e.mode = 0o777
		}
	case f.Mode.IsDir():
		e.typeflag = tar.TypeDir
		if f.Mode.Perm() == 0 {
			e.mode |= 0o755
		}
	default:
		return layerEntry{}, fmt.Errorf("file %s: no Source, Data or Symlink and not a directory: %w", f.Path, ErrInvalidSpec)
	}
	return e, nil
}

// tarMode keeps the bits a tar header carries: permissions plus setuid,
// setgid and sticky. The file type comes from the typeflag instead.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// measureLayer returns the size and diff ID the layer will have.
func measureLayer(entries []layerEntry) (int64, string, error) {
	var c countingWriter
	diffID, err := writeLayer(&c, entries)
	return c.n, diffID, err
}

// writeLayer writes the layer tar to w and returns its diff ID.
func writeLayer(w io.Writer, entries []layerEntry) (string, error) {
	h := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(w, h))
	for _, e := range entries {
		if err := writeEntry(tw, e); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func writeEntry(tw *tar.Writer, e layerEntry) error {
	name := e.path[1:]
	var hdr *tar.Header
	switch e.typeflag {
	case tar.TypeDir:
		hdr = dirHeader(name+"/", e.mode)
	case tar.TypeSymlink:
		hdr = &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: e.linkname, Mode: e.mode, ModTime: epoch()}
	default:
		hdr = fileHeader(name, e.size, e.mode)
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", e.path, err)
	}
	if e.typeflag != tar.TypeReg {
		return nil
	}
	if e.source == "" {
		_, err := tw.Write(e.data)
		return err
	}
	f, err := os.Open(e.source)
	if err != nil {
		return fmt.Errorf("%s: %w", e.path, err)
	}
	defer f.Close()
	// tar.Writer refuses more bytes than the header announced, and Close
	// or the next header refuses fewer, so a source that changed size
	// since planLayer fails here instead of producing a corrupt layer.
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("%s: copy %s: %w", e.path, e.source, err)
	}
	return nil
}

func dirHeader(name string, mode int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: epoch()}
}

func fileHeader(name string, size, mode int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: mode, ModTime: epoch()}
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
