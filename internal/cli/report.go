package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/carotate/carotate/internal/check"
	"github.com/carotate/carotate/internal/engine"
	"github.com/carotate/carotate/internal/model"
)

// Report is what `carotate check` prints: the observed cluster and the
// findings. --output json or yaml writes it as one document of kind
// CheckReport.
type Report struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Cluster    model.Cluster   `json:"cluster"`
	Findings   []check.Finding `json:"findings"`
	Summary    Summary         `json:"summary"`
}

// Summary counts findings by severity.
type Summary struct {
	Blocking int `json:"blocking"`
	Warning  int `json:"warning"`
	Info     int `json:"info"`
}

// NewReport puts a cluster and its findings together.
func NewReport(c model.Cluster, findings []check.Finding) Report {
	if findings == nil {
		findings = []check.Finding{}
	}
	return Report{APIVersion: engine.APIVersion, Kind: "CheckReport", Cluster: c, Findings: findings, Summary: Summary{
		Blocking: check.Count(findings, check.Blocking),
		Warning:  check.Count(findings, check.Warning),
		Info:     check.Count(findings, check.Info),
	}}
}

// writeDocument writes one document as indented JSON, or as YAML with a
// leading "---" so that several concatenate into a stream.
func writeDocument(w io.Writer, output string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if output == OutputYAML {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return err
		}
		b = append([]byte("---\n"), b...)
	} else {
		b = append(b, '\n')
	}
	_, err = w.Write(b)
	return err
}

// textWriter keeps the first write error, so that the report reads as a
// flat sequence of prints.
type textWriter struct {
	w   io.Writer
	err error
}

func (t *textWriter) printf(format string, args ...any) {
	if t.err == nil {
		_, t.err = fmt.Fprintf(t.w, format, args...)
	}
}

func (t *textWriter) table(rows [][]string) {
	if t.err != nil || len(rows) == 0 {
		return
	}
	tw := tabwriter.NewWriter(t.w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		if _, err := fmt.Fprintln(tw, "  "+strings.Join(r, "\t")); err != nil {
			t.err = err
			return
		}
	}
	t.err = tw.Flush()
}

// writeText renders the human report: CAs, then each node's certificates
// and kubeconfigs, then the findings.
func writeText(w io.Writer, r Report) error {
	t := &textWriter{w: w}
	c := r.Cluster
	now := c.ObservedAt
	names := caLabels(c.CAs)

	t.printf("Cluster observed at %s: %d node(s), %d CA(s)\n", now.UTC().Format(time.RFC3339), len(c.Nodes), len(c.CAs))
	if k := c.API.KubeadmConfig; k != nil && k.Error == "" {
		t.printf("kubeadm: %s %s, certificatesDir %s", k.ClusterName, k.KubernetesVersion, k.CertificatesDir)
		if k.ControlPlaneEndpoint != "" {
			t.printf(", endpoint %s", k.ControlPlaneEndpoint)
		}
		if k.ExternalEtcd {
			t.printf(", external etcd")
		}
		t.printf("\n")
	}

	t.printf("\nCERTIFICATE AUTHORITIES\n")
	for _, ca := range c.CAs {
		t.printf("%s  %s\n", names[ca.Cert.SPKISHA256], caSummary(ca, now))
		keyRow, refRow := "key", "referenced"
		if ca.Kind == model.ServiceAccountCA {
			// A key pair has no certificate to reference: its private key
			// signs tokens, its public key verifies them.
			keyRow, refRow = "signs with", "verifies with"
		}
		var rows [][]string
		for _, l := range ca.KeyFiles {
			rows = append(rows, []string{keyRow, check.Describe(l)})
		}
		for _, ref := range groupReferences(ca.References) {
			rows = append(rows, []string{refRow, ref})
		}
		if n := len(ca.Signed); n > 0 {
			rows = append(rows, []string{"signed", fmt.Sprintf("%d certificate(s)", n)})
		}
		t.table(rows)
	}

	t.printf("\nNODES\n")
	rows := [][]string{{"NAME", "ROLES", "ADDRESS", "READY", "INSPECTED", "CLOCK OFFSET"}}
	for _, n := range c.Nodes {
		rows = append(rows, []string{n.Name, orDash(strings.Join(n.Roles, ",")), orDash(n.InternalIP), yesNo(n.Ready), inspected(n), clock(n)})
	}
	t.table(rows)
	for _, n := range c.Nodes {
		if n.Reachable {
			writeNode(t, n, names, now)
		}
	}

	s := r.Summary
	t.printf("\nFINDINGS: %d blocking, %d warning, %d info\n", s.Blocking, s.Warning, s.Info)
	for _, f := range r.Findings {
		t.printf("%-8s  %s  %s\n", strings.ToUpper(string(f.Severity)), f.ID, f.Subject)
		t.printf("          %s\n", f.Message)
		t.printf("          action: %s\n", f.Action)
	}
	if len(r.Findings) == 0 {
		t.printf("none\n")
	}
	return t.err
}

// writeNode renders what was read on one node: its certificates, then its
// kubeconfigs.
func writeNode(t *textWriter, n model.Node, names map[string]string, now time.Time) {
	t.printf("\nnode %s: certificates\n", n.Name)
	rows := [][]string{{"FILE", "SUBJECT", "ISSUER", "EXPIRES"}}
	for _, f := range n.Files {
		for i, cert := range f.Certs {
			p := f.Path
			if len(f.Certs) > 1 {
				p += fmt.Sprintf(" [%d]", i)
			}
			rows = append(rows, []string{p, cert.Subject, issuerName(cert, names), expiry(cert.NotAfter, now)})
		}
	}
	t.table(rows)
	if len(n.Kubeconfigs) > 0 {
		t.printf("node %s: kubeconfigs\n", n.Name)
		rows := [][]string{{"KUBECONFIG", "ROLE", "TRUSTS", "CLIENT", "ISSUER", "EXPIRES"}}
		for _, kc := range n.Kubeconfigs {
			trusts := make([]string, 0, len(kc.CACerts))
			for _, ca := range kc.CACerts {
				trusts = append(trusts, certName(ca, names))
			}
			client, issuer, exp := "-", "-", "-"
			switch {
			case kc.ClientCert != nil:
				client, issuer, exp = kc.ClientCert.Subject, issuerName(*kc.ClientCert, names), expiry(kc.ClientCert.NotAfter, now)
			case kc.Token:
				client = "(token)"
			}
			rows = append(rows, []string{kc.Path, kc.Role, orDash(strings.Join(trusts, "+")), client, issuer, exp})
		}
		t.table(rows)
	}
}

// caLabels names each CA in the report: its kind, with a short key
// fingerprint when several CAs share a kind (mid-rotation: old and new).
func caLabels(cas []model.CA) map[string]string {
	perKind := map[model.CAKind]int{}
	for _, ca := range cas {
		perKind[ca.Kind]++
	}
	out := map[string]string{}
	for _, ca := range cas {
		label := string(ca.Kind) + " CA"
		if perKind[ca.Kind] > 1 {
			label += " " + short(ca.Cert.SPKISHA256)
		}
		out[ca.Cert.SPKISHA256] = label
	}
	return out
}

func short(fp string) string {
	if len(fp) > 8 {
		return fp[:8]
	}
	return fp
}

func caSummary(ca model.CA, now time.Time) string {
	if ca.Kind == model.ServiceAccountCA {
		return fmt.Sprintf("signing key pair, %s, spki sha256 %s", orDash(ca.KeyAlgorithm), ca.Cert.SPKISHA256)
	}
	return fmt.Sprintf("%s, expires %s, spki %s", ca.Cert.Subject, expiry(ca.Cert.NotAfter, now), short(ca.Cert.SPKISHA256))
}

func certName(c model.Cert, names map[string]string) string {
	if n, ok := names[c.SPKISHA256]; ok {
		return n
	}
	return c.Subject
}

func issuerName(c model.Cert, names map[string]string) string {
	switch {
	case c.IssuerSPKISHA256 != "" && c.IssuerSPKISHA256 == c.SPKISHA256:
		if n, ok := names[c.SPKISHA256]; ok {
			return n + " (self)"
		}
		return "self-signed"
	case c.IssuerSPKISHA256 != "":
		if n, ok := names[c.IssuerSPKISHA256]; ok {
			return n
		}
	}
	return "unknown: " + c.Issuer
}

func expiry(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	left := t.Sub(now)
	if left <= 0 {
		return t.UTC().Format(time.DateOnly) + " (EXPIRED)"
	}
	return fmt.Sprintf("%s (%dd)", t.UTC().Format(time.DateOnly), int(left.Hours()/24))
}

// groupReferences lists where a CA is referenced, folding the
// kube-root-ca.crt ConfigMaps (one per namespace) into one line.
func groupReferences(refs []model.Location) []string {
	var out []string
	var rootCA []string
	for _, l := range refs {
		if ns, ok := rootCANamespace(l.Object); ok {
			rootCA = append(rootCA, ns)
			continue
		}
		out = append(out, check.Describe(l))
	}
	if len(rootCA) > 0 {
		sort.Strings(rootCA)
		out = append(out, fmt.Sprintf("ConfigMap kube-root-ca.crt in %d namespace(s)", len(rootCA)))
	}
	return out
}

func rootCANamespace(object string) (string, bool) {
	rest, ok := strings.CutPrefix(object, "ConfigMap ")
	if !ok {
		return "", false
	}
	ns, ok := strings.CutSuffix(rest, "/kube-root-ca.crt")
	return ns, ok
}

func inspected(n model.Node) string {
	switch {
	case n.Skipped:
		return "skipped"
	case !n.Reachable:
		return "UNREACHABLE"
	default:
		return "yes (" + n.Executor + ")"
	}
}

func clock(n model.Node) string {
	if !n.Reachable {
		return "-"
	}
	d := n.ClockOffset.Round(time.Millisecond)
	if d >= 0 {
		return "+" + d.String()
	}
	return d.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
