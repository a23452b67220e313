package jobmanager

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/security"
)

// TaskManager identity: what a call that names a TaskManager must come
// from.
//
// A TaskManager's registration is bound to the identity of the connection
// it registered over. Heartbeats, task state reports, checkpoint
// acknowledgements and declines that name a TaskManager (or an execution
// deployed on one) are accepted only from that identity; a registration
// under an id already bound to another identity is refused while the
// first registration lives (until its heartbeat stream closes or its
// heartbeat times out), so that a stranger cannot evict a TaskManager.
//
// Without TLS the identity is the remote IP address, not the connection:
// gRPC reconnects, and a TaskManager reconnects from new ports (and its
// heartbeat stream, state reports and checkpoint answers may use separate
// connections), so a port or a connection cannot be what is checked. A
// TaskManager restarted on the same host re-registers under its id, as
// before. The limit of an address: processes on one host (or behind one
// NAT) are indistinguishable, and an address can be spoofed by whoever
// controls the network. Certificates (security.ssl.internal.*) close both:
// over TLS the identity is the verified certificate's subject and issuer
// instead (peerIdentity, the one place that decides), so that TaskManagers
// with certificates of their own are told apart wherever they connect from.

// peerIdentity is who a call comes from, for binding and comparing, and
// addr its address for messages. A call with no peer (never through
// gRPC's server) has identity "".
func peerIdentity(ctx context.Context) (identity, addr string) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "", "unknown address"
	}
	addr = p.Addr.String()
	if _, overTLS := p.AuthInfo.(credentials.TLSInfo); overTLS {
		// Internal TLS is mutual: the handshake verified the certificate.
		if id, err := security.PeerIdentity(p); err == nil {
			return fmt.Sprintf("certificate %q issued by %q", id.Subject, id.Issuer), addr
		}
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		// Unmap: a dual-stack listener sees ::ffff:10.0.0.1 for 10.0.0.1.
		return ap.Addr().Unmap().String(), addr
	}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host, addr
	}
	return addr, addr
}

// tmBinding is the identity a TaskManager registered from, for the
// registration (scheduler instance) it made.
type tmBinding struct {
	identity string
	instance uint64
}

// Reasons of rejected calls (label reason of
// weir_jobmanager_rejected_calls_total).
const (
	// rejectForeignPeer: the call names a TaskManager registered from
	// another identity (or, for a registration, one whose registration
	// lives).
	rejectForeignPeer = "foreign_peer"
	// rejectUnregistered: the call names a TaskManager with no live
	// registration, so there is no identity to check it against.
	rejectUnregistered = "unregistered"
)

// Gateway methods that name a TaskManager (label method).
var identityCheckedMethods = []string{"RegisterTaskManager", "Heartbeat", "UpdateTaskExecutionState", "AcknowledgeCheckpoint", "DeclineCheckpoint"}

// binding returns the live binding of a TaskManager: none once its
// registration is gone (lost, or replaced by one not yet bound). Callers
// hold jm.mu.
func (jm *JobManager) binding(tmID string) (tmBinding, bool) {
	b, ok := jm.tmPeers[tmID]
	if !ok {
		return tmBinding{}, false
	}
	if inst, reg := jm.sched.TaskManagerInstance(tmID); !reg || inst != b.instance {
		delete(jm.tmPeers, tmID)
		return tmBinding{}, false
	}
	return b, true
}

// bind records the identity of a registration just made. Bindings of
// registrations that are gone are dropped, so that the map holds at most
// the TaskManagers registered. Callers hold jm.mu.
func (jm *JobManager) bind(tmID, identity string) {
	if jm.tmPeers == nil {
		jm.tmPeers = map[string]tmBinding{}
	}
	for id := range jm.tmPeers {
		jm.binding(id)
	}
	if inst, ok := jm.sched.TaskManagerInstance(tmID); ok {
		jm.tmPeers[tmID] = tmBinding{identity: identity, instance: inst}
	}
}

// checkCaller returns nil when the call that claims TaskManager tmID comes
// from the identity it registered from, otherwise the error to answer
// (counted and logged). what says what the call is, for the message.
// Callers hold jm.mu.
func (jm *JobManager) checkCaller(method, what, tmID, identity, addr string) error {
	b, ok := jm.binding(tmID)
	if !ok {
		return jm.rejectCall(codes.FailedPrecondition, method, rejectUnregistered, tmID, addr,
			fmt.Sprintf("%s names TaskManager %q, which is not registered: refused for the caller at %s", what, tmID, addr))
	}
	if b.identity != identity {
		return jm.rejectCall(codes.PermissionDenied, method, rejectForeignPeer, tmID, addr,
			fmt.Sprintf("%s names TaskManager %q, registered from %s: refused for the caller at %s", what, tmID, b.identity, addr))
	}
	return nil
}

// rejectCall counts and logs (rate-limited) a refused call and returns its
// error.
func (jm *JobManager) rejectCall(code codes.Code, method, reason, tmID, addr, msg string) error {
	jm.metrics.rejectedCall(method, reason)
	if n, ok := jm.rejectLog.allow(time.Now()); ok {
		jm.log.Warn("refused a call that names a TaskManager", zap.String("method", method), zap.String("reason", reason),
			zap.String("taskmanager", tmID), zap.String("caller", addr), zap.String("error", msg), zap.Int("suppressed_before", n))
	}
	return status.Error(code, msg)
}

// rejectLogInterval is how often refused calls are logged at most: a
// forger (or a misconfigured TaskManager) retrying must not flood the log;
// the counter has them all.
const rejectLogInterval = time.Second

// logLimiter allows one log line per rejectLogInterval and counts those it
// suppressed. The zero value is ready.
type logLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now, and how many were suppressed since the
// last line.
func (l *logLimiter) allow(now time.Time) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < rejectLogInterval {
		l.suppressed++
		return 0, false
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return n, true
}
