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
