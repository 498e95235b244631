package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/carotate/carotate/internal/kubeconfig"
	"github.com/carotate/carotate/internal/lab"
	"github.com/carotate/carotate/internal/lab/labtest"
	"github.com/carotate/carotate/internal/pki"
)

// checkRenewal renews the cluster and front-proxy CAs of a finished
// rotation's cluster and finalizes the renewal, with the probes recorded:
// every node stays Ready and every probe passes, kube-apiserver is never
// restarted, each CA keeps its key and subject with a new certificate,
// and every certificate issued before the renewal still verifies against
// what finalize leaves, as does a client that trusts only the old
// certificate.
func checkRenewal(t *testing.T, l *lab.Lab, r *rotator) {
	ctx := context.Background()
	cp := l.ControlPlaneNodes()[0].Name
	admin, _ := l.NodePath(cp, "/etc/kubernetes/admin.conf")
	oldAdmin, err := os.ReadFile(admin)
	if err != nil {
		t.Fatal(err)
	}
	oldAdminFile := filepath.Join(t.TempDir(), "admin-before-renewal.conf")
	if err := os.WriteFile(oldAdminFile, oldAdmin, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitHealthy(ctx, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	oldCA := nodeCerts(t, l, cp, "/etc/kubernetes/pki/ca.crt")[0]
	oldFront := nodeCerts(t, l, cp, "/etc/kubernetes/pki/front-proxy-ca.crt")[0]
	leaves := issuedCertificates(t, l)
	apiserverBefore := apiserverContainer(t, l, cp)

	probes := startProbeRecorder(t, l)
	start := time.Now()
	renewer := *r
	renewer.t, renewer.kubeconfig = t, admin
	res := renewer.run("renew", "--yes", "--reason", "e2e: the CA nears its end")
	if res.code != 0 || !strings.Contains(res.stdout, "has switched in") || !strings.Contains(res.stdout, "Renewal keeps each CA's key and subject") {
		t.Fatalf("renew: exit %d", res.code)
	}
	if rec, _ := renewer.record(); !rec.Renew || rec.Reason != "e2e: the CA nears its end" {
		t.Errorf("the record does not hold the renewal and its reason: %+v", rec)
	}
	res = renewer.run("finalize", "--yes")
	if res.code != 0 || !strings.Contains(res.stdout, "Finalized renewal") {
		t.Fatalf("finalize of the renewal: exit %d", res.code)
	}
	end := time.Now()

	t.Run("every node Ready, every probe passing throughout", func(t *testing.T) {
		if err := l.WaitHealthy(ctx, 3*time.Minute); err != nil {
			t.Error(err)
		}
		var ok int64
		for n, p := range probes.tally(start, end) {
			ok += p.ok
			if p.failed > 0 {
				t.Errorf("node %s: %d probe failures in %d window(s) during the renewal", n, p.failed, p.windows)
			}
		}
		if ok == 0 {
			t.Error("no probe succeeded: the test cannot see a failure")
		}
	})
	t.Run("kube-apiserver is not restarted", func(t *testing.T) {
		if got := apiserverContainer(t, l, cp); got != apiserverBefore {
			t.Errorf("kube-apiserver on %s restarted: %s, then %s", cp, apiserverBefore, got)
		}
	})
	t.Run("each CA keeps its key and subject, with a new certificate", func(t *testing.T) {
		for _, n := range l.Nodes {
			for p, old := range map[string]*x509.Certificate{"/etc/kubernetes/pki/ca.crt": oldCA, "/etc/kubernetes/pki/front-proxy-ca.crt": oldFront} {
				if !n.ControlPlane && strings.Contains(p, "front-proxy") {
					continue
				}
				got := nodeCerts(t, l, n.Name, p)
				if len(got) != 1 || !bytes.Equal(got[0].RawSubject, old.RawSubject) || pki.SPKIFingerprint(got[0]) != pki.SPKIFingerprint(old) || got[0].Equal(old) {
					t.Errorf("%s:%s holds %d certificate(s); want one, not the old one, with its subject and key", n.Name, p, len(got))
				}
			}
		}
	})
	t.Run("every certificate issued before the renewal verifies against the new ca.crt", func(t *testing.T) {
		roots := x509.NewCertPool()
		roots.AddCert(nodeCerts(t, l, cp, "/etc/kubernetes/pki/ca.crt")[0])
		roots.AddCert(nodeCerts(t, l, cp, "/etc/kubernetes/pki/front-proxy-ca.crt")[0])
		for where, c := range leaves {
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Errorf("%s (%s) does not verify: %v", where, c.Subject, err)
			}
		}
		if len(leaves) < 10 {
			t.Errorf("only %d certificates found: the check does not see the cluster's leaves", len(leaves))
		}
		if now := issuedCertificates(t, l); len(now) != len(leaves) {
			t.Errorf("%d leaf certificates now, %d before: renewal reissued or dropped some", len(now), len(leaves))
		} else {
			for where, c := range leaves {
				if !now[where].Equal(c) {
					t.Errorf("%s changed in a renewal without --leaves", where)
				}
			}
		}
	})
	t.Run("a client that trusts only the old certificate still works", func(t *testing.T) {
		kubectl := filepath.Join(labtest.Components(), "kubectl")
		if out, err := exec.Command(kubectl, "--kubeconfig", oldAdminFile, "get", "nodes").CombinedOutput(); err != nil {
			t.Errorf("kubectl with the admin.conf from before the renewal: %v\n%s", err, out)
		}
	})
	t.Logf("REPORT renew 1+2: renew and finalize in %s, probes %v", end.Sub(start).Round(time.Second), probes.failures(t, start, end))
}

// apiserverContainer names kube-apiserver's running container on node,
// which a restart changes.
func apiserverContainer(t *testing.T, l *lab.Lab, node string) string {
	t.Helper()
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.CoreV1().Pods("kube-system").Get(context.Background(), "kube-apiserver-"+node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Status.ContainerStatuses) == 0 {
		t.Fatalf("kube-apiserver-%s has no container status", node)
	}
	cs := p.Status.ContainerStatuses[0]
	return fmt.Sprintf("%s (restarts %d)", cs.ContainerID, cs.RestartCount)
}

// issuedCertificates are the leaf certificates on every node that the
// cluster's CAs signed: the control planes' pki files, the client
// certificates of their kubeconfigs, and every kubelet's client
// certificate, keyed by node and file.
func issuedCertificates(t *testing.T, l *lab.Lab) map[string]*x509.Certificate {
	t.Helper()
	out := map[string]*x509.Certificate{}
	add := func(where string, data []byte) {
		for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
			if block.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if !c.IsCA {
				out[where] = c
			}
			return // the leaf comes first
		}
	}
	read := func(node, p string) []byte {
		host, _ := l.NodePath(node, p)
		if target, err := os.Readlink(host); err == nil {
			host, _ = l.NodePath(node, target) // the kubelet's link is absolute on the node
		}
		b, err := os.ReadFile(host)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, n := range l.Nodes {
		add(n.Name+":/var/lib/kubelet/pki/kubelet-client-current.pem", read(n.Name, "/var/lib/kubelet/pki/kubelet-client-current.pem"))
		if !n.ControlPlane {
			continue
		}
		for _, f := range []string{"apiserver.crt", "apiserver-kubelet-client.crt", "front-proxy-client.crt"} {
			add(n.Name+":/etc/kubernetes/pki/"+f, read(n.Name, "/etc/kubernetes/pki/"+f))
		}
		for _, f := range []string{"admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf"} {
			p := "/etc/kubernetes/" + f
			cfg, err := kubeconfig.Parse(n.Name+":"+p, read(n.Name, p))
			if err != nil {
				t.Fatal(err)
			}
			add(n.Name+":"+p, cfg.ClientCertData)
		}
	}
	return out
}
