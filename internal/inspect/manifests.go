package inspect

import (
	"context"
	"path"
	"sort"
	"strings"

	"github.com/carotate/carotate/internal/manifest"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/node"
)

// manifests reads every file the kubelet would load from manifests/: every
// entry that is not a directory and whose name does not start with a dot,
// whatever its extension. Files that are not the one real manifest of a
// static pod are strays (see isStray).
func (in *inspector) manifests(ctx context.Context) {
	dir := in.opts.manifestsDir()
	entries, err := in.ex.ReadDir(ctx, dir)
	if err != nil {
		in.warn("cannot list %s: %v", dir, err)
		return
	}
	var parsed []*manifest.Manifest
	for _, e := range entries {
		if !kubeletLoads(e) {
			continue
		}
		p := path.Join(dir, e.Name)
		f, data := in.record(ctx, p)
		if f == nil || data == nil {
			continue
		}
		m, err := manifest.Parse(in.source(p), data)
		if err != nil {
			f.ParseError = err.Error()
			in.node.StrayManifests = append(in.node.StrayManifests, p)
			continue
		}
		parsed = append(parsed, m)
	}
	keep, stray := splitStrays(parsed)
	for _, m := range stray {
		in.node.StrayManifests = append(in.node.StrayManifests, pathOf(in.opts.Name, m.Source))
	}
	sort.Strings(in.node.StrayManifests)
	for _, m := range keep {
		in.node.Manifests = append(in.node.Manifests, toModelManifest(pathOf(in.opts.Name, m.Source), m))
	}
}

// splitStrays keeps one manifest per pod name: the one whose file is named
// after the pod with a YAML or JSON extension, else the first by name. The
// rest, and files with any other extension (kube-apiserver.yaml.bak), are
// strays: the kubelet loads them too, and an old copy may win.
func splitStrays(ms []*manifest.Manifest) (keep, stray []*manifest.Manifest) {
	byPod := map[string][]*manifest.Manifest{}
	var pods []string
	for _, m := range ms {
		ext := path.Ext(m.Source)
		if ext != ".yaml" && ext != ".yml" && ext != ".json" {
			stray = append(stray, m)
			continue
		}
		if _, ok := byPod[m.Pod.Name]; !ok {
			pods = append(pods, m.Pod.Name)
		}
		byPod[m.Pod.Name] = append(byPod[m.Pod.Name], m)
	}
	for _, pod := range pods {
		group := byPod[pod]
		chosen := 0
		for i, m := range group {
			base := path.Base(m.Source)
			if strings.TrimSuffix(base, path.Ext(base)) == pod {
				chosen = i
				break
			}
		}
		for i, m := range group {
			if i == chosen {
				keep = append(keep, m)
			} else {
				stray = append(stray, m)
			}
		}
	}
	return keep, stray
}

// pathOf strips the "node:" prefix that source names carry.
func pathOf(nodeName, source string) string { return strings.TrimPrefix(source, nodeName+":") }

func toModelManifest(p string, m *manifest.Manifest) model.Manifest {
	out := model.Manifest{Path: p, Component: m.Component}
	for _, f := range m.Flags {
		out.Flags = append(out.Flags, model.Flag{Name: f.Name, Value: f.Value})
	}
	if len(m.Annotations) > 0 {
		out.Annotations = make(map[string]string, len(m.Annotations))
		for k, v := range m.Annotations {
			out.Annotations[k] = v
		}
	}
	for _, hp := range m.HostPathMounts {
		out.HostPathMounts = append(out.HostPathMounts, hp.HostPath)
	}
	return out
}

// fileFlag reports whether a component flag names a certificate, key or CA
// file (as opposed to a kubeconfig, a directory or a config with secrets
// such as --encryption-provider-config).
func fileFlag(name string) bool {
	for _, suffix := range []string{"file", "cafile", "certfile", "keyfile", "-certificate", "-key", "-certificate-authority"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// kubeconfigFlag reports whether a component flag names a kubeconfig.
func kubeconfigFlag(name string) bool { return strings.HasSuffix(name, "kubeconfig") }

// flagFiles records the files that manifests' flags name outside the
// directories already read, e.g. a certificate an operator moved elsewhere.
func (in *inspector) flagFiles(ctx context.Context) {
	for _, m := range in.node.Manifests {
		for _, f := range m.Flags {
			if fileFlag(f.Name) && path.IsAbs(f.Value) {
				in.file(ctx, path.Clean(f.Value))
			}
		}
	}
}

// StrayManifests lists the strays in a node's manifest directory now, the
// way the kubelet would load them, for the re-check before every step of a
// rotation: a copy that appears mid-run makes the kubelet flip between two
// definitions of one pod.
func StrayManifests(ctx context.Context, ex node.Executor, dir string) ([]string, error) {
	entries, err := ex.ReadDir(ctx, dir)
	if err != nil {
		return nil, err
	}
	var strays []string
	var parsed []*manifest.Manifest
	for _, e := range entries {
		if !kubeletLoads(e) {
			continue
		}
		p := path.Join(dir, e.Name)
		data, err := ex.ReadFile(ctx, p)
		if err != nil {
			return nil, err
		}
		m, err := manifest.Parse(p, data)
		if err != nil {
			strays = append(strays, p)
			continue
		}
		parsed = append(parsed, m)
	}
	_, stray := splitStrays(parsed)
	for _, m := range stray {
		strays = append(strays, m.Source)
	}
	sort.Strings(strays)
	return strays, nil
}

// kubeletLoads says whether the kubelet loads a manifest directory entry:
// every one that is not a directory and whose name does not start with a
// dot, whatever its extension.
func kubeletLoads(e node.DirEntry) bool {
	return !strings.HasPrefix(e.Name, ".") && !e.Mode.IsDir()
}
