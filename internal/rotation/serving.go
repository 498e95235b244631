package rotation

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/carotate/carotate/internal/manifest"
	"github.com/carotate/carotate/internal/node"
)

// servedWhenHealthy are the static pods whose restart is over once the new
// container answers its own health endpoint: nothing waits on their mirror
// pod's Ready, which kubeadm's startup probe holds back for 10 s or more
// after the process serves. kube-apiserver and etcd keep their own checks
// (readyz through the balancer, a healthy cluster).
var servedWhenHealthy = map[string]bool{manifest.KubeControllerManager: true, manifest.KubeScheduler: true}

// servingPollEvery is how often a restarted component is looked at.
const servingPollEvery = 250 * time.Millisecond

// healthProbe is the HTTP check the kubelet makes on a component, made
// from the node: its container's startup probe, else its liveness probe,
// as kubeadm writes them (https://127.0.0.1:10257/healthz for
// kube-controller-manager).
type healthProbe struct {
	url     string
	address string // host:port, dialled from the node
}

// probeOf reads the probe from a manifest; false when it has none carotate
// can make from the node: no httpGet, a port name the container does not
// declare, or no host (the pod's IP, which carotate does not know here).
// kubeadm names the port (probe-port) since v1.31.
func probeOf(source string, data []byte) (healthProbe, bool) {
	m, err := manifest.Parse(source, data)
	if err != nil {
		return healthProbe{}, false
	}
	c := m.Pod.Spec.Containers[m.Container]
	for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Host == "" {
			continue
		}
		g := p.HTTPGet
		port := g.Port.IntValue()
		if g.Port.Type == intstr.String {
			port = 0
			for _, cp := range c.Ports {
				if cp.Name == g.Port.StrVal {
					port = int(cp.ContainerPort)
				}
			}
		}
		if port <= 0 {
			continue
		}
		scheme := strings.ToLower(string(g.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		path := g.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		addr := net.JoinHostPort(g.Host, strconv.Itoa(port))
		return healthProbe{url: scheme + "://" + addr + path, address: addr}, true
	}
	return healthProbe{}, false
}

// errCannotProbe: the node's executor cannot reach the component's port,
// so the wait falls back to the mirror pod's Ready.
var errCannotProbe = errors.New("cannot probe from the node")

// probe makes one health check of p from n, on a new connection: nil when
// the component answers 200.
func probe(ctx context.Context, n *Node, p healthProbe) error {
	if n == nil || n.Exec == nil {
		return errCannotProbe
	}
	var dialErr error
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			conn, err := n.Exec.Dial(ctx, p.address)
			dialErr = err
			return conn, err
		},
		// The component's serving certificate is its own, self-signed
		// one unless an operator gave it another; like the kubelet's
		// probe, this asks whether it serves, and sends nothing.
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a health probe, as the kubelet's
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		if errors.Is(dialErr, node.ErrForwardingRefused) {
			return fmt.Errorf("%w: %w", errCannotProbe, dialErr)
		}
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d %s", p.url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}
