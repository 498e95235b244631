package rotation

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/carotate/carotate/internal/node"
	"github.com/carotate/carotate/internal/state"
)

// Node is a node the rotation touches, reached through its Executor.
type Node struct {
	Name         string
	IP           string
	ControlPlane bool
	// APIServer is where a control plane's kube-apiserver listens
	// (host:port), for the wait after it restarts.
	APIServer string
	Exec      node.Executor
	// AllowUnready lets the rotation go on while the node is NotReady: its
	// files are still changed, but nothing waits for it to be Ready.
	AllowUnready bool
}

// Current reads what path holds on the node now, in the form At returns.
func Current(ctx context.Context, ex node.Executor, p string) (Want, error) {
	dir, base := path.Split(p)
	entries, err := ex.ReadDir(ctx, path.Clean(dir))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Want{Absent: true}, nil
		}
		return Want{}, err
	}
	for _, e := range entries {
		if e.Name != base {
			continue
		}
		if e.Mode&fs.ModeSymlink != 0 {
			t, err := readlink(ctx, ex, p)
			return Want{Link: t}, err
		}
		data, err := ex.ReadFile(ctx, p)
		if err != nil {
			return Want{}, err
		}
		st, err := ex.Stat(ctx, p)
		if err != nil {
			return Want{}, err
		}
		return Want{Data: data, Mode: st.Mode.Perm()}, nil
	}
	return Want{Absent: true}, nil
}

// readlink runs readlink(1): the Executor has no readlink of its own, and
// a link is the one thing the rotation handles that is not a file.
func readlink(ctx context.Context, ex node.Executor, p string) (string, error) {
	res, err := ex.Run(ctx, []string{"readlink", "--", p}, nil)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(res.Stdout), "\n"), nil
}

// ensure makes path hold w and reports the change for the journal. It
// writes nothing when the content is already there.
func ensure(ctx context.Context, ex node.Executor, p string, w Want) (state.FileChange, bool, error) {
	changes, err := ensureAll(ctx, ex, []string{p}, []Want{w})
	if err != nil || len(changes) == 0 {
		return state.FileChange{Target: ex.Name() + ":" + p, After: digest(w)}, false, err
	}
	return changes[0], true, nil
}

// ensureAll makes each path hold its want, in order, and reports what it
// changed. Consecutive file writes go to the node as one batch
// (node.Executor.ReplaceFiles): written and checked first, then renamed
// back to back, so that a crash of carotate never leaves half of them
// changed. That is what keeps ca.crt's first certificate matching ca.key
// when switch replaces both. A removal or a link ends a batch, since its
// order relative to the writes matters (a link must point at a file that
// is already there).
func ensureAll(ctx context.Context, ex node.Executor, paths []string, wants []Want) ([]state.FileChange, error) {
	var changes, pending []state.FileChange
	var batch []node.FileWrite
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := ex.ReplaceFiles(ctx, batch); err != nil {
			return err
		}
		changes, pending, batch = append(changes, pending...), nil, nil
		return nil
	}
	for i, p := range paths {
		w := wants[i]
		cur, err := Current(ctx, ex, p)
		if err != nil {
			return changes, err
		}
		fc := state.FileChange{Target: ex.Name() + ":" + p, Before: digest(cur), After: digest(w)}
		if cur.equal(w) && (w.Absent || w.Link != "" || cur.Mode == w.Mode || w.Mode == 0) {
			continue
		}
		switch {
		case w.Absent:
			if err := flush(); err != nil {
				return changes, err
			}
			if err := ex.Remove(ctx, p); err != nil {
				return changes, err
			}
			changes = append(changes, fc)
		case w.Link != "":
			if err := flush(); err != nil {
				return changes, err
			}
			if err := symlink(ctx, ex, w.Link, p); err != nil {
				return changes, err
			}
			changes = append(changes, fc)
		default:
			if w.Secret || strings.HasPrefix(p, CarotateDir+"/") {
				if err := ex.MkdirAll(ctx, path.Dir(p), 0o700); err != nil {
					return changes, err
				}
			}
			mode := w.Mode
			if mode == 0 {
				mode = SecretMode
			}
			batch = append(batch, node.FileWrite{Path: p, Data: w.Data, Mode: mode, Prev: expectOf(cur)})
			pending = append(pending, fc)
		}
	}
	return changes, flush()
}

// symlink replaces p by a link to target atomically: a dot-named link
// beside it, renamed over it, as the kubelet does for
// kubelet-client-current.pem, then the directory synced, since the rename
// is durable only then. It is one command, so one side effect: a crash
// either leaves the old link or the new one, and a resume never redoes
// half of it.
func symlink(ctx context.Context, ex node.Executor, target, p string) error {
	tmp := path.Join(path.Dir(p), ".carotate-"+path.Base(p))
	_, err := ex.Run(ctx, []string{"sh", "-c", symlinkScript, "sh", target, tmp, p, path.Dir(p)}, nil)
	return err
}

// symlinkScript takes target, temporary link, link and its directory as
// positional parameters, never spliced into the script.
const symlinkScript = `ln -sfn -- "$1" "$2" && mv -Tf -- "$2" "$3" && sync -- "$4"`

// expectOf is the condition a write puts on its target: that it still
// holds what the step read just before, so that a write landing late (a
// session hung by a partition) never replaces what a resumed run wrote.
func expectOf(cur Want) node.Expect {
	switch {
	case cur.Absent:
		return node.Expect{Absent: true}
	case cur.Link != "":
		return node.Expect{Any: true} // a link replaced by a file: the link is ours to replace
	default:
		return node.Expect{SHA256: digest(cur)}
	}
}

// digest names content in the journal: the sha256 of a file, "link:target"
// for a link, "" when absent.
func digest(w Want) string {
	switch {
	case w.Absent:
		return ""
	case w.Link != "":
		return "link:" + w.Link
	default:
		s := sha256.Sum256(w.Data)
		return hex.EncodeToString(s[:])
	}
}

// matches reports whether the node already holds w at p.
func matches(ctx context.Context, ex node.Executor, p string, w Want) (bool, error) {
	cur, err := Current(ctx, ex, p)
	if err != nil {
		return false, err
	}
	return cur.equal(w), nil
}

// describeWant is a short human form of content for the plan.
func describeWant(w Want) string {
	switch {
	case w.Absent:
		return "absent"
	case w.Link != "":
		return "→ " + w.Link
	case bytes.Contains(w.Data, []byte("PRIVATE KEY")):
		return fmt.Sprintf("private key (sha256 %s)", digest(w)[:12])
	default:
		return fmt.Sprintf("%d bytes (sha256 %s)", len(w.Data), digest(w)[:12])
	}
}
