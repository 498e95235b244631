package lab

import (
	"strings"
	"testing"
)

func TestInitConfigMaxPods(t *testing.T) {
	l := &Lab{Name: "t", Subnet: "213.0", Endpoint: "10.213.0.11:6443"}
	n := Node{Name: "cp-1", IP: "10.213.0.11", ControlPlane: true}
	l.Nodes = []Node{n}
	if cfg := l.initConfig(n, "abcdef.0123456789abcdef", "00"); strings.Contains(cfg, "maxPods") {
		t.Errorf("without MaxPods the kubelet keeps its default, but the config sets one:\n%s", cfg)
	}
	l.MaxPods = 250
	cfg := l.initConfig(n, "abcdef.0123456789abcdef", "00")
	kubelet := cfg[strings.Index(cfg, "kind: KubeletConfiguration"):]
	kubelet = kubelet[:strings.Index(kubelet, "---")]
	if !strings.Contains(kubelet, "\nmaxPods: 250\n") {
		t.Errorf("the KubeletConfiguration does not set maxPods 250:\n%s", kubelet)
	}
}

func TestOptionsRefuseMaxPods(t *testing.T) {
	for _, n := range []int{-1, 9, 251} {
		o := Options{Name: "t", ControlPlanes: 1, Subnet: "213.0", MaxPods: n}
		err := o.validate()
		if err == nil || !strings.Contains(err.Error(), "max pods") {
			t.Errorf("MaxPods %d: got %v, want a max pods error", n, err)
		}
	}
}
