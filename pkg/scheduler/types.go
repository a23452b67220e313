package scheduler

import (
	"fmt"
	"time"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/restart"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/proto/weirpb"
)

// JobState is the state of a job, spelled as Flink's JobStatus.
type JobState string

// Job states. See the package documentation for the transitions.
const (
	JobCreated   JobState = "CREATED"
	JobRunning   JobState = "RUNNING"
	JobFailing   JobState = "FAILING"
	JobFailed    JobState = "FAILED"
	JobCanceling JobState = "CANCELING"
	JobCanceled  JobState = "CANCELED"
	JobFinished  JobState = "FINISHED"
	// JobRestarting: the job failed and its restart strategy allows a
	// restart; its tasks are being canceled, or the restart delay runs.
	JobRestarting JobState = "RESTARTING"
)

// JobStates lists every job state, for metrics that need a zero per state.
var JobStates = []JobState{JobCreated, JobRunning, JobFailing, JobFailed, JobCanceling, JobCanceled, JobFinished, JobRestarting}

// IsGloballyTerminal reports whether the job will never change state again.
func (s JobState) IsGloballyTerminal() bool {
	return s == JobFinished || s == JobFailed || s == JobCanceled
}

// ExecutionState is the state of one subtask attempt, spelled as Flink's.
type ExecutionState string

// Execution states. A TaskManager reports RUNNING, FINISHED, FAILED and
// CANCELED; the others are the JobManager's own.
const (
	ExecutionCreated   ExecutionState = "CREATED"
	ExecutionScheduled ExecutionState = "SCHEDULED" // waiting for its slot
	ExecutionDeploying ExecutionState = "DEPLOYING" // SubmitTask sent
	ExecutionRunning   ExecutionState = "RUNNING"
	ExecutionFinished  ExecutionState = "FINISHED"
	ExecutionCanceling ExecutionState = "CANCELING" // CancelTask sent
	ExecutionCanceled  ExecutionState = "CANCELED"
	ExecutionFailed    ExecutionState = "FAILED"
)

// IsTerminal reports whether an attempt in this state will never change again.
func (s ExecutionState) IsTerminal() bool {
	return s == ExecutionFinished || s == ExecutionCanceled || s == ExecutionFailed
}

// ExecutionAttemptID identifies one attempt of one subtask of one job vertex.
type ExecutionAttemptID struct {
	JobID   string
	Vertex  int
	Subtask int
	Attempt int
}

func (id ExecutionAttemptID) String() string {
	return fmt.Sprintf("%s/%d/%d#%d", id.JobID, id.Vertex, id.Subtask, id.Attempt)
}

// Proto converts the id to its wire form.
func (id ExecutionAttemptID) Proto() *weirpb.ExecutionAttemptID {
	return &weirpb.ExecutionAttemptID{JobId: id.JobID, Vertex: int32(id.Vertex), Subtask: int32(id.Subtask), Attempt: int32(id.Attempt)}
}

// ExecutionAttemptIDFromProto converts the wire form; nil gives the zero id.
func ExecutionAttemptIDFromProto(p *weirpb.ExecutionAttemptID) ExecutionAttemptID {
	return ExecutionAttemptID{JobID: p.GetJobId(), Vertex: int(p.GetVertex()), Subtask: int(p.GetSubtask()), Attempt: int(p.GetAttempt())}
}

// PartitionID names the result partition that one attempt of a producer
// subtask writes for one of its outputs: "<job>/<vertex>/<subtask>/<attempt>/<output>".
// A new attempt writes a new partition, so a consumer never reads a mix of
// two attempts.
func PartitionID(jobID string, vertex, subtask, attempt, output int) string {
	return fmt.Sprintf("%s/%d/%d/%d/%d", jobID, vertex, subtask, attempt, output)
}

// Config holds the cluster-wide settings of the scheduler.
type Config struct {
	// HeartbeatTimeout: a TaskManager without a heartbeat for this long is lost.
	HeartbeatTimeout time.Duration
	// EvenlySpreadOutSlots spreads a job's slots over TaskManagers
	// (cluster.evenly-spread-out-slots).
	EvenlySpreadOutSlots bool
	// JobStoreMaxCapacity bounds how many globally terminal jobs are kept
	// for the API (jobstore.max-capacity): beyond it, those that ended
	// first are removed. 0 keeps every one.
	JobStoreMaxCapacity int
	// JobStoreExpiration removes a globally terminal job this long after
	// it ended (jobstore.expiration-time). 0 keeps it.
	JobStoreExpiration time.Duration
}

// Event is an input of Step.
type Event interface{ isEvent() }

// JobSubmitted adds a validated job; the scheduler requests its slots at once.
type JobSubmitted struct {
	JobID          string
	Name           string
	MaxParallelism int
	// Vertices of the job graph (jobgraph.(*JobGraph).Vertices), in index order.
	Vertices []*jobgraph.JobVertex
	// Config is the job's effective configuration (cluster config with the
	// job's config: section on top), sent with every task.
	Config map[string]string
	// SlotRequestTimeout bounds how long the job waits for its slots; 0 waits forever.
	SlotRequestTimeout time.Duration
	// RestartStrategy decides, once per failure of an execution, whether
	// the job restarts and after what delay (restart.FromConfig). The
	// scheduler owns it from now on. nil never restarts.
	RestartStrategy restart.Strategy
	// Restore is what the first deployment restores from: the _metadata of
	// the savepoint (or retained checkpoint) the job is started from, as
	// snapshot.LoadMetadata returns it (Dir set), already matched to the
	// job's operators by the caller; nil starts from scratch. Restarts
	// restore from what LoadRestoreState loads, as always.
	Restore *snapshot.Metadata
	// FirstAttempt is the attempt number of every subtask's first
	// deployment: 0 for a new job; for a job a new leader recovers, above
	// every attempt an earlier leader may have deployed, so that no task of
	// the new execution shares its attempt (and partition ids) with a task
	// of an old one that still runs somewhere.
	FirstAttempt int
	// Failover, set when a new leader resubmits the job after a JobManager
	// failover, is recorded in the job's exception history: what a user
	// sees of the failover (it is not a restart: restarts stays 0).
	Failover string
	// Restarted says the job restarts (rather than continues) after a
	// JobManager failover: it counts as one restart of the job, and one
	// failure for its restart strategy.
	Restarted bool
}

// JobAdopted: a new leader takes over a job whose tasks still run after a
// JobManager failover (package ha's Recovery decided it): the job is
// RUNNING at once with Tasks as they are, on their TaskManagers, and
// nothing is deployed. Every subtask of the graph must be in Tasks once,
// at Job.FirstAttempt, on a registered TaskManager, in DEPLOYING, RUNNING
// or FINISHED, and the subtasks with one index must share a TaskManager
// (one slot holds subtask i of every vertex). Otherwise the job is
// admitted and at once failed over: the listed tasks are cancelled and
// the restart strategy restores it from its latest checkpoint.
type JobAdopted struct {
	Job   JobSubmitted
	Tasks []AdoptedTask
}

// AdoptedTask is one running (or finished) task of an adopted job.
type AdoptedTask struct {
	Vertex, Subtask int
	TaskManagerID   string
	State           ExecutionState
}

// SchedulingPaused stops (Paused) or resumes the deployment of waiting
// jobs: a new leader pauses it while it recovers, so that no job takes the
// slots of tasks it may still adopt.
type SchedulingPaused struct{ Paused bool }

// TaskManagerRegistered offers the slots of a TaskManager. A registration
// with the id of a registered TaskManager replaces it: the old one is lost
// ("re-registered") first.
type TaskManagerRegistered struct {
	ID          string
	RPCAddress  string
	DataAddress string
	Slots       int
	// CallToken is what the JobManager's calls to this registration must
	// carry (chosen by the TaskManager); opaque to the scheduler, handed
	// back in TaskManagerAdded.
	CallToken string
}

// HeartbeatReceived records that a TaskManager is alive, with its tasks' counters.
type HeartbeatReceived struct {
	TaskManagerID string
	Tasks         []TaskMetrics
}

// TaskMetrics are the counters of one attempt, from a heartbeat.
type TaskMetrics struct {
	Execution  ExecutionAttemptID
	RecordsIn  int64
	RecordsOut int64
}

// TaskManagerLost removes a TaskManager: its slots are gone and its tasks fail.
type TaskManagerLost struct {
	ID string
	// Instance fences the event to one registration (see TaskManagerAdded);
	// an event for an older registration is ignored. 0 means the current one.
	Instance uint64
	// Reason completes "TaskManager <id> (data <addr>) lost: <reason>".
	Reason string
}

// TaskStateChanged is a TaskManager's report about one attempt (RUNNING,
// FINISHED, FAILED, CANCELED), or a failed deployment (FAILED).
type TaskStateChanged struct {
	TaskManagerID string // who reports; "" skips the check
	Execution     ExecutionAttemptID
	State         ExecutionState
	Failure       string // set when FAILED
	// Counters of the attempt at the time of the report.
	RecordsIn, RecordsOut int64
}

// CancelRequested cancels a job.
type CancelRequested struct {
	JobID string
}

// GlobalFailure fails a whole job over at once (Flink's global failover),
// for a cause outside any one task: the checkpoint coordinator exceeded
// execution.checkpointing.tolerable-failed-checkpoints. Like a task
// failure, it goes through the restart strategy; Cause becomes the root
// cause of the execution's failure if it has none yet.
type GlobalFailure struct {
	JobID string
	Cause string
}

// RestoreLoaded answers LoadRestoreState: what the restarted execution
// restores from, read by the caller outside the scheduler.
type RestoreLoaded struct {
	JobID   string
	Request uint64 // LoadRestoreState.Request; another value is ignored
	// Checkpoint is the _metadata of the job's latest completed checkpoint
	// as snapshot.LoadMetadata returns it (Dir set), or nil when no
	// checkpoint completed: the tasks start from scratch.
	Checkpoint *snapshot.Metadata
	// Err: the checkpoint could not be read. The restart fails, which
	// counts as a failure for the restart strategy.
	Err error
}

// Tick lets time pass: heartbeat, slot request timeouts and restart
// delays fire here.
type Tick struct{}

func (JobSubmitted) isEvent()          {}
func (JobAdopted) isEvent()            {}
func (SchedulingPaused) isEvent()      {}
func (TaskManagerRegistered) isEvent() {}
func (HeartbeatReceived) isEvent()     {}
func (TaskManagerLost) isEvent()       {}
func (TaskStateChanged) isEvent()      {}
func (CancelRequested) isEvent()       {}
func (GlobalFailure) isEvent()         {}
func (RestoreLoaded) isEvent()         {}
func (Tick) isEvent()                  {}

// Action is an output of Step: something the caller must do now, in order.
type Action interface{ isAction() }

// Deploy submits a task to a TaskManager.
type Deploy struct {
	TaskManagerID string
	TDD           *weirpb.TaskDeploymentDescriptor
}

// CancelTask cancels a deployed attempt.
type CancelTask struct {
	TaskManagerID string
	Execution     ExecutionAttemptID
}

// ReleaseJob tells a TaskManager that a job is globally terminal: it may
// drop everything the job left there (partitions, files).
type ReleaseJob struct {
	TaskManagerID string
	JobID         string
}

// TaskManagerAdded: a registration was accepted; open an RPC client to it.
type TaskManagerAdded struct {
	ID         string
	Instance   uint64
	RPCAddress string
	CallToken  string
}

// TaskManagerRemoved: a registration is gone (lost or replaced); close its
// RPC client. Reason is the full message naming the TaskManager.
type TaskManagerRemoved struct {
	ID       string
	Instance uint64
	Reason   string
}

// JobStateChanged reports a job state transition. From is "" for a new job.
// Message is the job's status message after the transition (the root cause
// for FAILING and FAILED).
type JobStateChanged struct {
	JobID   string
	From    JobState
	To      JobState
	Message string
}

// ExecutionStateChanged reports that the current attempt of a subtask
// switched to RUNNING or FINISHED, as a TaskManager reported it and the
// scheduler accepted it (attempt fencing done): what the checkpoint
// coordinator follows to decide which tasks to trigger and wait for. Other
// states are not reported: a failed or canceled task ends the execution,
// which JobStateChanged tells.
type ExecutionStateChanged struct {
	Execution ExecutionAttemptID
	State     ExecutionState
}

// LoadRestoreState: a RESTARTING job's tasks are all terminal and its
// restart delay has passed. Read its latest completed checkpoint (HA store,
// then snapshot.LoadMetadata) without holding the scheduler, and answer
// with RestoreLoaded{Request: Request}. Until then the job stays
// RESTARTING.
type LoadRestoreState struct {
	JobID   string
	Request uint64
	// NextAttempt is the attempt every subtask of the job restarts with:
	// with high availability the caller records it in the HA store before
	// answering, so that a later leader deploys above it.
	NextAttempt int
}

// JobRestarted: the job's tasks were reset to their next attempt, which
// restore from CheckpointID at Location (0 and "": from scratch). The job
// switches to RUNNING next and its tasks are deployed when slots allow.
type JobRestarted struct {
	JobID        string
	Restarts     int // the job's restarts so far, this one included
	CheckpointID int64
	Location     string
}

// JobRecovered: after a restart every task of the job is RUNNING (or
// FINISHED) again. It carries the timing of the recovery, for logs and
// benchmarks. When an execution fails again before it recovers, the times
// of the first failure are kept.
type JobRecovered struct {
	JobID string
	// FailureTime is when the failure happened as far as the JobManager can
	// tell: the last heartbeat of a TaskManager lost by heartbeat timeout,
	// otherwise when it was reported.
	FailureTime  time.Time
	Detected     time.Time     // when the scheduler learned of the failure
	RestartDelay time.Duration // the restart strategy's delay (the last one)
	Redeployed   time.Time     // when the tasks were reset to their new attempt
	Running      time.Time     // when the last task reported RUNNING
	// CheckpointID the tasks restored from; 0 for none.
	CheckpointID int64
}

// JobRemoved: a globally terminal job left the job store (too many
// terminal jobs, or it ended too long ago): it is no longer listed or
// found. Forget what is kept for it outside the scheduler (checkpoint
// statistics, metrics). Reason says which bound removed it.
type JobRemoved struct {
	JobID  string
	Reason string
}

func (Deploy) isAction()                {}
func (JobRemoved) isAction()            {}
func (LoadRestoreState) isAction()      {}
func (JobRestarted) isAction()          {}
func (JobRecovered) isAction()          {}
func (ExecutionStateChanged) isAction() {}
func (CancelTask) isAction()            {}
func (ReleaseJob) isAction()            {}
func (TaskManagerAdded) isAction()      {}
func (TaskManagerRemoved) isAction()    {}
func (JobStateChanged) isAction()       {}
