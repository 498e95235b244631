package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyError refuses a node whose SSH host key is not the one in
// known_hosts. It is returned from the handshake, before authentication, so
// nothing has been sent to the node. The message carries what the operator
// needs to decide: the offered key's algorithm and SHA256 fingerprint, the
// files consulted, and the commands to fix it once the fingerprint has been
// checked out of band.
type HostKeyError struct {
	// Host is the name looked up in known_hosts: "cp-1" for port 22,
	// "[10.0.0.5]:2222" otherwise.
	Host string
	// Algorithm and Fingerprint describe the key the node offered.
	Algorithm   string
	Fingerprint string
	// KnownHostsFiles are the files that were consulted.
	KnownHostsFiles []string
	// Known lists the plain keys on record for Host; empty when the host
	// is unknown (or known only through Authorities), non-empty when its
	// key changed.
	Known []knownhosts.KnownKey
	// Authorities lists the @cert-authority keys on record for Host.
	Authorities []knownhosts.KnownKey
	// Revoked is set when the offered key is marked @revoked.
	Revoked bool
	// CertErr says why an offered host certificate was refused.
	CertErr error
}

func (e *HostKeyError) Error() string {
	offered := fmt.Sprintf("%s key %s", e.Algorithm, e.Fingerprint)
	files := strings.Join(e.KnownHostsFiles, ", ")
	file := "~/.ssh/known_hosts"
	if len(e.KnownHostsFiles) > 0 {
		file = e.KnownHostsFiles[0]
	}
	add := e.keyscanCommand(file)
	switch {
	case e.Revoked:
		return fmt.Sprintf("host key of %s is revoked: offered %s is marked @revoked in %s; refusing to connect",
			e.Host, offered, files)
	case e.CertErr != nil:
		return fmt.Sprintf("host certificate of %s is refused: offered %s: %v; %s; refusing to connect",
			e.Host, offered, e.CertErr, describeAuthorities(e.Authorities, e.Host, files))
	case len(e.Known) == 0 && len(e.Authorities) > 0:
		return fmt.Sprintf("host key of %s is not certified: offered %s is a plain key, and %s; refusing to connect. "+
			"Give the node's sshd a HostCertificate signed by that authority, or check the key's fingerprint "+
			"out of band (on the node: ssh-keygen -lf %s) and add it: %s",
			e.Host, offered, describeAuthorities(e.Authorities, e.Host, files), hostKeyFileFor(e.Algorithm), add)
	case len(e.Known) == 0:
		return fmt.Sprintf("host key of %s is unknown: offered %s, and %s has no entry for %s; refusing to connect. "+
			"Check the fingerprint out of band (on the node: ssh-keygen -lf %s), then add it: %s",
			e.Host, offered, files, e.Host, hostKeyFileFor(e.Algorithm), add)
	default:
		var known []string
		for _, k := range e.Known {
			known = append(known, fmt.Sprintf("%s key %s (%s:%d)",
				k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
		}
		return fmt.Sprintf("host key of %s has CHANGED: offered %s, but known_hosts has %s; "+
			"someone may be intercepting the connection, refusing to connect. "+
			"If the node was reinstalled, check the new fingerprint out of band (on the node: ssh-keygen -lf %s), "+
			"then replace the entry: ssh-keygen -R %s -f %s && %s",
			e.Host, offered, strings.Join(known, ", "), hostKeyFileFor(e.Algorithm),
			Quote(e.Host), Quote(e.Known[0].Filename), e.keyscanCommand(e.Known[0].Filename))
	}
}

// describeAuthorities says which @cert-authority keys are on record.
func describeAuthorities(cas []knownhosts.KnownKey, host, files string) string {
	if len(cas) == 0 {
		return fmt.Sprintf("%s has no @cert-authority entry for %s", files, host)
	}
	var list []string
	for _, k := range cas {
		list = append(list, fmt.Sprintf("%s key %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
	}
	return fmt.Sprintf("known_hosts trusts only @cert-authority %s for %s", strings.Join(list, ", "), host)
}

// keyscanCommand is the command that appends the node's key of the offered
// type to file, in the host syntax known_hosts uses for Host.
func (e *HostKeyError) keyscanCommand(file string) string {
	host, port := e.Host, "22"
	if strings.HasPrefix(host, "[") {
		if h, p, err := net.SplitHostPort(host); err == nil {
			host, port = h, p
		}
	}
	cmd := "ssh-keyscan"
	if port != "22" {
		cmd += " -p " + port
	}
	return fmt.Sprintf("%s -t %s %s >> %s", cmd, keyscanType(e.Algorithm), Quote(host), Quote(file))
}

// keyscanType maps a key algorithm to ssh-keyscan's -t name.
func keyscanType(alg string) string {
	alg = strings.Replace(alg, "-cert-v01@openssh.com", "", 1)
	switch {
	case alg == ssh.KeyAlgoRSASHA256 || alg == ssh.KeyAlgoRSASHA512:
		return "rsa"
	case alg == ssh.KeyAlgoRSA:
		return "rsa"
	case strings.HasPrefix(alg, "ecdsa-"):
		return "ecdsa"
	case alg == ssh.KeyAlgoED25519:
		return "ed25519"
	}
	return alg
}

// hostKeyFileFor names the file where OpenSSH keeps a host key of alg, so
// the operator knows what to fingerprint on the node's console.
func hostKeyFileFor(alg string) string {
	return "/etc/ssh/ssh_host_" + keyscanType(alg) + "_key.pub"
}

// hostKeyChecker verifies host keys against known_hosts files. There is no
// way to turn it off: an unverified host key hands root on every node to
// whoever sits on the network path.
type hostKeyChecker struct {
	files []string
	check ssh.HostKeyCallback
	// authorities holds the file:line of every @cert-authority entry,
	// so that the entries knownhosts reports can be told apart.
	authorities map[lineRef]bool
}

type lineRef struct {
	file string
	line int
}

// newHostKeyChecker loads files. A file that does not exist counts as
// empty, so that a first run gets the "unknown host, here is how to add it"
// message rather than a bare "no such file".
func newHostKeyChecker(files []string) (*hostKeyChecker, error) {
	if len(files) == 0 {
		return nil, errors.New("no known_hosts file given")
	}
	var present []string
	for _, f := range files {
		_, err := os.Stat(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("known_hosts %s: %w", f, err)
		}
		present = append(present, f)
	}
	check, err := knownhosts.New(present...)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	authorities := map[lineRef]bool{}
	for _, f := range present {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("known_hosts %s: %w", f, err)
		}
		// Numbered as knownhosts numbers them: every line counts.
		for i, line := range strings.Split(string(data), "\n") {
			if marker, _, _ := strings.Cut(strings.TrimSpace(line), " "); marker == "@cert-authority" {
				authorities[lineRef{f, i + 1}] = true
			}
		}
	}
	return &hostKeyChecker{files: files, check: check, authorities: authorities}, nil
}

// split separates the entries knownhosts found for a host into plain host
// keys and certificate authorities.
func (c *hostKeyChecker) split(keys []knownhosts.KnownKey) (plain, cas []knownhosts.KnownKey) {
	for _, k := range keys {
		if c.authorities[lineRef{k.Filename, k.Line}] {
			cas = append(cas, k)
		} else {
			plain = append(plain, k)
		}
	}
	return plain, cas
}

// callback is the ssh.HostKeyCallback: it turns knownhosts' errors into a
// HostKeyError that explains itself.
func (c *hostKeyChecker) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := c.check(hostname, remote, key)
	if err == nil {
		return nil
	}
	hkErr := &HostKeyError{
		Host:            knownhosts.Normalize(hostname),
		Algorithm:       key.Type(),
		Fingerprint:     ssh.FingerprintSHA256(key),
		KnownHostsFiles: c.files,
	}
	var revoked *knownhosts.RevokedError
	var keyErr *knownhosts.KeyError
	_, isCert := key.(*ssh.Certificate)
	switch {
	case errors.As(err, &revoked):
		hkErr.Revoked = true
	case errors.As(err, &keyErr):
		hkErr.Known, hkErr.Authorities = c.split(keyErr.Want)
	case isCert:
		// ssh.CertChecker's own errors: unknown authority, wrong
		// principal, expired. The message lists what is on record.
		hkErr.CertErr = err
		var onRecord *knownhosts.KeyError
		if errors.As(c.check(hostname, remote, probeKey()), &onRecord) {
			_, hkErr.Authorities = c.split(onRecord.Want)
		}
	default:
		return err
	}
	return hkErr
}

// probeKey is a fresh key that no known_hosts lists, so that checking it
// makes knownhosts report every entry on record for a host.
func probeKey() ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil
	}
	return probe
}

// algorithmsFor returns the host key algorithms to offer for hostname, in
// the order of the keys on record. Without this the client asks for its own
// favourite algorithm, and a node whose known_hosts entry is RSA but which
// also has an ed25519 key would look like a changed key. A @cert-authority
// entry for the host puts every certificate algorithm first, whatever the
// authority's own key type (an ed25519 CA may certify an RSA host key),
// followed by the plain algorithms: those of plain entries, or all of them
// when there are none, so that a node without a certificate gets a
// HostKeyError that says so rather than "no common algorithm". Nil means
// "no entry": the default list is used and the callback then refuses the
// key.
func (c *hostKeyChecker) algorithmsFor(hostname string, remote net.Addr) []string {
	probe := probeKey()
	if probe == nil {
		return nil
	}
	var keyErr *knownhosts.KeyError
	if !errors.As(c.check(hostname, remote, probe), &keyErr) {
		return nil
	}
	plain, cas := c.split(keyErr.Want)
	var algs []string
	seen := map[string]bool{}
	add := func(list ...string) {
		for _, alg := range list {
			if !seen[alg] {
				seen[alg] = true
				algs = append(algs, alg)
			}
		}
	}
	if len(cas) > 0 {
		add(certAlgorithms...)
	}
	for _, k := range plain {
		add(algorithmsForKeyType(k.Key.Type())...)
	}
	if len(cas) > 0 && len(plain) == 0 {
		add(plainAlgorithms...)
	}
	return algs
}

// certAlgorithms are the host certificate algorithms offered when a
// @cert-authority entry matches; plainAlgorithms the plain ones offered
// after them when no plain key is on record. SHA-1 RSA comes last.
var (
	certAlgorithms = []string{
		ssh.CertAlgoED25519v01,
		ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01,
		ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01,
	}
	plainAlgorithms = []string{
		ssh.KeyAlgoED25519,
		ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA,
	}
)

// algorithmsForKeyType lists the signature algorithms a host key of type t
// can be negotiated with: RSA keys sign with SHA-2 first.
func algorithmsForKeyType(t string) []string {
	if t == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{t}
}
