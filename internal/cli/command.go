package cli

import (
	"errors"
	"fmt"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// splitCommand reads a command flag's value (--kubelet-restart-command,
// --kubelet-log-command) as one POSIX shell command: words split on
// blanks, with '…', "…" and backslashes quoting as a shell's do. Nothing
// is expanded, because carotate runs the words as they are, on another
// machine: a $VAR, $(…), `…`, ~, glob, redirection or second command is
// refused, naming the flag.
func splitCommand(flag, s string) ([]string, error) {
	bad := func(why string) error {
		return fmt.Errorf("--%s %q: %s; give one command whose words are plain or quoted, as `sh -c` would split them", flag, s, why)
	}
	f, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(s), "")
	if err != nil {
		return nil, bad(err.Error())
	}
	if len(f.Stmts) == 0 {
		return nil, bad("it is empty")
	}
	if len(f.Stmts) > 1 {
		return nil, bad("it holds more than one command")
	}
	st := f.Stmts[0]
	call, ok := st.Cmd.(*syntax.CallExpr)
	switch {
	case !ok || st.Negated || st.Background || st.Coprocess:
		return nil, bad("it is not a simple command (no pipes, lists, && or ||)")
	case len(st.Redirs) > 0:
		return nil, bad("it redirects (< > are not run)")
	case len(call.Assigns) > 0:
		return nil, bad("it assigns a variable (VAR=… is not run)")
	}
	argv := make([]string, 0, len(call.Args))
	for _, w := range call.Args {
		if err := literalWord(w); err != nil {
			return nil, bad(err.Error())
		}
		// Nothing left to expand, and no ReadDir: no globbing. This is
		// quote removal only.
		v, err := expand.Fields(&expand.Config{}, w)
		if err != nil {
			return nil, bad(err.Error())
		}
		argv = append(argv, v...)
	}
	return argv, nil
}

// literalWord refuses every part of w that a shell would expand.
func literalWord(w *syntax.Word) error {
	for i, p := range w.Parts {
		switch p := p.(type) {
		case *syntax.Lit:
			if i == 0 && strings.HasPrefix(p.Value, "~") {
				return errors.New("it starts a word with ~, which is not expanded: give the path")
			}
			if strings.ContainsAny(p.Value, "*?[") {
				return fmt.Errorf("%q would be a glob, which is not expanded: quote it", p.Value)
			}
		case *syntax.SglQuoted:
			if p.Dollar {
				return errors.New("$'…' quoting is not POSIX")
			}
		case *syntax.DblQuoted:
			for _, q := range p.Parts {
				if _, ok := q.(*syntax.Lit); !ok {
					return errors.New("it expands something inside double quotes ($VAR, $(…) or `…`), which is not run: write the value, or use single quotes")
				}
			}
		default:
			return errors.New("it expands something ($VAR, $(…), `…` or $((…))), which is not run: write the value itself")
		}
	}
	return nil
}
