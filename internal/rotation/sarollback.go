package rotation

import (
	"context"
	"fmt"
	"strings"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/manifest"
	"github.com/carotate/carotate/internal/satoken"
)

// A rollback of the service-account key must not strand the tokens the new
// key signed. With one control plane the apiserver signs with the new key
// from trust, and the pods it restarts, or whose kubelets restart, get
// tokens only the new key verifies. Undoing trust in step order would
// drop the new key from sa.pub last of all, after the kubelets had asked
// for their tokens again from an apiserver still signing with it: every
// one of those pods would get 401 until its kubelet refreshed the token,
// up to 48 minutes later.
//
// So a rollback goes through the layout the rotation went through, in
// reverse: first every apiserver signs with the old key while sa.pub still
// holds both (signedWithOldKeyStep, undone first); the kubelets and
// workloads restarted by the rest of the undo then get tokens the old key
// signed; and before any apiserver stops verifying the new key, no pod may
// use a token it signed (newTokensGoneStep). Both steps do nothing in
// rotate: their names say so in the plan.

// rollbackSigning is the restart annotation's value, after the rotation's
// id, of an apiserver that a rollback restarted to sign with the old key.
const rollbackSigning = "rollback-signing"

func (r *Rotation) signedWithOldKeyStep() engine.Step[*Rotation] {
	return rollbackOnly("kube-apiserver signs with the old service-account key again", "kube-apiserver on every control plane",
		"only rollback restarts it here", func(ctx context.Context, r *Rotation) (engine.Change, error) {
			var ch engine.Change
			var did []string
			for _, n := range r.controlPlanes() {
				restarted, err := r.signWithOldKey(ctx, n, &ch)
				if err != nil {
					return ch, err
				}
				if restarted != "" {
					did = append(did, n.Name+": "+restarted)
				}
			}
			if len(did) == 0 {
				return ch, nil
			}
			ch.Changed, ch.Detail = true, strings.Join(did, "; ")
			return ch, nil
		})
}

// rollbackOnly is a step that does nothing in rotate and finalize (its
// check says why, in the plan) and undo in a rollback.
func rollbackOnly(name, object, why string, undo func(context.Context, *Rotation) (engine.Change, error)) engine.Step[*Rotation] {
	return engine.Step[*Rotation]{
		Name:   name,
		Target: engine.Target{Object: object},
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			return true, why, nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) { return engine.Change{}, nil },
		Undo:  undo,
	}
}

// apiserverKeyAt is the key an apiserver signs with, from the restart
// annotation its mirror pod carries: the stage of this rotation it started
// at, or this step's own value. Any other value (none, or another
// rotation's) means it started before this rotation changed sa.key.
func (r *Rotation) apiserverSignsWithNew(restart string) bool {
	for _, s := range []Stage{Trusted, Switched} {
		if restart == r.M.RotationID+"/"+s.String() {
			return r.M.saKeyUsed(s).Equal(r.M.NewSA)
		}
	}
	return false
}

// signWithOldKey makes n's apiserver sign with the old key while sa.pub
// keeps both: sa.key as it was before the rotation, then a restart
// through the manifest with its own annotation. It returns what it
// restarted, "" when the apiserver already signs with the old key.
func (r *Rotation) signWithOldKey(ctx context.Context, n *Node, ch *engine.Change) (string, error) {
	st, err := r.staticPod(ctx, manifest.KubeAPIServer, n.Name)
	if err != nil {
		return "", err
	}
	want, err := r.M.At(n, apiserverManifest, Trusted)
	if err != nil {
		return "", err
	}
	data, _, err := manifest.SetAnnotation(n.Name+":"+apiserverManifest, want.Data, RestartAnnotation, r.M.RotationID+"/"+rollbackSigning)
	if err != nil {
		return "", err
	}
	want.Data = data
	if st.Exists && !r.apiserverSignsWithNew(st.Restart) && st.Restart != r.M.RotationID+"/"+rollbackSigning {
		return "", nil
	}
	if st.Restart == r.M.RotationID+"/"+rollbackSigning && st.Ready {
		return "", nil
	}
	orig, ok := r.M.original(n.Name, saKey)
	if !ok {
		return "", fmt.Errorf("node %s: %s: %w; it existed when carotate checked the node, so check that the backup is complete", n.Name, saKey, errNoOriginal)
	}
	if r.takesAPIAway(manifest.KubeAPIServer) {
		if cur, err := Current(ctx, n.Exec, apiserverManifest); err != nil {
			return "", err
		} else if !cur.equal(want) {
			end, err := r.lock.Outage(ctx, manifest.KubeAPIServer+" on "+n.Name)
			if err != nil {
				return "", err
			}
			defer end()
		}
	}
	start := r.now()
	keyWant := Want{Data: orig.Content, Mode: SecretMode, Secret: true}
	if fc, changed, err := ensure(ctx, n.Exec, saKey, keyWant); err != nil {
		return "", err
	} else if changed {
		ch.Files = append(ch.Files, fc)
	}
	fc, changed, err := ensure(ctx, n.Exec, apiserverManifest, want)
	if err != nil {
		return "", err
	}
	hash := ""
	if changed {
		ch.Files, hash = append(ch.Files, fc), st.Hash
	}
	if err := r.waitStaticPod(ctx, manifest.KubeAPIServer, n.Name, hash, want.Data); err != nil {
		return "", err
	}
	if err := r.waitAPIServerServing(ctx, n, Trusted); err != nil {
		return "", err
	}
	return fmt.Sprintf("kube-apiserver restarted (%s)", r.since(start)), nil
}

// newTokensGoneStep stands between the apiservers' trust and the rest of
// trust, so that in a rollback it runs after every kubelet and workload
// restarted and before any apiserver stops verifying the new key. Pods
// that still use a token the new key signed are restarted through their
// workloads (PodDisruptionBudgets respected): a rollback must end with
// every pod's token verified, and it cannot wait up to 48 minutes for
// the kubelets.
func (r *Rotation) newTokensGoneStep() engine.Step[*Rotation] {
	return rollbackOnly("no pod uses a token signed by the new service-account key", "projected service-account tokens on every node",
		"only rollback checks here", func(ctx context.Context, r *Rotation) (engine.Change, error) {
			users, err := r.newTokenUsers(ctx)
			if err != nil || len(users) == 0 {
				return engine.Change{}, err
			}
			res, err := r.restartTokenPods(ctx, users, "new")
			if err != nil {
				return engine.Change{}, err
			}
			if left, err := r.newTokenUsers(ctx); err != nil {
				return engine.Change{}, err
			} else if len(left) > 0 {
				names := make([]string, len(left))
				for i, u := range left {
					names[i] = fmt.Sprintf("  %s/%s (node %s)", u.Namespace, u.Pod, u.Node)
				}
				return engine.Change{Changed: true}, fmt.Errorf("these pods still use tokens signed by the new service-account key after their restart, and the rollback would leave them unverified:\n%s\nlook at whether every apiserver signs with the old key (its mirror pod's %s annotation), then run rollback again", strings.Join(names, "\n"), RestartAnnotation)
			}
			return engine.Change{Changed: true, Detail: fmt.Sprintf("%d restarted, %d evicted for tokens signed by the new key", res.Restarted, res.Evicted)}, nil
		})
}

// newTokenUsers are the pods whose projected tokens the new key signed.
func (r *Rotation) newTokenUsers(ctx context.Context) ([]satoken.PodUse, error) {
	return r.tokenUsers(ctx, r.M.NewSA.Public(), r.M.OldSA.Public())
}
