package barrier

import (
	"testing"
	"time"
)

// t0ms is the Unix-milliseconds time of step 0 of runHandlerTable: the
// start of the timeoutable checkpoints below.
var t0ms = time.Unix(1_700_000_000, 0).UnixMilli()

// Short constructors for the unaligned handler's events.
func ubar(ch int, id int64, overtaken int) Event {
	return BarrierReceived{Channel: ch, CheckpointID: id, Timestamp: 1000 + id, Flags: FlagUnaligned, Overtaken: overtaken}
}

// tbar is a timeoutable aligned barrier of a checkpoint started at step 0.
func tbar(ch int, id int64) Event {
	return BarrierReceived{Channel: ch, CheckpointID: id, Timestamp: t0ms, Flags: FlagAlignedTimeout}
}

func buf(ch int) Event { return BufferReceived{Channel: ch} }

var tick Event = AlignmentTimerFired{}

func TestUnaligned(t *testing.T) {
	tests := []struct {
		name     string
		channels int
		timeout  time.Duration
		steps    []handlerStep
	}{
		{"snapshot at the first barrier; each channel records until its barrier, and what it overtook from the copies", 3, 0, []handlerStep{
			{ubar(0, 5, 2), "usnapshot 5 align=0s flags=0x2; overtaken 5 ch0"},
			{buf(1), "record 5 ch1"},
			{buf(0), ""}, // overtaken by barrier 5 on channel 0: recorded from the copies already
			{buf(2), "record 5 ch2"},
			{ubar(1, 5, 0), ""},
			{buf(1), ""}, // after its barrier: not state
			{buf(0), ""},
			{buf(0), ""},
			{ubar(2, 5, 1), "overtaken 5 ch2; complete 5"}, // not waiting for the overtaken buffer to be polled
			{buf(2), ""},
			{buf(2), ""},
			{ubar(0, 5, 0), ""}, // completed
		}},
		{"one channel: complete at its barrier, overtaken buffers or not", 1, 0, []handlerStep{
			{ubar(0, 5, 0), "usnapshot 5 align=0s flags=0x2; complete 5"},
			{ubar(0, 6, 1), "usnapshot 6 align=0s flags=0x2; overtaken 6 ch0; complete 6"},
			{buf(0), ""},
		}},
		{"buffers overtaken by a completed checkpoint's barrier are state of the next one if its barrier comes later", 2, 0, []handlerStep{
			{ubar(0, 5, 2), "usnapshot 5 align=0s flags=0x2; overtaken 5 ch0"},
			{ubar(1, 5, 0), "complete 5"},
			{ubar(1, 6, 0), "usnapshot 6 align=0s flags=0x2"},
			{buf(0), "record 6 ch0"}, // the first buffer barrier 5 overtook: before channel 0's barrier 6
			{ubar(0, 6, 1), "overtaken 6 ch0; complete 6"},
			{buf(0), ""}, // the second: overtaken by barrier 6 too, recorded from its copies
		}},
		{"duplicate barrier on a channel changes nothing", 2, 0, []handlerStep{
			{ubar(0, 5, 0), "usnapshot 5 align=0s flags=0x2"},
			{ubar(0, 5, 3), ""},
			{buf(0), ""},
			{ubar(1, 5, 0), "complete 5"},
		}},
		{"end of partition stops recording", 2, 0, []handlerStep{
			{ubar(0, 5, 3), "usnapshot 5 align=0s flags=0x2; overtaken 5 ch0"},
			{buf(0), ""},
			{eop(0), ""},
			{buf(1), "record 5 ch1"},
			{eop(1), "complete 5"},
		}},
		{"an ended channel counts as arrived", 2, 0, []handlerStep{
			{eop(1), ""},
			{ubar(0, 5, 0), "usnapshot 5 align=0s flags=0x2; complete 5"},
		}},
		{"cancel marker discards the channel state", 2, 0, []handlerStep{
			{ubar(0, 5, 0), "usnapshot 5 align=0s flags=0x2"},
			{buf(1), "record 5 ch1"},
			{cxl(1, 5), "discard 5; decline 5 ON_CANCELLATION_BARRIER; cancel 5"},
			{buf(1), ""},
			{ubar(1, 5, 0), ""},
			{cxl(0, 5), ""},
		}},
		{"a newer barrier subsumes a checkpoint still recording", 2, 0, []handlerStep{
			{ubar(0, 5, 0), "usnapshot 5 align=0s flags=0x2"},
			{ubar(1, 6, 1), "discard 5; decline 5 SUBSUMED; cancel 5; usnapshot 6 align=0s flags=0x2; overtaken 6 ch1"},
			{buf(0), "record 6 ch0"},
			{buf(1), ""},
			{ubar(0, 5, 0), ""}, // the old one's late barrier
			{ubar(0, 6, 0), "complete 6"},
		}},
		{"abort notification discards; its late barriers are ignored", 2, 0, []handlerStep{
			{ubar(0, 5, 0), "usnapshot 5 align=0s flags=0x2"},
			{abt(5), "discard 5; cancel 5"},
			{ubar(1, 5, 0), ""},
			{buf(1), ""},
			{abt(7), "cancel 7"},
			{ubar(0, 7, 0), ""},
		}},
		{"source: an unaligned trigger snapshots and completes at once", 0, 0, []handlerStep{
			{TriggerReceived{CheckpointID: 1, Timestamp: 1001, Flags: FlagUnaligned}, "usnapshot 1 align=0s flags=0x2; complete 1"},
			{TriggerReceived{CheckpointID: 2, Timestamp: 1002, Flags: FlagAlignedTimeout}, "snapshot 2 ts=1002 align=0s"},
		}},
		{"an unaligned trigger with inputs ended upstream snapshots at once; a channel whose end is not queued records until it ends", 2, 0, []handlerStep{
			{eop(0), ""},
			{TriggerReceived{CheckpointID: 3, Timestamp: 1003, Flags: FlagUnaligned}, "usnapshot 3 align=0s flags=0x2"},
			{buf(1), "record 3 ch1"},
			{eop(1), "complete 3"},
		}},
		{"an unaligned trigger copies the queued rest of channels whose end is queued, and records the others until their end", 3, 0, []handlerStep{
			{eop(0), ""},
			{TriggerReceived{CheckpointID: 3, Timestamp: 1003, Flags: FlagUnaligned, EndsQueued: []bool{false, true, false}},
				"usnapshot 3 align=0s flags=0x2; queued 3 ch1"},
			{buf(1), ""}, // in the copies
			{buf(2), "record 3 ch2"},
			{eop(1), ""},
			{buf(2), "record 3 ch2"},
			{eop(2), "complete 3"},
			{buf(2), ""},
		}},
		{"an unaligned trigger whose every end is queued completes at once", 2, 0, []handlerStep{
			{TriggerReceived{CheckpointID: 4, Timestamp: 1004, Flags: FlagUnaligned, EndsQueued: []bool{true, true}},
				"usnapshot 4 align=0s flags=0x2; queued 4 ch0; queued 4 ch1; complete 4"},
			{buf(0), ""},
			{eop(0), ""},
			{eop(1), ""},
			{TriggerReceived{CheckpointID: 5, Timestamp: 1005, Flags: FlagUnaligned}, "usnapshot 5 align=0s flags=0x2; complete 5"},
		}},
		{"an aligned trigger (savepoint) with inputs ended upstream still waits for every end of partition", 2, 0, []handlerStep{
			{eop(0), ""},
			{TriggerReceived{CheckpointID: 3, Timestamp: 1003, Flags: FlagSavepoint, EndsQueued: []bool{false, true}}, ""},
			{buf(1), ""},
			{eop(1), "snapshot 3 ts=1003 align=20ms"},
		}},
		{"a newer trigger subsumes a capture at the end", 2, 0, []handlerStep{
			{TriggerReceived{CheckpointID: 3, Timestamp: 1003, Flags: FlagUnaligned, EndsQueued: []bool{true, false}}, "usnapshot 3 align=0s flags=0x2; queued 3 ch0"},
			{buf(1), "record 3 ch1"},
			{TriggerReceived{CheckpointID: 4, Timestamp: 1004, Flags: FlagUnaligned, EndsQueued: []bool{true, true}},
				"discard 3; decline 3 SUBSUMED; cancel 3; usnapshot 4 align=0s flags=0x2; queued 4 ch0; queued 4 ch1; complete 4"},
		}},
		{"aligned barriers (savepoints) are aligned", 2, 20 * time.Millisecond, []handlerStep{
			{bar(0, 5), "block 0"},
			{tick, ""},
			{tick, ""},
			{tick, ""},
			{bar(1, 5), "snapshot 5 ts=1005 align=40ms; unblock"},
		}},
		{"timeoutable: the timer switches to unaligned once the timeout passed", 3, 25 * time.Millisecond, []handlerStep{
			{tbar(0, 5), "block 0"},
			{tbar(1, 5), "block 1"},
			{tick, ""}, // 20ms: early (the timer may fire before the injected clock)
			{tick, "usnapshot 5 align=30ms flags=0x2; unblock"},
			{buf(0), ""}, // after the barrier of an arrived channel: not state
			{buf(2), "record 5 ch2"},
			{tick, ""},
			{tbar(2, 5), "complete 5"},
		}},
		{"timeoutable: a barrier after the deadline switches", 3, 15 * time.Millisecond, []handlerStep{
			{tbar(0, 5), "block 0"},
			{buf(1), ""},
			{tbar(1, 5), "usnapshot 5 align=20ms flags=0x2; unblock"},
			{buf(2), "record 5 ch2"},
			{tbar(2, 5), "complete 5"},
		}},
		{"timeoutable: the last barrier before the deadline completes it aligned", 2, 25 * time.Millisecond, []handlerStep{
			{tbar(0, 5), "block 0"},
			{tbar(1, 5), "snapshot 5 ts=1700000000000 align=10ms; unblock"},
			{tick, ""},
		}},
		{"timeoutable: the last barrier at the deadline completes it aligned too", 2, 10 * time.Millisecond, []handlerStep{
			{tbar(0, 5), "block 0"},
			{tbar(1, 5), "snapshot 5 ts=1700000000000 align=10ms; unblock"},
		}},
		{"timeoutable: an unaligned barrier from an upstream that switched", 3, time.Hour, []handlerStep{
			{tbar(0, 5), "block 0"},
			{ubar(1, 5, 2), "usnapshot 5 align=10ms flags=0x2; unblock; overtaken 5 ch1"},
			{buf(1), ""},
			{buf(0), ""},
			{buf(1), ""},
			{buf(2), "record 5 ch2"},
			{tbar(2, 5), "complete 5"},
		}},
		{"timeoutable: canceled while aligning", 2, 25 * time.Millisecond, []handlerStep{
			{tbar(0, 5), "block 0"},
			{cxl(1, 5), "unblock; decline 5 ON_CANCELLATION_BARRIER; cancel 5"},
			{tick, ""},
			{tick, ""},
			{tbar(1, 5), ""},
		}},
		{"timeoutable: without a configured timeout it stays aligned", 2, 0, []handlerStep{
			{tbar(0, 5), "block 0"},
			{tick, ""},
			{tick, ""},
			{tbar(1, 5), "snapshot 5 ts=1700000000000 align=30ms; unblock"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runHandlerTable(t, NewUnaligned(tc.channels, tc.timeout), tc.steps)
		})
	}
}

// The deadline of a timeoutable alignment is the checkpoint's start plus
// the timeout, while it aligns; none otherwise.
func TestUnalignedDeadline(t *testing.T) {
	t0 := time.UnixMilli(t0ms)
	h := NewUnaligned(2, 25*time.Millisecond)
	if _, ok := h.Deadline(); ok {
		t.Fatal("deadline before any barrier")
	}
	h.Step(t0.Add(5*time.Millisecond), tbar(0, 5))
	if d, ok := h.Deadline(); !ok || !d.Equal(t0.Add(25*time.Millisecond)) {
		t.Fatalf("deadline %v %t, want %v", d, ok, t0.Add(25*time.Millisecond))
	}
	if got := describeActions(h.Step(t0.Add(24*time.Millisecond), tick)); got != "" {
		t.Fatalf("tick before the deadline: %q", got)
	}
	if got := describeActions(h.Step(t0.Add(25*time.Millisecond), tick)); got != "usnapshot 5 align=20ms flags=0x2; unblock" {
		t.Fatalf("tick at the deadline: %q", got)
	}
	if _, ok := h.Deadline(); ok || !h.Recording() {
		t.Fatalf("switched: deadline %t, recording %t", ok, h.Recording())
	}
	h.Step(t0.Add(30*time.Millisecond), tbar(1, 5))
	if h.Recording() {
		t.Fatal("recording after the checkpoint completed")
	}
	h.Step(t0, bar(0, 6)) // aligned: no deadline
	if _, ok := h.Deadline(); ok {
		t.Fatal("deadline of an aligned checkpoint")
	}
}

// Whatever the order of events: no channel is blocked while channel state
// is recorded or when nothing is pending; each unaligned snapshot is
// followed by exactly one completion or discard, with records only in
// between; the overtaken buffers of a channel are recorded at most once, in
// the Step of its barrier, and nothing of that channel after them;
// snapshot ids increase.
func TestUnalignedHandlerInvariants(t *testing.T) {
	var events []Event
	for id := int64(1); id <= 6; id++ {
		for ch := 0; ch < 3; ch++ {
			events = append(events, bar(ch, id), ubar(ch, id, ch), tbar(ch, id), cxl(ch, id), buf(ch), buf(ch), tick)
		}
		events = append(events, abt(id), trg(id),
			TriggerReceived{CheckpointID: id, Timestamp: 1000 + id, Flags: FlagUnaligned, EndsQueued: []bool{id%2 == 0, true, false}})
	}
	events = append(events, eop(1), eop(0), eop(2))
	n := len(events)
	for _, stride := range []int{7, 11, 13} {
		now := time.UnixMilli(t0ms)
		h := NewUnaligned(3, 25*time.Millisecond)
		blocked := map[int]bool{}
		arrived := map[int]bool{} // channels whose overtaken buffers were recorded for open
		var snapshots []int64
		open := int64(noID) // unaligned snapshot waiting for complete or discard
		for i, j := 0, 0; i < n; i, j = i+1, (j+stride)%n {
			ev := events[j]
			now = now.Add(3 * time.Millisecond)
			for _, a := range h.Step(now, ev) {
				switch a := a.(type) {
				case BlockChannel:
					blocked[a.Channel] = true
				case UnblockAll:
					clear(blocked)
				case TriggerSnapshot:
					if len(snapshots) > 0 && a.CheckpointID <= snapshots[len(snapshots)-1] {
						t.Fatalf("stride %d: snapshot %d after %v", stride, a.CheckpointID, snapshots)
					}
					if open != noID {
						t.Fatalf("stride %d: snapshot %d while %d is open", stride, a.CheckpointID, open)
					}
					snapshots = append(snapshots, a.CheckpointID)
					if a.Unaligned {
						open = a.CheckpointID
						clear(arrived)
					}
				case RecordBuffer:
					if a.CheckpointID != open {
						t.Fatalf("stride %d: record for %d while %d is open", stride, a.CheckpointID, open)
					}
					if arrived[a.Channel] {
						t.Fatalf("stride %d: record for %d on channel %d after its barrier", stride, a.CheckpointID, a.Channel)
					}
				case RecordOvertaken:
					b, isBarrier := ev.(BarrierReceived)
					if a.CheckpointID != open || !isBarrier || b.Channel != a.Channel || b.Overtaken == 0 || arrived[a.Channel] {
						t.Fatalf("stride %d: overtaken buffers of %d channel %d (arrived before: %t) after %+v while %d is open",
							stride, a.CheckpointID, a.Channel, arrived[a.Channel], ev, open)
					}
					arrived[a.Channel] = true
				case RecordQueued:
					tr, isTrigger := ev.(TriggerReceived)
					if a.CheckpointID != open || !isTrigger || tr.CheckpointID != open || arrived[a.Channel] {
						t.Fatalf("stride %d: queued rest of %d channel %d (arrived before: %t) after %+v while %d is open",
							stride, a.CheckpointID, a.Channel, arrived[a.Channel], ev, open)
					}
					arrived[a.Channel] = true
				case ChannelStateComplete, DiscardChannelState:
					id := a.(interface{ checkpoint() int64 }).checkpoint()
					if id != open {
						t.Fatalf("stride %d: %T of %d while %d is open", stride, a, id, open)
					}
					open = noID
				}
			}
			if (open != noID) != h.Recording() {
				t.Fatalf("stride %d: open %d but Recording() %t after %+v", stride, open, h.Recording(), ev)
			}
			if _, pending := h.Pending(); (!pending || h.Recording()) && len(blocked) > 0 {
				t.Fatalf("stride %d: channels %v blocked (pending %t, recording %t) after %+v", stride, blocked, pending, h.Recording(), ev)
			}
		}
	}
}

func (a ChannelStateComplete) checkpoint() int64 { return a.CheckpointID }
func (a DiscardChannelState) checkpoint() int64  { return a.CheckpointID }

// Recording channel state costs one handler step per data buffer (never
// per record), which allocates nothing.
func BenchmarkUnalignedRecordStep(b *testing.B) {
	h := NewUnaligned(2, 0)
	now := time.Unix(0, 0)
	if got := describeActions(h.Step(now, ubar(0, 1, 0))); got != "usnapshot 1 align=0s flags=0x2" {
		b.Fatal(got)
	}
	ev := Event(BufferReceived{Channel: 1})
	b.ReportAllocs()
	for b.Loop() {
		if len(h.Step(now, ev)) != 1 {
			b.Fatal("not recorded")
		}
	}
}
