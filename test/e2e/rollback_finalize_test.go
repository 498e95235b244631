package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/carotate/carotate/internal/lab"
	"github.com/carotate/carotate/internal/lock"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/rotation"
	"github.com/carotate/carotate/internal/workload"
)

// rollbackFromFinalize rotates, kills finalize once the control plane
// trusts only the new CA (so kube-controller-manager publishes a new-only
// kube-root-ca.crt), restarts a workload so that its pods read that
// bundle, and rolls back. The rollback is stopped once by taking its lock
// away, and resumed with --force-unlock. It must end byte-equal to the
// files before the rotation, with the workload restarted again by
// carotate so that it trusts the old CA the apiserver serves again.
func rollbackFromFinalize(t *testing.T, r *rotator, before map[string]string) {
	l := r.l
	ctx := context.Background()
	if res := r.run("rotate", "--yes"); res.code != 0 {
		t.Fatalf("rotate: exit %d", res.code)
	}
	rec, _ := r.record()

	killed := r.runUntilStep(t, "control plane trusts only the new CA", "finalize", "--yes", "--output", "json", "--reload-wait", "1s")
	if !killed {
		t.Fatal("finalize never reached the control plane step")
	}
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	newOnly := pki.BuildBundle(r.material().New[model.ClusterCA].Cert)
	waitFor(t, "kube-root-ca.crt new-only in "+lab.ProbeNamespace, 3*time.Minute, func() (bool, error) {
		cm, err := c.CoreV1().ConfigMaps(lab.ProbeNamespace).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return cm.Data["ca.crt"] == string(newOnly), nil
	})
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"e2e/restarted":%q}}}}}`, time.Now().Format(time.RFC3339Nano))
	if _, err := c.AppsV1().Deployments(lab.ProbeNamespace).Patch(ctx, lab.ProbeDeployment, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, lab.ProbeDeployment+" rolled out with the new-only bundle", 3*time.Minute, func() (bool, error) {
		d, err := c.AppsV1().Deployments(lab.ProbeNamespace).Get(ctx, lab.ProbeDeployment, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		return d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == want && d.Status.AvailableReplicas == want && d.Status.Replicas == want, nil
	})

	intruder := "intruder@e2e pid 1 rotation r-intruder"
	t.Run("a rollback whose lock is taken away stops", func(t *testing.T) {
		cmd := r.command("rollback", "--yes")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		// The killed finalize left its lease behind; wait for this process's.
		mine := fmt.Sprintf(" pid %d ", cmd.Process.Pid)
		waitFor(t, "the rollback holds the lock", time.Minute, func() (bool, error) {
			le, err := c.CoordinationV1().Leases(lock.Namespace).Get(ctx, lock.Name, metav1.GetOptions{})
			return err == nil && le.Spec.HolderIdentity != nil && strings.Contains(*le.Spec.HolderIdentity, mine), nil
		})
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			le, err := c.CoordinationV1().Leases(lock.Namespace).Get(ctx, lock.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			now := metav1.NewMicroTime(time.Now())
			le.Spec.HolderIdentity, le.Spec.RenewTime = &intruder, &now
			_, err = c.CoordinationV1().Leases(lock.Namespace).Update(ctx, le, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		took := time.Now()
		select {
		case <-exited:
		case <-time.After(3 * time.Minute):
			cmd.Process.Kill()
			<-exited
			t.Fatalf("the rollback went on for 3 minutes after its lock was taken:\n%s", tail(stdout.String(), 2000))
		}
		t.Logf("$ carotate rollback (lock taken away; stopped after %s, exit %d)\n%s%s", time.Since(took).Round(time.Second),
			cmd.ProcessState.ExitCode(), progressOnly(stdout.String()), tail(stderr.String(), 1500))
		if cmd.ProcessState.ExitCode() == 0 {
			t.Errorf("the rollback finished although its lock was taken away")
		}
		if !strings.Contains(stderr.String(), intruder) {
			t.Errorf("the error does not name who holds the lock now (%q):\n%s", intruder, stderr.String())
		}
		checkInvariants(t, r, "after the rollback stopped on a lost lock")
	})
	t.Run("the rollback resumes with --force-unlock", func(t *testing.T) {
		if res := r.run("rollback", "--yes", "--force-unlock", intruder); res.code != 0 {
			t.Fatalf("rollback: exit %d", res.code)
		}
		requireSameFiles(t, "after the rollback from finalize", before, snapshot(t, l))
		if err := l.WaitHealthy(ctx, 3*time.Minute); err != nil {
			t.Error(err)
		}
		c, err := l.Client() // admin.conf trusts the old CA again
		if err != nil {
			t.Fatal(err)
		}
		d, err := c.AppsV1().Deployments(lab.ProbeNamespace).Get(ctx, lab.ProbeDeployment, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := rec.RotationID + "/rollback-" + rotation.PhaseFinalize
		if got := d.Spec.Template.Annotations[workload.RestartedAtAnnotation]; got != want {
			t.Errorf("%s was not restarted by the rollback: %s=%q, want %q", lab.ProbeDeployment, workload.RestartedAtAnnotation, got, want)
		}
		checkProbesSucceed(t, l)
	})
}

// runUntilStep runs carotate with --output json and SIGKILLs it as soon
// as it reports step done, as a crash right after that step would.
func (r *rotator) runUntilStep(t *testing.T, step string, args ...string) (killed bool) {
	t.Helper()
	cmd := r.command(args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var seen strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		seen.WriteString(sc.Text() + "\n")
		var e struct {
			Step    string `json:"step"`
			Outcome string `json:"outcome"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Step == step && (e.Outcome == "changed" || e.Outcome == "unchanged") {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
			break
		}
	}
	io.Copy(io.Discard, stdout)
	cmd.Wait()
	t.Logf("$ carotate %s (SIGKILL after %q: %v)\n%s%s", strings.Join(args, " "), step, killed, tail(seen.String(), 3000), tail(stderr.String(), 1500))
	return killed
}

// material loads the rotation's material from the state directory, as
// carotate does on resume.
func (r *rotator) material() *rotation.Material {
	r.t.Helper()
	store, rec := r.store()
	m, err := store.Load(rec.RotationID)
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

// requireFinalizedBytes compares every file a rotation changes, on every
// node, with what the material says it holds once finalized: the bytes an
// uninterrupted rotation with the same material writes.
func requireFinalizedBytes(t *testing.T, l *lab.Lab, m *rotation.Material) {
	t.Helper()
	for _, n := range l.Nodes {
		rn := &rotation.Node{Name: n.Name, ControlPlane: n.ControlPlane}
		for _, p := range rotation.BackupPaths(n.ControlPlane, rotation.DefaultRoots()) {
			want, err := m.At(rn, p, rotation.Finalized)
			if err != nil {
				t.Fatal(err)
			}
			host, err := l.NodePath(n.Name, p)
			if err != nil {
				t.Fatal(err)
			}
			target, lerr := os.Readlink(host)
			data, rerr := os.ReadFile(host)
			switch {
			case want.Absent:
				if rerr == nil || lerr == nil {
					t.Errorf("%s:%s exists, an uninterrupted rotation removes it", n.Name, p)
				}
			case want.Link != "":
				if lerr != nil || target != want.Link {
					t.Errorf("%s:%s links to %q (%v), an uninterrupted rotation links it to %q", n.Name, p, target, lerr, want.Link)
				}
			case rerr != nil:
				t.Errorf("%s:%s: %v", n.Name, p, rerr)
			case !bytes.Equal(data, want.Data):
				t.Errorf("%s:%s differs from what an uninterrupted rotation writes", n.Name, p)
			}
		}
	}
}
