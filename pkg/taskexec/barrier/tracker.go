package barrier

import (
	"fmt"
	"time"
)

// maxTrackedCheckpoints bounds the checkpoints a Tracker follows at once
// (Flink's MAX_CHECKPOINTS_TO_TRACK).
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

// Tracker tracks barriers for AT_LEAST_ONCE checkpoints: it never blocks a
// channel and may follow several checkpoints at once. When the last
// barrier of checkpoint n arrives, n is snapshotted and every older
// checkpoint still incomplete is dropped (it cannot complete any more and
// is subsumed by n at the JobManager). Barriers of checkpoints older than
// the latest one seen start nothing.
type Tracker struct {
	inputs
	latest  int64
	pending []*trackedCheckpoint // oldest first
	free    []*trackedCheckpoint
	out     []Action
}

// NewTracker returns a tracker for a gate of numChannels channels (0 for a
// source).
func NewTracker(numChannels int) *Tracker {
	return &Tracker{inputs: newInputs(numChannels), latest: noID}
}

// Pending returns the ids of the checkpoints being tracked, oldest first.
func (t *Tracker) Pending() []int64 {
	ids := make([]int64, len(t.pending))
	for i, p := range t.pending {
		ids[i] = p.id
	}
	return ids
}

// Step applies one event and returns what the task must do now.
func (t *Tracker) Step(now time.Time, ev Event) []Action {
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
		t.end(ev.Channel)
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

func (t *Tracker) find(id int64) int {
	for i, p := range t.pending {
		if p.id == id {
			return i
		}
	}
	return -1
}

// track starts following checkpoint id (newer than every tracked one).
func (t *Tracker) track(now time.Time, id, ts int64, flags uint32) *trackedCheckpoint {
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

func (t *Tracker) complete(p *trackedCheckpoint) bool { return p.done.n == t.numChannels }

// completeAt removes pending[i] and every older checkpoint, and snapshots
// pending[i] unless it was aborted.
func (t *Tracker) completeAt(now time.Time, i int) {
	p := t.pending[i]
	if !p.aborted {
		t.out = append(t.out, TriggerSnapshot{CheckpointID: p.id, Timestamp: p.ts, Flags: p.flags, Alignment: now.Sub(p.start)})
	}
	t.drop(i + 1)
}

// abort declines p (canceled upstream) and forwards the cancellation, once.
func (t *Tracker) abort(p *trackedCheckpoint, msg string) {
	if p.aborted {
		return
	}
	p.aborted = true
	t.out = append(t.out,
		DeclineCheckpoint{CheckpointID: p.id, Reason: DeclineReasonCancellationBarrier, Message: msg},
		ForwardCancelMarker{CheckpointID: p.id})
}

// drop forgets the n oldest tracked checkpoints.
func (t *Tracker) drop(n int) {
	t.free = append(t.free, t.pending[:n]...)
	m := copy(t.pending, t.pending[n:])
	clear(t.pending[m:])
	t.pending = t.pending[:m]
}
