package taskmanager

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/taskexec"
	"github.com/weirstream/weir/pkg/taskexec/barrier"
	"github.com/weirstream/weir/proto/weirpb"
)

// Checkpoint RPCs. The JobManager's TriggerCheckpoint and notifications are
// answered at once (Ack): the work happens in the task goroutine (its
// mailbox), and the task's answer to a trigger comes later, as an
// AcknowledgeCheckpoint or DeclineCheckpoint from the task's writer
// goroutine. Messages are fenced by attempt: a notification for an attempt
// that is not the deployed one is ignored; a trigger for an attempt that is
// not running here (finished, canceled, replaced, unknown) is declined with
// CHECKPOINT_DECLINED_TASK_NOT_READY, asynchronously, so that a JobManager
// that triggers from its coordinator goroutine never waits on its own
// DeclineCheckpoint handler.

// checkpointAnswerPatience bounds the retries of one acknowledgement or
// decline while the JobManager is unreachable; past it the checkpoint has
// most likely expired.
const checkpointAnswerPatience = 10 * time.Second

// deployedAttempt returns the entry of exactly this attempt, or nil.
func (tm *TaskManager) deployedAttempt(ex *weirpb.ExecutionAttemptID) *taskEntry {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	e := tm.tasks[keyOf(ex)]
	if e == nil || e.exec.GetAttempt() != ex.GetAttempt() {
		return nil
	}
	return e
}

func (g *gateway) TriggerCheckpoint(_ context.Context, req *weirpb.TriggerCheckpointRequest) (*weirpb.Ack, error) {
	if req.GetExecution() == nil {
		return nil, status.Error(codes.InvalidArgument, "execution: missing")
	}
	if req.GetCheckpointId() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "checkpoint_id: %d is negative", req.GetCheckpointId())
	}
	tm := g.tm
	err := taskexec.ErrNotRunning
	if e := tm.deployedAttempt(req.GetExecution()); e != nil {
		err = e.task.TriggerCheckpoint(req.GetCheckpointId(), req.GetTimestampUnixMs(),
			taskexec.CheckpointOptions{Savepoint: req.GetSavepoint(), Unaligned: req.GetUnaligned(), Stop: req.GetStop(), Drain: req.GetDrain()})
	}
	if err != nil {
		tm.declineLater(&weirpb.DeclineCheckpointRequest{
			Execution:    req.GetExecution(),
			CheckpointId: req.GetCheckpointId(),
			ReasonCode:   barrier.DeclineReasonTaskNotReady,
			Message:      "task not running",
		})
	}
	return &weirpb.Ack{}, nil
}

func (g *gateway) NotifyCheckpointComplete(_ context.Context, req *weirpb.NotifyCheckpointRequest) (*weirpb.Ack, error) {
	if req.GetExecution() == nil {
		return nil, status.Error(codes.InvalidArgument, "execution: missing")
	}
	if e := g.tm.deployedAttempt(req.GetExecution()); e != nil {
		_ = e.task.NotifyCheckpointComplete(req.GetCheckpointId()) // ErrNotRunning: nothing to tell
	}
	return &weirpb.Ack{}, nil
}

func (g *gateway) NotifyCheckpointAborted(_ context.Context, req *weirpb.NotifyCheckpointRequest) (*weirpb.Ack, error) {
	if req.GetExecution() == nil {
		return nil, status.Error(codes.InvalidArgument, "execution: missing")
	}
	if e := g.tm.deployedAttempt(req.GetExecution()); e != nil {
		_ = e.task.NotifyCheckpointAborted(req.GetCheckpointId())
	}
	return &weirpb.Ack{}, nil
}

// declineLater sends a decline from a goroutine of its own (a reporter,
// stopped by Close).
func (tm *TaskManager) declineLater(req *weirpb.DeclineCheckpointRequest) {
	tm.mu.Lock()
	if tm.closed {
		tm.mu.Unlock()
		return
	}
	tm.wgReports.Add(1)
	tm.mu.Unlock()
	go func() {
		defer tm.wgReports.Done()
		r := responder{tm: tm}
		if err := r.DeclineCheckpoint(tm.reportCtx, req); err != nil {
			tm.log.Warn("cannot decline checkpoint", zap.String("task", attemptString(req.GetExecution())),
				zap.Int64("checkpoint", req.GetCheckpointId()), zap.Error(err))
		}
	}()
}

// responder is the tasks' taskexec.CheckpointResponder: the JobManager's
// gateway, with retries while it is unavailable.
type responder struct{ tm *TaskManager }

func (r responder) AcknowledgeCheckpoint(ctx context.Context, req *weirpb.AcknowledgeCheckpointRequest) error {
	return r.call(ctx, req.GetExecution(), req.GetCheckpointId(), func(ctx context.Context, jm weirpb.JobManagerGatewayClient) error {
		_, err := jm.AcknowledgeCheckpoint(ctx, req)
		return err
	})
}

func (r responder) DeclineCheckpoint(ctx context.Context, req *weirpb.DeclineCheckpointRequest) error {
	return r.call(ctx, req.GetExecution(), req.GetCheckpointId(), func(ctx context.Context, jm weirpb.JobManagerGatewayClient) error {
		_, err := jm.DeclineCheckpoint(ctx, req)
		return err
	})
}

// call retries f with backoff while the JobManager is unreachable, for up
// to checkpointAnswerPatience; ctx (the task's writer, or Close) ends it
// earlier. An answer that could not reach the leader it was first sent to
// before a new leader registered this TaskManager is dropped: it belongs
// to a checkpoint of the previous leader, which the new one aborts.
func (r responder) call(ctx context.Context, ex *weirpb.ExecutionAttemptID, checkpoint int64, f func(context.Context, weirpb.JobManagerGatewayClient) error) error {
	giveUp := time.Now().Add(checkpointAnswerPatience)
	backoff := 50 * time.Millisecond
	_, gen, _ := r.tm.reportTarget(nil, 0)
	for {
		jm, cur, _ := r.tm.reportTarget(nil, 0)
		if cur != gen {
			r.tm.log.Info("dropped a checkpoint answer for the previous JobManager leader: the new leader aborts the checkpoints that were in flight",
				zap.String("task", attemptString(ex)), zap.Int64("checkpoint", checkpoint))
			return nil
		}
		err := errNoLeader
		if jm != nil {
			cctx, cancel := context.WithTimeout(ctx, stateReportTimeout)
			err = f(cctx, jm)
			cancel()
		}
		if err == nil {
			return nil
		}
		if _, cur, _ := r.tm.reportTarget(nil, 0); cur != gen {
			continue // dropped above (the previous leader's connection may be closed)
		}
		if c := status.Code(err); (c != codes.Unavailable && c != codes.DeadlineExceeded) || time.Now().After(giveUp) {
			return err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		}
		backoff = min(2*backoff, stateReportMaxWait)
	}
}
