package probe

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// ServiceAccountNamespaceFile is where the kubelet puts the pod's
// namespace next to its token.
const ServiceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// ErrNoNamespace means neither source named the pod's namespace.
var ErrNoNamespace = errors.New("pod namespace unknown")

// Namespace returns the pod's namespace: fromEnv (the downward API's
// POD_NAMESPACE) when set, else the content of saFile. The environment
// wins because a manifest states it explicitly.
func Namespace(fromEnv, saFile string) (string, error) {
	if ns := strings.TrimSpace(fromEnv); ns != "" {
		return ns, nil
	}
	data, err := os.ReadFile(saFile)
	if err != nil {
		return "", fmt.Errorf("set POD_NAMESPACE or mount a service account token: %w: %w", ErrNoNamespace, err)
	}
	ns := strings.TrimSpace(string(data))
	if ns == "" {
		return "", fmt.Errorf("%s is empty: %w", saFile, ErrNoNamespace)
	}
	return ns, nil
}
