package barrier

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Short constructors for handler events.
func bar(ch int, id int64) Event {
	return BarrierReceived{Channel: ch, CheckpointID: id, Timestamp: 1000 + id}
}
func cxl(ch int, id int64) Event { return CancelMarkerReceived{Channel: ch, CheckpointID: id} }
func eop(ch int) Event           { return EndOfPartitionReceived{Channel: ch} }
func abt(id int64) Event         { return CheckpointAborted{CheckpointID: id} }
func trg(id int64) Event         { return TriggerReceived{CheckpointID: id, Timestamp: 1000 + id} }

// describeActions renders actions compactly: "block 0", "unblock",
// "snapshot 5 ts=1005 align=20ms", "decline 5 SUBSUMED", "cancel 5".
func describeActions(as []Action) string {
	var out []string
	for _, a := range as {
		switch a := a.(type) {
		case BlockChannel:
			out = append(out, fmt.Sprintf("block %d", a.Channel))
		case UnblockAll:
			out = append(out, "unblock")
		case TriggerSnapshot:
			if a.Unaligned {
				out = append(out, fmt.Sprintf("usnapshot %d align=%v flags=%#x", a.CheckpointID, a.Alignment, a.Flags))
				break
			}
			out = append(out, fmt.Sprintf("snapshot %d ts=%d align=%v", a.CheckpointID, a.Timestamp, a.Alignment))
		case RecordBuffer:
			out = append(out, fmt.Sprintf("record %d ch%d", a.CheckpointID, a.Channel))
		case RecordOvertaken:
			out = append(out, fmt.Sprintf("overtaken %d ch%d", a.CheckpointID, a.Channel))
		case RecordQueued:
			out = append(out, fmt.Sprintf("queued %d ch%d", a.CheckpointID, a.Channel))
		case ChannelStateComplete:
			out = append(out, fmt.Sprintf("complete %d", a.CheckpointID))
		case DiscardChannelState:
			out = append(out, fmt.Sprintf("discard %d", a.CheckpointID))
		case DeclineCheckpoint:
			out = append(out, fmt.Sprintf("decline %d %s", a.CheckpointID, strings.TrimPrefix(a.Reason.String(), "DECLINE_REASON_")))
		case ForwardCancelMarker:
			out = append(out, fmt.Sprintf("cancel %d", a.CheckpointID))
		default:
			out = append(out, fmt.Sprintf("%T", a))
		}
	}
	return strings.Join(out, "; ")
}

type handlerStep struct {
	ev   Event
	want string
}

// runHandlerTable feeds the steps to h, step i at t0 + i*10ms.
func runHandlerTable(t *testing.T, h Handler, steps []handlerStep) {
	t.Helper()
	t0 := time.Unix(1_700_000_000, 0)
	for i, s := range steps {
		got := describeActions(h.Step(t0.Add(time.Duration(i)*10*time.Millisecond), s.ev))
		if got != s.want {
			t.Fatalf("step %d (%T %+v): got %q, want %q", i, s.ev, s.ev, got, s.want)
		}
	}
}

func TestAligned(t *testing.T) {
	tests := []struct {
		name     string
		channels int
		steps    []handlerStep
	}{
		{"one channel: snapshot at once, never blocks", 1, []handlerStep{
			{bar(0, 1), "snapshot 1 ts=1001 align=0s"},
			{bar(0, 2), "snapshot 2 ts=1002 align=0s"},
		}},
		{"three channels: block each until the last barrier", 3, []handlerStep{
			{bar(1, 5), "block 1"},
			{bar(0, 5), "block 0"},
			{bar(2, 5), "snapshot 5 ts=1005 align=20ms; unblock"},
			{bar(2, 6), "block 2"},
		}},
		{"duplicate barrier on one channel is ignored", 2, []handlerStep{
			{bar(0, 5), "block 0"},
			{bar(0, 5), ""},
			{bar(1, 5), "snapshot 5 ts=1005 align=20ms; unblock"},
		}},
		{"barriers of a completed or older checkpoint are ignored", 2, []handlerStep{
			{bar(0, 5), "block 0"},
			{bar(1, 5), "snapshot 5 ts=1005 align=10ms; unblock"},
			{bar(0, 5), ""},
			{bar(0, 4), ""},
			{bar(1, 3), ""},
		}},
		{"newer barrier during alignment subsumes the older", 3, []handlerStep{
			{bar(0, 5), "block 0"},
			{bar(1, 6), "unblock; decline 5 SUBSUMED; cancel 5; block 1"},
			{bar(2, 5), ""}, // the old one's late barrier: ignored, not blocked
			{bar(0, 6), "block 0"},
			{bar(2, 6), "snapshot 6 ts=1006 align=30ms; unblock"},
		}},
		{"cancel marker of the aligning checkpoint aborts it once", 3, []handlerStep{
			{bar(0, 5), "block 0"},
			{cxl(1, 5), "unblock; decline 5 ON_CANCELLATION_BARRIER; cancel 5"},
			{cxl(2, 5), ""},
			{bar(2, 5), ""},
			{bar(0, 6), "block 0"},
		}},
		{"cancel marker of a newer checkpoint subsumes the aligning one", 2, []handlerStep{
			{bar(0, 5), "block 0"},
			{cxl(1, 6), "unblock; decline 5 SUBSUMED; cancel 5; decline 6 ON_CANCELLATION_BARRIER; cancel 6"},
			{bar(1, 6), ""},
			{bar(0, 7), "block 0"},
		}},
		{"cancel marker of an older checkpoint changes nothing", 2, []handlerStep{
			{bar(0, 5), "block 0"},
			{cxl(1, 4), ""},
			{bar(1, 5), "snapshot 5 ts=1005 align=20ms; unblock"},
		}},
		{"cancel marker before any barrier", 2, []handlerStep{
			{cxl(0, 3), "decline 3 ON_CANCELLATION_BARRIER; cancel 3"},
			{bar(1, 3), ""},
			{bar(1, 4), "block 1"},
		}},
		{"end of partition completes the alignment", 3, []handlerStep{
			{bar(0, 5), "block 0"},
			{bar(1, 5), "block 1"},
			{eop(2), "snapshot 5 ts=1005 align=20ms; unblock"},
			{bar(0, 6), "block 0"},
			{bar(1, 6), "snapshot 6 ts=1006 align=10ms; unblock"}, // channel 2 ended: counts as arrived
		}},
		{"end of partition before alignment counts as arrived", 2, []handlerStep{
			{eop(1), ""},
			{bar(0, 5), "snapshot 5 ts=1005 align=0s"},
		}},
		{"events of ended or unknown channels are ignored", 2, []handlerStep{
			{eop(1), ""},
			{eop(1), ""},
			{bar(1, 5), ""},
			{cxl(1, 5), ""},
			{bar(7, 5), ""},
			{bar(-1, 5), ""},
			{bar(0, 5), "snapshot 5 ts=1005 align=0s"},
		}},
		{"abort notification of the aligning checkpoint", 2, []handlerStep{
			{bar(0, 5), "block 0"},
			{abt(5), "unblock; cancel 5"},
			{bar(1, 5), ""},
			{abt(5), ""},
		}},
		{"abort notification of a future checkpoint skips it", 2, []handlerStep{
			{abt(7), "cancel 7"},
			{bar(0, 7), ""},
			{bar(0, 8), "block 0"},
		}},
		{"abort notification of an older or newer checkpoint while aligning", 2, []handlerStep{
			{bar(0, 5), "block 0"},
			{abt(4), ""},
			{abt(6), ""},
			{bar(1, 5), "snapshot 5 ts=1005 align=30ms; unblock"},
		}},
		{"trigger of a task whose inputs all ended: at once", 2, []handlerStep{
			{eop(0), ""},
			{eop(1), ""},
			{trg(9), "snapshot 9 ts=1009 align=0s"},
			{trg(9), ""},
			{trg(8), "decline 8 SUBSUMED"},
		}},
		{"trigger waits for the remaining inputs to end", 2, []handlerStep{
			{eop(0), ""},
			{trg(9), ""},
			{eop(1), "snapshot 9 ts=1009 align=10ms"},
		}},
		{"source: trigger snapshots at once", 0, []handlerStep{
			{trg(1), "snapshot 1 ts=1001 align=0s"},
			{trg(3), "snapshot 3 ts=1003 align=0s"},
			{abt(3), ""},
			{abt(4), "cancel 4"},
			{trg(4), ""},
		}},
		{"trigger during alignment subsumes it", 2, []handlerStep{
			{bar(0, 5), "block 0"},
			{trg(6), "unblock; decline 5 SUBSUMED; cancel 5"},
			{eop(0), ""},
			{eop(1), "snapshot 6 ts=1006 align=20ms"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runHandlerTable(t, NewAligned(tc.channels), tc.steps)
		})
	}
}

func TestTracker(t *testing.T) {
	tests := []struct {
		name     string
		channels int
		steps    []handlerStep
	}{
		{"never blocks; snapshot at the last barrier", 3, []handlerStep{
			{bar(1, 5), ""},
			{bar(0, 5), ""},
			{bar(2, 5), "snapshot 5 ts=1005 align=20ms"},
		}},
		{"one channel: at once", 1, []handlerStep{
			{bar(0, 1), "snapshot 1 ts=1001 align=0s"},
			{bar(0, 2), "snapshot 2 ts=1002 align=0s"},
		}},
		{"overlapping checkpoints both complete", 2, []handlerStep{
			{bar(0, 5), ""},
			{bar(0, 6), ""},
			{bar(1, 5), "snapshot 5 ts=1005 align=20ms"},
			{bar(1, 6), "snapshot 6 ts=1006 align=20ms"},
		}},
		{"a newer checkpoint completing drops older ones", 2, []handlerStep{
			{bar(0, 5), ""},
			{bar(0, 6), ""},
			{bar(1, 6), "snapshot 6 ts=1006 align=10ms"},
			{bar(1, 5), ""}, // late: starts nothing
		}},
		{"duplicate and old barriers are ignored", 2, []handlerStep{
			{bar(0, 5), ""},
			{bar(0, 5), ""},
			{bar(1, 5), "snapshot 5 ts=1005 align=20ms"},
			{bar(0, 4), ""},
			{bar(0, 5), ""},
		}},
		{"cancel marker aborts, later barriers are counted silently", 3, []handlerStep{
			{bar(0, 5), ""},
			{cxl(1, 5), "decline 5 ON_CANCELLATION_BARRIER; cancel 5"},
			{cxl(2, 5), ""},
			{bar(0, 6), ""},
		}},
		{"cancel marker of a new checkpoint aborts older ones", 2, []handlerStep{
			{bar(0, 4), ""},
			{bar(0, 5), ""},
			{cxl(0, 6), "decline 4 ON_CANCELLATION_BARRIER; cancel 4; decline 5 ON_CANCELLATION_BARRIER; cancel 5; decline 6 ON_CANCELLATION_BARRIER; cancel 6"},
			{bar(1, 6), ""},
			{bar(1, 7), ""},
			{bar(0, 7), "snapshot 7 ts=1007 align=10ms"},
		}},
		{"end of partition completes pending checkpoints (newest wins)", 3, []handlerStep{
			{bar(0, 5), ""},
			{bar(1, 5), ""},
			{bar(0, 6), ""},
			{bar(1, 6), ""},
			{eop(2), "snapshot 6 ts=1006 align=20ms"},
			{bar(0, 7), ""},
			{bar(1, 7), "snapshot 7 ts=1007 align=10ms"},
		}},
		{"end of partition completes an older one only", 3, []handlerStep{
			{bar(0, 5), ""},
			{bar(1, 5), ""},
			{bar(0, 6), ""},
			{eop(2), "snapshot 5 ts=1005 align=30ms"},
			{bar(1, 6), "snapshot 6 ts=1006 align=20ms"},
		}},
		{"abort notification", 2, []handlerStep{
			{bar(0, 5), ""},
			{abt(5), "cancel 5"},
			{abt(5), ""},
			{bar(1, 5), ""},
			{abt(9), "cancel 9"},
			{bar(0, 9), ""},
			{bar(1, 9), ""},
			{bar(0, 10), ""},
			{bar(1, 10), "snapshot 10 ts=1010 align=10ms"},
		}},
		{"trigger with ended inputs", 2, []handlerStep{
			{eop(0), ""},
			{trg(3), ""},
			{eop(1), "snapshot 3 ts=1003 align=10ms"},
			{trg(4), "snapshot 4 ts=1004 align=0s"},
			{trg(2), "decline 2 SUBSUMED"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runHandlerTable(t, NewTracker(tc.channels), tc.steps)
		})
	}
}

// At-least-once never blocks, whatever the events; the aligned handler
// never leaves a channel blocked once nothing is pending.
func TestHandlersBlockingInvariants(t *testing.T) {
	var events []Event
	for id := int64(1); id <= 6; id++ {
		for ch := 0; ch < 3; ch++ {
			events = append(events, bar(ch, id), cxl(ch, id), bar(ch, id-1))
		}
		events = append(events, abt(id), trg(id))
	}
	events = append(events, eop(1), eop(0), eop(2))
	// A deterministic shuffle: every 7th element of the cycle.
	n := len(events)
	order := make([]Event, 0, n)
	for i, j := 0, 0; i < n; i, j = i+1, (j+7)%n {
		order = append(order, events[j])
	}
	now := time.Unix(0, 0)
	tr := NewTracker(3)
	al := NewAligned(3)
	blocked := map[int]bool{}
	var snapshots []int64
	for _, ev := range order {
		for _, a := range tr.Step(now, ev) {
			if _, ok := a.(BlockChannel); ok {
				t.Fatalf("tracker blocked on %+v", ev)
			}
		}
		for _, a := range al.Step(now, ev) {
			switch a := a.(type) {
			case BlockChannel:
				blocked[a.Channel] = true
			case UnblockAll:
				clear(blocked)
			case TriggerSnapshot:
				if len(snapshots) > 0 && a.CheckpointID <= snapshots[len(snapshots)-1] {
					t.Fatalf("snapshot %d after %v", a.CheckpointID, snapshots)
				}
				snapshots = append(snapshots, a.CheckpointID)
			}
		}
		if _, pending := al.Pending(); !pending && len(blocked) > 0 {
			t.Fatalf("channels %v blocked with nothing pending after %+v", blocked, ev)
		}
	}
}
