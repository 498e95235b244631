package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/carotate/carotate/internal/cli"
	"github.com/carotate/carotate/internal/clusterstatus"
	"github.com/carotate/carotate/internal/lab"
	"github.com/carotate/carotate/internal/lab/labtest"
	"github.com/carotate/carotate/internal/lock"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/rotation"
)

// TestRotateOneControlPlane rotates the CAs of a 1+2 kubeadm cluster: the
// refusals first; rollback from after prepare and trust; a rollback from a
// partly run finalize, stopped once by a lost lock and resumed; then the
// crash matrix, a rotation killed at random side effects of all four
// phases and resumed after each kill; a rerun that changes nothing;
// everything the cluster must do after; and last a renewal of the new CAs
// (checkRenewal).
func TestRotateOneControlPlane(t *testing.T) {
	l := labtest.Start(t, lab.Options{Name: "rota", Subnet: "217.0", ControlPlanes: 1, Workers: 2})
	ctx := context.Background()
	if err := l.WaitHealthy(ctx, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	r := newRotator(t, l)
	cp := l.ControlPlaneNodes()[0].Name
	before := snapshot(t, l)
	oldAdmin, err := os.ReadFile(l.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the plan is the golden one", func(t *testing.T) { checkPlanGolden(t, r, "1+2") })
	t.Run("refusals change nothing", func(t *testing.T) {
		r.t = t
		refused := func(t *testing.T, res result, mention ...string) {
			t.Helper()
			if res.code != cli.ExitBlocking {
				t.Errorf("exit %d, want %d (refused)", res.code, cli.ExitBlocking)
			}
			for _, m := range mention {
				if !strings.Contains(res.stderr, m) {
					t.Errorf("the error does not mention %q:\n%s", m, res.stderr)
				}
			}
			requireSameFiles(t, "after a refusal", before, snapshot(t, l))
			if rec, ok := r.record(); ok {
				t.Errorf("a refused run left a rotation record: %+v", rec)
			}
			// Nor anything on this machine: no state directory, no key.
			if entries, _ := os.ReadDir(r.stateDir); len(entries) > 0 {
				t.Errorf("a refused run created %s in the state directory %s", entries[0].Name(), r.stateDir)
			}
			if _, err := os.Stat(r.backupKey); err == nil {
				t.Errorf("a refused run created the backup key %s", r.backupKey)
			}
		}
		t.Run("a stray file in manifests/", func(t *testing.T) {
			stray, _ := l.NodePath(cp, "/etc/kubernetes/manifests/notes.txt")
			if err := os.WriteFile(stray, []byte("not a pod\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			res := r.run("rotate", "--yes")
			os.Remove(stray)
			refused(t, res, "notes.txt")
		})
		t.Run("an imported CA whose key does not match", func(t *testing.T) {
			now := time.Now()
			a, err := pki.GenerateCA(pki.GenerateOptions{Now: now, CommonName: "import-a"})
			if err != nil {
				t.Fatal(err)
			}
			b, err := pki.GenerateCA(pki.GenerateOptions{Now: now, CommonName: "import-b"})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			keyPEM, _ := b.Key.MarshalPEM()
			os.WriteFile(filepath.Join(dir, "ca.crt"), a.CertPEM(), 0o600)
			os.WriteFile(filepath.Join(dir, "ca.key"), keyPEM, 0o600)
			res := r.run("rotate", "--yes", "--ca-cert", filepath.Join(dir, "ca.crt"), "--ca-key", filepath.Join(dir, "ca.key"))
			refused(t, res, "--ca-cert/--ca-key", "key")
		})
		t.Run("a rotation lock held by another carotate", func(t *testing.T) {
			c, err := l.Client()
			if err != nil {
				t.Fatal(err)
			}
			other := lock.Holder{User: "bob", Host: "elsewhere", PID: 4242, RotationID: "r-other"}
			held, err := lock.Acquire(ctx, c, other, 2*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			res := r.run("rotate", "--yes")
			if err := held.Release(ctx); err != nil {
				t.Fatal(err)
			}
			refused(t, res, "bob@elsewhere pid 4242")
			// The lock is taken before anything is gathered: the refusal
			// comes without a plan (it took 19 s, after a full plan, when
			// the lock came last).
			if strings.Contains(res.stdout, "Plan for rotation") {
				t.Errorf("a refused second run printed a plan:\n%s", res.stdout)
			}
			t.Logf("refused by the lock in %s", res.took.Round(10*time.Millisecond))
		})
		t.Run("no --backup-key for a new rotation", func(t *testing.T) {
			without := *r
			without.t, without.backupKey = t, ""
			refused(t, without.run("rotate", "--yes"), "--backup-key")
		})
		t.Run("a backup key inside the state directory", func(t *testing.T) {
			inside := *r
			inside.t, inside.backupKey = t, filepath.Join(r.stateDir, "backup.key")
			refused(t, inside.run("rotate", "--yes"), inside.backupKey, "inside the state directory")
			if _, err := os.Stat(inside.backupKey); err == nil {
				t.Errorf("the refused run created %s", inside.backupKey)
			}
		})
		t.Run("a NotReady node", func(t *testing.T) {
			worker := "worker-2"
			if _, err := l.Systemctl(worker, "stop", "kubelet"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, worker+" NotReady", 3*time.Minute, func() (bool, error) { return nodeReadyIs(ctx, l, worker, false) })
			res := r.run("rotate", "--yes")
			if _, err := l.Systemctl(worker, "start", "kubelet"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, worker+" Ready", 3*time.Minute, func() (bool, error) { return nodeReadyIs(ctx, l, worker, true) })
			refused(t, res, worker, "--allow-unready")
		})
	})
	r.t = t
	if t.Failed() {
		t.FailNow()
	}

	// The rollback after trust rotates the service-account key too: with
	// one control plane the apiserver signs with the new key from trust,
	// so the pods restarted since hold tokens only the new key verifies,
	// and the rollback must bring them back to the old key's before sa.pub
	// drops the new one.
	for _, until := range []string{"prepare", "trust"} {
		t.Run("rollback after "+until, func(t *testing.T) {
			r.t = t
			args := []string{"rotate", "--yes", "--until", until}
			sa := until == "trust"
			if sa {
				args = append(args, saRoots)
			}
			if res := r.run(args...); res.code != 0 {
				t.Fatalf("rotate --until %s: exit %d", until, res.code)
			}
			var trustToken string
			if sa {
				trustToken = createToken(t, l.Kubeconfig()) // signed by the new key
			}
			rec, _ := r.record()
			if rec.Phase != until {
				t.Errorf("record says %q after rotate --until %s", rec.Phase, until)
			}
			status := r.run("status")
			for _, n := range l.Nodes {
				if !strings.Contains(status.stdout, n.Name) || !regexpLine(status.stdout, n.Name, until) {
					t.Errorf("status does not show %s at %s:\n%s", n.Name, until, status.stdout)
				}
			}
			checkStatusDocument(t, r.run("status", "-o", "yaml"), rec.RotationID, until, len(l.Nodes))
			checkStatusInCluster(t, l, rec.RotationID, "rotate", until)
			if res := r.run("rollback", "--yes"); res.code != 0 {
				t.Fatalf("rollback: exit %d", res.code)
			}
			checkStatusInCluster(t, l, rec.RotationID, "rollback", "rolled-back")
			requireSameFiles(t, "after rollback from "+until, before, snapshot(t, l))
			if err := l.WaitHealthy(ctx, 3*time.Minute); err != nil {
				t.Errorf("after rollback from %s: %v", until, err)
			}
			if sa {
				// The probes' own tokens (their pods restarted in trust,
				// and their kubelets in the rollback) authenticate again.
				checkProbesSucceedNow(t, l)
				if tokenAuthenticates(t, l.Kubeconfig(), trustToken) {
					t.Error("after the rollback the apiserver still accepts a token signed by the new sa.key")
				}
				if !tokenAuthenticates(t, l.Kubeconfig(), createToken(t, l.Kubeconfig())) {
					t.Error("after the rollback the apiserver rejects a token it just issued")
				}
			}
		})
		r.t = t
		if t.Failed() {
			t.FailNow()
		}
	}

	t.Run("rollback from a partly run finalize, stopped by a lost lock and resumed", func(t *testing.T) {
		r.t = t
		rollbackFromFinalize(t, r, before)
	})
	r.t = t
	if t.Failed() {
		t.FailNow()
	}

	probes := startProbeRecorder(t, l)
	rotationStart := time.Now()
	var outputs []string
	seed := crashSeed(t)
	kills := chooseKills(rand.New(rand.NewPCG(seed, seed)), []string{"prepare", "trust", "switch", "finalize"}, 6)
	t.Logf("crash matrix: seed %d (replay with CAROTATE_FAILPOINT_SEED=%d), kills %v", seed, seed, kills)
	var rotateKills, finalizeKills []kill
	for _, k := range kills {
		if k.phase == "finalize" {
			finalizeKills = append(finalizeKills, k)
		} else {
			rotateKills = append(rotateKills, k)
		}
	}
	var fired []string
	t.Run("crash matrix: rotate killed at random side effects, resumed after each", func(t *testing.T) {
		r.t = t
		f, outs := r.crashRun("rotate", rotateKills)
		fired, outputs = append(fired, f...), append(outputs, outs...)
		rec, _ := r.record()
		if rec.Phase != "switch" {
			t.Errorf("record phase %q after rotate, want switch", rec.Phase)
		}
	})
	r.t = t
	if t.Failed() {
		t.FailNow()
	}

	t.Run("a rerun of a finished rotate changes nothing", func(t *testing.T) {
		r.t = t
		files := snapshot(t, l)
		pods := controlPlanePods(t, l)
		res := r.run("rotate", "--yes")
		if res.code != 0 || !strings.Contains(res.stdout, "nothing to do") {
			t.Errorf("rerun: exit %d, stdout %q", res.code, res.stdout)
		}
		requireSameFiles(t, "after a rerun", files, snapshot(t, l))
		if got := controlPlanePods(t, l); got != pods {
			t.Errorf("control-plane pods changed in a rerun:\nbefore %s\nafter  %s", pods, got)
		}
	})
	r.t = t

	var material *rotation.Material
	t.Run("crash matrix: finalize killed at random side effects, resumed after each", func(t *testing.T) {
		r.t = t
		material = r.material()
		f, outs := r.crashRun("finalize", finalizeKills)
		fired, outputs = append(fired, f...), append(outputs, outs...)
		t.Logf("crash matrix, seed %d: %d of %d kills fired:\n  %s", seed, len(fired), len(kills), strings.Join(fired, "\n  "))
		if len(fired) < 4 {
			t.Errorf("only %d of %d kills fired: the matrix did not reach every phase", len(fired), len(kills))
		}
	})
	r.t = t
	if t.Failed() {
		t.FailNow()
	}
	t.Run("the killed rotation ends where an uninterrupted one does", func(t *testing.T) {
		requireFinalizedBytes(t, l, material)
	})
	t.Run("a rerun of a finished finalize, with the old kubeconfig, changes nothing", func(t *testing.T) {
		r.t = t
		files := snapshot(t, l)
		res := r.run("finalize", "--yes")
		if res.code != 0 || !strings.Contains(res.stdout, "was finalized at") || !strings.Contains(res.stdout, "nothing to do") {
			t.Errorf("rerun: exit %d, stdout %q", res.code, res.stdout)
		}
		requireSameFiles(t, "after a rerun of finalize", files, snapshot(t, l))
	})
	r.t = t
	rotationEnd := time.Now()
	checkAfterRotation(t, l, r, before, oldAdmin)

	t.Run("a fresh worker joins with the new discovery hash", func(t *testing.T) {
		joinFreshWorker(t, l, r, "worker-2")
	})

	t.Logf("REPORT 1+2 (killed %d times)\nrestarts:\n%sin-cluster probe failures during the rotation (%s): %v",
		len(fired), sortedLines(restartCounts(outputs...)), rotationEnd.Sub(rotationStart).Round(time.Second),
		probes.failures(t, rotationStart, rotationEnd))

	t.Run("renew: the same keys, new certificates, kube-apiserver never restarted", func(t *testing.T) {
		checkRenewal(t, l, r)
	})
}

// TestRotateThreeControlPlanes rotates a 3+1 cluster behind a load
// balancer while a client on the host requests /readyz through it.
func TestRotateThreeControlPlanes(t *testing.T) {
	// Registered before the lab's cleanup, so it runs after the lab's
	// dumps: a failed command's last lines end the test's output, where
	// a shortened CI log still shows them.
	var stopped string
	t.Cleanup(func() {
		if stopped != "" {
			t.Logf("why the rotation stopped:\n%s", stopped)
		}
	})
	l := labtest.Start(t, lab.Options{Name: "rotb", Subnet: "218.0", ControlPlanes: 3, Workers: 1})
	ctx := context.Background()
	if err := l.WaitHealthy(ctx, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	r := newRotator(t, l)
	before := snapshot(t, l)
	oldAdmin, err := os.ReadFile(l.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	// The 3+1 rotation rotates every root: the two CAs, the
	// service-account key (satoken_test.go) and the etcd CA (etcd_test.go);
	// the 1+2 one rotates the default roots.
	// The new cluster CA is an intermediate whose root stays offline:
	// after switch every apiserver must serve leaf + intermediate.
	chainPath, issuingKey, rootPath := offlineRootCA(t)
	rotateArgs := []string{"rotate", "--yes", "--roots=all", "--ca-cert", chainPath, "--ca-key", issuingKey}
	finalizes := [][]string{{"finalize", "--yes", "--restart-old-token-pods"}}
	t.Run("the plan is the golden one", func(t *testing.T) { checkPlanGolden(t, r, "3+1-all", "--roots=all") })
	cp1 := l.ControlPlaneNodes()[0]
	oldEtcd := copyEtcdCreds(t, l, cp1.Name)
	t.Run("plan --output json is one event per step", func(t *testing.T) {
		r.t = t
		res := r.run("plan", "--output", "json")
		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		if res.code != 0 || len(lines) < 20 {
			t.Fatalf("exit %d, %d lines", res.code, len(lines))
		}
		phases := map[string]int{}
		for _, line := range lines {
			var e struct {
				Phase   string `json:"phase"`
				Step    string `json:"step"`
				Outcome string `json:"outcome"`
			}
			if err := json.Unmarshal([]byte(line), &e); err != nil || e.Phase == "" || e.Step == "" || e.Outcome == "" {
				t.Errorf("not an event: %q (%v)", line, err)
			}
			phases[e.Phase]++
		}
		if len(phases) != 4 {
			t.Errorf("events per phase %v, want all four phases", phases)
		}
	})
	r.t = t
	probes := startProbeRecorder(t, l)
	lb := startLBClient(t, l)
	quorum := startQuorumWatch(t, l)
	start := time.Now()
	oldToken := createToken(t, l.Kubeconfig())
	// Credentials issued outside carotate from the old CA: a user's
	// certificate through a CSR, and a copy of admin.conf.
	janeCert, janeKey := issueOutside(t, l.Kubeconfig())
	writeOutsideConf(t, l, cp1.Name)
	// jane rotates, with deploy/rbac/rotate.yaml alone.
	runAsRotateRole(t, r, "jane", janeCert, janeKey)
	oldCAPath, _ := l.NodePath(cp1.Name, rotation.PKIDir+"/ca.crt")
	oldCAPEM, err := os.ReadFile(oldCAPath)
	if err != nil {
		t.Fatal(err)
	}
	oldCASPKI := createOldCAWebhook(t, l.Kubeconfig(), oldCAPEM)
	oldCA, err := pki.ParseCertificatePEM("ca.crt", oldCAPEM)
	if err != nil {
		t.Fatal(err)
	}
	startLabWebhook(t, l, l.Kubeconfig(), cp1.Name)
	// Counted after the test's own objects: jane's role and binding, the
	// webhooks, and the lab webhook's Deployment and Service.
	keysBefore := etcdKeys(t, oldEtcd, etcdURL(cp1))
	var outputs, logs []string
	for _, args := range append([][]string{rotateArgs}, finalizes...) {
		if args[0] == "finalize" {
			checkFinalizeRefusesOutside(t, r, l, cp1.Name, args, janeCert, janeKey)
			args = append(slices.Clone(args), "--yes")
			checkFinalizeRefusesStaleWebhook(t, r, l, cp1.Name, args)
		}
		res := r.run(args...)
		outputs, logs = append(outputs, res.stdout), append(logs, res.stderr)
		if res.code != 0 {
			stopped = fmt.Sprintf("carotate %s: exit %d\n--- the end of its output:\n%s\n--- the end of its log:\n%s", args[0], res.code, tail(res.stdout, 2000), tail(res.stderr, 2000))
			t.Fatalf("%s: exit %d", args[0], res.code)
		}
		// Measured on this lab: every kubelet restarts in switch, after the
		// apiservers sign with the new key, and a restarted kubelet asks
		// for every projected token again, so none is old by finalize.
		if args[0] == "finalize" && !strings.Contains(res.stdout, "no pod uses a token signed by the old key") {
			t.Errorf("finalize did not pass the old-token gate:\n%s", progressOnly(res.stdout))
		}
		want := "1 client certificate issued outside carotate still depends on the old CA; every apiserver rejects it once finalize distrusts that CA:\n  CertificateSigningRequest " + outsideCSR + ": "
		if args[0] == "rotate" {
			want = "2 client certificates issued outside carotate still depend on the old CA; every apiserver rejects them once finalize distrusts that CA:\n  CertificateSigningRequest " + outsideCSR + ": "
		}
		if !strings.Contains(res.stdout, want) {
			t.Errorf("%s does not list the credentials from the old CA issued outside carotate (%q):\n%s", args[0], want, tail(res.stdout, 3000))
		}
		if args[0] == "rotate" {
			checkServedToRoot(t, l, rootPath, "after switch")
			// The lab's kubeconfig trusts only the old CA, which no
			// longer signs the apiservers' certificates: the node's
			// admin.conf trusts both.
			liveAdmin, _ := l.NodePath(cp1.Name, rotation.KubernetesDir+"/admin.conf")
			checkWebhookBundles(t, liveAdmin, "after switch", oldCA, oldCA, nodeCA(t, l, cp1.Name))
			if ok, err := webhookAnswers(liveAdmin); !ok {
				t.Errorf("after rotate, the webhook with a certificate from the old CA does not answer: %v", err)
			}
		}
	}
	checkServedToRoot(t, l, rootPath, "after finalize")
	// jane's certificate is from the old CA: the checks after finalize run
	// as the lab's admin again.
	r.kubeconfig = ""
	end := time.Now()
	lb.close()
	quorum.close()
	newAdmin, _ := l.NodePath(cp1.Name, rotation.KubernetesDir+"/admin.conf")
	checkWebhookBundles(t, newAdmin, "after finalize", oldCA, nodeCA(t, l, cp1.Name))
	if ok, err := webhookAnswers(newAdmin); !ok {
		t.Errorf("after finalize, the webhook with a certificate from the new CA does not answer: %v", err)
	}
	// Its caBundle holds the cluster CA, which check rightly warns about
	// (cabundle-rotates-along): the checks below expect no finding.
	if err := clientFor(t, newAdmin).AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), labWebhook, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	checkRetiredCAReported(t, l, r, newAdmin, oldCASPKI)
	checkAfterRotation(t, l, r, before, oldAdmin)
	checkServiceAccountKeyRotated(t, l, oldToken)
	t.Run("a client certificate issued outside carotate from the old CA is rejected", func(t *testing.T) {
		if certAuthenticates(t, newAdmin, janeCert, janeKey) {
			t.Error("the apiserver still accepts jane's certificate from the old CA after finalize")
		}
	})
	checkEtcdRotated(t, l, r, oldEtcd, keysBefore)
	quorum.mu.Lock()
	t.Logf("REPORT 3+1 etcd: fewest healthy members at once %d of %d (%d samples, one a second); below %d: %v",
		quorum.min, len(l.ControlPlaneNodes()), quorum.samples, len(l.ControlPlaneNodes())-1, quorum.low)
	if quorum.min < len(l.ControlPlaneNodes())-1 {
		t.Errorf("at some moment only %d etcd members were healthy: %v", quorum.min, quorum.low)
	}
	quorum.mu.Unlock()
	lb.mu.Lock()
	t.Logf("REPORT 3+1\nphases: %s\nrestarts:\n%sin-cluster probe failures during the rotation (%s): %v\nload balancer: %d ok, %d failed %v",
		strings.Join(phaseTimes(logs...), ", "), sortedLines(restartCounts(outputs...)), end.Sub(start).Round(time.Second),
		probes.failures(t, start, end), lb.ok.Load(), lb.failed.Load(), lb.errs)
	// Each kube-apiserver restart (the service-account key and the etcd
	// CA) may cost a request or two through haproxy: kubeadm's apiserver
	// has no --shutdown-delay-duration, so it answers /readyz 500 and then
	// stops listening before the health check (every 1 s, down after 2)
	// takes it out. Each etcd restart costs as much: the apiserver on that
	// node talks to its local member only, and answers 500 until haproxy
	// takes it out (measured with --roots all, 2026-12-03: 20 HTTP 500 and
	// 5 EOF for 9 apiserver and 6 etcd restarts). More than two per
	// restart, or any TLS error, is a failure.
	restarts := 0
	for k, n := range restartCounts(outputs...) {
		if strings.HasPrefix(k, "kube-apiserver on ") || strings.HasPrefix(k, "etcd on ") {
			restarts += n
		}
	}
	if n := lb.failed.Load(); n > 2*int64(restarts) {
		t.Errorf("%d requests through the load balancer failed during the rotation, more than two per kube-apiserver or etcd restart (%d): %v", n, restarts, lb.errs)
	}
	for _, e := range lb.errs {
		if strings.Contains(e, "x509") || strings.Contains(e, "certificate") || strings.Contains(e, "tls") {
			t.Errorf("a request through the load balancer failed on TLS: %s", e)
		}
	}
	lb.mu.Unlock()
}

// checkAfterRotation is what a finalized rotation must leave.
func checkAfterRotation(t *testing.T, l *lab.Lab, r *rotator, before map[string]string, oldAdmin []byte) {
	ctx := context.Background()
	cp := l.ControlPlaneNodes()[0].Name
	newAdmin, _ := l.NodePath(cp, "/etc/kubernetes/admin.conf")
	kubectl := filepath.Join(labtest.Components(), "kubectl")
	t.Run("all nodes Ready and all pods Running", func(t *testing.T) {
		if err := l.WaitHealthy(ctx, 3*time.Minute); err != nil {
			t.Error(err)
		}
	})
	t.Run("the in-cluster client on every node succeeds", func(t *testing.T) { checkProbesSucceed(t, l) })
	t.Run("kubectl: the new admin.conf works, the old one fails with x509", func(t *testing.T) {
		if out, err := exec.Command(kubectl, "--kubeconfig", newAdmin, "get", "nodes").CombinedOutput(); err != nil {
			t.Errorf("kubectl with the new admin.conf: %v\n%s", err, out)
		}
		old := filepath.Join(t.TempDir(), "old-admin.conf")
		os.WriteFile(old, oldAdmin, 0o600)
		out, err := exec.Command(kubectl, "--kubeconfig", old, "get", "nodes").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "x509") {
			t.Errorf("kubectl with the old admin.conf: err %v, want an x509 error:\n%s", err, out)
		}
	})
	t.Run("everything on the control planes is signed by the new CAs", func(t *testing.T) {
		rec, _ := r.record()
		for _, n := range l.ControlPlaneNodes() {
			if out, err := l.Exec(ctx, n.Name, "kubeadm", "certs", "check-expiration"); err != nil {
				t.Errorf("%s: kubeadm certs check-expiration: %v\n%s", n.Name, err, out)
			} else {
				t.Logf("%s: kubeadm certs check-expiration:\n%s", n.Name, out)
			}
			read := func(p string) []*x509.Certificate { return nodeCerts(t, l, n.Name, p) }
			for ca, leaves := range map[string][]string{
				"ca":             {"apiserver.crt", "apiserver-kubelet-client.crt"},
				"front-proxy-ca": {"front-proxy-client.crt"},
			} {
				cas := read("/etc/kubernetes/pki/" + ca + ".crt")
				if len(cas) != 1 {
					t.Errorf("%s: %s.crt holds %d certificates, want 1", n.Name, ca, len(cas))
					continue
				}
				kind := map[string]model.CAKind{"ca": model.ClusterCA, "front-proxy-ca": model.FrontProxyCA}[ca]
				if got := pki.SPKIFingerprint(cas[0]); got != rec.CAs[kind].New {
					t.Errorf("%s: %s.crt is %s, want the new CA %s", n.Name, ca, got, rec.CAs[kind].New)
				}
				for _, leaf := range leaves {
					if err := read("/etc/kubernetes/pki/" + leaf)[0].CheckSignatureFrom(cas[0]); err != nil {
						t.Errorf("%s: %s is not signed by the new %s: %v", n.Name, leaf, ca, err)
					}
				}
			}
		}
	})
	t.Run("every manifest is as kubeadm wrote it", func(t *testing.T) {
		now := snapshot(t, l)
		for k, v := range before {
			if strings.Contains(k, "/manifests/") && now[k] != v {
				t.Errorf("%s differs from before the rotation", k)
			}
		}
		for k := range now {
			if strings.Contains(k, "/pki/carotate") {
				t.Errorf("%s is left after finalize", k)
			}
		}
	})
	t.Run("kube-apiserver and kube-controller-manager manifests are what kubeadm renders", func(t *testing.T) {
		checkKubeadmRenders(t, l)
	})
	t.Run("carotate check finds nothing", func(t *testing.T) {
		report, code := runCheck(t, l, exec.Command(r.bin, "check", "--output", "json", "--kubeconfig", newAdmin), sshEnv(l, l.KnownHosts()))
		if code != 0 || report.Summary.Blocking+report.Summary.Warning > 0 {
			t.Errorf("exit %d, findings %+v", code, report.Findings)
		}
	})
}

// joinFreshWorker wipes a worker with kubeadm reset and joins it again
// with a new token and the discovery hash finalize printed.
func joinFreshWorker(t *testing.T, l *lab.Lab, r *rotator, worker string) {
	ctx := context.Background()
	cp := l.ControlPlaneNodes()[0].Name
	caPath, _ := l.NodePath(cp, "/etc/kubernetes/pki/ca.crt")
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ParseCertificatePEM(caPath, caPEM)
	if err != nil {
		t.Fatal(err)
	}
	hash := pki.DiscoveryHash(ca)
	if out, err := l.Exec(ctx, worker, "kubeadm", "reset", "--force"); err != nil {
		t.Fatalf("kubeadm reset on %s: %v\n%s", worker, err, out)
	}
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().Nodes().Delete(ctx, worker, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := l.Exec(ctx, cp, "kubeadm", "token", "create")
	if err != nil {
		t.Fatalf("kubeadm token create: %v\n%s", err, out)
	}
	token := regexp.MustCompile(`[a-z0-9]{6}\.[a-z0-9]{16}`).FindString(out)
	if token == "" {
		t.Fatalf("kubeadm token create printed no token:\n%s", out)
	}
	n, _ := l.Node(worker)
	if err := l.KubeadmJoin(ctx, n, token, hash, ""); err != nil {
		t.Fatalf("kubeadm join %s with %s: %v", worker, hash, err)
	}
	waitFor(t, worker+" Ready after joining", 3*time.Minute, func() (bool, error) { return nodeReadyIs(ctx, l, worker, true) })
}

func nodeReadyIs(ctx context.Context, l *lab.Lab, name string, want bool) (bool, error) {
	c, err := l.Client()
	if err != nil {
		return false, err
	}
	n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return (cond.Status == corev1.ConditionTrue) == want, nil
		}
	}
	return !want, nil
}

// controlPlanePods names the kube-system pods with their uids, so that a
// restart shows as a change.
func controlPlanePods(t *testing.T, l *lab.Lab) string {
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	pods, err := c.CoreV1().Pods("kube-system").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, p := range pods.Items {
		s = append(s, p.Name+"="+string(p.UID)+fmt.Sprint(p.Status.StartTime))
	}
	return strings.Join(s, " ")
}

// regexpLine reports whether a line of out names node and stage.
func regexpLine(out, node, stage string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, node) && strings.Contains(line, stage) {
			return true
		}
	}
	return false
}

// checkStatusDocument: status -o yaml is one RotationStatus document that
// names the rotation and puts every node at the stage the record says.
func checkStatusDocument(t *testing.T, res result, id, stage string, nodes int) {
	t.Helper()
	var st cli.RotationStatus
	if err := yaml.UnmarshalStrict([]byte(res.stdout), &st); err != nil || res.code != 0 {
		t.Errorf("status -o yaml: exit %d, %v:\n%s", res.code, err, res.stdout)
		return
	}
	if st.Kind != "RotationStatus" || !st.InProgress || st.Rotation != id || st.Stage != stage || len(st.Nodes) != nodes || len(st.NotAtRecord) != 0 {
		t.Errorf("status -o yaml, want rotation %s at %s on %d nodes:\n%s", id, stage, nodes, res.stdout)
	}
	for _, n := range st.Nodes {
		if !slices.Contains(n.At, stage) {
			t.Errorf("status -o yaml: %s at %v, want %s", n.Name, n.At, stage)
		}
	}
}

// checkStatusInCluster: the ConfigMap kube-system/carotate-status says the
// command is done with the record at want, and Events about it say it
// started and finished, and, for rotate, that each phase was verified
// (a rollback has no gates).
func checkStatusInCluster(t *testing.T, l *lab.Lab, id, command, want string) {
	t.Helper()
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, ok, err := clusterstatus.Read(ctx, c)
	if err != nil || !ok {
		t.Fatalf("ConfigMap %s/%s: found %v, %v", clusterstatus.Namespace, clusterstatus.Name, ok, err)
	}
	if st.Rotation != id || st.Command != command || st.State != clusterstatus.Done || st.Record != want || st.Holder == "" {
		t.Errorf("ConfigMap %s/%s says %+v, want rotation %s, %s done, record %q", clusterstatus.Namespace, clusterstatus.Name, st, id, command, want)
	}
	list, err := c.EventsV1().Events(clusterstatus.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, e := range list.Items {
		if e.Regarding.Name == clusterstatus.Name && e.Action == command && e.EventTime.After(st.StartedAt.Add(-time.Second)) &&
			(strings.Contains(e.Note, id) || e.Reason == "PhaseVerified") {
			reasons[e.Reason]++
		}
	}
	wanted := []string{"Started", "Finished"}
	if command == "rotate" {
		wanted = append(wanted, "PhaseVerified")
	}
	for _, r := range wanted {
		if reasons[r] == 0 {
			t.Errorf("Events about %s for %s of %s: %v, want %v", clusterstatus.Name, command, id, reasons, wanted)
			break
		}
	}
}

// nodeCA is the first certificate of the node's ca.crt: the CA that signs.
func nodeCA(t *testing.T, l *lab.Lab, nodeName string) *x509.Certificate {
	t.Helper()
	p, _ := l.NodePath(nodeName, rotation.PKIDir+"/ca.crt")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ParseCertificatesPEM(p, data)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}
