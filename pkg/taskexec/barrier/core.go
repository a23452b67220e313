package barrier

import (
	"fmt"
	"time"
)

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

// inputs is what every handler knows of its input gate: how many channels
// it has and which of them delivered EndOfPartition. An event of a channel
// out of range or ended is ignored.
type inputs struct {
	numChannels int
	ended       []bool
	numEnded    int
}

func newInputs(numChannels int) inputs {
	return inputs{numChannels: numChannels, ended: make([]bool, numChannels)}
}

func (in *inputs) validChannel(ch int) bool {
	return ch >= 0 && ch < in.numChannels && !in.ended[ch]
}

// end marks a valid channel ended.
func (in *inputs) end(ch int) {
	in.ended[ch] = true
	in.numEnded++
}

// AllEnded reports whether every input channel delivered EndOfPartition.
func (in *inputs) AllEnded() bool { return in.numEnded == in.numChannels }

// single is the state and the event handling that Aligned and Unaligned
// share (both are Flink's SingleCheckpointBarrierHandler): one checkpoint
// is in progress at a time; a newer barrier, trigger or cancel marker
// subsumes it, and barriers of checkpoints older than the latest one seen
// are ignored. What ending the checkpoint in progress takes besides the
// unblocking (Unaligned drops its channel state) is the handler's abort.
type single struct {
	inputs
	// abort ends the checkpoint in progress, if any, without a snapshot:
	// pending = false, unblock, and the handler's own clean-up.
	abort func()
	// subsumedWhen ends the message of a decline as subsumed.
	subsumedWhen string

	latest    int64 // newest checkpoint id seen (barrier, trigger, cancel, abort)
	pending   bool  // latest is in progress
	ts        int64
	flags     uint32
	start     time.Time
	done      channelSet // delivered the barrier of latest, or ended
	numBlocks int        // channels blocked for latest

	out []Action
}

func (s *single) init(numChannels int, abort func(), subsumedWhen string) {
	s.inputs = newInputs(numChannels)
	s.abort, s.subsumedWhen = abort, subsumedWhen
	s.latest = noID
	s.done.reset(numChannels)
}

// Pending returns the checkpoint in progress, if any.
func (s *single) Pending() (int64, bool) { return s.latest, s.pending }

// stale: id is an aborted, subsumed or completed checkpoint.
func (s *single) stale(id int64) bool {
	return id < s.latest || (id == s.latest && !s.pending)
}

// arrive takes the barrier ev and reports whether it is the first barrier
// of the checkpoint in progress on its channel: the handler then decides.
// A barrier of a newer checkpoint subsumes the one in progress and begins
// its own.
func (s *single) arrive(now time.Time, ev BarrierReceived) bool {
	if !s.validChannel(ev.Channel) || s.stale(ev.CheckpointID) {
		return false
	}
	if ev.CheckpointID > s.latest {
		s.subsume(ev.CheckpointID)
		s.begin(now, ev.CheckpointID, ev.Timestamp, ev.Flags)
	}
	return s.done.add(ev.Channel) // a second barrier on one channel: ignore
}

// cancel handles a cancel marker: the checkpoint (and any older one in
// progress) is declined here and canceled downstream.
func (s *single) cancel(ev CancelMarkerReceived) {
	if !s.validChannel(ev.Channel) || s.stale(ev.CheckpointID) {
		return // canceled already, or completed
	}
	if ev.CheckpointID > s.latest {
		s.subsume(ev.CheckpointID)
	}
	s.abort()
	s.latest = ev.CheckpointID
	s.out = append(s.out,
		DeclineCheckpoint{CheckpointID: ev.CheckpointID, Reason: DeclineReasonCancellationBarrier,
			Message: fmt.Sprintf("checkpoint %d was canceled upstream (cancel marker on input channel %d)", ev.CheckpointID, ev.Channel)},
		ForwardCancelMarker{CheckpointID: ev.CheckpointID})
}

// aborted handles the JobManager's abort of ev.CheckpointID.
func (s *single) aborted(ev CheckpointAborted) {
	switch {
	case ev.CheckpointID == s.latest && s.pending:
		s.abort()
		s.out = append(s.out, ForwardCancelMarker{CheckpointID: ev.CheckpointID})
	case ev.CheckpointID > s.latest && !s.pending:
		// Not started here yet: its barriers will be ignored when they
		// come, and downstream tasks need not align it either.
		s.latest = ev.CheckpointID
		s.out = append(s.out, ForwardCancelMarker{CheckpointID: ev.CheckpointID})
	}
	// An abort of an older checkpoint, or of a newer one while an older
	// one is in progress (its barriers will then align and be acknowledged
	// in vain), changes nothing.
}

// trigger handles a trigger and reports whether it began a checkpoint:
// the handler then snapshots it if every channel has ended.
func (s *single) trigger(now time.Time, ev TriggerReceived) bool {
	switch {
	case ev.CheckpointID < s.latest:
		s.out = append(s.out, DeclineCheckpoint{CheckpointID: ev.CheckpointID, Reason: DeclineReasonSubsumed,
			Message: fmt.Sprintf("trigger of checkpoint %d after checkpoint %d", ev.CheckpointID, s.latest)})
		return false
	case ev.CheckpointID == s.latest:
		return false // a duplicate trigger: taken or aborted already
	}
	s.subsume(ev.CheckpointID)
	s.begin(now, ev.CheckpointID, ev.Timestamp, ev.Flags)
	return true
}

// subsume aborts the checkpoint in progress because newer arrived.
func (s *single) subsume(newer int64) {
	if !s.pending {
		return
	}
	s.abort()
	s.out = append(s.out,
		DeclineCheckpoint{CheckpointID: s.latest, Reason: DeclineReasonSubsumed,
			Message: fmt.Sprintf("checkpoint %d was subsumed by checkpoint %d %s", s.latest, newer, s.subsumedWhen)},
		ForwardCancelMarker{CheckpointID: s.latest})
}

func (s *single) begin(now time.Time, id, ts int64, flags uint32) {
	s.latest, s.pending = id, true
	s.ts, s.flags, s.start = ts, flags, now
	s.done.reset(s.numChannels)
	for ch, e := range s.ended {
		if e {
			s.done.add(ch)
		}
	}
}

// allArrived: every channel delivered the barrier of latest (or ended).
func (s *single) allArrived() bool { return s.done.n == s.numChannels }

// finishAligned snapshots latest, aligned.
func (s *single) finishAligned(now time.Time) {
	s.pending = false
	s.out = append(s.out, TriggerSnapshot{CheckpointID: s.latest, Timestamp: s.ts, Flags: s.flags, Alignment: now.Sub(s.start)})
	s.unblock()
}

func (s *single) block(ch int) {
	s.numBlocks++
	s.out = append(s.out, BlockChannel{Channel: ch})
}

func (s *single) unblock() {
	if s.numBlocks > 0 {
		s.numBlocks = 0
		s.out = append(s.out, UnblockAll{})
	}
}
