package jobmanager

import (
	"context"
	"fmt"
	"net"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/coordinator"
	"github.com/weirstream/weir/pkg/scheduler"
	"github.com/weirstream/weir/proto/weirpb"
)

// Limits on what a TaskManager's messages leave in the JobManager's memory.
// gRPC bounds each message (maxRecvMsgSize), but a job keeps a failure per
// subtask and 100 in its exception history, and 100 checkpoints' failure
// messages: unclipped, a few failing tasks could pin gigabytes.
const (
	// maxMessageLength bounds a task's failure and a decline's reason: 16
	// KiB, room for an error chain and a goroutine's stack.
	maxMessageLength = 16 << 10
	// maxTaskManagerIDLength bounds a TaskManager's id (host:port-suffix).
	maxTaskManagerIDLength = 256
	// maxReportedTasks bounds the tasks one TaskManager reports when it
	// registers: the subtasks of every job of the cluster at most.
	maxReportedTasks = 100_000
)

// clip cuts s to at most n bytes, on a rune boundary, saying how much was cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d more bytes cut)", s[:cut], len(s)-cut)
}

// gateway implements weirpb.JobManagerGateway, called by TaskManagers.
type gateway struct {
	weirpb.UnimplementedJobManagerGatewayServer
	jm *JobManager
}

func (g *gateway) RegisterTaskManager(ctx context.Context, req *weirpb.RegisterTaskManagerRequest) (*weirpb.RegisterTaskManagerResponse, error) {
	switch {
	case req.TaskmanagerId == "":
		return nil, status.Error(codes.InvalidArgument, "register TaskManager: taskmanager_id is empty")
	case len(req.TaskmanagerId) > maxTaskManagerIDLength:
		return nil, status.Errorf(codes.InvalidArgument, "register TaskManager: taskmanager_id is %d bytes: the limit is %d", len(req.TaskmanagerId), maxTaskManagerIDLength)
	case len(req.Tasks) > maxReportedTasks:
		return nil, status.Errorf(codes.InvalidArgument, "register TaskManager %s: it reports %d tasks: the limit is %d", req.TaskmanagerId, len(req.Tasks), maxReportedTasks)
	case req.NumSlots < 1:
		return nil, status.Errorf(codes.InvalidArgument, "register TaskManager %s: num_slots must be >= 1, is %d", req.TaskmanagerId, req.NumSlots)
	}
	if err := checkCallToken(req.TaskmanagerId, req.CallToken); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	for _, a := range []struct{ name, addr string }{{"rpc_address", req.RpcAddress}, {"data_address", req.DataAddress}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "register TaskManager %s: %s %q: want host:port", req.TaskmanagerId, a.name, a.addr)
		}
	}
	jm := g.jm
	identity, addr := peerIdentity(ctx)
	jm.mu.Lock()
	// An id bound to another identity stays with the TaskManager that
	// holds it until its registration is lost: a stranger must not evict
	// it (identity.go). The same host may: a restarted TaskManager.
	if b, live := jm.binding(req.TaskmanagerId); live && b.identity != identity {
		jm.mu.Unlock()
		return nil, jm.rejectCall(codes.PermissionDenied, "RegisterTaskManager", rejectForeignPeer, req.TaskmanagerId, addr,
			fmt.Sprintf("register TaskManager %s: it is registered from %s, and that registration is not lost: refused for the caller at %s", req.TaskmanagerId, b.identity, addr))
	}
	jm.log.Info("TaskManager registered", zap.String("taskmanager", req.TaskmanagerId), zap.String("rpc_address", req.RpcAddress),
		zap.String("data_address", req.DataAddress), zap.Int32("slots", req.NumSlots), zap.String("caller", addr))
	jm.stepLocked(scheduler.TaskManagerRegistered{ID: req.TaskmanagerId, RPCAddress: req.RpcAddress, DataAddress: req.DataAddress, Slots: int(req.NumSlots), CallToken: req.CallToken})
	jm.bind(req.TaskmanagerId, identity)
	// What runs there: for the recovery of a new leader to adopt, or, of
	// a former execution, to cancel.
	if !jm.reportTasks(req.TaskmanagerId, req.Tasks) {
		jm.cancelUnknownTasks(req.TaskmanagerId, req.Tasks)
	}
	jm.mu.Unlock()
	return &weirpb.RegisterTaskManagerResponse{
		JobmanagerId:        jm.id,
		HeartbeatIntervalMs: jm.hbInterval.Milliseconds(),
		HeartbeatTimeoutMs:  jm.hbTimeout.Milliseconds(),
		LeaderEpoch:         jm.leaderEpoch(),
	}, nil
}

// Heartbeat serves one TaskManager's heartbeat stream. The stream is bound
// to the registration it first heartbeats for; when it breaks, that
// registration is lost ("heartbeat stream closed"). A heartbeat that names
// a TaskManager registered from another identity ends the stream.
func (g *gateway) Heartbeat(stream weirpb.JobManagerGateway_HeartbeatServer) error {
	jm := g.jm
	type recv struct {
		hb  *weirpb.TaskManagerHeartbeat
		err error
	}
	// Recv blocks; a goroutine turns it into a channel so that Close can
	// end the handler. It returns once the handler has (the stream's
	// context is then canceled and Recv fails).
	msgs := make(chan recv)
	ctx := stream.Context()
	identity, addr := peerIdentity(ctx)
	jm.wg.Add(1)
	go func() {
		defer jm.wg.Done()
		for {
			hb, err := stream.Recv()
			select {
			case msgs <- recv{hb, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	var (
		bound    string // TaskManager id this stream heartbeats for
		instance uint64 // its registration
	)
	lost := func() {
		if bound == "" {
			return
		}
		jm.mu.Lock()
		defer jm.mu.Unlock()
		if cur, ok := jm.sched.TaskManagerInstance(bound); !ok || cur != instance {
			jm.log.Debug("heartbeat stream of a replaced registration closed", zap.String("taskmanager", bound))
			return
		}
		jm.stepLocked(scheduler.TaskManagerLost{ID: bound, Instance: instance, Reason: "heartbeat stream closed"})
	}
	for {
		var m recv
		select {
		case <-jm.stopping:
			return status.Error(codes.Unavailable, "JobManager is shutting down")
		case <-ctx.Done(): // the TaskManager canceled the stream, or its connection broke
			lost()
			return nil
		case m = <-msgs:
		}
		if m.err != nil {
			lost()
			return nil
		}
		known, err := g.heartbeat(m.hb, identity, addr, &bound, &instance)
		if err != nil {
			lost()
			return err
		}
		if err := stream.Send(&weirpb.JobManagerHeartbeat{JobmanagerId: jm.id, UnknownTaskmanager: !known}); err != nil {
			lost()
			return nil
		}
	}
}

// heartbeat records one heartbeat and binds the stream to the current
// registration of its TaskManager on the first one that is known. A
// heartbeat from another identity than the TaskManager's is refused.
func (g *gateway) heartbeat(hb *weirpb.TaskManagerHeartbeat, identity, addr string, bound *string, instance *uint64) (known bool, err error) {
	jm := g.jm
	jm.mu.Lock()
	defer jm.mu.Unlock()
	inst, known := jm.sched.TaskManagerInstance(hb.TaskmanagerId)
	if !known {
		return false, nil
	}
	if err := jm.checkCaller("Heartbeat", "heartbeat", hb.TaskmanagerId, identity, addr); err != nil {
		return false, err
	}
	if *bound == "" {
		*bound, *instance = hb.TaskmanagerId, inst
	}
	ev := scheduler.HeartbeatReceived{TaskManagerID: hb.TaskmanagerId}
	for _, t := range hb.Tasks {
		ev.Tasks = append(ev.Tasks, scheduler.TaskMetrics{
			Execution: scheduler.ExecutionAttemptIDFromProto(t.Execution), RecordsIn: t.RecordsIn, RecordsOut: t.RecordsOut,
		})
	}
	jm.stepLocked(ev)
	return true, nil
}

// UpdateTaskExecutionState hands a task's state change to the scheduler,
// if it comes from the TaskManager it names; the scheduler takes it only
// from the TaskManager the attempt is deployed on.
func (g *gateway) UpdateTaskExecutionState(ctx context.Context, req *weirpb.TaskExecutionState) (*weirpb.Ack, error) {
	st := scheduler.ExecutionState(req.State)
	switch st {
	case scheduler.ExecutionRunning, scheduler.ExecutionFinished, scheduler.ExecutionFailed, scheduler.ExecutionCanceled:
	default:
		return nil, status.Errorf(codes.InvalidArgument, "task state %q: want RUNNING, FINISHED, FAILED or CANCELED", req.State)
	}
	if req.TaskmanagerId == "" {
		// The scheduler would skip its check of where the attempt runs.
		return nil, status.Error(codes.InvalidArgument, "task state report: taskmanager_id is empty")
	}
	id := scheduler.ExecutionAttemptIDFromProto(req.Execution)
	req.Failure = clip(req.Failure, maxMessageLength)
	identity, addr := peerIdentity(ctx)
	g.jm.log.Debug("task state changed", zap.String("job", id.JobID), zap.String("taskmanager", req.TaskmanagerId),
		zap.Int("vertex", id.Vertex), zap.Int("subtask", id.Subtask), zap.Int("attempt", id.Attempt),
		zap.String("state", req.State), zap.String("failure", req.Failure))
	ev := scheduler.TaskStateChanged{TaskManagerID: req.TaskmanagerId, Execution: id, State: st, Failure: req.Failure, RecordsIn: req.RecordsIn, RecordsOut: req.RecordsOut}
	g.jm.mu.Lock()
	defer g.jm.mu.Unlock()
	if err := g.jm.checkCaller("UpdateTaskExecutionState", fmt.Sprintf("task state report (%s) of %s", req.State, id), req.TaskmanagerId, identity, addr); err != nil {
		return nil, err
	}
	if !g.jm.holdUpdate(ev) { // a job the recovery has not decided yet
		g.jm.stepLocked(ev)
	}
	return &weirpb.Ack{}, nil
}

// AcknowledgeCheckpoint hands a task's acknowledgement to its job's
// coordinator. The state must be a snapshot.TaskState naming operators of
// the task's chain; anything else declines the checkpoint (and is refused),
// so that a malformed acknowledgement fails one checkpoint, not the
// _metadata write of a later one.
func (g *gateway) AcknowledgeCheckpoint(ctx context.Context, req *weirpb.AcknowledgeCheckpointRequest) (*weirpb.Ack, error) {
	jm := g.jm
	id := scheduler.ExecutionAttemptIDFromProto(req.Execution)
	identity, addr := peerIdentity(ctx)
	jm.mu.Lock()
	defer jm.mu.Unlock()
	cp, err := jm.checkpointingOf(id)
	if err != nil {
		return nil, err
	}
	if err := jm.checkRunner("AcknowledgeCheckpoint", fmt.Sprintf("acknowledgement of checkpoint %d by %s", req.CheckpointId, id), id, identity, addr); err != nil {
		return nil, err
	}
	task := coordinator.TaskID{Vertex: id.Vertex, Subtask: id.Subtask}
	st, err := decodeTaskState(cp.vertices[id.Vertex], req.State)
	if err != nil {
		msg := fmt.Sprintf("acknowledgement of checkpoint %d with invalid state: %v", req.CheckpointId, err)
		jm.feed(cp, coordinator.Decline{Task: task, Attempt: id.Attempt, CheckpointID: req.CheckpointId, Message: msg})
		return nil, status.Error(codes.InvalidArgument, msg)
	}
	size := req.StateSize
	if size == 0 {
		for _, objs := range st.Operators {
			for _, o := range objs {
				size += o.Size
			}
		}
	}
	jm.feed(cp, coordinator.Acknowledge{
		Task: task, Attempt: id.Attempt, CheckpointID: req.CheckpointId, State: req.State, StateSize: size,
		AlignmentMs: req.AlignmentMs, PersistedInFlightBytes: req.PersistedInFlightBytes,
		SyncDuration:  time.Duration(max(req.SyncDurationMicros, 0)) * time.Microsecond,
		AsyncDuration: time.Duration(max(req.AsyncDurationMicros, 0)) * time.Microsecond,
	})
	return &weirpb.Ack{}, nil
}

// DeclineCheckpoint hands a task's decline to its job's coordinator, its
// reason mapped by declineFailureReason.
func (g *gateway) DeclineCheckpoint(ctx context.Context, req *weirpb.DeclineCheckpointRequest) (*weirpb.Ack, error) {
	jm := g.jm
	id := scheduler.ExecutionAttemptIDFromProto(req.Execution)
	identity, addr := peerIdentity(ctx)
	jm.mu.Lock()
	defer jm.mu.Unlock()
	cp, err := jm.checkpointingOf(id)
	if err != nil {
		return nil, err
	}
	if err := jm.checkRunner("DeclineCheckpoint", fmt.Sprintf("decline of checkpoint %d by %s", req.CheckpointId, id), id, identity, addr); err != nil {
		return nil, err
	}
	reason, msg := declineFailureReason(req.GetReasonCode(), clip(req.GetMessage(), maxMessageLength))
	jm.feed(cp, coordinator.Decline{
		Task: coordinator.TaskID{Vertex: id.Vertex, Subtask: id.Subtask}, Attempt: id.Attempt,
		CheckpointID: req.CheckpointId, Reason: reason, Message: msg,
	})
	return &weirpb.Ack{}, nil
}

// checkpointingOf returns the checkpointing of the job of a task's message,
// or the error to answer. Messages for a coordinator that is not running
// (yet, or any more) are passed on: it ignores them.
func (jm *JobManager) checkpointingOf(id scheduler.ExecutionAttemptID) (*checkpointing, error) {
	if _, ok := jm.sched.JobState(id.JobID); !ok {
		return nil, errJobNotFound(id.JobID)
	}
	cp := jm.checkpoints[id.JobID]
	if cp == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "job %s does not take checkpoints", id.JobID)
	}
	if id.Vertex < 0 || id.Vertex >= len(cp.vertices) || id.Subtask < 0 || id.Subtask >= cp.vertices[id.Vertex].Parallelism {
		return nil, status.Errorf(codes.InvalidArgument, "job %s has no task %d/%d", id.JobID, id.Vertex, id.Subtask)
	}
	return cp, nil
}

// checkRunner checks that a checkpoint answer for attempt id comes from
// the TaskManager the scheduler deployed that attempt on. An answer for
// another attempt than the subtask's current one is let through: the
// coordinator ignores it, whoever sent it. Callers hold jm.mu.
func (jm *JobManager) checkRunner(method, what string, id scheduler.ExecutionAttemptID, identity, addr string) error {
	ex, ok := jm.sched.Execution(id.JobID, id.Vertex, id.Subtask)
	if !ok || ex.ID.Attempt != id.Attempt || ex.TaskManager == "" {
		return nil
	}
	return jm.checkCaller(method, what, ex.TaskManager, identity, addr)
}
