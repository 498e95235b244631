// Command carotate rotates the certificate authorities of a kubeadm-style
// Kubernetes cluster.
package main

import (
	"os"

	"github.com/carotate/carotate/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
