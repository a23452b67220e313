// Package security gives every weir listener and dialer its TLS: the internal
// mutual TLS between daemons (security.ssl.internal.*) and the TLS of the job
// API (security.ssl.api.*), as *tls.Config values, gRPC transport credentials
// and data-plane listener/dial helpers built from one set of PEM files.
//
// # What it owns
//
// A TLS value owns the certificate, key and CA pool loaded from the files its
// Files name, and reloads them when the files change: every handshake asks
// for the current material (GetCertificate, GetClientCertificate and the peer
// verification in VerifyConnection), and at most once per CheckInterval one
// handshake re-reads the files. Nothing else of weir reads these files.
//
// # Invariants
//
//   - Loading at start is strict: a missing, unreadable, oversized or non-PEM
//     file, a key that does not match its certificate or an expired
//     certificate is an error naming the config key, the file and the reason.
//     A daemon that cannot prove its identity does not start.
//   - Reloading never makes things worse: files that fail to load (a rotation
//     caught half-written, a corrupt file, an expired certificate) leave the
//     previous certificate, key and CA in use; the failure is logged once per
//     distinct content and retried when the files change again.
//   - Key material never appears in an error or a log line: only paths,
//     subjects, serial numbers and dates do.
//   - The package starts no goroutine: reloading happens inside handshakes,
//     outside any lock a handshake waits on (one handshake re-reads the files
//     while the others keep using the current material).
//   - Internal peers are verified against the internal CA only, not against a
//     host name (see NewInternal); the API client verifies the server's host
//     name as HTTPS does.
//   - TLS 1.3 is the minimum everywhere: every party is a weir binary (or a
//     current curl/openssl), and 1.3 has no cipher-suite choices to get wrong.
//
// # Use
//
// A daemon builds its TLS once at start (InternalFromConfig,
// APIServerFromConfig; nil when the feature is off) and hands out
// ServerCredentials/ClientCredentials to gRPC, Listener/ServerHandshake and
// Dial to the data plane; handlers read the caller's certificate with
// PeerIdentity. The CLI uses APIClientFromConfig and ExplainAPIError. Tests
// make certificates with package securitytest.
package security
