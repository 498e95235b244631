// Package e2e holds the end-to-end tests that run on real kubeadm clusters
// stood up by the lab. They need root and the built components; see
// internal/lab/labtest.
package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/carotate/carotate/internal/lab"
	"github.com/carotate/carotate/internal/lab/labtest"
	"github.com/carotate/carotate/internal/lab/probe"
	"github.com/carotate/carotate/internal/manifest"
)

// TestLabOneControlPlaneTwoWorkers is the lab's own acceptance test on the
// default topology.
func TestLabOneControlPlaneTwoWorkers(t *testing.T) {
	labtest.Require(t)
	before := snapshotHost(t)
	var l *lab.Lab
	t.Run("up", func(t *testing.T) {
		l = labtest.Start(t, lab.Options{Name: "e2ea", ControlPlanes: 1, Workers: 2})
		ctx := context.Background()

		t.Run("nodes Ready and pods Running", func(t *testing.T) {
			if err := l.WaitHealthy(ctx, 2*time.Minute); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("in-cluster client succeeds from every node", func(t *testing.T) {
			checkProbesSucceed(t, l)
		})
		t.Run("ssh with strict host key checking", func(t *testing.T) {
			for _, n := range l.Nodes {
				out, err := sshRun(l, n, l.KnownHosts(), "hostname")
				if err != nil {
					t.Fatalf("node %s: %v", n.Name, err)
				}
				if strings.TrimSpace(out) != n.Name {
					t.Errorf("node %s: hostname over ssh = %q", n.Name, out)
				}
			}
			wrong := filepath.Join(t.TempDir(), "known_hosts")
			other := l.Nodes[1]
			// Every node's address, but with another node's host key.
			os.WriteFile(wrong, []byte(fmt.Sprintf("%s %s\n", l.Nodes[0].IP, other.HostKey)), 0o600)
			_, err := sshRun(l, l.Nodes[0], wrong, "touch /tmp/must-not-exist")
			var keyErr *knownhosts.KeyError
			if !errors.As(err, &keyErr) || len(keyErr.Want) == 0 {
				t.Fatalf("ssh to %s with a wrong known_hosts entry: got %v, want a host key mismatch", l.Nodes[0].Name, err)
			}
			if p, _ := l.NodePath(l.Nodes[0].Name, "/tmp/must-not-exist"); fileExists(p) {
				t.Error("the command ran although the host key did not match")
			}
		})
		t.Run("systemctl restart kubelet over ssh", func(t *testing.T) {
			checkKubeletRestart(t, l, l.Nodes[len(l.Nodes)-1])
		})
		t.Run("static pod manifest change restarts the component", func(t *testing.T) {
			checkStaticPodRestart(t, l, l.Nodes[0], manifest.KubeScheduler)
		})
	})
	if l == nil {
		return
	}
	t.Run("down leaves nothing", func(t *testing.T) {
		ctx := context.Background()
		if err := lab.Down(ctx, l.StateDir, nil); err != nil {
			t.Fatal(err)
		}
		if err := lab.Down(ctx, l.StateDir, nil); err != nil {
			t.Fatalf("second down: %v", err)
		}
		after := snapshotHost(t)
		after.compare(t, before)
	})
}

// TestLabThreeControlPlanes checks the HA topology: every apiserver answers
// directly and through the load balancer, which keeps serving when one
// apiserver stops.
func TestLabThreeControlPlanes(t *testing.T) {
	labtest.Require(t)
	before := snapshotHost(t)
	var l *lab.Lab
	t.Run("up", func(t *testing.T) {
		l = labtest.Start(t, lab.Options{Name: "e2eb", Subnet: "214.0", ControlPlanes: 3, Workers: 1})
		ctx := context.Background()
		if err := l.WaitHealthy(ctx, 3*time.Minute); err != nil {
			t.Fatal(err)
		}
		client := apiserverClient(t, l)
		t.Run("every apiserver answers directly and through the load balancer", func(t *testing.T) {
			for _, n := range l.ControlPlaneNodes() {
				if err := readyz(client, n.IP+":6443"); err != nil {
					t.Errorf("%s: %v", n.Name, err)
				}
			}
			if err := readyz(client, l.Endpoint); err != nil {
				t.Errorf("load balancer %s: %v", l.Endpoint, err)
			}
		})
		t.Run("the load balancer serves while one apiserver is stopped", func(t *testing.T) {
			stopped := l.ControlPlaneNodes()[1]
			manifest, _ := l.NodePath(stopped.Name, "/etc/kubernetes/manifests/kube-apiserver.yaml")
			parked, _ := l.NodePath(stopped.Name, "/root/kube-apiserver.yaml")
			if err := os.Rename(manifest, parked); err != nil {
				t.Fatal(err)
			}
			restored := false
			restore := func() {
				if !restored {
					restored = true
					os.Rename(parked, manifest)
				}
			}
			defer restore()
			// Wait until the apiserver is really gone.
			if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 90*time.Second, true, func(context.Context) (bool, error) {
				return readyz(client, stopped.IP+":6443") != nil, nil
			}); err != nil {
				t.Fatalf("%s's apiserver still answers 90s after its manifest was removed", stopped.Name)
			}
			// haproxy marks it down after two failed checks a second apart.
			time.Sleep(3 * time.Second)
			failed := 0
			for i := 0; i < 40; i++ {
				if err := readyz(client, l.Endpoint); err != nil {
					failed++
					t.Logf("request %d through the load balancer: %v", i, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if failed > 0 {
				t.Errorf("%d of 40 requests through the load balancer failed with %s's apiserver stopped", failed, stopped.Name)
			}
			restore()
			var lastErr error
			if err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(context.Context) (bool, error) {
				lastErr = readyz(client, stopped.IP+":6443")
				return lastErr == nil, nil
			}); err != nil {
				t.Fatalf("%s's apiserver not ready 3m after its manifest came back: %v", stopped.Name, lastErr)
			}
			if err := l.WaitHealthy(ctx, 3*time.Minute); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("in-cluster client succeeds from every node", func(t *testing.T) {
			checkProbesSucceed(t, l)
		})
	})
	if l == nil {
		return
	}
	t.Run("down leaves nothing", func(t *testing.T) {
		if err := lab.Down(context.Background(), l.StateDir, nil); err != nil {
			t.Fatal(err)
		}
		snapshotHost(t).compare(t, before)
	})
}

// checkProbesSucceed reads the probe logs from every node's /var/log/pods
// and wants API successes from both probe workloads on every node.
func checkProbesSucceed(t *testing.T, l *lab.Lab) {
	t.Helper()
	for _, n := range l.Nodes {
		for _, workload := range []string{lab.ProbeDaemonSet, lab.ProbeDeployment} {
			var report probe.Report
			var lastErr error
			err := wait.PollUntilContextTimeout(context.Background(), time.Second, 60*time.Second, true, func(context.Context) (bool, error) {
				report, lastErr = l.ProbeReport(n.Name, workload)
				return lastErr == nil && report.OK > 0, nil
			})
			if err != nil {
				t.Errorf("node %s: probe %s reported no API success in 60s (%v; last report %+v)", n.Name, workload, lastErr, report)
			}
		}
	}
}

func checkKubeletRestart(t *testing.T, l *lab.Lab, n lab.Node) {
	t.Helper()
	ctx := context.Background()
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	pidBefore := kubeletPID(t, l, n)
	if out, err := sshRun(l, n, l.KnownHosts(), "systemctl restart kubelet && systemctl is-active kubelet"); err != nil || strings.TrimSpace(out) != "active" {
		t.Fatalf("node %s: systemctl restart kubelet over ssh: %q, %v", n.Name, out, err)
	}
	// The old kubelet has stopped by the time systemctl returns, so a lease
	// renewed after this moment is the new kubelet's.
	restartedAt := time.Now()
	if pidAfter := kubeletPID(t, l, n); pidAfter == pidBefore {
		t.Fatalf("node %s: kubelet pid %s unchanged after restart", n.Name, pidAfter)
	}
	// Ready, and the node's lease renewed by the new kubelet. The lease's
	// renew time has microseconds; a node condition's heartbeat has whole
	// seconds, and the kubelet posts an unchanged status only every five
	// minutes, so a heartbeat in the restart's own second looks stale.
	var why string
	err = wait.PollUntilContextTimeout(ctx, time.Second, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		lease, err := c.CoordinationV1().Leases("kube-node-lease").Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			why = err.Error()
			return false, nil
		}
		if lease.Spec.RenewTime == nil || !lease.Spec.RenewTime.After(restartedAt) {
			why = "the lease was not renewed since the restart"
			return false, nil
		}
		node, err := c.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			why = err.Error()
			return false, nil
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		why = "the node is not Ready"
		return false, nil
	})
	if err != nil {
		t.Fatalf("node %s: not Ready with a lease renewed by the new kubelet within 90s of its restart (%s): %v", n.Name, why, err)
	}
}

func kubeletPID(t *testing.T, l *lab.Lab, n lab.Node) string {
	t.Helper()
	out, err := sshRun(l, n, l.KnownHosts(), "systemctl status kubelet")
	if err != nil {
		t.Fatalf("node %s: systemctl status kubelet: %v: %s", n.Name, err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if pid, ok := strings.CutPrefix(strings.TrimSpace(line), "Main PID: "); ok {
			return pid
		}
	}
	t.Fatalf("node %s: no Main PID in %q", n.Name, out)
	return ""
}

// checkStaticPodRestart changes a static pod's manifest the way carotate
// does (an annotation, written through a dot-named temp file and a rename)
// and wants the mirror pod's config hash to change and the pod to be ready.
func checkStaticPodRestart(t *testing.T, l *lab.Lab, n lab.Node, component string) {
	t.Helper()
	ctx := context.Background()
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	mirror := component + "-" + n.Name
	pod, err := c.CoreV1().Pods("kube-system").Get(ctx, mirror, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hashBefore := pod.Annotations["kubernetes.io/config.hash"]
	manifest, _ := l.NodePath(n.Name, "/etc/kubernetes/manifests/"+component+".yaml")
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	stamp := fmt.Sprintf("    carotate.io/restart: %q\n", time.Now().Format(time.RFC3339Nano))
	changed := strings.Replace(string(data), "  annotations:\n", "  annotations:\n"+stamp, 1)
	if changed == string(data) {
		changed = strings.Replace(string(data), "metadata:\n", "metadata:\n  annotations:\n"+stamp, 1)
	}
	tmp := filepath.Join(filepath.Dir(manifest), "."+component+".yaml.tmp")
	if err := os.WriteFile(tmp, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, manifest); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pod, err := c.CoreV1().Pods("kube-system").Get(ctx, mirror, metav1.GetOptions{})
		if err != nil || pod.Annotations["kubernetes.io/config.hash"] == hashBefore {
			return false, nil
		}
		for _, cond := range pod.Status.Conditions {
			if cond.Type == corev1.PodReady {
				return cond.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("%s: mirror pod's config hash did not change to a ready pod within 2m", mirror)
	}
}

func sshRun(l *lab.Lab, n lab.Node, knownHostsFile, command string) (string, error) {
	keyPEM, err := os.ReadFile(l.SSHKey())
	if err != nil {
		return "", err
	}
	signer, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		return "", err
	}
	hostKeys, err := knownhosts.New(knownHostsFile)
	if err != nil {
		return "", err
	}
	client, err := ssh.Dial("tcp", net.JoinHostPort(n.IP, "22"), &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys,
		Timeout:         10 * time.Second,
	})
	if err != nil {
		return "", err
	}
	defer client.Close()
	session, err := client.NewSession()
	if err != nil {
		return "", err
	}
	defer session.Close()
	out, err := session.CombinedOutput(command)
	return string(out), err
}

func apiserverClient(t *testing.T, l *lab.Lab) *http.Client {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(l.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, c := range cfg.Clusters {
		pool.AppendCertsFromPEM(c.CertificateAuthorityData)
	}
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool},
			DisableKeepAlives: true,
		},
	}
}

func readyz(c *http.Client, hostport string) error {
	resp, err := c.Get("https://" + hostport + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /readyz: %s", resp.Status)
	}
	return nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
