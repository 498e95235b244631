package workload

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// DefaultRootCATimeout bounds WaitRootCA when it is given no timeout.
const DefaultRootCATimeout = 2 * time.Minute

// RootCAStatus counts the Active namespaces and those whose kube-root-ca.crt
// holds the wanted bundle.
type RootCAStatus struct {
	Namespaces int
	Matching   int
}

// rootCAKey is the key kube-controller-manager publishes the bundle under.
const rootCAKey = "ca.crt"

// namesShown is how many differing namespaces an error names.
const namesShown = 5

// WaitRootCA waits until the kube-root-ca.crt ConfigMap of every Active
// namespace holds want as data["ca.crt"], and returns how many namespaces
// it counted. It watches namespaces and those ConfigMaps, so a namespace
// created during the wait counts too and a Terminating one does not.
//
// The comparison is byte for byte: kube-controller-manager's root CA
// publisher copies the bytes of its --root-ca-file into the ConfigMap
// unchanged, so any difference, even a trailing newline, means the
// controller manager that holds the leader lease reads a different file.
//
// On timeout, or when ctx ends, the error names up to five namespaces that
// still differ and wraps the context's error.
func WaitRootCA(ctx context.Context, cs kubernetes.Interface, want []byte, timeout time.Duration) (RootCAStatus, error) {
	return waitRootCA(ctx, cs, want, timeout, nil)
}

// waitRootCA is WaitRootCA with observe, called with each status it
// computes, so that a test can act between observations.
func waitRootCA(ctx context.Context, cs kubernetes.Interface, want []byte, timeout time.Duration, observe func(RootCAStatus)) (RootCAStatus, error) {
	if len(want) == 0 {
		return RootCAStatus{}, errors.New("wait for kube-root-ca.crt: the wanted bundle is empty")
	}
	if timeout <= 0 {
		timeout = DefaultRootCATimeout
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	var running sync.WaitGroup
	defer running.Wait()
	defer cancel()

	changed := make(chan struct{}, 1)
	notify := func(any) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    notify,
		UpdateFunc: func(_, obj any) { notify(obj) },
		DeleteFunc: notify,
	}
	var mu sync.Mutex
	var lastErr error
	onError := func(_ context.Context, _ *cache.Reflector, err error) {
		mu.Lock()
		lastErr = err
		mu.Unlock()
	}
	namespaces := coreinformers.NewNamespaceInformer(cs, 0, cache.Indexers{})
	configMaps := coreinformers.NewFilteredConfigMapInformer(cs, metav1.NamespaceAll, 0, cache.Indexers{},
		func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", rootCAConfigMap).String()
		})
	for _, inf := range []cache.SharedIndexInformer{namespaces, configMaps} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return RootCAStatus{}, fmt.Errorf("wait for kube-root-ca.crt: %w", err)
		}
		if err := inf.SetWatchErrorHandlerWithContext(onError); err != nil {
			return RootCAStatus{}, fmt.Errorf("wait for kube-root-ca.crt: %w", err)
		}
		running.Go(func() { inf.RunWithContext(ctx) })
	}
	for _, synced := range []cache.DoneChecker{namespaces.HasSyncedChecker(), configMaps.HasSyncedChecker()} {
		select {
		case <-synced.Done():
		case <-ctx.Done():
			mu.Lock()
			last := lastErr
			mu.Unlock()
			return RootCAStatus{}, fmt.Errorf("wait for kube-root-ca.crt: could not list namespaces and kube-root-ca.crt ConfigMaps within %s (last error: %v): "+
				"check that the API server answers and carotate may list and watch them: %w", elapsed(start), last, context.Cause(ctx))
		}
	}

	for {
		status, differing := rootCAStatus(listOf[*corev1.Namespace](namespaces.GetStore()),
			listOf[*corev1.ConfigMap](configMaps.GetStore()), want)
		if observe != nil {
			observe(status)
		}
		if len(differing) == 0 {
			return status, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return status, fmt.Errorf("kube-root-ca.crt still differs from the new bundle in %d of %d namespaces after %s (%s): "+
				"kube-controller-manager publishes it from its --root-ca-file; check that the file holds the new bundle on every "+
				"control-plane node and read the logs of the kube-controller-manager that holds the leader lease: %w",
				len(differing), status.Namespaces, elapsed(start), someOf(differing), context.Cause(ctx))
		}
	}
}

// RootCAStatusNow lists namespaces and kube-root-ca.crt ConfigMaps once and
// returns the status and the Active namespaces (sorted) whose ConfigMap is
// missing or differs from want, byte for byte as in WaitRootCA.
func RootCAStatusNow(ctx context.Context, cs kubernetes.Interface, want []byte) (RootCAStatus, []string, error) {
	nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return RootCAStatus{}, nil, fmt.Errorf("list namespaces: %w", err)
	}
	cms, err := listRootCAConfigMaps(ctx, cs)
	if err != nil {
		return RootCAStatus{}, nil, err
	}
	status, differing := rootCAStatus(pointers(nss.Items), pointers(cms), want)
	return status, differing, nil
}

// RootCAUpdateTimes returns, for every namespace that has one, when its
// kube-root-ca.crt ConfigMap last changed: the latest managedFields time,
// which the API server sets whenever a writer changes a field it owns. Only
// kube-controller-manager writes that ConfigMap, so this is when it last
// published the bundle there; should another writer have touched it later,
// the time is later and more pods count as stale, which is the safe side. A
// ConfigMap without managedFields falls back to its creationTimestamp.
//
// A pod that started before this time may hold the previous bundle; Since
// is meant to be built from it.
func RootCAUpdateTimes(ctx context.Context, cs kubernetes.Interface) (map[string]time.Time, error) {
	cms, err := listRootCAConfigMaps(ctx, cs)
	if err != nil {
		return nil, err
	}
	times := make(map[string]time.Time, len(cms))
	for i := range cms {
		times[cms[i].Namespace] = lastWritten(&cms[i])
	}
	return times, nil
}

func lastWritten(cm *corev1.ConfigMap) time.Time {
	latest := cm.CreationTimestamp.Time
	for _, f := range cm.ManagedFields {
		if f.Time != nil && f.Time.After(latest) {
			latest = f.Time.Time
		}
	}
	return latest
}

func listRootCAConfigMaps(ctx context.Context, cs kubernetes.Interface) ([]corev1.ConfigMap, error) {
	list, err := cs.CoreV1().ConfigMaps(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", rootCAConfigMap).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("list kube-root-ca.crt ConfigMaps: %w", err)
	}
	var cms []corev1.ConfigMap
	for _, cm := range list.Items {
		if cm.Name == rootCAConfigMap { // a server that ignores the field selector still answers
			cms = append(cms, cm)
		}
	}
	return cms, nil
}

// rootCAStatus counts the Active namespaces and those whose kube-root-ca.crt
// holds want, and returns the others, sorted.
func rootCAStatus(namespaces []*corev1.Namespace, configMaps []*corev1.ConfigMap, want []byte) (RootCAStatus, []string) {
	published := map[string]string{}
	for _, cm := range configMaps {
		if cm.Name != rootCAConfigMap {
			continue
		}
		if v, ok := cm.Data[rootCAKey]; ok {
			published[cm.Namespace] = v
		}
	}
	var status RootCAStatus
	var differing []string
	for _, ns := range namespaces {
		if ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating {
			continue
		}
		status.Namespaces++
		if v, ok := published[ns.Name]; ok && v == string(want) {
			status.Matching++
			continue
		}
		differing = append(differing, ns.Name)
	}
	sort.Strings(differing)
	return status, differing
}

// someOf names up to namesShown of names.
func someOf(names []string) string {
	if len(names) <= namesShown {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:namesShown], ", ") + fmt.Sprintf(" and %d more", len(names)-namesShown)
}

// listOf is the content of an informer's store, typed.
func listOf[T any](s cache.Store) []T {
	var out []T
	for _, obj := range s.List() {
		if t, ok := obj.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

func pointers[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}
