package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/carotate/carotate/internal/lab/probe"
)

// PodLogFiles lists the log files of container in the pods of namespace
// whose names start with podPrefix, on node: the kubelet's
// /var/log/pods/<ns>_<pod>_<uid>/<container>/<restart>.log, read from the
// host. Newest restart last.
func (l *Lab) PodLogFiles(node, namespace, podPrefix, container string) ([]string, error) {
	dir, err := l.NodePath(node, "/var/log/pods")
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, namespace+"_"+podPrefix+"*", container, "*.log"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	return files, nil
}

// UnitLog is the log file of a unit the node's agent runs (containerd, ssh,
// kubelet), read from the host.
func (l *Lab) UnitLog(node, unit string) (string, error) {
	if unit == "ssh" {
		unit = "sshd"
	}
	return l.NodePath(node, "/var/log/"+unit+".log")
}

// ComponentLog returns the current log of a control-plane static pod
// (kube-apiserver, kube-controller-manager, kube-scheduler, etcd) on node.
func (l *Lab) ComponentLog(node, component string) ([]byte, error) {
	files, err := l.PodLogFiles(node, "kube-system", component+"-"+node, component)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("node %s: no log of %s", node, component)
	}
	return os.ReadFile(files[len(files)-1])
}

// ProbeReport reads the newest log of the probe workload whose pods start
// with podPrefix (ProbeDaemonSet or ProbeDeployment) on node.
func (l *Lab) ProbeReport(node, podPrefix string) (probe.Report, error) {
	files, err := l.PodLogFiles(node, ProbeNamespace, podPrefix+"-", "probe")
	if err != nil {
		return probe.Report{}, err
	}
	if len(files) == 0 {
		return probe.Report{}, fmt.Errorf("node %s: no log of %s yet", node, podPrefix)
	}
	f, err := os.Open(files[len(files)-1])
	if err != nil {
		return probe.Report{}, err
	}
	defer f.Close()
	return probe.ParseLog(f)
}
