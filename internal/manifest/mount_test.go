package manifest

import (
	"errors"
	"strings"
	"testing"
)

func ensureMount(container, name, hostPath, mountPath string, readOnly bool) func(string, []byte) ([]byte, bool, error) {
	return func(source string, data []byte) ([]byte, bool, error) {
		return EnsureHostPathMount(source, data, container, name, hostPath, mountPath, readOnly)
	}
}

func removeMount(container, name string) func(string, []byte) ([]byte, bool, error) {
	return func(source string, data []byte) ([]byte, bool, error) {
		return RemoveHostPathMount(source, data, container, name)
	}
}

func TestHostPathMounts(t *testing.T) {
	apiserver := kubeadmAPIServer(t)
	withBundle := strings.Replace(strings.Replace(apiserver,
		"      name: k8s-certs\n      readOnly: true\n  hostNetwork: true\n",
		"      name: k8s-certs\n      readOnly: true\n    - mountPath: /etc/carotate\n      name: carotate\n      readOnly: true\n  hostNetwork: true\n", 1),
		"    name: k8s-certs\nstatus: {}\n",
		"    name: k8s-certs\n  - hostPath:\n      path: /etc/carotate\n    name: carotate\nstatus: {}\n", 1)
	if withBundle == apiserver {
		t.Fatal("fixture did not change: the kubeadm manifest's layout moved")
	}
	runEdits(t, []editCase{
		{
			name: "kubeadm manifest: volume and mount appended", in: apiserver,
			edit: ensureMount("kube-apiserver", "carotate", "/etc/carotate", "/etc/carotate", true),
			want: withBundle, wantChanged: true,
		},
		{
			name: "already mounted", in: withBundle,
			edit: ensureMount("kube-apiserver", "carotate", "/etc/carotate", "/etc/carotate", true),
		},
		{
			name: "kubeadm manifest: removed again", in: withBundle,
			edit: removeMount("kube-apiserver", "carotate"),
			want: apiserver, wantChanged: true,
		},
		{
			name: "nothing to remove", in: apiserver,
			edit: removeMount("", "carotate"),
		},
		{
			name: "mount added for a volume that is there", in: strings.Replace(scheduler, "  - emptyDir: {}\n    name: scratch\n", "  - hostPath:\n      path: /x\n    name: x\n", 1),
			edit: ensureMount("", "x", "/x", "/mnt/x", false),
			want: strings.Replace(strings.Replace(scheduler, "  - emptyDir: {}\n    name: scratch\n", "  - hostPath:\n      path: /x\n    name: x\n", 1),
				"      readOnly: true\n  hostNetwork: true\n", "      readOnly: true\n    - mountPath: /mnt/x\n      name: x\n  hostNetwork: true\n", 1),
			wantChanged: true,
		},
	})
}

func TestHostPathMountRefuses(t *testing.T) {
	const src = "cp-1:/etc/kubernetes/manifests/kube-scheduler.yaml"
	tests := []struct {
		name   string
		edit   func() ([]byte, bool, error)
		target error
		want   string
	}{
		{"volume of that name is not a hostPath", func() ([]byte, bool, error) {
			return EnsureHostPathMount(src, []byte(scheduler), "", "scratch", "/x", "/x", false)
		}, ErrConflict, `volume "scratch" exists and is not the hostPath /x`},
		{"mounted elsewhere", func() ([]byte, bool, error) {
			return EnsureHostPathMount(src, []byte(scheduler), "", "kubeconfig", "/etc/kubernetes/scheduler.conf", "/other", true)
		}, ErrConflict, `mounts volume "kubeconfig" at /etc/kubernetes/scheduler.conf`},
		{"mount path taken", func() ([]byte, bool, error) {
			return EnsureHostPathMount(src, []byte(scheduler), "", "new", "/y", "/etc/kubernetes/scheduler.conf", true)
		}, ErrConflict, `already mounts volume "kubeconfig" at /etc/kubernetes/scheduler.conf`},
		{"relative path", func() ([]byte, bool, error) {
			return EnsureHostPathMount(src, []byte(scheduler), "", "new", "etc/x", "/x", true)
		}, ErrInvalidEdit, `path "etc/x" is not absolute`},
		{"bad volume name", func() ([]byte, bool, error) {
			return EnsureHostPathMount(src, []byte(scheduler), "", "Bad_Name", "/x", "/x", true)
		}, ErrInvalidEdit, `volume name "Bad_Name"`},
		{"no such container", func() ([]byte, bool, error) {
			return EnsureHostPathMount(src, []byte(scheduler), "nope", "new", "/x", "/x", true)
		}, ErrNoContainer, `no container "nope"`},
		{"removing a volume that is not a hostPath", func() ([]byte, bool, error) {
			return RemoveHostPathMount(src, []byte(scheduler), "", "scratch")
		}, ErrConflict, `volume "scratch" is not a hostPath volume`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tt.edit()
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, tt.target) {
				t.Errorf("error %v does not match %v", err, tt.target)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "manifest "+src+": ") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q: want the source and %q", msg, tt.want)
			}
		})
	}
}
