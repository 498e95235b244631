package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/failpoint"
	"github.com/carotate/carotate/internal/lab"
	"github.com/carotate/carotate/internal/lab/labtest"
)

// TestSoakCrashAtEverySideEffect kills a rotation at every one of its side
// effects, in all four phases, resuming after each kill: a resumed process
// counts its side effects afresh, so "after:1" makes one more side effect
// and dies, and "before:2" makes one and dies just before the next. Two
// rotations of a 1+2 lab, one per walk, each checked against the
// invariants at every kill and against the bytes an uninterrupted rotation
// writes at the end. It runs only with CAROTATE_SOAK=1 (`make soak`);
// CAROTATE_SOAK_WALK=after:1 or before:2 runs one of the two walks.
func TestSoakCrashAtEverySideEffect(t *testing.T) {
	if os.Getenv("CAROTATE_SOAK") != "1" {
		t.Skip("the soak runs with CAROTATE_SOAK=1 (make soak)")
	}
	l := labtest.Start(t, lab.Options{Name: "soak", Subnet: "219.0", ControlPlanes: 1, Workers: 2})
	if err := l.WaitHealthy(context.Background(), 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	r := newRotator(t, l)
	only := os.Getenv("CAROTATE_SOAK_WALK") // "after:1" or "before:2" runs one walk
	for _, walk := range []struct{ when, n string }{{failpoint.After, "1"}, {failpoint.Before, "2"}} {
		if only != "" && only != walk.when+":"+walk.n {
			continue
		}
		t.Run(walk.when+":"+walk.n, func(t *testing.T) {
			r.t = t
			before := snapshot(t, l)
			oldAdmin, err := os.ReadFile(l.Kubeconfig())
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			kills := 0
			for _, phase := range []string{"prepare", "trust", "switch", "finalize"} {
				args := []string{"rotate", "--yes", "--until", phase}
				if phase == "finalize" {
					args = []string{"finalize", "--yes"}
				}
				phaseStart, phaseKills := time.Now(), kills
				for i := 0; ; i++ {
					if i == 300 {
						t.Fatalf("%s: still killed after 300 runs", phase)
					}
					k := kill{phase: phase, when: walk.when}
					k.n = map[string]int{"1": 1, "2": 2}[walk.n]
					killed, res := r.runKilled(k, args...)
					if !killed {
						if res.code != 0 {
							t.Fatalf("%s failed without being killed: exit %d", strings.Join(args, " "), res.code)
						}
						break
					}
					kills++
					checkInvariants(t, r, "after "+lastFailpointLine(res.stderr))
					if t.Failed() {
						t.FailNow()
					}
				}
				t.Logf("SOAK %s:%s %s: %d kills in %s", walk.when, walk.n, phase, kills-phaseKills, time.Since(phaseStart).Round(time.Second))
			}
			t.Logf("SOAK %s:%s: %d kills, %s", walk.when, walk.n, kills, time.Since(start).Round(time.Second))
			requireFinalizedBytes(t, l, r.material())
			checkAfterRotation(t, l, r, before, oldAdmin)
		})
	}
}
