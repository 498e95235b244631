package inspect

import (
	"context"
	"path"
	"sort"
	"strings"

	"github.com/carotate/carotate/internal/kubeconfig"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// kubeconfigs reads every non-dot *.conf in the Kubernetes directory (and
// any other kubeconfig a manifest's flag names), resolving the files they
// reference through the executor.
func (in *inspector) kubeconfigs(ctx context.Context) {
	dir := in.opts.KubernetesDir
	seen := map[string]bool{}
	var paths []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	entries, err := in.ex.ReadDir(ctx, dir)
	if err != nil {
		in.warn("cannot list %s: %v", dir, err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name, ".") && strings.HasSuffix(e.Name, ".conf") && !e.Mode.IsDir() {
			add(path.Join(dir, e.Name))
		}
	}
	for _, m := range in.node.Manifests {
		for _, f := range m.Flags {
			if kubeconfigFlag(f.Name) && path.IsAbs(f.Value) {
				add(path.Clean(f.Value))
			}
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		if kc, ok := in.kubeconfig(ctx, p); ok {
			in.node.Kubeconfigs = append(in.node.Kubeconfigs, kc)
		}
	}
}

func (in *inspector) kubeconfig(ctx context.Context, p string) (model.Kubeconfig, bool) {
	data, err := in.ex.ReadFile(ctx, p)
	if err != nil {
		in.warn("cannot read kubeconfig %s: %v", p, err)
		return model.Kubeconfig{}, false
	}
	cfg, err := kubeconfig.Parse(in.source(p), data)
	clear(data) // it may embed a client key
	if err != nil {
		in.warn("%v", err)
		return model.Kubeconfig{}, false
	}
	kc := model.Kubeconfig{
		Path:           p,
		Role:           cfg.Role,
		Server:         cfg.Server,
		Cluster:        cfg.Cluster,
		User:           cfg.User,
		CAFile:         cfg.CAFile,
		ClientCertFile: cfg.ClientCertFile,
		ClientKeyFile:  cfg.ClientKeyFile,
		Token:          cfg.Token,
	}
	switch {
	case cfg.CAFile != "":
		if f := in.file(ctx, cfg.CAFile); f != nil {
			kc.CACerts = f.Certs
		}
	case len(cfg.CAData) > 0:
		certs, err := pki.ParseCertificatesPEM(in.source(p)+" "+cfg.ClusterField("certificate-authority-data"), cfg.CAData)
		if err != nil {
			in.warn("%v", err)
		}
		kc.CACerts = CertsOf(certs)
	}
	switch {
	case cfg.ClientCertFile != "":
		if f := in.file(ctx, cfg.ClientCertFile); f != nil && len(f.Certs) > 0 {
			c := f.Certs[0]
			kc.ClientCert = &c
		}
	case len(cfg.ClientCertData) > 0:
		certs, err := pki.ParseCertificatesPEM(in.source(p)+" "+cfg.UserField("client-certificate-data"), cfg.ClientCertData)
		if err != nil {
			in.warn("%v", err)
		} else {
			c := CertOf(certs[0])
			kc.ClientCert = &c
		}
	}
	if cfg.ClientKeyFile != "" {
		in.file(ctx, cfg.ClientKeyFile)
	}
	return kc, true
}
