package check

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/carotate/carotate/internal/model"
)

var now = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

const year = 365 * 24 * time.Hour

func cert(subject, spki string, isCA bool, left time.Duration) model.Cert {
	return model.Cert{Subject: subject, SPKISHA256: spki, SHA256: "sha-" + spki + subject, IsCA: isCA,
		NotBefore: now.Add(-year), NotAfter: now.Add(left)}
}

var (
	clusterCA    = cert("CN=kubernetes", "cluster", true, 9*year)
	oldClusterCA = cert("CN=kubernetes-old", "old-cluster", true, 2*year)
	frontProxyCA = cert("CN=front-proxy-ca", "front-proxy", true, 9*year)
	apiserverCrt = cert("CN=kube-apiserver", "apiserver", false, year)
	adminCrt     = cert("O=kubeadm:cluster-admins,CN=kubernetes-admin", "admin", false, year)
)

const pkiDir = "/etc/kubernetes/pki"

// healthy is a one-node kubeadm cluster with nothing to report but
// kubeadm's shared signing file (info).
func healthy() model.Cluster {
	file := func(p string, kind model.FileKind, certs ...model.Cert) model.File {
		return model.File{Path: p, Kind: kind, Mode: 0o644, Certs: certs}
	}
	key := func(p, spki string) model.File {
		return model.File{Path: p, Kind: model.FileKey, Mode: 0o600, KeySPKISHA256: spki}
	}
	return model.Cluster{
		ObservedAt: now,
		Nodes: []model.Node{{
			Name: "cp-1", Roles: []string{"control-plane"}, InternalIP: "192.0.2.10", Ready: true, Reachable: true, Executor: "ssh",
			Files: []model.File{
				file(pkiDir+"/apiserver.crt", model.FileCertificate, apiserverCrt),
				file(pkiDir+"/ca.crt", model.FileCertificate, clusterCA),
				key(pkiDir+"/ca.key", "cluster"),
				file(pkiDir+"/front-proxy-ca.crt", model.FileCertificate, frontProxyCA),
				key(pkiDir+"/front-proxy-ca.key", "front-proxy"),
			},
			Manifests: []model.Manifest{
				{Path: "/etc/kubernetes/manifests/kube-apiserver.yaml", Component: "kube-apiserver", Flags: []model.Flag{
					{Name: "client-ca-file", Value: pkiDir + "/ca.crt"},
					{Name: "requestheader-client-ca-file", Value: pkiDir + "/front-proxy-ca.crt"},
					{Name: "tls-cert-file", Value: pkiDir + "/apiserver.crt"},
				}},
				{Path: "/etc/kubernetes/manifests/kube-controller-manager.yaml", Component: "kube-controller-manager", Flags: []model.Flag{
					{Name: "client-ca-file", Value: pkiDir + "/ca.crt"},
					{Name: "cluster-signing-cert-file", Value: pkiDir + "/ca.crt"},
					{Name: "cluster-signing-key-file", Value: pkiDir + "/ca.key"},
					{Name: "root-ca-file", Value: pkiDir + "/ca.crt"},
				}},
			},
			Kubeconfigs: []model.Kubeconfig{{Path: "/etc/kubernetes/admin.conf", Role: "admin", Cluster: "kubernetes", User: "kubernetes-admin",
				CACerts: []model.Cert{clusterCA}, ClientCert: &adminCrt}},
			Kubelet: &model.Kubelet{ConfigPath: "/var/lib/kubelet/config.yaml", ClientCAFile: pkiDir + "/ca.crt", RotateCertificates: true},
		}},
		CAs: []model.CA{
			{Kind: model.ClusterCA, Cert: clusterCA, References: []model.Location{{Node: "cp-1", Path: pkiDir + "/ca.crt"}}},
			{Kind: model.FrontProxyCA, Cert: frontProxyCA, References: []model.Location{{Node: "cp-1", Path: pkiDir + "/front-proxy-ca.crt"}}},
			{Kind: model.ServiceAccountCA, Cert: model.Cert{SPKISHA256: "sa"}},
		},
		API: model.API{
			RootCAConfigMaps: []model.CABundle{{Location: model.Location{Object: "ConfigMap default/kube-root-ca.crt", Field: "data[ca.crt]"}, Certs: []model.Cert{clusterCA}}},
			ClusterInfo:      &model.CABundle{Location: model.Location{Object: "ConfigMap kube-public/cluster-info", Field: "data[kubeconfig]"}, Certs: []model.Cert{clusterCA}},
			ClientCA:         &model.CABundle{Location: model.Location{Object: "ConfigMap kube-system/extension-apiserver-authentication", Field: "data[client-ca-file]"}, Certs: []model.Cert{clusterCA}},
			APIServices:      []model.APIService{{Name: "v1.", Local: true, Available: true}},
		},
	}
}

var signingShared = Finding{ID: "signing-file-shared", Severity: Info,
	Subject: "cp-1:/etc/kubernetes/pki/ca.crt (kube-controller-manager --cluster-signing-cert-file)"}

func node0(c *model.Cluster) *model.Node { return &c.Nodes[0] }

func setFile(c *model.Cluster, f model.File) {
	n := node0(c)
	for i := range n.Files {
		if n.Files[i].Path == f.Path {
			n.Files[i] = f
			return
		}
	}
	n.Files = append(n.Files, f)
}

func TestRun(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *model.Cluster)
		opts   Options
		want   []Finding // Message and Action are checked for presence only
	}{
		{name: "healthy cluster", want: []Finding{signingShared}},
		{
			name: "unreachable node",
			mutate: func(c *model.Cluster) {
				n := node0(c)
				n.Reachable, n.Error, n.Files, n.Manifests = false, "host key unknown", nil, nil
			},
			want: []Finding{{ID: "node-unreachable", Severity: Blocking, Subject: "node cp-1"}},
		},
		{
			name:   "not ready node",
			mutate: func(c *model.Cluster) { node0(c).Ready = false },
			want:   []Finding{{ID: "node-not-ready", Severity: Blocking, Subject: "node cp-1"}, signingShared},
		},
		{
			name: "skipped node",
			mutate: func(c *model.Cluster) {
				c.Nodes = append(c.Nodes, model.Node{Name: "win-1", Ready: true, Skipped: true})
			},
			want: []Finding{{ID: "node-skipped", Severity: Warning, Subject: "node win-1"}, signingShared},
		},
		{
			name: "node warning and unparsable file",
			mutate: func(c *model.Cluster) {
				n := node0(c)
				n.Warnings = []string{"cannot read clock"}
				n.Files[0].ParseError = "not PEM"
			},
			want: []Finding{{ID: "node-warning", Severity: Warning, Subject: "node cp-1"},
				{ID: "file-unreadable", Severity: Warning, Subject: "cp-1:/etc/kubernetes/pki/apiserver.crt"}, signingShared},
		},
		{
			name:   "clock skew beyond the default bound",
			mutate: func(c *model.Cluster) { node0(c).ClockOffset = -61 * time.Second },
			want:   []Finding{{ID: "clock-skew", Severity: Blocking, Subject: "node cp-1"}, signingShared},
		},
		{
			name:   "clock skew within a wider bound",
			mutate: func(c *model.Cluster) { node0(c).ClockOffset = 2 * time.Minute },
			opts:   Options{MaxClockSkew: 3 * time.Minute},
			want:   []Finding{signingShared},
		},
		{
			name:   "CA expiring within the threshold",
			mutate: func(c *model.Cluster) { c.CAs[0].Cert.NotAfter = now.Add(30 * 24 * time.Hour) },
			want:   []Finding{{ID: "ca-expiring", Severity: Warning, Subject: "cluster CA (CN=kubernetes) at cp-1:/etc/kubernetes/pki/ca.crt"}, signingShared},
		},
		{
			name:   "CA expiring outside a shorter threshold",
			mutate: func(c *model.Cluster) { c.CAs[0].Cert.NotAfter = now.Add(30 * 24 * time.Hour) },
			opts:   Options{ExpiryThreshold: 7 * 24 * time.Hour},
			want:   []Finding{signingShared},
		},
		{
			name:   "CA expired",
			mutate: func(c *model.Cluster) { c.CAs[1].Cert.NotAfter = now.Add(-time.Hour) },
			want:   []Finding{{ID: "ca-expired", Severity: Blocking, Subject: "front-proxy CA (CN=front-proxy-ca) at cp-1:/etc/kubernetes/pki/front-proxy-ca.crt"}, signingShared},
		},
		{
			name:   "leaf in the PKI directory expiring",
			mutate: func(c *model.Cluster) { node0(c).Files[0].Certs[0].NotAfter = now.Add(10 * 24 * time.Hour) },
			want:   []Finding{{ID: "cert-expiring", Severity: Warning, Subject: "cp-1:/etc/kubernetes/pki/apiserver.crt"}, signingShared},
		},
		{
			name: "embedded kubeconfig client certificate expired",
			mutate: func(c *model.Cluster) {
				expired := cert("CN=kubernetes-admin", "admin", false, -time.Hour)
				node0(c).Kubeconfigs[0].ClientCert = &expired
			},
			want: []Finding{{ID: "cert-expired", Severity: Blocking, Subject: "cp-1:/etc/kubernetes/admin.conf users[kubernetes-admin].client-certificate-data"}, signingShared},
		},
		{
			name: "expired kubelet client certificate the kubelet rotated away from is ignored",
			mutate: func(c *model.Cluster) {
				setFile(c, model.File{Path: "/var/lib/kubelet/pki/kubelet-client-2024-01-01.pem", Kind: model.FileCertAndKey, Mode: 0o600,
					Certs: []model.Cert{cert("CN=system:node:cp-1", "k1", false, -year)}})
			},
			want: []Finding{signingShared},
		},
		{
			name: "expired kubelet client certificate in use",
			mutate: func(c *model.Cluster) {
				setFile(c, model.File{Path: "/var/lib/kubelet/pki/kubelet-client-current.pem", Kind: model.FileCertAndKey, Mode: 0o600,
					Certs: []model.Cert{cert("CN=system:node:cp-1", "k1", false, -time.Hour)}})
				node0(c).Kubeconfigs = append(node0(c).Kubeconfigs, model.Kubeconfig{Path: "/etc/kubernetes/kubelet.conf", Role: "kubelet",
					ClientCertFile: "/var/lib/kubelet/pki/kubelet-client-current.pem", CACerts: []model.Cert{clusterCA}})
			},
			want: []Finding{{ID: "cert-expired", Severity: Blocking, Subject: "cp-1:/var/lib/kubelet/pki/kubelet-client-current.pem"}, signingShared},
		},
		{
			name: "ca.crt is a bundle (also KCM's signing file)",
			mutate: func(c *model.Cluster) {
				setFile(c, model.File{Path: pkiDir + "/ca.crt", Kind: model.FileBundle, Certs: []model.Cert{clusterCA, oldClusterCA}})
			},
			want: []Finding{
				{ID: "ca-file-not-single", Severity: Blocking, Subject: "cp-1:/etc/kubernetes/pki/ca.crt"},
				{ID: "signing-file-not-single", Severity: Blocking, Subject: "cp-1:/etc/kubernetes/pki/ca.crt (kube-controller-manager --cluster-signing-cert-file)"},
			},
		},
		{
			name: "ca.crt does not match ca.key",
			mutate: func(c *model.Cluster) {
				setFile(c, model.File{Path: pkiDir + "/ca.key", Kind: model.FileKey, Mode: 0o600, KeySPKISHA256: "other"})
			},
			want: []Finding{
				{ID: "ca-key-mismatch", Severity: Blocking, Subject: "cp-1:/etc/kubernetes/pki/ca.crt"},
				{ID: "signing-key-mismatch", Severity: Blocking, Subject: "cp-1:/etc/kubernetes/pki/ca.crt (kube-controller-manager --cluster-signing-cert-file)"},
				signingShared,
			},
		},
		{
			name: "front-proxy-ca.crt does not match its key",
			mutate: func(c *model.Cluster) {
				setFile(c, model.File{Path: pkiDir + "/front-proxy-ca.key", Kind: model.FileKey, Mode: 0o600, KeySPKISHA256: "other"})
			},
			want: []Finding{{ID: "ca-key-mismatch", Severity: Blocking, Subject: "cp-1:/etc/kubernetes/pki/front-proxy-ca.crt"}, signingShared},
		},
		{
			name: "worker: ca.crt without key is fine",
			mutate: func(c *model.Cluster) {
				n := node0(c)
				n.Files = []model.File{{Path: pkiDir + "/ca.crt", Kind: model.FileCertificate, Mode: 0o644, Certs: []model.Cert{clusterCA}}}
				n.Manifests = nil
			},
		},
		{
			name: "signing file separate from a root-ca bundle (mid-rotation) and missing signing key",
			mutate: func(c *model.Cluster) {
				m := &node0(c).Manifests[1]
				m.Flags = []model.Flag{
					{Name: "cluster-signing-cert-file", Value: "/etc/kubernetes/carotate/signing.crt"},
					{Name: "cluster-signing-key-file", Value: "/etc/kubernetes/carotate/signing.key"},
					{Name: "root-ca-file", Value: pkiDir + "/root-bundle.crt"},
				}
				setFile(c, model.File{Path: "/etc/kubernetes/carotate/signing.crt", Kind: model.FileCertificate, Certs: []model.Cert{clusterCA}})
				setFile(c, model.File{Path: pkiDir + "/root-bundle.crt", Kind: model.FileBundle, Certs: []model.Cert{clusterCA, oldClusterCA}})
			},
			want: []Finding{
				{ID: "signing-key-missing", Severity: Blocking, Subject: "cp-1:/etc/kubernetes/carotate/signing.crt (kube-controller-manager --cluster-signing-cert-file)"},
				{ID: "trust-file-bundle", Severity: Blocking, Subject: "cp-1:/etc/kubernetes/pki/root-bundle.crt (kube-controller-manager --root-ca-file)"},
			},
		},
		{
			name:   "signing file missing",
			mutate: func(c *model.Cluster) { node0(c).Manifests[1].Flags[1].Value = pkiDir + "/gone.crt" },
			want:   []Finding{{ID: "signing-file-missing", Severity: Blocking, Subject: "cp-1:/etc/kubernetes/pki/gone.crt (kube-controller-manager --cluster-signing-cert-file)"}},
		},
		{
			name: "kube-apiserver verifies kubelets with the cluster CA",
			mutate: func(c *model.Cluster) {
				m := &node0(c).Manifests[0]
				m.Flags = append(m.Flags, model.Flag{Name: "kubelet-certificate-authority", Value: pkiDir + "/ca.crt"})
			},
			want: []Finding{{ID: "kubelet-serving-verified", Severity: Blocking,
				Subject: "cp-1:/etc/kubernetes/manifests/kube-apiserver.yaml (kube-apiserver --kubelet-certificate-authority=/etc/kubernetes/pki/ca.crt)"}, signingShared},
		},
		{
			name: "kube-apiserver verifies kubelets with a CA of their own",
			mutate: func(c *model.Cluster) {
				m := &node0(c).Manifests[0]
				m.Flags = append(m.Flags, model.Flag{Name: "kubelet-certificate-authority", Value: pkiDir + "/kubelet-ca.crt"})
				setFile(c, model.File{Path: pkiDir + "/kubelet-ca.crt", Kind: model.FileCertificate, Certs: []model.Cert{cert("CN=kubelet-ca", "kubelet-ca", true, 9*year)}})
			},
			want: []Finding{signingShared},
		},
		{
			name: "cloud-controller-manager static pod reads a copy of the cluster CA",
			mutate: func(c *model.Cluster) {
				n := node0(c)
				n.Manifests = append(n.Manifests, model.Manifest{Path: "/etc/kubernetes/manifests/cloud-controller-manager.yaml", Component: "cloud-controller-manager",
					Flags: []model.Flag{{Name: "root-ca-file", Value: "/etc/ccm/ca.crt"}, {Name: "kubeconfig", Value: "/etc/kubernetes/ccm.conf"}}})
				setFile(c, model.File{Path: "/etc/ccm/ca.crt", Kind: model.FileCertificate, Certs: []model.Cert{clusterCA}})
			},
			want: []Finding{{ID: "cloud-controller-manager-trust", Severity: Blocking,
				Subject: "cp-1:/etc/kubernetes/manifests/cloud-controller-manager.yaml (cloud-controller-manager --root-ca-file=/etc/ccm/ca.crt)"}, signingShared},
		},
		{
			name: "webhook caBundle still carries the retired cluster CA",
			mutate: func(c *model.Cluster) {
				retired := cert("CN=kubernetes", "retired", true, 8*year)
				c.API.RetiredCAs = []model.RetiredCA{{Kind: model.ClusterCA, SPKISHA256: retired.SPKISHA256}}
				c.API.CABundles = append(c.API.CABundles,
					model.CABundle{Location: model.Location{Object: "ValidatingWebhookConfiguration policy", Field: "webhooks[check.example].clientConfig.caBundle"},
						Certs: []model.Cert{clusterCA, retired}},
					model.CABundle{Location: model.Location{Object: "APIService v1.example.com", Field: "spec.caBundle"},
						Certs: []model.Cert{cert("CN=example-ca", "example", true, 8*year)}})
			},
			want: []Finding{
				{ID: "cabundle-rotates-along", Severity: Warning, Subject: "ValidatingWebhookConfiguration policy webhooks[check.example].clientConfig.caBundle"},
				{ID: "cabundle-retired-ca", Severity: Warning, Subject: "ValidatingWebhookConfiguration policy webhooks[check.example].clientConfig.caBundle"},
				signingShared},
		},
		{
			name: "stray manifest",
			mutate: func(c *model.Cluster) {
				node0(c).StrayManifests = []string{"/etc/kubernetes/manifests/kube-apiserver.yaml.bak"}
			},
			want: []Finding{{ID: "stray-manifest", Severity: Blocking, Subject: "cp-1:/etc/kubernetes/manifests/kube-apiserver.yaml.bak"}, signingShared},
		},
		{
			name: "key readable by group and by others",
			mutate: func(c *model.Cluster) {
				node0(c).Files[2].Mode = 0o640
				node0(c).Files[4].Mode = 0o644
			},
			want: []Finding{
				{ID: "key-permissions", Severity: Warning, Subject: "cp-1:/etc/kubernetes/pki/ca.key"},
				{ID: "key-permissions", Severity: Warning, Subject: "cp-1:/etc/kubernetes/pki/front-proxy-ca.key"}, signingShared},
		},
		{
			name: "rotation lock held",
			mutate: func(c *model.Cluster) {
				c.API.Lock = &model.Lock{Holder: "carotate@admin-host", Acquired: now.Add(-time.Hour), RenewedAt: now}
			},
			want: []Finding{{ID: "rotation-locked", Severity: Blocking, Subject: "Lease kube-system/carotate-rotation-lock"}, signingShared},
		},
		{
			name: "kube-root-ca.crt, cluster-info and a kubeconfig hold two CAs",
			mutate: func(c *model.Cluster) {
				c.API.RootCAConfigMaps[0].Certs = []model.Cert{clusterCA, oldClusterCA}
				c.API.ClusterInfo.Certs = []model.Cert{clusterCA, oldClusterCA}
				node0(c).Kubeconfigs[0].CACerts = []model.Cert{clusterCA, oldClusterCA}
			},
			want: []Finding{
				{ID: "root-ca-bundle", Severity: Blocking, Subject: "ConfigMap */kube-root-ca.crt"},
				{ID: "cluster-info-bundle", Severity: Blocking, Subject: "ConfigMap kube-public/cluster-info data[kubeconfig]"},
				{ID: "kubeconfig-ca-bundle", Severity: Blocking, Subject: "cp-1:/etc/kubernetes/admin.conf clusters[kubernetes].certificate-authority-data"},
				signingShared,
			},
		},
		{
			name: "a re-signed copy of the same CA is not a bundle of two CAs",
			mutate: func(c *model.Cluster) {
				resigned := clusterCA
				resigned.SHA256 = "resigned"
				c.API.RootCAConfigMaps[0].Certs = []model.Cert{clusterCA, resigned}
			},
			want: []Finding{signingShared},
		},
		{
			name: "namespaces without kube-root-ca.crt, old CA kept by extension-apiserver-authentication",
			mutate: func(c *model.Cluster) {
				c.API.NamespacesWithoutRootCA = []string{"a", "b", "c", "d"}
				c.API.ClientCA.Certs = []model.Cert{clusterCA, oldClusterCA}
			},
			want: []Finding{
				{ID: "root-ca-missing", Severity: Warning, Subject: "ConfigMap */kube-root-ca.crt"},
				{ID: "delegated-ca-bundle", Severity: Warning, Subject: "ConfigMap kube-system/extension-apiserver-authentication data[client-ca-file]"}, signingShared},
		},
		{
			name: "unavailable APIService",
			mutate: func(c *model.Cluster) {
				c.API.APIServices = append(c.API.APIServices, model.APIService{Name: "v1beta1.metrics.k8s.io", Message: "failing or missing response"})
			},
			want: []Finding{{ID: "apiservice-unavailable", Severity: Blocking, Subject: "APIService v1beta1.metrics.k8s.io"}, signingShared},
		},
		{
			name: "webhook and APIService caBundles carrying cluster and front-proxy CAs; others not",
			mutate: func(c *model.Cluster) {
				c.API.CABundles = []model.CABundle{
					{Location: model.Location{Object: "APIService v1beta1.metrics.k8s.io", Field: "spec.caBundle"}, Certs: []model.Cert{frontProxyCA}},
					{Location: model.Location{Object: "MutatingWebhookConfiguration injector", Field: "webhooks[a].clientConfig.caBundle"}, Certs: []model.Cert{clusterCA, clusterCA}},
					{Location: model.Location{Object: "ValidatingWebhookConfiguration policy", Field: "webhooks[b].clientConfig.caBundle"}, Certs: []model.Cert{cert("CN=webhook", "webhook", true, year)}},
					{Location: model.Location{Object: "CustomResourceDefinition w.example.com", Field: "spec.conversion.webhook.clientConfig.caBundle"}, Error: "not PEM"},
				}
			},
			want: []Finding{
				{ID: "cabundle-rotates-along", Severity: Warning, Subject: "APIService v1beta1.metrics.k8s.io spec.caBundle"},
				{ID: "cabundle-rotates-along", Severity: Warning, Subject: "MutatingWebhookConfiguration injector webhooks[a].clientConfig.caBundle"},
				{ID: "api-object-unreadable", Severity: Warning, Subject: "CustomResourceDefinition w.example.com spec.conversion.webhook.clientConfig.caBundle"}, signingShared},
		},
		{
			name:   "kubeadm-config unreadable",
			mutate: func(c *model.Cluster) { c.API.KubeadmConfig = &model.KubeadmConfig{Error: "does not parse"} },
			want:   []Finding{{ID: "api-object-unreadable", Severity: Warning, Subject: "ConfigMap kube-system/kubeadm-config"}, signingShared},
		},
		{
			name: "legacy token Secret",
			mutate: func(c *model.Cluster) {
				c.API.LegacyTokenSecrets = []model.CABundle{{Location: model.Location{Object: "Secret default/old-token", Field: "data[ca.crt]"}, Certs: []model.Cert{clusterCA}}}
			},
			want: []Finding{{ID: "legacy-token-secret", Severity: Warning, Subject: "Secret default/old-token data[ca.crt]"}, signingShared},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := healthy()
			if tt.mutate != nil {
				tt.mutate(&c)
			}
			got := Run(c, tt.opts)
			for _, f := range got {
				if f.Message == "" || f.Action == "" {
					t.Errorf("finding %s on %s lacks a message or an action: %+v", f.ID, f.Subject, f)
				}
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Finding{}, "Message", "Action"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMessages pins the full wording of a few findings, since operators
// act on them.
func TestMessages(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *model.Cluster)
		check  func(model.Cluster, Options) []Finding
		want   []Finding
	}{
		{
			name: "signing file holding a bundle names the shared flags",
			mutate: func(c *model.Cluster) {
				setFile(c, model.File{Path: pkiDir + "/ca.crt", Kind: model.FileBundle, Certs: []model.Cert{clusterCA, oldClusterCA}})
			},
			check: SigningFiles,
			want: []Finding{{ID: "signing-file-not-single", Severity: Blocking,
				Subject: "cp-1:/etc/kubernetes/pki/ca.crt (kube-controller-manager --cluster-signing-cert-file)",
				Message: "holds 2 certificates; kube-controller-manager needs exactly one (kubeadm#1350); it is the same file as --root-ca-file and --client-ca-file, which is why a trust bundle ended up here",
				Action:  "point --cluster-signing-cert-file and --cluster-signing-key-file at a single-certificate copy of the signing CA and its key, or finish the rotation in progress (carotate status)"}},
		},
		{
			name:   "clock skew",
			mutate: func(c *model.Cluster) { node0(c).ClockOffset = 90*time.Second + 4*time.Millisecond },
			check:  ClockSkew,
			want: []Finding{{ID: "clock-skew", Severity: Blocking, Subject: "node cp-1",
				Message: "its clock is 1m30.004s off ours (at most 1m0s allowed)",
				Action:  "synchronise its clock (chrony or systemd-timesyncd) and run check again"}},
		},
		{
			name:   "expiring CA",
			mutate: func(c *model.Cluster) { c.CAs[0].Cert.NotAfter = now.Add(45 * 24 * time.Hour) },
			check:  Expiry,
			want: []Finding{{ID: "ca-expiring", Severity: Warning, Subject: "cluster CA (CN=kubernetes) at cp-1:/etc/kubernetes/pki/ca.crt",
				Message: "expires on 2026-04-28, in 45 days",
				Action:  "rotate it before then (carotate rotate); it cannot be renewed in place"}},
		},
		{
			name: "many namespaces with a bundle are abbreviated",
			mutate: func(c *model.Cluster) {
				c.API.RootCAConfigMaps = nil
				for _, ns := range []string{"a", "b", "c", "d", "e"} {
					c.API.RootCAConfigMaps = append(c.API.RootCAConfigMaps, model.CABundle{
						Location: model.Location{Object: "ConfigMap " + ns + "/kube-root-ca.crt"}, Certs: []model.Cert{clusterCA, oldClusterCA}})
				}
			},
			check: RotationInProgress,
			want: []Finding{{ID: "root-ca-bundle", Severity: Blocking, Subject: "ConfigMap */kube-root-ca.crt",
				Message: "5 namespaces' kube-root-ca.crt hold more than one CA (a/kube-root-ca.crt, b/kube-root-ca.crt, c/kube-root-ca.crt and 2 more): a rotation is in its trust or switch phase",
				Action:  "finish or roll back the rotation in progress (carotate status)"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := healthy()
			tt.mutate(&c)
			got := tt.check(c, Options{}.withDefaults(c))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHasBlockingAndCount(t *testing.T) {
	tests := []struct {
		name     string
		findings []Finding
		blocking bool
		warnings int
	}{
		{name: "none"},
		{name: "info and warning", findings: []Finding{{Severity: Info}, {Severity: Warning}}, warnings: 1},
		{name: "blocking", findings: []Finding{{Severity: Warning}, {Severity: Blocking}, {Severity: Warning}}, blocking: true, warnings: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HasBlocking(tt.findings); got != tt.blocking {
				t.Errorf("HasBlocking = %v, want %v", got, tt.blocking)
			}
			if got := Count(tt.findings, Warning); got != tt.warnings {
				t.Errorf("Count(Warning) = %d, want %d", got, tt.warnings)
			}
		})
	}
}
