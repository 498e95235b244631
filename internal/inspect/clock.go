package inspect

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// clock measures the node's clock minus ours: `date +%s.%N` on the node,
// compared with the midpoint of our clock around the call, so that the
// round trip does not count as skew.
func (in *inspector) clock(ctx context.Context) {
	before := in.opts.Now()
	res, err := in.ex.Run(ctx, []string{"date", "+%s.%N"}, nil)
	after := in.opts.Now()
	if err != nil {
		in.warn("cannot read the node's clock with `date +%%s.%%N`: %v", err)
		return
	}
	nodeTime, err := parseEpoch(strings.TrimSpace(string(res.Stdout)))
	if err != nil {
		in.warn("cannot read the node's clock: %v", err)
		return
	}
	mid := before.Add(after.Sub(before) / 2)
	in.node.ClockOffset = nodeTime.Sub(mid)
}

// parseEpoch reads "SECONDS.NANOSECONDS" as date(1) prints it, without
// going through a float, which would lose the nanoseconds.
func parseEpoch(s string) (time.Time, error) {
	secStr, nsStr, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secStr, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("date printed %q, not seconds.nanoseconds", s)
	}
	var ns int64
	if nsStr != "" {
		if len(nsStr) > 9 || strings.Trim(nsStr, "0123456789") != "" {
			return time.Time{}, fmt.Errorf("date printed %q, not seconds.nanoseconds (is it GNU date?)", s)
		}
		ns, _ = strconv.ParseInt(nsStr+strings.Repeat("0", 9-len(nsStr)), 10, 64)
	}
	return time.Unix(sec, ns), nil
}
