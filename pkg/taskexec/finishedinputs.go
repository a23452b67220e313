package taskexec

import (
	"time"

	"github.com/weirstream/weir/pkg/taskexec/barrier"
)

// Unaligned checkpoints around the end of input (FLIP-147), so that they
// never wait for a backlog to drain:
//
//   - A task whose input ended (a bounded source that emitted everything,
//     or a task whose inputs all finished) does not finish while its output
//     queues still hold data: with unaligned checkpoints it stays RUNNING,
//     serving its mailbox, until every subpartition handed everything over
//     (network.ResultPartition.Drained), and only then sends EndOfPartition.
//     A checkpoint triggered meanwhile is taken here, as at a source: its
//     barrier overtakes the queued data, which becomes output channel state.
//     Once it finished, all it sent is in its consumers' gates.
//   - A task whose inputs all finished upstream gets the trigger itself
//     (the JobManager triggers it once they are FINISHED). Its barrier sits
//     at the end of every channel: the data still queued before each
//     EndOfPartition is input channel state, copied from the gate at once
//     (network.InputGate.CopyToEnd, barrier.TriggerReceived.EndsQueued),
//     rather than processed first.

// drainPoll is how often a task that waits for its outputs to drain looks
// again: the wait is for consumers that are slow by definition.
const drainPoll = 20 * time.Millisecond

// awaitingDrain reports whether the task must still wait for its output
// queues to drain before it finishes (with unaligned checkpoints only), and
// arms *tick to look again.
func (t *Task) awaitingDrain(tick *<-chan time.Time) bool {
	if t.uh == nil || !t.checkpointing || t.stop.noDrain || t.canceled.Load() {
		return false
	}
	t.out.flush()
	for _, o := range t.out.outs {
		if o.p != nil && !o.p.Drained() {
			*tick = time.After(drainPoll)
			return true
		}
	}
	return false
}

// queuedEnds asks the gate, for an unaligned trigger, which channels have
// their EndOfPartition queued, and copies the data before it.
func (t *Task) queuedEnds() (ends []bool, copies [][][]byte) {
	if t.gate == nil {
		return nil, nil
	}
	n := t.gate.NumChannels()
	ends, copies = make([]bool, n), make([][][]byte, n)
	for ch := range n {
		copies[ch], ends[ch] = t.gate.CopyToEnd(ch)
	}
	return ends, copies
}

// addMidBuffer adds the unprocessed rest of the buffer being processed
// (betweenRecords) to the input channel state of an unaligned snapshot
// just taken between two of its records: those records precede every
// barrier of the snapshot on their channel, and were not processed into
// the snapshot. A buffer recorded whole when it was polled belongs to an
// earlier capture; this is a new one.
func (t *Task) addMidBuffer(a barrier.TriggerSnapshot) {
	m := &t.mid
	if !a.Unaligned || !m.active || m.addedTo == a.CheckpointID {
		return
	}
	if c := t.capture; c != nil && c.id == a.CheckpointID && m.channel >= 0 && m.channel < len(c.inputs) {
		c.inputs[m.channel].add(m.rest)
		m.addedTo = a.CheckpointID
	}
}
