package rotation

import (
	"strings"
	"testing"
)

func TestOutageNote(t *testing.T) {
	for _, tt := range []struct {
		name  string
		roots Roots
		one   bool
		want  []string // "" for no note
	}{
		{"default roots, one control plane", DefaultRoots(), true, nil},
		{"every root, three control planes", AllRoots(), false, nil},
		{"service-account key, one control plane", Roots{RootClusterCA, RootFrontProxyCA, RootServiceAccountKey}, true,
			[]string{"API is unavailable", "kube-apiserver restarts twice (about 43s each"}},
		{"etcd CA, one control plane", Roots{RootClusterCA, RootFrontProxyCA, RootEtcdCA}, true,
			[]string{"kube-apiserver restarts twice", " and etcd twice (about ", "once in trust and once in finalize"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &Rotation{M: &Material{Roots: tt.roots, OneAPIServer: tt.one}}
			got := r.OutageNote()
			if tt.want == nil {
				if got != "" {
					t.Fatalf("got %q, want no note", got)
				}
				return
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("note %q does not say %q", got, w)
				}
			}
		})
	}
}
