package workload

import (
	"context"
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// rolloutWatch watches the Deployments, DaemonSets and StatefulSets whose
// rollouts Apply waits for: one informer per kind for the whole cluster,
// so that waiting for many rollouts side by side costs three watches, not
// one poll per workload per second.
type rolloutWatch struct {
	informers map[string]cache.SharedIndexInformer

	mu      sync.Mutex
	changed chan struct{} // closed, and replaced, at every event
	lastErr error
}

// kindsOf lists the kinds of the workloads in lists.
func kindsOf(lists ...[]Workload) map[string]bool {
	kinds := map[string]bool{}
	for _, ws := range lists {
		for _, w := range ws {
			kinds[w.Kind] = true
		}
	}
	return kinds
}

// watchRollouts starts an informer for each of kinds that carotate can
// judge the rollout of. stop ends them and returns once they are gone.
func watchRollouts(ctx context.Context, cs kubernetes.Interface, kinds map[string]bool) (w *rolloutWatch, stop func()) {
	w = &rolloutWatch{informers: map[string]cache.SharedIndexInformer{}, changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	stop = func() {
		cancel()
		running.Wait()
	}
	all, none := metav1.NamespaceAll, cache.Indexers{}
	for kind := range kinds {
		var inf cache.SharedIndexInformer
		switch kind {
		case kindDeployment:
			inf = appsinformers.NewDeploymentInformer(cs, all, 0, none)
		case kindDaemonSet:
			inf = appsinformers.NewDaemonSetInformer(cs, all, 0, none)
		case kindStatefulSet:
			inf = appsinformers.NewStatefulSetInformer(cs, all, 0, none)
		default:
			continue
		}
		// Neither can fail on an informer not yet started.
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { w.notify() },
			UpdateFunc: func(any, any) { w.notify() },
			DeleteFunc: func(any) { w.notify() },
		})
		_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
			w.mu.Lock()
			w.lastErr = err
			w.mu.Unlock()
		})
		w.informers[kind] = inf
		running.Go(func() { inf.RunWithContext(ctx) })
	}
	return w, stop
}

func (w *rolloutWatch) notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.changed)
	w.changed = make(chan struct{})
}

// next is closed at the next event: take it before reading the store, so
// that no event between the read and the wait is missed.
func (w *rolloutWatch) next() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

func (w *rolloutWatch) lastError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr
}

func (w *rolloutWatch) informer(kind string) (cache.SharedIndexInformer, error) {
	if w == nil || w.informers[kind] == nil {
		return nil, fmt.Errorf("carotate cannot judge the rollout of a %s", kind)
	}
	return w.informers[kind], nil
}
