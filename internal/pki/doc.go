// Package pki holds carotate's certificate logic: generating and importing
// certificate authorities, parsing PEM, building trust bundles, reissuing
// leaf certificates from the certificates they replace, fingerprints, and
// lint checks for everything we mint.
//
// The package is pure on purpose. It never reads files, talks to the network
// or looks at the clock: callers pass bytes, a source name to put in errors,
// and the current time. That keeps every decision testable and lets the same
// code serve plan, dry-run and apply.
//
// Private keys travel as PrivateKey, which redacts itself wherever Go might
// print or serialise it. The only way to get key material out is
// PrivateKey.MarshalPEM, so a leak has to be written on purpose.
package pki
