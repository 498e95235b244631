// Package image writes container images from scratch as docker-archive
// ("docker save") tarballs, so the lab can load kube-apiserver, etcd and
// friends with `ctr -n k8s.io images import FILE` on hosts that have neither
// a registry nor a Docker engine.
//
// The archive holds one uncompressed layer, its config and a manifest.json
// naming the tag. Output is deterministic: the same Spec and the same source
// files give the same bytes and the same image ID, so a rebuilt image can
// be compared with the one a node already holds.
package image

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"strings"
)

// DefaultPath is prepended to Spec.Env when it sets no PATH, because
// kubeadm's manifests run kube-apiserver and etcd by bare name.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// File is one entry of the image's single layer.
//
// Exactly one of Source, Data or Symlink gives the content; with none of
// them and Mode carrying fs.ModeDir the entry is a directory (for example
// /tmp with mode ModeDir|ModeSticky|0o777). Parent directories are created
// with mode 0755 unless listed explicitly.
type File struct {
	// Path is where the entry lives in the image, e.g. "/usr/local/bin/etcd".
	Path string
	// Source is a host file whose content is copied. Symlinks on the host
	// are followed: the image gets a regular file with the target's bytes.
	Source string
	// Data is literal content, for small files such as /etc/passwd.
	Data []byte
	// Symlink makes the entry a symbolic link pointing at this target.
	Symlink string
	// Mode holds permission bits (plus setuid, setgid, sticky and ModeDir).
	// Zero means the host file's permissions for Source, 0644 for Data,
	// 0777 for Symlink and 0755 for directories.
	Mode fs.FileMode
}

// Spec describes one image.
type Spec struct {
	// Ref is the tag containerd records, e.g.
	// "registry.k8s.io/kube-apiserver:v1.37.2".
	Ref   string
	Files []File
	// Env is the container environment; DefaultPath is added when no
	// PATH= entry is present.
	Env        []string
	Entrypoint []string
	Cmd        []string
	// WorkingDir defaults to "/".
	WorkingDir string
	// Architecture defaults to the architecture carotate was built for,
	// since the binaries put in the image come from this host.
	Architecture string
}

// ErrInvalidSpec marks a Spec that cannot become an image.
var ErrInvalidSpec = errors.New("invalid image spec")

// Write writes spec as a docker-archive tarball to w and returns the image
// ID, "sha256:" followed by the hex digest of the config. That is the ID
// `crictl images` and the kubelet show; containerd computes the manifest
// digest itself on import.
func Write(w io.Writer, spec Spec) (string, error) {
	if strings.TrimSpace(spec.Ref) == "" || strings.ContainsAny(spec.Ref, " \t\n") {
		return "", fmt.Errorf("image ref %q: %w", spec.Ref, ErrInvalidSpec)
	}
	entries, err := planLayer(spec.Files)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	// The layer's size and digest go into headers and the config before
	// its bytes, so measure it first and write it second instead of
	// buffering hundreds of megabytes of binaries.
	size, diffID, err := measureLayer(entries)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	config, err := json.Marshal(newConfig(spec, diffID))
	if err != nil {
		return "", fmt.Errorf("image %s: encode config: %w", spec.Ref, err)
	}
	configSum := sha256.Sum256(config)
	configHex := hex.EncodeToString(configSum[:])
	layerDir := strings.TrimPrefix(diffID, "sha256:")
	manifest, err := json.Marshal([]manifestEntry{{
		Config:   configHex + ".json",
		RepoTags: []string{spec.Ref},
		Layers:   []string{layerDir + "/layer.tar"},
	}})
	if err != nil {
		return "", fmt.Errorf("image %s: encode manifest: %w", spec.Ref, err)
	}

	tw := tar.NewWriter(w)
	if err := writeBytes(tw, configHex+".json", config); err != nil {
		return "", fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	if err := tw.WriteHeader(dirHeader(layerDir+"/", 0o755)); err != nil {
		return "", fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	if err := tw.WriteHeader(fileHeader(layerDir+"/layer.tar", size, 0o644)); err != nil {
		return "", fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	written, err := writeLayer(tw, entries)
	if err != nil {
		return "", fmt.Errorf("image %s: write layer: %w", spec.Ref, err)
	}
	if written != diffID {
		return "", fmt.Errorf("image %s: a source file changed while the image was written (layer %s, then %s)", spec.Ref, diffID, written)
	}
	if err := writeBytes(tw, "manifest.json", manifest); err != nil {
		return "", fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	return "sha256:" + configHex, nil
}

// manifestEntry is one element of docker-archive's manifest.json.
type manifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// imageConfig is the subset of the OCI/Docker image config that runtimes
// read. Created and history are left out on purpose: a timestamp would
// break byte-for-byte reproducibility and nothing in the lab reads them.
type imageConfig struct {
	Architecture string          `json:"architecture"`
	OS           string          `json:"os"`
	Config       containerConfig `json:"config"`
	RootFS       rootFS          `json:"rootfs"`
}

type containerConfig struct {
	Env        []string `json:"Env,omitempty"`
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

func newConfig(spec Spec, diffID string) imageConfig {
	env := spec.Env
	if !hasPath(env) {
		env = append([]string{DefaultPath}, env...)
	}
	arch := spec.Architecture
	if arch == "" {
		arch = runtime.GOARCH
	}
	wd := spec.WorkingDir
	if wd == "" {
		wd = "/"
	}
	return imageConfig{
		Architecture: arch,
		OS:           "linux",
		Config: containerConfig{
			Env:        env,
			Entrypoint: spec.Entrypoint,
			Cmd:        spec.Cmd,
			WorkingDir: wd,
		},
		RootFS: rootFS{Type: "layers", DiffIDs: []string{diffID}},
	}
}

func hasPath(env []string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			return true
		}
	}
	return false
}

func writeBytes(tw *tar.Writer, name string, data []byte) error {
	if err := tw.WriteHeader(fileHeader(name, int64(len(data)), 0o644)); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}
