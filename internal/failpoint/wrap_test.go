package failpoint

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carotate/carotate/internal/node"
)

// TestReplaceFilesIsOneSideEffect: a batch is written by the node in one
// go, so a failpoint can fall before it or after it, never inside it.
func TestReplaceFilesIsOneSideEffect(t *testing.T) {
	for _, spec := range []string{"before:1", "after:1"} {
		t.Run(spec, func(t *testing.T) {
			root := t.TempDir()
			local, err := node.NewLocal("cp-1", root)
			if err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			c, err := Parse(spec, &log)
			if err != nil {
				t.Fatal(err)
			}
			var seen []string // what each file holds when the kill fires
			c.kill = func() {
				for _, name := range []string{"ca.crt", "ca.key"} {
					data, _ := os.ReadFile(filepath.Join(root, name))
					seen = append(seen, name+"="+string(data))
				}
			}
			ex := Executor(c, local)
			files := []node.FileWrite{
				{Path: "/ca.crt", Data: []byte("crt"), Mode: 0o644, Prev: node.Expect{Absent: true}},
				{Path: "/ca.key", Data: []byte("key"), Mode: 0o600, Prev: node.Expect{Absent: true}},
			}
			if err := ex.ReplaceFiles(context.Background(), files); err != nil {
				t.Fatal(err)
			}
			if err := ex.ReplaceFiles(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			if c.Count() != 1 {
				t.Errorf("counted %d side effects, want 1 (the empty batch is none)", c.Count())
			}
			want := "crt key"
			if spec == "before:1" {
				want = " "
			}
			got := strings.TrimPrefix(seen[0], "ca.crt=") + " " + strings.TrimPrefix(seen[1], "ca.key=")
			if got != want {
				t.Errorf("at the kill the files held %q, want %q", got, want)
			}
			if line := "side effect 1 (phase prepare): cp-1: write /ca.crt, /ca.key\n"; !strings.HasSuffix(log.String(), line) {
				t.Errorf("log %q does not end with %q", log.String(), line)
			}
		})
	}
}
