package etcd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// These tests run a real three-member etcd on loopback, with TLS on the
// client and peer ports as kubeadm configures it.

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T, cn string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{cert, key}
}

func (ca testCA) issue(t *testing.T, cn string, ips ...net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, IPAddresses: ips}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, dir string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type testCluster struct {
	ca     testCA
	eps    []Endpoint
	peers  []string
	procs  []*exec.Cmd
	client tls.Certificate
}

// startCluster starts three etcd members and stops them (by PID) when
// the test ends.
func startCluster(t *testing.T) *testCluster {
	t.Helper()
	bin := filepath.Join(os.Getenv("CAROTATE_COMPONENTS"), "etcd")
	if os.Getenv("CAROTATE_COMPONENTS") == "" {
		bin = "/var/cache/carotate/components/etcd"
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CAROTATE_E2E") == "require" {
			t.Fatalf("etcd binary: %v (make components builds it)", err)
		}
		t.Skipf("no etcd binary at %s (make components builds it)", bin)
	}
	tc := &testCluster{ca: newCA(t, "etcd-ca")}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tc.ca.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := writePEM(t, dir, tc.ca.issue(t, "member", net.ParseIP("127.0.0.1")))
	tc.client = tc.ca.issue(t, "healthcheck-client")
	var names, initial []string
	var clientURLs []string
	for i := range 3 {
		names = append(names, fmt.Sprintf("m%d", i))
		clientURLs = append(clientURLs, fmt.Sprintf("https://127.0.0.1:%d", freePort(t)))
		tc.peers = append(tc.peers, fmt.Sprintf("https://127.0.0.1:%d", freePort(t)))
		initial = append(initial, names[i]+"="+tc.peers[i])
	}
	for i := range 3 {
		data := filepath.Join(dir, names[i])
		cmd := exec.Command(bin, "--name="+names[i], "--data-dir="+data,
			"--listen-client-urls="+clientURLs[i], "--advertise-client-urls="+clientURLs[i],
			"--listen-peer-urls="+tc.peers[i], "--initial-advertise-peer-urls="+tc.peers[i],
			"--initial-cluster="+strings.Join(initial, ","), "--initial-cluster-state=new",
			"--client-cert-auth", "--trusted-ca-file="+caFile, "--cert-file="+certFile, "--key-file="+keyFile,
			"--peer-client-cert-auth", "--peer-trusted-ca-file="+caFile, "--peer-cert-file="+certFile, "--peer-key-file="+keyFile,
			"--listen-metrics-urls=", "--log-level=error")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		log, err := os.Create(filepath.Join(dir, names[i]+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		tc.procs = append(tc.procs, cmd)
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
			log.Close()
			if t.Failed() {
				out, _ := os.ReadFile(log.Name())
				t.Logf("%s:\n%s", names[i], out)
			}
		})
		tc.eps = append(tc.eps, Endpoint{Node: "cp-" + names[i], URL: clientURLs[i], TLS: tc.config(tc.client)})
	}
	return tc
}

func (tc *testCluster) config(c tls.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(tc.ca.cert)
	return &tls.Config{Certificates: []tls.Certificate{c}, RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func TestHealthOfARealCluster(t *testing.T) {
	tc := startCluster(t)
	ctx := context.Background()
	h, err := WaitHealthy(ctx, tc.eps, time.Minute, 200*time.Millisecond)
	if err != nil {
		t.Fatalf("a fresh three-member cluster: %v", err)
	}
	if len(h.Members) != 3 || len(h.Statuses) != 3 || h.Statuses[0].Leader == 0 {
		t.Fatalf("health of a fresh cluster: %+v", h)
	}

	t.Run("peer handshake", func(t *testing.T) {
		leaf, err := PeerHandshake(ctx, tc.peers[1], tc.eps[1].TLS)
		if err != nil {
			t.Fatal(err)
		}
		if err := leaf.CheckSignatureFrom(tc.ca.cert); err != nil {
			t.Fatalf("peer certificate %q not from the CA: %v", leaf.Subject, err)
		}
		other := newCA(t, "other")
		if _, err := PeerHandshake(ctx, tc.peers[1], (&testCluster{ca: other}).config(tc.client)); err == nil {
			t.Fatal("a handshake that trusts another CA succeeded")
		}
	})

	t.Run("rejects", func(t *testing.T) {
		other := newCA(t, "old-etcd-ca")
		ep := tc.eps[0]
		ep.TLS = tc.config(other.issue(t, "carotate:verify-old-etcd"))
		if err := Rejects(ctx, ep); err != nil {
			t.Fatalf("a client certificate from an untrusted CA: %v", err)
		}
		err := Rejects(ctx, tc.eps[0])
		if err == nil || !strings.Contains(err.Error(), "accepted the client certificate") || !strings.Contains(err.Error(), "cp-m0") {
			t.Fatalf("a client certificate from the trusted CA: got %v, want an error naming the node that accepted it", err)
		}
	})

	t.Run("an endpoint missing from the inventory", func(t *testing.T) {
		h, err := Check(ctx, tc.eps[:2])
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Problem(); err == nil || !strings.Contains(err.Error(), "etcd member m2") || !strings.Contains(err.Error(), "is not the etcd of any control plane") {
			t.Fatalf("two of three members checked: got %v, want the third named", err)
		}
	})

	t.Run("a learner", func(t *testing.T) {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{tc.eps[0].URL}, TLS: tc.eps[0].TLS.Clone(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		// etcd refuses a member change until its members have been
		// connected for a few seconds.
		var add *clientv3.MemberAddResponse
		for add == nil {
			add, err = c.MemberAddAsLearner(cctx, []string{fmt.Sprintf("https://127.0.0.1:%d", freePort(t))})
			if err != nil && (!strings.Contains(err.Error(), "unhealthy cluster") || cctx.Err() != nil) {
				t.Fatal(err)
			}
			if err != nil {
				time.Sleep(500 * time.Millisecond)
			}
		}
		h, err := Check(ctx, tc.eps)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Problem(); err == nil || !strings.Contains(err.Error(), "is a learner") {
			t.Fatalf("with a learner: got %v", err)
		}
		if _, err := c.MemberRemove(cctx, add.Member.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := WaitHealthy(ctx, tc.eps, 30*time.Second, 200*time.Millisecond); err != nil {
			t.Fatalf("after the learner is removed: %v", err)
		}
	})

	t.Run("a member down", func(t *testing.T) {
		p := tc.procs[2]
		_ = p.Process.Kill()
		_ = p.Wait()
		h, err := Check(ctx, tc.eps)
		if err != nil {
			t.Fatal(err)
		}
		err = h.Problem()
		if err == nil || !strings.Contains(err.Error(), "node cp-m2") || !strings.Contains(err.Error(), "does not answer") {
			t.Fatalf("one member killed: got %v, want it named", err)
		}
		_, err = WaitHealthy(ctx, tc.eps, 2*time.Second, 500*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "not healthy after 2s") || !strings.Contains(err.Error(), "cp-m2") {
			t.Fatalf("waiting with a member down: got %v", err)
		}
		if _, err := Check(ctx, nil); err == nil {
			t.Fatal("Check of no endpoints succeeded")
		}
	})
}

func TestProblem(t *testing.T) {
	ok := Health{
		Members:  []Member{{ID: 1, Name: "a", ClientURLs: []string{"https://10.0.0.1:2379"}}, {ID: 2, Name: "b", ClientURLs: []string{"https://10.0.0.2:2379/"}}},
		Statuses: []MemberStatus{{Node: "cp-1", URL: "https://10.0.0.1:2379", Leader: 2}, {Node: "cp-2", URL: "https://10.0.0.2:2379", Leader: 2}},
	}
	if err := ok.Problem(); err != nil {
		t.Fatalf("a healthy cluster: %v", err)
	}
	for _, tt := range []struct {
		name   string
		change func(*Health)
		want   string
	}{
		{"no leader", func(h *Health) { h.Statuses[1].Leader = 0 }, "node cp-2: etcd at https://10.0.0.2:2379 has no leader"},
		{"split leader", func(h *Health) { h.Statuses[1].Leader = 1 }, "disagree on the leader"},
		{"alarm", func(h *Health) { h.Alarms = []Alarm{{Member: 1, Type: "NOSPACE"}} }, "alarm NOSPACE"},
		{"member errors", func(h *Health) { h.Statuses[0].Errors = []string{"corrupt"} }, "node cp-1: etcd at https://10.0.0.1:2379 reports corrupt"},
		{"two members one node", func(h *Health) { h.Members[1].ClientURLs = []string{"https://10.0.0.1:2379"} }, "node cp-1: two etcd members advertise its client URL"},
		{"one member two nodes", func(h *Health) { h.Members[0].ClientURLs = append(h.Members[0].ClientURLs, "https://10.0.0.2:2379") }, "advertises the client URLs of nodes cp-1, cp-2"},
		{"node not a member", func(h *Health) { h.Members = h.Members[:1] }, "node cp-2: its etcd at https://10.0.0.2:2379 is not in the member list"},
		{"no answer", func(h *Health) { h.Statuses = nil }, "no etcd member answered"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := Health{Members: append([]Member(nil), ok.Members...), Statuses: append([]MemberStatus(nil), ok.Statuses...)}
			for i := range h.Members {
				h.Members[i].ClientURLs = append([]string(nil), ok.Members[i].ClientURLs...)
			}
			tt.change(&h)
			if err := h.Problem(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}
