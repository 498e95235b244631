package manifest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzSetFlag: SetFlag never panics, refuses only with an error that names
// the source, and what it writes parses, reads back the value, leaves the
// other flags as they were and is a fixed point.
func FuzzSetFlag(f *testing.F) {
	for _, seed := range []struct{ data, flag, value string }{
		{scheduler, "v", "4"},
		{scheduler, "bind-address", "-x"},
		{scheduler, "leader-elect", "yes"},
		{scheduler, "new", "a: b # c"},
		{twoContainers, "root-ca-file", ""},
		{flowStyle, "v", "\"q\""},
		{"apiVersion: v1\nkind: Pod\nspec:\n  containers: [{name: c, command: [x, --a, b, --c=d, -v, '--']}]\n", "a", "z"},
		{"apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: c\n    command:\n    - |\n      multi\n      line\n    - --a=1 # comment\n", "a", "2"},
	} {
		f.Add([]byte(seed.data), seed.flag, seed.value)
	}
	f.Fuzz(func(t *testing.T, data []byte, flag, value string) {
		out, changed, err := SetFlag("fuzz.yaml", data, "", flag, value)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "manifest fuzz.yaml: ") {
				t.Fatalf("error does not name its source: %v", err)
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrInvalidEdit) && !errors.Is(err, ErrConflict) {
				t.Fatalf("error matches no sentinel: %v", err)
			}
			return
		}
		before, err := Parse("fuzz.yaml", data)
		if err != nil {
			t.Fatalf("SetFlag accepted what Parse refuses: %v", err)
		}
		after, err := Parse("fuzz.yaml", out)
		if err != nil {
			t.Fatalf("output does not parse: %v\n%s", err, out)
		}
		if got, ok := after.Value(flag); !ok || got != value {
			t.Fatalf("after SetFlag(%q, %q) the flag reads %q, %v\n%s", flag, value, got, ok, out)
		}
		skip := map[string]bool{flag: true}
		if !changed && !bytes.Equal(out, data) {
			t.Fatal("unchanged, but the bytes differ")
		}
		if diff := otherFlags(before.Flags, skip); !equalFlags(diff, otherFlags(after.Flags, skip)) {
			t.Fatalf("other flags changed:\n%+v\n%+v", diff, otherFlags(after.Flags, skip))
		}
		again, changed, err := SetFlag("fuzz.yaml", out, "", flag, value)
		if err != nil || changed || !bytes.Equal(again, out) {
			t.Fatalf("second SetFlag: changed %v, err %v", changed, err)
		}
	})
}

func equalFlags(a, b []Flag) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
