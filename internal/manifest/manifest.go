// Package manifest reads kubeadm's static pod manifests
// (/etc/kubernetes/manifests/*.yaml): which component a manifest runs, its
// command-line flags in order, its annotations and its hostPath mounts.
//
// A later step rewrites single flags and must leave everything else as it
// was, so a Manifest keeps the whole document as generic data next to the
// typed Pod, and every flag remembers exactly where it was written
// (container, command or args, index, "--a=b" or "--a b"). Marshalling the
// document back with sigs.k8s.io/yaml reproduces a kubeadm manifest byte for
// byte, because kubeadm writes it with the same library.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// MaxSize bounds a manifest: kubeadm's are a few kilobytes.
const MaxSize = 1 << 20

// Components are the control-plane static pods carotate knows.
const (
	KubeAPIServer          = "kube-apiserver"
	KubeControllerManager  = "kube-controller-manager"
	KubeScheduler          = "kube-scheduler"
	Etcd                   = "etcd"
	CloudControllerManager = "cloud-controller-manager"
)

// IsComponent reports whether name is one of the control-plane components
// carotate knows.
func IsComponent(name string) bool {
	switch name {
	case KubeAPIServer, KubeControllerManager, KubeScheduler, Etcd, CloudControllerManager:
		return true
	}
	return false
}

// ErrInvalid is matched (errors.Is) by every refusal of a manifest.
var ErrInvalid = errors.New("invalid static pod manifest")

// Error is a refusal of one manifest: where, what, the cause and a hint.
type Error struct {
	Source string
	Detail string
	Err    error
	Hint   string
}

// Error renders "manifest SOURCE: DETAIL: CAUSE; HINT", leaving out empty parts.
func (e *Error) Error() string {
	msg := fmt.Sprintf("manifest %s: %s", e.Source, e.Detail)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes every Error match ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Manifest is one parsed static pod manifest.
type Manifest struct {
	// Source is where it was read from, as given to Parse.
	Source string
	// Component is what the pod runs: the name of its component container
	// when that is a known component, else the "component" label, else the
	// pod name.
	Component string
	// Pod is the typed pod. Fields this version of k8s.io/api does not know
	// are only in Document.
	Pod *corev1.Pod
	// Document is the whole manifest as generic YAML data, unknown fields
	// included: the base for a writer that changes one flag.
	Document map[string]any
	// Container is the index in spec.containers of the component's
	// container, whose command and args Flags come from.
	Container int
	// Flags are the container's flags in order, command first, then args.
	Flags []Flag
	// Annotations are the pod's annotations.
	Annotations map[string]string
	// HostPathMounts are the container's mounts of hostPath volumes.
	HostPathMounts []HostPathMount
}

// Flag is one command-line flag and where it was written.
type Flag struct {
	Name  string
	Value string
	// HasValue is false for a bare boolean flag ("--leader-elect").
	HasValue bool
	// Field is "command" or "args"; Index is the position of the flag's
	// name in it. Separate says the value is the next element ("--a b")
	// rather than "--a=b".
	Field    string
	Index    int
	Separate bool
}

// HostPathMount is a hostPath volume mounted into the component's container.
type HostPathMount struct {
	Volume    string
	HostPath  string
	MountPath string
	ReadOnly  bool
}

// Value returns the last value of flag name (the one the component's flag
// parser keeps) and whether it is set.
func (m *Manifest) Value(name string) (string, bool) {
	value, found := "", false
	for _, f := range m.Flags {
		if f.Name == name {
			value, found = f.Value, true
		}
	}
	return value, found
}

// Parse reads a static pod manifest. source names it in errors (ideally
// "node:path"). Anything that is not a single v1 Pod with at least one
// container is refused.
func Parse(source string, data []byte) (*Manifest, error) {
	if len(data) > MaxSize {
		return nil, &Error{Source: source, Detail: fmt.Sprintf("is %d bytes, more than the %d a manifest may have", len(data), MaxSize),
			Hint: "check that the path points at a static pod manifest"}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &Error{Source: source, Detail: "is empty",
			Hint: "the kubelet ignores it; remove it or restore the manifest from a backup"}
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &Error{Source: source, Detail: "is not valid yaml", Err: err,
			Hint: "restore the manifest from a backup or regenerate it with `kubeadm init phase control-plane`"}
	}
	if doc == nil {
		return nil, &Error{Source: source, Detail: "holds no yaml object", Hint: "a static pod manifest is a single v1 Pod"}
	}
	apiVersion, _ := doc["apiVersion"].(string)
	kind, _ := doc["kind"].(string)
	if apiVersion != "v1" || kind != "Pod" {
		return nil, &Error{Source: source, Detail: fmt.Sprintf("is apiVersion %q kind %q, not a v1 Pod", apiVersion, kind),
			Hint: "the manifests directory must only hold static pods; move other files elsewhere"}
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal(data, &pod); err != nil {
		return nil, &Error{Source: source, Detail: "is not a valid pod", Err: err,
			Hint: "restore the manifest from a backup or regenerate it with `kubeadm init phase control-plane`"}
	}
	if len(pod.Spec.Containers) == 0 {
		return nil, &Error{Source: source, Detail: fmt.Sprintf("pod %q has no containers", pod.Name),
			Hint: "restore the manifest from a backup"}
	}
	m := &Manifest{Source: source, Pod: &pod, Document: doc, Annotations: pod.Annotations}
	m.Component, m.Container = componentOf(&pod)
	c := pod.Spec.Containers[m.Container]
	m.Flags = append(parseFlags("command", c.Command, true), parseFlags("args", c.Args, false)...)
	m.HostPathMounts = hostPathMounts(&pod, c)
	return m, nil
}

// componentOf picks the component and its container: a container named
// after a known component first (kubeadm names it so), then the pod's
// "component" label, then its name; the first container otherwise.
func componentOf(pod *corev1.Pod) (string, int) {
	for i, c := range pod.Spec.Containers {
		if IsComponent(c.Name) {
			return c.Name, i
		}
	}
	name := pod.Labels["component"]
	if name == "" {
		name = pod.Name
	}
	for i, c := range pod.Spec.Containers {
		if c.Name == name {
			return name, i
		}
	}
	if name == "" {
		name = pod.Spec.Containers[0].Name
	}
	return name, 0
}

// parseFlags reads "--a=b", "--a b" and bare "--a" flags (one or two
// dashes). When skipBinary is set, a first element that is not a flag is
// the program ("kube-apiserver") and skipped. Other non-flag elements that
// do not follow a flag are ignored: kubeadm's components take none.
func parseFlags(field string, argv []string, skipBinary bool) []Flag {
	var flags []Flag
	for i := 0; i < len(argv); i++ {
		arg := argv[i]
		if i == 0 && skipBinary && !strings.HasPrefix(arg, "-") {
			continue
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" || arg == "--" {
			continue
		}
		name := strings.TrimLeft(arg, "-")
		f := Flag{Name: name, Field: field, Index: i}
		if n, v, ok := strings.Cut(name, "="); ok {
			f.Name, f.Value, f.HasValue = n, v, true
		} else if i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "-") {
			f.Value, f.HasValue, f.Separate = argv[i+1], true, true
			i++
		}
		flags = append(flags, f)
	}
	return flags
}

func hostPathMounts(pod *corev1.Pod, c corev1.Container) []HostPathMount {
	hostPaths := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	var mounts []HostPathMount
	for _, vm := range c.VolumeMounts {
		if hp, ok := hostPaths[vm.Name]; ok {
			mounts = append(mounts, HostPathMount{Volume: vm.Name, HostPath: hp, MountPath: vm.MountPath, ReadOnly: vm.ReadOnly})
		}
	}
	return mounts
}
