package taskmanager

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/proto/weirpb"
)

// Registration timing. The first retry comes quickly (a JobManager that is
// starting up at the same time), later ones back off to the configured
// maximum.
const (
	initialRegistrationBackoff = 500 * time.Millisecond
	registrationTimeout        = 10 * time.Second
	// Used when the JobManager sends no heartbeat settings.
	defaultHeartbeatInterval = 10 * time.Second
	defaultHeartbeatTimeout  = 50 * time.Second
)

// nextBackoff doubles the backoff up to max.
func nextBackoff(cur, max time.Duration) time.Duration {
	if cur *= 2; cur > max {
		return max
	}
	return cur
}

// heartbeatVerdict decides, from one answer of the JobManager, whether the
// registration is still valid; if not, reason says why. An answer without
// a jobmanager_id does not count as a change.
func heartbeatVerdict(registeredJM string, hb *weirpb.JobManagerHeartbeat) (ok bool, reason string) {
	switch {
	case hb.GetUnknownTaskmanager():
		return false, "the JobManager does not know this TaskManager"
	case hb.GetJobmanagerId() != "" && hb.GetJobmanagerId() != registeredJM:
		return false, fmt.Sprintf("the JobManager changed (id %q, registered with %q)", hb.GetJobmanagerId(), registeredJM)
	}
	return true, ""
}

// heartbeatSettings returns the interval and timeout the JobManager gave,
// or defaults for missing values.
func heartbeatSettings(r *weirpb.RegisterTaskManagerResponse) (interval, timeout time.Duration) {
	interval = time.Duration(r.GetHeartbeatIntervalMs()) * time.Millisecond
	timeout = time.Duration(r.GetHeartbeatTimeoutMs()) * time.Millisecond
	if interval <= 0 {
		interval = defaultHeartbeatInterval
	}
	if timeout <= 0 {
		timeout = defaultHeartbeatTimeout
	}
	return interval, timeout
}

// connectLoop registers with the JobManager and keeps the heartbeat going
// until ctx is canceled, registering again whenever the registration is
// lost.
func (tm *TaskManager) connectLoop(ctx context.Context) {
	maxBackoff := tm.cfg.Duration(config.TaskManagerRegistrationBackoffMax)
	backoff := min(initialRegistrationBackoff, maxBackoff)
	for ctx.Err() == nil {
		resp, err := tm.register(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			tm.log.Warn(fmt.Sprintf("cannot reach the JobManager at %s: retrying in %s", tm.jmAddr, backoff), zap.Error(err))
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = nextBackoff(backoff, maxBackoff)
			continue
		}
		backoff = min(initialRegistrationBackoff, maxBackoff)

		tm.log.Info("registered with the JobManager", zap.String("jobmanager", tm.jmAddr), zap.String("jobmanager_id", resp.GetJobmanagerId()))

		reason := tm.heartbeat(ctx, resp)
		if ctx.Err() != nil {
			return
		}
		// Registering again makes the JobManager fail every task it had
		// placed here, so they are canceled now, before the new
		// registration: a task the JobManager submits once it has accepted
		// the new registration must survive, and it may arrive before the
		// RegisterTaskManager answer does.
		n := tm.cancelAllTasks()
		tm.log.Warn("lost the registration with the JobManager: registering again",
			zap.String("reason", reason), zap.Int("tasks_canceled", n))
	}
}

func (tm *TaskManager) register(ctx context.Context) (*weirpb.RegisterTaskManagerResponse, error) {
	rctx, cancel := context.WithTimeout(ctx, registrationTimeout)
	defer cancel()
	return tm.jm.RegisterTaskManager(rctx, &weirpb.RegisterTaskManagerRequest{
		TaskmanagerId: tm.id,
		RpcAddress:    tm.rpcAddr,
		DataAddress:   tm.dataAddr,
		NumSlots:      int32(tm.slots),
	})
}

// heartbeat runs the heartbeat stream of one registration and returns why
// it ended ("" when ctx was canceled).
func (tm *TaskManager) heartbeat(ctx context.Context, reg *weirpb.RegisterTaskManagerResponse) string {
	interval, timeout := heartbeatSettings(reg)
	hctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	stream, err := tm.jm.Heartbeat(hctx)
	if err != nil {
		return fmt.Sprintf("open heartbeat stream: %v", err)
	}
	lost := make(chan string, 1)
	answered := make(chan struct{}, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			hb, err := stream.Recv()
			if err != nil {
				lost <- fmt.Sprintf("heartbeat stream: %v", err)
				return
			}
			if ok, reason := heartbeatVerdict(reg.GetJobmanagerId(), hb); !ok {
				lost <- reason
				return
			}
			select {
			case answered <- struct{}{}:
			default:
			}
		}
	}()

	tick := time.NewTicker(interval)
	defer tick.Stop()
	lastAnswer := time.Now()
	send := func() string {
		err := stream.Send(&weirpb.TaskManagerHeartbeat{TaskmanagerId: tm.id, Tasks: tm.runningTasks()})
		if err != nil {
			// The receiving goroutine reports the stream's real error.
			select {
			case r := <-lost:
				return r
			case <-time.After(time.Second):
				return fmt.Sprintf("send heartbeat: %v", err)
			}
		}
		return ""
	}
	if r := send(); r != "" {
		return r
	}
	for {
		select {
		case <-ctx.Done():
			return ""
		case r := <-lost:
			return r
		case <-answered:
			lastAnswer = time.Now()
		case <-tick.C:
			if since := time.Since(lastAnswer); since > timeout {
				return fmt.Sprintf("no heartbeat answer for %s", since.Round(time.Millisecond))
			}
			if r := send(); r != "" {
				return r
			}
		}
	}
}
