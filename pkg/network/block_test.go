package network

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// A blocked channel is skipped by PollNext: its elements stay queued, in
// order, and come out after UnblockAll; other channels flow meanwhile; the
// producer of the blocked channel is backpressured.
func TestBlockChannelHoldsDataUntilUnblock(t *testing.T) {
	forBoth(t, func(t *testing.T, remote bool) {
		cfg := testConfig()
		cfg.BuffersPerChannel = 2
		cfg.FloatingBuffersPerGate = 0
		cfg.MaxBuffersPerSubpartition = 3
		pm, cm := pair(t, remote, cfg)
		// One producer per channel: a partition has a single writer.
		ps, g := producersAndGate(t, pm, cm, "job/src/0/0/0", "job/src/1/0/0")
		p, p1 := ps[0], ps[1]

		// Channel 0 delivers a barrier, then is blocked, as the task does.
		for _, q := range []*ResultPartition{p, p1} {
			if err := q.BroadcastEvent(Event{Type: CheckpointBarrier, CheckpointID: 1}); err != nil {
				t.Fatal(err)
			}
		}
		for seen := 0; seen < 2; {
			boe, err := next(t, g)
			if err != nil {
				t.Fatal(err)
			}
			if !boe.IsEvent || boe.Event.Type != CheckpointBarrier {
				t.Fatalf("got %+v, want a barrier", boe)
			}
			if boe.Channel == 0 {
				g.BlockChannel(0)
			}
			seen++
		}
		if !g.IsBlocked(0) || g.IsBlocked(1) {
			t.Fatalf("blocked = %v %v, want true false", g.IsBlocked(0), g.IsBlocked(1))
		}

		// The producer of channel 0 writes full buffers until it blocks on
		// backpressure.
		rec := fullRecord(cfg)
		emitted := make(chan int, 1)
		go func() {
			n := 0
			for {
				if err := p.EmitRecord(0, append(rec[:0:0], fmt.Sprintf("%0*d", len(rec), n)...)); err != nil {
					emitted <- n
					return
				}
				n++
			}
		}()
		// What is held is bounded by the partition's pool (one subpartition,
		// no floating buffers: BuffersPerChannel) plus, for a remote channel,
		// the consumer's credit.
		// (Buffered of a local channel is the producer's backlog.)
		wantHeld := cfg.BuffersPerChannel
		waitFor(t, "producer of the blocked channel to block", func() bool {
			return p.pool.numWaiting() == 1 && p.Backlog(0) == cfg.BuffersPerChannel && g.Buffered(0) == cfg.BuffersPerChannel
		})
		if remote {
			wantHeld += cfg.BuffersPerChannel
		}
		// Channel 1 is not blocked: its records arrive; nothing of channel 0 does.
		if err := p1.BroadcastEvent(Event{Type: CancelCheckpointMarker, CheckpointID: 7}); err != nil {
			t.Fatal(err)
		}
		boe, err := next(t, g)
		if err != nil {
			t.Fatal(err)
		}
		if boe.Channel != 1 || !boe.IsEvent || boe.Event.Type != CancelCheckpointMarker {
			t.Fatalf("got %+v from channel %d, want channel 1's cancel marker", boe, boe.Channel)
		}
		if _, ok, err := g.PollNext(); ok || err != nil {
			t.Fatalf("PollNext with only a blocked channel holding data: ok=%v err=%v", ok, err)
		}

		// Unblock: channel 0's held data comes out in order, then the
		// producer resumes.
		g.UnblockAll()
		if g.IsBlocked(0) {
			t.Fatal("still blocked after UnblockAll")
		}
		for i := 0; i < wantHeld+5; i++ { // the held ones, then more once the producer resumes
			boe, err := next(t, g)
			if err != nil {
				t.Fatal(err)
			}
			if boe.Channel != 0 || boe.IsEvent {
				t.Fatalf("element %d: %+v, want a buffer of channel 0", i, boe)
			}
			r, rest, err := NextRecord(boe.Buffer.Data())
			if err != nil || len(rest) != 0 {
				t.Fatalf("element %d: %v, %d bytes after the record", i, err, len(rest))
			}
			if got := strings.TrimLeft(string(r), "0"); got != strings.TrimLeft(fmt.Sprint(i), "0") {
				t.Fatalf("element %d: record ...%s, want number %d", i, got, i)
			}
			boe.Buffer.Recycle()
		}
		p.Release(nil)
		p1.Release(nil)
		<-emitted
	})
}

// Blocking an ended channel does nothing, and an unblocked gate still ends
// with io.EOF.
func TestBlockEndedChannel(t *testing.T) {
	m := newManager(t, testConfig())
	p, err := m.CreatePartition("job/src/0/0/0", 1)
	if err != nil {
		t.Fatal(err)
	}
	g, err := m.CreateInputGate([]ChannelSpec{{Partition: p.ID(), ProducerAddress: m.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := p.Finish(); err != nil {
		t.Fatal(err)
	}
	if boe, err := next(t, g); err != nil || boe.Event.Type != EndOfPartition {
		t.Fatalf("got %+v %v, want EndOfPartition", boe, err)
	}
	g.BlockChannel(0)
	g.BlockChannel(5)
	if g.IsBlocked(0) {
		t.Fatal("an ended channel was blocked")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, err := g.PollNext()
		if err == io.EOF {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no EOF: %v", err)
		}
	}
}
