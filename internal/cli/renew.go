package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/carotate/carotate/internal/model"
	"github.com/carotate/carotate/internal/pki"
	"github.com/carotate/carotate/internal/rotation"
)

// RenewOptions is `carotate renew`: a new certificate for each chosen CA
// over its key and subject, distributed beside the old one; finalize
// then removes the old one. It is rotate's runbook with the same keys, so
// it has rotate's plan, backup, lock, resume and rollback.
type RenewOptions struct {
	rotationOptions
	ChangeFlags
	KubeletLogCommand string
	Until             string
	Validity          string
	Leaves            bool
	Reason            string
}

// maxReason bounds --reason, which is kept in the record and the Events.
const maxReason = 200

// NewRenewOptions returns the defaults.
func NewRenewOptions(streams IOStreams) *RenewOptions {
	return &RenewOptions{rotationOptions: newRotationOptions(streams), ChangeFlags: newChangeFlags(), KubeletLogCommand: defaultKubeletLog, Validity: "10y"}
}

func newRenewCommand(env Env) *cobra.Command {
	return newCommand(env, "renew", "Renew the cluster and front-proxy CA certificates: the same keys and subjects, a new validity",
		"renew gives each CA a new certificate over its key and subject, for when it nears its end. Every certificate\n"+
			"the CA signed still verifies, so nothing else is reissued, and kube-apiserver is not restarted. The old\n"+
			"certificate stays beside the renewed one until `carotate finalize`. Renewal keeps the key: after a leak,\n"+
			"run `carotate rotate` instead. Rerun renew to resume after a crash.",
		NewRenewOptions(env.streams()))
}

// AddFlags registers the flags.
func (o *RenewOptions) AddFlags(f *pflag.FlagSet) {
	o.rotationOptions.AddFlags(f)
	o.ChangeFlags.AddFlags(f)
	addKubeletLogFlag(f, &o.KubeletLogCommand)
	f.StringVar(&o.Until, "until", o.Until, "stop after this phase (prepare, trust or switch); rerun renew to continue")
	f.StringVar(&o.Validity, "validity", o.Validity, "how long the renewed certificates are valid from now: years (10y), days (365d) or a duration (8760h); at most 10y for an RSA-2048 key, 20y for stronger keys")
	f.BoolVar(&o.Leaves, "leaves", o.Leaves, "also reissue the leaves carotate manages (the apiserver's certificates with their keys, kubeconfig and kubelet client certificates with new keys) from the renewed CAs; this restarts what rotate's switch restarts")
	f.StringVar(&o.Reason, "reason", o.Reason, "why, kept in the rotation record and the Events (one line, at most 200 characters)")
}

// Validate refuses flag values that cannot work, before anything is read.
func (o *RenewOptions) Validate() error {
	errs := []error{validateUntil(o.Until)}
	if _, err := parseValidity(o.Validity); err != nil {
		errs = append(errs, err)
	}
	if len(o.Reason) > maxReason || strings.ContainsAny(o.Reason, "\r\n") {
		errs = append(errs, fmt.Errorf("--reason: give one line of at most %d characters (got %d)", maxReason, len(o.Reason)))
	}
	_, logCmd := splitCommand("kubelet-log-command", o.KubeletLogCommand)
	errs = append(errs, logCmd)
	return o.ChangeFlags.validate(&o.rotationOptions, errors.Join(errs...))
}

// Run resumes the renewal in progress, or starts one.
func (o *RenewOptions) Run(ctx context.Context) error {
	req := rotation.Request{Command: rotation.Renew, Reason: o.Reason}
	if o.Until != "" {
		req.Until, _ = rotation.RotateUntil(o.Until) // checked by Validate
	}
	set := o.ChangeFlags.settings()
	set.kubeletLog, set.renewLeaves = o.KubeletLogCommand, o.Leaves
	set.validity, _ = parseValidity(o.Validity) // checked by Validate
	return o.run(ctx, req, set, o.ForceUnlock, func(ctx context.Context, s *session, sel rotation.Selection) error {
		return s.mutate(ctx, sel, o.ChangeFlags)
	})
}

// parseValidity reads --validity: "10y" (365-day years), "365d", or a Go
// duration such as "8760h".
func parseValidity(v string) (time.Duration, error) {
	const day = 24 * time.Hour
	bad := fmt.Errorf("--validity %q: give years (10y), days (365d) or hours (8760h)", v)
	var d time.Duration
	switch {
	case strings.HasSuffix(v, "y"), strings.HasSuffix(v, "d"):
		n, err := strconv.Atoi(v[:len(v)-1])
		per := day
		if strings.HasSuffix(v, "y") {
			per = 365 * day
		}
		if err != nil || n <= 0 || time.Duration(n) > 100*365*day/per {
			return 0, bad
		}
		d = time.Duration(n) * per
	default:
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			return 0, bad
		}
	}
	if d < day {
		return 0, fmt.Errorf("--validity %q is less than a day; a renewed CA certificate is meant to last years", v)
	}
	return d, nil
}

// what a rotation is called in what carotate prints.
func (s *session) what() string {
	if s.lc.Record.Renew {
		return "renewal"
	}
	return "rotation"
}

// renewalNote says, above a renewal's plan, what it does and what it is
// not, and when the certificates it replaces end.
func (s *session) renewalNote() {
	out, m := s.o.Out, s.rot.M
	fmt.Fprintf(out, "Renewal keeps each CA's key and subject and gives it a new certificate; it is no answer to a leaked key (run `carotate rotate` for that).\n")
	if r := s.lc.Record.Reason; r != "" {
		fmt.Fprintf(out, "Reason: %s\n", r)
	}
	for _, k := range caKindsOf(m.Old) {
		o, n := m.Old[k].Cert, m.New[k].Cert
		fmt.Fprintf(out, "  %s CA %q: valid until %s, renewed until %s (serial %s).\n", k, o.Subject.CommonName,
			o.NotAfter.UTC().Format(time.DateOnly), n.NotAfter.UTC().Format(time.DateOnly), n.SerialNumber.Text(16))
	}
	if len(m.Leaves) == 0 {
		fmt.Fprintf(out, "Every certificate these CAs signed still verifies, and is kept: no leaf, kubeconfig client certificate or CA key changes, and kube-apiserver is not restarted.\n")
	} else {
		fmt.Fprintf(out, "--leaves: the leaves carotate manages are reissued from the renewed CAs at switch, as rotate does.\n")
	}
	fmt.Fprintf(out, "A pod that read kube-root-ca.crt only when it started keeps the old certificate until it restarts; restart it before %s.\n",
		m.Old[model.ClusterCA].Cert.NotAfter.UTC().Format(time.DateOnly))
}

// renewFinished says where a renewal stands after the phases ran.
func (s *session) renewFinished(out io.Writer, res rotation.Result, took time.Duration) {
	id := s.lc.Record.RotationID
	switch res.State {
	case rotation.RolledBack:
		fmt.Fprintf(out, "Rolled back renewal %s in %s: every bundle holds the old CA certificates again. The backup stays in %s.\n", id, took, s.rot.Store.BackupPath())
	case rotation.Completed:
		fmt.Fprintf(out, "Finalized renewal %s in %s. Every bundle holds only the renewed CA certificates (the keys are unchanged, and so is the discovery token CA cert hash, %s).\nThe backup stays in %s until you remove it.\n",
			id, took, pki.DiscoveryHash(s.rot.M.New[model.ClusterCA].Cert), s.rot.Store.BackupPath())
	case rotation.SwitchDone:
		fmt.Fprintf(out, "Renewal %s has switched in %s: every bundle holds the renewed CA certificates beside the old ones.\nWhen you are ready, run: carotate finalize\n", id, took)
	default:
		fmt.Fprintf(out, "Renewal %s stopped after %s as asked (%s). Run `carotate renew` to go on, or `carotate rollback`.\n", id, res.State, took)
	}
}

// caKindsOf are the kinds of a CA map in a stable order.
func caKindsOf(cas map[model.CAKind]*pki.CA) []model.CAKind {
	return slices.Sorted(maps.Keys(cas))
}
