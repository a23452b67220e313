package jobmanager

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/internal/calltoken"
	"github.com/weirstream/weir/pkg/internal/leaderepoch"
	"github.com/weirstream/weir/proto/weirpb"
)

// taskExecutor is the JobManager's client of one TaskManager registration.
// Its goroutine sends the queued calls one at a time, in order, so that a
// CancelTask or ReleaseJob never overtakes an earlier SubmitTask.
type taskExecutor struct {
	id       string
	instance uint64
	conn     *grpc.ClientConn
	client   weirpb.TaskExecutorGatewayClient
	timeout  time.Duration // per call

	ctx    context.Context // canceled by stop: aborts the call in flight
	cancel context.CancelFunc

	mu    sync.Mutex
	queue []func(ctx context.Context)
	wake  chan struct{} // capacity 1: "the queue is not empty"
}

// newTaskExecutor returns the client of one TaskManager registration.
// Every call carries the leader epoch that epoch returns when it is sent
// (leaderepoch: the TaskManager rejects an epoch below the highest it has
// seen); nil, or an epoch of 0, sends none (standalone: nothing to fence).
// A call for which mayCall (if set) returns an error fails with it, unsent:
// a fenced JobManager sends nothing. Every call carries token, the
// registration's call token (package calltoken).
func newTaskExecutor(id string, instance uint64, addr string, timeout time.Duration, epoch func() int64, mayCall func() error,
	creds credentials.TransportCredentials, token string) (*taskExecutor, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	chain := []grpc.UnaryClientInterceptor{calltoken.UnaryClientInterceptor(token)}
	if mayCall != nil {
		chain = append(chain, func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if err := mayCall(); err != nil {
				return err
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		})
	}
	if epoch != nil {
		chain = append(chain, leaderepoch.UnaryClientInterceptor(epoch))
	}
	opts = append(opts, grpc.WithChainUnaryInterceptor(chain...))
	// grpc.NewClient does not connect; the first call does, and calls wait
	// for the connection, so a TaskManager that is still starting its
	// server gets its tasks once it listens.
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &taskExecutor{
		id: id, instance: instance, conn: conn, client: weirpb.NewTaskExecutorGatewayClient(conn), timeout: timeout,
		ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1),
	}, nil
}

// enqueue adds a call; it never blocks.
func (te *taskExecutor) enqueue(call func(ctx context.Context)) {
	te.mu.Lock()
	te.queue = append(te.queue, call)
	te.mu.Unlock()
	select {
	case te.wake <- struct{}{}:
	default:
	}
}

// stop drops the queued calls and aborts the one in flight; run returns soon after.
func (te *taskExecutor) stop() { te.cancel() }

func (te *taskExecutor) run() {
	defer te.conn.Close()
	for {
		select {
		case <-te.ctx.Done():
			return
		case <-te.wake:
		}
		te.mu.Lock()
		calls := te.queue
		te.queue = nil
		te.mu.Unlock()
		for _, call := range calls {
			if te.ctx.Err() != nil {
				return
			}
			ctx, cancel := context.WithTimeout(te.ctx, te.timeout)
			call(ctx)
			cancel()
		}
	}
}

// statusMessage is the message of a gRPC error without the "rpc error: code
// = ... desc =" wrapping, for messages users read.
func statusMessage(err error) string {
	return status.Convert(err).Message()
}
