package jobmanager

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/security"
	"github.com/weirstream/weir/proto/weirpb"
)

// Transport security of the JobManager's port (jobmanager.rpc.port), which
// serves the job API (JobService, the CLI) and the internal gateway
// (JobManagerGateway, the TaskManagers), as Flink's JobManager address is
// both the CLI's and the TaskManagers'. security.Port classifies each
// connection at its handshake (internal TLS, API TLS, plaintext); the
// authorize interceptors then refuse an internal call over anything but
// internal TLS, and an API call over plaintext, whenever the respective
// TLS is on. Refusals are counted in weir_jobmanager_rejected_calls_total
// with the reasons of security.Authorize.

// handshakeTimeout bounds a connection's TLS handshake (and HTTP/2
// preface): gRPC's default, 120 s, would let silent connections pile up.
const handshakeTimeout = 20 * time.Second

// newTransport loads the TLS of both services from cfg; nil ones are off.
// A file that cannot be used fails the start, naming the key and file.
func newTransport(cfg *config.Config, log *zap.Logger) (*security.Port, error) {
	internal, err := security.InternalFromConfig(cfg, log)
	if err != nil {
		return nil, err
	}
	api, err := security.APIServerFromConfig(cfg, log)
	if err != nil {
		return nil, err
	}
	return security.NewPort(internal, api, log), nil
}

var (
	gatewayPrefix = "/" + weirpb.JobManagerGateway_ServiceDesc.ServiceName + "/"
	healthPrefix  = "/" + healthpb.Health_ServiceDesc.ServiceName + "/"
)

// authorize decides a call by the kind of its connection. Health checks
// are open to all (load balancers, probes); reflection counts as API.
func (jm *JobManager) authorize(ctx context.Context, fullMethod string) error {
	if strings.HasPrefix(fullMethod, healthPrefix) {
		return nil
	}
	internal := strings.HasPrefix(fullMethod, gatewayPrefix)
	method := fullMethod[strings.LastIndexByte(fullMethod, '/')+1:]
	p, _ := peer.FromContext(ctx)
	reason, err := jm.port.Authorize(jm.port.Kind(p), internal, method)
	if err == nil {
		return nil
	}
	addr := "unknown address"
	if p != nil && p.Addr != nil {
		addr = p.Addr.String()
	}
	jm.metrics.rejectedCall(method, reason)
	if n, ok := jm.rejectLog.allow(time.Now()); ok {
		jm.log.Warn("refused a call over the wrong kind of connection", zap.String("method", method), zap.String("reason", reason),
			zap.String("caller", addr), zap.Error(err), zap.Int("suppressed_before", n))
	}
	return err
}

func (jm *JobManager) authorizeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := jm.authorize(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (jm *JobManager) authorizeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := jm.authorize(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// maxCallTokenLength bounds the token a registration carries
// (calltoken.New makes 26 characters).
const maxCallTokenLength = 128

func checkCallToken(tmID, token string) error {
	switch {
	case token == "":
		return fmt.Errorf("register TaskManager %s: call_token is empty", tmID)
	case len(token) > maxCallTokenLength:
		return fmt.Errorf("register TaskManager %s: call_token is %d bytes: the limit is %d", tmID, len(token), maxCallTokenLength)
	}
	return nil
}

// internalCreds are the credentials of the JobManager's calls to
// TaskManagers: internal TLS, or plaintext when it is off.
func (jm *JobManager) internalCreds() credentials.TransportCredentials {
	if jm.port.Internal == nil {
		return insecure.NewCredentials()
	}
	return jm.port.Internal.ClientCredentials()
}
