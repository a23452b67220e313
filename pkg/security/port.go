package security

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// InternalServerName is the TLS server name (SNI) every daemon dials with.
// A JobManager serves the job API and its internal gateway on one port
// (jobmanager.rpc.port, as Flink's CLI and TaskManagers share the
// JobManager's address); the server name is how a handshake chooses between
// the internal mutual TLS and the API's TLS before either side has shown a
// certificate. It is not a host name and is never verified as one.
const InternalServerName = "weir-internal"

// ConnKind is what a connection to a shared port was accepted as.
type ConnKind int

const (
	// ConnPlaintext: no TLS. Accepted only while one of the two services
	// of the port is plaintext, and then good for that service only.
	ConnPlaintext ConnKind = iota
	// ConnInternal: mutual TLS with a certificate of the internal CA.
	ConnInternal
	// ConnAPI: the job API's TLS (with a client certificate when
	// security.ssl.api.authentication-enabled).
	ConnAPI
)

func (k ConnKind) String() string {
	switch k {
	case ConnInternal:
		return "internal TLS"
	case ConnAPI:
		return "job API TLS"
	default:
		return "plaintext"
	}
}

// Port is the security of a listener that serves the internal gateway and
// the job API: the JobManager's. Internal and API are nil when their TLS is
// off. A connection is classified once, at its handshake:
//
//   - a first byte that does not start a TLS handshake is plaintext, refused
//     outright (closed before anything is read or served) when both services
//     use TLS;
//   - a TLS handshake with server name InternalServerName gets the internal
//     mutual TLS, any other the API's TLS; with only one of the two on, every
//     TLS handshake gets that one.
//
// Calls are then authorized per service with Authorize: an internal method
// needs a ConnInternal connection whenever internal TLS is on, an API
// method a TLS connection whenever API TLS is on.
type Port struct {
	Internal, API *TLS
	log           *zap.Logger
}

// NewPort returns the security of a shared port; log receives refused
// handshakes (nil discards).
func NewPort(internal, api *TLS, log *zap.Logger) *Port {
	if log == nil {
		log = zap.NewNop()
	}
	return &Port{Internal: internal, API: api, log: log}
}

// Credentials are the gRPC server's transport credentials of the port.
func (p *Port) Credentials() credentials.TransportCredentials {
	if p.Internal == nil && p.API == nil {
		return insecure.NewCredentials()
	}
	// The h2 of gRPC must be in the per-handshake configs too: the config
	// GetConfigForClient returns replaces this one entirely.
	h2 := []string{"h2"}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: h2,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if p.Internal != nil && (p.API == nil || hello.ServerName == InternalServerName) {
				return p.Internal.handshakeConfig(h2), nil
			}
			return p.API.handshakeConfig(h2), nil
		}}
	return &portCreds{TransportCredentials: credentials.NewTLS(cfg), p: p}
}

// Kind classifies the connection of a call (peer.FromContext), consistently
// with the handshake that accepted it.
func (p *Port) Kind(pr *peer.Peer) ConnKind {
	if pr == nil {
		return ConnPlaintext
	}
	info, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return ConnPlaintext
	}
	if p.Internal != nil && (p.API == nil || info.State.ServerName == InternalServerName) {
		return ConnInternal
	}
	return ConnAPI
}

// Rejection reasons of Authorize, for metrics labels.
const (
	RejectNotInternal = "not_internal" // an internal method over another kind of connection
	RejectNotTLS      = "not_tls"      // an API method over plaintext while the API uses TLS
)

// Authorize decides whether a call of an internal (gateway) or API method
// may run on a connection of kind k. It returns the refusal reason (a
// Reject* constant) and a PermissionDenied status naming what is required,
// or "" and nil.
func (p *Port) Authorize(k ConnKind, internal bool, method string) (reason string, err error) {
	switch {
	case internal && p.Internal != nil && k != ConnInternal:
		return RejectNotInternal, status.Errorf(codes.PermissionDenied,
			"%s is a call between weir daemons and needs internal TLS (security.ssl.internal.enabled): refused over %s", method, k)
	case !internal && p.API != nil && k == ConnPlaintext:
		// Not reached through Credentials, which refuse plaintext when
		// the API uses TLS; kept so that the rule stands on its own.
		return RejectNotTLS, status.Errorf(codes.PermissionDenied,
			"%s needs TLS (security.ssl.api.enabled): refused over plaintext", method)
	}
	return "", nil
}

// portCreds sniffs the first byte of a connection to tell TLS from
// plaintext, then hands TLS to gRPC's own TLS credentials.
type portCreds struct {
	credentials.TransportCredentials
	p *Port
}

// tlsHandshakeRecord is the first byte of every TLS connection: the record
// type of a ClientHello.
const tlsHandshakeRecord = 0x16

func (c *portCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	// gRPC sets the connection's deadline (its connection timeout) before
	// the handshake, so this read cannot hang on a silent peer.
	var first [1]byte
	if _, err := io.ReadFull(conn, first[:]); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("connection from %s closed before its first byte: %w", conn.RemoteAddr(), err)
	}
	pc := &prefixConn{Conn: conn, prefix: first[:]}
	if first[0] != tlsHandshakeRecord {
		if c.p.Internal != nil && c.p.API != nil {
			_ = conn.Close()
			err := errors.New("first record does not look like a TLS handshake: plaintext connections are refused " +
				"(security.ssl.internal.enabled and security.ssl.api.enabled)")
			c.p.log.Warn("TLS handshake refused", zap.Stringer("peer", conn.RemoteAddr()), zap.Error(err))
			return nil, nil, err
		}
		return pc, plaintextInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
	}
	out, info, err := c.TransportCredentials.ServerHandshake(pc)
	if err != nil {
		c.p.log.Warn("TLS handshake refused", zap.Stringer("peer", conn.RemoteAddr()), zap.Error(err))
	}
	return out, info, err
}

func (c *portCreds) Clone() credentials.TransportCredentials {
	return &portCreds{TransportCredentials: c.TransportCredentials.Clone(), p: c.p}
}

// plaintextInfo is the AuthInfo of a plaintext connection to a port that
// also speaks TLS.
type plaintextInfo struct{ credentials.CommonAuthInfo }

func (plaintextInfo) AuthType() string { return "insecure" }

// prefixConn replays the bytes read to classify a connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
