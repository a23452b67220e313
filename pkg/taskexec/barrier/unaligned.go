package barrier

import "time"

// Unaligned checkpoints (Flink's SingleCheckpointBarrierHandler with
// unaligned and timeoutable-aligned checkpoints, FLIP-76 and FLIP-183): the
// pure part. The task goroutine feeds Unaligned the events of barrier.go
// plus two of its own, and carries out its actions in order before it
// polls the gate again:
//
//	BufferReceived{Channel}  (only while Recording(): once per data buffer, before its records are processed)
//	AlignmentTimerFired{}    (when the timer armed for Deadline() fires)
//
//	TriggerSnapshot{Unaligned: true}: snapshot the chain, flush the outputs, send the barrier with
//	                           ResultPartition.BroadcastPriorityEvent and keep what it overtook (output
//	                           channel state); the writer gets the job only at ChannelStateComplete
//	RecordBuffer:              copy the buffer just polled on Channel into the input channel state
//	RecordOvertaken:           add the copies of the buffers the barrier just received on Channel overtook
//	                           (network.BufferOrEvent.OvertakenData) to the input channel state
//	RecordQueued:              add the copies of the rest of Channel, up to its queued EndOfPartition, taken
//	                           for an unaligned trigger at a task whose inputs finished (TriggerReceived.EndsQueued)
//	ChannelStateComplete:      the channel state is complete: hand snapshot and channel state to the writer
//	DiscardChannelState:       the checkpoint will not complete: drop its snapshot and channel state
//
// The handler is used for EXACTLY_ONCE when unaligned checkpoints are
// enabled. A barrier says what kind of checkpoint it belongs to (its flags):
//
//   - aligned (no flag: savepoints, or a trigger without unaligned): exactly
//     as Aligned, blocking each channel that delivered it;
//   - unaligned (FlagUnaligned, sent as a priority event): the first
//     barrier of checkpoint n on any channel snapshots at once. The input
//     channel state is then, per channel, every data buffer it delivers until
//     its barrier, plus the Overtaken buffers it delivers after its barrier
//     (received before the barrier, which overtook them). Those are recorded
//     from the copies the gate hands over with the barrier, when it is
//     delivered (as Flink spills the overtaken input buffers when it
//     processes the barrier), not when they are polled later: under
//     backpressure that would take as long as processing them. The
//     checkpoint is therefore complete as soon as every channel delivered
//     its barrier (or ended). No channel is ever blocked;
//   - timeoutable aligned (FlagAlignedTimeout): aligned until the
//     alignment has lasted the aligned-checkpoint timeout counted from the
//     checkpoint's start (the barrier's Timestamp), or until an unaligned
//     barrier of the checkpoint arrives from an upstream task that switched;
//     then it switches: snapshot, unblock every channel, forward the barrier
//     as unaligned, and record the channels whose barrier has not arrived.
//     The data after the barrier of an arrived channel is not state: those
//     channels were blocked, and their barriers were not priority events.
//
// Invariants, besides those of Aligned:
//
//   - after a TriggerSnapshot with Unaligned for n comes exactly one of
//     ChannelStateComplete n or DiscardChannelState n (maybe in the same
//     Step), and RecordBuffer n and RecordOvertaken n only between them;
//   - RecordOvertaken n for a channel comes at most once, in the Step of
//     that channel's barrier of n; from then on no buffer of the channel is
//     recorded for n (the overtaken ones are in the copies, the later ones
//     follow the barrier). RecordQueued n likewise, in the Step of the
//     trigger of n, for a channel whose end is queued: the channel then
//     counts as arrived;
//   - no channel is blocked while the channel state of a checkpoint is
//     being recorded (the Step that snapshots unaligned unblocks all);
//   - a buffer is recorded only after the snapshot it belongs to and before
//     that checkpoint completes: every record before the checkpoint's cut
//     is in the operator state or in the channel state, exactly once.

// BufferReceived: a data buffer was polled from Channel (fed only while
// Recording()).
type BufferReceived struct{ Channel int }

// AlignmentTimerFired: the timer armed for Deadline() fired.
type AlignmentTimerFired struct{}

func (BufferReceived) isEvent()      {}
func (AlignmentTimerFired) isEvent() {}

// RecordBuffer: add the buffer just polled on Channel to the input channel
// state of CheckpointID (a copy: processing goes on as usual).
type RecordBuffer struct {
	CheckpointID int64
	Channel      int
}

// RecordOvertaken: add the buffers the barrier of CheckpointID just
// received on Channel overtook (BarrierReceived.Overtaken of them; the
// gate's copies, network.BufferOrEvent.OvertakenData, in order) to the
// input channel state of CheckpointID. The buffers themselves are still
// delivered and processed after the barrier, and not recorded then.
type RecordOvertaken struct {
	CheckpointID int64
	Channel      int
}

// RecordQueued: add the copies of every data buffer queued on Channel up
// to its EndOfPartition (network.InputGate.CopyToEnd, taken when the
// trigger came) to the input channel state of CheckpointID. As with
// RecordOvertaken, the buffers are still processed later and not recorded
// then.
type RecordQueued struct {
	CheckpointID int64
	Channel      int
}

// ChannelStateComplete: every buffer of the channel state of CheckpointID
// is recorded; write it with the snapshot and acknowledge.
type ChannelStateComplete struct{ CheckpointID int64 }

// DiscardChannelState: CheckpointID, snapshotted unaligned, will not
// complete here; drop its snapshot and channel state.
type DiscardChannelState struct{ CheckpointID int64 }

func (RecordBuffer) isAction()         {}
func (RecordOvertaken) isAction()      {}
func (RecordQueued) isAction()         {}
func (ChannelStateComplete) isAction() {}
func (DiscardChannelState) isAction()  {}

// Unaligned handles aligned, unaligned and timeoutable aligned checkpoints
// of an EXACTLY_ONCE task with unaligned checkpoints enabled. One
// checkpoint is in progress at a time (aligning, or recording its channel
// state); a newer barrier or trigger subsumes it.
type Unaligned struct {
	single
	timeout time.Duration // aligned-checkpoint timeout; 0: none

	// capturing: latest was snapshotted unaligned; its channel state is
	// being recorded.
	capturing bool
	recording []bool // barrier not arrived yet: record every buffer
	// recordActs[ch] is RecordBuffer{latest, ch}, boxed once per
	// checkpoint: recording allocates nothing per buffer.
	recordActs []Action
}

// NewUnaligned returns a handler for a gate of numChannels channels (0 for
// a source); alignedTimeout is
// execution.checkpointing.aligned-checkpoint-timeout (0: none).
func NewUnaligned(numChannels int, alignedTimeout time.Duration) *Unaligned {
	h := &Unaligned{
		timeout:    alignedTimeout,
		recording:  make([]bool, numChannels),
		recordActs: make([]Action, numChannels),
	}
	h.init(numChannels, h.abortPending, "before it completed here")
	return h
}

// Recording reports whether the task must feed BufferReceived for every
// data buffer it polls.
func (h *Unaligned) Recording() bool { return h.capturing }

// Deadline returns when the checkpoint being aligned switches to
// unaligned: the task arms a timer for it and feeds AlignmentTimerFired.
func (h *Unaligned) Deadline() (time.Time, bool) {
	if !h.pending || h.capturing || h.timeout <= 0 || h.flags&FlagAlignedTimeout == 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(h.ts).Add(h.timeout), true
}

// Step applies one event and returns what the task must do now.
func (h *Unaligned) Step(now time.Time, ev Event) []Action {
	h.out = h.out[:0]
	switch ev := ev.(type) {
	case BufferReceived:
		ch := ev.Channel
		// Only a channel whose barrier has not arrived records: the
		// buffers its barrier overtook were recorded from the copies.
		if h.capturing && ch >= 0 && ch < h.numChannels && h.recording[ch] {
			h.out = append(h.out, h.recordActs[ch])
		}
	case BarrierReceived:
		if !h.arrive(now, ev) {
			break
		}
		switch {
		case h.capturing:
			h.stopRecording(ev.Channel)
			h.recordOvertaken(ev.Channel, ev.Overtaken)
			if h.allArrived() {
				h.completeCapture()
			}
		case ev.Flags&FlagUnaligned != 0:
			// An unaligned barrier: this one, or an upstream task that
			// switched a timeoutable checkpoint.
			h.goUnaligned(now, ev.Channel, ev.Overtaken)
		case h.allArrived():
			h.finishAligned(now)
		case h.timedOut(now):
			h.goUnaligned(now, -1, 0)
		default:
			h.block(ev.Channel)
		}
	case AlignmentTimerFired:
		if h.pending && !h.capturing && h.timedOut(now) {
			h.goUnaligned(now, -1, 0)
		}
	case CancelMarkerReceived:
		h.cancel(ev)
	case EndOfPartitionReceived:
		ch := ev.Channel
		if !h.validChannel(ch) {
			break
		}
		h.end(ch)
		if !h.pending {
			break
		}
		added := h.done.add(ch)
		switch {
		case h.capturing:
			// Nothing more comes from it.
			h.stopRecording(ch)
			if h.allArrived() {
				h.completeCapture()
			}
		case added && h.allArrived():
			h.finishTriggered(now)
		}
	case CheckpointAborted:
		h.aborted(ev)
	case TriggerReceived:
		if !h.trigger(now, ev) {
			break
		}
		switch {
		case h.allArrived():
			h.finishTriggered(now)
		case ev.Flags&FlagUnaligned != 0:
			h.goUnalignedAtEnd(now, ev.EndsQueued)
		}
	}
	return h.out
}

// goUnalignedAtEnd snapshots an unaligned checkpoint triggered at a task
// whose inputs all finished upstream (FLIP-147) at once, rather than once
// every channel delivered EndOfPartition (which, under backpressure, is
// once the backlog is processed): its barrier sits at the end of every
// channel, overtaking all the data still queued there. Channels whose end
// is queued (endsQueued) are recorded from the gate's copies of that rest
// (RecordQueued) and count as arrived; the others, whose end is still on
// its way, record their buffers as they are polled until it comes.
func (h *Unaligned) goUnalignedAtEnd(now time.Time, endsQueued []bool) {
	h.goUnaligned(now, -1, 0)
	for ch, queued := range endsQueued {
		if queued && h.validChannel(ch) && h.recording[ch] {
			h.stopRecording(ch)
			h.done.add(ch)
			h.out = append(h.out, RecordQueued{CheckpointID: h.latest, Channel: ch})
		}
	}
	if h.capturing && h.allArrived() {
		h.completeCapture()
	}
}

func (h *Unaligned) timedOut(now time.Time) bool {
	d, ok := h.Deadline()
	return ok && !now.Before(d)
}

// finishTriggered snapshots a checkpoint whose every channel arrived
// without a barrier of its own (a trigger: a source, or inputs that
// ended): unaligned if its flags say so, else aligned.
func (h *Unaligned) finishTriggered(now time.Time) {
	if h.flags&FlagUnaligned != 0 {
		h.goUnaligned(now, -1, 0)
	} else {
		h.finishAligned(now)
	}
}

// goUnaligned snapshots latest unaligned now: the barrier goes downstream
// as an unaligned one, every channel is unblocked, and the channels whose
// barrier has not arrived record until it does. ch (if >= 0) delivered the
// barrier that decided it, overtaking overtaken buffers. Alignment is the
// time aligned before the switch (0 for a checkpoint unaligned from its
// first barrier).
func (h *Unaligned) goUnaligned(now time.Time, ch, overtaken int) {
	h.flags = h.flags&^FlagAlignedTimeout | FlagUnaligned
	h.capturing = true
	h.out = append(h.out, TriggerSnapshot{CheckpointID: h.latest, Timestamp: h.ts, Flags: h.flags,
		Alignment: now.Sub(h.start), Unaligned: true})
	h.unblock()
	for c := range h.recordActs {
		h.recordActs[c] = RecordBuffer{CheckpointID: h.latest, Channel: c}
	}
	for c, in := range h.done.in {
		if !in {
			h.recording[c] = true
		}
	}
	if ch >= 0 {
		h.recordOvertaken(ch, overtaken)
	}
	// For a capturing checkpoint, every channel arrived means its channel
	// state is all recorded.
	if h.allArrived() {
		h.completeCapture()
	}
}

func (h *Unaligned) completeCapture() {
	h.pending, h.capturing = false, false
	h.out = append(h.out, ChannelStateComplete{CheckpointID: h.latest})
}

func (h *Unaligned) stopRecording(ch int) {
	h.recording[ch] = false
}

// recordOvertaken records the n buffers the barrier of latest overtook on
// ch, from the copies delivered with it.
func (h *Unaligned) recordOvertaken(ch, n int) {
	if n > 0 {
		h.out = append(h.out, RecordOvertaken{CheckpointID: h.latest, Channel: ch})
	}
}

// abortPending ends the checkpoint in progress without a snapshot (or
// drops the one taken unaligned).
func (h *Unaligned) abortPending() {
	if !h.pending {
		return
	}
	h.pending = false
	h.unblock()
	if h.capturing {
		h.capturing = false
		clear(h.recording)
		h.out = append(h.out, DiscardChannelState{CheckpointID: h.latest})
	}
}
