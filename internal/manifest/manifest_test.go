package manifest

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"sigs.k8s.io/yaml"
)

const scheduler = `apiVersion: v1
kind: Pod
metadata:
  annotations:
    carotate.io/restart: "1"
  labels:
    component: kube-scheduler
    tier: control-plane
  name: kube-scheduler
  namespace: kube-system
spec:
  containers:
  - args:
    - --kubeconfig=/etc/kubernetes/scheduler.conf
    command:
    - kube-scheduler
    - --authentication-kubeconfig=/etc/kubernetes/scheduler.conf
    - --bind-address
    - 127.0.0.1
    - --leader-elect
    - --v=2
    futureContainerField: keep-me
    image: registry.k8s.io/kube-scheduler:v1.37.2
    name: kube-scheduler
    volumeMounts:
    - mountPath: /etc/kubernetes/scheduler.conf
      name: kubeconfig
      readOnly: true
  hostNetwork: true
  volumes:
  - hostPath:
      path: /etc/kubernetes/scheduler.conf
      type: FileOrCreate
    name: kubeconfig
  - emptyDir: {}
    name: scratch
status: {}
`

func TestParse(t *testing.T) {
	m, err := Parse("cp-1:/etc/kubernetes/manifests/kube-scheduler.yaml", []byte(scheduler))
	if err != nil {
		t.Fatal(err)
	}
	want := &Manifest{
		Source:      "cp-1:/etc/kubernetes/manifests/kube-scheduler.yaml",
		Component:   "kube-scheduler",
		Container:   0,
		Annotations: map[string]string{"carotate.io/restart": "1"},
		Flags: []Flag{
			{Name: "authentication-kubeconfig", Value: "/etc/kubernetes/scheduler.conf", HasValue: true, Field: "command", Index: 1},
			{Name: "bind-address", Value: "127.0.0.1", HasValue: true, Field: "command", Index: 2, Separate: true},
			{Name: "leader-elect", Field: "command", Index: 4},
			{Name: "v", Value: "2", HasValue: true, Field: "command", Index: 5},
			{Name: "kubeconfig", Value: "/etc/kubernetes/scheduler.conf", HasValue: true, Field: "args", Index: 0},
		},
		HostPathMounts: []HostPathMount{{Volume: "kubeconfig", HostPath: "/etc/kubernetes/scheduler.conf", MountPath: "/etc/kubernetes/scheduler.conf", ReadOnly: true}},
	}
	if diff := cmp.Diff(want, m, cmpopts.IgnoreFields(Manifest{}, "Pod", "Document")); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if v, ok := m.Value("bind-address"); !ok || v != "127.0.0.1" {
		t.Errorf(`Value("bind-address") = %q, %v`, v, ok)
	}
	// The document keeps fields the Pod type does not know, for a writer.
	c := m.Document["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	if c["futureContainerField"] != "keep-me" {
		t.Errorf("unknown field lost from Document: %v", c)
	}
}

func TestDocumentRoundTrips(t *testing.T) {
	// kubeadm writes manifests with sigs.k8s.io/yaml from sorted maps; the
	// same library reproduces them from Document byte for byte.
	m, err := Parse("kube-scheduler.yaml", []byte(scheduler))
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(m.Document)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(scheduler, string(out)); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestComponent(t *testing.T) {
	tests := []struct {
		name, data, want string
		container        int
	}{
		{"container named after a component", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: sidecar}, {name: etcd}]\n", "etcd", 1},
		{"component label", "apiVersion: v1\nkind: Pod\nmetadata: {name: x, labels: {component: haproxy}}\nspec:\n  containers: [{name: haproxy}]\n", "haproxy", 0},
		{"pod name", "apiVersion: v1\nkind: Pod\nmetadata: {name: keepalived}\nspec:\n  containers: [{name: main}]\n", "keepalived", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse("x.yaml", []byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if m.Component != tt.want || m.Container != tt.container {
				t.Errorf("component %q container %d, want %q %d", m.Component, m.Container, tt.want, tt.container)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	const src = "cp-1:/etc/kubernetes/manifests/x.yaml"
	tests := []struct{ name, data, want string }{
		{"empty", "\n", "is empty"},
		{"garbage yaml", "spec: [unterminated\n\t:", "is not valid yaml"},
		{"not an object", "- a\n- b\n", "is not valid yaml"},
		{"not a pod", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", `is apiVersion "v1" kind "ConfigMap", not a v1 Pod`},
		{"no kind", "metadata: {name: x}\n", `kind "", not a v1 Pod`},
		{"null document", "null\n", "holds no yaml object"},
		{"no containers", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n", `pod "x" has no containers`},
		{"wrong field type", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: 3}\n", "is not a valid pod"},
		{"too large", strings.Repeat("#", MaxSize+1), "more than the"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(src, []byte(tt.data))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not match ErrInvalid", err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "manifest "+src+": ") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q: want it to start with the source and contain %q", msg, tt.want)
			}
		})
	}
}
