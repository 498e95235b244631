package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/rotation"
	"github.com/carotate/carotate/internal/state"
	"github.com/carotate/carotate/internal/state/backup"
)

// inProgress is a rotation found in the state directory that has not
// finished: its new cluster CA, and the phase it last finished.
type inProgress struct {
	clusterID string
	rec       state.Record
	dir       *state.Dir // the rotation's own directory
	newCert   *x509.Certificate
}

// findInProgress reads every cluster's record under root. carotate's own
// API client must trust the new CA of a rotation in progress: once the
// switch is done the apiservers serve from it, and the operator's
// kubeconfig may still hold only the old one. With finalized, a rotation
// that was finalized counts too, after those in progress: a rerun of
// finalize (or a rollback refused for it) must reach the cluster to say so.
func findInProgress(root string, finalized bool) []inProgress {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var out, done []inProgress
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, e.Name(), "record.json")); err != nil {
			continue
		}
		d, err := state.Open(root, e.Name())
		if err != nil {
			continue
		}
		rec, err := d.LoadRecord()
		if err != nil || rec.RotationID == "" {
			continue
		}
		st, err := rotation.ParseRecordState(rec.Phase)
		if err != nil || (st.Closed() && !(finalized && st == rotation.Completed)) {
			continue
		}
		if _, err := os.Stat(filepath.Join(d.Path(), rec.RotationID)); err != nil {
			continue
		}
		rd, err := state.Open(d.Path(), rec.RotationID)
		if err != nil {
			continue
		}
		cert, err := rd.LoadCACert(model.ClusterCA)
		if err != nil {
			continue
		}
		f := inProgress{clusterID: e.Name(), rec: rec, dir: rd, newCert: cert}
		if st.Closed() {
			done = append(done, f)
		} else {
			out = append(out, f)
		}
	}
	return append(out, done...)
}

// rotationAwareConfig is the kubeconfig's client configuration, trusting
// also the new CA of every rotation in progress. For finalize, which
// makes the apiservers reject the old CA's client certificates, the client
// certificate is replaced by one from the new CA with the same identity,
// kept in memory only.
func (o *rotationOptions) rotationAwareConfig(cmd rotation.Command) (*rest.Config, error) {
	cfg, err := restConfig(o.access(o.getenv, o.logger))
	if err != nil {
		return nil, err
	}
	found := findInProgress(o.StateDir, cmd == rotation.Finalize || cmd == rotation.Rollback)
	if len(found) == 0 {
		return cfg, nil
	}
	var certs []*x509.Certificate
	caData := cfg.TLSClientConfig.CAData
	if len(caData) == 0 && cfg.TLSClientConfig.CAFile != "" {
		if caData, err = os.ReadFile(cfg.TLSClientConfig.CAFile); err != nil {
			return nil, fmt.Errorf("read the kubeconfig's certificate-authority %s: %w", cfg.TLSClientConfig.CAFile, err)
		}
	}
	if len(caData) > 0 {
		if certs, err = pki.ParseCertificatesPEM("kubeconfig certificate-authority", caData); err != nil {
			return nil, err
		}
	}
	for _, f := range found {
		certs = append(certs, f.newCert)
	}
	cfg.TLSClientConfig.CAData = pki.BuildBundle(pki.Dedupe(certs)...)
	cfg.TLSClientConfig.CAFile = ""
	if cmd != rotation.Finalize && cmd != rotation.Rollback {
		return cfg, nil
	}
	certPEM := cfg.TLSClientConfig.CertData
	if len(certPEM) == 0 && cfg.TLSClientConfig.CertFile != "" {
		if certPEM, err = os.ReadFile(cfg.TLSClientConfig.CertFile); err != nil {
			return nil, err
		}
	}
	if len(certPEM) == 0 {
		return cfg, nil // token or exec credentials do not depend on the CA
	}
	old, err := pki.ParseCertificatePEM("kubeconfig client-certificate", certPEM)
	if err != nil {
		return nil, err
	}
	for _, f := range found {
		if old.CheckSignatureFrom(f.newCert) == nil {
			return cfg, nil // already from the new CA
		}
	}
	newCA, err := o.unsealNewCA(found[0])
	if err != nil {
		return nil, err
	}
	leaf, err := pki.Reissue(old, newCA, pki.ReissueOptions{Now: o.now(), Source: "kubeconfig client-certificate", NewKey: true})
	if err != nil {
		return nil, err
	}
	keyPEM, err := leaf.Key.MarshalPEM()
	if err != nil {
		return nil, err
	}
	newPair, err := tls.X509KeyPair(leaf.CertPEM(), keyPEM)
	if err != nil {
		return nil, err
	}
	oldKeyPEM := cfg.TLSClientConfig.KeyData
	if len(oldKeyPEM) == 0 && cfg.TLSClientConfig.KeyFile != "" {
		if oldKeyPEM, err = os.ReadFile(cfg.TLSClientConfig.KeyFile); err != nil {
			return nil, err
		}
	}
	oldPair, err := tls.X509KeyPair(certPEM, oldKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("the kubeconfig's client certificate and key: %w", err)
	}
	if err := presentEither(cfg, newPair, oldPair); err != nil {
		return nil, err
	}
	return cfg, nil
}

// unsealNewCA reads the new cluster CA's key of a rotation in progress,
// with the backup key the rotation was started with.
func (o *rotationOptions) unsealNewCA(f inProgress) (*pki.CA, error) {
	path := o.BackupKeyFile
	if path == "" {
		path = f.rec.BackupKeyPath
	}
	if path == "" {
		path = legacyKeyFile(o.StateDir, f.clusterID)
	}
	key, err := backup.LoadKey(path)
	if err != nil {
		return nil, fmt.Errorf("%w: rotation %s was started with backup key %s: %w; pass --backup-key with that key", ErrRefused, f.rec.RotationID, orUnknown(f.rec.BackupKeyID), err)
	}
	if err := state.CheckKey(f.rec, key); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	return f.dir.LoadNewCA(model.ClusterCA, key)
}

// staleKubeconfig explains an apiserver certificate the kubeconfig does
// not trust when a rotation carotate finalized signed it: the kubeconfig
// is from before that rotation, and only a current one reaches the
// cluster now. "" for any other error.
func staleKubeconfig(root string, err error) string {
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) || unknown.Cert == nil {
		return ""
	}
	for _, f := range findInProgress(root, true) {
		if unknown.Cert.CheckSignatureFrom(f.newCert) != nil {
			continue
		}
		return fmt.Sprintf("\nthe apiserver serves from the new cluster CA of rotation %s (record: %s), which this kubeconfig does not hold: it is from before the rotation. Use a current one, such as /etc/kubernetes/admin.conf on a control plane",
			f.rec.RotationID, f.rec.Phase)
	}
	return ""
}
