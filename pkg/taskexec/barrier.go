package taskexec

import (
	"fmt"
	"time"
)

// Barrier handlers: the pure part of checkpointing in a task with inputs
// (Flink's CheckpointBarrierHandler). The task goroutine feeds a handler the
// checkpoint events of its input gate (barriers, cancel markers, end of
// partition), the triggers it gets by RPC and the aborts the JobManager
// notifies, each with the current time, and carries out the actions it
// returns, in order, before it polls the gate again:
//
//	for _, a := range h.Step(now, BarrierReceived{Channel: ch, CheckpointID: id}) {
//		switch a := a.(type) {
//		case BlockChannel:        gate.BlockChannel(a.Channel)
//		case UnblockAll:          gate.UnblockAll()
//		case TriggerSnapshot:     snapshot the chain, broadcast the barrier, hand the state to the writer
//		case DeclineCheckpoint:   tell the JobManager (through the writer, after earlier acks)
//		case ForwardCancelMarker: broadcast a CancelCheckpointMarker on every output
//		}
//	}
//
// Three handlers exist, chosen by execution.checkpointing.mode and
// execution.checkpointing.unaligned.enabled:
//
//   - AlignedBarrierHandler (EXACTLY_ONCE, Flink's SingleCheckpointBarrierHandler
//     in aligned mode): a channel that delivered the barrier of checkpoint n is
//     blocked until barrier n arrived on every channel, so that the snapshot
//     reflects exactly the records before the barrier on every channel.
//   - BarrierTracker (AT_LEAST_ONCE, Flink's CheckpointBarrierTracker): never
//     blocks; the snapshot is taken when the last barrier of n arrived, so it
//     may include records that followed barrier n on the faster channels.
//   - UnalignedBarrierHandler (EXACTLY_ONCE with unaligned checkpoints,
//     unaligned.go): aligns aligned barriers (savepoints) as the first one
//     does, snapshots unaligned checkpoints at their first barrier and
//     records the in-flight data as channel state, and switches a
//     timeoutable aligned checkpoint to unaligned when its alignment lasts
//     too long.
//
// Both count a channel that delivered EndOfPartition as having delivered
// every later barrier (FLIP-147), so a checkpoint can complete while some
// inputs have finished. Invariants of both:
//
//   - a TriggerSnapshot for checkpoint n comes at most once, and never after
//     a DeclineCheckpoint or ForwardCancelMarker for n;
//   - checkpoint ids snapshotted strictly increase;
//   - every BlockChannel is followed by UnblockAll in the same Step that
//     ends the alignment (snapshot or abort); no channel stays blocked when
//     no checkpoint is being aligned.
//
// The slice returned by Step is reused by the next Step.

// BarrierEvent is an input of a barrier handler.
type BarrierEvent interface{ isBarrierEvent() }

// BarrierReceived: a CheckpointBarrier arrived on Channel.
type BarrierReceived struct {
	Channel      int
	CheckpointID int64
	Timestamp    int64 // Unix milliseconds of the trigger
	Flags        uint32
	// Overtaken is, for an unaligned barrier (a priority event), the number
	// of data buffers of Channel received before it that the gate delivers
	// after it (network.BufferOrEvent.Overtaken); the task holds copies of
	// them (OvertakenData) for RecordOvertaken. Only the unaligned handler
	// reads it.
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
// The snapshot is taken once every channel delivered EndOfPartition, so
// that it covers every record those finished inputs sent.
type TriggerReceived struct {
	CheckpointID int64
	Timestamp    int64
	Flags        uint32
}

func (BarrierReceived) isBarrierEvent()        {}
func (CancelMarkerReceived) isBarrierEvent()   {}
func (EndOfPartitionReceived) isBarrierEvent() {}
func (CheckpointAborted) isBarrierEvent()      {}
func (TriggerReceived) isBarrierEvent()        {}

// BarrierAction is an output of a barrier handler.
type BarrierAction interface{ isBarrierAction() }

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
	// Unaligned (UnalignedBarrierHandler only): forward the barrier as a
	// priority event, record the output channel state it overtakes, and
	// hold the snapshot until ChannelStateComplete (unaligned.go).
	Unaligned bool
}

// DeclineCheckpoint: tell the JobManager this task will not acknowledge
// CheckpointID. Reason is one of the Decline* constants.
type DeclineCheckpoint struct {
	CheckpointID int64
	Reason       string
	Message      string
}

// ForwardCancelMarker: broadcast a CancelCheckpointMarker for CheckpointID
// on every output, so that downstream tasks stop aligning it.
type ForwardCancelMarker struct{ CheckpointID int64 }

func (BlockChannel) isBarrierAction()        {}
func (UnblockAll) isBarrierAction()          {}
func (TriggerSnapshot) isBarrierAction()     {}
func (DeclineCheckpoint) isBarrierAction()   {}
func (ForwardCancelMarker) isBarrierAction() {}

// Reasons of a decline: Flink's CheckpointFailureReason names. A task sends
// DeclineCheckpointRequest.reason as "<reason>: <message>". As in Flink's
// CheckpointFailureManager, only DeclineReasonDeclined and
// DeclineReasonAsync are failures of their own; the others follow from a
// failure reported elsewhere (or from a newer checkpoint) and should not
// count toward tolerable failed checkpoints.
const (
	// DeclineReasonDeclined: an operator's synchronous snapshot failed, or
	// the task cannot take this kind of checkpoint.
	DeclineReasonDeclined = "CHECKPOINT_DECLINED"
	// DeclineReasonAsync: writing the snapshot to checkpoint storage
	// failed (full disk, permissions, ...).
	DeclineReasonAsync = "CHECKPOINT_ASYNC_EXCEPTION"
	// DeclineReasonSubsumed: a newer barrier or trigger arrived while
	// this checkpoint was being aligned.
	DeclineReasonSubsumed = "CHECKPOINT_DECLINED_SUBSUMED"
	// DeclineReasonCancellationBarrier: an upstream task canceled the
	// checkpoint (CancelCheckpointMarker).
	DeclineReasonCancellationBarrier = "CHECKPOINT_DECLINED_ON_CANCELLATION_BARRIER"
	// DeclineReasonTaskNotReady: the trigger found the task not running
	// (finished, canceled, failed, or not deployed).
	DeclineReasonTaskNotReady = "CHECKPOINT_DECLINED_TASK_NOT_READY"
)

// BarrierHandler is what the task needs of a handler.
type BarrierHandler interface {
	Step(now time.Time, ev BarrierEvent) []BarrierAction
}

// noID is below every checkpoint id.
const noID = int64(-1) << 62

// channelSet is the channels that have delivered the barrier of one
// checkpoint, or ended.
type channelSet struct {
	in []bool
	n  int
}

func (s *channelSet) reset(numChannels int) {
	if cap(s.in) < numChannels {
		s.in = make([]bool, numChannels)
	}
	s.in = s.in[:numChannels]
	clear(s.in)
	s.n = 0
}

func (s *channelSet) add(ch int) bool {
	if s.in[ch] {
		return false
	}
	s.in[ch] = true
	s.n++
	return true
}

// AlignedBarrierHandler aligns barriers for EXACTLY_ONCE checkpoints. One
// checkpoint is aligned at a time: a newer barrier (or trigger) aborts the
// alignment of an older one, which is declined as subsumed; barriers of
// checkpoints older than the latest one seen are ignored.
type AlignedBarrierHandler struct {
	numChannels int
	ended       []bool
	numEnded    int

	latest    int64 // newest checkpoint id seen (barrier, trigger, cancel, abort)
	pending   bool  // latest is being aligned
	ts        int64
	flags     uint32
	start     time.Time
	done      channelSet // delivered the barrier of latest, or ended
	numBlocks int        // channels blocked for latest

	out []BarrierAction
}

// NewAlignedBarrierHandler returns a handler for a gate of numChannels
// channels (0 for a source).
func NewAlignedBarrierHandler(numChannels int) *AlignedBarrierHandler {
	h := &AlignedBarrierHandler{numChannels: numChannels, ended: make([]bool, numChannels), latest: noID}
	h.done.reset(numChannels)
	return h
}

// Pending returns the checkpoint being aligned, if any.
func (h *AlignedBarrierHandler) Pending() (int64, bool) { return h.latest, h.pending }

// Step applies one event and returns what the task must do now.
func (h *AlignedBarrierHandler) Step(now time.Time, ev BarrierEvent) []BarrierAction {
	h.out = h.out[:0]
	switch ev := ev.(type) {
	case BarrierReceived:
		if !h.validChannel(ev.Channel) {
			break
		}
		if ev.CheckpointID < h.latest || (ev.CheckpointID == h.latest && !h.pending) {
			break // an aborted, subsumed or completed checkpoint
		}
		if ev.CheckpointID > h.latest {
			h.subsume(ev.CheckpointID)
			h.begin(now, ev.CheckpointID, ev.Timestamp, ev.Flags)
		}
		if !h.done.add(ev.Channel) {
			break // a second barrier on one channel: ignore
		}
		if h.complete() {
			h.finish(now)
		} else {
			h.numBlocks++
			h.out = append(h.out, BlockChannel{Channel: ev.Channel})
		}
	case CancelMarkerReceived:
		if !h.validChannel(ev.Channel) {
			break
		}
		if ev.CheckpointID < h.latest || (ev.CheckpointID == h.latest && !h.pending) {
			break // canceled already, or completed
		}
		if ev.CheckpointID > h.latest {
			h.subsume(ev.CheckpointID)
		}
		h.latest, h.pending = ev.CheckpointID, false
		h.unblock()
		h.out = append(h.out,
			DeclineCheckpoint{CheckpointID: ev.CheckpointID, Reason: DeclineReasonCancellationBarrier,
				Message: fmt.Sprintf("checkpoint %d was canceled upstream (cancel marker on input channel %d)", ev.CheckpointID, ev.Channel)},
			ForwardCancelMarker{CheckpointID: ev.CheckpointID})
	case EndOfPartitionReceived:
		if !h.validChannel(ev.Channel) {
			break
		}
		h.ended[ev.Channel] = true
		h.numEnded++
		if h.pending && h.done.add(ev.Channel) && h.complete() {
			h.finish(now)
		}
	case CheckpointAborted:
		switch {
		case ev.CheckpointID == h.latest && h.pending:
			h.pending = false
			h.unblock()
			h.out = append(h.out, ForwardCancelMarker{CheckpointID: ev.CheckpointID})
		case ev.CheckpointID > h.latest && !h.pending:
			// Not started here yet: its barriers will be ignored when they
			// come, and downstream tasks need not align it either.
			h.latest = ev.CheckpointID
			h.out = append(h.out, ForwardCancelMarker{CheckpointID: ev.CheckpointID})
		}
		// An abort of an older checkpoint, or of a newer one while an older
		// one aligns (its barriers will then align and be acknowledged in
		// vain), changes nothing.
	case TriggerReceived:
		switch {
		case ev.CheckpointID < h.latest:
			h.out = append(h.out, DeclineCheckpoint{CheckpointID: ev.CheckpointID, Reason: DeclineReasonSubsumed,
				Message: fmt.Sprintf("trigger of checkpoint %d after checkpoint %d", ev.CheckpointID, h.latest)})
		case ev.CheckpointID == h.latest:
			// A duplicate trigger: taken or aborted already.
		default:
			h.subsume(ev.CheckpointID)
			h.begin(now, ev.CheckpointID, ev.Timestamp, ev.Flags)
			if h.complete() {
				h.finish(now)
			}
		}
	}
	return h.out
}

func (h *AlignedBarrierHandler) validChannel(ch int) bool {
	return ch >= 0 && ch < h.numChannels && !h.ended[ch]
}

// subsume aborts the alignment of an older checkpoint because newer
// arrived.
func (h *AlignedBarrierHandler) subsume(newer int64) {
	if !h.pending {
		return
	}
	h.pending = false
	h.unblock()
	h.out = append(h.out,
		DeclineCheckpoint{CheckpointID: h.latest, Reason: DeclineReasonSubsumed,
			Message: fmt.Sprintf("checkpoint %d was subsumed by checkpoint %d during alignment", h.latest, newer)},
		ForwardCancelMarker{CheckpointID: h.latest})
}

func (h *AlignedBarrierHandler) begin(now time.Time, id, ts int64, flags uint32) {
	h.latest, h.pending = id, true
	h.ts, h.flags, h.start = ts, flags, now
	h.done.reset(h.numChannels)
	for ch, e := range h.ended {
		if e {
			h.done.add(ch)
		}
	}
}

func (h *AlignedBarrierHandler) complete() bool { return h.done.n == h.numChannels }

func (h *AlignedBarrierHandler) finish(now time.Time) {
	h.pending = false
	h.out = append(h.out, TriggerSnapshot{CheckpointID: h.latest, Timestamp: h.ts, Flags: h.flags, Alignment: now.Sub(h.start)})
	h.unblock()
}

func (h *AlignedBarrierHandler) unblock() {
	if h.numBlocks > 0 {
		h.numBlocks = 0
		h.out = append(h.out, UnblockAll{})
	}
}

// maxTrackedCheckpoints bounds the checkpoints a BarrierTracker follows at
// once (Flink's MAX_CHECKPOINTS_TO_TRACK).
const maxTrackedCheckpoints = 50

// trackedCheckpoint is one checkpoint for which some barriers arrived.
type trackedCheckpoint struct {
	id      int64
	ts      int64
	flags   uint32
	start   time.Time
	done    channelSet
	aborted bool // counted to the end, but never snapshotted
}

// BarrierTracker tracks barriers for AT_LEAST_ONCE checkpoints: it never
// blocks a channel and may follow several checkpoints at once. When the last
// barrier of checkpoint n arrives, n is snapshotted and every older
// checkpoint still incomplete is dropped (it cannot complete any more and
// is subsumed by n at the JobManager). Barriers of checkpoints older than
// the latest one seen start nothing.
type BarrierTracker struct {
	numChannels int
	ended       []bool
	latest      int64
	pending     []*trackedCheckpoint // oldest first
	free        []*trackedCheckpoint
	out         []BarrierAction
}

// NewBarrierTracker returns a tracker for a gate of numChannels channels
// (0 for a source).
func NewBarrierTracker(numChannels int) *BarrierTracker {
	return &BarrierTracker{numChannels: numChannels, ended: make([]bool, numChannels), latest: noID}
}

// Pending returns the ids of the checkpoints being tracked, oldest first.
func (t *BarrierTracker) Pending() []int64 {
	ids := make([]int64, len(t.pending))
	for i, p := range t.pending {
		ids[i] = p.id
	}
	return ids
}

// Step applies one event and returns what the task must do now.
func (t *BarrierTracker) Step(now time.Time, ev BarrierEvent) []BarrierAction {
	t.out = t.out[:0]
	switch ev := ev.(type) {
	case BarrierReceived:
		if !t.validChannel(ev.Channel) {
			break
		}
		if i := t.find(ev.CheckpointID); i >= 0 {
			p := t.pending[i]
			if p.done.add(ev.Channel) && t.complete(p) {
				t.completeAt(now, i)
			}
			break
		}
		if ev.CheckpointID > t.latest {
			p := t.track(now, ev.CheckpointID, ev.Timestamp, ev.Flags)
			p.done.add(ev.Channel)
			if t.complete(p) {
				t.completeAt(now, len(t.pending)-1)
			}
		}
	case CancelMarkerReceived:
		if !t.validChannel(ev.Channel) {
			break
		}
		id := ev.CheckpointID
		// Older checkpoints cannot complete any more: abort them.
		for len(t.pending) > 0 && t.pending[0].id < id {
			t.abort(t.pending[0], fmt.Sprintf("checkpoint %d was canceled upstream by a cancel marker of checkpoint %d on input channel %d", t.pending[0].id, id, ev.Channel))
			t.drop(1)
		}
		cancelMsg := fmt.Sprintf("checkpoint %d was canceled upstream (cancel marker on input channel %d)", id, ev.Channel)
		switch {
		case len(t.pending) > 0 && t.pending[0].id == id:
			p := t.pending[0]
			t.abort(p, cancelMsg)
			if p.done.add(ev.Channel) && t.complete(p) {
				t.drop(1)
			}
		case id > t.latest:
			t.latest = id
			p := t.track(now, id, 0, 0)
			t.abort(p, cancelMsg)
			p.done.add(ev.Channel)
			if t.complete(p) {
				t.drop(len(t.pending))
			}
		}
	case EndOfPartitionReceived:
		if !t.validChannel(ev.Channel) {
			break
		}
		t.ended[ev.Channel] = true
		// The newest checkpoint this completes wins; older ones are dropped.
		for i := len(t.pending) - 1; i >= 0; i-- {
			p := t.pending[i]
			if p.done.add(ev.Channel) && t.complete(p) {
				// Every older one is complete too, or can no longer be.
				t.completeAt(now, i)
				break
			}
		}
	case CheckpointAborted:
		if i := t.find(ev.CheckpointID); i >= 0 {
			if p := t.pending[i]; !p.aborted {
				p.aborted = true
				t.out = append(t.out, ForwardCancelMarker{CheckpointID: p.id})
			}
			break
		}
		if ev.CheckpointID > t.latest {
			p := t.track(now, ev.CheckpointID, 0, 0)
			p.aborted = true
			t.out = append(t.out, ForwardCancelMarker{CheckpointID: p.id})
			if t.complete(p) { // every channel ended: nothing will come
				t.drop(len(t.pending))
			}
		}
	case TriggerReceived:
		switch {
		case ev.CheckpointID < t.latest:
			t.out = append(t.out, DeclineCheckpoint{CheckpointID: ev.CheckpointID, Reason: DeclineReasonSubsumed,
				Message: fmt.Sprintf("trigger of checkpoint %d after checkpoint %d", ev.CheckpointID, t.latest)})
		case ev.CheckpointID == t.latest:
		default:
			p := t.track(now, ev.CheckpointID, ev.Timestamp, ev.Flags)
			if t.complete(p) {
				t.completeAt(now, len(t.pending)-1)
			}
		}
	}
	return t.out
}

func (t *BarrierTracker) validChannel(ch int) bool {
	return ch >= 0 && ch < t.numChannels && !t.ended[ch]
}

func (t *BarrierTracker) find(id int64) int {
	for i, p := range t.pending {
		if p.id == id {
			return i
		}
	}
	return -1
}

// track starts following checkpoint id (newer than every tracked one).
func (t *BarrierTracker) track(now time.Time, id, ts int64, flags uint32) *trackedCheckpoint {
	t.latest = id
	var p *trackedCheckpoint
	if n := len(t.free); n > 0 {
		p, t.free = t.free[n-1], t.free[:n-1]
	} else {
		p = &trackedCheckpoint{}
	}
	*p = trackedCheckpoint{id: id, ts: ts, flags: flags, start: now, done: p.done}
	p.done.reset(t.numChannels)
	for ch, e := range t.ended {
		if e {
			p.done.add(ch)
		}
	}
	t.pending = append(t.pending, p)
	if len(t.pending) > maxTrackedCheckpoints {
		t.drop(1)
	}
	return p
}

func (t *BarrierTracker) complete(p *trackedCheckpoint) bool { return p.done.n == t.numChannels }

// completeAt removes pending[i] and every older checkpoint, and snapshots
// pending[i] unless it was aborted.
func (t *BarrierTracker) completeAt(now time.Time, i int) {
	p := t.pending[i]
	if !p.aborted {
		t.out = append(t.out, TriggerSnapshot{CheckpointID: p.id, Timestamp: p.ts, Flags: p.flags, Alignment: now.Sub(p.start)})
	}
	t.drop(i + 1)
}

// abort declines p (canceled upstream) and forwards the cancellation, once.
func (t *BarrierTracker) abort(p *trackedCheckpoint, msg string) {
	if p.aborted {
		return
	}
	p.aborted = true
	t.out = append(t.out,
		DeclineCheckpoint{CheckpointID: p.id, Reason: DeclineReasonCancellationBarrier, Message: msg},
		ForwardCancelMarker{CheckpointID: p.id})
}

// drop forgets the n oldest tracked checkpoints.
func (t *BarrierTracker) drop(n int) {
	t.free = append(t.free, t.pending[:n]...)
	m := copy(t.pending, t.pending[n:])
	clear(t.pending[m:])
	t.pending = t.pending[:m]
}
