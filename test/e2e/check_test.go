package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/carotate/carotate/internal/cli"
	"github.com/carotate/carotate/internal/lab"
	"github.com/carotate/carotate/internal/lab/labtest"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// TestCheck runs `carotate check` against real kubeadm clusters and
// compares what it reports with what the test reads from the nodes itself.
func TestCheck(t *testing.T) {
	for _, topo := range []struct {
		name string
		opts lab.Options
	}{
		{"1+2", lab.Options{Name: "chka", Subnet: "215.0", ControlPlanes: 1, Workers: 2}},
		{"3+1", lab.Options{Name: "chkb", Subnet: "216.0", ControlPlanes: 3, Workers: 1}},
	} {
		t.Run(topo.name, func(t *testing.T) {
			l := labtest.Start(t, topo.opts)
			if err := l.WaitHealthy(context.Background(), 3*time.Minute); err != nil {
				t.Fatal(err)
			}
			carotate := labtest.Carotate(t)

			var report cli.Report
			t.Run("over ssh from the host", func(t *testing.T) {
				var code int
				report, code = runCheck(t, l, exec.Command(carotate, "check", "--output", "json"), sshEnv(l, l.KnownHosts()))
				if code != 0 {
					t.Errorf("exit code %d, want 0; findings %+v", code, report.Findings)
				}
				compareWithNodes(t, l, report.Cluster)
				if len(report.Findings) > 0 && report.Summary.Blocking > 0 {
					t.Errorf("blocking findings on a fresh kubeadm cluster: %+v", report.Findings)
				}
			})
			if topo.name == "1+2" {
				t.Run("as a kubectl plugin", func(t *testing.T) { checkAsKubectlPlugin(t, l, carotate) })
				t.Run("serves expiry metrics", func(t *testing.T) { checkServesMetrics(t, l, carotate) })
				t.Run("with only the carotate-check ClusterRole", func(t *testing.T) { checkWithOnlyItsRole(t, l, carotate) })
				t.Run("through a jump host", func(t *testing.T) {
					// Every node, cp-1 included, through cp-1's sshd, its
					// host key checked like the nodes'.
					jump := "root@" + l.ControlPlaneNodes()[0].IP
					report, code := runCheck(t, l, exec.Command(carotate, "check", "-o", "json", "--ssh-jump", jump), sshEnv(l, l.KnownHosts()))
					if code != 0 {
						t.Errorf("check --ssh-jump %s: exit %d, want 0; findings %+v", jump, code, report.Findings)
					}
					compareWithNodes(t, l, report.Cluster)
				})
			}
			t.Run("through the local executor inside a node", func(t *testing.T) {
				cp := l.ControlPlaneNodes()[0]
				inventory := filepath.Join(l.StateDir, "inventory.yaml")
				os.WriteFile(inventory, []byte(fmt.Sprintf("nodes:\n- name: %s\n  executor: local\n", cp.Name)), 0o600)
				cmd, err := l.ExecCommand(cp.Name, carotate, "check", "--output", "json", "--inventory", inventory,
					"--kubeconfig", "/etc/kubernetes/admin.conf")
				if err != nil {
					t.Fatal(err)
				}
				local, code := runCheck(t, l, cmd, sshEnv(l, l.KnownHosts()))
				if code != 0 {
					t.Errorf("exit code %d, want 0", code)
				}
				compareWithNodes(t, l, local.Cluster)
				for _, n := range local.Cluster.Nodes {
					if n.Name == cp.Name && n.Executor != "local" {
						t.Errorf("node %s inspected through %q, want local", n.Name, n.Executor)
					}
				}
			})
			t.Run("a stray manifest is reported", func(t *testing.T) {
				cp := l.ControlPlaneNodes()[0]
				manifests, _ := l.NodePath(cp.Name, "/etc/kubernetes/manifests")
				data, err := os.ReadFile(filepath.Join(manifests, "kube-apiserver.yaml"))
				if err != nil {
					t.Fatal(err)
				}
				stray := filepath.Join(manifests, "kube-apiserver.yaml.bak")
				if err := os.WriteFile(stray, data, 0o600); err != nil {
					t.Fatal(err)
				}
				// The kubelet loads the stray copy too, and the apiserver on
				// that node restarts: that is why it is a blocking finding.
				got, code := checkWhenAPIAnswers(t, l, carotate, l.KnownHosts())
				os.Remove(stray)
				if code != 3 {
					t.Errorf("exit code %d, want 3 (blocking findings)", code)
				}
				found := false
				for _, f := range got.Findings {
					if f.ID == "stray-manifest" && strings.Contains(f.Subject, cp.Name) && strings.Contains(f.Subject, "kube-apiserver.yaml.bak") {
						found = true
					}
				}
				if !found {
					t.Errorf("no stray-manifest finding for %s:%s; findings %+v", cp.Name, stray, got.Findings)
				}
				// Removing it restarts the apiserver once more.
				time.Sleep(10 * time.Second)
				if _, code := checkWhenAPIAnswers(t, l, carotate, l.KnownHosts()); code != 0 {
					t.Errorf("after removing the stray manifest: exit code %d, want 0", code)
				}
				if err := l.WaitHealthy(context.Background(), 3*time.Minute); err != nil {
					t.Fatal(err)
				}
			})
			t.Run("an unknown host key refuses that node", func(t *testing.T) {
				refused := l.Nodes[len(l.Nodes)-1]
				known, err := os.ReadFile(l.KnownHosts())
				if err != nil {
					t.Fatal(err)
				}
				var kept []string
				for _, line := range strings.Split(strings.TrimSpace(string(known)), "\n") {
					if !strings.HasPrefix(line, refused.IP+",") {
						kept = append(kept, line)
					}
				}
				partial := filepath.Join(t.TempDir(), "known_hosts")
				os.WriteFile(partial, []byte(strings.Join(kept, "\n")+"\n"), 0o600)
				got, code := checkWhenAPIAnswers(t, l, carotate, partial)
				if code != 4 {
					t.Errorf("exit code %d, want 4 (could not inspect)", code)
				}
				for _, n := range got.Cluster.Nodes {
					switch {
					case n.Name == refused.Name && (n.Reachable || !strings.Contains(n.Error, "SHA256:")):
						t.Errorf("node %s: reachable=%v error=%q; want refused with the host key's fingerprint", n.Name, n.Reachable, n.Error)
					case n.Name != refused.Name && !n.Reachable:
						t.Errorf("node %s unreachable: %s", n.Name, n.Error)
					}
				}
			})
		})
	}
}

// checkAsKubectlPlugin: installed as kubectl-carotate on $PATH, carotate
// is a kubectl plugin: kubectl lists it, runs it, and its help names it
// "kubectl carotate".
func checkAsKubectlPlugin(t *testing.T, l *lab.Lab, carotate string) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "kubectl-carotate")
	if err := os.Symlink(carotate, plugin); err != nil {
		t.Fatal(err)
	}
	kubectl := filepath.Join(labtest.Components(), "kubectl")
	env := append(sshEnv(l, l.KnownHosts()), "PATH="+dir+":"+os.Getenv("PATH"))
	run := func(args ...string) string {
		cmd := exec.Command(kubectl, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("plugin", "list"); !strings.Contains(out, plugin) {
		t.Errorf("kubectl plugin list does not list %s:\n%s", plugin, out)
	}
	if out := run("carotate", "--help"); !strings.Contains(out, "kubectl carotate [command]") {
		t.Errorf("kubectl carotate --help does not call itself kubectl carotate:\n%s", out)
	}
	report, code := runCheck(t, l, exec.Command(kubectl, "carotate", "check", "--output", "json"), env)
	if code != 0 {
		t.Errorf("kubectl carotate check: exit code %d, want 0; findings %+v", code, report.Findings)
	}
	compareWithNodes(t, l, report.Cluster)
}

// checkServesMetrics: check --metrics-listen serves, on loopback, the
// expiry of each node's certificates as the test reads them from the
// nodes, and exits 0 on SIGTERM.
func checkServesMetrics(t *testing.T, l *lab.Lab, carotate string) {
	cmd := exec.Command(carotate, "check", "--metrics-listen", "127.0.0.1:0", "--metrics-interval", "10s")
	cmd.Env = sshEnv(l, l.KnownHosts())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	addr := make(chan string, 1)
	var logged bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := regexp.MustCompile(`serving metrics on (http://\S+/metrics)`).FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
			logged.WriteString(sc.Text() + "\n")
		}
		exited <- cmd.Wait()
	}()
	waited := false
	defer func() {
		if !waited { // a failure above: stop what this test started
			cmd.Process.Kill()
			<-exited
		}
	}()
	var url string
	select {
	case url = <-addr:
	case <-time.After(30 * time.Second):
		t.Fatal("check --metrics-listen printed no address in 30s")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	var body string
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("scrape %s: %v", url, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// Whole lines: the HELP text of carotate_check_up starts with "1 if".
		if body = string(b); strings.Contains(body, "\ncarotate_check_up 1\n") {
			break
		}
	}
	if !strings.Contains(body, "\ncarotate_check_up 1\n") || !strings.Contains(body, "\ncarotate_rotation_in_progress 0\n") {
		t.Fatalf("metrics after 2m, want carotate_check_up 1 and no rotation:\n%.3000s", body)
	}
	for _, n := range l.Nodes {
		paths := []string{"/etc/kubernetes/pki/ca.crt"}
		if n.ControlPlane {
			paths = append(paths, "/etc/kubernetes/pki/apiserver.crt")
		}
		for _, path := range paths {
			cert := nodeCerts(t, l, n.Name, path)[0]
			prefix := fmt.Sprintf(`carotate_certificate_not_after_timestamp_seconds{kind="certificate",node=%q,path=%q,role="",root="cluster",`, n.Name, path)
			found := false
			for _, line := range strings.Split(body, "\n") {
				if v, ok := strings.CutPrefix(line, prefix); ok {
					f, err := strconv.ParseFloat(v[strings.LastIndexByte(v, ' ')+1:], 64)
					found = err == nil && int64(f) == cert.NotAfter.Unix()
				}
			}
			if !found {
				t.Errorf("no metric %s... = %d (%s's notAfter):\n%.3000s", prefix, cert.NotAfter.Unix(), path, body)
			}
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		waited = true
		if err != nil {
			t.Errorf("after SIGTERM: %v\n%s", err, logged.String())
		}
	case <-time.After(30 * time.Second):
		t.Error("check --metrics-listen did not exit within 30s of SIGTERM")
	}
}

// checkWithOnlyItsRole: deploy/rbac/check.yaml is all check needs of the
// API. A service account bound to that ClusterRole alone gets the same
// report as the admin; one bound to nothing is refused (exit 4), and the
// error says what it could not read.
func checkWithOnlyItsRole(t *testing.T, l *lab.Lab, carotate string) {
	kubectl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(labtest.Components(), "kubectl"), append([]string{"--kubeconfig", l.Kubeconfig()}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	manifest, err := filepath.Abs("../../deploy/rbac/check.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kubectl("apply", "-f", manifest)
	kubectl("-n", "kube-system", "create", "serviceaccount", "carotate-check")
	kubectl("-n", "kube-system", "create", "serviceaccount", "carotate-nobody")
	kubectl("create", "clusterrolebinding", "carotate-check", "--clusterrole", "carotate-check", "--serviceaccount", "kube-system:carotate-check")
	defer kubectl("delete", "-f", manifest, "--ignore-not-found")
	defer kubectl("delete", "clusterrolebinding", "carotate-check", "--ignore-not-found")
	defer kubectl("-n", "kube-system", "delete", "serviceaccount", "carotate-check", "carotate-nobody", "--ignore-not-found")

	kubeconfigFor := func(sa string) string {
		token := kubectl("-n", "kube-system", "create", "token", sa, "--duration", "1h")
		return kubeconfigAs(t, l, sa, clientcmdapi.AuthInfo{Token: token})
	}
	env := func(kubeconfig string) []string {
		e := sshEnv(l, l.KnownHosts())
		for i, v := range e {
			if strings.HasPrefix(v, "KUBECONFIG=") {
				e[i] = "KUBECONFIG=" + kubeconfig
			}
		}
		return e
	}
	report, code := runCheck(t, l, exec.Command(carotate, "check", "-o", "json"), env(kubeconfigFor("carotate-check")))
	if code != 0 {
		t.Errorf("check with the carotate-check role: exit %d, want 0; findings %+v", code, report.Findings)
	}
	compareWithNodes(t, l, report.Cluster)

	cmd := exec.Command(carotate, "check", "-o", "json")
	cmd.Env = env(kubeconfigFor("carotate-nobody"))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 4 || !strings.Contains(string(out), "forbidden") {
		t.Errorf("check with no role: %v, want exit 4 and forbidden:\n%s", err, out)
	}
}

// checkWhenAPIAnswers runs check from the host, again while it cannot reach
// the API at all (exit 4 without a report), for at most three minutes.
func checkWhenAPIAnswers(t *testing.T, l *lab.Lab, carotate, knownHosts string) (cli.Report, int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		cmd := exec.Command(carotate, "check", "--output", "json")
		cmd.Env = sshEnv(l, knownHosts)
		out, err := cmd.Output()
		if err == nil || len(bytes.TrimSpace(out)) > 0 || time.Now().After(deadline) {
			return runCheck(t, l, exec.Command(carotate, "check", "--output", "json"), sshEnv(l, knownHosts))
		}
		time.Sleep(3 * time.Second)
	}
}

func sshEnv(l *lab.Lab, knownHosts string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"KUBECONFIG=" + l.Kubeconfig(),
		"CAROTATE_SSH_USER=root",
		"CAROTATE_SSH_KEY=" + l.SSHKey(),
		"CAROTATE_SSH_KNOWN_HOSTS=" + knownHosts,
	}
}

// runCheck runs a check command, logs its time and peak memory, and decodes
// its JSON report.
func runCheck(t *testing.T, l *lab.Lab, cmd *exec.Cmd, env []string) (cli.Report, int) {
	t.Helper()
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("carotate check: %v", err)
		}
		code = ee.ExitCode()
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		t.Logf("carotate check on %d nodes: %s, peak RSS %d MiB, exit %d", len(l.Nodes), elapsed.Round(time.Millisecond), ru.Maxrss>>10, code)
	}
	var report cli.Report
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("carotate check --output json: %v\nstdout: %.2000s\nstderr: %.2000s", err, stdout.String(), stderr.String())
	}
	return report, code
}

// compareWithNodes checks the report against the nodes' real files and the
// API, read by the test itself.
func compareWithNodes(t *testing.T, l *lab.Lab, c model.Cluster) {
	t.Helper()
	byName := map[string]model.Node{}
	for _, n := range c.Nodes {
		byName[n.Name] = n
	}
	for _, ln := range l.Nodes {
		n, ok := byName[ln.Name]
		if !ok || !n.Reachable {
			t.Errorf("node %s missing or unreachable in the report: %+v", ln.Name, n.Error)
			continue
		}
		// Every file under the PKI directory, with its content hash.
		pkiDir, _ := l.NodePath(ln.Name, "/etc/kubernetes/pki")
		want := map[string]string{}
		filepath.WalkDir(pkiDir, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				data, _ := os.ReadFile(path)
				sum := sha256.Sum256(data)
				want["/etc/kubernetes/pki"+strings.TrimPrefix(path, pkiDir)] = hex.EncodeToString(sum[:])
			}
			return nil
		})
		got := map[string]string{}
		for _, f := range n.Files {
			if strings.HasPrefix(f.Path, "/etc/kubernetes/pki/") {
				got[f.Path] = f.SHA256
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("node %s: PKI files (-on node +reported):\n%s", ln.Name, diff)
		}
		// Every kubeconfig.
		confs, _ := filepath.Glob(filepath.Join(l.StateDir, "nodes", ln.Name, "fs", "etc-kubernetes", "*.conf"))
		var wantConfs, gotConfs []string
		for _, cpath := range confs {
			wantConfs = append(wantConfs, "/etc/kubernetes/"+filepath.Base(cpath))
		}
		for _, k := range n.Kubeconfigs {
			gotConfs = append(gotConfs, k.Path)
		}
		sort.Strings(gotConfs)
		if diff := cmp.Diff(wantConfs, gotConfs); diff != "" {
			t.Errorf("node %s: kubeconfigs (-on node +reported):\n%s", ln.Name, diff)
		}
		// Every flag of every static pod, in order.
		for _, m := range n.Manifests {
			hostPath, _ := l.NodePath(ln.Name, m.Path)
			data, err := os.ReadFile(hostPath)
			if err != nil {
				t.Errorf("node %s: %v", ln.Name, err)
				continue
			}
			var wantFlags, gotFlags []string
			for _, line := range strings.Split(string(data), "\n") {
				if f, ok := strings.CutPrefix(strings.TrimSpace(line), "- --"); ok {
					wantFlags = append(wantFlags, "--"+f)
				}
			}
			for _, f := range m.Flags {
				gotFlags = append(gotFlags, "--"+f.Name+"="+f.Value)
			}
			if diff := cmp.Diff(wantFlags, gotFlags); diff != "" {
				t.Errorf("node %s %s: flags (-in file +reported):\n%s", ln.Name, m.Path, diff)
			}
		}
		if ln.ControlPlane && len(n.Manifests) != 4 {
			t.Errorf("node %s: %d static pod manifests reported, want 4", ln.Name, len(n.Manifests))
		}
	}
	// Every CA kubeadm made, by public key and kind.
	cp := l.ControlPlaneNodes()[0]
	for file, kind := range map[string]model.CAKind{"ca.crt": model.ClusterCA, "front-proxy-ca.crt": model.FrontProxyCA, "etcd/ca.crt": model.EtcdCA} {
		path, _ := l.NodePath(cp.Name, "/etc/kubernetes/pki/"+file)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := pki.ParseCertificatePEM(path, data)
		if err != nil {
			t.Fatal(err)
		}
		spki := pki.SPKIFingerprint(cert)
		found := false
		for _, ca := range c.CAs {
			if ca.Cert.SPKISHA256 == spki {
				found = true
				if ca.Kind != kind {
					t.Errorf("%s reported as %s CA, want %s", file, ca.Kind, kind)
				}
				if len(ca.Signed) == 0 {
					t.Errorf("%s CA: nothing reported as signed by it", kind)
				}
				if !ca.Cert.NotAfter.Equal(cert.NotAfter) {
					t.Errorf("%s CA: expiry reported %s, the certificate says %s", kind, ca.Cert.NotAfter, cert.NotAfter)
				}
				if kind == model.EtcdCA {
					// Every place that trusts the etcd CA, on every control plane.
					refs := map[string]int{}
					for _, r := range ca.References {
						refs[r.Flag]++
					}
					for _, flag := range []string{"etcd --trusted-ca-file", "etcd --peer-trusted-ca-file", "kube-apiserver --etcd-cafile"} {
						if refs[flag] != len(l.ControlPlaneNodes()) {
							t.Errorf("etcd CA: %d references through %s, want one per control plane (%d); references %v", refs[flag], flag, len(l.ControlPlaneNodes()), refs)
						}
					}
				}
			}
		}
		if !found {
			t.Errorf("CA %s (spki %s) not reported", file, spki)
		}
	}
	// kube-root-ca.crt in every namespace.
	client, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	nss, err := client.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(c.API.RootCAConfigMaps)+len(c.API.NamespacesWithoutRootCA), len(nss.Items); got != want {
		t.Errorf("kube-root-ca.crt reported for %d namespaces, cluster has %d", got, want)
	}
	if c.API.ClusterInfo == nil || len(c.API.ClusterInfo.Certs) == 0 {
		t.Error("cluster-info not reported")
	}
	if c.API.ClientCA == nil || len(c.API.ClientCA.Certs) == 0 {
		t.Error("extension-apiserver-authentication client-ca not reported")
	}
	if wantCerts := len(l.ControlPlaneNodes()) > 1; c.API.KubeadmCertsSecret != wantCerts {
		t.Errorf("kubeadm-certs reported %v, want %v (uploaded only with several control planes)", c.API.KubeadmCertsSecret, wantCerts)
	}
}
