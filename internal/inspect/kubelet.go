package inspect

import (
	"context"
	"errors"
	"io/fs"

	"github.com/carotate/carotate/internal/kubeletconfig"
	"github.com/carotate/carotate/internal/model"
)

// kubelet reads the KubeletConfiguration and the files it names.
func (in *inspector) kubelet(ctx context.Context) {
	p := in.opts.KubeletConfig
	data, err := in.ex.ReadFile(ctx, p)
	if errors.Is(err, fs.ErrNotExist) {
		in.warn("no kubelet config at %s: the kubelet's clientCAFile cannot be checked; "+
			"if the kubelet runs with another --config, pass its path", p)
		return
	}
	if err != nil {
		in.warn("cannot read the kubelet config %s: %v", p, err)
		return
	}
	cfg, err := kubeletconfig.Parse(in.source(p), data)
	if err != nil {
		in.warn("%v", err)
		return
	}
	in.node.Kubelet = &model.Kubelet{
		ConfigPath:         p,
		ClientCAFile:       cfg.ClientCAFile(),
		RotateCertificates: cfg.RotateCertificates(),
		ServerTLSBootstrap: cfg.ServerTLSBootstrap(),
		TLSCertFile:        cfg.TLSCertFile(),
		TLSPrivateKeyFile:  cfg.TLSPrivateKeyFile(),
	}
	for _, f := range []string{cfg.ClientCAFile(), cfg.TLSCertFile(), cfg.TLSPrivateKeyFile()} {
		if f != "" {
			in.file(ctx, f)
		}
	}
}
