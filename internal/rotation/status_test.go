package rotation

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/node"
)

// TestNodeStage: a node is at a stage only when every file is; a node in
// transition between two stages is at neither, however many files are at
// each.
func TestNodeStage(t *testing.T) {
	tests := []struct {
		name       string
		files      int
		at         map[Stage]int
		changed    []string
		is         []Stage
		transition bool
		shown      string
	}{
		{name: "at trust", files: 12, at: map[Stage]int{Trusted: 12, Switched: 2}, is: []Stage{Trusted}, shown: "trust"},
		{name: "stages that agree", files: 3, at: map[Stage]int{Original: 3, Prepared: 3}, is: []Stage{Original, Prepared}, shown: "original = prepare"},
		{name: "between trust and switch", files: 12, at: map[Stage]int{Switched: 3, Trusted: 9}, transition: true,
			shown: "in transition (12 files: 3 at switch, 9 at trust)"},
		{name: "nearly at trust", files: 12, at: map[Stage]int{Trusted: 11, Prepared: 11, Original: 1}, transition: true,
			shown: "in transition (12 files: 11 at trust, 11 at prepare, 1 at original)"},
		{name: "changed outside carotate", files: 12, at: map[Stage]int{Trusted: 11}, changed: []string{"/etc/kubernetes/pki/ca.crt"},
			shown: "changed outside carotate: /etc/kubernetes/pki/ca.crt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := nodeStage(tt.files, tt.at, tt.changed)
			for _, s := range observedStages {
				want := false
				for _, w := range tt.is {
					want = want || w == s
				}
				if n.Is(s) != want {
					t.Errorf("Is(%s) = %v, want %v", s, n.Is(s), want)
				}
			}
			if n.InTransition() != tt.transition {
				t.Errorf("InTransition() = %v, want %v", n.InTransition(), tt.transition)
			}
			if n.String() != tt.shown {
				t.Errorf("String() = %q, want %q", n.String(), tt.shown)
			}
		})
	}
}

func TestNotAt(t *testing.T) {
	observed := map[string]NodeStage{
		"cp-1": nodeStage(12, map[Stage]int{Trusted: 12}, nil),
		"w-2":  nodeStage(4, map[Stage]int{Trusted: 3, Switched: 1}, nil),
		"w-1":  nodeStage(4, map[Stage]int{Trusted: 4}, []string{"/etc/kubernetes/kubelet.conf"}),
		"w-3":  nodeStage(4, map[Stage]int{Trusted: 4, Switched: 4}, nil),
	}
	if diff := cmp.Diff([]string{"w-1", "w-2"}, NotAt(observed, Trusted)); diff != "" {
		t.Errorf("not at trust (-want +got):\n%s", diff)
	}
}

// readlinker is a local node whose readlink(1) reads under its root, as
// the real one does on a node.
type readlinker struct{ *node.Local }

func (r readlinker) Run(ctx context.Context, argv []string, stdin io.Reader) (node.Result, error) {
	if len(argv) == 3 && argv[0] == "readlink" {
		t, err := os.Readlink(filepath.Join(r.Root(), argv[2]))
		return node.Result{Stdout: []byte(t + "\n")}, err
	}
	return r.Local.Run(ctx, argv, stdin)
}

// TestObserveStages: the files of a node, put at a stage, are observed at
// it; half moved on, the node is in transition and at neither stage; one
// file changed by hand is named.
func TestObserveStages(t *testing.T) {
	ctx := context.Background()
	m, nodes := fixture(t)
	w := nodes[1]
	root := t.TempDir()
	ex, err := node.NewLocal(w.Name, root)
	if err != nil {
		t.Fatal(err)
	}
	w.Exec = readlinker{ex}
	r := &Rotation{M: m, Nodes: []*Node{w}}
	put := func(s Stage, paths []string) {
		t.Helper()
		for _, p := range paths {
			want, err := m.At(w, p, s)
			if err != nil {
				t.Fatal(err)
			}
			host := filepath.Join(root, p)
			os.Remove(host)
			if err := os.MkdirAll(filepath.Dir(host), 0o700); err != nil {
				t.Fatal(err)
			}
			switch {
			case want.Absent:
			case want.Link != "":
				err = os.Symlink(want.Link, host)
			default:
				err = os.WriteFile(host, want.Data, 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	observe := func() NodeStage {
		t.Helper()
		obs, err := ObserveStages(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return obs[w.Name]
	}
	files := r.nodeFiles(w)

	put(Trusted, files)
	if got := observe(); !got.Is(Trusted) || got.Is(Switched) || got.InTransition() {
		t.Errorf("every file at trust, observed %s", got)
	}
	put(Switched, []string{caCert})
	got := observe()
	if got.Is(Trusted) || got.Is(Switched) || !got.InTransition() || !strings.HasPrefix(got.String(), "in transition") {
		t.Errorf("ca.crt at switch, the rest at trust: observed %s", got)
	}
	if diff := cmp.Diff([]string{w.Name}, NotAt(map[string]NodeStage{w.Name: got}, Trusted)); diff != "" {
		t.Errorf("a node in transition counts as at trust (-want +got):\n%s", diff)
	}
	if err := os.WriteFile(filepath.Join(root, kubeletConf), []byte("edited by hand"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := observe(); got.Is(Trusted) || got.InTransition() || !strings.Contains(got.String(), "changed outside carotate: "+kubeletConf) {
		t.Errorf("kubelet.conf edited: observed %s", got)
	}
}
