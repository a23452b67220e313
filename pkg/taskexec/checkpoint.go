package taskexec

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/taskexec/barrier"
	"github.com/weirstream/weir/proto/weirpb"
)

// The flags of a CheckpointBarrier event are barrier.Flag*.

// noID is below every checkpoint id: no checkpoint.
const noID = int64(-1) << 62

// CheckpointOptions are the options of a TriggerCheckpoint.
type CheckpointOptions struct {
	Savepoint bool
	Unaligned bool
	// Stop (with Savepoint) is stop-with-savepoint: the sources stop after
	// the savepoint completes. Drain (with Stop) ends their input first.
	Stop  bool
	Drain bool
}

// flags returns the barrier flags of o. Savepoints are always aligned, and
// stop and drain mean nothing without a savepoint: such requests are taken
// as what they can be.
func (o CheckpointOptions) flags() uint32 {
	var f uint32
	switch {
	case o.Savepoint:
		f |= barrier.FlagSavepoint
		if o.Stop {
			f |= barrier.FlagStop
			if o.Drain {
				f |= barrier.FlagDrain
			}
		}
	case o.Unaligned:
		f |= barrier.FlagUnaligned
	}
	return f
}

// TriggerCheckpoint asks the task to take checkpoint id (Unix-milliseconds
// timestamp ts): a source snapshots between two PollNext batches and emits
// the barrier; a task whose inputs have all finished upstream (FLIP-147)
// snapshots once it has processed everything they sent. The task
// acknowledges or declines through Env.Responder. It returns ErrNotRunning
// once the task has ended: the caller then declines for it.
//
// o.Unaligned is honoured in a job with unaligned checkpoints enabled
// (EXACTLY_ONCE): the barrier is then a priority event, or, with an
// aligned-checkpoint timeout, a timeoutable aligned barrier; otherwise the
// checkpoint is aligned.
func (t *Task) TriggerCheckpoint(id, ts int64, o CheckpointOptions) error {
	flags := t.barrierFlags(o)
	return t.Execute(func() error {
		ev := barrier.TriggerReceived{CheckpointID: id, Timestamp: ts, Flags: flags}
		var queued [][][]byte
		if flags&barrier.FlagUnaligned != 0 {
			ev.EndsQueued, queued = t.queuedEnds()
		}
		return t.carryOut(t.handler.Step(t.now(), ev), carried{queued: queued})
	})
}

// NotifyCheckpointComplete tells every CheckpointListener of the chain, in
// the task goroutine, that checkpoint id completed; a task waiting for its
// final checkpoint finishes once one taken after its end of input
// completed. A listener's error fails the task.
func (t *Task) NotifyCheckpointComplete(id int64) error {
	return t.Execute(func() error {
		for _, c := range t.liveChain() {
			if l, ok := c.instance().(operator.CheckpointListener); ok {
				if err := l.NotifyCheckpointComplete(id); err != nil {
					return opError(c.spec.ID, t.subtask, fmt.Errorf("checkpoint %d complete: %w", id, err))
				}
			}
		}
		if t.awaitingFinal && t.finalFrom != noID && id >= t.finalFrom {
			t.log.Info("final checkpoint complete", zap.Int64("checkpoint", id))
			t.awaitingFinal = false
		}
		// After the listeners: a stopping source ends its input only once
		// the chain committed the savepoint.
		t.stopCheckpointComplete(id)
		return nil
	})
}

// NotifyCheckpointAborted aborts the alignment of checkpoint id if the task
// is aligning it (forwarding a cancel marker), then tells every
// CheckpointListener of the chain. A listener's error fails the task.
func (t *Task) NotifyCheckpointAborted(id int64) error {
	return t.Execute(func() error {
		if err := t.stepBarrier(barrier.CheckpointAborted{CheckpointID: id}); err != nil {
			return err
		}
		for _, c := range t.liveChain() {
			if l, ok := c.instance().(operator.CheckpointListener); ok {
				if err := l.NotifyCheckpointAborted(id); err != nil {
					return opError(c.spec.ID, t.subtask, fmt.Errorf("checkpoint %d aborted: %w", id, err))
				}
			}
		}
		t.stopCheckpointAborted(id)
		return nil
	})
}

// instance is the operator or source of a chain element.
func (c *chainOp) instance() any {
	if c.src != nil {
		return c.src
	}
	return c.op
}

func (t *Task) now() time.Time {
	if t.env.Now != nil {
		return t.env.Now()
	}
	return time.Now()
}

// stepBarrier feeds the barrier handler one event and carries out its
// actions. Task goroutine only.
func (t *Task) stepBarrier(ev barrier.Event) error {
	return t.carryOut(t.handler.Step(t.now(), ev), carried{})
}

// carried is the data the actions of one Step may refer to: the buffer
// just polled (RecordBuffer), or the copies of the buffers the barrier just
// received overtook (RecordOvertaken).
type carried struct {
	data      []byte
	overtaken [][]byte
	queued    [][][]byte // per channel: the copies of a trigger's RecordQueued (queuedEnds)
}

// carryOut does what the handler decided. It rearms the timer of the
// aligned-checkpoint timeout afterwards.
func (t *Task) carryOut(actions []barrier.Action, in carried) error {
	defer t.armAlignmentTimer()
	for _, a := range actions {
		switch a := a.(type) {
		case barrier.BlockChannel:
			t.gate.BlockChannel(a.Channel)
		case barrier.UnblockAll:
			t.gate.UnblockAll()
		case barrier.TriggerSnapshot:
			if err := t.snapshot(a); err != nil {
				return err
			}
			t.addMidBuffer(a)
		case barrier.DeclineCheckpoint:
			t.decline(a.CheckpointID, a.Reason, a.Message)
		case barrier.ForwardCancelMarker:
			if err := t.broadcastCancelMarker(a.CheckpointID); err != nil {
				return err
			}
		case barrier.RecordBuffer:
			if c := t.capture; c != nil && c.id == a.CheckpointID && in.data != nil && a.Channel < len(c.inputs) {
				c.inputs[a.Channel].add(in.data)
			}
		case barrier.RecordOvertaken:
			if c := t.capture; c != nil && c.id == a.CheckpointID && a.Channel < len(c.inputs) {
				for _, b := range in.overtaken {
					c.inputs[a.Channel].add(b)
				}
			}
		case barrier.RecordQueued:
			if c := t.capture; c != nil && c.id == a.CheckpointID && a.Channel < len(c.inputs) && a.Channel < len(in.queued) {
				for _, b := range in.queued[a.Channel] {
					c.inputs[a.Channel].add(b)
				}
			}
		case barrier.ChannelStateComplete:
			t.channelStateComplete(a.CheckpointID)
		case barrier.DiscardChannelState:
			t.discardChannelState(a.CheckpointID)
		}
	}
	return nil
}

// snapshot takes checkpoint a in the task goroutine: the state of every
// Snapshotter of the chain, head to tail, then the barrier on every output
// (before any later record), then the state goes to the writer goroutine,
// which writes it and acknowledges. A checkpoint the task cannot take is
// declined and canceled downstream; only a broken output fails the task.
func (t *Task) snapshot(a barrier.TriggerSnapshot) error {
	// Flink's sync duration: from here (the barrier, aligned or not) until
	// the task resumes processing records. The wall clock's monotonic
	// reading, not Env.Now: that clock is for alignment.
	syncStart := time.Now()
	id := a.CheckpointID
	reject := func(reason barrier.DeclineReason, msg string) error {
		t.decline(id, reason, msg)
		return t.broadcastCancelMarker(id)
	}
	if !t.checkpointing && a.Flags&barrier.FlagSavepoint == 0 {
		return reject(barrier.DeclineReasonDeclined, fmt.Sprintf("checkpointing is not enabled for this job (%s is not set)", "execution.checkpointing.interval"))
	}
	// A savepoint is written like a checkpoint, to the checkpoint's
	// location; the JobManager copies it to the savepoint's directory.
	stop := a.Flags&barrier.FlagStop != 0
	if stop {
		if err := t.beforeStopSnapshot(a); err != nil {
			return err
		}
	}
	job := &writeJob{
		id: id, ts: a.Timestamp, alignment: a.Alignment, finished: t.inputEnded, unaligned: a.Unaligned,
	}
	for _, c := range t.liveChain() {
		s, ok := c.instance().(operator.Snapshotter)
		if !ok {
			continue
		}
		snap, err := s.SnapshotState(id)
		if err != nil {
			return reject(barrier.DeclineReasonDeclined, fmt.Sprintf("operator %q[%d]: snapshot of checkpoint %d: %v", c.spec.ID, t.subtask, id, err))
		}
		if snap != nil && (len(snap.Items) > 0 || snap.WriteKeyGroup != nil) {
			job.ops = append(job.ops, opSnapshot{id: c.spec.ID, keyGroups: c.ctx.KeyGroups, snap: snap})
		}
	}
	bev := network.Event{Type: network.CheckpointBarrier, CheckpointID: id, Timestamp: a.Timestamp, Flags: a.Flags}
	if a.Unaligned {
		// The barrier overtakes the queued output; the writer gets the job
		// once the channel state is complete (ChannelStateComplete).
		c, err := t.sendPriorityBarrier(bev)
		if err != nil {
			return err
		}
		c.job = job
		t.capture = c
	} else if err := t.broadcastEvent(bev); err != nil {
		return err
	}
	if t.inputEnded && t.finalFrom == noID {
		t.finalFrom = id
	}
	if stop {
		t.afterStopSnapshot(a)
	}
	t.lastAlignment.Store(int64(a.Alignment))
	// Flink's checkpointStartDelay: trigger to the first barrier (or the
	// trigger reaching a source); clocks of two hosts, so never negative.
	delay := t.now().Sub(time.UnixMilli(a.Timestamp)) - a.Alignment
	t.lastStartDelay.Store(int64(max(delay, 0)))
	// Set before the writer can see the job (enqueue, or for an unaligned
	// checkpoint channelStateComplete, later in this goroutine).
	job.sync = time.Since(syncStart)
	if !a.Unaligned {
		t.startWriter().enqueue(job)
	}
	return nil
}

// decline has the writer goroutine decline checkpoint id, after the
// acknowledgements already queued.
func (t *Task) decline(id int64, reason barrier.DeclineReason, msg string) {
	t.log.Info("declining checkpoint", zap.Int64("checkpoint", id), zap.Stringer("reason", reason), zap.String("cause", msg))
	t.startWriter().enqueue(&writeJob{id: id, decline: &weirpb.DeclineCheckpointRequest{
		Execution: t.exec, CheckpointId: id, ReasonCode: reason, Message: msg,
	}})
}

// broadcastEvent sends ev on every output partition, after the records
// emitted before it.
func (t *Task) broadcastEvent(ev network.Event) error {
	for i, o := range t.out.outs {
		if o.p == nil {
			continue
		}
		if err := o.p.BroadcastEvent(ev); err != nil {
			return &attributedError{fmt.Errorf("send %s to %q: %w", ev.Type, t.desc.GetOutputs()[i].GetConsumerOperator(), err)}
		}
	}
	return nil
}

// broadcastCancelMarker tells the tasks downstream that checkpoint id is
// abandoned. With unaligned checkpoints the marker is a priority event, as
// the barriers are: it overtakes the queued data, so that a consumer drops
// the checkpoint's alignment or channel state at once, not after the
// backlog (the buffers it overtakes are no channel state: they are
// delivered as usual).
func (t *Task) broadcastCancelMarker(id int64) error {
	ev := network.Event{Type: network.CancelCheckpointMarker, CheckpointID: id}
	if t.uh == nil {
		return t.broadcastEvent(ev)
	}
	for i, o := range t.out.outs {
		if o.p == nil {
			continue
		}
		if _, err := o.p.BroadcastPriorityEvent(ev); err != nil {
			return &attributedError{fmt.Errorf("send %s to %q: %w", ev.Type, t.desc.GetOutputs()[i].GetConsumerOperator(), err)}
		}
	}
	return nil
}

// channelEnded records that a channel will deliver no more records
// (EndOfData or EndOfPartition); once every channel has, the input ended.
func (t *Task) channelEnded(ch int) error {
	if ch < 0 || ch >= len(t.dataEnded) || t.dataEnded[ch] {
		return nil
	}
	t.dataEnded[ch] = true
	t.numDataEnded++
	if t.numDataEnded == len(t.dataEnded) {
		return t.endInput()
	}
	return nil
}

// endInput runs once, when every input ended: EndInput of every operator
// in chain order (so that a downstream operator sees all upstream output
// first), then EndOfData on every output. With checkpointing, an operator
// that needs a final checkpoint (FLIP-147) keeps the task from finishing
// until a checkpoint taken from now on completes.
//
// An input stopped by a stop-with-savepoint without drain ends without
// EndInput and without a final checkpoint, and says so downstream
// (EndOfDataFlagStop; savepoint.go).
func (t *Task) endInput() error {
	if t.inputEnded {
		return nil
	}
	noDrain := t.stop.noDrain
	for _, c := range t.chain {
		if c.op == nil || noDrain {
			continue
		}
		if err := c.op.EndInput(c.out); err != nil {
			return opError(c.spec.ID, t.subtask, fmt.Errorf("end input: %w", err))
		}
	}
	t.publish()
	t.inputEnded = true
	ev := network.Event{Type: network.EndOfData}
	if noDrain {
		ev.Flags = EndOfDataFlagStop
	}
	if err := t.broadcastEvent(ev); err != nil {
		return err
	}
	if !t.checkpointing {
		return nil
	}
	if noDrain {
		t.logSkippedFinalCheckpoint()
		return nil
	}
	for _, c := range t.chain {
		if f, ok := c.instance().(operator.FinalCheckpointer); ok && f.NeedsFinalCheckpoint() {
			t.awaitingFinal = true
			t.log.Info("input ended; waiting for a final checkpoint before finishing", zap.String("operator", c.spec.ID))
			break
		}
	}
	return nil
}

// awaitFinalCheckpoint serves the mailbox (triggers, notifications) until
// a checkpoint taken after the end of input completed, and until the
// stop-with-savepoint this task snapshotted, if any, completed or was
// aborted (its listeners commit it before the task finishes).
func (t *Task) awaitFinalCheckpoint() error {
	var drainTick <-chan time.Time
	for t.awaitingFinal || t.stop.id != noID || t.awaitingDrain(&drainTick) {
		t.times.switchTo(stateIdle)
		select {
		case <-drainTick:
			t.times.switchTo(stateBusy)
		case a := <-t.mailbox:
			t.times.switchTo(stateBusy)
			t.pending.Add(-1)
			if err := t.runAction(a); err != nil {
				return err
			}
		case <-t.flushWake:
			t.times.switchTo(stateBusy)
			t.maybeFlush()
		case <-t.cancelCh:
			t.times.switchTo(stateBusy)
			return ErrCanceled
		}
	}
	return nil
}
