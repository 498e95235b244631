// Command lab stands up real kubeadm clusters on this host for carotate's
// demo and end-to-end tests. See `lab --help`.
//
// Inside a lab node the same binary is also the node's agent (`lab agent`),
// its `systemctl` and its `journalctl`.
package main

import (
	"os"
	"path/filepath"
	"time"

	"github.com/carotate/carotate/internal/lab/agent"
	"github.com/carotate/carotate/internal/labcli"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case "systemctl":
		os.Exit(agent.Systemctl("/run/lab-agent.sock", os.Args[1:], os.Stdout, os.Stderr))
	case "journalctl":
		os.Exit(agent.Journalctl("/var/log", os.Args[1:], time.Now(), os.Stdout, os.Stderr))
	}
	os.Exit(labcli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
