package ha

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Recovery is a new leader's decision, for each job of the HA store,
// whether its tasks keep running, and its reporting window. It is pure
// like Leadership: events with the time in, decisions out.
//
// When a JobManager starts leading, the TaskManagers of the old leader
// still run their tasks. They find the new leader and register again,
// each reporting the tasks it runs (job, vertex, subtask, attempt, state).
// The new leader builds a Recovery from what the HA store holds (each
// job's graph, its recorded result, its current attempt and checkpoint
// pointers) and feeds it those reports until it is Done:
//
//	r, acts, err := ha.NewRecovery(time.Now(), ha.RecoveryConfig{Window: heartbeatTimeout, Jobs: jobs})
//	do(acts)
//	for !r.Done() { // a timer at r.Deadline() feeds RecoveryTick
//		do(r.Step(time.Now(), <-events)) // TaskManagerReport or RecoveryTick
//	}
//	// From here on a TaskManager's report is the scheduler's business.
//
//	func do(acts []ha.RecoveryAction) {
//		for _, a := range acts {
//			switch a := a.(type) {
//			case ha.SkipJob:        // never run it again; finish the old leader's clean-up
//			case ha.AdoptJob:       // the job continues with its running tasks
//			case ha.RestartJob:     // a full restart from the latest completed checkpoint
//			case ha.CancelTask:     // CancelTask(a.Task) on a.Task.TaskManagerID
//			case ha.FailAdoptedJob: // a global failure of an adopted job (scheduler.GlobalFailure)
//			case ha.Log:
//			}
//		}
//	}
//
// # Attempts
//
// Weir's failover is a full restart (Flink's RestartAllFailoverStrategy):
// every subtask of a job runs the same attempt number, and a restart
// moves them all to attempt+1 once every task of the old attempt is
// terminal. Result partitions are named by attempt, so tasks of two
// attempts never exchange data. An attempt number thus names one
// execution of the whole job.
//
// A report alone cannot tell the current execution from an older one
// still running on a TaskManager that the old leader believed dead (a
// network partition): adopting that zombie would let it commit output
// that its successor already committed. So the HA store records each
// job's current attempt, written before any task of a new execution is
// deployed (like the checkpoint id counter before a trigger), and
// StoredJob.Attempt carries it. Reports of a lower attempt are stale
// (canceled), and a report of a higher one means the store is behind
// what runs: the job restarts.
//
// # Decisions
//
//   - SkipJob, at once, when the job's result is recorded: it ended under
//     the old leader, which died before removing it. It never runs again;
//     its reported tasks are canceled.
//   - AdoptJob as soon as every expected subtask (vertex, subtask of the
//     stored graph) was reported exactly once, at the job's attempt, in a
//     state that can go on (DEPLOYING, RUNNING, FINISHED; a FINISHED task
//     committed its output at its final checkpoint, FLIP-147). No task is
//     canceled and no state restored. The checkpoints that may have been
//     in flight are aborted and the latest completed checkpoint is
//     notified again (a sink commits idempotently; the old leader may
//     have died before its notification reached every task).
//   - RestartJob as soon as a report makes adoption impossible: a subtask
//     FAILED, CANCELING or CANCELED (the old leader had begun a failover
//     or a cancellation), in a state not known, reported by two
//     TaskManagers or twice in one report, a subtask or vertex the job
//     graph does not have, or an attempt above the job's; and at the deadline for every job not yet
//     decided (a subtask is missing: its TaskManager died in the
//     leaderless window, or never found the new leader). The restart uses
//     an attempt above every attempt reported, from the latest completed
//     checkpoint, through the job's restart strategy as any failover.
//   - CancelTask for a reported task of a job the store does not hold, of
//     a skipped job, or of an attempt below the job's (decided or not).
//
// A TaskManager's report lists every task it runs: a second report of
// the same TaskManager (it registered again) replaces its first one for
// the jobs not yet decided. All decisions are taken once a whole report
// is applied, so a report is never judged by half of it.
//
// # After a decision
//
// Reports keep arriving until Done. For an adopted job a report of a
// lower attempt is canceled; one of its attempt from the TaskManager it
// was adopted on is that task again (ignored); one from another
// TaskManager is a second copy of an adopted subtask, which should not
// exist (an attempt is deployed once): which copy the other tasks read
// from cannot be known, so that copy is canceled and the job fails over
// (FailAdoptedJob). For a restarted job a report below the new attempt is
// canceled. Reports of attempts at or above the one decided are this
// leader's own deployments (a restart after the decision) and are left to
// the scheduler.
//
// Recovery is Done when every job is decided or the deadline passed. The
// leader deploys no newly submitted job before that: a report naming a
// job this Recovery does not hold is canceled.
//
// # Invariants
//
//   - A job is decided once: skip, adopt or restart.
//   - A job with a recorded result is never adopted or restarted.
//   - A job is adopted only with exactly one report per expected subtask,
//     all at the job's attempt; every other reported task of that job is
//     canceled or failed over.
//   - A restart's attempt is above every attempt reported for the job
//     before the decision (a report is applied whole before it).
//   - Memory is linear in the tasks reported (at most one entry per
//     expected subtask and TaskManager report), never in the expected
//     subtasks alone.
//   - Step is deterministic: decisions are taken in job id order, tasks
//     listed in (vertex, subtask) order.
type Recovery struct {
	window   time.Duration
	deadline time.Time
	jobs     map[string]*recoveringJob
	ids      []string // sorted
	// undecided counts the jobs not yet decided; Done when 0 or expired.
	undecided int
	expired   bool
	// byTM lists where each TaskManager's current report is recorded,
	// for the jobs not decided yet, so that its next report replaces it.
	byTM map[string][]jobSubtask
}

// RecoveryConfig is what a new leader recovers.
type RecoveryConfig struct {
	// Window is how long TaskManagers have to report after NewRecovery;
	// then every job not decided restarts. The JobManager uses
	// heartbeat.timeout: a TaskManager silent for that long would be lost
	// anyway.
	Window time.Duration
	// Jobs are the HA store's jobs, each once.
	Jobs []StoredJob
}

// StoredJob is one job as the HA store holds it.
type StoredJob struct {
	JobID string
	// Parallelism of each vertex of the job graph, by vertex index: the
	// subtasks the job expects. May be empty when Result is set.
	Parallelism []int
	// Result is the job's recorded result (FINISHED, FAILED, CANCELED);
	// "" when it has none.
	Result string
	// Attempt is the attempt of the job's current execution, as recorded
	// before its tasks were deployed (0 for the first).
	Attempt int
	// LatestCheckpointID is the newest completed checkpoint (or the
	// savepoint the job started from); 0 when there is none.
	LatestCheckpointID int64
	// NextCheckpointID is the checkpoint id counter: every id below it
	// may have been used.
	NextCheckpointID int64
	// MaxPendingCheckpoints bounds the checkpoints and savepoints the old
	// leader's coordinator could have had in flight (its
	// max-concurrent-checkpoints plus coordinator.MaxPendingSavepoints);
	// 0 means 1.
	MaxPendingCheckpoints int
}

// ReportedState is a task's state as its TaskManager reports it.
type ReportedState string

// Reported task states, with Flink's ExecutionState names.
const (
	// ReportedDeploying: accepted, not yet RUNNING (opening or restoring).
	ReportedDeploying ReportedState = "DEPLOYING"
	ReportedRunning   ReportedState = "RUNNING"
	// ReportedFinished: finished; a TaskManager reports a finished attempt
	// until its job is released, so that the job can be adopted.
	ReportedFinished  ReportedState = "FINISHED"
	ReportedCanceling ReportedState = "CANCELING"
	ReportedCanceled  ReportedState = "CANCELED"
	ReportedFailed    ReportedState = "FAILED"
)

// canContinue reports whether a task in this state lets its job be adopted.
func (s ReportedState) canContinue() bool {
	return s == ReportedDeploying || s == ReportedRunning || s == ReportedFinished
}

func (s ReportedState) known() bool {
	switch s {
	case ReportedDeploying, ReportedRunning, ReportedFinished, ReportedCanceling, ReportedCanceled, ReportedFailed:
		return true
	}
	return false
}

// ReportedTask is one task in a TaskManager's report.
type ReportedTask struct {
	JobID   string
	Vertex  int
	Subtask int
	Attempt int
	State   ReportedState
}

// TaskOn is a reported task and the TaskManager that runs it.
type TaskOn struct {
	TaskManagerID string
	Task          ReportedTask
}

func (t TaskOn) String() string {
	return fmt.Sprintf("%d/%d#%d on %s", t.Task.Vertex, t.Task.Subtask, t.Task.Attempt, t.TaskManagerID)
}

// RecoveryEvent is an input of Recovery.Step.
type RecoveryEvent interface{ isRecoveryEvent() }

// TaskManagerReport is a TaskManager's registration with the new leader:
// every task it runs.
type TaskManagerReport struct {
	TaskManagerID string
	Tasks         []ReportedTask
}

// RecoveryTick lets time pass; the caller sends one at Deadline.
type RecoveryTick struct{}

func (TaskManagerReport) isRecoveryEvent() {}
func (RecoveryTick) isRecoveryEvent()      {}

// RecoveryAction is an output of Recovery.Step.
type RecoveryAction interface{ isRecoveryAction() }

// SkipJob: the job's result is recorded; never run it again. Finish what
// the old leader left undone at its end: its checkpoints by the retention
// policy, then its entries in the HA store (RemoveJob).
type SkipJob struct {
	JobID  string
	Result string
}

// AdoptJob: the job continues. The scheduler takes Tasks as they are
// (attempt Attempt, on their TaskManagers, in their states) and deploys
// nothing; a checkpoint coordinator starts at the id counter with the
// store's completed checkpoints. Then, in order, each task that is not
// FINISHED is sent NotifyCheckpointAborted for each id in
// AbortCheckpoints (checkpoints the old leader may have had in flight;
// tasks aligning one of them would otherwise wait for the next barrier)
// and NotifyCheckpointComplete for NotifyCheckpointID (0: none).
type AdoptJob struct {
	JobID              string
	Attempt            int
	Tasks              []TaskOn // by vertex, then subtask
	AbortCheckpoints   []int64  // ascending
	NotifyCheckpointID int64
}

// RestartJob: restart the job from CheckpointID (0: from scratch, or the
// savepoint it started from) as attempt Attempt, recorded in the HA store
// before anything is deployed. Cancel each of Cancel first: the scheduler
// tracks them as CANCELING executions of the job and deploys Attempt only
// once each is terminal or its TaskManager is lost, so that two attempts
// of a subtask never run at once. Cause says why, for the exception
// history; it is a failover like any other, through the restart strategy.
type RestartJob struct {
	JobID        string
	Attempt      int
	CheckpointID int64
	Cause        string
	Cancel       []TaskOn // entries by vertex, then subtask; then others as reported
}

// CancelTask: cancel this task on its TaskManager (a task of no job this
// leader runs, or of an older attempt).
type CancelTask struct {
	Task   TaskOn
	Reason string
}

// FailAdoptedJob: an adopted job must fail over (scheduler.GlobalFailure).
type FailAdoptedJob struct {
	JobID string
	Cause string
}

func (SkipJob) isRecoveryAction()        {}
func (AdoptJob) isRecoveryAction()       {}
func (RestartJob) isRecoveryAction()     {}
func (CancelTask) isRecoveryAction()     {}
func (FailAdoptedJob) isRecoveryAction() {}
func (Log) isRecoveryAction()            {}

// MaxAttempt is the highest attempt number a report may carry: attempts
// travel as int32, and a restart needs one more.
const MaxAttempt = math.MaxInt32 - 1

func validAttempt(a int) bool { return a >= 0 && a <= MaxAttempt }

type decision int

const (
	undecided decision = iota
	skipped
	adopted
	restarted
)

type subtaskID struct{ vertex, subtask int }

type jobSubtask struct {
	job string
	st  subtaskID
}

type recoveringJob struct {
	StoredJob
	total    int // expected subtasks
	decision decision
	attempt  int // the attempt decided: Attempt when adopted, the new one when restarted
	// entries are the reports at the job's attempt of subtasks the graph
	// has: before the decision, at most one per subtask (a second makes a
	// conflict); after adoption, the adopted tasks.
	entries map[subtaskID]TaskOn
	ok      int // entries in a state that can continue
	// Within the report being applied (a conflict decides at its end):
	conflict   string   // the first reason adoption is impossible
	extra      []TaskOn // reported tasks not in entries, to cancel on restart
	maxAttempt int      // highest attempt reported before the decision
	failedOver bool     // FailAdoptedJob was sent
}

// NewRecovery starts the recovery of cfg.Jobs at now; the reporting
// window ends at now+cfg.Window. The actions skip the jobs whose result
// is recorded. It fails, naming the job and the field, on a job the store
// should never hold (empty or duplicate id, a vertex without subtasks).
func NewRecovery(now time.Time, cfg RecoveryConfig) (*Recovery, []RecoveryAction, error) {
	if cfg.Window < 0 {
		return nil, nil, fmt.Errorf("ha: recovery window %s is negative", cfg.Window)
	}
	r := &Recovery{
		window:   cfg.Window,
		deadline: now.Add(cfg.Window),
		jobs:     make(map[string]*recoveringJob, len(cfg.Jobs)),
		byTM:     map[string][]jobSubtask{},
	}
	for _, sj := range cfg.Jobs {
		if sj.JobID == "" {
			return nil, nil, fmt.Errorf("ha: recover jobs: a job without an id")
		}
		if _, dup := r.jobs[sj.JobID]; dup {
			return nil, nil, fmt.Errorf("ha: recover jobs: job %s listed twice", sj.JobID)
		}
		j := &recoveringJob{StoredJob: sj, entries: map[subtaskID]TaskOn{}, maxAttempt: sj.Attempt}
		if sj.Result == "" {
			if len(sj.Parallelism) == 0 {
				return nil, nil, fmt.Errorf("ha: recover job %s: its graph has no vertex", sj.JobID)
			}
			for v, p := range sj.Parallelism {
				if p < 1 {
					return nil, nil, fmt.Errorf("ha: recover job %s: vertex %d has parallelism %d", sj.JobID, v, p)
				}
				j.total += p
			}
			if sj.Attempt < 0 {
				return nil, nil, fmt.Errorf("ha: recover job %s: attempt %d is negative", sj.JobID, sj.Attempt)
			}
		}
		r.jobs[sj.JobID] = j
		r.ids = append(r.ids, sj.JobID)
	}
	slices.Sort(r.ids)
	var acts []RecoveryAction
	for _, id := range r.ids {
		j := r.jobs[id]
		if j.Result != "" {
			j.decision = skipped
			j.entries = nil
			acts = append(acts, SkipJob{JobID: id, Result: j.Result})
			continue
		}
		r.undecided++
	}
	return r, acts, nil
}

// Done reports whether the recovery is over: every job decided, or the
// deadline passed.
func (r *Recovery) Done() bool { return r.undecided == 0 || r.expired }

// Deadline is when the caller must send RecoveryTick; zero once Done.
func (r *Recovery) Deadline() time.Time {
	if r.Done() {
		return time.Time{}
	}
	return r.deadline
}

// Step applies one event and returns what the caller must do now, in order.
func (r *Recovery) Step(now time.Time, ev RecoveryEvent) []RecoveryAction {
	switch ev := ev.(type) {
	case RecoveryTick:
		if r.Done() || now.Before(r.deadline) {
			return nil
		}
		r.expired = true
		var acts []RecoveryAction
		for _, id := range r.ids {
			if j := r.jobs[id]; j.decision == undecided {
				acts = r.restart(acts, j, r.missing(j))
			}
		}
		r.byTM = nil
		return acts
	case TaskManagerReport:
		return r.report(ev)
	}
	return []RecoveryAction{logf("recovery: unknown event %T", ev)}
}

// report applies one TaskManager's report whole, then decides.
func (r *Recovery) report(ev TaskManagerReport) []RecoveryAction {
	tm := ev.TaskManagerID
	if r.Done() {
		return []RecoveryAction{logf("recovery: report of TaskManager %s after the recovery ended: left to the scheduler", tm)}
	}
	if tm == "" {
		return []RecoveryAction{logf("recovery: a report without a TaskManager id, %d task(s): ignored", len(ev.Tasks))}
	}
	// The highest attempt of each undecided job comes first, so that a
	// restart decided by this report is above all of it.
	for _, t := range ev.Tasks {
		if j := r.jobs[t.JobID]; j != nil && j.decision == undecided && validAttempt(t.Attempt) {
			j.maxAttempt = max(j.maxAttempt, t.Attempt)
		}
	}
	// This report replaces the TaskManager's previous one.
	for _, js := range r.byTM[tm] {
		j := r.jobs[js.job]
		if e, ok := j.entries[js.st]; j.decision == undecided && ok && e.TaskManagerID == tm {
			j.remove(js.st)
		}
	}
	delete(r.byTM, tm)

	var acts []RecoveryAction
	touched := map[string]bool{}
	for _, t := range ev.Tasks {
		on := TaskOn{TaskManagerID: tm, Task: t}
		j := r.jobs[t.JobID]
		switch {
		case !validAttempt(t.Attempt):
			acts = append(acts, CancelTask{Task: on, Reason: fmt.Sprintf("attempt %d is out of range [0, %d]", t.Attempt, MaxAttempt)})
		case j == nil:
			acts = append(acts, CancelTask{Task: on, Reason: fmt.Sprintf("job %s is not in the HA store", t.JobID)})
		case j.decision == skipped:
			acts = append(acts, CancelTask{Task: on, Reason: fmt.Sprintf("job %s already ended: %s", t.JobID, j.Result)})
		case j.decision == adopted:
			acts = r.lateAdopted(acts, j, on)
		case j.decision == restarted:
			if t.Attempt < j.attempt {
				acts = append(acts, CancelTask{Task: on, Reason: fmt.Sprintf("job %s restarts as attempt %d", t.JobID, j.attempt)})
			}
		case t.Attempt < j.Attempt:
			acts = append(acts, CancelTask{Task: on, Reason: fmt.Sprintf("attempt %d of job %s is stale: the job runs attempt %d", t.Attempt, t.JobID, j.Attempt)})
		default:
			touched[t.JobID] = true
			r.record(j, on)
		}
	}
	for _, id := range r.ids {
		if !touched[id] {
			continue
		}
		j := r.jobs[id]
		switch {
		case j.conflict != "":
			acts = r.restart(acts, j, j.conflict)
		case j.ok == j.total:
			acts = r.adopt(acts, j)
		default:
			j.extra = nil
		}
	}
	return acts
}

// record notes a report at or above the job's attempt, before the decision.
func (r *Recovery) record(j *recoveringJob, on TaskOn) {
	t := on.Task
	st := subtaskID{t.Vertex, t.Subtask}
	// conflict notes why the job cannot be adopted (the first reason is
	// the cause); extra keeps a task that entries do not, to cancel it.
	conflict := func(extra bool, format string, args ...any) {
		if j.conflict == "" {
			j.conflict = fmt.Sprintf(format, args...)
		}
		if extra {
			j.extra = append(j.extra, on)
		}
	}
	switch {
	case t.Attempt > j.Attempt:
		conflict(true, "TaskManager %s reports attempt %d of subtask %d/%d, above the job's attempt %d in the HA store",
			on.TaskManagerID, t.Attempt, t.Vertex, t.Subtask, j.Attempt)
		return
	case t.Vertex < 0 || t.Vertex >= len(j.Parallelism):
		conflict(true, "TaskManager %s reports subtask %d/%d, but the job graph has %d vertices",
			on.TaskManagerID, t.Vertex, t.Subtask, len(j.Parallelism))
		return
	case t.Subtask < 0 || t.Subtask >= j.Parallelism[t.Vertex]:
		conflict(true, "TaskManager %s reports subtask %d/%d, but vertex %d has parallelism %d",
			on.TaskManagerID, t.Vertex, t.Subtask, t.Vertex, j.Parallelism[t.Vertex])
		return
	}
	if prev, ok := j.entries[st]; ok {
		// A TaskManager's earlier report was removed above: the same
		// TaskManager here means one report lists the subtask twice.
		if prev.TaskManagerID == on.TaskManagerID {
			conflict(true, "TaskManager %s reports subtask %d/%d attempt %d twice", on.TaskManagerID, t.Vertex, t.Subtask, t.Attempt)
		} else {
			conflict(true, "subtask %d/%d attempt %d is reported by TaskManagers %s and %s",
				t.Vertex, t.Subtask, t.Attempt, prev.TaskManagerID, on.TaskManagerID)
		}
		return
	}
	j.entries[st] = on
	r.byTM[on.TaskManagerID] = append(r.byTM[on.TaskManagerID], jobSubtask{job: t.JobID, st: st})
	switch {
	case !t.State.known():
		conflict(false, "TaskManager %s reports subtask %d/%d attempt %d in unknown state %q",
			on.TaskManagerID, t.Vertex, t.Subtask, t.Attempt, string(t.State))
	case !t.State.canContinue():
		conflict(false, "TaskManager %s reports subtask %d/%d attempt %d %s",
			on.TaskManagerID, t.Vertex, t.Subtask, t.Attempt, t.State)
	default:
		j.ok++
	}
}

func (j *recoveringJob) remove(st subtaskID) {
	if e, ok := j.entries[st]; ok {
		if e.Task.State.canContinue() {
			j.ok--
		}
		delete(j.entries, st)
	}
}

// lateAdopted handles a report of a job adopted before.
func (r *Recovery) lateAdopted(acts []RecoveryAction, j *recoveringJob, on TaskOn) []RecoveryAction {
	t := on.Task
	switch {
	case t.Attempt < j.attempt:
		return append(acts, CancelTask{Task: on, Reason: fmt.Sprintf("attempt %d of job %s is stale: the job runs attempt %d", t.Attempt, t.JobID, j.attempt)})
	case t.Attempt > j.attempt:
		return acts // this leader's own, after a restart
	}
	e, ok := j.entries[subtaskID{t.Vertex, t.Subtask}]
	switch {
	case ok && e.TaskManagerID == on.TaskManagerID:
		return acts // the adopted task itself
	case !ok:
		return append(acts, CancelTask{Task: on, Reason: fmt.Sprintf("job %s has no subtask %d/%d", t.JobID, t.Vertex, t.Subtask)})
	}
	acts = append(acts, CancelTask{Task: on, Reason: fmt.Sprintf("subtask %d/%d attempt %d of job %s runs on TaskManager %s",
		t.Vertex, t.Subtask, t.Attempt, t.JobID, e.TaskManagerID)})
	if j.failedOver {
		return acts
	}
	j.failedOver = true
	return append(acts, FailAdoptedJob{JobID: t.JobID, Cause: fmt.Sprintf(
		"JobManager failover: subtask %d/%d attempt %d was adopted on TaskManager %s, and TaskManager %s reports it too",
		t.Vertex, t.Subtask, t.Attempt, e.TaskManagerID, on.TaskManagerID)})
}

func (r *Recovery) adopt(acts []RecoveryAction, j *recoveringJob) []RecoveryAction {
	j.decision, j.attempt, j.extra = adopted, j.Attempt, nil
	r.undecided--
	a := AdoptJob{JobID: j.JobID, Attempt: j.Attempt, Tasks: j.sortedEntries(), NotifyCheckpointID: j.LatestCheckpointID}
	pending := int64(max(j.MaxPendingCheckpoints, 1))
	for id := max(j.LatestCheckpointID+1, j.NextCheckpointID-pending, 1); id < j.NextCheckpointID; id++ {
		a.AbortCheckpoints = append(a.AbortCheckpoints, id)
	}
	return append(acts, a)
}

func (r *Recovery) restart(acts []RecoveryAction, j *recoveringJob, cause string) []RecoveryAction {
	j.decision, j.attempt = restarted, j.maxAttempt+1
	r.undecided--
	a := RestartJob{JobID: j.JobID, Attempt: j.attempt, CheckpointID: j.LatestCheckpointID,
		Cause: "JobManager failover: " + cause, Cancel: append(j.sortedEntries(), j.extra...)}
	if len(a.Cancel) == 0 {
		a.Cancel = nil
	}
	j.entries, j.extra = nil, nil
	return append(acts, a)
}

func (j *recoveringJob) sortedEntries() []TaskOn {
	out := make([]TaskOn, 0, len(j.entries))
	for _, e := range j.entries {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b TaskOn) int {
		return cmp.Or(cmp.Compare(a.Task.Vertex, b.Task.Vertex), cmp.Compare(a.Task.Subtask, b.Task.Subtask))
	})
	return out
}

// missing describes the subtasks of j nobody reported, naming the first
// few; it walks the expected subtasks once.
func (r *Recovery) missing(j *recoveringJob) string {
	const named = 3
	var first []string
	for v, p := range j.Parallelism {
		for s := 0; s < p && len(first) < named; s++ {
			if _, ok := j.entries[subtaskID{v, s}]; !ok {
				first = append(first, fmt.Sprintf("%d/%d", v, s))
			}
		}
	}
	n := j.total - len(j.entries)
	more := ""
	if n > len(first) {
		more = fmt.Sprintf(" and %d more", n-len(first))
	}
	return fmt.Sprintf("%d of %d subtasks of attempt %d not reported within %s: %s%s",
		n, j.total, j.Attempt, r.window, strings.Join(first, ", "), more)
}
