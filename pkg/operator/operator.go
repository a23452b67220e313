// Package operator is the contract between weir's task runtime and the
// operators it runs, and the registry of operator types by name (the `type`
// field of a job file), in the manner of database/sql drivers.
//
// Life cycle of one operator instance in one subtask attempt, all calls made
// by the task's single goroutine (its mailbox), so an operator needs no locks:
//
//	Open -> ProcessRecord* -> EndInput -> Close      (operators)
//	Open -> PollNext* (until EndOfInput) -> Close     (sources)
//
// Close is called on every path, also after a failure or cancellation, and
// must release what Open took. EndInput is called only when every input
// delivered end-of-partition (a bounded input ran out).
//
// Cancellation: no call may block indefinitely. A call that waits selects
// on Context.Done and returns once it is closed. A task that does not stop
// within task.cancellation.timeout of its cancellation makes its
// TaskManager exit (docs/fault-tolerance.md), so an operator that ignores
// Done costs the whole TaskManager, not only its job.
//
// Invariants:
//   - a record passed to ProcessRecord or Collect is borrowed: valid only
//     during the call; keep a copy (record.CopyFrom) to retain it.
//   - an operator never starts goroutines that outlive Close.
//   - properties are validated at submission (Type.Validate) with the same
//     code that builds the operator at deployment, so a job that was accepted
//     does not fail at deployment because of its properties.
package operator

import (
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/internal/allowpath"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/pkg/state"
)

// Context is what the runtime tells an operator about where it runs.
type Context struct {
	JobID          string
	JobName        string
	OperatorID     string
	Subtask        int // index of this parallel instance, 0-based
	Parallelism    int
	MaxParallelism int
	Attempt        int
	// KeyGroups is the range of key groups this subtask owns (all of them
	// for a non-keyed operator).
	KeyGroups state.KeyGroupRange
	// KeyField is the field the input is hash-partitioned by ("" when the
	// input is not keyed).
	KeyField string
	Logger   *zap.Logger
	// Stdout is the TaskManager's standard output (print-sink).
	Stdout io.Writer
	// Checkpointing is true when the job takes checkpoints; two-phase-commit
	// sinks then commit on checkpoint completion instead of at end of input.
	Checkpointing bool
	// ExactlyOnce is true for EXACTLY_ONCE checkpointing, false for
	// AT_LEAST_ONCE.
	ExactlyOnce bool
	// Done is closed when the task is canceled. An operator or source
	// that waits (a rate limiter's sleep, a retry backoff, a blocking
	// read it can give up) selects on it and returns an error once it is
	// closed: the task then reports CANCELED, whatever the error says.
	// Checking it costs nothing per record; nil (tests) never closes.
	Done <-chan struct{}
	// Config is the job's configuration: the cluster's with the job's
	// config: section on top (weir.expression.cost-limit, for one); nil
	// (tests) means every key's default.
	Config *config.Config
	// AllowedPaths is the TaskManager's own io.allowed-paths, which
	// operators that open files check again at Open (the JobManager
	// checked at submission); nil allows every path.
	AllowedPaths *allowpath.Checker
}

// Collector receives the records an operator emits. The record is borrowed.
type Collector interface {
	Collect(r *record.Record) error
}

// Operator transforms or consumes records.
type Operator interface {
	Open(ctx *Context) error
	ProcessRecord(r *record.Record, out Collector) error
	// EndInput is called once every input has ended; the operator may still
	// emit records.
	EndInput(out Collector) error
	Close() error
}

// SourceStatus tells the runtime what a source can do next.
type SourceStatus int

const (
	// MoreAvailable: call PollNext again soon.
	MoreAvailable SourceStatus = iota
	// NothingAvailable: nothing to emit now (rate limit, waiting for new
	// files); call again after the returned retry duration at the latest.
	NothingAvailable
	// EndOfInput: the source is exhausted (bounded source); never called again.
	EndOfInput
)

// Source produces records. PollNext emits a bounded batch (so that the task
// can process control actions such as checkpoint triggers between calls) and
// says whether more is available.
type Source interface {
	Open(ctx *Context) error
	PollNext(out Collector) (status SourceStatus, retryAfter time.Duration, err error)
	Close() error
}

// Checkpointing hooks. An operator or source implements the ones it needs;
// the runtime checks with type assertions.

// Snapshotter is implemented by operators and sources that have state.
//
// SnapshotState is called in the task goroutine when the checkpoint barrier
// passes the operator: for an aligned checkpoint every record before the
// barrier has been processed and none after it; for an unaligned one the
// records still in flight before the barrier are not processed yet — the
// runtime stores them with the checkpoint as channel state and replays them
// on restore, so the operator does not need to care. It must be quick: it
// captures the state (a copy, or a frozen view) and returns it; the runtime writes the Snapshot to checkpoint storage
// from another goroutine while the task goes on processing records, so
// nothing in a Snapshot may alias state the operator changes later.
//
// RestoreState is called after Open and before the first record, with the
// state this subtask inherits.
type Snapshotter interface {
	SnapshotState(checkpointID int64) (*Snapshot, error)
	RestoreState(r *RestoredState) error
}

// Snapshot is the captured state of one operator subtask.
type Snapshot struct {
	// Items is operator (non-keyed) state as a list of independent items,
	// like Flink's union list state: on restore, every subtask is given the
	// items of all old subtasks and keeps those it owns (a source keeps the
	// positions of its keys or files, a sink the pending files it must
	// commit). This is what makes rescaling work without the runtime knowing
	// what the items mean.
	Items [][]byte
	// WriteKeyGroup writes the keyed state of one key group of this
	// subtask's range (nil when the operator has no keyed state). It is
	// called from the writer goroutine, once per key group in order; it must
	// only read the captured copy.
	WriteKeyGroup func(keyGroup int, w io.Writer) error
}

// RestoredState is the state a subtask inherits from a checkpoint or
// savepoint.
type RestoredState struct {
	CheckpointID int64
	// Items holds the operator state items of every old subtask.
	Items [][]byte
	// KeyGroups calls fn for every key group of this subtask's range that
	// has state, with a reader of what WriteKeyGroup wrote for it.
	KeyGroups func(fn func(keyGroup int, r io.Reader) error) error
}

// CheckpointListener is told when a checkpoint the operator took part in
// completed or was aborted (two-phase-commit sinks commit on completion).
type CheckpointListener interface {
	NotifyCheckpointComplete(checkpointID int64) error
	NotifyCheckpointAborted(checkpointID int64) error
}

// FinalCheckpointer is implemented by two-phase-commit sinks: when checkpointing
// is enabled and NeedsFinalCheckpoint is true after EndInput, the task does
// not finish until one more checkpoint has completed and been notified, so a
// bounded job ends with all its output committed (Flink's FLIP-147).
type FinalCheckpointer interface {
	NeedsFinalCheckpoint() bool
}
