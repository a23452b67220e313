package barrier

import (
	"time"

	"github.com/weirstream/weir/proto/weirpb"
)

// Flags of a CheckpointBarrier event (network.Event.Flags). The checkpointing
// mode is not among them: every task knows execution.checkpointing.mode from
// its job configuration.
const (
	// FlagSavepoint: the barrier belongs to a savepoint.
	FlagSavepoint uint32 = 1 << 0
	// FlagUnaligned: the barrier of an unaligned checkpoint, sent as a
	// priority event that overtakes in-flight data (unaligned.go). A task
	// whose job does not enable unaligned checkpoints aligns it.
	FlagUnaligned uint32 = 1 << 1
	// FlagStop (only with FlagSavepoint): the savepoint of a
	// stop-with-savepoint. A source emits nothing after its barrier; every
	// task waits for the savepoint's completion (or abort) before it
	// finishes.
	FlagStop uint32 = 1 << 2
	// FlagDrain (with FlagStop): the sources ended their input (EndInput
	// down the dataflow, EndOfData) before the barrier.
	FlagDrain uint32 = 1 << 3
	// FlagAlignedTimeout: the barrier of a checkpoint that starts aligned
	// and turns unaligned once its alignment lasted longer than
	// execution.checkpointing.aligned-checkpoint-timeout from the
	// checkpoint's start (Flink's timeoutable aligned barrier). It is sent
	// as a normal event; a task that switches forwards the barrier with
	// FlagUnaligned instead.
	FlagAlignedTimeout uint32 = 1 << 4
)

// DeclineReason says why a task declines a checkpoint. It is the wire
// enum itself, so that no reason is ever turned into text and parsed back:
// the JobManager maps it to the coordinator's failure reason in one table
// (jobmanager.declineFailureReason). As in Flink's CheckpointFailureManager,
// only DeclineReasonDeclined and DeclineReasonAsync are failures of their
// own; the others follow from a failure reported elsewhere (or from a newer
// checkpoint) and do not count toward tolerable failed checkpoints.
type DeclineReason = weirpb.DeclineReason

// Reasons of a decline (Flink's CheckpointFailureReason names in the enum's
// comments).
const (
	// DeclineReasonDeclined: an operator's synchronous snapshot failed, or
	// the task cannot take this kind of checkpoint.
	DeclineReasonDeclined = weirpb.DeclineReason_DECLINE_REASON_DECLINED
	// DeclineReasonAsync: writing the snapshot to checkpoint storage
	// failed (full disk, permissions, ...).
	DeclineReasonAsync = weirpb.DeclineReason_DECLINE_REASON_ASYNC_EXCEPTION
	// DeclineReasonSubsumed: a newer barrier or trigger arrived while
	// this checkpoint was being aligned.
	DeclineReasonSubsumed = weirpb.DeclineReason_DECLINE_REASON_SUBSUMED
	// DeclineReasonCancellationBarrier: an upstream task canceled the
	// checkpoint (CancelCheckpointMarker).
	DeclineReasonCancellationBarrier = weirpb.DeclineReason_DECLINE_REASON_ON_CANCELLATION_BARRIER
	// DeclineReasonTaskNotReady: the trigger found the task not running
	// (finished, canceled, failed, or not deployed).
	DeclineReasonTaskNotReady = weirpb.DeclineReason_DECLINE_REASON_TASK_NOT_READY
)

// Handler is what the task needs of a handler.
type Handler interface {
	Step(now time.Time, ev Event) []Action
}

// Event is an input of a barrier handler.
type Event interface{ isEvent() }

// BarrierReceived: a CheckpointBarrier arrived on Channel.
type BarrierReceived struct {
	Channel      int
	CheckpointID int64
	Timestamp    int64 // Unix milliseconds of the trigger
	Flags        uint32
	// Overtaken is, for an unaligned barrier (a priority event), the number
	// of data buffers of Channel received before it that the gate delivers
	// after it (network.BufferOrEvent.Overtaken); the task holds copies of
	// them (OvertakenData) for RecordOvertaken. Only Unaligned reads it.
	Overtaken int
}

// CancelMarkerReceived: a CancelCheckpointMarker arrived on Channel.
type CancelMarkerReceived struct {
	Channel      int
	CheckpointID int64
}

// EndOfPartitionReceived: Channel delivered EndOfPartition; no barrier will
// come from it any more.
type EndOfPartitionReceived struct{ Channel int }

// CheckpointAborted: the JobManager notified that CheckpointID was aborted.
type CheckpointAborted struct{ CheckpointID int64 }

// TriggerReceived: a TriggerCheckpoint RPC for a task whose inputs have all
// finished upstream (FLIP-147), or for a task without inputs (a source).
// An aligned snapshot is taken once every channel delivered
// EndOfPartition, so that it covers every record those finished inputs
// sent; an unaligned one (Unaligned) at once, the rest of each channel
// becoming its input channel state.
type TriggerReceived struct {
	CheckpointID int64
	Timestamp    int64
	Flags        uint32
	// EndsQueued, for an unaligned trigger (FlagUnaligned) at a task with
	// inputs: per channel, whether its EndOfPartition is queued in the
	// gate, not yet polled, so that the whole rest of the channel is there
	// to copy (network.InputGate.CopyToEnd). nil: none is known to be.
	EndsQueued []bool
}

func (BarrierReceived) isEvent()        {}
func (CancelMarkerReceived) isEvent()   {}
func (EndOfPartitionReceived) isEvent() {}
func (CheckpointAborted) isEvent()      {}
func (TriggerReceived) isEvent()        {}

// Action is an output of a barrier handler.
type Action interface{ isAction() }

// BlockChannel: stop polling Channel (InputGate.BlockChannel).
type BlockChannel struct{ Channel int }

// UnblockAll: resume every blocked channel (InputGate.UnblockAll).
type UnblockAll struct{}

// TriggerSnapshot: every record before the barrier has been processed (and,
// when aligned, none after it): snapshot the chain and forward the barrier.
type TriggerSnapshot struct {
	CheckpointID int64
	Timestamp    int64
	Flags        uint32
	// Alignment is the time from the first barrier (or the trigger) to
	// the last (unaligned: to the switch; 0 when unaligned from the start).
	Alignment time.Duration
	// Unaligned (Unaligned handler only): forward the barrier as a
	// priority event, record the output channel state it overtakes, and
	// hold the snapshot until ChannelStateComplete (unaligned.go).
	Unaligned bool
}

// DeclineCheckpoint: tell the JobManager this task will not acknowledge
// CheckpointID. Reason is one of the DeclineReason* constants.
type DeclineCheckpoint struct {
	CheckpointID int64
	Reason       DeclineReason
	Message      string
}

// ForwardCancelMarker: broadcast a CancelCheckpointMarker for CheckpointID
// on every output, so that downstream tasks stop aligning it.
type ForwardCancelMarker struct{ CheckpointID int64 }

func (BlockChannel) isAction()        {}
func (UnblockAll) isAction()          {}
func (TriggerSnapshot) isAction()     {}
func (DeclineCheckpoint) isAction()   {}
func (ForwardCancelMarker) isAction() {}
