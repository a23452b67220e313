package scheduler

import (
	"fmt"
	"sort"
	"time"

	"github.com/weirstream/weir/pkg/restart"
	"github.com/weirstream/weir/proto/weirpb"
)

// maxExceptions bounds the exception history kept per job.
const maxExceptions = 100

// Scheduler owns the TaskManagers, their slots and every job. It is not safe
// for concurrent use: one goroutine (or one mutex) owns it.
type Scheduler struct {
	// paused: SchedulingPaused; waiting jobs are not deployed.
	paused       bool
	cfg          Config
	tms          map[string]*taskManager
	nextInstance uint64
	nextRequest  uint64 // of LoadRestoreState
	jobs         map[string]*job
	order        []*job // submission order
	// ended holds the globally terminal jobs in the order they ended: the
	// job store, bounded by JobStoreMaxCapacity and JobStoreExpiration.
	ended []*job
}

type taskManager struct {
	id, rpcAddress, dataAddress string
	instance                    uint64
	slots, free                 int
	registered, lastHeartbeat   time.Time
}

func (tm *taskManager) name() string {
	return fmt.Sprintf("TaskManager %s (data %s)", tm.id, tm.dataAddress)
}

type job struct {
	eg    *ExecutionGraph
	state JobState
	// Counts of the current attempts, kept by setState and recount, so
	// that asking whether every task is terminal (or up) after each task
	// report is O(1) rather than a walk over every subtask: a walk per
	// report made a deployment quadratic in the number of subtasks.
	nonTerminal   int // not FINISHED, CANCELED or FAILED
	notUp         int // not RUNNING or FINISHED
	statusMessage string
	submitted     time.Time
	ended         time.Time
	slotTimeout   time.Duration
	// slots is nil while the job waits for slots; then one per slot index.
	// A RESTARTING job keeps them until its redeployment.
	slots []slotAssignment
	// waitingSince: when the job started to wait for slots (submission or
	// redeployment), for slot.request.timeout.
	waitingSince time.Time
	// ranOn: every TaskManager id that ever ran a task of the job, to
	// release the job there when it ends.
	ranOn      map[string]bool
	exceptions []*weirpb.JobException // newest first, at most maxExceptions
	// cause is the root cause of the current execution's failure, and
	// causeIsTaskManagerLoss says it names a lost TaskManager.
	cause                  string
	causeIsTaskManagerLoss bool
	// exhausted describes the restart strategy that gave up ("" if none did).
	exhausted string

	strategy restart.Strategy
	restarts int
	// While RESTARTING: the restart is due at restartAt; restoreRequest is
	// the outstanding LoadRestoreState (0: none).
	restartAt      time.Time
	restoreRequest uint64

	// Recovery timing: recovering from the first failure after the job was
	// last fully RUNNING until every task of a restarted execution runs.
	recovering   bool
	failureTime  time.Time
	detected     time.Time
	restartDelay time.Duration
	redeployed   time.Time
}

// failure is one failure event of a job.
type failure struct {
	task    string    // for the exception history: "op[subtask]", a TaskManager id or ""
	message string    // for the exception history
	cause   string    // the root cause as the status message tells it
	at      time.Time // when it happened, as far as known
}

// New returns a scheduler with no TaskManagers and no jobs.
func New(cfg Config) *Scheduler {
	return &Scheduler{cfg: cfg, tms: map[string]*taskManager{}, jobs: map[string]*job{}}
}

// Step applies one event at time now and returns what the caller must do,
// in order.
func (s *Scheduler) Step(now time.Time, ev Event) []Action {
	var acts []Action
	switch ev := ev.(type) {
	case JobSubmitted:
		acts = s.submit(now, ev, acts)
	case JobAdopted:
		acts = s.adopt(now, ev, acts)
	case SchedulingPaused:
		s.paused = ev.Paused
	case TaskManagerRegistered:
		if old, ok := s.tms[ev.ID]; ok {
			acts = s.removeTaskManager(now, old, "re-registered", now, acts)
		}
		s.nextInstance++
		s.tms[ev.ID] = &taskManager{
			id: ev.ID, rpcAddress: ev.RPCAddress, dataAddress: ev.DataAddress, instance: s.nextInstance,
			slots: max(ev.Slots, 0), free: max(ev.Slots, 0), registered: now, lastHeartbeat: now,
		}
		acts = append(acts, TaskManagerAdded{ID: ev.ID, Instance: s.nextInstance, RPCAddress: ev.RPCAddress, CallToken: ev.CallToken})
	case HeartbeatReceived:
		s.heartbeat(now, ev)
	case TaskManagerLost:
		if tm, ok := s.tms[ev.ID]; ok && (ev.Instance == 0 || ev.Instance == tm.instance) {
			acts = s.removeTaskManager(now, tm, ev.Reason, now, acts)
		}
	case TaskStateChanged:
		acts = s.taskStateChanged(now, ev, acts)
	case CancelRequested:
		if j, ok := s.jobs[ev.JobID]; ok {
			acts = s.cancel(now, j, acts)
		}
	case GlobalFailure:
		if j, ok := s.jobs[ev.JobID]; ok {
			acts = s.fail(now, j, failure{message: ev.Cause, cause: ev.Cause, at: now}, acts)
		}
	case RestoreLoaded:
		acts = s.restoreLoaded(now, ev, acts)
	case Tick:
		acts = s.tick(now, acts)
	}
	acts = s.schedule(now, acts)
	return s.expireJobs(now, acts)
}

// expireJobs removes the globally terminal jobs beyond the job store's
// bounds, those that ended first first (Flink's jobstore.max-capacity and
// jobstore.expiration-time): without a bound, a long-lived JobManager
// would keep every job it ever ran.
func (s *Scheduler) expireJobs(now time.Time, acts []Action) []Action {
	n := 0
	for ; n < len(s.ended); n++ {
		j := s.ended[n]
		var reason string
		switch {
		case s.cfg.JobStoreMaxCapacity > 0 && len(s.ended)-n > s.cfg.JobStoreMaxCapacity:
			reason = fmt.Sprintf("more than %d terminal jobs (jobstore.max-capacity)", s.cfg.JobStoreMaxCapacity)
		case s.cfg.JobStoreExpiration > 0 && now.Sub(j.ended) >= s.cfg.JobStoreExpiration:
			reason = fmt.Sprintf("ended more than %v ago (jobstore.expiration-time)", s.cfg.JobStoreExpiration)
		}
		if reason == "" {
			break
		}
		delete(s.jobs, j.eg.JobID)
		s.ended[n] = nil
		acts = append(acts, JobRemoved{JobID: j.eg.JobID, Reason: reason})
	}
	if n == 0 {
		return acts
	}
	s.ended = s.ended[n:]
	kept := s.order[:0]
	for _, j := range s.order {
		if s.jobs[j.eg.JobID] == j {
			kept = append(kept, j)
		}
	}
	clear(s.order[len(kept):])
	s.order = kept
	return acts
}

func (s *Scheduler) submit(now time.Time, ev JobSubmitted, acts []Action) []Action {
	if _, dup := s.jobs[ev.JobID]; dup || ev.JobID == "" {
		return acts // job ids are unique; the caller never reuses one
	}
	eg, err := newExecutionGraph(ev)
	j := &job{eg: eg, state: JobCreated, submitted: now, waitingSince: now, slotTimeout: ev.SlotRequestTimeout,
		strategy: ev.RestartStrategy, ranOn: map[string]bool{}}
	if j.strategy == nil {
		j.strategy = restart.NoRestart{}
	}
	s.jobs[ev.JobID] = j
	s.order = append(s.order, j)
	if ev.Failover != "" {
		j.addException(now, failure{message: ev.Failover})
	}
	if ev.Restarted {
		// The verdict is not needed: the restart is under way. What the
		// strategy remembers counts for the next failure.
		j.restarts++
		_, _ = j.strategy.NotifyFailure(now)
	}
	acts = append(acts, JobStateChanged{JobID: ev.JobID, To: JobCreated})
	if err == nil && ev.Restore != nil {
		if rerr := eg.setRestore(ev.Restore); rerr != nil {
			err = fmt.Errorf("restore the job from checkpoint %d: %w", ev.Restore.CheckpointID, rerr)
		}
	}
	if err != nil {
		j.eg.Vertices = nil // a half-built graph has nothing to show
		j.recount()
		return s.fail(now, j, failure{message: err.Error(), cause: err.Error(), at: now}, acts)
	}
	for _, ex := range eg.subtasks() {
		ex.State = ExecutionScheduled
	}
	j.recount()
	return acts
}

// adopt takes over a job whose tasks run (JobAdopted). A task list that
// does not describe one whole execution fails the job over at once.
func (s *Scheduler) adopt(now time.Time, ev JobAdopted, acts []Action) []Action {
	acts = s.submit(now, ev.Job, acts)
	j, ok := s.jobs[ev.Job.JobID]
	if !ok || j.state != JobCreated || j.eg.Vertices == nil {
		return acts // a duplicate id, or a graph that failed already
	}
	slots := make([]slotAssignment, j.eg.Parallelism)
	var taken []*taskManager // slots counted used, to give back on error
	err := func() error {
		seen := make(map[[2]int]bool, len(ev.Tasks))
		for _, t := range ev.Tasks {
			if t.Vertex < 0 || t.Vertex >= len(j.eg.Vertices) || t.Subtask < 0 || t.Subtask >= len(j.eg.Vertices[t.Vertex].Subtasks) {
				return fmt.Errorf("task %d/%d is not in the job graph", t.Vertex, t.Subtask)
			}
			if seen[[2]int{t.Vertex, t.Subtask}] {
				return fmt.Errorf("task %d/%d is listed twice", t.Vertex, t.Subtask)
			}
			seen[[2]int{t.Vertex, t.Subtask}] = true
			tm, ok := s.tms[t.TaskManagerID]
			if !ok {
				return fmt.Errorf("task %d/%d runs on TaskManager %s, which is not registered", t.Vertex, t.Subtask, t.TaskManagerID)
			}
			if t.State != ExecutionDeploying && t.State != ExecutionRunning && t.State != ExecutionFinished {
				return fmt.Errorf("task %d/%d is %s", t.Vertex, t.Subtask, t.State)
			}
			sl := &slots[t.Subtask]
			if sl.tm == "" {
				*sl = slotAssignment{tm: tm.id, instance: tm.instance, dataAddress: tm.dataAddress}
			} else if sl.tm != tm.id {
				return fmt.Errorf("subtask %d runs on TaskManagers %s and %s: one slot holds it", t.Subtask, sl.tm, tm.id)
			}
		}
		total := 0
		for range j.eg.subtasks() {
			total++
		}
		if len(seen) != total {
			return fmt.Errorf("%d of the job's %d tasks are reported", len(seen), total)
		}
		for _, sl := range slots {
			tm := s.tms[sl.tm]
			if sl.tm == "" || tm.free == 0 {
				return fmt.Errorf("the tasks need more slots than their TaskManagers offer")
			}
			tm.free--
			taken = append(taken, tm)
		}
		return nil
	}()
	for _, t := range ev.Tasks {
		if t.Vertex >= 0 && t.Vertex < len(j.eg.Vertices) && t.Subtask >= 0 && t.Subtask < len(j.eg.Vertices[t.Vertex].Subtasks) {
			ex := j.eg.Vertices[t.Vertex].Subtasks[t.Subtask]
			if ex.TaskManager == "" {
				ex.TaskManager = t.TaskManagerID
				j.ranOn[t.TaskManagerID] = true
			}
		}
	}
	if err != nil {
		// Slots taken before the error are given back; the listed tasks
		// are the execution that fails over (its cancellations go out).
		for _, tm := range taken {
			tm.free++
		}
		for _, ex := range j.eg.subtasks() {
			if _, registered := s.tms[ex.TaskManager]; registered {
				ex.State = ExecutionDeploying
			} else {
				ex.TaskManager = ""
			}
		}
		j.recount()
		j.state = JobRunning
		acts = append(acts, JobStateChanged{JobID: j.eg.JobID, From: JobCreated, To: JobRunning})
		msg := "adopt the job's tasks after a JobManager failover: " + err.Error()
		return s.fail(now, j, failure{message: msg, cause: msg, at: now}, acts)
	}
	j.slots = slots
	for _, t := range ev.Tasks {
		j.eg.Vertices[t.Vertex].Subtasks[t.Subtask].State = t.State
	}
	j.recount()
	j.state, j.statusMessage = JobRunning, ""
	acts = append(acts, JobStateChanged{JobID: j.eg.JobID, From: JobCreated, To: JobRunning})
	for _, t := range ev.Tasks {
		if t.State == ExecutionRunning || t.State == ExecutionFinished {
			id := ExecutionAttemptID{JobID: j.eg.JobID, Vertex: t.Vertex, Subtask: t.Subtask, Attempt: ev.Job.FirstAttempt}
			acts = append(acts, ExecutionStateChanged{Execution: id, State: t.State})
		}
	}
	return s.maybeTerminal(now, j, acts)
}

func (s *Scheduler) heartbeat(now time.Time, ev HeartbeatReceived) {
	tm, ok := s.tms[ev.TaskManagerID]
	if !ok {
		return
	}
	tm.lastHeartbeat = now
	for _, m := range ev.Tasks {
		if ex := s.execution(m.Execution); ex != nil && ex.TaskManager == tm.id {
			// Counters only grow within an attempt; a late heartbeat must
			// not undo the final counts of a state report.
			ex.RecordsIn, ex.RecordsOut = max(ex.RecordsIn, m.RecordsIn), max(ex.RecordsOut, m.RecordsOut)
		}
	}
}

// execution returns the current attempt named by id, or nil when the id
// names an unknown job, vertex or subtask, or an older attempt.
func (s *Scheduler) execution(id ExecutionAttemptID) *ExecutionVertex {
	j, ok := s.jobs[id.JobID]
	if !ok || id.Vertex < 0 || id.Vertex >= len(j.eg.Vertices) {
		return nil
	}
	v := j.eg.Vertices[id.Vertex]
	if id.Subtask < 0 || id.Subtask >= len(v.Subtasks) || v.Subtasks[id.Subtask].Attempt != id.Attempt {
		return nil
	}
	return v.Subtasks[id.Subtask]
}

// removeTaskManager forgets a registration: its slots are gone and the
// tasks it ran fail. failedAt is when it was last known alive.
func (s *Scheduler) removeTaskManager(now time.Time, tm *taskManager, reason string, failedAt time.Time, acts []Action) []Action {
	msg := tm.name() + " lost: " + reason
	delete(s.tms, tm.id)
	acts = append(acts, TaskManagerRemoved{ID: tm.id, Instance: tm.instance, Reason: msg})
	for _, j := range s.order {
		if j.state.IsGloballyTerminal() || j.slots == nil {
			continue
		}
		hit := false
		for i := range j.slots {
			if j.slots[i].tm == tm.id && j.slots[i].instance == tm.instance {
				hit = true
				j.slots[i].instance = 0 // gone: never freed
			}
		}
		if !hit {
			continue
		}
		for _, ex := range j.eg.subtasks() {
			if ex.TaskManager == tm.id && !ex.State.IsTerminal() {
				j.setState(ex, ExecutionFailed)
				ex.Failure = msg
			}
		}
		if (j.state == JobFailing || j.state == JobRestarting) && !j.causeIsTaskManagerLoss {
			// When a TaskManager dies, its consumers elsewhere see their
			// connections break a moment before the JobManager sees its
			// heartbeat stream close. The dead TaskManager is the cause,
			// the broken connections only symptoms.
			j.setCause(msg)
		}
		j.causeIsTaskManagerLoss = true
		acts = s.fail(now, j, failure{task: tm.id, message: msg, cause: msg, at: failedAt}, acts)
		acts = s.maybeTerminal(now, j, acts)
	}
	return acts
}

func (s *Scheduler) taskStateChanged(now time.Time, ev TaskStateChanged, acts []Action) []Action {
	ex := s.execution(ev.Execution)
	deployed := ex != nil && (ex.State == ExecutionDeploying || ex.State == ExecutionRunning || ex.State == ExecutionCanceling)
	if !deployed || (ev.TaskManagerID != "" && ev.TaskManagerID != ex.TaskManager) {
		// A stale attempt, a duplicate, or a report from the wrong place. If
		// it claims to run, it is a zombie: make sure it stops.
		if _, known := s.tms[ev.TaskManagerID]; known && ev.State == ExecutionRunning {
			acts = append(acts, CancelTask{TaskManagerID: ev.TaskManagerID, Execution: ev.Execution})
		}
		return acts
	}
	ex.RecordsIn, ex.RecordsOut = max(ex.RecordsIn, ev.RecordsIn), max(ex.RecordsOut, ev.RecordsOut)
	j := s.jobs[ev.Execution.JobID]
	v := j.eg.Vertices[ev.Execution.Vertex]
	switch ev.State {
	case ExecutionRunning:
		if ex.State == ExecutionDeploying {
			j.setState(ex, ExecutionRunning)
			acts = append(acts, ExecutionStateChanged{Execution: ev.Execution, State: ExecutionRunning})
			acts = s.maybeRecovered(now, j, acts)
		}
	case ExecutionFinished:
		if ex.State != ExecutionCanceling {
			// A canceling task that finishes first belongs to a job that
			// is no longer RUNNING: nobody follows it any more.
			acts = append(acts, ExecutionStateChanged{Execution: ev.Execution, State: ExecutionFinished})
		}
		wasCanceling := ex.State == ExecutionCanceling
		j.setState(ex, ExecutionFinished)
		if !wasCanceling {
			acts = s.maybeRecovered(now, j, acts)
		}
	case ExecutionCanceled:
		wasCanceling := ex.State == ExecutionCanceling
		j.setState(ex, ExecutionCanceled)
		if !wasCanceling {
			acts = s.fail(now, j, s.taskFailure(v, ex, now, "canceled without a cancel request"), acts)
		}
	case ExecutionFailed:
		j.setState(ex, ExecutionFailed)
		ex.Failure = ev.Failure
		if ex.Failure == "" {
			ex.Failure = "failed without a reason"
		}
		acts = s.fail(now, j, s.taskFailure(v, ex, now, ex.Failure), acts)
	}
	return s.maybeTerminal(now, j, acts)
}

// taskFailure describes the failure of a subtask: "op[1]" in the exception
// history, "op subtask 1 failed: ..." as the status message.
func (s *Scheduler) taskFailure(v *ExecutionJobVertex, ex *ExecutionVertex, now time.Time, msg string) failure {
	return failure{
		task:    fmt.Sprintf("%s[%d]", v.Name, ex.Subtask),
		message: msg,
		cause:   fmt.Sprintf("%s subtask %d failed: %s", v.Name, ex.Subtask, msg),
		at:      now,
	}
}

// maybeRecovered reports the recovery of a restarted execution once all
// of its tasks run (or finished).
func (s *Scheduler) maybeRecovered(now time.Time, j *job, acts []Action) []Action {
	if !j.recovering || j.state != JobRunning || j.slots == nil || j.notUp > 0 {
		return acts
	}
	j.recovering = false
	return append(acts, JobRecovered{
		JobID: j.eg.JobID, FailureTime: j.failureTime, Detected: j.detected, RestartDelay: j.restartDelay,
		Redeployed: j.redeployed, Running: now, CheckpointID: j.eg.RestoreCheckpointID,
	})
}

func (j *job) setCause(cause string) {
	j.cause = cause
	j.statusMessage = cause
	if j.exhausted != "" {
		j.statusMessage = "restart strategy exhausted (" + j.exhausted + "): " + cause
	}
}

func (j *job) addException(now time.Time, f failure) {
	e := &weirpb.JobException{TimeUnixMs: now.UnixMilli(), Task: f.task, Message: f.message}
	if len(j.exceptions) < maxExceptions {
		j.exceptions = append(j.exceptions, nil)
	}
	copy(j.exceptions[1:], j.exceptions)
	j.exceptions[0] = e
}

// fail records a failure of a job. A failure of a RUNNING job's execution
// is a failover: the restart strategy is asked, once, whether the job
// restarts (RESTARTING) or fails (FAILING); every other task is canceled.
// A job that is already RESTARTING, FAILING or CANCELING is canceling the
// attempts that fail now: their failures are recorded, not counted, and the
// first cause stays (but see removeTaskManager).
func (s *Scheduler) fail(now time.Time, j *job, f failure, acts []Action) []Action {
	if j.state.IsGloballyTerminal() {
		return acts
	}
	j.addException(now, f)
	switch j.state {
	case JobCreated:
		// Never deployed (an invalid graph): nothing to restart.
		j.setCause(f.cause)
		return s.transition(now, j, JobFailing, acts)
	case JobRunning:
		return s.failover(now, j, f, acts)
	}
	return acts
}

// failover asks the restart strategy about a failure of the current
// execution and acts on its answer.
func (s *Scheduler) failover(now time.Time, j *job, f failure, acts []Action) []Action {
	j.setCause(f.cause)
	if !j.recovering {
		j.recovering, j.failureTime, j.detected = true, f.at, now
	}
	ok, delay := j.strategy.NotifyFailure(now)
	if !ok {
		return s.giveUp(now, j, acts)
	}
	j.restartAt, j.restartDelay = now.Add(delay), delay
	return s.transition(now, j, JobRestarting, acts)
}

// giveUp fails the job for good: the restart strategy refused a restart.
func (s *Scheduler) giveUp(now time.Time, j *job, acts []Action) []Action {
	if _, never := j.strategy.(restart.NoRestart); !never {
		// Strategy "none" was never going to restart: its message is the
		// cause alone.
		j.exhausted = j.strategy.String()
		j.setCause(j.cause)
	}
	return s.transition(now, j, JobFailing, acts)
}

func (s *Scheduler) cancel(now time.Time, j *job, acts []Action) []Action {
	switch j.state {
	case JobCreated:
		j.statusMessage = "" // no longer waiting for slots
		return s.transition(now, j, JobCanceling, acts)
	case JobRunning:
		if j.slots == nil {
			j.statusMessage = "" // a restarted execution waiting for slots
		}
		return s.transition(now, j, JobCanceling, acts)
	case JobRestarting:
		// The user ends the job; its failure stays in the exceptions.
		j.statusMessage = ""
		return s.transition(now, j, JobCanceling, acts)
	case JobFailing:
		return s.transition(now, j, JobCanceling, acts)
	}
	return acts
}

// transition moves the job to FAILING, CANCELING or RESTARTING and cancels
// its tasks. When nothing is left to wait for, FAILING and CANCELING go on
// to FAILED or CANCELED in the same step, reported as one transition.
func (s *Scheduler) transition(now time.Time, j *job, to JobState, acts []Action) []Action {
	from := j.state
	acts = s.cancelTasks(j, acts)
	j.state = to
	if to == JobRestarting {
		acts = append(acts, JobStateChanged{JobID: j.eg.JobID, From: from, To: to, Message: j.statusMessage})
		return s.maybeRestart(now, j, acts)
	}
	if !s.allTerminal(j) {
		return append(acts, JobStateChanged{JobID: j.eg.JobID, From: from, To: to, Message: j.statusMessage})
	}
	return s.finish(now, j, from, acts)
}

// cancelTasks cancels every attempt that is not terminal: deployed ones on
// their TaskManager, the others at once.
func (s *Scheduler) cancelTasks(j *job, acts []Action) []Action {
	for v, ex := range j.eg.subtasks() {
		switch ex.State {
		case ExecutionCreated, ExecutionScheduled:
			j.setState(ex, ExecutionCanceled)
		case ExecutionDeploying, ExecutionRunning:
			j.setState(ex, ExecutionCanceling)
			acts = append(acts, CancelTask{TaskManagerID: ex.TaskManager, Execution: ExecutionAttemptID{JobID: j.eg.JobID, Vertex: v.JobVertex.Index, Subtask: ex.Subtask, Attempt: ex.Attempt}})
		}
	}
	return acts
}

func (s *Scheduler) allTerminal(j *job) bool { return j.nonTerminal == 0 }

// setState moves the current attempt ex of one of j's subtasks to state to,
// keeping j's counts.
func (j *job) setState(ex *ExecutionVertex, to ExecutionState) {
	j.count(ex.State, -1)
	ex.State = to
	j.count(to, 1)
}

func (j *job) count(st ExecutionState, d int) {
	if !st.IsTerminal() {
		j.nonTerminal += d
	}
	if st != ExecutionRunning && st != ExecutionFinished {
		j.notUp += d
	}
}

// recount sets j's counts from scratch, after the states of many attempts
// were set at once.
func (j *job) recount() {
	j.nonTerminal, j.notUp = 0, 0
	for _, ex := range j.eg.subtasks() {
		j.count(ex.State, 1)
	}
}

// maybeTerminal finishes a RUNNING, FAILING or CANCELING job once every
// task is terminal, and moves a RESTARTING one on.
func (s *Scheduler) maybeTerminal(now time.Time, j *job, acts []Action) []Action {
	if j.state == JobRestarting {
		return s.maybeRestart(now, j, acts)
	}
	if (j.state != JobRunning && j.state != JobFailing && j.state != JobCanceling) || !s.allTerminal(j) {
		return acts
	}
	return s.finish(now, j, j.state, acts)
}

// maybeRestart asks the caller for the restore state of a RESTARTING job
// once every task of the failed execution is terminal (so no two attempts
// of a subtask ever run at once) and the restart delay has passed.
func (s *Scheduler) maybeRestart(now time.Time, j *job, acts []Action) []Action {
	if j.state != JobRestarting || j.restoreRequest != 0 || now.Before(j.restartAt) || !s.allTerminal(j) {
		return acts
	}
	s.nextRequest++
	j.restoreRequest = s.nextRequest
	next := 0
	for _, ex := range j.eg.subtasks() {
		next = max(next, ex.Attempt+1)
	}
	return append(acts, LoadRestoreState{JobID: j.eg.JobID, Request: j.restoreRequest, NextAttempt: next})
}

// restoreLoaded restarts a RESTARTING job from what the caller loaded: its
// tasks get their next attempt, the job is RUNNING again and schedule
// deploys it on the slots available now.
func (s *Scheduler) restoreLoaded(now time.Time, ev RestoreLoaded, acts []Action) []Action {
	j, ok := s.jobs[ev.JobID]
	if !ok || j.state != JobRestarting || j.restoreRequest == 0 || ev.Request != j.restoreRequest {
		return acts // canceled meanwhile, or a stale answer
	}
	j.restoreRequest = 0
	err := ev.Err
	if err == nil {
		err = j.eg.setRestore(ev.Checkpoint)
	}
	if err != nil {
		// The restart itself failed: a failure like any other for the
		// strategy. Every task is terminal already.
		msg := "restore the job: " + err.Error()
		if ev.Checkpoint != nil {
			msg = fmt.Sprintf("restore the job from checkpoint %d: %v", ev.Checkpoint.CheckpointID, err)
		}
		f := failure{message: msg, cause: msg, at: now}
		j.addException(now, f)
		j.setCause(msg)
		ok, delay := j.strategy.NotifyFailure(now)
		if !ok {
			return s.giveUp(now, j, acts)
		}
		j.restartAt, j.restartDelay = now.Add(delay), delay
		return s.maybeRestart(now, j, acts)
	}

	// The slots of the failed execution are free again (those of a lost
	// TaskManager are gone); the new one takes what is free now.
	for _, sl := range j.slots {
		if tm, ok := s.tms[sl.tm]; ok && tm.instance == sl.instance {
			tm.free++
		}
	}
	j.slots = nil
	next := 0
	for _, ex := range j.eg.subtasks() {
		next = max(next, ex.Attempt+1)
	}
	for _, ex := range j.eg.subtasks() {
		ex.Attempt = next
		ex.State, ex.TaskManager, ex.Failure, ex.RecordsIn, ex.RecordsOut = ExecutionScheduled, "", "", 0, 0
	}
	j.recount()
	j.restarts++
	j.state, j.statusMessage, j.cause, j.causeIsTaskManagerLoss = JobRunning, "", "", false
	j.waitingSince, j.redeployed = now, now
	loc := ""
	if ev.Checkpoint != nil {
		loc = ev.Checkpoint.Dir
	}
	return append(acts,
		JobRestarted{JobID: j.eg.JobID, Restarts: j.restarts, CheckpointID: j.eg.RestoreCheckpointID, Location: loc},
		JobStateChanged{JobID: j.eg.JobID, From: JobRestarting, To: JobRunning})
}

// finish moves a job whose tasks are all terminal to its terminal state,
// frees its slots and releases it on the TaskManagers that ran it.
func (s *Scheduler) finish(now time.Time, j *job, from JobState, acts []Action) []Action {
	switch j.state {
	case JobRunning:
		j.state = JobFinished
	case JobFailing:
		j.state = JobFailed
	case JobCanceling:
		j.state = JobCanceled
	}
	j.ended = now
	j.restoreRequest = 0
	s.ended = append(s.ended, j)
	acts = append(acts, JobStateChanged{JobID: j.eg.JobID, From: from, To: j.state, Message: j.statusMessage})
	for _, sl := range j.slots {
		if tm, ok := s.tms[sl.tm]; ok && tm.instance == sl.instance {
			tm.free++
		}
	}
	// A re-registered TaskManager may be the same process, still holding
	// the job's partitions: release there too. A lost one is gone.
	for _, id := range sortedKeys(j.ranOn) {
		if _, ok := s.tms[id]; ok {
			acts = append(acts, ReleaseJob{TaskManagerID: id, JobID: j.eg.JobID})
		}
	}
	return acts
}

func (s *Scheduler) tick(now time.Time, acts []Action) []Action {
	if s.cfg.HeartbeatTimeout > 0 {
		for _, id := range sortedKeys(s.tms) {
			if tm := s.tms[id]; now.Sub(tm.lastHeartbeat) > s.cfg.HeartbeatTimeout {
				acts = s.removeTaskManager(now, tm, fmt.Sprintf("no heartbeat for %v", s.cfg.HeartbeatTimeout), tm.lastHeartbeat, acts)
			}
		}
	}
	for _, j := range s.order {
		switch {
		case j.state == JobRestarting:
			acts = s.maybeRestart(now, j, acts)
		case (j.state == JobCreated || j.state == JobRunning) && j.slots == nil && j.slotTimeout > 0 && now.Sub(j.waitingSince) >= j.slotTimeout:
			// At submission the job fails; a restarted execution fails
			// over like any other (Flink's NoResourceAvailableException).
			_, free := s.SlotCounts()
			msg := fmt.Sprintf("could not allocate %s within slot.request.timeout (%v): %d free", slotsText(j.eg.Parallelism), j.slotTimeout, free)
			acts = s.fail(now, j, failure{message: msg, cause: msg, at: now}, acts)
		}
	}
	return acts
}

// schedule gives free slots to waiting jobs in submission order and deploys
// every job whose slots are all allocated; the others get a status message
// saying what they wait for. A waiting job is CREATED (never deployed) or
// RUNNING (restarted, its new attempts SCHEDULED).
func (s *Scheduler) schedule(now time.Time, acts []Action) []Action {
	if s.paused {
		return acts
	}
	for _, j := range s.order {
		if (j.state != JobCreated && j.state != JobRunning) || j.slots != nil {
			continue
		}
		need := j.eg.Parallelism
		_, free := s.SlotCounts()
		if free < need {
			j.statusMessage = fmt.Sprintf("waiting for %d more %s: needs %d, %d free", need-free, slotWord(need-free), need, free)
			continue
		}
		j.slots = s.allocate(need)
		for _, sl := range j.slots {
			j.ranOn[sl.tm] = true
		}
		for v, ex := range j.eg.subtasks() {
			j.setState(ex, ExecutionDeploying)
			ex.TaskManager = j.slots[ex.Subtask].tm
			acts = append(acts, Deploy{TaskManagerID: ex.TaskManager, TDD: j.eg.deploymentDescriptor(v, ex.Subtask, j.slots)})
		}
		j.statusMessage = ""
		if j.state == JobCreated {
			j.state = JobRunning
			acts = append(acts, JobStateChanged{JobID: j.eg.JobID, From: JobCreated, To: JobRunning})
		}
	}
	return acts
}

// allocate takes n free slots; the caller checked that there are enough.
func (s *Scheduler) allocate(n int) []slotAssignment {
	ids := sortedKeys(s.tms)
	out := make([]slotAssignment, 0, n)
	for len(out) < n {
		var pick *taskManager
		for _, id := range ids {
			tm := s.tms[id]
			if tm.free == 0 {
				continue
			}
			if pick == nil || (s.cfg.EvenlySpreadOutSlots && tm.free > pick.free) {
				pick = tm
			}
			if !s.cfg.EvenlySpreadOutSlots {
				break
			}
		}
		pick.free--
		out = append(out, slotAssignment{tm: pick.id, instance: pick.instance, dataAddress: pick.dataAddress})
	}
	return out
}

func slotWord(n int) string {
	if n == 1 {
		return "task slot"
	}
	return "task slots"
}

func slotsText(n int) string { return fmt.Sprintf("%d %s", n, slotWord(n)) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
