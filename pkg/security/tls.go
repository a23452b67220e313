package security

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/weirstream/weir/pkg/config"
)

// DefaultCheckInterval is how often, at most, a handshake re-reads the files.
// Rotation is a rare, operator-driven event: a second of delay is invisible,
// and reading three small files once a second costs nothing.
const DefaultCheckInterval = time.Second

// Options are the knobs that do not come from config keys.
type Options struct {
	// CheckInterval: files are re-read at most this often; 0 re-reads on
	// every handshake (tests), negative means DefaultCheckInterval, which the
	// FromConfig helpers use.
	CheckInterval time.Duration
	// Log receives reloads and refused handshakes; nil discards.
	Log *zap.Logger
	// Now is the clock for certificate validity; nil = time.Now.
	Now func() time.Time
}

type role int

const (
	roleInternal role = iota
	roleAPIServer
	roleAPIClient
)

// TLS is one TLS identity (certificate, key, CA) with its reloading, and the
// configurations built on it. Safe for concurrent use; it holds no goroutine,
// so it needs no Close.
type TLS struct {
	files      Files
	role       role
	clientAuth bool // server side: require and verify a client certificate
	interval   time.Duration
	log        *zap.Logger
	now        func() time.Time

	cur       atomic.Pointer[material]
	nextCheck atomic.Int64 // unix nanos before which no handshake re-reads the files
	checking  sync.Mutex   // TryLock: one handshake reloads, the others go on
	failed    [sha256.Size]byte
	failedErr string
}

func newTLS(f Files, r role, clientAuth bool, o Options) (*TLS, error) {
	t := &TLS{files: f, role: r, clientAuth: clientAuth, interval: o.CheckInterval, log: o.Log, now: o.Now}
	if t.log == nil {
		t.log = zap.NewNop()
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.interval < 0 {
		t.interval = DefaultCheckInterval
	}
	m, err := load(f, t.now())
	if err != nil {
		return nil, err
	}
	t.warnValidity(m)
	t.cur.Store(m)
	t.nextCheck.Store(t.now().Add(t.interval).UnixNano())
	return t, nil
}

// NewInternal is the mutual TLS between daemons: Cert, Key and CA are
// required; both sides present their certificate and accept only a peer whose
// certificate the CA signed.
//
// Server identity is checked against the CA only, not against a host name, as
// Flink's internal SSL does by default: the internal CA is dedicated to one
// cluster, so any certificate it signed is a cluster member; daemons reach each
// other through addresses advertised at run time (IPs, container names) that a
// certificate made in advance cannot reliably list; and which member a peer is
// gets checked above TLS (PeerIdentity), where the application knows whom it
// expects. Do not make the internal CA sign anything else.
func NewInternal(f Files, o Options) (*TLS, error) {
	for _, p := range []struct{ key, path string }{{f.CertKey, f.Cert}, {f.KeyKey, f.Key}, {f.CAKey, f.CA}} {
		if p.path == "" {
			return nil, fmt.Errorf("%s is not set: internal TLS needs a certificate, its key and the CA", p.key)
		}
	}
	return newTLS(f, roleInternal, true, o)
}

// NewAPIServer is the job API's server side: Cert and Key are required; with
// authentication (security.ssl.api.authentication-enabled) a client must
// present a certificate signed by CA, which is then required too.
func NewAPIServer(f Files, authentication bool, o Options) (*TLS, error) {
	if f.Cert == "" || f.Key == "" {
		missing := f.CertKey
		if f.Cert != "" {
			missing = f.KeyKey
		}
		return nil, fmt.Errorf("%s is not set: the job API's TLS needs a certificate and its key", missing)
	}
	if authentication && f.CA == "" {
		return nil, fmt.Errorf("%s is not set: client authentication on the job API needs the CA of the clients' certificates", f.CAKey)
	}
	if !authentication {
		f.CA = "" // unused: do not fail on, or reload, a file nobody reads
	}
	return newTLS(f, roleAPIServer, authentication, o)
}

// NewAPIClient is the CLI's side of the job API: CA verifies the server (the
// system roots when unset) including its host name, as HTTPS does, since an API
// certificate may come from a CA shared with other services; Cert and Key,
// when set, are presented to a server that asks for a client certificate.
func NewAPIClient(f Files, o Options) (*TLS, error) {
	return newTLS(f, roleAPIClient, false, o)
}

// InternalFiles and APIFiles read the paths of security.ssl.internal.* and
// security.ssl.api.* from c.
func InternalFiles(c *config.Config) Files {
	return Files{
		Cert: c.String(config.SSLInternalCert), Key: c.String(config.SSLInternalKey), CA: c.String(config.SSLInternalCA),
		CertKey: config.SSLInternalCert.Key, KeyKey: config.SSLInternalKey.Key, CAKey: config.SSLInternalCA.Key,
	}
}

func APIFiles(c *config.Config) Files {
	return Files{
		Cert: c.String(config.SSLAPICert), Key: c.String(config.SSLAPIKey), CA: c.String(config.SSLAPICA),
		CertKey: config.SSLAPICert.Key, KeyKey: config.SSLAPIKey.Key, CAKey: config.SSLAPICA.Key,
	}
}

// InternalFromConfig returns the internal TLS, or nil when
// security.ssl.internal.enabled is false.
func InternalFromConfig(c *config.Config, log *zap.Logger) (*TLS, error) {
	if !c.Bool(config.SSLInternalEnabled) {
		return nil, nil
	}
	return NewInternal(InternalFiles(c), Options{CheckInterval: DefaultCheckInterval, Log: log})
}

// APIServerFromConfig returns the job API's server TLS, or nil when
// security.ssl.api.enabled is false.
func APIServerFromConfig(c *config.Config, log *zap.Logger) (*TLS, error) {
	if !c.Bool(config.SSLAPIEnabled) {
		return nil, nil
	}
	return NewAPIServer(APIFiles(c), c.Bool(config.SSLAPIAuthentication), Options{CheckInterval: DefaultCheckInterval, Log: log})
}

// APIClientFromConfig returns the CLI's TLS, or nil when
// security.ssl.api.enabled is false.
func APIClientFromConfig(c *config.Config, log *zap.Logger) (*TLS, error) {
	if !c.Bool(config.SSLAPIEnabled) {
		return nil, nil
	}
	return NewAPIClient(APIFiles(c), Options{CheckInterval: DefaultCheckInterval, Log: log})
}

// Files returns the files t was built from.
func (t *TLS) Files() Files { return t.files }

// current returns the material to use now, first re-reading the files when
// the interval has passed and no other handshake is doing it.
func (t *TLS) current() *material {
	now := t.now()
	if now.UnixNano() < t.nextCheck.Load() || !t.checking.TryLock() {
		return t.cur.Load()
	}
	defer t.checking.Unlock()
	t.nextCheck.Store(now.Add(t.interval).UnixNano())
	t.reload(now)
	return t.cur.Load()
}

// reload runs under t.checking.
func (t *TLS) reload(now time.Time) {
	old := t.cur.Load()
	d, err := digestFiles(t.files)
	if err == nil && d == old.digest {
		return
	}
	var m *material
	if err == nil {
		if d == t.failed && t.failedErr != "" {
			return // this content already failed and was logged
		}
		m, err = load(t.files, now)
		if err == nil && m.digest != d {
			// Changed again between the two reads: take the new content, the
			// next check compares against what was actually loaded.
			d = m.digest
		}
	}
	if err != nil {
		if d == t.failed && err.Error() == t.failedErr {
			return
		}
		t.failed, t.failedErr = d, err.Error()
		t.log.Warn("TLS files changed but cannot be loaded; keeping the previous certificate", zap.Error(err))
		return
	}
	t.failed, t.failedErr = [sha256.Size]byte{}, ""
	t.warnValidity(m)
	t.cur.Store(m)
	fields := []zap.Field{zap.String("cert", t.files.Cert), zap.String("ca", t.files.CA)}
	if m.leaf != nil {
		fields = append(fields, zap.String("subject", m.leaf.Subject.String()),
			zap.String("serial", m.leaf.SerialNumber.String()), zap.Time("notAfter", m.leaf.NotAfter))
	}
	t.log.Info("TLS certificate reloaded", fields...)
}

// warnValidity logs what load accepts but an operator should hear about: a
// certificate not yet valid (clock skew with the machine that made it) or
// expiring within a week.
func (t *TLS) warnValidity(m *material) {
	if m.leaf == nil {
		return
	}
	now := t.now()
	switch {
	case now.Before(m.leaf.NotBefore):
		t.log.Warn("TLS certificate is not valid yet; peers will refuse it until then",
			zap.String("key", t.files.CertKey), zap.String("file", t.files.Cert), zap.Time("notBefore", m.leaf.NotBefore))
	case m.leaf.NotAfter.Sub(now) < 7*24*time.Hour:
		t.log.Warn("TLS certificate expires soon; rotate it (the file is reloaded when it changes)",
			zap.String("key", t.files.CertKey), zap.String("file", t.files.Cert), zap.Time("notAfter", m.leaf.NotAfter))
	}
}

// verifyPeer checks the peer's chain against the current CA pool. It replaces
// crypto/tls's own verification so that a rotated CA takes effect without a
// new tls.Config, and so that the refusal names the certificate and the CA.
func (t *TLS) verifyPeer(cs tls.ConnectionState, usage x509.ExtKeyUsage) error {
	if len(cs.PeerCertificates) == 0 {
		if t.role == roleInternal || t.clientAuth {
			return errors.New("peer presented no certificate")
		}
		return nil
	}
	m := t.current()
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots: m.pool, Intermediates: inter, CurrentTime: t.now(), KeyUsages: []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return fmt.Errorf("peer certificate %q (issuer %q) refused by %s (%s): %w",
			leaf.Subject.String(), leaf.Issuer.String(), t.files.CAKey, t.files.CA, err)
	}
	return nil
}

func (t *TLS) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	m := t.current()
	if m.cert == nil {
		return nil, fmt.Errorf("%s is not set: no certificate to present", t.files.CertKey)
	}
	return m.cert, nil
}

func (t *TLS) getClientCertificate(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
	m := t.current()
	if m.cert != nil {
		if len(cri.AcceptableCAs) > 0 && cri.SupportsCertificate(m.cert) != nil {
			return nil, fmt.Errorf("the server accepts client certificates of other CAs only: %s (%s, issuer %q) would be refused",
				t.files.CertKey, t.files.Cert, m.leaf.Issuer.String())
		}
		return m.cert, nil
	}
	// Asked for a certificate without one: say so now. Sending none would
	// leave the server's refusal to arrive after the handshake (TLS 1.3),
	// where it races with the client's first write and is often lost to a
	// connection reset. weir's servers ask only when they require one.
	return nil, fmt.Errorf("the server requires a client certificate and %s is not set", t.files.CertKey)
}

// ServerConfig is the *tls.Config of a listener. Every call returns a new
// value that shares t's reloading material.
func (t *TLS) ServerConfig() *tls.Config { return t.serverConfig(nil) }

// serverConfig: nextProtos must be repeated in the per-handshake config
// (gRPC needs "h2" negotiated), as GetConfigForClient's result replaces the
// outer config entirely.
func (t *TLS) serverConfig(nextProtos []string) *tls.Config {
	if t.role == roleAPIClient {
		panic("security: ServerConfig of an API client TLS")
	}
	if !t.clientAuth {
		return t.handshakeConfig(nextProtos)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: nextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return t.handshakeConfig(nextProtos), nil }}
}

// handshakeConfig is the server side of one handshake.
//
// With client authentication, crypto/tls insists on a certificate
// (RequireAnyClientCert) and verifyPeer checks it against the CA as it is
// now. ClientCAs is only the hint sent in the CertificateRequest (the
// current CA, hence one config per handshake): a weir client checks its
// certificate against it and says plainly that the server would refuse it,
// where otherwise TLS 1.3's late refusal often reaches it as a broken pipe.
func (t *TLS) handshakeConfig(nextProtos []string) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: t.getCertificate, NextProtos: nextProtos}
	if t.clientAuth {
		c.ClientAuth = tls.RequireAnyClientCert
		c.VerifyConnection = func(cs tls.ConnectionState) error { return t.verifyPeer(cs, x509.ExtKeyUsageClientAuth) }
		c.ClientCAs = t.current().pool
	}
	return c
}

// ClientConfig is the *tls.Config of a dialer. For the API client, set
// ServerName or dial with a host name (gRPC and tls.Dialer fill it in).
func (t *TLS) ClientConfig() *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS13, GetClientCertificate: t.getClientCertificate}
	switch t.role {
	case roleInternal:
		// CA-only verification (see NewInternal): crypto/tls's host name
		// check is off and verifyPeer does the chain check. The server
		// name tells a JobManager's port that this is a daemon (Port).
		c.ServerName = InternalServerName
		c.InsecureSkipVerify = true
		c.VerifyConnection = func(cs tls.ConnectionState) error { return t.verifyPeer(cs, x509.ExtKeyUsageServerAuth) }
	case roleAPIClient:
		// Standard HTTPS verification, host name included. The CLI is short
		// lived, so the CA pool as loaded is enough.
		c.RootCAs = t.cur.Load().pool
	default:
		panic("security: ClientConfig of an API server TLS")
	}
	return c
}

// ServerCredentials are the gRPC server's transport credentials; a refused
// handshake is logged with the peer's address and the TLS reason.
func (t *TLS) ServerCredentials() credentials.TransportCredentials {
	return &loggingCreds{TransportCredentials: credentials.NewTLS(t.serverConfig([]string{"h2"})), log: t.log}
}

// ClientCredentials are a gRPC client's transport credentials.
func (t *TLS) ClientCredentials() credentials.TransportCredentials {
	return credentials.NewTLS(t.ClientConfig())
}

type loggingCreds struct {
	credentials.TransportCredentials
	log *zap.Logger
}

func (c *loggingCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		c.log.Warn("TLS handshake refused", zap.Stringer("peer", conn.RemoteAddr()), zap.Error(err))
	}
	return out, info, err
}

func (c *loggingCreds) Clone() credentials.TransportCredentials {
	return &loggingCreds{TransportCredentials: c.TransportCredentials.Clone(), log: c.log}
}

// Listener wraps a data-plane listener. crypto/tls handshakes on a
// connection's first Read or Write, so a slow peer never blocks Accept; call
// ServerHandshake first to refuse a peer before reading anything from it.
func (t *TLS) Listener(inner net.Listener) net.Listener {
	return tls.NewListener(inner, t.ServerConfig())
}

// ServerHandshake completes the server side of conn's handshake (a *tls.Conn
// from Listener, or a plain net.Conn, which is wrapped) under ctx. On failure
// it logs and returns an error naming the peer's address and the reason, and
// closes conn.
func (t *TLS) ServerHandshake(ctx context.Context, conn net.Conn) (*tls.Conn, error) {
	tc, ok := conn.(*tls.Conn)
	if !ok {
		tc = tls.Server(conn, t.ServerConfig())
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = tc.Close()
		err = fmt.Errorf("TLS handshake with %s: %w", conn.RemoteAddr(), err)
		t.log.Warn("TLS handshake refused", zap.Stringer("peer", conn.RemoteAddr()), zap.Error(err))
		return nil, err
	}
	return tc, nil
}

// Dial connects to addr and completes the handshake before returning, so that
// a refusal is the dial's error and not the first write's.
func (t *TLS) Dial(ctx context.Context, network, addr string) (*tls.Conn, error) {
	d := tls.Dialer{Config: t.ClientConfig()}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("TLS dial %s: %w", addr, err)
	}
	return c.(*tls.Conn), nil
}

// Identity is what a verified peer certificate says about its holder.
type Identity struct {
	Subject    string // RFC 2253, e.g. "CN=taskmanager-1,O=weir"
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	URIs       []string
	Serial     string
	Issuer     string
}

// ConnIdentity returns the identity of a handshaken connection's peer. The
// certificate was verified by the handshake (verifyPeer or crypto/tls), which
// is why PeerCertificates is enough even when VerifiedChains is empty.
func ConnIdentity(cs tls.ConnectionState) (Identity, error) {
	if !cs.HandshakeComplete {
		return Identity{}, errors.New("TLS handshake not complete")
	}
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, errors.New("peer presented no certificate")
	}
	c := cs.PeerCertificates[0]
	id := Identity{
		Subject: c.Subject.String(), CommonName: c.Subject.CommonName, DNSNames: c.DNSNames, IPs: c.IPAddresses,
		Serial: c.SerialNumber.String(), Issuer: c.Issuer.String(),
	}
	for _, u := range c.URIs {
		id.URIs = append(id.URIs, u.String())
	}
	return id, nil
}

// PeerIdentity returns the identity of a gRPC call's peer (peer.FromContext).
func PeerIdentity(p *peer.Peer) (Identity, error) {
	if p == nil {
		return Identity{}, errors.New("no peer in the call's context")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Identity{}, fmt.Errorf("peer %s did not connect over TLS", p.Addr)
	}
	return ConnIdentity(info.State)
}
