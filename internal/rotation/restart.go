package rotation

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/inspect"
	"github.com/carotate/carotate/internal/manifest"
)

const configHashAnnotation = "kubernetes.io/config.hash"

// staticPodState is what the mirror pod of a static pod says about it.
type staticPodState struct {
	Exists  bool
	Restart string // our annotation, "" when absent
	Hash    string
	Ready   bool
	// Containers is each container's state as the kubelet reports it,
	// e.g. "kube-scheduler running since 12:00:01" or "waiting: CrashLoopBackOff".
	Containers []string
	// Started is when the component's container last started, "zero"
	// when it is not running. The kubelet reports it to the second.
	Started time.Time
}

func containerStates(pod *corev1.Pod) []string {
	var out []string
	for _, c := range pod.Status.ContainerStatuses {
		switch s := c.State; {
		case s.Running != nil:
			out = append(out, fmt.Sprintf("%s running since %s (restarts %d)", c.Name, s.Running.StartedAt.UTC().Format(time.TimeOnly), c.RestartCount))
		case s.Waiting != nil:
			out = append(out, fmt.Sprintf("%s waiting: %s %s", c.Name, s.Waiting.Reason, s.Waiting.Message))
		case s.Terminated != nil:
			out = append(out, fmt.Sprintf("%s terminated: %s exit %d", c.Name, s.Terminated.Reason, s.Terminated.ExitCode))
		}
	}
	return out
}

func (r *Rotation) staticPod(ctx context.Context, component, nodeName string) (staticPodState, error) {
	pod, err := r.Client.CoreV1().Pods("kube-system").Get(ctx, component+"-"+nodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return staticPodState{}, nil
	}
	if err != nil {
		return staticPodState{}, fmt.Errorf("read mirror pod kube-system/%s-%s: %w", component, nodeName, err)
	}
	st := staticPodState{Exists: true, Restart: pod.Annotations[RestartAnnotation], Hash: pod.Annotations[configHashAnnotation], Containers: containerStates(pod)}
	for _, c := range pod.Status.ContainerStatuses {
		if c.Name == component && c.State.Running != nil {
			st.Started = c.State.Running.StartedAt.Time
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			st.Ready = true
		}
	}
	return st, nil
}

// restartValue is the restart annotation a manifest carries, "" for none.
func restartValue(src string, data []byte) (string, error) {
	m, err := manifest.Parse(src, data)
	if err != nil {
		return "", err
	}
	return m.Pod.Annotations[RestartAnnotation], nil
}

// staticPodRunning reports whether the running static pod is the one the
// manifest describes: its mirror pod carries the manifest's restart
// annotation and is Ready (the kubelet's probes hit the component's own
// health endpoint).
func (r *Rotation) staticPodRunning(ctx context.Context, component, nodeName string, manifestData []byte) (bool, string, error) {
	want, err := restartValue(nodeName+":"+component, manifestData)
	if err != nil {
		return false, "", err
	}
	st, err := r.staticPod(ctx, component, nodeName)
	if err != nil {
		return false, "", err
	}
	switch {
	case !st.Exists:
		return false, component + " has no mirror pod", nil
	case st.Restart != want:
		return false, fmt.Sprintf("%s runs %q, manifest says %q", component, st.Restart, want), nil
	case !st.Ready:
		return false, component + " is not Ready", nil
	}
	return true, "", nil
}

// waitStaticPod waits until the kubelet has restarted component from the
// manifest it now holds: the mirror pod's config hash differs from
// hashBefore (when given) and it carries the manifest's restart
// annotation; then, for kube-controller-manager and kube-scheduler, until
// the new container runs and answers its health probe from the node, and
// for the others (or when the node cannot be probed) until the mirror pod
// is Ready. The phase's gate waits for every Ready.
func (r *Rotation) waitStaticPod(ctx context.Context, component, nodeName, hashBefore string, manifestData []byte) error {
	want, err := restartValue(nodeName+":"+component, manifestData)
	if err != nil {
		return err
	}
	n := r.node(nodeName)
	hp, probing := probeOf(nodeName+":"+component, manifestData)
	probing = probing && servedWhenHealthy[component] && n != nil
	var last staticPodState
	var lastProbe error
	start, said := time.Now(), time.Now()
	every := time.Second
	if probing {
		every = servingPollEvery
	}
	err = wait.PollUntilContextTimeout(ctx, every, r.timeouts().StaticPod, true, func(ctx context.Context) (bool, error) {
		seen := "no mirror pod yet"
		switch {
		case !last.Exists:
		case last.Restart != want || (hashBefore != "" && last.Hash == hashBefore):
			seen = "the old pod still"
		case probing && lastProbe != nil:
			seen = "the new pod, not serving yet (" + lastProbe.Error() + ")"
		default:
			seen = "the new pod, not Ready yet"
		}
		engine.Wait(ctx, component+" on "+nodeName+" to come back from its new manifest; seen: "+seen)
		if r.Log != nil && time.Since(said) >= progressEvery {
			said = time.Now()
			r.Log.Info("waiting", "for", component+" on "+nodeName+" to come back from its new manifest",
				"waited", time.Since(start).Round(time.Second), "seen", seen, "at most", r.timeouts().StaticPod)
		}
		st, err := r.staticPod(ctx, component, nodeName)
		if err != nil {
			return false, nil // the API may blink while a control plane restarts; the timeout bounds it
		}
		last = st
		if !st.Exists || st.Restart != want || (hashBefore != "" && st.Hash == hashBefore) {
			return false, nil
		}
		if st.Ready {
			return true, nil
		}
		// The kubelet starts the new pod's container only once the old
		// one is gone, so a running container in the new mirror pod is
		// the new process, and what answers on its port is that.
		if !probing || st.Started.IsZero() {
			return false, nil
		}
		lastProbe = probe(ctx, n, hp)
		if errors.Is(lastProbe, errCannotProbe) {
			probing = false
			if r.Log != nil {
				r.Log.Info("waiting for Ready instead", "component", component, "node", nodeName, "why", lastProbe)
			}
		}
		return lastProbe == nil, nil
	})
	if err != nil {
		return r.staticPodTimeout(ctx, component, nodeName, hashBefore, want, last, err)
	}
	return nil
}

// staticPodTimeout says what a static pod wait saw when it gave up: a
// duplicate definition in manifests/ (named as the cause, since the kubelet
// then runs whichever copy it read last), the mirror pod's annotation, hash
// and readiness, and its containers' states.
func (r *Rotation) staticPodTimeout(ctx context.Context, component, nodeName, hashBefore, want string, last staticPodState, err error) error {
	ctx = context.WithoutCancel(ctx)
	if n := r.node(nodeName); n != nil {
		if strays, serr := inspect.StrayManifests(ctx, n.Exec, ManifestsDir); serr == nil && len(strays) > 0 {
			return fmt.Errorf("node %s: %s did not come back from its new manifest within %s, because %w",
				nodeName, component, r.timeouts().StaticPod, &StrayManifestError{Node: nodeName, Files: strays})
		}
	}
	saw := "no mirror pod"
	if last.Exists {
		hash := "changed"
		if hashBefore != "" && last.Hash == hashBefore {
			hash = "unchanged (" + last.Hash + ")"
		}
		containers := strings.Join(last.Containers, "; ")
		if containers == "" {
			containers = "no container status"
		}
		saw = fmt.Sprintf("mirror pod annotation %q (want %q), config hash %s, ready %v, containers: %s", last.Restart, want, hash, last.Ready, containers)
	}
	return fmt.Errorf("node %s: %s did not come back Ready from its new manifest within %s: %s; look at `crictl ps -a` and the container log on the node: %w",
		nodeName, component, r.timeouts().StaticPod, saw, err)
}

// kubeletStart is when the node's kubelet process started, by the node's
// clock, read from the kubelet's own metrics through the API server proxy.
func (r *Rotation) kubeletStart(ctx context.Context, nodeName string) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	body, err := r.Client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", nodeName, "proxy", "metrics").DoRaw(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("node %s: read the kubelet's metrics through the API: %w", nodeName, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "process_start_time_seconds "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				break
			}
			sec, frac := math.Modf(f)
			return time.Unix(int64(sec), int64(frac*1e9)), nil
		}
	}
	return time.Time{}, fmt.Errorf("node %s: the kubelet's metrics have no process_start_time_seconds", nodeName)
}

// restartKubelet restarts the node's kubelet with the configured command
// and waits until a new kubelet process runs, has renewed the node's lease
// and the node is Ready.
func (r *Rotation) restartKubelet(ctx context.Context, n *Node) error {
	prev, _ := r.kubeletStart(ctx, n.Name) // zero when unknown: any start will do
	if _, err := n.Exec.Run(ctx, r.KubeletRestart, nil); err != nil {
		return fmt.Errorf("node %s: restart the kubelet with %q: %w", n.Name, strings.Join(r.KubeletRestart, " "), err)
	}
	if n.AllowUnready {
		return nil
	}
	var why string
	err := wait.PollUntilContextTimeout(ctx, time.Second, r.timeouts().Kubelet, true, func(ctx context.Context) (bool, error) {
		if why != "" {
			engine.Wait(ctx, "the kubelet on "+n.Name+" to come back: "+why)
		}
		started, err := r.kubeletStart(ctx, n.Name)
		if err != nil {
			why = err.Error()
			return false, nil
		}
		if !started.After(prev) {
			why = "the old kubelet process still answers"
			return false, nil
		}
		lease, err := r.Client.CoordinationV1().Leases("kube-node-lease").Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			why = err.Error()
			return false, nil
		}
		if lease.Spec.RenewTime == nil || lease.Spec.RenewTime.Time.Before(started.Add(-startTimeSlack)) {
			why = "the new kubelet has not renewed the node's lease yet"
			return false, nil
		}
		nd, err := r.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			why = err.Error()
			return false, nil
		}
		if !nodeReady(nd) {
			why = "the node is not Ready"
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("node %s: the kubelet did not come back within %s (%s); look at `journalctl -u kubelet` on the node: %w", n.Name, r.timeouts().Kubelet, why, err)
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
