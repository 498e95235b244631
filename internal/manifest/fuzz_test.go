package manifest

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		scheduler, "", "null", "- a", "apiVersion: v1\nkind: Pod\n",
		"apiVersion: v1\nkind: Pod\nspec:\n  containers: [{name: c, command: [x, --a, b, --c=d, -v, '--']}]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "manifest fuzz.yaml: ") {
				t.Fatalf("error does not name its source or match ErrInvalid: %v", err)
			}
			return
		}
		c := m.Pod.Spec.Containers[m.Container]
		for _, fl := range m.Flags {
			argv := c.Command
			if fl.Field == "args" {
				argv = c.Args
			}
			if fl.Index >= len(argv) || !strings.HasPrefix(argv[fl.Index], "-") {
				t.Fatalf("flag %+v does not point at a flag in %q", fl, argv)
			}
		}
	})
}
