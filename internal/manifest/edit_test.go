package manifest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// twoContainers has a sidecar, flags in args, a single-dash flag and a
// flag given twice.
const twoContainers = `apiVersion: v1
kind: Pod
metadata:
  name: kube-controller-manager
  namespace: kube-system
spec:
  containers:
  - args:
    - --root-ca-file=/etc/kubernetes/pki/ca.crt
    - -v=2
    - --root-ca-file=/etc/kubernetes/pki/ca.crt
    image: registry.k8s.io/kube-controller-manager:v1.37.2
    name: kube-controller-manager
  - command:
    - /proxy
    - --port
    - "8080"
    image: proxy
    name: sidecar
`

// flowStyle cannot be edited in place and is re-encoded.
const flowStyle = `apiVersion: v1
kind: Pod
metadata: {name: kube-scheduler, annotations: {a.io/b: c}}
spec:
  containers: [{name: kube-scheduler, command: [kube-scheduler, --v=2]}]
`

func kubeadmAPIServer(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "kube-apiserver.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

type editCase struct {
	name string
	in   string
	edit func(source string, data []byte) ([]byte, bool, error)
	// want is the expected output; "" with wantChanged false means the
	// input unchanged.
	want        string
	wantChanged bool
}

// runEdits checks each case's output and that applying it again changes
// nothing.
func runEdits(t *testing.T, tests []editCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, changed, err := tt.edit("cp-1:x.yaml", []byte(tt.in))
			if err != nil {
				t.Fatalf("edit: %v", err)
			}
			want := tt.want
			if !tt.wantChanged {
				want = tt.in
			}
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			if diff := cmp.Diff(want, string(out)); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			again, changed, err := tt.edit("cp-1:x.yaml", out)
			if err != nil {
				t.Fatalf("second edit: %v", err)
			}
			if changed {
				t.Error("second edit reports a change")
			}
			if diff := cmp.Diff(string(out), string(again)); diff != "" {
				t.Errorf("second edit changed the bytes (-first +second):\n%s", diff)
			}
		})
	}
}

func setFlag(container, flag, value string) func(string, []byte) ([]byte, bool, error) {
	return func(source string, data []byte) ([]byte, bool, error) {
		return SetFlag(source, data, container, flag, value)
	}
}

func removeFlag(container, flag string) func(string, []byte) ([]byte, bool, error) {
	return func(source string, data []byte) ([]byte, bool, error) {
		return RemoveFlag(source, data, container, flag)
	}
}

func setAnnotation(key, value string) func(string, []byte) ([]byte, bool, error) {
	return func(source string, data []byte) ([]byte, bool, error) {
		return SetAnnotation(source, data, key, value)
	}
}

func TestSetFlag(t *testing.T) {
	apiserver := kubeadmAPIServer(t)
	runEdits(t, []editCase{
		{
			name: "kubeadm manifest: value of --a=b", in: apiserver,
			edit:        setFlag("kube-apiserver", "client-ca-file", "/etc/kubernetes/pki/carotate/ca-bundle.crt"),
			want:        strings.Replace(apiserver, "--client-ca-file=/etc/kubernetes/pki/ca.crt", "--client-ca-file=/etc/kubernetes/pki/carotate/ca-bundle.crt", 1),
			wantChanged: true,
		},
		{
			name: "kubeadm manifest: absent flag goes at the end of the command", in: apiserver,
			edit: setFlag("", "kubelet-certificate-authority", "/etc/kubernetes/pki/ca.crt"),
			want: strings.Replace(apiserver, "    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key\n",
				"    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key\n    - --kubelet-certificate-authority=/etc/kubernetes/pki/ca.crt\n", 1),
			wantChanged: true,
		},
		{
			name: "kubeadm manifest: already set", in: apiserver,
			edit: setFlag("kube-apiserver", "secure-port", "6443"),
		},
		{
			name: "separate value keeps its form", in: scheduler,
			edit:        setFlag("kube-scheduler", "bind-address", "0.0.0.0"),
			want:        strings.Replace(scheduler, "    - 127.0.0.1\n", "    - 0.0.0.0\n", 1),
			wantChanged: true,
		},
		{
			name: "separate value that reads as a flag is joined", in: scheduler,
			edit:        setFlag("kube-scheduler", "bind-address", "-1"),
			want:        strings.Replace(scheduler, "    - --bind-address\n    - 127.0.0.1\n", "    - --bind-address=-1\n", 1),
			wantChanged: true,
		},
		{
			name: "separate value that YAML would read as a bool is quoted", in: scheduler,
			edit:        setFlag("kube-scheduler", "bind-address", "yes"),
			want:        strings.Replace(scheduler, "    - 127.0.0.1\n", "    - \"yes\"\n", 1),
			wantChanged: true,
		},
		{
			name: "bare boolean gets a value", in: scheduler,
			edit:        setFlag("kube-scheduler", "leader-elect", "false"),
			want:        strings.Replace(scheduler, "    - --leader-elect\n", "    - --leader-elect=false\n", 1),
			wantChanged: true,
		},
		{
			name: "flag in args", in: scheduler,
			edit:        setFlag("kube-scheduler", "kubeconfig", "/etc/kubernetes/other.conf"),
			want:        strings.Replace(scheduler, "    - --kubeconfig=/etc/kubernetes/scheduler.conf\n", "    - --kubeconfig=/etc/kubernetes/other.conf\n", 1),
			wantChanged: true,
		},
		{
			name: "every occurrence, in args when there is no command", in: twoContainers,
			edit:        setFlag("kube-controller-manager", "root-ca-file", "/b.crt"),
			want:        strings.ReplaceAll(twoContainers, "--root-ca-file=/etc/kubernetes/pki/ca.crt", "--root-ca-file=/b.crt"),
			wantChanged: true,
		},
		{
			name: "single dash kept", in: twoContainers,
			edit:        setFlag("kube-controller-manager", "v", "4"),
			want:        strings.Replace(twoContainers, "    - -v=2\n", "    - -v=4\n", 1),
			wantChanged: true,
		},
		{
			name: "added to args when the container has no command", in: twoContainers,
			edit: setFlag("kube-controller-manager", "cluster-signing-cert-file", "/s.crt"),
			want: strings.Replace(twoContainers, "    - --root-ca-file=/etc/kubernetes/pki/ca.crt\n    image",
				"    - --root-ca-file=/etc/kubernetes/pki/ca.crt\n    - --cluster-signing-cert-file=/s.crt\n    image", 1),
			wantChanged: true,
		},
		{
			name: "a container other than the component's", in: twoContainers,
			edit:        setFlag("sidecar", "port", "9090"),
			want:        strings.Replace(twoContainers, `    - "8080"`, `    - "9090"`, 1),
			wantChanged: true,
		},
		{
			name: "flow style is re-encoded like kubeadm would", in: flowStyle,
			edit: setFlag("", "v", "4"),
			want: `apiVersion: v1
kind: Pod
metadata:
  annotations:
    a.io/b: c
  name: kube-scheduler
spec:
  containers:
  - command:
    - kube-scheduler
    - --v=4
    name: kube-scheduler
`,
			wantChanged: true,
		},
	})
}

func TestRemoveFlag(t *testing.T) {
	apiserver := kubeadmAPIServer(t)
	runEdits(t, []editCase{
		{
			name: "kubeadm manifest", in: apiserver,
			edit:        removeFlag("", "client-ca-file"),
			want:        strings.Replace(apiserver, "    - --client-ca-file=/etc/kubernetes/pki/ca.crt\n", "", 1),
			wantChanged: true,
		},
		{
			name: "with its separate value", in: scheduler,
			edit:        removeFlag("", "bind-address"),
			want:        strings.Replace(scheduler, "    - --bind-address\n    - 127.0.0.1\n", "", 1),
			wantChanged: true,
		},
		{
			name: "the last element of args", in: scheduler,
			edit:        removeFlag("", "kubeconfig"),
			want:        strings.Replace(scheduler, "  - args:\n    - --kubeconfig=/etc/kubernetes/scheduler.conf\n    command:\n", "  - args: []\n    command:\n", 1),
			wantChanged: true,
		},
		{
			name: "every occurrence", in: twoContainers,
			edit:        removeFlag("kube-controller-manager", "root-ca-file"),
			want:        strings.ReplaceAll(twoContainers, "    - --root-ca-file=/etc/kubernetes/pki/ca.crt\n", ""),
			wantChanged: true,
		},
		{
			name: "absent", in: scheduler,
			edit: removeFlag("", "client-ca-file"),
		},
	})
}

func TestSetAnnotation(t *testing.T) {
	apiserver := kubeadmAPIServer(t)
	noAnnotations := strings.Replace(scheduler, "  annotations:\n    carotate.io/restart: \"1\"\n", "", 1)
	runEdits(t, []editCase{
		{
			name: "kubeadm manifest: added in key order", in: apiserver,
			edit: setAnnotation("carotate.io/restart", "2"),
			want: strings.Replace(apiserver, "  annotations:\n", "  annotations:\n    carotate.io/restart: \"2\"\n", 1),
			// sorted before kubeadm.kubernetes.io/...
			wantChanged: true,
		},
		{
			name: "bumped", in: scheduler,
			edit:        setAnnotation("carotate.io/restart", "2"),
			want:        strings.Replace(scheduler, `carotate.io/restart: "1"`, `carotate.io/restart: "2"`, 1),
			wantChanged: true,
		},
		{
			name: "already set", in: scheduler,
			edit: setAnnotation("carotate.io/restart", "1"),
		},
		{
			name: "map created", in: noAnnotations,
			edit:        setAnnotation("carotate.io/restart", "r-1"),
			want:        strings.Replace(noAnnotations, "metadata:\n", "metadata:\n  annotations:\n    carotate.io/restart: r-1\n", 1),
			wantChanged: true,
		},
		{
			name: "added after the last key", in: scheduler,
			edit:        setAnnotation("zz.io/last", "x y"),
			want:        strings.Replace(scheduler, "    carotate.io/restart: \"1\"\n", "    carotate.io/restart: \"1\"\n    zz.io/last: x y\n", 1),
			wantChanged: true,
		},
		{
			name: "flow style", in: flowStyle,
			edit: setAnnotation("a.io/b", "d"),
			want: `apiVersion: v1
kind: Pod
metadata:
  annotations:
    a.io/b: d
  name: kube-scheduler
spec:
  containers:
  - command:
    - kube-scheduler
    - --v=2
    name: kube-scheduler
`,
			wantChanged: true,
		},
	})
}

func TestFlagValue(t *testing.T) {
	tests := []struct {
		name, data, container, flag, want string
		found                             bool
	}{
		{"--a=b", scheduler, "", "v", "2", true},
		{"--a b", scheduler, "kube-scheduler", "bind-address", "127.0.0.1", true},
		{"bare", scheduler, "", "leader-elect", "", true},
		{"in args", scheduler, "", "kubeconfig", "/etc/kubernetes/scheduler.conf", true},
		{"absent", scheduler, "", "client-ca-file", "", false},
		{"last occurrence wins", strings.Replace(twoContainers, "    - --root-ca-file=/etc/kubernetes/pki/ca.crt\n    image", "    - --root-ca-file=/last\n    image", 1), "", "root-ca-file", "/last", true},
		{"other container", twoContainers, "sidecar", "port", "8080", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found, err := FlagValue("x.yaml", []byte(tt.data), tt.container, tt.flag)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || found != tt.found {
				t.Errorf("FlagValue = %q, %v; want %q, %v", got, found, tt.want, tt.found)
			}
		})
	}
}

func TestFlagValues(t *testing.T) {
	two := strings.Replace(twoContainers, "    - --root-ca-file=/etc/kubernetes/pki/ca.crt\n    image", "    - --root-ca-file=/etc/kubernetes/pki/ca.crt\n    - --root-ca-file\n    - /second\n    image", 1)
	tests := []struct {
		name, data, flag string
		want             []string
	}{
		{"every occurrence in order", two, "root-ca-file", []string{"/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/ca.crt", "/second"}},
		{"one", scheduler, "v", []string{"2"}},
		{"absent", scheduler, "client-ca-file", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FlagValues("x.yaml", []byte(tt.data), "", tt.flag)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("FlagValues (-want +got):\n%s", d)
			}
		})
	}
	if _, err := FlagValues("x.yaml", []byte(scheduler), "nope", "v"); !errors.Is(err, ErrNoContainer) {
		t.Errorf("FlagValues of a missing container: %v, want ErrNoContainer", err)
	}
}

func TestEditRefuses(t *testing.T) {
	const src = "cp-1:/etc/kubernetes/manifests/kube-scheduler.yaml"
	stray := strings.Replace(scheduler, "    - --v=2\n", "    - --v\n    - --x\n    - a\n    - stray\n", 1)
	noCommand := "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - name: x\n    image: x\n"
	tests := []struct {
		name   string
		edit   func() error
		target error
		want   []string // fragments of the message
	}{
		{"no such container", func() error { _, _, err := SetFlag(src, []byte(scheduler), "kube-apiserver", "v", "1"); return err },
			ErrNoContainer, []string{src, `no container "kube-apiserver"`, `its containers are "kube-scheduler"`}},
		{"no such container to read", func() error { _, _, err := FlagValue(src, []byte(scheduler), "nope", "v"); return err },
			ErrNoContainer, []string{`no container "nope"`}},
		{"no such container to remove from", func() error { _, _, err := RemoveFlag(src, []byte(scheduler), "nope", "v"); return err },
			ErrNoContainer, []string{`no container "nope"`}},
		{"empty flag", func() error { _, _, err := SetFlag(src, []byte(scheduler), "", "", "1"); return err },
			ErrInvalidEdit, []string{src, "empty flag name"}},
		{"flag with dashes", func() error { _, _, err := SetFlag(src, []byte(scheduler), "", "--v", "1"); return err },
			ErrInvalidEdit, []string{`flag name "--v" must be given without dashes`}},
		{"flag with =", func() error { _, _, err := RemoveFlag(src, []byte(scheduler), "", "v=2"); return err },
			ErrInvalidEdit, []string{`flag name "v=2"`}},
		{"value not utf-8", func() error { _, _, err := SetFlag(src, []byte(scheduler), "", "v", "\xff"); return err },
			ErrInvalidEdit, []string{src, "--v", "not valid utf-8"}},
		{"container without command or args", func() error { _, _, err := SetFlag(src, []byte(noCommand), "x", "v", "1"); return err },
			ErrConflict, []string{`container "x" has no command or args to add --v to`, "entrypoint"}},
		{"removal would give a stray value to another flag", func() error { _, _, err := RemoveFlag(src, []byte(stray), "", "x"); return err },
			ErrConflict, []string{"would change how its other flags read"}},
		{"not a manifest", func() error { _, _, err := SetFlag(src, []byte("kind: ConfigMap\n"), "", "v", "1"); return err },
			ErrInvalid, []string{src, "not a v1 Pod"}},
		{"annotation key", func() error { _, _, err := SetAnnotation(src, []byte(scheduler), "bad key", "1"); return err },
			ErrInvalidEdit, []string{src, `annotation key "bad key"`}},
		{"annotation on an invalid manifest", func() error { _, _, err := SetAnnotation(src, []byte(""), "a", "1"); return err },
			ErrInvalid, []string{"is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.edit()
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, tt.target) {
				t.Errorf("error %v does not match %v", err, tt.target)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "manifest "+src+": ") {
				t.Errorf("error %q does not start with the source", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

// changedLines returns the lines that differ between a and b once their
// common leading and trailing lines are set aside.
func changedLines(a, b string) (removed, added []string) {
	x, y := strings.SplitAfter(a, "\n"), strings.SplitAfter(b, "\n")
	for len(x) > 0 && len(y) > 0 && x[0] == y[0] {
		x, y = x[1:], y[1:]
	}
	for len(x) > 0 && len(y) > 0 && x[len(x)-1] == y[len(y)-1] {
		x, y = x[:len(x)-1], y[:len(y)-1]
	}
	return x, y
}

// TestKubeadmManifestsOneLineDiff edits every manifest the real kubeadm
// writes and checks that each edit touches exactly the lines it must.
func TestKubeadmManifestsOneLineDiff(t *testing.T) {
	manifests := kubeadmManifests(t)
	for name, data := range manifests {
		t.Run(name, func(t *testing.T) {
			m, err := Parse(name, []byte(data))
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Flags) == 0 {
				t.Fatal("no flags")
			}
			for _, f := range m.Flags {
				out, changed, err := SetFlag(name, []byte(data), "", f.Name, f.Value+".new")
				if err != nil || !changed {
					t.Fatalf("SetFlag %s: changed %v, %v", f.Name, changed, err)
				}
				if removed, added := changedLines(data, string(out)); len(removed) != 1 || len(added) != 1 || !strings.Contains(added[0], f.Value+".new") {
					t.Errorf("SetFlag %s: changed lines -%q +%q, want one line each", f.Name, removed, added)
				}
				out, _, err = RemoveFlag(name, []byte(data), "", f.Name)
				if err != nil {
					t.Fatalf("RemoveFlag %s: %v", f.Name, err)
				}
				if removed, added := changedLines(data, string(out)); len(removed) != 1 || len(added) != 0 {
					t.Errorf("RemoveFlag %s: changed lines -%q +%q, want one removed", f.Name, removed, added)
				}
			}
			out, _, err := SetFlag(name, []byte(data), "", "carotate-test", "x")
			if err != nil {
				t.Fatal(err)
			}
			if removed, added := changedLines(data, string(out)); len(removed) != 0 || len(added) != 1 {
				t.Errorf("adding a flag: changed lines -%q +%q, want one added", removed, added)
			}
			out, _, err = SetAnnotation(name, []byte(data), "carotate.io/restart", "1")
			if err != nil {
				t.Fatal(err)
			}
			wantAdded := 1
			if len(m.Annotations) == 0 {
				wantAdded = 2 // "annotations:" too
			}
			if removed, added := changedLines(data, string(out)); len(removed) != 0 || len(added) != wantAdded {
				t.Errorf("SetAnnotation: changed lines -%q +%q, want %d added", removed, added, wantAdded)
			}
		})
	}
}

// kubeadmManifests returns the checked-in kube-apiserver manifest and,
// when kubeadm can run (root, CAROTATE_COMPONENTS or the lab's cache), every
// manifest of a fresh `kubeadm init phase control-plane all` and `etcd local`.
func kubeadmManifests(t *testing.T) map[string]string {
	t.Helper()
	manifests := map[string]string{"testdata/kube-apiserver.yaml": kubeadmAPIServer(t)}
	dir := os.Getenv("CAROTATE_COMPONENTS")
	if dir == "" {
		dir = "/var/cache/carotate/components"
	}
	kubeadm := filepath.Join(dir, "kubeadm")
	if _, err := os.Stat(kubeadm); err != nil || os.Geteuid() != 0 {
		t.Logf("only the checked-in manifest: kubeadm needs root and %s", kubeadm)
		return manifests
	}
	root := t.TempDir()
	cfg := "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint: {advertiseAddress: 10.0.0.10, bindPort: 6443}\n" +
		"nodeRegistration: {name: cp-1}\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.2\n"
	if err := os.WriteFile(filepath.Join(root, "cfg.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, phase := range [][]string{{"control-plane", "all"}, {"etcd", "local"}} {
		runKubeadm(t, kubeadm, root, append(append([]string{"init", "phase"}, phase...), "--config", "/cfg.yaml", "--rootfs", root)...)
	}
	entries, err := os.ReadDir(filepath.Join(root, "etc/kubernetes/manifests"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(root, "etc/kubernetes/manifests", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		manifests[e.Name()] = string(data)
	}
	if len(manifests) < 5 {
		t.Fatalf("kubeadm wrote %d manifests, want 4", len(manifests)-1)
	}
	return manifests
}

func runKubeadm(t *testing.T, kubeadm, root string, args ...string) {
	t.Helper()
	cmd := exec.Command(kubeadm, args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubeadm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
