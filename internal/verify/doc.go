// Package verify holds the checks carotate runs between rotation phases (the
// "gates"): what each endpoint serves, which client certificates the
// apiserver accepts, whether any component logged a TLS error since the
// phase began, and whether nodes and control-plane pods are healthy.
//
// Each check gathers what it needs (a TLS handshake, an HTTP status, log
// files read through node.Executor, objects from the API) and hands it to a
// small pure function that decides. The pure parts are what the unit tests
// cover; the real behaviour against upstream components is covered by the
// end-to-end suite.
//
// Errors say where (endpoint, node, component, file), what was found, and
// what it means for the rotation. Nothing here ever handles a CA key; the
// throwaway client certificates minted for acceptance checks carry their
// own key only inside a tls.Certificate, which is never printed.
package verify
