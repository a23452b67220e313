package taskmanager

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/internal/calltoken"
	"github.com/weirstream/weir/proto/weirpb"
)

// Who may call a TaskManager. Its ports (taskmanager.rpc.port,
// taskmanager.data.port) serve daemons only: with security.ssl.internal.*
// both are mutual TLS with the cluster's CA, so a stranger completes no
// handshake. Beyond the transport, every TaskExecutorGateway call must
// carry the call token this TaskManager drew at start and sent in its
// registrations (package calltoken): only the JobManager it registered
// with has it. The leader fence (fencing.go) then orders the leaders that
// all had it.

// Reasons of weir_taskmanager_rejected_calls_total.
const (
	rejectNoToken    = "no_token"
	rejectWrongToken = "wrong_token"
)

// callGuard refuses TaskExecutorGateway calls without the call token.
type callGuard struct {
	token    string
	rejected *prometheus.CounterVec
	log      *zap.Logger // sampled, as the fence's
}

func newCallGuard(reg prometheus.Registerer, log *zap.Logger) (*callGuard, error) {
	g := &callGuard{
		token: calltoken.New(),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_taskmanager_rejected_calls_total",
			Help: "Calls to this TaskManager's task API refused because they did not carry the token of its registration (reason no_token or wrong_token), by method.",
		}, []string{"method", "reason"}),
		log: sampled(log),
	}
	for _, m := range weirpb.TaskExecutorGateway_ServiceDesc.Methods {
		g.rejected.WithLabelValues(m.MethodName, rejectNoToken)
		g.rejected.WithLabelValues(m.MethodName, rejectWrongToken)
	}
	if err := reg.Register(g.rejected); err != nil {
		return nil, fmt.Errorf("register taskmanager metrics: %w", err)
	}
	return g, nil
}

func (g *callGuard) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !strings.HasPrefix(info.FullMethod, gatewayPrefix) {
		return handler(ctx, req)
	}
	if err := calltoken.Check(ctx, g.token); err != nil {
		reason := rejectWrongToken
		if err == calltoken.ErrMissing {
			reason = rejectNoToken
		}
		method := strings.TrimPrefix(info.FullMethod, gatewayPrefix)
		g.rejected.WithLabelValues(method, reason).Inc()
		caller := "unknown address"
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			caller = p.Addr.String()
		}
		g.log.Warn("refused a task API call without this TaskManager's call token", zap.String("method", method),
			zap.String("reason", reason), zap.String("caller", caller))
		return nil, status.Errorf(codes.PermissionDenied, "%s refused: %v", method, err)
	}
	return handler(ctx, req)
}

// clientCreds and serverCreds are the credentials of this TaskManager's gRPC client and server:
// internal TLS, or plaintext when it is off.
func (tm *TaskManager) clientCreds() credentials.TransportCredentials {
	if tm.tls == nil {
		return insecure.NewCredentials()
	}
	return tm.tls.ClientCredentials()
}

func (tm *TaskManager) serverCreds() credentials.TransportCredentials {
	if tm.tls == nil {
		return insecure.NewCredentials()
	}
	return tm.tls.ServerCredentials()
}

// handshakeTimeout bounds a connection's TLS handshake and HTTP/2 preface
// on the gRPC server (gRPC's default is 120 s).
const handshakeTimeout = 20 * time.Second
