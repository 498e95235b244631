package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
)

// ErrNoCA means the state directory holds no new CA of that kind yet.
var ErrNoCA = errors.New("no new ca saved")

func caFiles(kind model.CAKind) (cert, key string, err error) {
	switch kind {
	case model.ClusterCA, model.FrontProxyCA, model.EtcdCA:
	default:
		return "", "", fmt.Errorf("ca kind %q cannot be saved as a certificate and key", kind)
	}
	return CADir + "/" + string(kind) + ".crt", CADir + "/" + string(kind) + ".key", nil
}

// SaveCA keeps the new CA of kind in the state directory, certificate and
// key both 0600, before it is written anywhere else: if carotate dies after
// that, a rerun finds the same CA instead of minting another. The key is
// written first, so a certificate on disk always has its key. It refuses a
// key that does not belong to the certificate.
func (d *Dir) SaveCA(kind model.CAKind, certPEM []byte, key pki.PrivateKey) error {
	certName, keyName, err := caFiles(kind)
	if err != nil {
		return err
	}
	cert, err := pki.ParseCertificatePEM("new "+string(kind)+" ca", certPEM)
	if err != nil {
		return fmt.Errorf("save %s ca: %w", kind, err)
	}
	if !pki.KeyMatchesCertificate(key, cert) {
		return fmt.Errorf("save %s ca: the key does not belong to the certificate", kind)
	}
	keyPEM, err := key.MarshalPEM()
	if err != nil {
		return fmt.Errorf("save %s ca key: %w", kind, err)
	}
	if err := d.writeFile(keyName, keyPEM); err != nil {
		return fmt.Errorf("save %s ca key in %s: %w", kind, d.path, err)
	}
	if err := d.writeFile(certName, certPEM); err != nil {
		return fmt.Errorf("save %s ca certificate in %s: %w", kind, d.path, err)
	}
	return nil
}

// LoadCA reads back what SaveCA wrote, checking that the key still matches
// the certificate and that the key file is still private. ErrNoCA if none
// was saved.
func (d *Dir) LoadCA(kind model.CAKind) (*pki.CA, error) {
	certName, keyName, err := caFiles(kind)
	if err != nil {
		return nil, err
	}
	certPath, keyPath := d.Join(certName), d.Join(keyName)
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", certPath, ErrNoCA)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s ca: %w", kind, err)
	}
	if err := checkPrivateFile(keyPath); err != nil {
		return nil, fmt.Errorf("load %s ca: %w", kind, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("load %s ca key: %w", kind, err)
	}
	cert, err := pki.ParseCertificatePEM(certPath, certPEM)
	if err != nil {
		return nil, fmt.Errorf("load %s ca: %w", kind, err)
	}
	key, err := pki.ParsePrivateKeyPEM(keyPath, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load %s ca: %w", kind, err)
	}
	if !pki.KeyMatchesCertificate(key, cert) {
		return nil, fmt.Errorf("load %s ca: %s does not belong to %s; the state directory was changed by hand", kind, keyPath, certPath)
	}
	return &pki.CA{Cert: cert, Key: key}, nil
}

// checkPrivateFile refuses a file that group or others can read or write.
func checkPrivateFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return &ModeError{Path: path, Mode: fi.Mode(), Owner: owner(fi),
			Why: "a private key must be readable by its owner only; run chmod 600 on it after checking nobody else copied it"}
	}
	return nil
}
