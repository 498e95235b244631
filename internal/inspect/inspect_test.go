package inspect

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/node"
)

// downExecutor is a node whose every operation fails, as an SSH node does
// when it cannot be reached.
type downExecutor struct{ node.Executor }

func (downExecutor) Name() string { return "w-9" }
func (downExecutor) Stat(context.Context, string) (node.FileInfo, error) {
	return node.FileInfo{}, &node.Error{Node: "w-9", Op: "connect", Err: errors.New("dial tcp 10.0.0.99:22: connect: no route to host")}
}
func (downExecutor) Run(context.Context, []string, io.Reader) (node.Result, error) {
	return node.Result{}, errors.New("unreachable")
}

func TestNodeUnreachable(t *testing.T) {
	n := Node(context.Background(), downExecutor{}, Options{})
	if n.Reachable || n.Name != "w-9" {
		t.Fatalf("got Reachable=%v Name=%q, want an unreachable w-9", n.Reachable, n.Name)
	}
	for _, want := range []string{"node w-9 could not be inspected", "no route to host", "check that it is up and reachable"} {
		if !strings.Contains(n.Error, want) {
			t.Errorf("Error %q does not say %q", n.Error, want)
		}
	}
}

func TestParseEpoch(t *testing.T) {
	tests := []struct {
		name, in string
		want     time.Time
		wantErr  bool
	}{
		{"gnu date", "1773489600.123456789", time.Unix(1773489600, 123456789), false},
		{"short fraction", "1773489600.5", time.Unix(1773489600, 500000000), false},
		{"no fraction", "1773489600", time.Unix(1773489600, 0), false},
		{"busybox prints %N literally", "1773489600.%N", time.Time{}, true},
		{"garbage", "Sat Mar 14", time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEpoch(tt.in)
			if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
				t.Errorf("parseEpoch(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
