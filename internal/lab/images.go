package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/carotate/carotate/internal/lab/image"
)

// ProbeImage is the lab's in-cluster probe.
const ProbeImage = "carotate.local/probe:dev"

// labImage is an image the lab builds and on which nodes it goes.
type labImage struct {
	spec         image.Spec
	controlPlane bool // only control planes need it
}

// images are the images `kubeadm config images list` prints for the lab's
// version, plus the probe, all built FROM scratch from the built binaries.
func (l *Lab) images(probeBinary string) ([]labImage, error) {
	c := func(name string) string { return filepath.Join(l.Components, name) }
	base := []image.File{
		{Path: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n")},
		{Path: "/etc/group", Data: []byte("root:x:0:\nnobody:x:65534:\n")},
		{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
	}
	component := func(ref string, cp bool, bins ...string) (labImage, error) {
		spec := image.Spec{Ref: ref, Files: append([]image.File(nil), base...)}
		for _, b := range bins {
			if err := image.AddBinaryWithDeps(&spec, c(b), "/usr/local/bin/"+b); err != nil {
				return labImage{}, err
			}
		}
		return labImage{spec: spec, controlPlane: cp}, nil
	}
	var out []labImage
	for _, c := range []struct {
		ref  string
		cp   bool
		bins []string
	}{
		{"registry.k8s.io/kube-apiserver:" + KubernetesVersion, true, []string{"kube-apiserver"}},
		{"registry.k8s.io/kube-controller-manager:" + KubernetesVersion, true, []string{"kube-controller-manager"}},
		{"registry.k8s.io/kube-scheduler:" + KubernetesVersion, true, []string{"kube-scheduler"}},
		{"registry.k8s.io/etcd:3.7.0-0", true, []string{"etcd", "etcdctl"}},
	} {
		img, err := component(c.ref, c.cp, c.bins...)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}

	proxy, err := component("registry.k8s.io/kube-proxy:"+KubernetesVersion, false, "kube-proxy")
	if err != nil {
		return nil, err
	}
	if err := addIptables(&proxy.spec); err != nil {
		return nil, err
	}
	out = append(out, proxy)

	for _, s := range []struct{ ref, src, path string }{
		{"registry.k8s.io/coredns/coredns:v1.14.6", c("coredns"), "/coredns"},
		{"registry.k8s.io/pause:3.10.2", c("pause"), "/pause"},
		{ProbeImage, probeBinary, "/probe"},
	} {
		spec := image.Spec{Ref: s.ref, Files: append([]image.File(nil), base...), Entrypoint: []string{s.path}}
		if err := image.AddBinaryWithDeps(&spec, s.src, s.path); err != nil {
			return nil, err
		}
		out = append(out, labImage{spec: spec})
	}
	return out, nil
}

// addIptables puts the host's iptables (nft backend) into spec: kube-proxy
// runs iptables, iptables-save and iptables-restore, and conntrack.
func addIptables(spec *image.Spec) error {
	multi := "/usr/sbin/xtables-nft-multi"
	if err := image.AddBinaryWithDeps(spec, multi, multi); err != nil {
		return fmt.Errorf("kube-proxy image needs iptables (apt-get install iptables): %w", err)
	}
	for _, name := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
		spec.Files = append(spec.Files, image.File{Path: "/usr/sbin/" + name, Symlink: "xtables-nft-multi"})
	}
	if err := image.AddBinaryWithDeps(spec, "/usr/sbin/conntrack", "/usr/sbin/conntrack"); err != nil {
		return fmt.Errorf("kube-proxy image needs conntrack (apt-get install conntrack): %w", err)
	}
	exts, _ := filepath.Glob("/usr/lib/x86_64-linux-gnu/xtables/*.so")
	for _, e := range exts {
		if err := image.AddBinaryWithDeps(spec, e, e); err != nil {
			return err
		}
	}
	if _, err := os.Stat("/etc/protocols"); err == nil {
		spec.Files = append(spec.Files, image.File{Path: "/etc/protocols", Source: "/etc/protocols"})
	}
	spec.Files = append(spec.Files, image.File{Path: "/run", Mode: fs.ModeDir | 0o755})
	return nil
}

// imageKey names an image's tarball by everything that goes into it.
func imageKey(spec image.Spec) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%q\n%q\n", spec.Ref, spec.Env, spec.Entrypoint)
	files := append([]image.File(nil), spec.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		fmt.Fprintf(h, "%s %s %x %s %v\n", f.Path, f.Source, sha256.Sum256(f.Data), f.Symlink, f.Mode)
		if f.Source != "" {
			st, err := os.Stat(f.Source)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, "%d %d\n", st.Size(), st.ModTime().UnixNano())
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// buildImage writes spec's tarball into the image cache unless it is there.
func buildImage(cacheDir string, spec image.Spec) (string, error) {
	key, err := imageKey(spec)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	name := strings.NewReplacer("/", "_", ":", "_").Replace(spec.Ref)
	path := filepath.Join(cacheDir, name+"-"+key+".tar")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(cacheDir, "."+name+".tmp*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err := image.Write(f, spec); err != nil {
		f.Close()
		return "", fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(f.Name(), path)
}

// importImages loads the node's images into its containerd.
func (l *Lab) importImages(ctx context.Context, n Node, tarballs map[string]labImage) error {
	for path, img := range tarballs {
		if img.controlPlane && !n.ControlPlane {
			continue
		}
		if _, err := l.Exec(ctx, n.Name, "ctr", "-n", "k8s.io", "images", "import", path); err != nil {
			return fmt.Errorf("import %s: %w", img.spec.Ref, err)
		}
	}
	return nil
}
