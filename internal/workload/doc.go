// Package workload brings running pods onto a new cluster CA bundle, through
// the Kubernetes API.
//
// A pod that automounts a service-account token also gets the
// kube-root-ca.crt ConfigMap of its namespace, which kube-controller-manager
// publishes from its --root-ca-file. client-go's in-cluster config reads it
// once, when the process starts, so after the bundle changes such a pod keeps
// trusting the old one until it restarts. The trust phase of a rotation
// therefore:
//
//  1. restarts kube-controller-manager with the new --root-ca-file (not
//     here), then WaitRootCA waits until every Active namespace's
//     kube-root-ca.crt holds exactly the new bundle;
//  2. RootCAUpdateTimes says when each namespace got it, which is what
//     Options.Since is built from;
//  3. Restart restarts every Deployment, DaemonSet and StatefulSet that has
//     a pod which uses in-cluster config and started before then — kube-proxy
//     and the CNI plugin first, CoreDNS next, then the rest, each rollout
//     waited for — and evicts such bare pods, respecting
//     PodDisruptionBudgets. Pods owned by anything else (Jobs, ReplicaSets
//     without a Deployment, ReplicationControllers, custom controllers) are
//     reported, not touched; mirror pods are never touched.
//
// Gather reads the cluster, Decide is the pure decision over what was read,
// Apply acts on the resulting Plan. A restart is marked by the
// carotate.io/restarted-at pod-template annotation whose value is the
// caller's id for this rotation, so running Restart again patches nothing it
// already patched.
package workload
