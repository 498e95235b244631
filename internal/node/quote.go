package node

import (
	"errors"
	"strings"
)

// Quote returns s as exactly one word for a POSIX shell. An SSH server hands
// the command to the login shell as one string, so every argv element must
// survive that shell's parsing unchanged: spaces, quotes, $, `, \, globs and
// newlines included. Single quotes disable every expansion; a single quote
// itself is written as: close the quotes, a backslash-escaped quote, reopen.
//
// Words made only of characters that no shell treats specially are left
// bare so that commands stay readable in logs. '=' is not among them: a
// bare first word like A=b would be taken as an assignment.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if isBareWord(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func isBareWord(s string) bool {
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		case strings.ContainsRune("_-./,:@%+", r):
		default:
			return false
		}
	}
	return true
}

// shellJoin quotes argv into one command line. NUL bytes cannot be passed
// through any shell or exec, so they are refused rather than cut short.
func shellJoin(argv []string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("empty argv")
	}
	words := make([]string, len(argv))
	for i, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return "", errors.New("argument contains a NUL byte")
		}
		words[i] = Quote(a)
	}
	return strings.Join(words, " "), nil
}
