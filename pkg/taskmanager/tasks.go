package taskmanager

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/internal/allowpath"
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
	status  *attemptStatus   // guarded by TaskManager.mu
	// netBuffers is what the attempt holds of the network budget, until
	// its Run returns or a new attempt takes it over. Guarded by
	// TaskManager.mu.
	netBuffers int64
	// cancelOnce: the attempt is canceled, and its watchdog started, once
	// (TaskManager.cancelTask).
	cancelOnce sync.Once
}

// attemptStatus is what a JobManager leader is told about one attempt
// when the TaskManager registers with it (ReportedTask), and how much of
// it the leader of the current registration already knows. It outlives
// the attempt's taskEntry (and its Task, with the operators' state) in
// TaskManager.ended. Guarded by TaskManager.mu.
type attemptStatus struct {
	exec      *weirpb.ExecutionAttemptID
	state     taskexec.ExecutionState // "" until RUNNING
	canceling bool                    // canceled, Run has not returned
	// seq counts the state changes sent to the reporter (RUNNING, the
	// final state); known is the highest that the leader of the current
	// registration got in the registration's report: the reporter does
	// not send it again (a RUNNING after the FINISHED the report said
	// would undo it).
	seq, known int
	endedAt    uint64 // order of the end among ended attempts, for eviction
	// forgotten: the JobManager failed the attempt (a same-JobManager
	// re-registration); it is not kept among the ended attempts.
	forgotten bool
}

// reported returns the state as a ReportedTask names it.
func (s *attemptStatus) reported() string {
	switch {
	case s.state == taskexec.Running && s.canceling, s.state == "" && s.canceling:
		return "CANCELING"
	case s.state == "":
		return "DEPLOYING"
	}
	return string(s.state)
}

type stateUpdate struct {
	state   taskexec.ExecutionState
	failure string
	seq     int // attemptStatus.seq of this change
}

// maxEndedAttempts bounds the ended attempts kept for the next leader's
// report (HA only). Past it the oldest is forgotten: the next leader then
// does not hear of it and restarts its job at the end of its reporting
// window, as for a subtask whose TaskManager died.
const maxEndedAttempts = 10000

func attemptString(e *weirpb.ExecutionAttemptID) string {
	return fmt.Sprintf("%s/v%d[%d]#%d", e.GetJobId(), e.GetVertex(), e.GetSubtask(), e.GetAttempt())
}

// submit validates and starts one attempt; see the package doc for fencing.
func (tm *TaskManager) submit(d *weirpb.TaskDeploymentDescriptor) error {
	e := &taskEntry{
		exec:    d.GetExecution(),
		updates: make(chan stateUpdate, 2),
		done:    make(chan struct{}),
		status:  &attemptStatus{exec: d.GetExecution()},
	}
	// The TaskManager's own value, not the job's: a descriptor from
	// anyone but the JobManager must not widen it. Validated at start.
	allowed, err := allowpath.FromConfig(tm.cfg)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "this TaskManager's configuration: %v", err)
	}
	task, err := taskexec.New(d, taskexec.Env{
		AllowedPaths: allowed,
		Network:      tm.net,
		Logger:       tm.log,
		Stdout:       tm.stdout,
		Metrics:      tm.taskMetrics,
		Responder:    responder{tm: tm},
		Metadata:     tm.restoreMetadata.Load,
		OnRunning: func() {
			e.running = true
			tm.tasksRunning.Inc()
			e.updates <- tm.changeState(e, taskexec.Running, "")
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
	var prevHeld int64
	if prev != nil {
		prevHeld = prev.netBuffers
	}
	need := taskBuffers(d, tm.net.Addr(), tm.cfg.Int(config.BuffersPerChannel), tm.cfg.Int(config.FloatingBuffersPerGate))
	if err := tm.netBudget.reserve(attemptString(e.exec), need, prevHeld); err != nil {
		tm.mu.Unlock()
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	if prev != nil {
		prev.netBuffers = 0
	}
	e.netBuffers = need
	tm.tasks[key] = e
	// The new attempt is what the next leader must hear of.
	delete(tm.ended, key)
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
	if prev != nil {
		// Fencing: the previous attempt's Run must have returned (its
		// partitions released, its operators closed) before this one opens.
		<-prev.done
	}
	e.log.Info("task deploying")
	res := e.task.Run()
	tm.mu.Lock()
	tm.netBudget.release(e.netBuffers)
	e.netBuffers = 0
	tm.mu.Unlock()
	if e.running {
		tm.tasksRunning.Dec()
	}
	var failure string
	if res.Err != nil {
		failure = res.Err.Error()
	}
	u := tm.changeState(e, res.State, failure)
	close(e.done)
	e.updates <- u
	close(e.updates)
}

// changeState records a state change of e for the reports and returns
// the update for its reporter. A final state removes e from the tasks
// and, with a leader to report to (HA), keeps its status among the
// ended attempts.
func (tm *TaskManager) changeState(e *taskEntry, state taskexec.ExecutionState, failure string) stateUpdate {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	st := e.status
	st.state = state
	st.seq++
	if state != taskexec.Running {
		st.canceling = false
		key := keyOf(e.exec)
		if tm.tasks[key] == e {
			delete(tm.tasks, key)
			if tm.leaders != nil && !st.forgotten {
				tm.keepEnded(key, st)
			}
		}
	}
	return stateUpdate{state: state, failure: failure, seq: st.seq}
}

// keepEnded adds an ended attempt for the next leader's report, forgetting
// the oldest past maxEndedAttempts. Called with tm.mu held.
func (tm *TaskManager) keepEnded(key subtaskKey, st *attemptStatus) {
	tm.endedCount++
	st.endedAt = tm.endedCount
	tm.ended[key] = st
	if len(tm.ended) <= maxEndedAttempts {
		return
	}
	var oldest subtaskKey
	var at uint64
	for k, o := range tm.ended {
		if at == 0 || o.endedAt < at {
			oldest, at = k, o.endedAt
		}
	}
	tm.log.Warn(fmt.Sprintf("more than %d ended attempts that no JobManager released: forgetting the oldest; a new leader will not hear of it", maxEndedAttempts),
		zap.String("task", attemptString(tm.ended[oldest].exec)), zap.String("state", string(tm.ended[oldest].state)))
	delete(tm.ended, oldest)
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
		jm, _, known := tm.reportTarget(e.status, u.seq)
		if known {
			// A new leader got this state, or a later one, in the
			// registration's report.
			return
		}
		err := errNoLeader
		if jm != nil {
			ctx, cancel := context.WithTimeout(tm.reportCtx, stateReportTimeout)
			_, err = jm.UpdateTaskExecutionState(ctx, req)
			cancel()
		}
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

// errNoLeader is the error of a call to the JobManager before the first
// registration with a leader (HA).
var errNoLeader = status.Error(codes.Unavailable, "no JobManager leader registered with yet")

// reportTarget returns the JobManager that state reports and checkpoint
// answers go to now, and its generation (see TaskManager.leaderGen);
// known: the leader already knows state change seq of st.
func (tm *TaskManager) reportTarget(st *attemptStatus, seq int) (jm weirpb.JobManagerGatewayClient, gen uint64, known bool) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.jm, tm.leaderGen, st != nil && seq <= st.known
}

// cancelAttempt cancels the attempt if it is the one deployed. An ended
// attempt is forgotten: the leader has decided about it.
func (tm *TaskManager) cancelAttempt(ex *weirpb.ExecutionAttemptID) {
	tm.mu.Lock()
	e := tm.tasks[keyOf(ex)]
	if st := tm.ended[keyOf(ex)]; st != nil && st.exec.GetAttempt() == ex.GetAttempt() {
		delete(tm.ended, keyOf(ex))
	}
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
	for k := range tm.ended {
		if k.job == jobID {
			delete(tm.ended, k)
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
	tm.log.Info("released job", zap.String("job", jobID), zap.Int("tasks_canceled", len(entries)))
	return nil
}

// cancelAllTasks cancels every deployed task (see cancelTasks in
// leader.go for when).
func (tm *TaskManager) cancelAllTasks() int {
	tm.mu.Lock()
	all := make([]*taskEntry, 0, len(tm.tasks))
	for _, e := range tm.tasks {
		all = append(all, e)
	}
	tm.mu.Unlock()
	return tm.cancelEntries(all)
}

// cancelEntries cancels the attempts of entries that have not ended.
func (tm *TaskManager) cancelEntries(entries []*taskEntry) int {
	n := 0
	for _, e := range entries {
		select {
		case <-e.done:
			continue
		default:
		}
		e.log.Info("canceling task of the lost registration with the JobManager")
		tm.cancelTask(e)
		n++
	}
	return n
}

// heldTasks returns the deployed tasks and, with report, what a new leader
// is told about them and about the ended attempts: sorted by job, vertex
// and subtask, with the state change each report covers.
func (tm *TaskManager) heldTasks(report bool) ([]*taskEntry, []reportedStatus) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	held := make([]*taskEntry, 0, len(tm.tasks))
	for _, e := range tm.tasks {
		held = append(held, e)
	}
	if !report {
		return held, nil
	}
	rs := make([]reportedStatus, 0, len(tm.tasks)+len(tm.ended))
	add := func(st *attemptStatus) {
		rs = append(rs, reportedStatus{status: st, seq: st.seq,
			task: &weirpb.ReportedTask{Execution: st.exec, State: st.reported()}})
	}
	for _, e := range held {
		add(e.status)
	}
	for _, st := range tm.ended {
		add(st)
	}
	slices.SortFunc(rs, func(a, b reportedStatus) int {
		x, y := a.task.GetExecution(), b.task.GetExecution()
		return cmp.Or(strings.Compare(x.GetJobId(), y.GetJobId()), cmp.Compare(x.GetVertex(), y.GetVertex()),
			cmp.Compare(x.GetSubtask(), y.GetSubtask()))
	})
	return held, rs
}

// reportedStatus is one task of a registration's report.
type reportedStatus struct {
	status *attemptStatus
	seq    int // the state change the report covers
	task   *weirpb.ReportedTask
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
