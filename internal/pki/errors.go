package pki

import (
	"errors"
	"strings"
)

// Reason classifies why the package refused an input, so that callers can
// decide with errors.As (or ReasonOf) instead of matching message text.
type Reason string

// Reasons for refusing an input. They are stable strings and may appear in
// machine-readable output.
const (
	ReasonEmpty            Reason = "empty"
	ReasonTooLarge         Reason = "too-large"
	ReasonNotPEM           Reason = "not-pem"
	ReasonMalformedPEM     Reason = "malformed-pem"
	ReasonTrailingData     Reason = "trailing-data"
	ReasonUnexpectedBlock  Reason = "unexpected-block"
	ReasonEncrypted        Reason = "encrypted-key"
	ReasonMalformed        Reason = "malformed"
	ReasonNoCertificate    Reason = "no-certificate"
	ReasonNoKey            Reason = "no-key"
	ReasonNotSingle        Reason = "bundle-not-single"
	ReasonMultipleKeys     Reason = "multiple-keys"
	ReasonDuplicate        Reason = "duplicate-certificate"
	ReasonUnsupportedKey   Reason = "unsupported-key"
	ReasonWeakKey          Reason = "weak-key"
	ReasonKeyMismatch      Reason = "key-mismatch"
	ReasonNotCA            Reason = "not-ca"
	ReasonNotLeaf          Reason = "not-leaf"
	ReasonNotYetValid      Reason = "not-yet-valid"
	ReasonExpired          Reason = "expired"
	ReasonExpiresTooSoon   Reason = "expires-too-soon"
	ReasonMissingSKI       Reason = "missing-subject-key-id"
	ReasonBadChain         Reason = "bad-chain"
	ReasonSubjectClash     Reason = "subject-clash"
	ReasonSameCA           Reason = "same-ca"
	ReasonVerifyFailed     Reason = "verify-failed"
	ReasonInvalidOption    Reason = "invalid-option"
	ReasonRandomnessFailed Reason = "randomness-failed"
)

// Error is the package's refusal of an input. It says what was wrong
// (Detail), where (Source: a file path, flag or object the caller named), and
// what to do (Hint), and wraps the underlying cause, if any.
type Error struct {
	// Source names where the input came from, e.g. "/etc/kubernetes/pki/ca.key".
	// It is empty when the caller did not name one.
	Source string
	// Reason classifies the refusal.
	Reason Reason
	// Detail says what was wrong, in lowercase.
	Detail string
	// Hint says what the operator can do about it; it may be empty.
	Hint string
	// Err is the underlying cause; it may be nil.
	Err error
}

// Error renders "source: detail: cause; hint", leaving out empty parts.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	b.WriteString(e.Detail)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of the first *Error in err's chain, or "" when
// err did not come from this package.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func newError(source string, reason Reason, detail, hint string, cause error) *Error {
	return &Error{Source: source, Reason: reason, Detail: detail, Hint: hint, Err: cause}
}
