package ha

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/security"
)

// TLS to etcd (high-availability.etcd.tls.*).
//
// etcd is a server weir does not ship: the operator's, possibly managed or
// older, so the minimum is TLS 1.2 (every etcd since 3.0 speaks it), where
// weir's own connections require 1.3 (package security). The server's
// certificate is verified as HTTPS does, host name included, against
// high-availability.etcd.tls.ca or the system roots. The files are loaded
// (and checked) by EtcdConfigFrom, at the start of a daemon or of the CLI,
// through package security: a broken file stops the start with an error
// naming the key and the file, and the client certificate is reloaded when
// its files change, as weir's own are.
//
// A request to an etcd whose handshakes fail only waits for a connection
// until its context ends, and gRPC tells no more than "context deadline
// exceeded". So the store's transport credentials keep the last handshake
// failure of each endpoint (forgotten when a handshake succeeds), the
// errors of requests that timed out or found no connection say it, and a
// new failure is logged once.

// etcdTLSFrom builds the TLS to etcd from cfg: nil when it is off.
func etcdTLSFrom(cfg *config.Config, eps []string, log *zap.Logger) (*tls.Config, security.Files, error) {
	f := security.Files{
		Cert: cfg.String(config.HighAvailabilityEtcdTLSCert), Key: cfg.String(config.HighAvailabilityEtcdTLSKey),
		CA:      cfg.String(config.HighAvailabilityEtcdTLSCA),
		CertKey: config.HighAvailabilityEtcdTLSCert.Key, KeyKey: config.HighAvailabilityEtcdTLSKey.Key, CAKey: config.HighAvailabilityEtcdTLSCA.Key,
	}
	on := cfg.Bool(config.HighAvailabilityEtcdTLSEnabled)
	for _, ep := range eps {
		on = on || endpointScheme(ep) == "https"
	}
	if !on {
		// Files set for a plaintext connection: the operator believes
		// etcd's traffic is encrypted.
		for _, p := range []struct{ key, path string }{{f.CertKey, f.Cert}, {f.KeyKey, f.Key}, {f.CAKey, f.CA}} {
			if p.path != "" {
				return nil, security.Files{}, fmt.Errorf("%s is set but TLS to etcd is off: set %s: true or use https:// endpoints in %s",
					p.key, config.HighAvailabilityEtcdTLSEnabled.Key, config.HighAvailabilityEtcdEndpoints.Key)
			}
		}
		return nil, security.Files{}, nil
	}
	if log == nil {
		log = zap.NewNop()
	}
	t, err := security.NewAPIClient(f, security.Options{CheckInterval: security.DefaultCheckInterval, Log: log.Named("etcd-tls")})
	if err != nil {
		return nil, security.Files{}, err
	}
	// A client's TLS with host name verification and an optional client
	// certificate is what the job API's client needs too; only the
	// minimum version differs (see above).
	c := t.ClientConfig()
	c.MinVersion = tls.VersionTLS12
	return c, f, nil
}

// endpointScheme returns the lower-case scheme of an etcd endpoint, "" for
// host:port.
func endpointScheme(ep string) string {
	scheme, _, ok := strings.Cut(ep, "://")
	if !ok {
		return ""
	}
	return strings.ToLower(scheme)
}

// checkEndpoints refuses what etcd's client would silently do otherwise:
// it picks TLS or plaintext for all endpoints by the first one's scheme,
// and drops TLS for an http:// endpoint.
func checkEndpoints(eps []string, withTLS bool) error {
	var plain, secure string
	for _, ep := range eps {
		switch endpointScheme(ep) {
		case "":
		case "http":
			if plain == "" {
				plain = ep
			}
		case "https":
			if secure == "" {
				secure = ep
			}
		default:
			return fmt.Errorf("ha: etcd: %s: %q: want host:port, http://host:port or https://host:port",
				config.HighAvailabilityEtcdEndpoints.Key, ep)
		}
	}
	switch {
	case plain != "" && secure != "":
		return fmt.Errorf("ha: etcd: %s mixes http:// and https:// endpoints (%s, %s): use one or the other",
			config.HighAvailabilityEtcdEndpoints.Key, plain, secure)
	case plain != "" && withTLS:
		return fmt.Errorf("ha: etcd: %s: %s is plaintext but %s is true: use https:// or host:port",
			config.HighAvailabilityEtcdEndpoints.Key, plain, config.HighAvailabilityEtcdTLSEnabled.Key)
	}
	return nil
}

// maxHandshakeRecords bounds the endpoints whose failures are kept: the
// client dials only the configured endpoints, so this is never reached
// in practice.
const maxHandshakeRecords = 64

// handshakes keeps the last TLS handshake failure of each etcd endpoint.
type handshakes struct {
	files security.Files // for hints; zero when TLS was not built from a configuration
	log   *zap.Logger

	mu     sync.Mutex
	failed map[string]error // by endpoint (the gRPC authority)
}

func (h *handshakes) record(endpoint string, err error) {
	// The log line is written under the lock, so that whoever reads a
	// failure (explain) finds it logged. Only handshakes wait for it.
	h.mu.Lock()
	defer h.mu.Unlock()
	prev, had := h.failed[endpoint]
	switch {
	case err == nil:
		delete(h.failed, endpoint)
	case had || len(h.failed) < maxHandshakeRecords:
		h.failed[endpoint] = err
	}
	switch {
	case err != nil && (!had || prev.Error() != err.Error()):
		h.log.Warn("TLS handshake with etcd failed", zap.String("endpoint", endpoint), zap.String("reason", h.reason(err)))
	case err == nil && had:
		h.log.Info("TLS handshake with etcd succeeded again", zap.String("endpoint", endpoint))
	}
}

// explain returns why the handshakes with etcd fail, "" when none did
// since its last success.
func (h *handshakes) explain() string {
	h.mu.Lock()
	eps := make([]string, 0, len(h.failed))
	for ep := range h.failed {
		eps = append(eps, ep)
	}
	sort.Strings(eps)
	parts := make([]string, 0, len(eps))
	for _, ep := range eps {
		parts = append(parts, fmt.Sprintf("TLS handshake with etcd at %s failed: %s", ep, h.reason(h.failed[ep])))
	}
	h.mu.Unlock()
	return strings.Join(parts, "; ")
}

// reason is err with what to look at in weir's configuration.
func (h *handshakes) reason(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
	)
	ca := h.files.CAKey
	if ca == "" {
		ca = config.HighAvailabilityEtcdTLSCA.Key
	}
	msg := err.Error()
	switch {
	case errors.As(err, &unknown) && h.files.CA != "":
		msg += fmt.Sprintf(" (etcd's certificate %q, issuer %q, is not signed by %s %s)",
			unknown.Cert.Subject.String(), unknown.Cert.Issuer.String(), ca, h.files.CA)
	case errors.As(err, &unknown):
		msg += fmt.Sprintf(" (etcd's certificate %q, issuer %q, is not signed by a CA of the system roots: set %s)",
			unknown.Cert.Subject.String(), unknown.Cert.Issuer.String(), ca)
	case errors.As(err, &hostname):
		msg += fmt.Sprintf(" (name the endpoint in %s as etcd's certificate does)", config.HighAvailabilityEtcdEndpoints.Key)
	case errors.As(err, &invalid):
		msg += fmt.Sprintf(" (etcd's certificate %q)", invalid.Cert.Subject.String())
	case errors.As(err, &record), errors.Is(err, io.EOF):
		// A plaintext etcd closes the connection on a ClientHello.
		msg += " (does etcd serve TLS there? It needs --cert-file, --key-file and https:// in --listen-client-urls)"
	}
	return msg
}

// recordingCreds are gRPC's TLS credentials, recording each handshake's
// outcome in h.
type recordingCreds struct {
	credentials.TransportCredentials
	h *handshakes
}

func (c *recordingCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err == nil || ctx.Err() == nil { // a handshake cut short by its context tells nothing
		c.h.record(authority, err)
	}
	return conn, info, err
}

func (c *recordingCreds) Clone() credentials.TransportCredentials {
	return &recordingCreds{TransportCredentials: c.TransportCredentials.Clone(), h: c.h}
}

// etcdTLSError is the failure of a request to etcd while the TLS
// handshakes with etcd fail: the request's error, and why they fail.
type etcdTLSError struct {
	err error
	why string
}

func (e *etcdTLSError) Error() string { return e.err.Error() + "; " + e.why }
func (e *etcdTLSError) Unwrap() error { return e.err }

// NoAnswerReason is why the request got no answer, for a caller that
// reports the timeout in its own words (the CLI).
func (e *etcdTLSError) NoAnswerReason() string { return e.why }

// explain adds to err, the error of a request to etcd, why the TLS
// handshakes with etcd fail, if the request waited for a connection and
// they do.
func (e *Etcd) explain(err error) error {
	if e.handshakes == nil || err == nil {
		return err
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && status.Code(err) != codes.Unavailable {
		return err
	}
	why := e.handshakes.explain()
	if why == "" {
		return err
	}
	return &etcdTLSError{err: err, why: why}
}
