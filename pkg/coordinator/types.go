package coordinator

import (
	"fmt"
	"time"
)

// TaskID names one subtask of one job vertex. It is the same across
// attempts; the attempt is carried next to it to fence stale messages.
type TaskID struct {
	Vertex  int
	Subtask int
}

func (t TaskID) String() string { return fmt.Sprintf("%d/%d", t.Vertex, t.Subtask) }

func (t TaskID) less(o TaskID) bool {
	if t.Vertex != o.Vertex {
		return t.Vertex < o.Vertex
	}
	return t.Subtask < o.Subtask
}

// Vertex is one job vertex of the execution: its tasks are the subtasks
// Vertex/0 .. Vertex/Parallelism-1.
//
// The topology is kept per vertex, never per subtask: a subtask of a
// vertex that reads an all-to-all edge reads every upstream subtask, and
// listing those per subtask would cost parallelism squared per edge (a
// wide job could exhaust the JobManager's memory before it ran). The
// coordinator's memory and work are linear in subtasks and edges.
type Vertex struct {
	Parallelism int
	// Inputs are the vertices this one reads from. An upstream vertex may
	// appear more than once (one per edge); that changes nothing.
	Inputs []Input
}

// Input is one edge into a vertex.
type Input struct {
	// Vertex is the index of the upstream vertex.
	Vertex int
	// Forward: subtask i reads only upstream subtask i (same parallelism),
	// so only that one finishing makes subtask i a trigger target.
	// Otherwise (rebalance, hash, broadcast) every subtask of the
	// upstream vertex must finish first.
	Forward bool
}

// Task is the state of one task when the coordinator is built.
type Task struct {
	ID TaskID
	// Attempt is the execution attempt whose acknowledgements count; messages
	// of any other attempt are ignored.
	Attempt int
	// Running is the task's state when the coordinator is built; later
	// TaskRunning events set it. A checkpoint is triggered only when every
	// task that is not FINISHED is RUNNING.
	Running bool
}

// Mode is execution.checkpointing.mode, passed through to the tasks.
type Mode string

// Checkpointing modes.
const (
	ExactlyOnce Mode = "EXACTLY_ONCE"
	AtLeastOnce Mode = "AT_LEAST_ONCE"
)

// Defaults applied by New to zero fields of Config, as Flink's.
const (
	DefaultTimeout       = 10 * time.Minute
	DefaultMaxConcurrent = 1
	DefaultNumRetained   = 1
)

// MaxPendingSavepoints bounds the savepoints in progress at once. Each is
// triggered at once, beyond MaxConcurrent (as Flink's forced savepoints),
// and holds a record per task until it ends, so a client asking in a loop
// is refused (TOO_MANY_CHECKPOINT_REQUESTS) rather than allowed to fill the
// JobManager's memory. Flink bounds its queue of requests at 1000.
const MaxPendingSavepoints = 10

// HistorySize is how many checkpoints History keeps (Flink's
// web.checkpoints.history default is 10; weir keeps more for `weir checkpoints`).
const HistorySize = 100

// Config is the checkpointing configuration of one job execution, with
// Flink's option names (execution.checkpointing.*).
type Config struct {
	// Interval between the starts of periodic checkpoints; 0 disables them
	// (savepoints can still be taken). An interval below MinPause is raised
	// to MinPause, as in Flink.
	Interval time.Duration
	Mode     Mode // "" means EXACTLY_ONCE
	// MinPause is the least time between the completion of one checkpoint
	// and the start of the next periodic one. > 0 implies MaxConcurrent 1.
	MinPause time.Duration
	// Timeout aborts a checkpoint or savepoint not completed in this time.
	// 0 means DefaultTimeout.
	Timeout time.Duration
	// TolerableFailedCheckpoints is how many consecutive counted failures
	// are tolerated; the next one fails the job.
	TolerableFailedCheckpoints int
	// MaxConcurrent bounds the pending checkpoints; 0 means 1. Savepoints
	// count as pending but are not bounded by it.
	MaxConcurrent int
	// NumRetained is how many completed checkpoints are kept; 0 means 1.
	NumRetained int
	// Unaligned and AlignedCheckpointTimeout are passed through to the
	// tasks in the triggers of checkpoints (savepoints are always aligned).
	Unaligned                bool
	AlignedCheckpointTimeout time.Duration

	// NextCheckpointID is the first id this coordinator uses (0 means 1).
	// The caller persists it (see PersistCheckpointID) so ids increase
	// across restarts and JobManager failovers.
	NextCheckpointID int64
	// Vertices is the topology of the execution, by vertex index.
	Vertices []Vertex
	// Tasks are the attempts and states of the tasks, each at most once; a
	// task not listed is attempt 0 and not running.
	Tasks []Task
	// Restored seeds the completed checkpoint store with what the HA store
	// holds after a restart or a JobManager failover, so subsumption keeps
	// working. Every id must be below NextCheckpointID.
	Restored []CompletedCheckpoint
}

// FailureReason says why a checkpoint failed, with Flink's
// CheckpointFailureReason names. Only some count toward
// TolerableFailedCheckpoints (see Counted).
type FailureReason string

// Failure reasons.
const (
	// ReasonExpired: not completed within Timeout. Counted.
	ReasonExpired FailureReason = "CHECKPOINT_EXPIRED"
	// ReasonDeclined: a task declined (its snapshot failed). Counted.
	ReasonDeclined FailureReason = "CHECKPOINT_DECLINED"
	// ReasonAsyncException: a task's asynchronous snapshot part failed. Counted.
	ReasonAsyncException FailureReason = "CHECKPOINT_ASYNC_EXCEPTION"
	// ReasonIOException: writing the checkpoint's _metadata failed. Counted.
	ReasonIOException FailureReason = "IO_EXCEPTION"
	// ReasonTaskNotReady: a task declined because it was not running yet
	// (still restoring). Not counted.
	ReasonTaskNotReady FailureReason = "CHECKPOINT_DECLINED_TASK_NOT_READY"
	// ReasonTaskClosing: a task finished (or declined because it was
	// finishing) before acknowledging. Not counted.
	ReasonTaskClosing FailureReason = "CHECKPOINT_DECLINED_TASK_CLOSING"
	// ReasonSubsumed: a newer checkpoint completed first. Not counted.
	ReasonSubsumed FailureReason = "CHECKPOINT_SUBSUMED"
	// ReasonDeclinedSubsumed: a task saw the barrier of a newer checkpoint
	// while aligning this one. Not counted.
	ReasonDeclinedSubsumed FailureReason = "CHECKPOINT_DECLINED_SUBSUMED"
	// ReasonDeclinedOnCancellationBarrier: a task received a cancellation
	// marker (another task declined first; that one counts). Not counted.
	ReasonDeclinedOnCancellationBarrier FailureReason = "CHECKPOINT_DECLINED_ON_CANCELLATION_BARRIER"
	// ReasonNotAllTasksRunning: a trigger found a task not RUNNING, or
	// every task FINISHED. Not counted (and no id is consumed).
	ReasonNotAllTasksRunning FailureReason = "NOT_ALL_REQUIRED_TASKS_RUNNING"
	// ReasonTooManyRequests: a second stop-with-savepoint. Not counted.
	ReasonTooManyRequests FailureReason = "TOO_MANY_CHECKPOINT_REQUESTS"
	// ReasonCoordinatorSuspend: aborted because a stop-with-savepoint
	// stopped periodic checkpointing. Not counted.
	ReasonCoordinatorSuspend FailureReason = "CHECKPOINT_COORDINATOR_SUSPEND"
	// ReasonCoordinatorShutdown: aborted by Stop (the job is ending,
	// failing or being cancelled). Not counted.
	ReasonCoordinatorShutdown FailureReason = "CHECKPOINT_COORDINATOR_SHUTDOWN"
	// ReasonJobFailure: aborted because this coordinator failed the job
	// (tolerable failures exceeded). Not counted.
	ReasonJobFailure FailureReason = "JOB_FAILURE"
	// ReasonTriggerFailure: the checkpoint could not be triggered (its id
	// could not be persisted: the HA store is unreachable). Not counted,
	// as in Flink: an outage of the store must not fail the job.
	ReasonTriggerFailure FailureReason = "TRIGGER_CHECKPOINT_FAILURE"
)

// Counted reports whether a failure of this reason counts toward
// TolerableFailedCheckpoints. As Flink's CheckpointFailureManager, only
// failures that a restart might cure and that the user should hear about
// count: timeouts, declines, asynchronous snapshot failures and storage
// failures; never failures caused by the job itself ending or failing.
func (r FailureReason) Counted() bool {
	switch r {
	case ReasonExpired, ReasonDeclined, ReasonAsyncException, ReasonIOException:
		return true
	}
	return false
}

// Event is an input of Step.
type Event interface{ isEvent() }

// Tick fires periodic triggers and timeouts that are due. The caller sends
// one at NextTriggerTime (sending more is harmless).
type Tick struct{}

// TriggerSavepoint is a user's request for a savepoint. Request is the
// caller's token, echoed in SavepointDone or SavepointFailed.
type TriggerSavepoint struct {
	Request uint64
	Target  string // savepoint directory; "" for the configured default
	// Stop is stop-with-savepoint: periodic checkpoints are suspended and
	// pending ones aborted; the tasks stop after the savepoint completes.
	Stop bool
	// Drain (with Stop) makes the sources emit MAX_WATERMARK before stopping.
	Drain bool
}

// Acknowledge is a task's report that its snapshot for CheckpointID is
// durable; State is its opaque state handle.
type Acknowledge struct {
	Task                   TaskID
	Attempt                int
	CheckpointID           int64
	State                  []byte
	StateSize              int64
	AlignmentMs            int64
	PersistedInFlightBytes int64
	// The task's synchronous and asynchronous snapshot durations (Flink's
	// sync and async duration).
	SyncDuration  time.Duration
	AsyncDuration time.Duration
}

// Decline is a task's report that it cannot take CheckpointID. A zero
// Reason means ReasonDeclined.
type Decline struct {
	Task         TaskID
	Attempt      int
	CheckpointID int64
	Reason       FailureReason
	Message      string
}

// TaskRunning reports that a task attempt switched to RUNNING.
type TaskRunning struct {
	Task    TaskID
	Attempt int
}

// TaskFinished reports that a task attempt switched to FINISHED.
type TaskFinished struct {
	Task    TaskID
	Attempt int
}

// MetadataWritten is the caller's result of a WriteMetadata action.
type MetadataWritten struct {
	CheckpointID int64
	Path         string // the completed checkpoint's or savepoint's pointer
	Err          error
}

// TriggerFailed: the caller could not carry out the PersistCheckpointID
// that covers CheckpointID, so its TriggerTasks was not sent: the pending
// checkpoint is aborted at once (ReasonTriggerFailure) rather than left
// to expire, so that the next one can be triggered.
type TriggerFailed struct {
	CheckpointID int64
	Message      string
}

// Stop ends the coordinator: the job execution is finishing, failing or
// being cancelled. Pending checkpoints are aborted; nothing is triggered any
// more.
type Stop struct{}

func (Tick) isEvent()             {}
func (TriggerSavepoint) isEvent() {}
func (Acknowledge) isEvent()      {}
func (Decline) isEvent()          {}
func (TaskRunning) isEvent()      {}
func (TaskFinished) isEvent()     {}
func (MetadataWritten) isEvent()  {}
func (TriggerFailed) isEvent()    {}
func (Stop) isEvent()             {}

// Action is an output of Step: something the caller must do, in order.
type Action interface{ isAction() }

// PersistCheckpointID: ids below Next are used. The caller must make it
// durable before carrying out the TriggerTasks that follows, so a restarted
// JobManager never reuses an id.
type PersistCheckpointID struct{ Next int64 }

// TriggerTasks: send TriggerCheckpoint to Tasks (the tasks with no running
// upstream: the sources, and per FLIP-147 tasks whose upstream all
// finished). A triggered task that has inputs must take its snapshot only
// after it has processed every record already received from its finished
// inputs.
type TriggerTasks struct {
	CheckpointID             int64
	Timestamp                time.Time
	Tasks                    []TaskID
	Mode                     Mode
	Savepoint                bool
	Target                   string // savepoint directory, "" for checkpoints and the default
	Unaligned                bool
	AlignedCheckpointTimeout time.Duration
	Stop                     bool
	Drain                    bool
}

// TaskState is one task's part of a checkpoint.
type TaskState struct {
	State     []byte // opaque handle from the task's acknowledgement
	StateSize int64
	// Finished: the task was FINISHED when the checkpoint was triggered; it
	// has no state and is restored as finished (FLIP-147).
	Finished bool
}

// WriteMetadata: every task acknowledged; write the checkpoint's _metadata
// (and, for a checkpoint, add it to the HA store), then report
// MetadataWritten. The checkpoint is complete only then.
type WriteMetadata struct {
	CheckpointID int64
	Timestamp    time.Time
	Savepoint    bool
	Target       string
	Tasks        map[TaskID]TaskState
}

// NotifyComplete: send notifyCheckpointComplete to Tasks (the tasks of the
// checkpoint that are not FINISHED), letting them commit side effects.
// Not sent for savepoints, except stop-with-savepoint (as Flink).
type NotifyComplete struct {
	CheckpointID int64
	Tasks        []TaskID
}

// NotifyAborted: send notifyCheckpointAborted to Tasks.
type NotifyAborted struct {
	CheckpointID int64
	Tasks        []TaskID
	Reason       FailureReason
}

// DiscardCheckpoint: delete a checkpoint's files (and its HA store entry).
// Path is set for a completed checkpoint (subsumed) or for metadata written
// after its checkpoint was aborted; empty for an aborted pending one, whose
// directory the caller derives from the id (and Target for a savepoint).
type DiscardCheckpoint struct {
	CheckpointID int64
	Savepoint    bool
	Target       string
	Path         string
	Reason       FailureReason
	// States are the acknowledged states of an aborted checkpoint, by
	// task: a storage may have put their files outside the checkpoint's
	// location (entropy injection), where only their handles find them.
	States []TaskStateOf
}

// TaskStateOf is the acknowledged state of one task.
type TaskStateOf struct {
	Task  TaskID
	State []byte
}

// DiscardState: delete the state files of an acknowledgement that no
// checkpoint will reference: it came after its checkpoint had ended, or
// from an attempt that is no longer current (Flink's CheckpointCoordinator
// discards such late subtask state too). Without it, a task that finishes
// writing after its checkpoint was aborted and disposed of leaves orphans.
// State is the acknowledgement's opaque state. Ended says that the
// checkpoint is neither pending nor retained: everything in its location
// may go (what other late tasks wrote, a directory they recreated).
type DiscardState struct {
	CheckpointID int64
	Task         TaskID
	State        []byte
	Ended        bool
}

// FailJob: fail the job over (tolerable failed checkpoints exceeded, or a
// task declined a stop-with-savepoint). The coordinator has stopped itself.
type FailJob struct{ Reason string }

// SavepointDone answers TriggerSavepoint Request.
type SavepointDone struct {
	Request      uint64
	CheckpointID int64
	Path         string
}

// SavepointFailed answers TriggerSavepoint Request. CheckpointID is 0 when
// the savepoint was never triggered.
type SavepointFailed struct {
	Request      uint64
	CheckpointID int64
	Reason       FailureReason
	Message      string
}

// Log is something worth a log line that needs no other action (an ignored
// late message, a skipped trigger).
type Log struct{ Message string }

func (PersistCheckpointID) isAction() {}
func (TriggerTasks) isAction()        {}
func (WriteMetadata) isAction()       {}
func (NotifyComplete) isAction()      {}
func (NotifyAborted) isAction()       {}
func (DiscardCheckpoint) isAction()   {}
func (DiscardState) isAction()        {}
func (FailJob) isAction()             {}
func (SavepointDone) isAction()       {}
func (SavepointFailed) isAction()     {}
func (Log) isAction()                 {}

// CheckpointStatus is the state of a checkpoint in the statistics.
type CheckpointStatus string

// Checkpoint statuses.
const (
	StatusInProgress CheckpointStatus = "IN_PROGRESS"
	StatusCompleted  CheckpointStatus = "COMPLETED"
	StatusFailed     CheckpointStatus = "FAILED"
)

// CheckpointStats describes one checkpoint or savepoint for `weir
// checkpoints` and `weir status`.
type CheckpointStats struct {
	ID          int64
	Status      CheckpointStatus
	Savepoint   bool
	Unaligned   bool
	TriggerTime time.Time
	// Duration is end-to-end, trigger to completion or failure; 0 while
	// in progress.
	Duration               time.Duration
	StateSize              int64 // sum over the acknowledgements
	MaxAlignmentMs         int64
	PersistedInFlightBytes int64
	NumAcknowledged        int
	NumTasks               int // tasks waited for (not FINISHED at trigger)
	Path                   string
	FailureReason          FailureReason
	FailureMessage         string
	// Subtasks has one entry per acknowledgement, ordered by task.
	Subtasks []SubtaskStats
}

// SubtaskStats is one task's part of a checkpoint (Flink's
// SubtaskCheckpointStatistics).
type SubtaskStats struct {
	Task                   TaskID
	AckTime                time.Time
	StateSize              int64
	AlignmentMs            int64
	SyncDuration           time.Duration
	AsyncDuration          time.Duration
	PersistedInFlightBytes int64
}

// CompletedCheckpoint is a retained checkpoint (Flink's CompletedCheckpoint).
type CompletedCheckpoint struct {
	ID             int64
	Timestamp      time.Time // trigger time
	CompletionTime time.Time
	Path           string
	// Savepoint is only ever true for a restored entry (a job started from a
	// savepoint): such an entry leaves the retained window without its
	// files being discarded, as they belong to the user.
	Savepoint bool
	StateSize int64
	// Tasks is nil for restored entries whose state only the metadata
	// file at Path holds.
	Tasks map[TaskID]TaskState
}
