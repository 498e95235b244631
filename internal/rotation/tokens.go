package rotation

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/satoken"
	"github.com/carotate/carotate/internal/workload"
)

// Legacy token Secrets (type kubernetes.io/service-account-token) hold a
// token that kube-controller-manager's tokens controller signed with its
// --service-account-private-key-file. In v1.37 the controller mints a token
// only when the Secret has none (tokens_controller.go, secretUpdateNeeded):
// it never re-signs one. So carotate re-mints a token by removing it from
// the Secret, with the Secret's resourceVersion as a precondition, and
// waits until the controller has written a new one.
//
// The step converges on the key the control planes' sa.key holds now,
// which kube-controller-manager runs with once its step restarted it. It
// stands where that key has just changed in either direction: after the
// control planes' switch (apply), and at the start of trust and of switch
// (whose undos come after the control planes went back to the old key).

// ErrOldTokensInUse means finalize found pods whose projected tokens the
// old service-account key signed.
var ErrOldTokensInUse = errors.New("tokens signed by the old service-account key are in use")

const legacyTokenType = corev1.SecretTypeServiceAccountToken

func (r *Rotation) legacyTokensStep(name string) engine.Step[*Rotation] {
	return engine.Step[*Rotation]{
		Name:   name,
		Target: engine.Target{Object: "Secrets of type " + string(legacyTokenType)},
		Check: func(ctx context.Context, r *Rotation) (bool, string, error) {
			stale, kid, err := r.staleLegacyTokens(ctx)
			if err != nil {
				return false, "", err
			}
			if len(stale) > 0 {
				return false, fmt.Sprintf("%d legacy token(s) not signed by the key in use (kid %s)", len(stale), kid), nil
			}
			return true, "every legacy token is signed by the key in use", nil
		},
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) { return r.remintLegacyTokens(ctx) },
		Undo:  func(ctx context.Context, r *Rotation) (engine.Change, error) { return r.remintLegacyTokens(ctx) },
		Describe: func(ctx context.Context, r *Rotation) (engine.Plan, error) {
			stale, _, err := r.staleLegacyTokens(ctx)
			if err != nil {
				return engine.Plan{}, err
			}
			pl := engine.Plan{Summary: fmt.Sprintf("re-mint %d legacy token Secret(s) with the key kube-controller-manager signs with", len(stale))}
			for _, s := range stale {
				pl.Diffs = append(pl.Diffs, engine.ObjectDiff("Secret "+s, "data.token", "signed by another key", "re-minted by kube-controller-manager"))
			}
			return pl, nil
		},
	}
}

// signingKeyNow is the service-account key the control planes' sa.key
// holds; they must agree.
func (r *Rotation) signingKeyNow(ctx context.Context) (pki.PrivateKey, error) {
	var key pki.PrivateKey
	for _, n := range r.controlPlanes() {
		b, err := n.Exec.ReadFile(ctx, saKey)
		if err != nil {
			return pki.PrivateKey{}, fmt.Errorf("node %s: read %s: %w", n.Name, saKey, err)
		}
		k, err := pki.ParsePrivateKeyPEM(n.Name+":"+saKey, b)
		if err != nil {
			return pki.PrivateKey{}, err
		}
		if !key.IsZero() && !key.Equal(k) {
			return pki.PrivateKey{}, fmt.Errorf("node %s: %s is not the key on the other control planes; run the same command again to finish the step that changes it", n.Name, saKey)
		}
		key = k
	}
	return key, nil
}

// staleLegacyTokens are the legacy token Secrets ("ns/name") whose token
// another key than the one in use signed, and that key's kid.
func (r *Rotation) staleLegacyTokens(ctx context.Context) ([]string, string, error) {
	key, err := r.signingKeyNow(ctx)
	if err != nil {
		return nil, "", err
	}
	kid, err := satoken.KeyID(key.Public())
	if err != nil {
		return nil, "", err
	}
	secrets, err := r.Client.CoreV1().Secrets("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("type", string(legacyTokenType)).String()})
	if err != nil {
		return nil, "", fmt.Errorf("list the legacy token Secrets: %w", err)
	}
	var out []string
	for _, s := range secrets.Items {
		tok := s.Data[corev1.ServiceAccountTokenKey]
		if len(tok) == 0 {
			continue // the controller has yet to mint it, with the key in use
		}
		if got, err := satoken.HeaderKeyID(tok); err != nil || got != kid {
			out = append(out, s.Namespace+"/"+s.Name)
		}
	}
	sort.Strings(out)
	return out, kid, nil
}

// remintLegacyTokens removes each stale token and waits until
// kube-controller-manager has minted every one again with the key in use.
func (r *Rotation) remintLegacyTokens(ctx context.Context) (engine.Change, error) {
	stale, kid, err := r.staleLegacyTokens(ctx)
	if err != nil || len(stale) == 0 {
		return engine.Change{}, err
	}
	for _, name := range stale {
		ns, n, _ := strings.Cut(name, "/")
		s, err := r.Client.CoreV1().Secrets(ns).Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			return engine.Change{}, fmt.Errorf("Secret %s: %w", name, err)
		}
		patch := fmt.Sprintf(`{"metadata":{"resourceVersion":%q},"data":{%q:null}}`, s.ResourceVersion, corev1.ServiceAccountTokenKey)
		if _, err := r.Client.CoreV1().Secrets(ns).Patch(ctx, n, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "carotate"}); err != nil {
			return engine.Change{}, fmt.Errorf("Secret %s: remove its token so that kube-controller-manager mints a new one: %w", name, err)
		}
	}
	var left []string
	err = wait.PollUntilContextTimeout(ctx, time.Second, r.timeouts().RootCA, true, func(ctx context.Context) (bool, error) {
		if left, _, err = r.staleLegacyTokens(ctx); err != nil {
			return false, nil
		}
		return len(left) == 0 && r.legacyTokensMinted(ctx, stale), nil
	})
	if err != nil {
		return engine.Change{}, fmt.Errorf("kube-controller-manager did not mint new tokens (kid %s) for %s within %s; look at its log for the tokens controller: %w", kid, strings.Join(stale, ", "), r.timeouts().RootCA, err)
	}
	return engine.Change{Changed: true, Detail: fmt.Sprintf("%d legacy token(s) re-minted: %s", len(stale), strings.Join(stale, ", "))}, nil
}

// legacyTokensMinted says whether every named Secret holds a token again.
func (r *Rotation) legacyTokensMinted(ctx context.Context, names []string) bool {
	for _, name := range names {
		ns, n, _ := strings.Cut(name, "/")
		s, err := r.Client.CoreV1().Secrets(ns).Get(ctx, n, metav1.GetOptions{})
		if err != nil || len(s.Data[corev1.ServiceAccountTokenKey]) == 0 {
			return false
		}
	}
	return true
}

// oldTokenUsers are the pods whose projected tokens, on any node, the old
// service-account key signed.
func (r *Rotation) oldTokenUsers(ctx context.Context) ([]satoken.PodUse, error) {
	return r.tokenUsers(ctx, r.M.OldSA.Public(), r.M.NewSA.Public())
}

// tokenUsers are the pods whose projected tokens, on any node, signer
// signed rather than other. A key carotate did not write is neither: it
// stays trusted, and its tokens are not counted.
func (r *Rotation) tokenUsers(ctx context.Context, signer, other crypto.PublicKey) ([]satoken.PodUse, error) {
	signerKID, err := satoken.KeyID(signer)
	if err != nil {
		return nil, err
	}
	otherKID, err := satoken.KeyID(other)
	if err != nil {
		return nil, err
	}
	scan := r.scanTokens
	if scan == nil {
		scan = satoken.Scan
	}
	var all []satoken.Token
	for _, n := range r.Nodes {
		toks, err := scan(ctx, n.Exec)
		if err != nil {
			return nil, fmt.Errorf("node %s: read which keys signed its pods' tokens: %w", n.Name, err)
		}
		all = append(all, toks...)
	}
	var out []satoken.PodUse
	for _, u := range satoken.OldKeyUsers(all, signerKID, otherKID) {
		if !u.UnknownKey {
			out = append(out, u)
		}
	}
	return out, nil
}

// oldTokensStep is finalize's gate for the service-account key: no pod may
// still use a token the old key signed, since after finalize no apiserver
// accepts it. Without RestartOldTokenPods it refuses and names them, with
// when the kubelet will have refreshed each; with it, it restarts them
// through their workloads (PodDisruptionBudgets respected), then checks
// again.
func (r *Rotation) oldTokensStep() engine.Step[*Rotation] {
	check := func(ctx context.Context, r *Rotation) (bool, string, error) {
		users, err := r.oldTokenUsers(ctx)
		if err != nil {
			return false, "", err
		}
		if len(users) > 0 {
			return false, fmt.Sprintf("%d pod(s) use tokens signed by the old key", len(users)), nil
		}
		return true, "no pod uses a token signed by the old key", nil
	}
	return engine.Step[*Rotation]{
		Name:   "no pod uses a token signed by the old service-account key",
		Target: engine.Target{Object: "projected service-account tokens on every node"},
		NoUndo: true,
		Check:  check,
		Apply: func(ctx context.Context, r *Rotation) (engine.Change, error) {
			users, err := r.oldTokenUsers(ctx)
			if err != nil || len(users) == 0 {
				return engine.Change{}, err
			}
			if !r.RestartOldTokenPods {
				return engine.Change{}, r.oldTokensError(users)
			}
			return r.restartOldTokenPods(ctx, users)
		},
	}
}

func (r *Rotation) oldTokensError(users []satoken.PodUse) error {
	lines := make([]string, len(users))
	var last time.Time
	for i, u := range users {
		lines[i] = "  " + satoken.Message(u, r.now())
		if u.RefreshBy.After(last) {
			last = u.RefreshBy
		}
	}
	when := "run finalize again once the kubelet has refreshed them"
	if !last.IsZero() {
		when = fmt.Sprintf("run finalize again after %s, when the kubelet will have refreshed them all", last.UTC().Format("15:04:05 UTC"))
	}
	return fmt.Errorf("%w, and no apiserver will accept them after finalize:\n%s\n%s, or give --restart-old-token-pods to restart these pods now", ErrOldTokensInUse, strings.Join(lines, "\n"), when)
}

func (r *Rotation) restartOldTokenPods(ctx context.Context, users []satoken.PodUse) (engine.Change, error) {
	res, err := r.restartTokenPods(ctx, users, "old")
	if err != nil {
		return engine.Change{}, err
	}
	left, err := r.oldTokenUsers(ctx)
	if err != nil {
		return engine.Change{}, err
	}
	if len(left) > 0 {
		return engine.Change{Changed: true}, r.oldTokensError(left)
	}
	return engine.Change{Changed: true, Detail: fmt.Sprintf("%d restarted, %d evicted for tokens signed by the old key", res.Restarted, res.Evicted)}, nil
}

// restartTokenPods restarts the pods of users through their workloads
// (PodDisruptionBudgets respected); which ("old" or "new") names the key
// that signed their tokens, in the restart annotation and the reason.
func (r *Rotation) restartTokenPods(ctx context.Context, users []satoken.PodUse, which string) (workload.Result, error) {
	pods := map[types.UID]bool{}
	for _, u := range users {
		pods[types.UID(u.PodUID)] = true
	}
	return workload.Restart(ctx, r.Client, workload.Options{Annotation: r.M.RotationID + "/" + which + "-tokens", Pods: pods,
		Reason: "token signed by the " + which + " service-account key", RolloutTimeout: r.timeouts().Rollout,
		Concurrency: r.WorkloadConcurrency})
}
