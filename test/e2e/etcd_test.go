package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/lab"
	"github.com/carotate/carotate/internal/lab/labtest"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// etcdCreds are a member's client credentials copied to the host: its CA
// bundle and kubeadm's healthcheck-client certificate and key, as they
// were when copied.
type etcdCreds struct{ ca, cert, key string }

func copyEtcdCreds(t *testing.T, l *lab.Lab, node string) etcdCreds {
	t.Helper()
	dir := t.TempDir()
	var c etcdCreds
	for dst, p := range map[*string]string{&c.ca: "etcd/ca.crt", &c.cert: "etcd/healthcheck-client.crt", &c.key: "etcd/healthcheck-client.key"} {
		host, err := l.NodePath(node, "/etc/kubernetes/pki/"+p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(host)
		if err != nil {
			t.Fatal(err)
		}
		*dst = filepath.Join(dir, strings.ReplaceAll(p, "/", "-"))
		if err := os.WriteFile(*dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func etcdURL(n lab.Node) string { return "https://" + n.IP + ":2379" }

// etcdctl runs the components' etcdctl on the host against one member,
// bounded in time.
func etcdctl(c etcdCreds, endpoint string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	argv := append([]string{"--endpoints=" + endpoint, "--cacert=" + c.ca, "--cert=" + c.cert, "--key=" + c.key,
		"--dial-timeout=5s", "--command-timeout=10s"}, args...)
	out, err := exec.CommandContext(ctx, filepath.Join(labtest.Components(), "etcdctl"), argv...).CombinedOutput()
	return string(out), err
}

// etcdKeys counts the keys under /registry/ by resource (the path's
// second element), read from one member.
func etcdKeys(t *testing.T, c etcdCreds, endpoint string) map[string]int {
	t.Helper()
	out, err := etcdctl(c, endpoint, "get", "/registry/", "--prefix", "--keys-only")
	if err != nil {
		t.Fatalf("etcdctl get /registry/ on %s: %v\n%s", endpoint, err, tail(out, 20))
	}
	counts := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		if parts := strings.SplitN(strings.TrimPrefix(line, "/registry/"), "/", 2); strings.HasPrefix(line, "/registry/") && len(parts) > 0 {
			counts[parts[0]]++
		}
	}
	return counts
}

// etcdStable are the resources a rotation changes in place, if at all:
// their counts are the same before and after. Pods, events, leases,
// secrets (switch deletes kubeadm-certs),
// endpoints and the like churn with every restart.
var etcdStable = []string{"namespaces", "configmaps", "serviceaccounts", "clusterroles", "clusterrolebindings",
	"roles", "rolebindings", "deployments", "daemonsets", "services", "apiregistration.k8s.io", "priorityclasses"}

// quorumWatch asks every member's /health once a second, each with the
// credentials its node holds at that moment, and keeps the fewest members
// that answered healthy at once.
type quorumWatch struct {
	mu      sync.Mutex
	min     int
	samples int
	low     []string
	stop    chan struct{}
	done    chan struct{}
}

func startQuorumWatch(t *testing.T, l *lab.Lab) *quorumWatch {
	q := &quorumWatch{min: len(l.ControlPlaneNodes()), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(q.done)
		for deadline := time.Now().Add(75 * time.Minute); time.Now().Before(deadline); {
			healthy := 0
			var bad []string
			for _, n := range l.ControlPlaneNodes() {
				if err := etcdHealth(l, n); err != nil {
					bad = append(bad, n.Name+": "+err.Error())
				} else {
					healthy++
				}
			}
			q.mu.Lock()
			q.samples++
			if healthy < q.min {
				q.min = healthy
			}
			if healthy < len(l.ControlPlaneNodes())-1 {
				q.low = append(q.low, time.Now().Format(time.TimeOnly)+" "+strings.Join(bad, "; "))
			}
			q.mu.Unlock()
			select {
			case <-q.stop:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	t.Cleanup(q.close)
	return q
}

func (q *quorumWatch) close() {
	select {
	case <-q.stop:
	default:
		close(q.stop)
	}
	<-q.done
}

// etcdHealth is one GET /health of a member, with its node's current
// healthcheck-client credentials and CA bundle.
func etcdHealth(l *lab.Lab, n lab.Node) error {
	read := func(p string) ([]byte, error) {
		host, err := l.NodePath(n.Name, "/etc/kubernetes/pki/etcd/"+p)
		if err != nil {
			return nil, err
		}
		return os.ReadFile(host)
	}
	ca, err := read("ca.crt")
	if err != nil {
		return err
	}
	crt, err := read("healthcheck-client.crt")
	if err != nil {
		return err
	}
	key, err := read("healthcheck-client.key")
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(crt, key)
	if err != nil {
		return err // caught between the certificate's write and the key's
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
	resp, err := hc.Get(etcdURL(n) + "/health")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var h struct {
		Health string `json:"health"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || h.Health != "true" {
		return fmt.Errorf("HTTP %d, health %q (%v)", resp.StatusCode, h.Health, err)
	}
	return nil
}

// checkEtcdRotated is what a finalized rotation of the etcd CA leaves:
// every member's CA the new one alone and its certificates signed by it;
// etcdctl with the old CA's client certificate refused by every member
// and with the new one served; every key kept.
func checkEtcdRotated(t *testing.T, l *lab.Lab, r *rotator, oldCreds etcdCreds, keysBefore map[string]int) {
	rec, _ := r.record()
	cps := l.ControlPlaneNodes()
	t.Run("etcd: every member's CA is the new etcd CA and signs its certificates", func(t *testing.T) {
		for _, n := range cps {
			read := func(p string) []*x509.Certificate { return nodeCerts(t, l, n.Name, "/etc/kubernetes/pki/"+p) }
			cas := read("etcd/ca.crt")
			if len(cas) != 1 || pki.SPKIFingerprint(cas[0]) != rec.CAs[model.EtcdCA].New {
				t.Errorf("%s: etcd/ca.crt holds %d certificates, want only the new etcd CA %s", n.Name, len(cas), rec.CAs[model.EtcdCA].New)
				continue
			}
			for _, leaf := range []string{"etcd/server.crt", "etcd/peer.crt", "etcd/healthcheck-client.crt", "apiserver-etcd-client.crt"} {
				if err := read(leaf)[0].CheckSignatureFrom(cas[0]); err != nil {
					t.Errorf("%s: %s is not signed by the new etcd CA: %v", n.Name, leaf, err)
				}
			}
		}
	})
	newCreds := copyEtcdCreds(t, l, cps[0].Name)
	t.Run("etcdctl: the old etcd CA's client certificate is refused by every member, the new one is served", func(t *testing.T) {
		for _, n := range cps {
			// The old client against the new serving certificate: trust
			// the new CA, present the old client certificate.
			mixed := etcdCreds{ca: newCreds.ca, cert: oldCreds.cert, key: oldCreds.key}
			if out, err := etcdctl(mixed, etcdURL(n), "endpoint", "health"); err == nil {
				t.Errorf("%s: etcdctl with the old client certificate succeeded:\n%s", n.Name, out)
			} else {
				t.Logf("%s: old client certificate: %s", n.Name, tail(strings.TrimSpace(out), 2))
			}
			if out, err := etcdctl(newCreds, etcdURL(n), "endpoint", "health"); err != nil {
				t.Errorf("%s: etcdctl with the new client certificate: %v\n%s", n.Name, err, out)
			}
		}
	})
	t.Run("etcd kept every key", func(t *testing.T) {
		after := etcdKeys(t, newCreds, etcdURL(cps[0]))
		var lines []string
		for k, v := range after {
			lines = append(lines, fmt.Sprintf("%s %d→%d", k, keysBefore[k], v))
		}
		sort.Strings(lines)
		t.Logf("keys under /registry/ before→after: %s", strings.Join(lines, ", "))
		for _, k := range etcdStable {
			if k == "configmaps" && after[k] == keysBefore[k]+1 {
				continue // kube-system/carotate-status, the rotation's own status
			}
			if keysBefore[k] != after[k] {
				t.Errorf("%d keys under /registry/%s before the rotation, %d after", keysBefore[k], k, after[k])
			}
		}
	})
}
