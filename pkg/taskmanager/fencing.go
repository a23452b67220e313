package taskmanager

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/internal/leaderepoch"
	"github.com/weirstream/weir/proto/weirpb"
)

// leaderFence rejects the TaskExecutorGateway calls of a JobManager that
// is no longer the leader. Every call carries its sender's leader epoch
// (package leaderepoch; none means 0, a JobManager that does not fence);
// the fence keeps the highest epoch seen and rejects a call with a lower
// one (FailedPrecondition), logs it and counts it in
// weir_taskmanager_rejected_leader_calls_total{method}. A paused leader
// that wakes up after a successor has called this TaskManager can thus
// neither deploy, cancel, release, trigger nor commit here.
//
// A call is judged when it arrives: one that passed before the first call
// of a newer epoch may still be running when that one starts. The fence
// stops what a deposed leader sends after its successor was heard, which
// is what the leader's own fencing (it stops acting once its session is
// lost) cannot cover.
//
// Other services of the TaskManager's gRPC server (health, reflection)
// are not fenced.
type leaderFence struct {
	highest  atomic.Int64
	rejected *prometheus.CounterVec
	log      *zap.Logger // sampled: a deposed leader may call in a loop
}

// gatewayPrefix is the prefix of the full method names the fence guards.
var gatewayPrefix = "/" + weirpb.TaskExecutorGateway_ServiceDesc.ServiceName + "/"

// Log sampling of rejections: per second, the first few, then one in many.
const (
	rejectLogFirst      = 5
	rejectLogThereafter = 100
)

// sampled is log for rejections: a caller may retry in a loop.
func sampled(log *zap.Logger) *zap.Logger {
	return log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, time.Second, rejectLogFirst, rejectLogThereafter)
	}))
}

func newLeaderFence(reg prometheus.Registerer, log *zap.Logger) (*leaderFence, error) {
	f := &leaderFence{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_taskmanager_rejected_leader_calls_total",
			Help: "JobManager calls rejected because their leader epoch was below the highest this TaskManager has seen, by method.",
		}, []string{"method"}),
		log: sampled(log),
	}
	// Every method at 0 from the start, so a dashboard (or a test) sees
	// the series before the first rejection.
	for _, m := range weirpb.TaskExecutorGateway_ServiceDesc.Methods {
		f.rejected.WithLabelValues(m.MethodName)
	}
	if err := reg.Register(f.rejected); err != nil {
		return nil, fmt.Errorf("register taskmanager metrics: %w", err)
	}
	return f, nil
}

// admit records a call's epoch. It reports whether the call may run, and
// the highest epoch seen (including this one when admitted).
func (f *leaderFence) admit(epoch int64) (highest int64, ok bool) {
	for {
		cur := f.highest.Load()
		switch {
		case epoch < cur:
			return cur, false
		case epoch == cur || f.highest.CompareAndSwap(cur, epoch):
			return epoch, true
		}
	}
}

// unary is the server interceptor of the TaskManager's gRPC server.
func (f *leaderFence) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !strings.HasPrefix(info.FullMethod, gatewayPrefix) {
		return handler(ctx, req)
	}
	epoch, err := leaderepoch.FromIncomingContext(ctx)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if highest, ok := f.admit(epoch); !ok {
		method := strings.TrimPrefix(info.FullMethod, gatewayPrefix)
		f.rejected.WithLabelValues(method).Inc()
		f.log.Warn("rejected a call of a JobManager that is no longer the leader",
			zap.String("method", method), zap.Int64("epoch", epoch), zap.Int64("highest_epoch", highest))
		return nil, status.Errorf(codes.FailedPrecondition,
			"%s with leader epoch %d rejected: this TaskManager has seen leader epoch %d; the caller is no longer the JobManager leader",
			method, epoch, highest)
	}
	return handler(ctx, req)
}

// LeaderEpoch returns the highest JobManager leader epoch this TaskManager
// has seen (0: none, or only JobManagers that do not fence).
func (tm *TaskManager) LeaderEpoch() int64 { return tm.fence.highest.Load() }
