package scheduler

import (
	"fmt"
	"sort"
	"time"

	"github.com/weirstream/weir/proto/weirpb"
)

// maxExceptions bounds the exception history kept per job.
const maxExceptions = 100

// Scheduler owns the TaskManagers, their slots and every job. It is not safe
// for concurrent use: one goroutine (or one mutex) owns it.
type Scheduler struct {
	cfg          Config
	tms          map[string]*taskManager
	nextInstance uint64
	jobs         map[string]*job
	order        []*job // submission order
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
	eg            *ExecutionGraph
	state         JobState
	statusMessage string
	submitted     time.Time
	ended         time.Time
	slotTimeout   time.Duration
	// slots is nil while the job waits for slots; then one per slot index.
	slots      []slotAssignment
	exceptions []*weirpb.JobException
	// causeIsTaskManagerLoss: the status message names a lost TaskManager.
	causeIsTaskManagerLoss bool
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
	case TaskManagerRegistered:
		if old, ok := s.tms[ev.ID]; ok {
			acts = s.removeTaskManager(now, old, "re-registered", acts)
		}
		s.nextInstance++
		s.tms[ev.ID] = &taskManager{
			id: ev.ID, rpcAddress: ev.RPCAddress, dataAddress: ev.DataAddress, instance: s.nextInstance,
			slots: max(ev.Slots, 0), free: max(ev.Slots, 0), registered: now, lastHeartbeat: now,
		}
		acts = append(acts, TaskManagerAdded{ID: ev.ID, Instance: s.nextInstance, RPCAddress: ev.RPCAddress})
	case HeartbeatReceived:
		s.heartbeat(now, ev)
	case TaskManagerLost:
		if tm, ok := s.tms[ev.ID]; ok && (ev.Instance == 0 || ev.Instance == tm.instance) {
			acts = s.removeTaskManager(now, tm, ev.Reason, acts)
		}
	case TaskStateChanged:
		acts = s.taskStateChanged(now, ev, acts)
	case CancelRequested:
		if j, ok := s.jobs[ev.JobID]; ok {
			acts = s.cancel(now, j, acts)
		}
	case GlobalFailure:
		if j, ok := s.jobs[ev.JobID]; ok {
			acts = s.fail(now, j, "", ev.Cause, acts)
		}
	case Tick:
		acts = s.tick(now, acts)
	}
	return s.schedule(now, acts)
}

func (s *Scheduler) submit(now time.Time, ev JobSubmitted, acts []Action) []Action {
	if _, dup := s.jobs[ev.JobID]; dup || ev.JobID == "" {
		return acts // job ids are unique; the caller never reuses one
	}
	eg, err := newExecutionGraph(ev)
	j := &job{eg: eg, state: JobCreated, submitted: now, slotTimeout: ev.SlotRequestTimeout}
	s.jobs[ev.JobID] = j
	s.order = append(s.order, j)
	acts = append(acts, JobStateChanged{JobID: ev.JobID, To: JobCreated})
	if err != nil {
		j.eg.Vertices = nil // a half-built graph has nothing to show
		return s.fail(now, j, "", err.Error(), acts)
	}
	for _, v := range eg.Vertices {
		for _, ex := range v.Subtasks {
			ex.State = ExecutionScheduled
		}
	}
	return acts
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

func (s *Scheduler) removeTaskManager(now time.Time, tm *taskManager, reason string, acts []Action) []Action {
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
		for _, v := range j.eg.Vertices {
			for _, ex := range v.Subtasks {
				if ex.TaskManager == tm.id && !ex.State.IsTerminal() {
					ex.State, ex.Failure = ExecutionFailed, msg
				}
			}
		}
		if j.state == JobFailing && !j.causeIsTaskManagerLoss {
			// When a TaskManager dies, its consumers elsewhere see their
			// connections break a moment before the JobManager sees its
			// heartbeat stream close. The dead TaskManager is the cause,
			// the broken connections only symptoms.
			j.statusMessage = msg
		}
		j.causeIsTaskManagerLoss = true
		acts = s.fail(now, j, "", msg, acts)
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
			ex.State = ExecutionRunning
			acts = append(acts, ExecutionStateChanged{Execution: ev.Execution, State: ExecutionRunning})
		}
	case ExecutionFinished:
		if ex.State != ExecutionCanceling {
			// A canceling task that finishes first belongs to a job that
			// is no longer RUNNING: nobody follows it any more.
			acts = append(acts, ExecutionStateChanged{Execution: ev.Execution, State: ExecutionFinished})
		}
		ex.State = ExecutionFinished
	case ExecutionCanceled:
		wasCanceling := ex.State == ExecutionCanceling
		ex.State = ExecutionCanceled
		if !wasCanceling {
			acts = s.fail(now, j, s.taskName(v, ex), "canceled without a cancel request", acts)
		}
	case ExecutionFailed:
		ex.State, ex.Failure = ExecutionFailed, ev.Failure
		if ex.Failure == "" {
			ex.Failure = "failed without a reason"
		}
		acts = s.fail(now, j, s.taskName(v, ex), ex.Failure, acts)
	}
	return s.maybeTerminal(now, j, acts)
}

func (s *Scheduler) taskName(v *ExecutionJobVertex, ex *ExecutionVertex) string {
	return fmt.Sprintf("%s subtask %d", v.Name, ex.Subtask)
}

// fail makes failure the job's root cause (if it has none yet) and cancels
// its other tasks. task names the failed task ("" for a TaskManager loss or
// a job-level failure).
func (s *Scheduler) fail(now time.Time, j *job, task, failure string, acts []Action) []Action {
	if j.state.IsGloballyTerminal() {
		return acts
	}
	if len(j.exceptions) < maxExceptions {
		j.exceptions = append(j.exceptions, &weirpb.JobException{TimeUnixMs: now.UnixMilli(), Task: task, Message: failure})
	}
	if j.state != JobCreated && j.state != JobRunning {
		return acts // FAILING or CANCELING: the first cause stays
	}
	j.statusMessage = failure
	if task != "" {
		j.statusMessage = task + " failed: " + failure
	}
	return s.transition(now, j, JobFailing, acts)
}

func (s *Scheduler) cancel(now time.Time, j *job, acts []Action) []Action {
	switch j.state {
	case JobCreated:
		j.statusMessage = "" // no longer waiting for slots
		return s.transition(now, j, JobCanceling, acts)
	case JobRunning, JobFailing:
		return s.transition(now, j, JobCanceling, acts)
	}
	return acts
}

// transition moves the job to FAILING or CANCELING and cancels its tasks;
// when nothing is left to wait for, it goes on to FAILED or CANCELED in the
// same step, reported as one transition.
func (s *Scheduler) transition(now time.Time, j *job, to JobState, acts []Action) []Action {
	from := j.state
	acts = s.cancelTasks(j, acts)
	j.state = to
	if !s.allTerminal(j) {
		return append(acts, JobStateChanged{JobID: j.eg.JobID, From: from, To: to, Message: j.statusMessage})
	}
	return s.finish(now, j, from, acts)
}

// cancelTasks cancels every attempt that is not terminal: deployed ones on
// their TaskManager, the others at once.
func (s *Scheduler) cancelTasks(j *job, acts []Action) []Action {
	for _, v := range j.eg.Vertices {
		for _, ex := range v.Subtasks {
			switch ex.State {
			case ExecutionCreated, ExecutionScheduled:
				ex.State = ExecutionCanceled
			case ExecutionDeploying, ExecutionRunning:
				ex.State = ExecutionCanceling
				acts = append(acts, CancelTask{TaskManagerID: ex.TaskManager, Execution: ExecutionAttemptID{JobID: j.eg.JobID, Vertex: v.JobVertex.Index, Subtask: ex.Subtask, Attempt: ex.Attempt}})
			}
		}
	}
	return acts
}

func (s *Scheduler) allTerminal(j *job) bool {
	for _, v := range j.eg.Vertices {
		for _, ex := range v.Subtasks {
			if !ex.State.IsTerminal() {
				return false
			}
		}
	}
	return true
}

// maybeTerminal finishes a RUNNING, FAILING or CANCELING job once every
// task is terminal.
func (s *Scheduler) maybeTerminal(now time.Time, j *job, acts []Action) []Action {
	if (j.state != JobRunning && j.state != JobFailing && j.state != JobCanceling) || !s.allTerminal(j) {
		return acts
	}
	return s.finish(now, j, j.state, acts)
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
	acts = append(acts, JobStateChanged{JobID: j.eg.JobID, From: from, To: j.state, Message: j.statusMessage})
	ranOn := map[string]bool{}
	for _, sl := range j.slots {
		tm, ok := s.tms[sl.tm]
		if !ok {
			continue // lost: its slots went with it
		}
		if tm.instance == sl.instance {
			tm.free++
		}
		// A re-registered TaskManager may be the same process, still
		// holding the job's partitions: release there too.
		ranOn[sl.tm] = true
	}
	for _, id := range sortedKeys(ranOn) {
		acts = append(acts, ReleaseJob{TaskManagerID: id, JobID: j.eg.JobID})
	}
	return acts
}

func (s *Scheduler) tick(now time.Time, acts []Action) []Action {
	if s.cfg.HeartbeatTimeout > 0 {
		for _, id := range sortedKeys(s.tms) {
			if tm := s.tms[id]; now.Sub(tm.lastHeartbeat) > s.cfg.HeartbeatTimeout {
				acts = s.removeTaskManager(now, tm, fmt.Sprintf("no heartbeat for %v", s.cfg.HeartbeatTimeout), acts)
			}
		}
	}
	for _, j := range s.order {
		if j.state == JobCreated && j.slotTimeout > 0 && now.Sub(j.submitted) >= j.slotTimeout {
			_, free := s.SlotCounts()
			msg := fmt.Sprintf("could not allocate %s within slot.request.timeout (%v): %d free", slotsText(j.eg.Parallelism), j.slotTimeout, free)
			acts = s.fail(now, j, "", msg, acts)
		}
	}
	return acts
}

// schedule gives free slots to waiting jobs in submission order and deploys
// every job whose slots are all allocated; the others get a status message
// saying what they wait for.
func (s *Scheduler) schedule(now time.Time, acts []Action) []Action {
	for _, j := range s.order {
		if j.state != JobCreated {
			continue
		}
		need := j.eg.Parallelism
		_, free := s.SlotCounts()
		if free < need {
			j.statusMessage = fmt.Sprintf("waiting for %d more %s: needs %d, %d free", need-free, slotWord(need-free), need, free)
			continue
		}
		j.slots = s.allocate(need)
		for _, v := range j.eg.Vertices {
			for _, ex := range v.Subtasks {
				ex.State, ex.TaskManager = ExecutionDeploying, j.slots[ex.Subtask].tm
				acts = append(acts, Deploy{TaskManagerID: ex.TaskManager, TDD: j.eg.deploymentDescriptor(v, ex.Subtask, j.slots)})
			}
		}
		j.state, j.statusMessage = JobRunning, ""
		acts = append(acts, JobStateChanged{JobID: j.eg.JobID, From: JobCreated, To: JobRunning})
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
