package verify

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/carotate/carotate/internal/node"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// nodeTree writes files under a node's root with a modification time, so
// that the scan's "not modified since" skip is under the test's control
// whatever the real clock says.
type nodeTree struct {
	t    *testing.T
	root string
}

func newNodeTree(t *testing.T) nodeTree { return nodeTree{t: t, root: t.TempDir()} }

func (n nodeTree) write(path string, mtime time.Time, lines ...string) {
	n.t.Helper()
	host := filepath.Join(n.root, path)
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		n.t.Fatal(err)
	}
	data := strings.Join(lines, "\n")
	if len(lines) > 0 {
		data += "\n"
	}
	if err := os.WriteFile(host, []byte(data), 0o644); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Chtimes(host, mtime, mtime); err != nil {
		n.t.Fatal(err)
	}
}

func (n nodeTree) symlink(path, target string) {
	n.t.Helper()
	host := filepath.Join(n.root, path)
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Symlink(target, host); err != nil {
		n.t.Fatal(err)
	}
}

func (n nodeTree) exec(name string) node.Executor {
	n.t.Helper()
	l, err := node.NewLocal(name, n.root)
	if err != nil {
		n.t.Fatal(err)
	}
	return l
}

func TestScanTLSErrors(t *testing.T) {
	since := fixedNow()
	at := func(d time.Duration) time.Time { return since.Add(d) }
	cri := func(d time.Duration, stream, tag, msg string) string {
		return at(d).Format(time.RFC3339Nano) + " " + stream + " " + tag + " " + msg
	}
	fresh, stale := at(time.Hour), at(-2*time.Hour)
	const marker = "SN=4242,"
	const (
		apiserverLog = "/var/log/pods/kube-system_kube-apiserver-cp-1_11111111/kube-apiserver/0.log"
		kcmLog       = "/var/log/pods/kube-system_kube-controller-manager-cp-1_22222222/kube-controller-manager/1.log"
		etcdLog      = "/var/log/pods/kube-system_etcd-cp-1_33333333/etcd/0.log"
		proxyLog     = "/var/log/pods/kube-system_kube-proxy-abcde_44444444/kube-proxy/0.log"
	)

	cp1 := newNodeTree(t)
	cp1.write(apiserverLog, fresh,
		cri(-time.Minute, "stderr", "F", "E1127 21:29:00.000000 1 a.go:1] x509: before the phase began"),
		cri(time.Second, "stderr", "F", "I1127 21:30:01.000000 1 a.go:1] serving securely"),
		cri(3*time.Second, "stderr", "F", `E1127 21:30:03.000000 1 authentication.go:75] "Unable to authenticate the request" err="verifying certificate `+marker+` SKID=, AKID= failed: x509: certificate signed by unknown authority"`),
		cri(4*time.Second, "stderr", "F", "I1127 21:30:04.000000 1 a.go:1] http: TLS handshake error from 10.0.0.12:40000: remote error: tls: bad certificate"),
	)
	// Rotated before the phase began: not read, whatever it holds.
	cp1.write(strings.TrimSuffix(apiserverLog, "0.log")+"0.log.20261127-192800", stale,
		cri(5*time.Second, "stderr", "F", "x509: in a file not modified since the phase began"))
	cp1.write(strings.TrimSuffix(apiserverLog, "0.log")+"0.log.20261127-213500.gz", fresh,
		cri(5*time.Second, "stderr", "F", "x509: compressed"))
	cp1.write(kcmLog, fresh,
		cri(2*time.Second, "stderr", "P", "E1127 21:30:02.000000 1 c.go:1] failed to sync: Get \"https://10.0.0.10:6443\": tls: failed to verify certificate: x5"),
		cri(2*time.Second, "stderr", "F", "09: certificate signed by unknown authority"),
	)
	// With cri-dockerd the kubelet links to the runtime's file.
	cp1.write("/var/lib/docker/containers/abc/abc.log", fresh,
		cri(6*time.Second, "stderr", "F", `{"level":"warn","msg":"rejected connection","error":"tls: bad certificate"}`))
	cp1.symlink(etcdLog, "/var/lib/docker/containers/abc/abc.log")
	cp1.write("/var/log/pods/kube-system_coredns-5d78c9869d-xyz_55555555/coredns/0.log", fresh,
		cri(time.Second, "stdout", "F", "x509: not a pod we read"))
	cp1.write("/var/log/pods/default_kube-apiserver-cp-1_66666666/kube-apiserver/0.log", fresh,
		cri(time.Second, "stdout", "F", "x509: not in kube-system"))
	cp1.write("/kubelet.log", fresh,
		"E1127 21:29:30.000000 812 kubelet.go:1] x509: before the phase began",
		"I1127 21:30:05.000000 812 kubelet.go:1] Started kubelet",
		"E1127 21:30:07.000000 812 reflector.go:1] Failed to watch: Get \"https://10.0.0.10:6443\": tls: failed to verify certificate: x509: certificate signed by unknown authority",
	)

	w1 := newNodeTree(t)
	w1.write(proxyLog, fresh,
		cri(8*time.Second, "stderr", "F", "E1127 21:30:08.000000 1 reflector.go:1] x509: certificate signed by unknown authority"))
	w1.write("/kubelet.log", fresh)

	// A node whose runtime writes another format, and without a kubelet log.
	w2 := newNodeTree(t)
	w2.write("/var/log/pods/kube-system_kube-proxy-fghij_77777777/kube-proxy/0.log", fresh,
		`{"log":"x509: certificate signed by unknown authority\n","stream":"stderr","time":"2026-11-27T21:30:09Z"}`)

	opts := ScanOptions{
		Ignore:          []string{marker},
		KubeletCommand:  []string{"cat", "kubelet.log"}, // run with the node's root as working directory
		KubeletTimeZone: time.UTC,
	}
	nodes := []NodeLogs{{Exec: cp1.exec("cp-1")}, {Name: "w-1", Exec: w1.exec("ignored-name")}, {Exec: w2.exec("w-2")}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := ScanTLSErrors(ctx, nodes, since, opts)

	wantFindings := []Finding{
		{Node: "cp-1", Component: "kube-controller-manager", Source: kcmLog, Time: at(2 * time.Second),
			Line: "E1127 21:30:02.000000 1 c.go:1] failed to sync: Get \"https://10.0.0.10:6443\": tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{Node: "cp-1", Component: "kube-apiserver", Source: apiserverLog, Time: at(4 * time.Second),
			Line: "I1127 21:30:04.000000 1 a.go:1] http: TLS handshake error from 10.0.0.12:40000: remote error: tls: bad certificate"},
		{Node: "cp-1", Component: "etcd", Source: etcdLog, Time: at(6 * time.Second),
			Line: `{"level":"warn","msg":"rejected connection","error":"tls: bad certificate"}`},
		{Node: "cp-1", Component: "kubelet", Source: "cat kubelet.log", Time: at(7 * time.Second),
			Line: "E1127 21:30:07.000000 812 reflector.go:1] Failed to watch: Get \"https://10.0.0.10:6443\": tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{Node: "w-1", Component: "kube-proxy", Source: proxyLog, Time: at(8 * time.Second),
			Line: "E1127 21:30:08.000000 1 reflector.go:1] x509: certificate signed by unknown authority"},
	}
	if diff := cmp.Diff(wantFindings, got.Findings, cmpTime); diff != "" {
		t.Errorf("findings mismatch (-want +got):\n%s", diff)
	}
	if got.Total != len(wantFindings) {
		t.Errorf("Total = %d, want %d", got.Total, len(wantFindings))
	}
	wantScanned := []string{
		"cp-1:" + etcdLog, "cp-1:" + apiserverLog, "cp-1:" + kcmLog, "cp-1:cat kubelet.log",
		"w-1:" + proxyLog, "w-1:cat kubelet.log",
	}
	if diff := cmp.Diff(wantScanned, got.Scanned); diff != "" {
		t.Errorf("scanned mismatch (-want +got):\n%s", diff)
	}
	wantFragments(t, err,
		"scanning container logs on node w-2", "kube-proxy-fghij_77777777/kube-proxy/0.log", "CRI log format",
		"scanning the kubelet log on node w-2", "node w-2: run cat", "exit status 1",
		"cannot tell whether components logged TLS errors")
	if strings.Contains(err.Error(), "cp-1") || strings.Contains(err.Error(), "w-1") {
		t.Errorf("error names nodes that were read: %v", err)
	}
	wantFragments(t, got.Err(), "5 TLS error lines logged since 2026-11-27T21:30:00Z", "cp-1 kube-controller-manager: E1127")
}

func TestScanTLSErrorsBounds(t *testing.T) {
	since := fixedNow()
	n := newNodeTree(t)
	var lines []string
	for i := range 30 {
		lines = append(lines, since.Add(time.Duration(30-i)*time.Second).Format(time.RFC3339Nano)+" stderr F x509: line")
	}
	n.write("/var/log/pods/kube-system_kube-scheduler-cp-1_uid/kube-scheduler/0.log", since.Add(time.Hour), lines...)
	n.write("/kubelet.log", since.Add(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := ScanTLSErrors(ctx, []NodeLogs{{Exec: n.exec("cp-1")}}, since, ScanOptions{KubeletCommand: []string{"cat", "kubelet.log"}, MaxFindings: 4})
	if err != nil {
		t.Fatal(err)
	}
	if got.Total != 30 || len(got.Findings) != 4 {
		t.Fatalf("Total %d with %d findings, want 30 with 4", got.Total, len(got.Findings))
	}
	if !slices.IsSortedFunc(got.Findings, func(a, b Finding) int { return a.Time.Compare(b.Time) }) {
		t.Errorf("findings not in time order: %v", got.Findings)
	}
	wantFragments(t, got.Err(), "30 TLS error lines", "… and 26 more")
}

func TestScanTLSErrorsClean(t *testing.T) {
	since := fixedNow()
	n := newNodeTree(t)
	n.write("/var/log/pods/kube-system_kube-scheduler-cp-1_uid/kube-scheduler/0.log", since.Add(time.Hour),
		since.Add(time.Second).Format(time.RFC3339Nano)+" stderr F I1127 21:30:01.000000 1 leaderelection.go:1] successfully acquired lease")
	n.write("/kubelet.log", since.Add(time.Hour), "I1127 21:30:05.000000 812 kubelet.go:1] Started kubelet")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := ScanTLSErrors(ctx, []NodeLogs{{Exec: n.exec("cp-1")}}, since, ScanOptions{KubeletCommand: []string{"cat", "kubelet.log"}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Err() != nil || got.Total != 0 || len(got.Scanned) != 2 {
		t.Errorf("clean logs: %+v, verdict %v", got, got.Err())
	}
}

func TestScanTLSErrorsUnreadable(t *testing.T) {
	since := fixedNow()
	n := newNodeTree(t) // no /var/log/pods at all
	n.write("/kubelet.log", since.Add(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := ScanTLSErrors(ctx, []NodeLogs{{Exec: n.exec("cp-1")}, {Name: "cp-2"}}, since, ScanOptions{KubeletCommand: []string{"cat", "kubelet.log"}})
	wantFragments(t, err, "scanning container logs on node cp-1", "node cp-1: list /var/log/pods", "node cp-2: no executor")
}

func TestScanOptionsDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   ScanOptions
		want ScanOptions
	}{
		{name: "zero", in: ScanOptions{}, want: ScanOptions{
			Patterns: DefaultTLSErrorPatterns(), Namespace: "kube-system", PodPrefixes: DefaultLogPodPrefixes(),
			PodLogDir: DefaultPodLogDir, KubeletCommand: DefaultKubeletLogCommand(), MaxFindings: DefaultMaxFindings,
		}},
		{name: "empty lists do not turn the gate off", in: ScanOptions{Patterns: []string{}, PodPrefixes: []string{}, KubeletCommand: []string{}}, want: ScanOptions{
			Patterns: DefaultTLSErrorPatterns(), Namespace: "kube-system", PodPrefixes: DefaultLogPodPrefixes(),
			PodLogDir: DefaultPodLogDir, KubeletCommand: DefaultKubeletLogCommand(), MaxFindings: DefaultMaxFindings,
		}},
		{name: "set values kept", in: ScanOptions{Patterns: []string{"x509:"}, Ignore: []string{"SN=1,"}, Namespace: "ns", PodPrefixes: []string{"p-"},
			PodLogDir: "/logs", KubeletCommand: []string{"cat", "k.log"}, KubeletTimeZone: time.UTC, MaxFindings: 3},
			want: ScanOptions{Patterns: []string{"x509:"}, Ignore: []string{"SN=1,"}, Namespace: "ns", PodPrefixes: []string{"p-"},
				PodLogDir: "/logs", KubeletCommand: []string{"cat", "k.log"}, KubeletTimeZone: time.UTC, MaxFindings: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.in.withDefaults(), cmp.Comparer(func(a, b *time.Location) bool { return a == b })); diff != "" {
				t.Errorf("withDefaults mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestScanForgivesOnlyTheWindowOnTheNode: a TLS error that a pair write
// caused is forgiven only on its node (or any node, when the window names
// none), only inside the window, only with its text, and only when its time
// can be read; everything else still fails the gate.
func TestScanForgivesOnlyTheWindowOnTheNode(t *testing.T) {
	since := fixedNow()
	at := func(d time.Duration) time.Time { return since.Add(d) }
	cri := func(d time.Duration, msg string) string {
		return at(d).Format(time.RFC3339Nano) + " stderr F " + msg
	}
	const (
		mismatch = "tls: private key does not match public key"
		internal = "remote error: tls: internal error"
		etcdLog  = "/var/log/pods/kube-system_etcd-%s_33333333/etcd/0.log"
	)
	rejected := func(why string) string {
		return `{"level":"warn","msg":"rejected connection on peer endpoint","error":"` + why + `"}`
	}
	cp1, cp2 := newNodeTree(t), newNodeTree(t)
	cp1.write(strings.ReplaceAll(etcdLog, "%s", "cp-1"), at(time.Hour),
		cri(9*time.Second, rejected(mismatch)),                // before the window
		cri(10*time.Second, rejected(mismatch)),               // at its start: forgiven
		cri(11*time.Second, rejected(mismatch)),               // inside: forgiven
		cri(11*time.Second, rejected("tls: bad certificate")), // another error: found
		cri(12*time.Second, rejected(mismatch)),               // at its end: forgiven
		cri(13*time.Second, rejected(mismatch)),               // after: found
	)
	cp1.write("/kubelet.log", at(time.Hour),
		// No klog header: its time is unknown, so it is never forgiven.
		"  "+mismatch)
	cp2.write(strings.ReplaceAll(etcdLog, "%s", "cp-2"), at(time.Hour),
		cri(11*time.Second, rejected(mismatch)), // the window is cp-1's: found
		cri(11*time.Second, internal),           // any node's window: forgiven
	)
	cp2.write("/kubelet.log", at(time.Hour))

	opts := ScanOptions{
		KubeletCommand:  []string{"cat", "kubelet.log"},
		KubeletTimeZone: time.UTC,
		Forgive: []Forgiven{
			{Node: "cp-1", Contains: mismatch, From: at(10 * time.Second), To: at(12 * time.Second)},
			{Contains: internal, From: at(10 * time.Second), To: at(12 * time.Second)},
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := ScanTLSErrors(ctx, []NodeLogs{{Exec: cp1.exec("cp-1")}, {Exec: cp2.exec("cp-2")}}, since, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got.Forgiven != 4 {
		t.Errorf("Forgiven = %d, want 4 (three on cp-1 inside its window, one internal error on cp-2)", got.Forgiven)
	}
	var lines []string
	for _, f := range got.Findings {
		lines = append(lines, f.Node+" "+f.Component+" "+f.Time.Sub(since).String()+" "+f.Line)
	}
	want := []string{
		"cp-1 etcd 9s " + rejected(mismatch),
		"cp-1 etcd 11s " + rejected("tls: bad certificate"),
		"cp-2 etcd 11s " + rejected(mismatch),
		"cp-1 etcd 13s " + rejected(mismatch),
		"cp-1 kubelet " + time.Time{}.Sub(since).String() + "   " + mismatch,
	}
	if diff := cmp.Diff(want, lines, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	if got.Total != len(want) {
		t.Errorf("Total = %d, want %d", got.Total, len(want))
	}
	if got.Err() == nil {
		t.Error("Err() = nil with unforgiven findings")
	}

	// Everything forgiven: the gate passes.
	only := newNodeTree(t)
	only.write(strings.ReplaceAll(etcdLog, "%s", "cp-1"), at(time.Hour), cri(11*time.Second, rejected(mismatch)))
	only.write("/kubelet.log", at(time.Hour))
	got, err = ScanTLSErrors(ctx, []NodeLogs{{Exec: only.exec("cp-1")}}, since, opts)
	if err != nil || got.Err() != nil || got.Forgiven != 1 {
		t.Errorf("all forgiven: err %v, Err() %v, Forgiven %d; want nil, nil, 1", err, got.Err(), got.Forgiven)
	}
}
