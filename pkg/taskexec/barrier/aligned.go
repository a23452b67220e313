package barrier

import "time"

// Aligned aligns barriers for EXACTLY_ONCE checkpoints. One checkpoint is
// aligned at a time: a newer barrier (or trigger) aborts the alignment of
// an older one, which is declined as subsumed; barriers of checkpoints
// older than the latest one seen are ignored.
type Aligned struct {
	single
}

// NewAligned returns a handler for a gate of numChannels channels (0 for a
// source).
func NewAligned(numChannels int) *Aligned {
	h := &Aligned{}
	h.init(numChannels, h.abortAlignment, "during alignment")
	return h
}

// Step applies one event and returns what the task must do now.
func (h *Aligned) Step(now time.Time, ev Event) []Action {
	h.out = h.out[:0]
	switch ev := ev.(type) {
	case BarrierReceived:
		if !h.arrive(now, ev) {
			break
		}
		if h.allArrived() {
			h.finishAligned(now)
		} else {
			h.block(ev.Channel)
		}
	case CancelMarkerReceived:
		h.cancel(ev)
	case EndOfPartitionReceived:
		if !h.validChannel(ev.Channel) {
			break
		}
		h.end(ev.Channel)
		if h.pending && h.done.add(ev.Channel) && h.allArrived() {
			h.finishAligned(now)
		}
	case CheckpointAborted:
		h.aborted(ev)
	case TriggerReceived:
		if h.trigger(now, ev) && h.allArrived() {
			h.finishAligned(now)
		}
	}
	return h.out
}

// abortAlignment ends the alignment in progress without a snapshot.
func (h *Aligned) abortAlignment() {
	if !h.pending {
		return
	}
	h.pending = false
	h.unblock()
}
