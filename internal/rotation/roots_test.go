package rotation

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/carotate/carotate/internal/model"
)

// TestParseRoots: what --roots accepts, in which order the set comes out,
// and what it refuses, naming the valid values.
func TestParseRoots(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Roots
		err  string // part of the error
	}{
		{"default", "cluster-ca,front-proxy-ca", DefaultRoots(), ""},
		{"any order, spaces, duplicates", " front-proxy-ca , cluster-ca,cluster-ca", DefaultRoots(), ""},
		{"all", "all", AllRoots(), ""},
		{"all with others", "cluster-ca,all", AllRoots(), ""},
		{"one", "etcd-ca", Roots{RootEtcdCA}, ""},
		{"canonical order", "etcd-ca,service-account-key,cluster-ca", Roots{RootClusterCA, RootServiceAccountKey, RootEtcdCA}, ""},
		{"empty", "", nil, "names no root; give a comma-separated list of cluster-ca, front-proxy-ca, service-account-key, etcd-ca, all"},
		{"only commas", " , ,", nil, "names no root"},
		{"unknown", "cluster-ca,sa", nil, `"sa" is not a root; the roots are cluster-ca, front-proxy-ca, service-account-key, etcd-ca, all`},
		{"case matters", "Cluster-CA", nil, `"Cluster-CA" is not a root`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRoots(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("roots (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRootsSupported: this version rotates the cluster and front-proxy
// CAs together and refuses every other choice, saying why.
func TestRootsSupported(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // parts of the error; none when supported
	}{
		{"default", "cluster-ca,front-proxy-ca", nil},
		{"with the service-account key", "cluster-ca,front-proxy-ca,service-account-key", nil},
		{"service-account key alone", "service-account-key", []string{"service-account-key and etcd-ca only with them"}},
		{"etcd CA", "cluster-ca,front-proxy-ca,etcd-ca", nil},
		{"etcd CA alone", "etcd-ca", []string{"service-account-key and etcd-ca only with them", "give both"}},
		{"all", "all", nil},
		{"cluster CA alone", "cluster-ca", []string{"cluster-ca and front-proxy-ca rotate together in this version"}},
		{"front-proxy CA alone", "front-proxy-ca", []string{"rotate together"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRoots(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			err = r.Supported()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrRootNotRotated) {
				t.Fatalf("err = %v, want ErrRootNotRotated", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestRootKinds: each root is the catalogue's kind of the same name.
func TestRootKinds(t *testing.T) {
	want := []model.CAKind{model.ClusterCA, model.FrontProxyCA, model.ServiceAccountCA, model.EtcdCA}
	if diff := cmp.Diff(want, AllRoots().Kinds()); diff != "" {
		t.Errorf("kinds (-want +got):\n%s", diff)
	}
}

// TestRecordedRoots: a record without roots means the default; one with
// roots reads them back; a root changed by hand is an error.
func TestRecordedRoots(t *testing.T) {
	if got, err := RecordedRoots(nil); err != nil || !got.Equal(DefaultRoots()) {
		t.Errorf("RecordedRoots(nil) = %v, %v; want the default", got, err)
	}
	if got, err := RecordedRoots(AllRoots().Names()); err != nil || !got.Equal(AllRoots()) {
		t.Errorf("RecordedRoots(all) = %v, %v", got, err)
	}
	if _, err := RecordedRoots([]string{"cluster"}); err == nil || !strings.Contains(err.Error(), "changed by hand") {
		t.Errorf("RecordedRoots(cluster) = %v, want an error saying it was changed by hand", err)
	}
}

// TestNotRotatedNote: the sentence names what is left out, and is empty
// when nothing is.
func TestNotRotatedNote(t *testing.T) {
	want := "Not rotated: the service-account signing key (sa.key) and the etcd CA; after a leak of /etc/kubernetes/pki they must be rotated too: add service-account-key,etcd-ca to --roots (or --roots all)."
	if got := NotRotatedNote(DefaultRoots()); got != want {
		t.Errorf("default: %q\nwant %q", got, want)
	}
	if got := NotRotatedNote(Roots{RootClusterCA, RootFrontProxyCA, RootServiceAccountKey}); !strings.HasPrefix(got, "Not rotated: the etcd CA; ") {
		t.Errorf("without etcd: %q", got)
	}
	if got := NotRotatedNote(AllRoots()); got != "" {
		t.Errorf("all: %q, want none", got)
	}
}
