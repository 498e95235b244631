package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/check"
	"github.com/carotate/carotate/internal/inventory"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/node"
)

var testNow = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

func testCert(subject, spki, issuer string, isCA bool, left time.Duration) model.Cert {
	return model.Cert{Subject: subject, Issuer: subject, SPKISHA256: spki, SHA256: "sha-" + spki, IssuerSPKISHA256: issuer, IsCA: isCA,
		NotBefore: testNow.Add(-24 * time.Hour), NotAfter: testNow.Add(left)}
}

// fixture is a small cluster: one control plane and one worker, with a
// stray manifest on the control plane.
func fixture() model.Cluster {
	const day = 24 * time.Hour
	ca := testCert("CN=kubernetes", "aaaaaaaaaaaa", "aaaaaaaaaaaa", true, 3650*day)
	fp := testCert("CN=front-proxy-ca", "bbbbbbbbbbbb", "bbbbbbbbbbbb", true, 3650*day)
	apiserver := testCert("CN=kube-apiserver", "cccccccccccc", "aaaaaaaaaaaa", false, 365*day)
	admin := testCert("O=kubeadm:cluster-admins,CN=kubernetes-admin", "dddddddddddd", "aaaaaaaaaaaa", false, 60*day)
	kubelet := testCert("O=system:nodes,CN=system:node:worker-1", "eeeeeeeeeeee", "aaaaaaaaaaaa", false, 300*day)
	return model.Cluster{
		ObservedAt: testNow,
		Nodes: []model.Node{
			{Name: "cp-1", Roles: []string{"control-plane"}, InternalIP: "192.0.2.10", Ready: true, Reachable: true, Executor: "ssh",
				ClockOffset: 120 * time.Millisecond,
				Files: []model.File{
					{Path: "/etc/kubernetes/pki/apiserver.crt", Kind: model.FileCertificate, Mode: 0o644, Certs: []model.Cert{apiserver}},
					{Path: "/etc/kubernetes/pki/ca.crt", Kind: model.FileCertificate, Mode: 0o644, Certs: []model.Cert{ca}},
					{Path: "/etc/kubernetes/pki/ca.key", Kind: model.FileKey, Mode: 0o600, KeySPKISHA256: "aaaaaaaaaaaa"},
				},
				Kubeconfigs: []model.Kubeconfig{{Path: "/etc/kubernetes/admin.conf", Role: "admin", Cluster: "kubernetes", User: "kubernetes-admin",
					CACerts: []model.Cert{ca}, ClientCert: &admin}},
				StrayManifests: []string{"/etc/kubernetes/manifests/kube-apiserver.yaml.bak"},
			},
			{Name: "worker-1", Roles: []string{}, InternalIP: "192.0.2.11", Ready: true, Reachable: true, Executor: "ssh",
				ClockOffset: -30 * time.Millisecond,
				Files: []model.File{
					{Path: "/etc/kubernetes/pki/ca.crt", Kind: model.FileCertificate, Mode: 0o644, Certs: []model.Cert{ca}},
					{Path: "/var/lib/kubelet/pki/kubelet-client-current.pem", Kind: model.FileCertAndKey, Mode: 0o600, Certs: []model.Cert{kubelet}},
				},
				Kubeconfigs: []model.Kubeconfig{{Path: "/etc/kubernetes/kubelet.conf", Role: "kubelet", Cluster: "default-cluster", User: "default-auth",
					CACerts: []model.Cert{ca}, ClientCert: &kubelet, ClientCertFile: "/var/lib/kubelet/pki/kubelet-client-current.pem"}},
			},
		},
		CAs: []model.CA{
			{Kind: model.ClusterCA, Cert: ca,
				KeyFiles: []model.Location{{Node: "cp-1", Path: "/etc/kubernetes/pki/ca.key"}},
				References: []model.Location{
					{Object: "ConfigMap default/kube-root-ca.crt", Field: "data[ca.crt]"},
					{Object: "ConfigMap kube-system/kube-root-ca.crt", Field: "data[ca.crt]"},
					{Node: "cp-1", Path: "/etc/kubernetes/admin.conf", Field: "clusters[kubernetes].certificate-authority-data"},
					{Node: "cp-1", Path: "/etc/kubernetes/pki/ca.crt"},
					{Node: "cp-1", Path: "/etc/kubernetes/pki/ca.crt", Flag: "kube-apiserver --client-ca-file"},
					{Node: "worker-1", Path: "/etc/kubernetes/pki/ca.crt", Flag: "KubeletConfiguration clientCAFile"},
				},
				Signed: []model.Location{{Node: "cp-1", Path: "/etc/kubernetes/pki/apiserver.crt"}, {Node: "cp-1", Path: "/etc/kubernetes/admin.conf"},
					{Node: "worker-1", Path: "/var/lib/kubelet/pki/kubelet-client-current.pem"}}},
			{Kind: model.FrontProxyCA, Cert: fp},
		},
		API: model.API{
			KubeadmConfig: &model.KubeadmConfig{KubernetesVersion: "v1.37.2", CertificatesDir: "/etc/kubernetes/pki", ClusterName: "kubernetes", ControlPlaneEndpoint: "192.0.2.10:6443"},
			APIServices:   []model.APIService{{Name: "v1.", Local: true, Available: true}},
		},
	}
}

const wantText = `Cluster observed at 2026-03-14T12:00:00Z: 2 node(s), 2 CA(s)
kubeadm: kubernetes v1.37.2, certificatesDir /etc/kubernetes/pki, endpoint 192.0.2.10:6443

CERTIFICATE AUTHORITIES
cluster CA  CN=kubernetes, expires 2036-03-11 (3650d), spki aaaaaaaa
  key         cp-1:/etc/kubernetes/pki/ca.key
  referenced  cp-1:/etc/kubernetes/admin.conf clusters[kubernetes].certificate-authority-data
  referenced  cp-1:/etc/kubernetes/pki/ca.crt
  referenced  cp-1:/etc/kubernetes/pki/ca.crt (kube-apiserver --client-ca-file)
  referenced  worker-1:/etc/kubernetes/pki/ca.crt (KubeletConfiguration clientCAFile)
  referenced  ConfigMap kube-root-ca.crt in 2 namespace(s)
  signed      3 certificate(s)
front-proxy CA  CN=front-proxy-ca, expires 2036-03-11 (3650d), spki bbbbbbbb

NODES
  NAME      ROLES          ADDRESS     READY  INSPECTED  CLOCK OFFSET
  cp-1      control-plane  192.0.2.10  yes    yes (ssh)  +120ms
  worker-1  -              192.0.2.11  yes    yes (ssh)  -30ms

node cp-1: certificates
  FILE                               SUBJECT            ISSUER             EXPIRES
  /etc/kubernetes/pki/apiserver.crt  CN=kube-apiserver  cluster CA         2027-03-14 (365d)
  /etc/kubernetes/pki/ca.crt         CN=kubernetes      cluster CA (self)  2036-03-11 (3650d)
node cp-1: kubeconfigs
  KUBECONFIG                  ROLE   TRUSTS      CLIENT                                        ISSUER      EXPIRES
  /etc/kubernetes/admin.conf  admin  cluster CA  O=kubeadm:cluster-admins,CN=kubernetes-admin  cluster CA  2026-05-13 (60d)

node worker-1: certificates
  FILE                                             SUBJECT                                 ISSUER             EXPIRES
  /etc/kubernetes/pki/ca.crt                       CN=kubernetes                           cluster CA (self)  2036-03-11 (3650d)
  /var/lib/kubelet/pki/kubelet-client-current.pem  O=system:nodes,CN=system:node:worker-1  cluster CA         2027-01-08 (300d)
node worker-1: kubeconfigs
  KUBECONFIG                    ROLE     TRUSTS      CLIENT                                  ISSUER      EXPIRES
  /etc/kubernetes/kubelet.conf  kubelet  cluster CA  O=system:nodes,CN=system:node:worker-1  cluster CA  2027-01-08 (300d)

FINDINGS: 1 blocking, 1 warning, 0 info
BLOCKING  stray-manifest  cp-1:/etc/kubernetes/manifests/kube-apiserver.yaml.bak
          the kubelet loads every file in manifests/ whose name does not start with a dot, so this one may run as a static pod, or win over the real one
          action: move it out of /etc/kubernetes/manifests (keep backups elsewhere) and run check again
WARNING   cert-expiring  cp-1:/etc/kubernetes/admin.conf users[kubernetes-admin].client-certificate-data
          O=kubeadm:cluster-admins,CN=kubernetes-admin expires on 2026-05-13, in 60 days
          action: renew it (kubeadm certs renew) unless a rotation reissues it before then
`

// fakeGather returns a fixed cluster and records what it was asked for.
type fakeGather struct {
	cluster model.Cluster
	err     error
	access  ClusterAccess
	opts    inventory.Options
	called  bool
}

func (f *fakeGather) gather(_ context.Context, a ClusterAccess, o inventory.Options) (model.Cluster, error) {
	f.called, f.access, f.opts = true, a, o
	return f.cluster, f.err
}

func run(t *testing.T, g *fakeGather, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Execute(context.Background(), args, Env{
		Stdout: &out, Stderr: &errOut, Now: func() time.Time { return testNow },
		Getenv: func(k string) string { return env[k] }, Gather: g.gather,
	})
	return code, out.String(), errOut.String()
}

func TestCheckText(t *testing.T) {
	g := &fakeGather{cluster: fixture()}
	code, stdout, stderr := run(t, g, nil, "check")
	if code != ExitBlocking {
		t.Errorf("exit code = %d, want %d (blocking); stderr:\n%s", code, ExitBlocking, stderr)
	}
	if diff := cmp.Diff(wantText, stdout); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if !strings.Contains(stderr, "error: blocking findings: 1 blocking finding(s); fix them before rotating") {
		t.Errorf("stderr does not explain the exit code:\n%s", stderr)
	}
}

func TestCheckJSON(t *testing.T) {
	g := &fakeGather{cluster: fixture()}
	code, stdout, _ := run(t, g, nil, "check", "--output", "json")
	if code != ExitBlocking {
		t.Errorf("exit code = %d, want %d", code, ExitBlocking)
	}
	var got Report
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, stdout)
	}
	findings := check.Run(fixture(), check.Options{})
	want := NewReport(fixture(), findings)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JSON report (-want +got):\n%s", diff)
	}
}

func TestCheckExitCodes(t *testing.T) {
	healthy := fixture()
	healthy.Nodes[0].StrayManifests = nil
	healthy.Nodes[0].Kubeconfigs[0].ClientCert.NotAfter = testNow.Add(365 * 24 * time.Hour)
	unreachable := fixture()
	unreachable.Nodes[1] = model.Node{Name: "worker-1", InternalIP: "192.0.2.11", Ready: true, Executor: "ssh",
		Error: "node worker-1 could not be reached: host key unknown"}
	skipped := healthy
	skipped.Nodes = append(append([]model.Node(nil), healthy.Nodes...), model.Node{Name: "win-1", Ready: true, Skipped: true})
	tests := []struct {
		name       string
		gather     fakeGather
		args       []string
		wantCode   int
		wantStderr string
	}{
		{name: "healthy", gather: fakeGather{cluster: healthy}, wantCode: ExitOK},
		{name: "healthy with an expiring CA inside a longer threshold is a warning", gather: fakeGather{cluster: healthy},
			args: []string{"--expiry-threshold", "5000d"}, wantCode: ExitOK},
		{name: "a skipped node is not a failure", gather: fakeGather{cluster: skipped}, wantCode: ExitOK},
		{name: "blocking findings", gather: fakeGather{cluster: fixture()}, wantCode: ExitBlocking, wantStderr: "blocking finding"},
		{name: "unreachable node wins over blocking", gather: fakeGather{cluster: unreachable}, wantCode: ExitIncomplete,
			wantStderr: "error: could not inspect the whole cluster: node(s) worker-1 could not be inspected"},
		{name: "API unreachable", gather: fakeGather{err: errors.New("list nodes: connection refused")}, wantCode: ExitIncomplete,
			wantStderr: "error: could not inspect the whole cluster: list nodes: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, &tt.gather, nil, append([]string{"check"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantStderr)
			}
		})
	}
}

func TestCheckPassesFlagsAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inv.yaml")
	if err := os.WriteFile(inv, []byte("nodes:\n- name: cp-1\n  executor: local\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{EnvSSHUser: "root", EnvSSHKey: "/lab/id_ed25519", EnvSSHKnownHosts: "/lab/known_hosts:/etc/ssh/ssh_known_hosts"}
	tests := []struct {
		name       string
		args       []string
		wantAccess ClusterAccess
		wantSSH    inventory.SSHDefaults
		wantConc   int
		wantInv    *inventory.File
	}{
		{
			name:     "environment defaults",
			wantSSH:  inventory.SSHDefaults{User: "root", IdentityFiles: []string{"/lab/id_ed25519"}, KnownHostsFiles: []string{"/lab/known_hosts", "/etc/ssh/ssh_known_hosts"}},
			wantConc: inventory.DefaultNodeConcurrency,
		},
		{
			name: "flags win over the environment",
			args: []string{"--kubeconfig", "/tmp/admin.conf", "--context", "lab", "--ssh-user", "ubuntu", "--ssh-key", "/a", "--ssh-key", "/b",
				"--ssh-known-hosts", "/kh", "--ssh-port", "2222", "--sudo", "--node-concurrency", "3", "--inventory", inv},
			wantAccess: ClusterAccess{Kubeconfig: "/tmp/admin.conf", Context: "lab"},
			wantSSH:    inventory.SSHDefaults{User: "ubuntu", IdentityFiles: []string{"/a", "/b"}, KnownHostsFiles: []string{"/kh"}, Port: "2222", Sudo: true},
			wantConc:   3,
			wantInv:    &inventory.File{Source: inv, Nodes: []inventory.Entry{{Name: "cp-1", Executor: "local"}}},
		},
		{
			name: "jump hosts from the flag",
			args: []string{"--ssh-jump", "ops@bastion:2222,gw"},
			wantSSH: inventory.SSHDefaults{User: "root", IdentityFiles: []string{"/lab/id_ed25519"}, KnownHostsFiles: []string{"/lab/known_hosts", "/etc/ssh/ssh_known_hosts"},
				Jump: []node.SSHConfig{{Address: "bastion:2222", User: "ops"}, {Address: "gw"}}},
			wantConc: inventory.DefaultNodeConcurrency,
		},
		{
			name: "--ssh-jump none goes direct, whatever ~/.ssh/config says",
			args: []string{"--ssh-jump", "none"},
			wantSSH: inventory.SSHDefaults{User: "root", IdentityFiles: []string{"/lab/id_ed25519"}, KnownHostsFiles: []string{"/lab/known_hosts", "/etc/ssh/ssh_known_hosts"},
				Jump: []node.SSHConfig{}},
			wantConc: inventory.DefaultNodeConcurrency,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &fakeGather{cluster: fixture()}
			run(t, g, env, append([]string{"check"}, tt.args...)...)
			if !g.called {
				t.Fatal("gather was not called")
			}
			g.access.Getenv, g.access.Logger = nil, nil
			if diff := cmp.Diff(tt.wantAccess, g.access); diff != "" {
				t.Errorf("cluster access (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSSH, g.opts.SSH); diff != "" {
				t.Errorf("SSH defaults (-want +got):\n%s", diff)
			}
			if g.opts.NodeConcurrency != tt.wantConc {
				t.Errorf("node concurrency = %d, want %d", g.opts.NodeConcurrency, tt.wantConc)
			}
			if diff := cmp.Diff(tt.wantInv, g.opts.Inventory); diff != "" {
				t.Errorf("inventory (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCheckTextServiceAccountKey: check shows the service-account key's
// type, size and fingerprint, and which component signs and verifies
// tokens with which file.
func TestCheckTextServiceAccountKey(t *testing.T) {
	const fp = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	c := model.Cluster{ObservedAt: time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC), CAs: []model.CA{{
		Kind: model.ServiceAccountCA, Cert: model.Cert{SPKISHA256: fp}, KeyAlgorithm: "RSA-2048",
		KeyFiles: []model.Location{
			{Node: "cp-1", Path: "/etc/kubernetes/pki/sa.key"},
			{Node: "cp-1", Path: "/etc/kubernetes/pki/sa.key", Flag: "kube-apiserver --service-account-signing-key-file"},
			{Node: "cp-1", Path: "/etc/kubernetes/pki/sa.key", Flag: "kube-controller-manager --service-account-private-key-file"},
		},
		References: []model.Location{
			{Node: "cp-1", Path: "/etc/kubernetes/pki/sa.pub"},
			{Node: "cp-1", Path: "/etc/kubernetes/pki/sa.pub", Flag: "kube-apiserver --service-account-key-file"},
		},
	}}}
	var out strings.Builder
	if err := writeText(&out, NewReport(c, nil)); err != nil {
		t.Fatal(err)
	}
	want := `
CERTIFICATE AUTHORITIES
service-account CA  signing key pair, RSA-2048, spki sha256 ` + fp + `
  signs with     cp-1:/etc/kubernetes/pki/sa.key
  signs with     cp-1:/etc/kubernetes/pki/sa.key (kube-apiserver --service-account-signing-key-file)
  signs with     cp-1:/etc/kubernetes/pki/sa.key (kube-controller-manager --service-account-private-key-file)
  verifies with  cp-1:/etc/kubernetes/pki/sa.pub
  verifies with  cp-1:/etc/kubernetes/pki/sa.pub (kube-apiserver --service-account-key-file)
`
	got := out.String()
	start, end := strings.Index(got, "\nCERTIFICATE AUTHORITIES"), strings.Index(got, "\nNODES")
	if start < 0 || end < start {
		t.Fatalf("no CA section in:\n%s", got)
	}
	if diff := cmp.Diff(want, got[start:end]); diff != "" {
		t.Errorf("CA section (-want +got):\n%s", diff)
	}
}
