package taskmanager

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/taskexec"
	"github.com/weirstream/weir/proto/weirpb"
)

// subtaskKey identifies a subtask across its attempts: the unit of fencing.
type subtaskKey struct {
	job     string
	vertex  int32
	subtask int32
}

func keyOf(e *weirpb.ExecutionAttemptID) subtaskKey {
	return subtaskKey{job: e.GetJobId(), vertex: e.GetVertex(), subtask: e.GetSubtask()}
}

// taskEntry is one attempt known to the TaskManager.
type taskEntry struct {
	exec    *weirpb.ExecutionAttemptID
	task    *taskexec.Task
	log     *zap.Logger
	updates chan stateUpdate // to the reporter, in order; closed after the final state
	done    chan struct{}    // closed when the attempt's Run has returned
	running bool             // task goroutine only: OnRunning was called
	// cancelOnce: the attempt is canceled, and its watchdog started, once
	// (TaskManager.cancelTask).
	cancelOnce sync.Once
}

type stateUpdate struct {
	state   taskexec.ExecutionState
	failure string
}

func attemptString(e *weirpb.ExecutionAttemptID) string {
	return fmt.Sprintf("%s/v%d[%d]#%d", e.GetJobId(), e.GetVertex(), e.GetSubtask(), e.GetAttempt())
}

// submit validates and starts one attempt; see the package doc for fencing.
func (tm *TaskManager) submit(d *weirpb.TaskDeploymentDescriptor) error {
	e := &taskEntry{
		exec:    d.GetExecution(),
		updates: make(chan stateUpdate, 2),
		done:    make(chan struct{}),
	}
	task, err := taskexec.New(d, taskexec.Env{
		Network:   tm.net,
		Logger:    tm.log,
		Stdout:    tm.stdout,
		Metrics:   tm.taskMetrics,
		Responder: responder{tm: tm},
		Metadata:  tm.restoreMetadata.Load,
		OnRunning: func() {
			e.running = true
			tm.tasksRunning.Inc()
			e.updates <- stateUpdate{state: taskexec.Running}
		},
	})
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "task deployment descriptor: %v", err)
	}
	e.task = task
	e.log = tm.log.With(zap.String("job", e.exec.GetJobId()), zap.String("task", task.Name()),
		zap.Int32("subtask", e.exec.GetSubtask()), zap.Int32("attempt", e.exec.GetAttempt()))

	key := keyOf(e.exec)
	tm.mu.Lock()
	if tm.closed {
		tm.mu.Unlock()
		return status.Error(codes.Unavailable, "the TaskManager is shutting down")
	}
	prev := tm.tasks[key]
	if prev != nil {
		switch a, p := e.exec.GetAttempt(), prev.exec.GetAttempt(); {
		case a == p:
			tm.mu.Unlock()
			return status.Errorf(codes.AlreadyExists, "attempt %s is already deployed", attemptString(e.exec))
		case a < p:
			tm.mu.Unlock()
			return status.Errorf(codes.FailedPrecondition, "attempt %s is older than the deployed attempt %d", attemptString(e.exec), p)
		}
	}
	tm.tasks[key] = e
	tm.wgTasks.Add(1)
	tm.wgReports.Add(1)
	tm.mu.Unlock()

	if prev != nil {
		e.log.Info("new attempt replaces the running one; waiting for it to end", zap.Int32("previous_attempt", prev.exec.GetAttempt()))
		tm.cancelTask(prev)
	}
	go tm.report(e)
	go tm.runTask(e, prev)
	return nil
}

// runTask is the task goroutine of one attempt.
func (tm *TaskManager) runTask(e *taskEntry, prev *taskEntry) {
	defer tm.wgTasks.Done()
	defer func() {
		tm.mu.Lock()
		if tm.tasks[keyOf(e.exec)] == e {
			delete(tm.tasks, keyOf(e.exec))
		}
		tm.mu.Unlock()
	}()
	if prev != nil {
		// Fencing: the previous attempt's Run must have returned (its
		// partitions released, its operators closed) before this one opens.
		<-prev.done
	}
	e.log.Info("task deploying")
	res := e.task.Run()
	if e.running {
		tm.tasksRunning.Dec()
	}
	close(e.done)
	u := stateUpdate{state: res.State}
	if res.Err != nil {
		u.failure = res.Err.Error()
	}
	e.updates <- u
	close(e.updates)
}

// report sends an attempt's state changes to the JobManager, in order,
// each retried briefly.
func (tm *TaskManager) report(e *taskEntry) {
	defer tm.wgReports.Done()
	for u := range e.updates {
		tm.sendState(e, u)
	}
}

// A state report is retried with backoff (capped at a second) for up to
// stateReportPatience: long enough to outlast a JobManager restart, after
// which the JobManager has failed the task anyway.
const (
	stateReportPatience = 30 * time.Second
	stateReportTimeout  = 5 * time.Second
	stateReportMaxWait  = time.Second
)

func (tm *TaskManager) sendState(e *taskEntry, u stateUpdate) {
	req := &weirpb.TaskExecutionState{
		TaskmanagerId: tm.id,
		Execution:     e.exec,
		State:         string(u.state),
		Failure:       u.failure,
		RecordsIn:     e.task.RecordsIn(),
		RecordsOut:    e.task.RecordsOut(),
	}
	giveUp := time.Now().Add(stateReportPatience)
	backoff := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(tm.reportCtx, stateReportTimeout)
		_, err := tm.jm.UpdateTaskExecutionState(ctx, req)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(giveUp) || tm.reportCtx.Err() != nil {
			e.log.Warn("cannot report task state to the JobManager", zap.String("state", string(u.state)), zap.Error(err))
			return
		}
		select {
		case <-time.After(backoff):
		case <-tm.reportCtx.Done():
		}
		backoff = min(2*backoff, stateReportMaxWait)
	}
}

// cancelAttempt cancels the attempt if it is the one deployed.
func (tm *TaskManager) cancelAttempt(ex *weirpb.ExecutionAttemptID) {
	tm.mu.Lock()
	e := tm.tasks[keyOf(ex)]
	tm.mu.Unlock()
	if e != nil && e.exec.GetAttempt() == ex.GetAttempt() {
		e.log.Info("canceling task")
		tm.cancelTask(e)
	}
}

// releaseJob cancels the job's tasks, waits for them to end (bounded by
// ctx), and releases the job's partitions and metrics.
func (tm *TaskManager) releaseJob(ctx context.Context, jobID string) error {
	tm.mu.Lock()
	var entries []*taskEntry
	for k, e := range tm.tasks {
		if k.job == jobID {
			entries = append(entries, e)
		}
	}
	tm.mu.Unlock()
	for _, e := range entries {
		tm.cancelTask(e)
	}
	for _, e := range entries {
		select {
		case <-e.done:
		case <-ctx.Done():
			return status.Errorf(codes.DeadlineExceeded, "release job %s: task %s did not end", jobID, attemptString(e.exec))
		}
	}
	// Every partition id of a job starts with "<job id>/".
	tm.net.ReleasePartitions(jobID + "/")
	tm.taskMetrics.DeleteJob(jobID)
	tm.log.Info("released job", zap.String("job", jobID), zap.Int("tasks_canceled", len(entries)))
	return nil
}

// cancelAllTasks cancels every deployed task: the JobManager fails them
// when this TaskManager registers again.
func (tm *TaskManager) cancelAllTasks() int {
	tm.mu.Lock()
	all := make([]*taskEntry, 0, len(tm.tasks))
	for _, e := range tm.tasks {
		all = append(all, e)
	}
	tm.mu.Unlock()
	for _, e := range all {
		e.log.Info("canceling task of the lost registration with the JobManager")
		tm.cancelTask(e)
	}
	return len(all)
}

// runningTasks returns the counters of the deployed tasks for a heartbeat.
func (tm *TaskManager) runningTasks() []*weirpb.TaskMetrics {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	out := make([]*weirpb.TaskMetrics, 0, len(tm.tasks))
	for _, e := range tm.tasks {
		out = append(out, &weirpb.TaskMetrics{
			Execution:  e.exec,
			RecordsIn:  e.task.RecordsIn(),
			RecordsOut: e.task.RecordsOut(),
		})
	}
	return out
}

// gateway serves TaskExecutorGateway.
type gateway struct {
	weirpb.UnimplementedTaskExecutorGatewayServer
	tm *TaskManager
}

func (g *gateway) SubmitTask(_ context.Context, d *weirpb.TaskDeploymentDescriptor) (*weirpb.Ack, error) {
	if err := g.tm.submit(d); err != nil {
		return nil, err
	}
	return &weirpb.Ack{}, nil
}

func (g *gateway) CancelTask(_ context.Context, req *weirpb.CancelTaskRequest) (*weirpb.Ack, error) {
	if req.GetExecution() == nil {
		return nil, status.Error(codes.InvalidArgument, "execution: missing")
	}
	g.tm.cancelAttempt(req.GetExecution())
	return &weirpb.Ack{}, nil
}

// releaseTimeout bounds how long ReleaseJob waits for canceled tasks.
const releaseTimeout = 30 * time.Second

func (g *gateway) ReleaseJob(ctx context.Context, req *weirpb.ReleaseJobRequest) (*weirpb.Ack, error) {
	if req.GetJobId() == "" {
		return nil, status.Error(codes.InvalidArgument, "job_id: empty")
	}
	ctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	if err := g.tm.releaseJob(ctx, req.GetJobId()); err != nil {
		return nil, err
	}
	return &weirpb.Ack{}, nil
}
