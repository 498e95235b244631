package workload

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

func wl(kind, ns, name string, pods int) Workload {
	return Workload{Kind: kind, Namespace: ns, Name: name, Pods: pods}
}

var ignoreReason = cmpopts.IgnoreFields(Workload{}, "Reason", "Tier")

func TestDecide(t *testing.T) {
	const annotation = "rot-1/trust"
	kubeProxy := daemonSet("kube-system", "kube-proxy", dsLabel("k8s-app", "kube-proxy"))
	coreDNS := deployment("kube-system", "coredns", deployLabel("k8s-app", "kube-dns"))
	coreDNSRS := replicaSet("kube-system", "coredns-5d78c9869d", controllerRef("apps/v1", "Deployment", "coredns"))
	web := deployment("shop", "web")
	webRSOld := replicaSet("shop", "web-6b7f", controllerRef("apps/v1", "Deployment", "web"))
	webRSNew := replicaSet("shop", "web-7c8d", controllerRef("apps/v1", "Deployment", "web"))

	tests := []struct {
		name  string
		facts Facts
		want  Plan
	}{{
		name: "projected kube-root-ca.crt volume",
		facts: Facts{
			DaemonSets: []appsv1.DaemonSet{kubeProxy},
			Pods:       []corev1.Pod{pod("kube-system", "kube-proxy-abcde", ownedBy("apps/v1", "DaemonSet", "kube-proxy"))},
		},
		want: Plan{Restart: []Workload{wl("DaemonSet", "kube-system", "kube-proxy", 1)}},
	}, {
		name: "kube-root-ca.crt as a ConfigMap volume",
		facts: Facts{
			DaemonSets: []appsv1.DaemonSet{kubeProxy},
			Pods: []corev1.Pod{pod("kube-system", "kube-proxy-abcde", ownedBy("apps/v1", "DaemonSet", "kube-proxy"),
				rootCAConfigMapVolume)},
		},
		want: Plan{Restart: []Workload{wl("DaemonSet", "kube-system", "kube-proxy", 1)}},
	}, {
		name: "no service-account volume",
		facts: Facts{
			DaemonSets: []appsv1.DaemonSet{kubeProxy},
			Pods: []corev1.Pod{pod("kube-system", "kube-proxy-abcde", ownedBy("apps/v1", "DaemonSet", "kube-proxy"),
				noServiceAccountVolume)},
		},
	}, {
		name: "started after the bundle",
		facts: Facts{
			DaemonSets: []appsv1.DaemonSet{kubeProxy},
			Pods: []corev1.Pod{pod("kube-system", "kube-proxy-abcde", ownedBy("apps/v1", "DaemonSet", "kube-proxy"),
				started(afterBundle))},
		},
	}, {
		name: "started in the second the bundle arrived",
		facts: Facts{
			DaemonSets: []appsv1.DaemonSet{kubeProxy},
			Pods: []corev1.Pod{pod("kube-system", "kube-proxy-abcde", ownedBy("apps/v1", "DaemonSet", "kube-proxy"),
				started(bundleAt))},
		},
		want: Plan{Restart: []Workload{wl("DaemonSet", "kube-system", "kube-proxy", 1)}},
	}, {
		name: "started the second after the bundle arrived",
		facts: Facts{
			DaemonSets: []appsv1.DaemonSet{kubeProxy},
			Pods: []corev1.Pod{pod("kube-system", "kube-proxy-abcde", ownedBy("apps/v1", "DaemonSet", "kube-proxy"),
				started(bundleAt.Add(time.Second)))},
		},
	}, {
		name: "not started yet, created before the bundle",
		facts: Facts{
			DaemonSets: []appsv1.DaemonSet{kubeProxy},
			Pods: []corev1.Pod{pod("kube-system", "kube-proxy-abcde", ownedBy("apps/v1", "DaemonSet", "kube-proxy"),
				notStarted(beforeBundle))},
		},
		want: Plan{Restart: []Workload{wl("DaemonSet", "kube-system", "kube-proxy", 1)}},
	}, {
		name: "start time wins over creation time",
		facts: Facts{
			DaemonSets: []appsv1.DaemonSet{kubeProxy},
			Pods: []corev1.Pod{pod("kube-system", "kube-proxy-abcde", ownedBy("apps/v1", "DaemonSet", "kube-proxy"),
				notStarted(beforeBundle), started(afterBundle))},
		},
	}, {
		name: "namespace the bundle is not known to have reached",
		facts: Facts{
			DaemonSets: []appsv1.DaemonSet{daemonSet("unknown", "agent")},
			Pods:       []corev1.Pod{pod("unknown", "agent-abcde", ownedBy("apps/v1", "DaemonSet", "agent"))},
		},
	}, {
		name: "pods of two ReplicaSets of one Deployment",
		facts: Facts{
			Deployments: []appsv1.Deployment{web},
			ReplicaSets: []appsv1.ReplicaSet{webRSOld, webRSNew},
			Pods: []corev1.Pod{
				pod("shop", "web-6b7f-aaaaa", ownedBy("apps/v1", "ReplicaSet", "web-6b7f")),
				pod("shop", "web-7c8d-bbbbb", ownedBy("apps/v1", "ReplicaSet", "web-7c8d")),
				pod("shop", "web-7c8d-ccccc", ownedBy("apps/v1", "ReplicaSet", "web-7c8d"), started(afterBundle)),
			},
		},
		want: Plan{Restart: []Workload{wl("Deployment", "shop", "web", 2)}},
	}, {
		name: "ReplicaSet that no Deployment owns",
		facts: Facts{
			ReplicaSets: []appsv1.ReplicaSet{replicaSet("shop", "legacy")},
			Pods:        []corev1.Pod{pod("shop", "legacy-aaaaa", ownedBy("apps/v1", "ReplicaSet", "legacy"))},
		},
		want: Plan{Skip: []Workload{wl("ReplicaSet", "shop", "legacy", 1)}},
	}, {
		name: "ReplicaSet of an Argo Rollout",
		facts: Facts{
			ReplicaSets: []appsv1.ReplicaSet{replicaSet("shop", "canary-5f6", controllerRef("argoproj.io/v1alpha1", "Rollout", "canary"))},
			Pods:        []corev1.Pod{pod("shop", "canary-5f6-aaaaa", ownedBy("apps/v1", "ReplicaSet", "canary-5f6"))},
		},
		want: Plan{Skip: []Workload{wl("Rollout.argoproj.io", "shop", "canary", 1)}},
	}, {
		name: "Job",
		facts: Facts{
			Pods: []corev1.Pod{
				pod("batch", "nightly-aaaaa", ownedBy("batch/v1", "Job", "nightly")),
				pod("batch", "nightly-bbbbb", ownedBy("batch/v1", "Job", "nightly")),
			},
		},
		want: Plan{Skip: []Workload{wl("Job", "batch", "nightly", 2)}},
	}, {
		name: "ReplicationController",
		facts: Facts{
			Pods: []corev1.Pod{pod("old", "frontend-aaaaa", ownedBy("v1", "ReplicationController", "frontend"))},
		},
		want: Plan{Skip: []Workload{wl("ReplicationController", "old", "frontend", 1)}},
	}, {
		name: "DaemonSet of another API group",
		facts: Facts{
			DaemonSets: []appsv1.DaemonSet{daemonSet("kruise", "agent")},
			Pods:       []corev1.Pod{pod("kruise", "agent-aaaaa", ownedBy("apps.kruise.io/v1alpha1", "DaemonSet", "agent"))},
		},
		want: Plan{Skip: []Workload{wl("DaemonSet.apps.kruise.io", "kruise", "agent", 1)}},
	}, {
		name: "owner not found",
		facts: Facts{
			Pods: []corev1.Pod{pod("kube-system", "kube-proxy-abcde", ownedBy("apps/v1", "DaemonSet", "kube-proxy"))},
		},
		want: Plan{Skip: []Workload{wl("DaemonSet", "kube-system", "kube-proxy", 1)}},
	}, {
		name: "mirror pod",
		facts: Facts{
			Pods: []corev1.Pod{pod("kube-system", "kube-apiserver-cp-1", mirrorPod)},
		},
	}, {
		name: "bare pod",
		facts: Facts{
			Pods: []corev1.Pod{pod("shop", "debug"), pod("shop", "fresh", started(afterBundle))},
		},
		want: Plan{Evict: []Workload{wl("Pod", "shop", "debug", 1)}},
	}, {
		name: "finished and terminating pods",
		facts: Facts{
			Pods: []corev1.Pod{
				pod("shop", "done", phase(corev1.PodSucceeded)),
				pod("shop", "failed", phase(corev1.PodFailed)),
				pod("shop", "going", deleting),
			},
		},
	}, {
		name: "kube-proxy and CNI, then CoreDNS, then the rest",
		facts: Facts{
			DaemonSets: []appsv1.DaemonSet{
				daemonSet("kube-system", "node-exporter"),
				kubeProxy,
				daemonSet("calico-system", "calico-node"),
				daemonSet("kube-flannel", "kube-flannel-ds"),
				daemonSet("monitoring", "kube-proxy"), // the label, not the name, and only in kube-system
			},
			Deployments:  []appsv1.Deployment{web, coreDNS, deployment("a", "coredns", deployLabel("k8s-app", "kube-dns"))},
			ReplicaSets:  []appsv1.ReplicaSet{webRSNew, coreDNSRS, replicaSet("a", "coredns-1", controllerRef("apps/v1", "Deployment", "coredns"))},
			StatefulSets: []appsv1.StatefulSet{statefulSet("a", "db")},
			Pods: []corev1.Pod{
				pod("shop", "web-7c8d-bbbbb", ownedBy("apps/v1", "ReplicaSet", "web-7c8d")),
				pod("a", "db-0", ownedBy("apps/v1", "StatefulSet", "db")),
				pod("a", "coredns-1-aaaaa", ownedBy("apps/v1", "ReplicaSet", "coredns-1")),
				pod("kube-system", "coredns-5d78c9869d-aaaaa", ownedBy("apps/v1", "ReplicaSet", "coredns-5d78c9869d")),
				pod("kube-system", "coredns-5d78c9869d-bbbbb", ownedBy("apps/v1", "ReplicaSet", "coredns-5d78c9869d")),
				pod("kube-system", "node-exporter-aaaaa", ownedBy("apps/v1", "DaemonSet", "node-exporter")),
				pod("monitoring", "kube-proxy-aaaaa", ownedBy("apps/v1", "DaemonSet", "kube-proxy")),
				pod("kube-flannel", "kube-flannel-ds-aaaaa", ownedBy("apps/v1", "DaemonSet", "kube-flannel-ds")),
				pod("calico-system", "calico-node-aaaaa", ownedBy("apps/v1", "DaemonSet", "calico-node")),
				pod("kube-system", "kube-proxy-aaaaa", ownedBy("apps/v1", "DaemonSet", "kube-proxy")),
			},
		},
		want: Plan{Restart: []Workload{
			wl("DaemonSet", "calico-system", "calico-node", 1),
			wl("DaemonSet", "kube-flannel", "kube-flannel-ds", 1),
			wl("DaemonSet", "kube-system", "kube-proxy", 1),
			wl("Deployment", "kube-system", "coredns", 2),
			wl("Deployment", "a", "coredns", 1),
			wl("StatefulSet", "a", "db", 1),
			wl("DaemonSet", "kube-system", "node-exporter", 1),
			wl("DaemonSet", "monitoring", "kube-proxy", 1),
			wl("Deployment", "shop", "web", 1),
		}},
	}, {
		name: "template already carries the value",
		facts: Facts{
			DaemonSets: []appsv1.DaemonSet{
				daemonSet("kube-system", "kube-proxy", dsLabel("k8s-app", "kube-proxy"), dsTemplate(templateAnnotated(annotation))),
				daemonSet("kube-system", "node-exporter", dsTemplate(templateAnnotated("rot-0/trust"))),
			},
			Deployments: []appsv1.Deployment{deployment("shop", "web", deployTemplate(templateAnnotated(annotation)))},
			Pods: []corev1.Pod{
				pod("kube-system", "kube-proxy-aaaaa", ownedBy("apps/v1", "DaemonSet", "kube-proxy")),
				pod("kube-system", "node-exporter-aaaaa", ownedBy("apps/v1", "DaemonSet", "node-exporter")),
			},
		},
		want: Plan{
			Restart:     []Workload{wl("DaemonSet", "kube-system", "node-exporter", 1)},
			AlreadyDone: []Workload{wl("DaemonSet", "kube-system", "kube-proxy", 1), wl("Deployment", "shop", "web", 0)},
		},
	}, {
		name: "templates a restart would not roll out",
		facts: Facts{
			DaemonSets: []appsv1.DaemonSet{daemonSet("kube-system", "weave-net", func(ds *appsv1.DaemonSet) {
				ds.Spec.UpdateStrategy.Type = appsv1.OnDeleteDaemonSetStrategyType
			})},
			Deployments: []appsv1.Deployment{deployment("shop", "web", func(d *appsv1.Deployment) { d.Spec.Paused = true })},
			ReplicaSets: []appsv1.ReplicaSet{webRSNew},
			StatefulSets: []appsv1.StatefulSet{
				statefulSet("shop", "db", func(s *appsv1.StatefulSet) {
					s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
				}),
				statefulSet("shop", "kafka", func(s *appsv1.StatefulSet) {
					s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: int32p(2)}
				}),
			},
			Pods: []corev1.Pod{
				pod("kube-system", "weave-net-aaaaa", ownedBy("apps/v1", "DaemonSet", "weave-net")),
				pod("shop", "web-7c8d-bbbbb", ownedBy("apps/v1", "ReplicaSet", "web-7c8d")),
				pod("shop", "db-0", ownedBy("apps/v1", "StatefulSet", "db")),
				pod("shop", "kafka-0", ownedBy("apps/v1", "StatefulSet", "kafka")),
			},
		},
		want: Plan{Skip: []Workload{
			wl("DaemonSet", "kube-system", "weave-net", 1),
			wl("Deployment", "shop", "web", 1),
			wl("StatefulSet", "shop", "db", 1),
			wl("StatefulSet", "shop", "kafka", 1),
		}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.facts, Options{Annotation: annotation, Since: sinceAll})
			if diff := cmp.Diff(tt.want, got, ignoreReason, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideReasons(t *testing.T) {
	facts := Facts{
		DaemonSets: []appsv1.DaemonSet{
			daemonSet("kube-system", "kube-proxy", dsLabel("k8s-app", "kube-proxy")),
			daemonSet("kube-system", "cilium", dsTemplate(templateAnnotated("rot-1/trust"))),
			daemonSet("kube-system", "weave-net", func(ds *appsv1.DaemonSet) {
				ds.Spec.UpdateStrategy.Type = appsv1.OnDeleteDaemonSetStrategyType
			}),
		},
		ReplicaSets: []appsv1.ReplicaSet{replicaSet("shop", "legacy")},
		Pods: []corev1.Pod{
			pod("kube-system", "kube-proxy-aaaaa", ownedBy("apps/v1", "DaemonSet", "kube-proxy")),
			pod("kube-system", "kube-proxy-bbbbb", ownedBy("apps/v1", "DaemonSet", "kube-proxy")),
			pod("kube-system", "weave-net-aaaaa", ownedBy("apps/v1", "DaemonSet", "weave-net")),
			pod("batch", "nightly-aaaaa", ownedBy("batch/v1", "Job", "nightly")),
			pod("shop", "legacy-aaaaa", ownedBy("apps/v1", "ReplicaSet", "legacy")),
			pod("shop", "debug"),
		},
	}
	plan := Decide(facts, testOptions())
	reasons := map[string]string{}
	for _, ws := range [][]Workload{plan.Restart, plan.AlreadyDone, plan.Evict, plan.Skip} {
		for _, w := range ws {
			reasons[w.String()] = w.Reason
		}
	}
	want := map[string]string{
		"DaemonSet kube-system/kube-proxy": "2 pods use in-cluster config and started before kube-root-ca.crt changed at 2026-03-14T12:00:00Z",
		"DaemonSet kube-system/cilium":     "already restarted: its pod template carries carotate.io/restarted-at=rot-1/trust",
		"DaemonSet kube-system/weave-net": "not restarted: update strategy OnDelete, so a template change restarts nothing; " +
			"delete its stale pods one at a time, waiting for each replacement to be ready",
		"Job batch/nightly": "not restarted: carotate restarts Deployments, DaemonSets and StatefulSets only; " +
			"its stale pods keep the old trust bundle until they are recreated, so delete them when they can be interrupted",
		"ReplicaSet shop/legacy": "not restarted: no Deployment owns this ReplicaSet, so there is no rollout to start; " +
			"delete its stale pods one at a time when they can be interrupted",
		"Pod shop/debug": "bare pod uses in-cluster config and started 2026-03-14T11:00:00Z, before kube-root-ca.crt changed at " +
			"2026-03-14T12:00:00Z; it is evicted through the Eviction API, which respects PodDisruptionBudgets, and nothing recreates it",
	}
	if diff := cmp.Diff(want, reasons); diff != "" {
		t.Errorf("reasons (-want +got):\n%s", diff)
	}
}

func TestWorkloadString(t *testing.T) {
	got := Workload{Kind: "DaemonSet", Namespace: "kube-system", Name: "kube-proxy", Pods: 3}.String()
	if want := "DaemonSet kube-system/kube-proxy"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestUsesInClusterConfig(t *testing.T) {
	otherConfigMap := func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}}}}
	}
	projectedTokenOnly := func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}}}
	}
	tests := []struct {
		name string
		pod  corev1.Pod
		want bool
	}{
		{"service-account projected volume", pod("a", "p"), true},
		{"kube-root-ca.crt ConfigMap volume", pod("a", "p", rootCAConfigMapVolume), true},
		{"emptyDir only", pod("a", "p", noServiceAccountVolume), false},
		{"another ConfigMap", pod("a", "p", otherConfigMap), false},
		{"projected token without the CA", pod("a", "p", projectedTokenOnly), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UsesInClusterConfig(&tt.pod); got != tt.want {
				t.Errorf("UsesInClusterConfig = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		apiVersion, kind, want string
	}{
		{"apps/v1", "DaemonSet", "DaemonSet"},
		{"batch/v1", "Job", "Job"},
		{"v1", "ReplicationController", "ReplicationController"},
		{"apps.kruise.io/v1beta1", "StatefulSet", "StatefulSet.apps.kruise.io"},
		{"a/b/c", "Thing", "Thing (a/b/c)"},
		{"", "Node", "Node"},
	}
	for _, tt := range tests {
		ref := controllerRef(tt.apiVersion, tt.kind, "x")
		if got := kindOf(&ref); got != tt.want {
			t.Errorf("kindOf(%s %s) = %q, want %q", tt.apiVersion, tt.kind, got, tt.want)
		}
	}
}

// TestDecideStartedAfter is the rollback from a partly run finalize: only
// pods that started after finalize began may hold a new-only bundle.
func TestDecideStartedAfter(t *testing.T) {
	kubeProxy := daemonSet("kube-system", "kube-proxy", dsLabel("k8s-app", "kube-proxy"))
	web := deployment("shop", "web")
	webRS := replicaSet("shop", "web-6b7f", controllerRef("apps/v1", "Deployment", "web"))
	finalizeBegan := bundleAt.Add(-time.Minute)
	facts := Facts{
		DaemonSets:  []appsv1.DaemonSet{kubeProxy},
		Deployments: []appsv1.Deployment{web},
		ReplicaSets: []appsv1.ReplicaSet{webRS},
		Pods: []corev1.Pod{
			pod("kube-system", "kube-proxy-old", ownedBy("apps/v1", "DaemonSet", "kube-proxy"), started(finalizeBegan.Add(-time.Hour))),
			pod("shop", "web-6b7f-new", ownedBy("apps/v1", "ReplicaSet", "web-6b7f"), started(finalizeBegan.Add(10*time.Second))),
		},
	}
	got := Decide(facts, Options{Annotation: "rot-1/rollback", Since: sinceAll, StartedAfter: finalizeBegan})
	want := Plan{Restart: []Workload{wl("Deployment", "shop", "web", 1)}}
	if diff := cmp.Diff(want, got, ignoreReason, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
}

// TestDecidePods: with Pods set, exactly the named running pods count,
// whenever they started: finalize restarts the pods holding tokens of the
// old service-account key, and no others.
func TestDecidePods(t *testing.T) {
	web := deployment("shop", "web")
	webRS := replicaSet("shop", "web-6b7f", controllerRef("apps/v1", "Deployment", "web"))
	kubeProxy := daemonSet("kube-system", "kube-proxy", dsLabel("k8s-app", "kube-proxy"))
	facts := Facts{
		DaemonSets:  []appsv1.DaemonSet{kubeProxy},
		Deployments: []appsv1.Deployment{web},
		ReplicaSets: []appsv1.ReplicaSet{webRS},
		Pods: []corev1.Pod{
			pod("shop", "web-6b7f-a", ownedBy("apps/v1", "ReplicaSet", "web-6b7f"), started(bundleAt.Add(time.Hour))),
			pod("kube-system", "kube-proxy-b", ownedBy("apps/v1", "DaemonSet", "kube-proxy")),
			pod("shop", "bare", phase(corev1.PodSucceeded)),
		},
	}
	got := Decide(facts, Options{Annotation: "rot-1/old-tokens", Reason: "token signed by the old service-account key",
		Pods: map[types.UID]bool{"shop-web-6b7f-a": true, "shop-bare": true}})
	want := Plan{Restart: []Workload{wl("Deployment", "shop", "web", 1)}}
	if diff := cmp.Diff(want, got, ignoreReason, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
	if len(got.Restart) == 1 && !strings.Contains(got.Restart[0].Reason, "old service-account key") {
		t.Errorf("reason %q does not say why", got.Restart[0].Reason)
	}
}
