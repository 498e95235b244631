package kubeconfig

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{embedded, fileRefs, bootstrap, "", "{}", "clusters: [", "apiVersion: v1\nkind: Config\ncurrent-context: x\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.conf", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "kubeconfig fuzz.conf: ") {
				t.Fatalf("error does not name its source or match ErrInvalid: %v", err)
			}
			return
		}
		if cfg.Server == "" || cfg.CurrentContext == "" || cfg.Cluster == "" {
			t.Fatalf("accepted a kubeconfig without server, context or cluster: %+v", cfg)
		}
	})
}
