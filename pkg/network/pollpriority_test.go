package network

import (
	"fmt"
	"testing"
)

// TestPollPriority: between two records a task asks HasPriority and PollPriority, which return a priority event
// that arrived and never data.
func TestPollPriority(t *testing.T) {
	for _, remote := range []bool{false, true} {
		t.Run(fmt.Sprintf("remote=%v", remote), func(t *testing.T) {
			pm, cm := pair(t, remote, testConfig())
			p, g := oneChannel(t, pm, cm)
			if err := p.EmitRecord(0, []byte("a")); err != nil {
				t.Fatal(err)
			}
			p.Flush()
			waitFor(t, "the buffer at the consumer", func() bool { return g.Buffered(0) == 1 })
			if boe, ok, err := g.PollPriority(); ok || err != nil {
				t.Fatalf("PollPriority with only data queued = %v, %v, %v", describe(t, boe), ok, err)
			}
			if g.HasPriority() {
				t.Fatal("HasPriority with only data queued")
			}
			if _, err := p.BroadcastPriorityEvent(Event{Type: CheckpointBarrier, CheckpointID: 7}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the barrier at the consumer", g.HasPriority)
			boe, ok, err := g.PollPriority()
			if !ok || err != nil || !boe.IsEvent || !boe.Priority || boe.Event.CheckpointID != 7 {
				t.Fatalf("PollPriority = %+v, %v, %v; want the barrier of 7", boe, ok, err)
			}
			if g.HasPriority() {
				t.Fatal("HasPriority after the barrier was taken")
			}
			if boe, ok, err := g.PollPriority(); ok || err != nil {
				t.Fatalf("second PollPriority = %v, %v, %v", describe(t, boe), ok, err)
			}
			if err := p.Finish(); err != nil {
				t.Fatal(err)
			}
			got, err := readAll(t, g)
			if err != nil {
				t.Fatal(err)
			}
			if want := "a EndOfPartition:0"; fmt.Sprint(got[0]) != "["+want+"]" {
				t.Fatalf("then PollNext gave %q, want %q", got[0], want)
			}
		})
	}
}
