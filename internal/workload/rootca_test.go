package workload

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const (
	oldBundle = "-----BEGIN CERTIFICATE-----\nold\n-----END CERTIFICATE-----\n"
	newBundle = "-----BEGIN CERTIFICATE-----\nold\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nnew\n-----END CERTIFICATE-----\n"
)

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
}

func terminating(name string) *corev1.Namespace {
	ns := namespace(name)
	ns.Status.Phase = corev1.NamespaceTerminating
	return ns
}

func rootCA(ns, bundle string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kube-root-ca.crt"},
		Data: map[string]string{"ca.crt": bundle}}
}

func TestRootCAStatus(t *testing.T) {
	tests := []struct {
		name          string
		namespaces    []*corev1.Namespace
		configMaps    []*corev1.ConfigMap
		want          RootCAStatus
		wantDiffering []string
	}{{
		name:       "all published",
		namespaces: []*corev1.Namespace{namespace("default"), namespace("kube-system")},
		configMaps: []*corev1.ConfigMap{rootCA("default", newBundle), rootCA("kube-system", newBundle)},
		want:       RootCAStatus{Namespaces: 2, Matching: 2},
	}, {
		name:          "old, missing and empty",
		namespaces:    []*corev1.Namespace{namespace("b"), namespace("a"), namespace("c"), namespace("d")},
		configMaps:    []*corev1.ConfigMap{rootCA("a", oldBundle), rootCA("b", newBundle), {ObjectMeta: metav1.ObjectMeta{Namespace: "d", Name: "kube-root-ca.crt"}}},
		want:          RootCAStatus{Namespaces: 4, Matching: 1},
		wantDiffering: []string{"a", "c", "d"},
	}, {
		name:          "bytes, not certificates: a missing trailing newline differs",
		namespaces:    []*corev1.Namespace{namespace("a")},
		configMaps:    []*corev1.ConfigMap{rootCA("a", strings.TrimSuffix(newBundle, "\n"))},
		want:          RootCAStatus{Namespaces: 1},
		wantDiffering: []string{"a"},
	}, {
		name:       "terminating namespaces do not count",
		namespaces: []*corev1.Namespace{namespace("a"), terminating("going")},
		configMaps: []*corev1.ConfigMap{rootCA("a", newBundle), rootCA("going", oldBundle)},
		want:       RootCAStatus{Namespaces: 1, Matching: 1},
	}, {
		name:          "another ConfigMap does not stand in",
		namespaces:    []*corev1.Namespace{namespace("a")},
		configMaps:    []*corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "other"}, Data: map[string]string{"ca.crt": newBundle}}},
		want:          RootCAStatus{Namespaces: 1},
		wantDiffering: []string{"a"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, differing := rootCAStatus(tt.namespaces, tt.configMaps, []byte(newBundle))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantDiffering, differing); diff != "" {
				t.Errorf("differing (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSomeOf(t *testing.T) {
	tests := []struct {
		names []string
		want  string
	}{
		{[]string{"a"}, "a"},
		{[]string{"a", "b", "c", "d", "e"}, "a, b, c, d, e"},
		{[]string{"a", "b", "c", "d", "e", "f", "g"}, "a, b, c, d, e and 2 more"},
	}
	for _, tt := range tests {
		if got := someOf(tt.names); got != tt.want {
			t.Errorf("someOf(%q) = %q, want %q", tt.names, got, tt.want)
		}
	}
}

// TestWaitRootCA acts between the waiter's observations, so that each step
// is seen before the next: a namespace created during the wait must count,
// and the wait returns once its ConfigMap is published too.
func TestWaitRootCA(t *testing.T) {
	cs := fake.NewClientset(
		namespace("a"), namespace("b"), namespace("c"), terminating("going"),
		rootCA("a", oldBundle), rootCA("b", oldBundle), rootCA("c", oldBundle), rootCA("going", oldBundle),
	)
	ctx := context.Background()
	step := 0
	var seen []RootCAStatus
	observe := func(s RootCAStatus) {
		seen = append(seen, s)
		var err error
		switch {
		case step == 0:
			_, err = cs.CoreV1().Namespaces().Create(ctx, namespace("late"), metav1.CreateOptions{})
			step++
		case step == 1 && s.Namespaces == 4:
			for _, ns := range []string{"a", "b", "c"} {
				if _, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, rootCA(ns, newBundle), metav1.UpdateOptions{}); err != nil {
					break
				}
			}
			step++
		case step == 2 && s.Matching == 3:
			_, err = cs.CoreV1().ConfigMaps("late").Create(ctx, rootCA("late", newBundle), metav1.CreateOptions{})
			step++
		}
		if err != nil {
			t.Error(err)
		}
	}

	got, err := waitRootCA(ctx, cs, []byte(newBundle), 5*time.Second, observe)
	if err != nil {
		t.Fatalf("waitRootCA: %v (seen %v)", err, seen)
	}
	if diff := cmp.Diff(RootCAStatus{Namespaces: 4, Matching: 4}, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if want := (RootCAStatus{Namespaces: 3}); seen[0] != want {
		t.Errorf("first observation = %+v, want %+v", seen[0], want)
	}
}

func TestWaitRootCAAlreadyPublished(t *testing.T) {
	cs := fake.NewClientset(namespace("a"), rootCA("a", newBundle))
	got, err := WaitRootCA(context.Background(), cs, []byte(newBundle), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(RootCAStatus{Namespaces: 1, Matching: 1}, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

func TestWaitRootCATimeout(t *testing.T) {
	var objs []runtime.Object
	for _, ns := range []string{"g", "f", "e", "d", "c", "b", "a", "ok"} {
		objs = append(objs, namespace(ns))
		bundle := oldBundle
		if ns == "ok" {
			bundle = newBundle
		}
		objs = append(objs, rootCA(ns, bundle))
	}
	cs := fake.NewClientset(objs...)

	got, err := WaitRootCA(context.Background(), cs, []byte(newBundle), 100*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a context.DeadlineExceeded", err)
	}
	for _, want := range []string{
		"still differs from the new bundle in 7 of 8 namespaces",
		"(a, b, c, d, e and 2 more)",
		"--root-ca-file",
		"kube-controller-manager",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if diff := cmp.Diff(RootCAStatus{Namespaces: 8, Matching: 1}, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

func TestWaitRootCAEmptyBundle(t *testing.T) {
	if _, err := WaitRootCA(context.Background(), fake.NewClientset(), nil, time.Second); err == nil {
		t.Error("an empty bundle was accepted")
	}
}

func TestRootCAStatusNow(t *testing.T) {
	cs := fake.NewClientset(
		namespace("a"), namespace("b"), namespace("c"), terminating("going"),
		rootCA("a", newBundle), rootCA("b", oldBundle), rootCA("going", oldBundle),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "c", Name: "other"}, Data: map[string]string{"ca.crt": newBundle}},
	)
	status, differing, err := RootCAStatusNow(context.Background(), cs, []byte(newBundle))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(RootCAStatus{Namespaces: 3, Matching: 1}, status); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"b", "c"}, differing); diff != "" {
		t.Errorf("differing (-want +got):\n%s", diff)
	}
}

func TestRootCAUpdateTimes(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	published := rootCA("a", newBundle)
	published.CreationTimestamp = metav1.NewTime(created)
	published.ManagedFields = []metav1.ManagedFieldsEntry{
		{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, Time: ptrTime(bundleAt)},
		{Manager: "kubectl-edit", Operation: metav1.ManagedFieldsOperationUpdate, Time: ptrTime(beforeBundle)},
		{Manager: "no-time", Operation: metav1.ManagedFieldsOperationUpdate},
	}
	bare := rootCA("b", oldBundle)
	bare.CreationTimestamp = metav1.NewTime(created)
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "c", Name: "other", CreationTimestamp: metav1.NewTime(created)}}

	cs := fake.NewClientset(published, bare, other)
	got, err := RootCAUpdateTimes(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"a": bundleAt, "b": created}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RootCAUpdateTimes (-want +got):\n%s", diff)
	}
}

func TestWaitRootCACannotList(t *testing.T) {
	cs := fake.NewClientset(namespace("a"), rootCA("a", newBundle))
	cs.PrependReactor("list", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "", errors.New("no RBAC"))
	})
	_, err := WaitRootCA(context.Background(), cs, []byte(newBundle), 100*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a context.DeadlineExceeded", err)
	}
	for _, want := range []string{"could not list namespaces", "forbidden", "may list and watch them"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
