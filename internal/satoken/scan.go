package satoken

import (
	"context"
	"errors"
	"fmt"

	"github.com/carotate/carotate/internal/node"
)

// podsDir is where the kubelet (kubeadm's default --root-dir) keeps each
// pod's volumes.
const podsDir = "/var/lib/kubelet/pods"

// Scan reads every projected token on the node behind ex, in one command
// run there (see scanScript): the header and payload of each, never the
// signature.
//
// Tokens that could be read are returned even when the error is not nil:
// the error then names each file that could not be read or parsed (a pod
// being deleted during the scan is one such cause; scanning again settles
// it). A node with no pods directory has no tokens. Run the command as
// root: the kubelet's pod directories are readable by root only, and a scan
// that cannot enter one fails rather than reporting no tokens.
func Scan(ctx context.Context, ex node.Executor) ([]Token, error) {
	return scanDir(ctx, ex, podsDir)
}

// scanDir is Scan of the pods directory dir.
func scanDir(ctx context.Context, ex node.Executor, dir string) ([]Token, error) {
	res, runErr := ex.Run(ctx, []string{"sh", "-c", scanScript, "sh", dir}, nil)
	var exit *node.ExitError
	if runErr != nil && !errors.As(runErr, &exit) {
		return nil, fmt.Errorf("scan service-account tokens: %w", runErr)
	}
	tokens, err := parse(ex.Name(), res.Stdout)
	if runErr != nil {
		err = errors.Join(fmt.Errorf("scan service-account tokens: some files could not be read: %w", runErr), err)
	}
	return tokens, err
}

// scanScript takes the pods directory as $1. It is POSIX sh, find and cat.
//
// The outer find lists the projected volumes, <uid>/volumes/
// kubernetes.io~projected/<volume>, whose names (a UUID and a DNS label)
// cannot hold a newline. In each, find -L follows the kubelet's atomic
// writer's links (<file> -> ..data/<file>, ..data -> ..<timestamp>) so that
// every file is found once, by the path the pod sees, with the ..-named
// entries pruned, -xdev keeping it inside the volume's tmpfs. Any regular
// file may be a token, since a serviceAccountToken source chooses its own
// path; nothing larger than 1 MiB is read, which nothing the API server
// stores can exceed.
//
// A file counts as a JWT only if its whole content is three non-empty
// base64url segments whose first two begin with eyJ (base64 of `{"`), so
// that no other file (ca.crt, namespace, or a Secret's value such as
// "db.example.com") has any of its content printed. For a JWT it prints
// "<header>.<payload> <path>" and a NUL: ${tok%.*} drops the signature
// inside the shell on the node. A file that cannot be read, or a directory
// that cannot be entered, makes the command exit non-zero, after the rest
// has been printed.
const scanScript = `LC_ALL=C
export LC_ALL
pods=${1:-/var/lib/kubelet/pods}
[ -e "$pods" ] || exit 0
cd -- "$pods" || exit 1
export pods
token_check='st=0
for f do
	tok=$(cat -- "$f") || { st=1; continue; }
	case $tok in
	*[!A-Za-z0-9_.-]* | *..* | *. | *.*.*.*) ;;
	eyJ*.eyJ*.*) printf "%s %s/%s\0" "${tok%.*}" "${pods%/}" "${f#./}" ;;
	esac
done
exit $st'
st=0
vols=$(find . -path './*/*/*/*' -prune -type d -path './*/volumes/kubernetes.io~projected/*' -print) || st=1
IFS='
'
set -f
for v in $vols; do
	find -L "$v" -xdev -name '..*' -prune -o -type f -size -1048577c -exec sh -c "$token_check" sh {} + || st=1
done
exit $st
`
