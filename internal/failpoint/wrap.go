package failpoint

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"strings"

	"github.com/carotate/carotate/internal/node"
)

// Executor counts the side effects made through ex. Nil c returns ex.
func Executor(c *Counter, ex node.Executor) node.Executor {
	if c == nil {
		return ex
	}
	return &executor{Executor: ex, c: c}
}

type executor struct {
	node.Executor
	c *Counter
}

func (e *executor) what(op, p string) string { return e.Name() + ": " + op + " " + p }

func (e *executor) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode) error {
	return e.c.Do(e.what("write", p), func() error { return e.Executor.WriteFile(ctx, p, data, mode) })
}

func (e *executor) ReplaceFile(ctx context.Context, p string, data []byte, mode fs.FileMode, prev node.Expect) error {
	return e.c.Do(e.what("write", p), func() error { return e.Executor.ReplaceFile(ctx, p, data, mode, prev) })
}

// ReplaceFiles is one side effect, however many files it writes: the node
// renames them back to back, so a crash cannot fall between them.
func (e *executor) ReplaceFiles(ctx context.Context, files []node.FileWrite) error {
	if len(files) == 0 {
		return e.Executor.ReplaceFiles(ctx, files) // writes nothing: not a side effect
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	return e.c.Do(e.what("write", strings.Join(paths, ", ")), func() error { return e.Executor.ReplaceFiles(ctx, files) })
}

func (e *executor) Remove(ctx context.Context, p string) error {
	return e.c.Do(e.what("remove", p), func() error { return e.Executor.Remove(ctx, p) })
}

func (e *executor) MkdirAll(ctx context.Context, p string, mode fs.FileMode) error {
	st, err := e.Executor.Stat(ctx, p)
	if err == nil && st.Exists {
		return e.Executor.MkdirAll(ctx, p, mode) // nothing to make: not a side effect
	}
	return e.c.Do(e.what("mkdir", p), func() error { return e.Executor.MkdirAll(ctx, p, mode) })
}

// readOnly are the commands carotate runs only to look, or to flush what
// is already written.
var readOnly = map[string]bool{"readlink": true, "sync": true, "date": true, "cat": true, "stat": true, "journalctl": true, "crictl": true, "sha256sum": true}

func (e *executor) Run(ctx context.Context, argv []string, stdin io.Reader) (node.Result, error) {
	if len(argv) == 0 || readOnly[argv[0]] {
		return e.Executor.Run(ctx, argv, stdin)
	}
	var res node.Result
	err := e.c.Do(e.what("run", strings.Join(argv, " ")), func() error {
		var err error
		res, err = e.Executor.Run(ctx, argv, stdin)
		return err
	})
	return res, err
}

// Transport counts the API writes made through rt: every request that is
// not a read, except renewals of the rotation lock, whose number depends on
// how long the run takes, and reviews (TokenReview, SubjectAccessReview),
// which create nothing.
func Transport(c *Counter, lockPath string) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		if c == nil {
			return rt
		}
		return roundTripper{rt: rt, c: c, lockPath: lockPath}
	}
}

type roundTripper struct {
	rt       http.RoundTripper
	c        *Counter
	lockPath string
}

func (t roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	switch {
	case req.Method == http.MethodGet || req.Method == http.MethodHead || req.Method == http.MethodOptions,
		strings.HasPrefix(req.URL.Path, t.lockPath),
		strings.HasSuffix(req.URL.Path, "reviews"):
		return t.rt.RoundTrip(req)
	}
	var resp *http.Response
	err := t.c.Do("api: "+req.Method+" "+req.URL.Path, func() error {
		var err error
		resp, err = t.rt.RoundTrip(req)
		return err
	})
	return resp, err
}
