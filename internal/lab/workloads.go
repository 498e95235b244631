package lab

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// The lab's probe workloads.
const (
	ProbeNamespace  = "lab-probe"
	ProbeDaemonSet  = "probe-daemon"
	ProbeDeployment = "probe-spread"
	PDBNamespace    = "lab-pdb"
	PDBDeployment   = "web"
)

// Client returns a clientset that talks to the lab as its admin, with the
// first control plane's live admin.conf: a CA rotation replaces it, and the
// copy in the state directory (Kubeconfig) then no longer works.
func (l *Lab) Client() (*kubernetes.Clientset, error) {
	path := l.Kubeconfig()
	if cps := l.ControlPlaneNodes(); len(cps) > 0 {
		if p, err := l.NodePath(cps[0].Name, "/etc/kubernetes/admin.conf"); err == nil {
			if _, err := os.Stat(p); err == nil {
				path = p
			}
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 15 * time.Second
	return kubernetes.NewForConfig(cfg)
}

func probePodSpec(args ...string) corev1.PodSpec {
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	return corev1.PodSpec{
		ServiceAccountName: "probe",
		Tolerations:        []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
		Containers: []corev1.Container{{
			Name:            "probe",
			Image:           ProbeImage,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Args:            args,
			Env: []corev1.EnvVar{
				fieldEnv("NODE_NAME", "spec.nodeName"),
				fieldEnv("POD_NAME", "metadata.name"),
				fieldEnv("POD_NAMESPACE", "metadata.namespace"),
			},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
				PeriodSeconds: 2,
			},
		}},
		TerminationGracePeriodSeconds: ptr(int64(5)),
	}
}

func ptr[T any](v T) *T { return &v }

// deployWorkloads deploys the probes: an in-cluster client as a DaemonSet and
// as a Deployment with one pod per node, and a 3-replica Deployment guarded by
// a PodDisruptionBudget.
func (l *Lab) deployWorkloads(ctx context.Context) error {
	c, err := l.Client()
	if err != nil {
		return err
	}
	labels := func(app string) map[string]string { return map[string]string{"app": app} }
	var errs []error
	create := func(err error) {
		if err != nil && !apierrors.IsAlreadyExists(err) {
			errs = append(errs, err)
		}
	}
	for _, ns := range []string{ProbeNamespace, PDBNamespace} {
		_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		create(err)
		_, err = c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "probe"}}, metav1.CreateOptions{})
		create(err)
		_, err = c.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "probe"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"},
				ResourceNames: []string{"kube-root-ca.crt"}, Verbs: []string{"get"}}},
		}, metav1.CreateOptions{})
		create(err)
		_, err = c.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "probe"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "probe"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "probe", Namespace: ns}},
		}, metav1.CreateOptions{})
		create(err)
	}

	_, err = c.AppsV1().DaemonSets(ProbeNamespace).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: ProbeDaemonSet},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels(ProbeDaemonSet)},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels(ProbeDaemonSet)}, Spec: probePodSpec()},
		},
	}, metav1.CreateOptions{})
	create(err)

	spread := probePodSpec()
	spread.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: labels(ProbeDeployment)},
			TopologyKey:   "kubernetes.io/hostname",
		}},
	}}
	_, err = c.AppsV1().Deployments(ProbeNamespace).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: ProbeDeployment},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(len(l.Nodes))),
			Selector: &metav1.LabelSelector{MatchLabels: labels(ProbeDeployment)},
			// One pod per node: a surge pod would have nowhere to go.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: ptr(intstr.FromInt32(0)), MaxUnavailable: ptr(intstr.FromInt32(1))}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels(ProbeDeployment)}, Spec: spread},
		},
	}, metav1.CreateOptions{})
	create(err)

	_, err = c.AppsV1().Deployments(PDBNamespace).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: PDBDeployment},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: labels(PDBDeployment)},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels(PDBDeployment)}, Spec: probePodSpec("idle")},
		},
	}, metav1.CreateOptions{})
	create(err)
	_, err = c.PolicyV1().PodDisruptionBudgets(PDBNamespace).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: PDBDeployment},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr(intstr.FromInt32(2)),
			Selector:     &metav1.LabelSelector{MatchLabels: labels(PDBDeployment)},
		},
	}, metav1.CreateOptions{})
	create(err)
	if len(errs) > 0 {
		return fmt.Errorf("deploy workloads: %v", errs)
	}
	return nil
}

// Health is what WaitHealthy looks at.
type Health struct {
	NotReadyNodes []string
	NotReadyPods  []string
}

func (h Health) ok() bool { return len(h.NotReadyNodes) == 0 && len(h.NotReadyPods) == 0 }

func (h Health) String() string {
	if h.ok() {
		return "all nodes Ready, all pods Running and ready"
	}
	return fmt.Sprintf("nodes not Ready: [%s]; pods not ready: [%s]", strings.Join(h.NotReadyNodes, " "), strings.Join(h.NotReadyPods, " "))
}

// CheckHealth lists the nodes that are not Ready and the pods that are not
// Running with every container ready.
func (l *Lab) CheckHealth(ctx context.Context) (Health, error) {
	c, err := l.Client()
	if err != nil {
		return Health{}, err
	}
	var h Health
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return h, err
	}
	seen := map[string]bool{}
	for _, n := range nodes.Items {
		seen[n.Name] = true
		if !nodeReady(&n) {
			h.NotReadyNodes = append(h.NotReadyNodes, n.Name)
		}
	}
	for _, n := range l.Nodes {
		if !seen[n.Name] {
			h.NotReadyNodes = append(h.NotReadyNodes, n.Name+"(absent)")
		}
	}
	pods, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return h, err
	}
	for _, p := range pods.Items {
		if !podReady(&p) {
			h.NotReadyPods = append(h.NotReadyPods, fmt.Sprintf("%s/%s(%s)", p.Namespace, p.Name, p.Status.Phase))
		}
	}
	sort.Strings(h.NotReadyPods)
	return h, nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase == corev1.PodSucceeded {
		return true
	}
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// WaitHealthy waits until every node is Ready and every pod Running and
// ready, or timeout.
func (l *Lab) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	var last Health
	var lastErr error
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		last, lastErr = l.CheckHealth(ctx)
		return lastErr == nil && last.ok(), nil
	})
	if err != nil {
		if lastErr != nil {
			return fmt.Errorf("cluster not healthy after %s: %w", timeout, lastErr)
		}
		return fmt.Errorf("cluster not healthy after %s: %s", timeout, last)
	}
	return nil
}
