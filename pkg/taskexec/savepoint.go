package taskexec

import (
	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/taskexec/barrier"
)

// Savepoints and stop-with-savepoint, the task's side (Flink's synchronous
// savepoint, FLIP-147's stop modes). The protocol is in doc.go; this file
// holds the little state a task keeps for it. Everything here runs in the
// task goroutine.

// EndOfDataFlagStop on an EndOfData event: the producer's input was
// stopped by a stop-with-savepoint without drain, not exhausted (Flink's
// StopMode.NO_DRAIN). A task whose input ends with such an EndOfData on
// any channel does not call EndInput (an operator flushing buffered
// output there would emit records that are not in the savepoint, which the
// job resumed from it emits again), forwards EndOfData with this flag, and
// waits for no final checkpoint: the savepoint is the final checkpoint,
// and whatever came after it belongs to the job resumed from it.
const EndOfDataFlagStop = barrier.FlagStop

// stopState is a task's part in a stop-with-savepoint. Task goroutine
// only.
type stopState struct {
	// id is the stop-with-savepoint this task snapshotted whose completion
	// or abort it has not been told yet (noID: none). The task does not
	// finish while it is set: its CheckpointListeners must commit the
	// savepoint first.
	id int64
	// suspended: a source that emitted the barrier of stop-with-savepoint
	// id polls no more, until the savepoint is aborted (then it resumes)
	// or completes (then it ends: stopped).
	suspended bool
	// stopped: the savepoint a suspended source waited for completed; its
	// input ends (as a stop, unless it was drained already).
	stopped bool
	// noDrain: the end of input is a stop without drain (EndOfDataFlagStop
	// on an input channel, or this source stopped).
	noDrain bool
}

// isSource reports whether the head of the chain is a source.
func (t *Task) isSource() bool { return t.chain[0].src != nil }

// beforeStopSnapshot runs before the snapshot of a stop-with-savepoint:
// with drain, a source ends its input first (EndInput down the chain,
// EndOfData), so that the barrier follows the operators' last output and
// the savepoint holds the drained state.
func (t *Task) beforeStopSnapshot(a barrier.TriggerSnapshot) error {
	if a.Flags&barrier.FlagDrain == 0 || !t.isSource() || t.inputEnded {
		return nil
	}
	t.log.Info("stop-with-savepoint with drain: ending the input before the savepoint", zap.Int64("savepoint", a.CheckpointID))
	return t.endInput()
}

// afterStopSnapshot runs once the barrier of stop-with-savepoint a is on
// every output: a source suspends its input, and every task holds its
// finish until it hears how the savepoint ended.
func (t *Task) afterStopSnapshot(a barrier.TriggerSnapshot) {
	t.stop.id = a.CheckpointID
	if t.isSource() && !t.inputEnded {
		t.stop.suspended = true
		t.log.Info("stop-with-savepoint: source suspended until the savepoint completes or is aborted", zap.Int64("savepoint", a.CheckpointID))
	}
}

// stopCheckpointComplete runs after the CheckpointListeners were told that
// checkpoint id completed: if it is this task's stop-with-savepoint, the
// task may finish, and a suspended source ends its input. A later
// checkpoint completing means the savepoint did not (the JobManager stops
// checkpointing once a stop-with-savepoint completes): its abort was lost,
// and the job goes on.
func (t *Task) stopCheckpointComplete(id int64) {
	switch {
	case t.stop.id == noID || id < t.stop.id:
		return
	case id > t.stop.id:
		t.log.Info("a checkpoint after the stop-with-savepoint completed: taking the savepoint as aborted",
			zap.Int64("savepoint", t.stop.id), zap.Int64("checkpoint", id))
		t.stopCheckpointAborted(t.stop.id)
		return
	}
	t.stop.id = noID
	if t.stop.suspended {
		t.stop.suspended = false
		t.stop.stopped = true
		if !t.inputEnded {
			t.stop.noDrain = true
		}
		t.log.Info("stop-with-savepoint complete: the source ends its input", zap.Int64("savepoint", id))
	}
}

// stopCheckpointAborted runs when checkpoint id was aborted: if it is this
// task's stop-with-savepoint, the job goes on: a suspended source resumes
// polling. (A drained source cannot: its input ended for good, and the
// task finishes as at the end of a bounded input.)
func (t *Task) stopCheckpointAborted(id int64) {
	if t.stop.id == noID || id != t.stop.id {
		return
	}
	t.stop.id = noID
	if t.stop.suspended {
		t.stop.suspended = false
		t.log.Info("stop-with-savepoint aborted: the source resumes", zap.Int64("savepoint", id))
	}
}

// holdSource runs between two PollNext of a source: while a
// stop-with-savepoint holds it, it serves the mailbox (notifications,
// triggers) and the flush timer, without polling. end is true when the
// source must not poll any more: its stop-with-savepoint completed, or
// its input was drained for one.
func (t *Task) holdSource() (end bool, err error) {
	for t.stop.suspended {
		t.times.switchTo(stateIdle)
		select {
		case a := <-t.mailbox:
			t.times.switchTo(stateBusy)
			t.pending.Add(-1)
			if err := t.runAction(a); err != nil {
				return false, err
			}
		case <-t.flushWake:
			t.times.switchTo(stateBusy)
			t.maybeFlush()
		case <-t.cancelCh:
			t.times.switchTo(stateBusy)
			return false, ErrCanceled
		}
	}
	return t.stop.stopped || t.inputEnded, nil
}

// endOfDataReceived notes the stop mode of an EndOfData event.
func (t *Task) endOfDataReceived(flags uint32) {
	if flags&EndOfDataFlagStop != 0 {
		t.stop.noDrain = true
	}
}

// logSkippedFinalCheckpoint says which operators wanted a final checkpoint
// at a stop without drain: their output since the savepoint stays
// uncommitted, as it must (the job resumed from the savepoint produces it
// again).
func (t *Task) logSkippedFinalCheckpoint() {
	for _, c := range t.liveChain() {
		if f, ok := c.instance().(operator.FinalCheckpointer); ok && f.NeedsFinalCheckpoint() {
			t.log.Warn("stopped with a savepoint: not waiting for a final checkpoint; output after the savepoint stays uncommitted",
				zap.String("operator", c.spec.ID))
		}
	}
}
