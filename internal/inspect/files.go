package inspect

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/node"
)

// walk records every file in dir, into subdirectories when recursive. A
// missing dir is a warning only when required.
func (in *inspector) walk(ctx context.Context, dir string, recursive, required bool) {
	entries, err := in.ex.ReadDir(ctx, dir)
	if err != nil {
		if required || !errors.Is(err, fs.ErrNotExist) {
			in.warn("cannot list %s: %v", dir, err)
		}
		return
	}
	for _, e := range entries {
		p := path.Join(dir, e.Name)
		if e.Mode.IsDir() {
			if recursive {
				in.walk(ctx, p, true, true)
			}
			continue
		}
		in.file(ctx, p)
	}
}

// file records the file at p once and returns it; nil when it is missing
// or unreadable (a warning says which).
func (in *inspector) file(ctx context.Context, p string) *model.File {
	f, data := in.record(ctx, p)
	clear(data) // it may be a key
	return f
}

// record is file that also returns the content the first time p is read
// (nil afterwards), for callers that parse it further. The caller clears it
// if it may be a key.
func (in *inspector) record(ctx context.Context, p string) (*model.File, []byte) {
	if f, ok := in.files[p]; ok {
		return f, nil
	}
	entry, found := in.lstat(ctx, p)
	if !found {
		in.warn("%s is referenced but does not exist", p)
		return nil, nil
	}
	data, err := in.ex.ReadFile(ctx, p)
	if err != nil {
		in.warn("cannot read %s: %v", p, err)
		return nil, nil
	}
	f := classify(in.source(p), p, data)
	f.Mode = uint32(entry.Mode.Perm())
	if entry.Mode&fs.ModeSymlink != 0 {
		f.LinkTarget = in.readlink(ctx, p)
		if st, err := in.ex.Stat(ctx, p); err == nil && st.Exists {
			f.Mode = uint32(st.Mode.Perm())
		}
	}
	in.files[p] = &f
	return &f, data
}

// lstat finds p in its directory's listing, which does not follow links.
func (in *inspector) lstat(ctx context.Context, p string) (node.DirEntry, bool) {
	dir, name := path.Split(p)
	dir = path.Clean(dir)
	listing, ok := in.dirs[dir]
	if !ok {
		listing = map[string]node.DirEntry{}
		entries, err := in.ex.ReadDir(ctx, dir)
		if err == nil {
			for _, e := range entries {
				listing[e.Name] = e
			}
		}
		in.dirs[dir] = listing
	}
	e, ok := listing[name]
	return e, ok
}

// readlink returns a link's target. The Executor interface has no readlink:
// a Local executor reads it under its root; others run readlink(1).
func (in *inspector) readlink(ctx context.Context, p string) string {
	if l, ok := in.ex.(*node.Local); ok {
		target, err := os.Readlink(filepath.Join(l.Root(), filepath.FromSlash(p)))
		if err != nil {
			in.warn("cannot read the link %s: %v", p, errors.Unwrap(err))
			return ""
		}
		return target
	}
	res, err := in.ex.Run(ctx, []string{"readlink", "--", p}, nil)
	if err != nil {
		in.warn("cannot read the link %s: %v", p, err)
		return ""
	}
	return strings.TrimSpace(string(res.Stdout))
}
