package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/carotate/carotate/internal/inventory"
	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/node"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/rotation"
	"github.com/carotate/carotate/internal/state"
)

// Environment variables that give node-access defaults (`lab env` prints
// them); a flag on the command line wins.
const (
	EnvSSHUser       = "CAROTATE_SSH_USER"
	EnvSSHKey        = "CAROTATE_SSH_KEY"         // one path, or several separated by ':'
	EnvSSHKnownHosts = "CAROTATE_SSH_KNOWN_HOSTS" // likewise
	EnvSSHJump       = "CAROTATE_SSH_JUMP"        // [user@]host[:port], comma-separated
	EnvStateDir      = "CAROTATE_STATE_DIR"
	EnvBackupKey     = "CAROTATE_BACKUP_KEY"
)

// Output formats, as kubectl's -o: text for people, json and yaml for
// programs. The structured two carry the same documents.
const (
	OutputText = "text"
	OutputJSON = "json"
	OutputYAML = "yaml"
)

func validateOutput(output string) error {
	switch output {
	case OutputText, OutputJSON, OutputYAML:
		return nil
	}
	return fmt.Errorf("--output %q is not one of %s, %s or %s", output, OutputText, OutputJSON, OutputYAML)
}

// structured says whether output is for programs: then stdout holds only
// its documents, and every line for people goes to stderr.
func structured(output string) bool {
	return output == OutputJSON || output == OutputYAML
}

// ClusterFlags say which cluster to talk to, as kubectl's do. Every
// command has them.
type ClusterFlags struct {
	Kubeconfig string
	Context    string
}

// AddFlags registers --kubeconfig and --context.
func (c *ClusterFlags) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&c.Kubeconfig, "kubeconfig", c.Kubeconfig, "path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	f.StringVar(&c.Context, "context", c.Context, "the kubeconfig context to use")
}

func (c ClusterFlags) access(getenv func(string) string, log *slog.Logger) ClusterAccess {
	return ClusterAccess{Kubeconfig: c.Kubeconfig, Context: c.Context, Getenv: getenv, Logger: log}
}

// NodeFlags say how to reach the nodes. Every command has them: each one
// reads the nodes, and a flag means the same on all of them.
type NodeFlags struct {
	SSHUser       string
	SSHKeys       []string
	SSHKnownHosts []string
	SSHPort       int
	SSHJump       string
	Sudo          bool
	InventoryFile string

	inventory *inventory.File // read by Complete
}

// AddFlags registers the node-access flags.
func (n *NodeFlags) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&n.SSHUser, "ssh-user", n.SSHUser, "SSH login on the nodes (default: $"+EnvSSHUser+", ~/.ssh/config, then your user)")
	f.StringArrayVar(&n.SSHKeys, "ssh-key", n.SSHKeys, "SSH private key file; repeatable (default: $"+EnvSSHKey+", ~/.ssh/config, the agent)")
	f.StringArrayVar(&n.SSHKnownHosts, "ssh-known-hosts", n.SSHKnownHosts, "known_hosts file the nodes' host keys are checked against; repeatable (default: $"+EnvSSHKnownHosts+", then ~/.ssh/known_hosts)")
	f.IntVar(&n.SSHPort, "ssh-port", n.SSHPort, "SSH port on the nodes (default: ~/.ssh/config, then 22)")
	f.StringVar(&n.SSHJump, "ssh-jump", n.SSHJump, "reach the nodes through these jump hosts, as ssh -J: [user@]host[:port], comma-separated, each host key checked (default: $"+EnvSSHJump+", then ProxyJump in ~/.ssh/config); none to go direct")
	f.BoolVar(&n.Sudo, "sudo", n.Sudo, "run commands on the nodes through sudo -n, for a login that is not root")
	f.StringVar(&n.InventoryFile, "inventory", n.InventoryFile, "YAML file overriding address, user, port, executor (ssh|local), sudo and jump per node, or skipping nodes")
}

// Complete fills the SSH settings the command line left unset from the
// environment, and reads the inventory file if one is named.
func (n *NodeFlags) Complete(env Env, flags *pflag.FlagSet) error {
	if !flags.Changed("ssh-user") {
		n.SSHUser = env.Getenv(EnvSSHUser)
	}
	if !flags.Changed("ssh-key") {
		n.SSHKeys = splitPathList(env.Getenv(EnvSSHKey))
	}
	if !flags.Changed("ssh-known-hosts") {
		n.SSHKnownHosts = splitPathList(env.Getenv(EnvSSHKnownHosts))
	}
	if !flags.Changed("ssh-jump") {
		n.SSHJump = env.Getenv(EnvSSHJump)
	}
	if n.InventoryFile == "" {
		return nil
	}
	f, err := inventory.LoadFile(n.InventoryFile)
	if err != nil {
		return fmt.Errorf("--inventory: %w", err)
	}
	n.inventory = f
	return nil
}

// Validate refuses node-access flags that cannot work.
func (n *NodeFlags) Validate() error {
	if n.SSHPort < 0 || n.SSHPort > 65535 {
		return fmt.Errorf("--ssh-port %d is out of range 1-65535", n.SSHPort)
	}
	if _, err := n.jump(); err != nil {
		return fmt.Errorf("--ssh-jump %q: %w; give [user@]host[:port], comma-separated, or none", n.SSHJump, err)
	}
	return nil
}

// jump is --ssh-jump's hops: nil when not given (ssh_config's ProxyJump
// then counts), empty for none.
func (n *NodeFlags) jump() ([]node.SSHConfig, error) {
	if strings.TrimSpace(n.SSHJump) == "" {
		return nil, nil
	}
	hops, err := node.ParseJump(n.SSHJump)
	if err != nil {
		return nil, err
	}
	if hops == nil {
		hops = []node.SSHConfig{} // none: direct, whatever ~/.ssh/config says
	}
	return hops, nil
}

func (n *NodeFlags) sshDefaults() inventory.SSHDefaults {
	d := inventory.SSHDefaults{User: n.SSHUser, IdentityFiles: n.SSHKeys, KnownHostsFiles: n.SSHKnownHosts, Sudo: n.Sudo}
	d.Jump, _ = n.jump() // checked by Validate
	if n.SSHPort != 0 {
		d.Port = strconv.Itoa(n.SSHPort)
	}
	return d
}

func splitPathList(s string) []string {
	var out []string
	for _, p := range filepath.SplitList(s) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// StateFlags say where rotations keep their state, and which key seals it.
// Every command on a rotation has them.
type StateFlags struct {
	StateDir      string
	BackupKeyFile string

	stateDirFrom string // what set StateDir, for errors: the flag or the variable
}

// AddFlags registers --state-dir and --backup-key.
func (s *StateFlags) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&s.StateDir, "state-dir", s.StateDir, "where rotation state, journal and backups live (default: $"+EnvStateDir+", else $XDG_STATE_HOME/carotate or ~/.local/state/carotate)")
	f.StringVar(&s.BackupKeyFile, "backup-key", s.BackupKeyFile, "file with the key that seals the backup and the CA keys, kept apart from --state-dir; a new rotation creates it 0600 if missing, a rotation in progress uses the one it was started with (default: $"+EnvBackupKey+")")
}

// Complete fills what the flags left empty from the environment, and puts
// the state directory at its default when neither gives one.
func (s *StateFlags) Complete(getenv func(string) string) error {
	s.stateDirFrom = "--state-dir"
	if s.BackupKeyFile == "" {
		s.BackupKeyFile = getenv(EnvBackupKey)
	}
	if s.StateDir != "" {
		return nil
	}
	if s.StateDir = getenv(EnvStateDir); s.StateDir != "" {
		s.stateDirFrom = "$" + EnvStateDir
		return nil
	}
	d, err := state.DefaultRoot()
	if err != nil {
		return err
	}
	s.StateDir = d
	return nil
}

// Validate refuses a relative state directory: a rotation must find its
// state again from wherever it is resumed.
func (s *StateFlags) Validate() error {
	if !filepath.IsAbs(s.StateDir) {
		from := s.stateDirFrom
		if from == "" {
			from = "--state-dir"
		}
		return fmt.Errorf("%s %q must be an absolute path", from, s.StateDir)
	}
	return nil
}

// RootsFlag says which roots of trust a rotation changes. Every command
// on a rotation has it; for a rotation in progress it must name the roots
// the rotation was started with, or be left out.
type RootsFlag struct {
	Roots string

	roots rotation.Roots // parsed by Validate; nil when not given
	named bool           // set by Complete
}

func newRootsFlag() RootsFlag { return RootsFlag{Roots: rotation.DefaultRoots().String()} }

// AddFlags registers --roots.
func (r *RootsFlag) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&r.Roots, "roots", r.Roots, "the roots of trust to rotate, comma-separated: "+rotation.ValidRoots()+"; the two CAs always go together, with service-account-key and etcd-ca when named")
}

// Complete notes whether --roots was given: left out, a rotation in
// progress keeps the roots it was started with.
func (r *RootsFlag) Complete(flags *pflag.FlagSet) { r.named = flags.Changed("roots") }

// Validate parses --roots and refuses roots this version does not rotate,
// before anything is read.
func (r *RootsFlag) Validate() error {
	roots, err := rotation.ParseRoots(r.Roots)
	if err != nil {
		return fmt.Errorf("--roots %q: %w", r.Roots, err)
	}
	if err := roots.Supported(); err != nil {
		return fmt.Errorf("--roots %s: %w", roots, err)
	}
	if r.named {
		r.roots = roots
	}
	return nil
}

// ImportFlags name new CAs the operator brings, for the commands that may
// start a rotation (plan shows what rotate would do with them).
type ImportFlags struct {
	CACert, CAKey           string
	FrontCACert, FrontCAKey string
	// ServiceAccountKey and ServiceAccountKeyType are the new
	// service-account key, brought or of a type to generate.
	ServiceAccountKey, ServiceAccountKeyType string
}

// AddFlags registers the CA import flags.
func (i *ImportFlags) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&i.CACert, "ca-cert", i.CACert, "import this new cluster CA certificate instead of generating one (with --ca-key)")
	f.StringVar(&i.CAKey, "ca-key", i.CAKey, "the new cluster CA's private key")
	f.StringVar(&i.FrontCACert, "front-proxy-ca-cert", i.FrontCACert, "import this new front-proxy CA certificate (with --front-proxy-ca-key)")
	f.StringVar(&i.FrontCAKey, "front-proxy-ca-key", i.FrontCAKey, "the new front-proxy CA's private key")
	f.StringVar(&i.ServiceAccountKey, "service-account-key", i.ServiceAccountKey, "import this new service-account signing key (PEM) instead of generating one (with --roots service-account-key)")
	f.StringVar(&i.ServiceAccountKeyType, "service-account-key-type", i.ServiceAccountKeyType, "the type of the service-account key to generate: RSA-2048, RSA-3072, RSA-4096, ECDSA-P256 or ECDSA-P384 (default: the old key's)")
}

// Validate refuses a certificate without its key, or a key without its
// certificate.
func (i *ImportFlags) Validate() error {
	var errs []error
	if (i.CACert == "") != (i.CAKey == "") {
		errs = append(errs, errors.New("--ca-cert and --ca-key go together: give both or neither"))
	}
	if (i.FrontCACert == "") != (i.FrontCAKey == "") {
		errs = append(errs, errors.New("--front-proxy-ca-cert and --front-proxy-ca-key go together: give both or neither"))
	}
	if i.ServiceAccountKey != "" && i.ServiceAccountKeyType != "" {
		errs = append(errs, errors.New("--service-account-key and --service-account-key-type exclude each other: an imported key has its own type"))
	}
	if t := i.ServiceAccountKeyType; t != "" {
		if err := rotation.CheckServiceAccountKeyType("--service-account-key-type", pki.KeyAlgorithm(t)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// serviceAccountKey reads the service-account key the operator brings;
// the zero key when none. It is checked against the key in use later, once
// that is read.
func (i ImportFlags) serviceAccountKey() (pki.PrivateKey, error) {
	if i.ServiceAccountKey == "" {
		return pki.PrivateKey{}, nil
	}
	b, err := os.ReadFile(i.ServiceAccountKey)
	if err != nil {
		return pki.PrivateKey{}, fmt.Errorf("%w: --service-account-key: %w", ErrRefused, err)
	}
	k, err := pki.ParsePrivateKeyPEM(i.ServiceAccountKey, b)
	if err != nil {
		return pki.PrivateKey{}, fmt.Errorf("%w: --service-account-key: %w; give the PEM private key of the new signing key", ErrRefused, err)
	}
	if err := pki.CheckKeyStrength(i.ServiceAccountKey, k.Public()); err != nil {
		return pki.PrivateKey{}, fmt.Errorf("%w: --service-account-key: %w", ErrRefused, err)
	}
	return k, nil
}

// imports reads the CAs the operator brings, refusing a key that does not
// match before anything else happens.
func (i ImportFlags) imports(now time.Time) (map[model.CAKind]*pki.CA, error) {
	out := map[model.CAKind]*pki.CA{}
	for _, in := range []struct {
		kind      model.CAKind
		cert, key string
		flag      string
	}{{model.ClusterCA, i.CACert, i.CAKey, "--ca-cert/--ca-key"}, {model.FrontProxyCA, i.FrontCACert, i.FrontCAKey, "--front-proxy-ca-cert/--front-proxy-ca-key"}} {
		if in.cert == "" {
			continue
		}
		certPEM, err := os.ReadFile(in.cert)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRefused, in.flag, err)
		}
		keyPEM, err := os.ReadFile(in.key)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRefused, in.flag, err)
		}
		ca, err := pki.ImportCA(certPEM, keyPEM, pki.ImportOptions{Now: now, CertSource: in.cert, KeySource: in.key})
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRefused, in.flag, err)
		}
		out[in.kind] = ca
	}
	return out, nil
}
