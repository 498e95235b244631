package manifest

import (
	"fmt"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// EnsureHostPathMount ensures the container mounts the host's hostPath at
// mountPath through a hostPath volume called name, adding the volume and
// the mount at the end of their lists. It is for a file carotate writes
// outside the directories kubeadm already mounts (kubeadm mounts
// /etc/kubernetes/pki into the apiserver and kube-controller-manager, so
// files there need no mount). A volume or mount of that name with other
// settings, or another volume at mountPath, is refused with ErrConflict.
func EnsureHostPathMount(source string, data []byte, container, name, hostPath, mountPath string, readOnly bool) (out []byte, changed bool, err error) {
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return nil, false, fmt.Errorf("manifest %s: volume name %q: %s: %w", source, name, strings.Join(errs, "; "), ErrInvalidEdit)
	}
	for _, p := range []string{hostPath, mountPath} {
		if !path.IsAbs(p) || path.Clean(p) != p {
			return nil, false, fmt.Errorf("manifest %s: volume %s: path %q is not absolute and clean: %w", source, name, p, ErrInvalidEdit)
		}
	}
	m, ci, err := parseContainer(source, data, container)
	if err != nil {
		return nil, false, err
	}
	c := m.Pod.Spec.Containers[ci]
	conflict := func(format string, args ...any) error {
		return &Error{Source: source, Detail: fmt.Sprintf(format, args...), Err: ErrConflict, Hint: "choose another volume name or path"}
	}
	haveVolume, haveMount := false, false
	for _, v := range m.Pod.Spec.Volumes {
		if v.Name != name {
			continue
		}
		if v.HostPath == nil || v.HostPath.Path != hostPath {
			return nil, false, conflict("volume %q exists and is not the hostPath %s", name, hostPath)
		}
		haveVolume = true
	}
	for _, vm := range c.VolumeMounts {
		switch {
		case vm.Name == name && (vm.MountPath != mountPath || vm.ReadOnly != readOnly || vm.SubPath != ""):
			return nil, false, conflict("container %q mounts volume %q at %s (read-only %v), not at %s (read-only %v)",
				c.Name, name, vm.MountPath, vm.ReadOnly, mountPath, readOnly)
		case vm.Name == name:
			haveMount = true
		case vm.MountPath == mountPath:
			return nil, false, conflict("container %q already mounts volume %q at %s", c.Name, vm.Name, mountPath)
		}
	}
	if haveVolume && haveMount {
		return data, false, nil
	}

	want, err := decodeDocument(data)
	if err != nil {
		return nil, false, &Error{Source: source, Detail: "is not valid yaml", Err: err}
	}
	spec, _ := want["spec"].(map[string]any)
	gc, err := genericContainer(want, ci)
	if err != nil {
		return nil, false, &Error{Source: source, Detail: "has an unexpected shape", Err: err}
	}
	volume := map[string]any{"name": name, "hostPath": map[string]any{"path": hostPath}}
	mount := map[string]any{"name": name, "mountPath": mountPath}
	if readOnly {
		mount["readOnly"] = true
	}
	if !haveVolume {
		volumes, _ := spec["volumes"].([]any)
		spec["volumes"] = append(volumes, volume)
	}
	if !haveMount {
		mounts, _ := gc["volumeMounts"].([]any)
		gc["volumeMounts"] = append(mounts, mount)
	}
	volumeLines, err := yamlLines(volume)
	if err != nil {
		return nil, false, err
	}
	mountLines, err := yamlLines(mount)
	if err != nil {
		return nil, false, err
	}
	out, err = writeEdited(data, want, func(s *splicer) error {
		if !haveVolume {
			if err := s.appendItem(mapValue(mapValue(s.root, "spec"), "volumes"), volumeLines); err != nil {
				return err
			}
		}
		if !haveMount {
			cn, err := s.containerNode(ci)
			if err != nil {
				return err
			}
			return s.appendItem(mapValue(cn, "volumeMounts"), mountLines)
		}
		return nil
	})
	if err != nil {
		return nil, false, &Error{Source: source, Detail: fmt.Sprintf("cannot add volume %q", name), Err: err}
	}
	return checked(source, out)
}

// RemoveHostPathMount ensures the container does not mount the volume
// called name, and removes the volume when no container mounts it any
// more: the way back to kubeadm's own manifest.
func RemoveHostPathMount(source string, data []byte, container, name string) (out []byte, changed bool, err error) {
	m, ci, err := parseContainer(source, data, container)
	if err != nil {
		return nil, false, err
	}
	mountAt, volumeAt, stillMounted := -1, -1, false
	for i, vm := range m.Pod.Spec.Containers[ci].VolumeMounts {
		if vm.Name == name && mountAt < 0 {
			mountAt = i
		}
	}
	for i, c := range m.Pod.Spec.Containers {
		for _, vm := range c.VolumeMounts {
			stillMounted = stillMounted || (i != ci && vm.Name == name)
		}
	}
	for _, c := range m.Pod.Spec.InitContainers {
		for _, vm := range c.VolumeMounts {
			stillMounted = stillMounted || vm.Name == name
		}
	}
	for i, v := range m.Pod.Spec.Volumes {
		if v.Name == name && volumeAt < 0 && !stillMounted {
			if v.HostPath == nil {
				return nil, false, &Error{Source: source, Detail: fmt.Sprintf("volume %q is not a hostPath volume", name), Err: ErrConflict,
					Hint: "carotate only removes the hostPath volumes it added"}
			}
			volumeAt = i
		}
	}
	if mountAt < 0 && volumeAt < 0 {
		return data, false, nil
	}

	want, err := decodeDocument(data)
	if err != nil {
		return nil, false, &Error{Source: source, Detail: "is not valid yaml", Err: err}
	}
	spec, _ := want["spec"].(map[string]any)
	gc, err := genericContainer(want, ci)
	if err != nil {
		return nil, false, &Error{Source: source, Detail: "has an unexpected shape", Err: err}
	}
	removeAt := func(m map[string]any, key string, i int) {
		if i < 0 {
			return
		}
		items, _ := m[key].([]any)
		items = append(items[:i:i], items[i+1:]...)
		if len(items) == 0 {
			delete(m, key) // as kubeadm writes it: no empty list
			return
		}
		m[key] = items
	}
	removeAt(gc, "volumeMounts", mountAt)
	removeAt(spec, "volumes", volumeAt)
	out, err = writeEdited(data, want, func(s *splicer) error {
		if volumeAt >= 0 {
			if err := s.removeItem(mapValue(mapValue(s.root, "spec"), "volumes"), volumeAt); err != nil {
				return err
			}
		}
		if mountAt >= 0 {
			cn, err := s.containerNode(ci)
			if err != nil {
				return err
			}
			return s.removeItem(mapValue(cn, "volumeMounts"), mountAt)
		}
		return nil
	})
	if err != nil {
		return nil, false, &Error{Source: source, Detail: fmt.Sprintf("cannot remove volume %q", name), Err: err}
	}
	return checked(source, out)
}
