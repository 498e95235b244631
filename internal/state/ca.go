package state

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"time"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/state/backup"
)

// ErrNoCA means the state directory holds no CA of that kind (or set) yet.
var ErrNoCA = errors.New("no ca saved")

// CASet names a set of CAs kept sealed in the state directory.
type CASet string

// The sets a rotation keeps: the CAs it rotates to, and the CAs it rotates
// from (a second copy of their keys beside the backup until finalize).
const (
	NewCAs CASet = "new"
	OldCAs CASet = "old"
)

// File returns the sealed file of the set, relative to the directory:
// ca/new-cas.enc or ca/old-cas.enc.
func (s CASet) File() string { return CADir + "/" + string(s) + "-cas.enc" }

func (s CASet) valid() error {
	if s != NewCAs && s != OldCAs {
		return fmt.Errorf("unknown ca set %q", s)
	}
	return nil
}

func checkKind(kind model.CAKind) error {
	switch kind {
	case model.ClusterCA, model.FrontProxyCA, model.EtcdCA:
		return nil
	}
	return fmt.Errorf("ca kind %q cannot be saved as a certificate and key", kind)
}

// certFile is the readable copy of a new CA's certificate.
func certFile(kind model.CAKind) string { return CADir + "/" + string(kind) + ".crt" }

// legacyKeyFile is where carotate before sealed CAs kept a new CA key
// unencrypted; SaveCAs removes it.
func legacyKeyFile(kind model.CAKind) string { return CADir + "/" + string(kind) + ".key" }

// SaveCAs seals the CAs of set under key into the set's file (0600,
// atomic), with certificate and key in the backup format, so that no
// private key is ever on disk unencrypted in the state directory. For the
// new CAs it then writes each certificate, readable, to ca/<kind>.crt, and
// removes any unencrypted key an older carotate left beside it. It refuses
// a key that does not belong to its certificate.
func (d *Dir) SaveCAs(set CASet, key backup.Key, cas map[model.CAKind]*pki.CA) error {
	if err := set.valid(); err != nil {
		return err
	}
	if len(cas) == 0 {
		return fmt.Errorf("save the %s cas: none given", set)
	}
	kinds := make([]model.CAKind, 0, len(cas))
	for k := range cas {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i] < kinds[j] })
	c := backup.Contents{CreatedAt: time.Now().UTC()}
	for _, kind := range kinds {
		if err := checkKind(kind); err != nil {
			return err
		}
		ca := cas[kind]
		if ca == nil || ca.Cert == nil {
			return fmt.Errorf("save %s %s ca: no certificate", set, kind)
		}
		if !pki.KeyMatchesCertificate(ca.Key, ca.Cert) {
			return fmt.Errorf("save %s %s ca: the key does not belong to the certificate", set, kind)
		}
		keyPEM, err := ca.Key.MarshalPEM()
		if err != nil {
			return fmt.Errorf("save %s %s ca key: %w", set, kind, err)
		}
		c.Files = append(c.Files,
			// The certificate, then an imported intermediate's chain up to
			// its root, so that a resumed run has the chain too.
			backup.File{Node: string(set) + "-ca", Path: string(kind) + ".crt", Mode: 0o644, Content: ca.ChainPEM()},
			backup.File{Node: string(set) + "-ca", Path: string(kind) + ".key", Mode: FileMode, Content: keyPEM})
	}
	if err := backup.Write(d.Join(set.File()), key, c); err != nil {
		return fmt.Errorf("save the %s cas: %w", set, err)
	}
	if set != NewCAs {
		return nil
	}
	removed := false
	for _, kind := range kinds {
		if err := d.writeFile(certFile(kind), cas[kind].CertPEM()); err != nil {
			return fmt.Errorf("save new %s ca certificate in %s: %w", kind, d.path, err)
		}
		err := os.Remove(d.Join(legacyKeyFile(kind)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the unencrypted key an older carotate kept: %w", err)
		}
		removed = removed || err == nil
	}
	if removed {
		return syncDir(d.Join(CADir))
	}
	return nil
}

// LoadCAs unseals what SaveCAs wrote, in memory only, checking that every
// key still belongs to its certificate, and for the new CAs that the
// readable certificate (if present) is the sealed one. ErrNoCA if the set
// was never saved; a wrong key is backup.ErrWrongKey.
func (d *Dir) LoadCAs(set CASet, key backup.Key) (map[model.CAKind]*pki.CA, error) {
	if err := set.valid(); err != nil {
		return nil, err
	}
	path := d.Join(set.File())
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoCA)
	}
	if err := checkPrivateFile(path); err != nil {
		return nil, fmt.Errorf("load the %s cas: %w", set, err)
	}
	c, err := backup.Read(path, key)
	if err != nil {
		return nil, fmt.Errorf("load the %s cas: %w", set, err)
	}
	certs, keys := map[model.CAKind][]byte{}, map[model.CAKind][]byte{}
	for _, f := range c.Files {
		if f.Node != string(set)+"-ca" {
			return nil, fmt.Errorf("load the %s cas: %s holds %s:%s, which is not a %s ca", set, path, f.Node, f.Path, set)
		}
		switch ext := f.Path[max(0, len(f.Path)-4):]; ext {
		case ".crt":
			certs[model.CAKind(f.Path[:len(f.Path)-4])] = f.Content
		case ".key":
			keys[model.CAKind(f.Path[:len(f.Path)-4])] = f.Content
		default:
			return nil, fmt.Errorf("load the %s cas: %s holds an unknown entry %s", set, path, f.Path)
		}
	}
	out := map[model.CAKind]*pki.CA{}
	for kind, certPEM := range certs {
		src := path + ":" + string(kind)
		if err := checkKind(kind); err != nil {
			return nil, fmt.Errorf("load the %s cas from %s: %w", set, path, err)
		}
		keyPEM, ok := keys[kind]
		if !ok {
			return nil, fmt.Errorf("load the %s cas: %s holds the %s certificate without its key", set, path, kind)
		}
		chain, err := pki.ParseCertificatesPEM(src+".crt", certPEM)
		if err != nil {
			return nil, fmt.Errorf("load the %s cas: %w", set, err)
		}
		cert := chain[0]
		k, err := pki.ParsePrivateKeyPEM(src+".key", keyPEM)
		if err != nil {
			return nil, fmt.Errorf("load the %s cas: %w", set, err)
		}
		if !pki.KeyMatchesCertificate(k, cert) {
			return nil, fmt.Errorf("load the %s cas: in %s the %s key does not belong to its certificate", set, path, kind)
		}
		if set == NewCAs {
			readable, err := os.ReadFile(d.Join(certFile(kind)))
			if err == nil && !bytes.Equal(readable, pki.EncodeCertificatePEM(cert)) {
				return nil, fmt.Errorf("load the new %s ca: %s is not the certificate sealed in %s; the state directory was changed by hand", kind, d.Join(certFile(kind)), path)
			}
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("load the new %s ca: %w", kind, err)
			}
		}
		out[kind] = &pki.CA{Cert: cert, Key: k, Chain: chain[1:]}
	}
	for kind := range keys {
		if _, ok := certs[kind]; !ok {
			return nil, fmt.Errorf("load the %s cas: %s holds the %s key without its certificate", set, path, kind)
		}
	}
	return out, nil
}

// LoadNewCA unseals the new CA of kind; ErrNoCA if none was saved.
func (d *Dir) LoadNewCA(kind model.CAKind, key backup.Key) (*pki.CA, error) {
	cas, err := d.LoadCAs(NewCAs, key)
	if err != nil {
		return nil, err
	}
	ca, ok := cas[kind]
	if !ok {
		return nil, fmt.Errorf("%s has no %s ca: %w", d.Join(NewCAs.File()), kind, ErrNoCA)
	}
	return ca, nil
}

// LoadCACert reads the new CA certificate of kind, which needs no key;
// ErrNoCA if none was saved.
func (d *Dir) LoadCACert(kind model.CAKind) (*x509.Certificate, error) {
	if err := checkKind(kind); err != nil {
		return nil, err
	}
	path := d.Join(certFile(kind))
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoCA)
	}
	if err != nil {
		return nil, fmt.Errorf("load new %s ca certificate: %w", kind, err)
	}
	return pki.ParseCertificatePEM(path, data)
}

// LoadCA returns the new CA of kind with its certificate only: the key is
// sealed (LoadNewCA), and the returned CA's Key is the zero value.
//
// Deprecated: use LoadCACert for the certificate, LoadNewCA(kind, key) for
// the key as well. Kept so that callers written before the keys were
// sealed still get the certificate.
func (d *Dir) LoadCA(kind model.CAKind) (*pki.CA, error) {
	cert, err := d.LoadCACert(kind)
	if err != nil {
		return nil, err
	}
	return &pki.CA{Cert: cert}, nil
}

// checkPrivateFile refuses a file that group or others can read or write.
func checkPrivateFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return &ModeError{Path: path, Mode: fi.Mode(), Owner: owner(fi),
			Why: "a file holding (sealed) CA keys must be readable by its owner only; run chmod 600 on it after checking nobody else copied it"}
	}
	return nil
}
