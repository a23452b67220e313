package network

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// frame encodes records as a buffer's frames.
func frame(recs ...[]byte) []byte {
	var out []byte
	for _, r := range recs {
		out = binary.AppendUvarint(out, uint64(len(r)))
		out = append(out, r...)
	}
	return out
}

// numbered is a record of n bytes, all equal to b: distinct per b, easy to tell apart in a failure.
func numbered(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// pairStarved returns the producer and consumer Managers for tests that exhaust a remote consumer's credit: the
// consumer lends no floating buffers, while the producer's pool (sized by the same setting) has room for a queue.
func pairStarved(t *testing.T, remote bool, cfg Config) (prod, cons *Manager) {
	pcfg := cfg
	pcfg.FloatingBuffersPerGate = 8
	prod = newManager(t, pcfg)
	if !remote {
		return prod, prod
	}
	cfg.FloatingBuffersPerGate = 0
	return prod, newManager(t, cfg)
}

func barrier(id int64) Event { return Event{Type: CheckpointBarrier, CheckpointID: id} }

// expectNothing checks that PollNext has nothing to return now.
func expectNothing(t *testing.T, g *InputGate) {
	t.Helper()
	if boe, ok, err := g.PollNext(); ok || err != nil {
		t.Fatalf("PollNext = %+v ok=%v err=%v, want nothing", boe, ok, err)
	}
}

// expectPriority waits for the next element and checks it is the priority barrier id of channel ch that overtook,
// on the consumer side, buffers with exactly the frames overtaken (Overtaken and OvertakenData).
func expectPriority(t *testing.T, g *InputGate, ch int, id int64, overtaken [][]byte) {
	t.Helper()
	boe, err := next(t, g)
	if err != nil {
		t.Fatal(err)
	}
	if boe.Channel != ch || boe.Buffer != nil || boe.Event != barrier(id) || !boe.IsEvent || !boe.Priority ||
		boe.Overtaken != len(overtaken) {
		t.Fatalf("got %+v, want priority barrier %d on channel %d overtaking %d buffers", boe, id, ch, len(overtaken))
	}
	if len(overtaken) == 0 && boe.OvertakenData != nil {
		t.Fatalf("OvertakenData %q, want nil", boe.OvertakenData)
	}
	checkCopies(t, boe.OvertakenData, overtaken)
}

// expectBuffers waits for len(want) buffers of channel ch and compares their frames.
func expectBuffers(t *testing.T, g *InputGate, ch int, want [][]byte) {
	t.Helper()
	for i, w := range want {
		boe, err := next(t, g)
		if err != nil {
			t.Fatal(err)
		}
		if boe.IsEvent || boe.Channel != ch {
			t.Fatalf("element %d: %+v, want a buffer of channel %d", i, boe, ch)
		}
		if !bytes.Equal(boe.Buffer.Data(), w) {
			t.Fatalf("element %d: frames %q, want %q", i, boe.Buffer.Data(), w)
		}
		boe.Buffer.Recycle()
	}
}

func checkCopies(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d overtaken buffers, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("overtaken buffer %d: %q, want %q", i, got[i], want[i])
		}
	}
}

// A priority barrier overtakes the buffers queued at the producer (and returns exact copies of them, the partially
// filled current buffer included) and, on a remote channel, the buffers received but not polled (counted in
// Overtaken); all of them are still delivered after it, in order. The remote consumer has no credit left when the
// barrier is sent.
func TestPriorityEventOvertakesQueuedBuffers(t *testing.T) {
	forBoth(t, func(t *testing.T, remote bool) {
		cfg := testConfig()
		cfg.BuffersPerChannel = 2
		cfg.MaxBuffersPerSubpartition = 6
		pm, cm := pairStarved(t, remote, cfg)
		ps, g := producersAndGate(t, pm, cm, "job/src/0/0/0")
		p := ps[0]

		var want [][]byte // frames of every buffer, in emission order
		for i := 0; i < 5; i++ {
			rec := numbered(len(fullRecord(cfg)), byte('a'+i))
			if err := p.EmitRecord(0, rec); err != nil {
				t.Fatal(err)
			}
			want = append(want, frame(rec))
		}
		if err := p.EmitRecord(0, []byte("tail")); err != nil { // stays in the current buffer
			t.Fatal(err)
		}
		want = append(want, frame([]byte("tail")))
		received := 0
		if remote {
			received = cfg.BuffersPerChannel // all the credit there is
		}
		waitFor(t, "buffers to settle", func() bool {
			// A local channel's Buffered is the producer's queue.
			return p.Backlog(0) == 5-received && (!remote || g.Buffered(0) == received)
		})

		copies, err := p.BroadcastPriorityEvent(barrier(1))
		if err != nil {
			t.Fatal(err)
		}
		if len(copies) != 1 {
			t.Fatalf("copies for %d subpartitions, want 1", len(copies))
		}
		checkCopies(t, copies[0], want[received:])
		if remote { // else PollNext could return a received buffer before the barrier has arrived
			waitFor(t, "barrier to arrive", func() bool { return g.Buffered(0) == received+1 })
		}
		expectPriority(t, g, 0, 1, want[:received])
		expectBuffers(t, g, 0, want)
		expectNothing(t, g)
		p.Release(nil)
	})
}

// Without credit the producer still sends priority events at once; the consumer receives them into no buffer and
// keeps them in order among themselves, each counting the buffers it overtook.
func TestRemotePriorityEventNeedsNoCredit(t *testing.T) {
	cfg := testConfig()
	cfg.BuffersPerChannel = 1
	pm, cm := pairStarved(t, true, cfg)
	ps, g := producersAndGate(t, pm, cm, "job/src/0/0/0")
	p := ps[0]
	var want [][]byte
	for i := 0; i < 3; i++ {
		rec := numbered(len(fullRecord(cfg)), byte('a'+i))
		if err := p.EmitRecord(0, rec); err != nil {
			t.Fatal(err)
		}
		want = append(want, frame(rec))
	}
	// One buffer received, one queued without credit, one in the current buffer.
	waitFor(t, "credit to run out", func() bool { return g.Buffered(0) == 1 && p.Backlog(0) == 1 })
	for id := int64(1); id <= 2; id++ {
		copies, err := p.BroadcastPriorityEvent(barrier(id))
		if err != nil {
			t.Fatal(err)
		}
		checkCopies(t, copies[0], want[1:])
		// Nothing is polled, so no credit is freed: the event can only have come without credit.
		waitFor(t, "priority event to arrive", func() bool { return g.Buffered(0) == 1+int(id) })
	}
	expectPriority(t, g, 0, 1, want[:1])
	expectPriority(t, g, 0, 2, want[:1])
	expectBuffers(t, g, 0, want)
	expectNothing(t, g)
}

// Blocking a channel holds its data, not its priority events.
func TestPriorityEventThroughBlockedChannel(t *testing.T) {
	forBoth(t, func(t *testing.T, remote bool) {
		cfg := testConfig()
		cfg.BuffersPerChannel = 2
		pm, cm := pairStarved(t, remote, cfg)
		ps, g := producersAndGate(t, pm, cm, "job/src/0/0/0", "job/src/1/0/0")
		p0, p1 := ps[0], ps[1]

		if err := p0.BroadcastEvent(barrier(1)); err != nil {
			t.Fatal(err)
		}
		if boe, err := next(t, g); err != nil || boe.Channel != 0 || boe.Event != barrier(1) || boe.Priority {
			t.Fatalf("got %+v %v, want channel 0's aligned barrier", boe, err)
		}
		g.BlockChannel(0)

		var want [][]byte
		for i := 0; i < 3; i++ {
			rec := numbered(len(fullRecord(cfg)), byte('a'+i))
			if err := p0.EmitRecord(0, rec); err != nil {
				t.Fatal(err)
			}
			want = append(want, frame(rec))
		}
		received := 0
		if remote {
			received = cfg.BuffersPerChannel
			waitFor(t, "buffers to arrive", func() bool { return g.Buffered(0) == received })
		}
		expectNothing(t, g)

		copies, err := p0.BroadcastPriorityEvent(barrier(2))
		if err != nil {
			t.Fatal(err)
		}
		checkCopies(t, copies[0], want[received:])
		expectPriority(t, g, 0, 2, want[:received])
		if !g.IsBlocked(0) {
			t.Fatal("delivering a priority event unblocked the channel")
		}
		expectNothing(t, g) // the data stays held

		if err := p1.EmitRecord(0, []byte("other")); err != nil {
			t.Fatal(err)
		}
		p1.Flush()
		expectBuffers(t, g, 1, [][]byte{frame([]byte("other"))})

		g.UnblockAll()
		expectBuffers(t, g, 0, want)
		expectNothing(t, g)
		p0.Release(nil)
		p1.Release(nil)
	})
}

// TestExactlyOneOfInvariant drives a producer and a consumer with random pacing and checks, for every priority
// barrier B on every channel, that the records emitted before B are exactly, in order: those delivered before B,
// then those in B.OvertakenData (the consumer's input channel state, byte for byte the first B.Overtaken buffers
// delivered after B), then those in the copies BroadcastPriorityEvent returned. Random pacing may let every barrier
// find empty queues, so the last barrier is placed: the consumer catches up and stops polling, each channel gets
// settledBuffers full buffers, and the barrier must overtake exactly those, on the producer or the consumer side.
func TestExactlyOneOfInvariant(t *testing.T) {
	forBoth(t, func(t *testing.T, remote bool) {
		for seed := int64(1); seed <= 6; seed++ {
			t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runInvariant(t, remote, seed) })
		}
	})
}

// barrierLog is what one side saw of one priority barrier on one channel.
type barrierLog struct {
	emittedBefore int      // producer: records emitted before BroadcastPriorityEvent
	copies        [][]byte // producer: the overtaken copies
	deliveredBef  int      // consumer: records delivered before the barrier
	bufIndex      int      // consumer: data buffers delivered before the barrier
	overtaken     int      // consumer: BufferOrEvent.Overtaken
	inCopies      [][]byte // consumer: BufferOrEvent.OvertakenData
	seen          bool
}

func decodeSeq(t testing.TB, frames []byte) []int {
	var out []int
	for len(frames) > 0 {
		rec, rest, err := NextRecord(frames)
		if err != nil {
			t.Fatalf("NextRecord: %v", err)
		}
		n, k := binary.Uvarint(rec)
		if k <= 0 {
			t.Fatalf("record %q has no sequence number", rec)
		}
		out = append(out, int(n))
		frames = rest
	}
	return out
}

func runInvariant(t *testing.T, remote bool, seed int64) {
	const (
		subs     = 2
		records  = 1500
		barriers = 12
		// settledBuffers full buffers per channel wait, unpolled, for the last barrier: 2, so that none waits for
		// the consumer (a local producer's pool holds 2*BuffersPerChannel+FloatingBuffersPerGate = 5).
		settledBuffers = 2
	)
	cfg := testConfig()
	cfg.BuffersPerChannel = 2
	cfg.FloatingBuffersPerGate = 1
	cfg.MaxBuffersPerSubpartition = 3
	pm, cm := pair(t, remote, cfg)
	p, err := pm.CreatePartition("job/src/0/0/0", subs)
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]ChannelSpec, subs)
	for i := range specs {
		specs[i] = ChannelSpec{Partition: p.ID(), Subpartition: i, ProducerAddress: pm.Addr()}
	}
	g, err := cm.CreateInputGate(specs)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()

	// logs[ch][id-1]; the producer fills its half before the consumer can see the barrier, and the test reads both
	// halves after the producer has finished.
	prodLogs := make([][]barrierLog, subs)
	for ch := range prodLogs {
		prodLogs[ch] = make([]barrierLog, barriers)
	}
	// The handshake that places the last barrier: the producer says how many records it emitted per channel
	// (caughtUp), the consumer delivers them and the earlier barriers and stops polling (paused), the producer emits
	// the settled buffers and sends the barrier (resume), and the consumer takes only priority events until that
	// barrier arrived on every channel, so that it delivers no settled buffer before it.
	caughtUp, paused, resume := make(chan []int, 1), make(chan struct{}), make(chan struct{})
	quit := make(chan struct{})
	defer close(quit) // a failed consumer lets the producer go
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			rnd := rand.New(rand.NewSource(seed))
			next := make([]int, subs)
			id := 0
			rec := make([]byte, 0, cfg.SegmentSize)
			for i := 0; i < records*subs; i++ {
				sub := rnd.Intn(subs)
				rec = binary.AppendUvarint(rec[:0], uint64(next[sub]))
				rec = append(rec, make([]byte, rnd.Intn(60))...)
				if rnd.Intn(40) == 0 {
					rec = append(rec, make([]byte, cfg.SegmentSize)...) // a buffer of its own
				}
				if err := p.EmitRecord(sub, rec); err != nil {
					return err
				}
				next[sub]++
				switch r := rnd.Intn(records * subs / barriers); {
				case r == 0 && id < barriers-1: // the last one is placed at the end
					id++
					copies, err := p.BroadcastPriorityEvent(barrier(int64(id)))
					if err != nil {
						return err
					}
					for ch := range copies {
						prodLogs[ch][id-1] = barrierLog{emittedBefore: next[ch], copies: copies[ch]}
					}
				case r < 20:
					p.Flush()
				case r < 60:
					runtime.Gosched()
				}
			}
			for ; id < barriers-1; id++ { // the rest at the end, so every run has them all
				copies, err := p.BroadcastPriorityEvent(barrier(int64(id + 1)))
				if err != nil {
					return err
				}
				for ch := range copies {
					prodLogs[ch][id] = barrierLog{emittedBefore: next[ch], copies: copies[ch]}
				}
			}
			p.Flush()
			caughtUp <- slices.Clone(next)
			select {
			case <-paused:
			case <-quit:
				return nil
			}
			full := len(fullRecord(cfg))
			for sub := range subs {
				for range settledBuffers {
					rec = binary.AppendUvarint(rec[:0], uint64(next[sub]))
					rec = append(rec, make([]byte, full-len(rec))...)
					if err := p.EmitRecord(sub, rec); err != nil {
						return err
					}
					next[sub]++
				}
			}
			copies, err := p.BroadcastPriorityEvent(barrier(barriers))
			if err != nil {
				return err
			}
			for ch := range copies {
				prodLogs[ch][barriers-1] = barrierLog{emittedBefore: next[ch], copies: copies[ch]}
			}
			close(resume)
			return p.Finish()
		}()
	}()

	rnd := rand.New(rand.NewSource(-seed))
	consLogs := make([][]barrierLog, subs)
	delivered := make([][]int, subs) // records per channel, in delivery order
	bufs := make([][][]int, subs)    // records per data buffer per channel
	frames := make([][][]byte, subs) // frames of each data buffer per channel
	for ch := range consLogs {
		consLogs[ch] = make([]barrierLog, barriers)
	}
	var expect []int      // records per channel emitted before the settled buffers, once the producer said
	waitCount := caughtUp // nil once the count arrived
	pausedOnce := false
	lastSeen := 0 // channels that delivered the last barrier
	caughtUpNow := func() bool {
		for ch := range subs {
			if len(delivered[ch]) != expect[ch] || !consLogs[ch][barriers-2].seen {
				return false
			}
		}
		return true
	}
	for {
		if expect != nil && !pausedOnce && caughtUpNow() {
			pausedOnce = true
			close(paused)
			select {
			case <-resume:
			case <-time.After(10 * time.Second):
				t.Fatal("timed out waiting for the producer to send the last barrier")
			}
		}
		if rnd.Intn(8) == 0 {
			for i := rnd.Intn(200); i > 0; i-- {
				runtime.Gosched() // let buffers pile up
			}
		}
		poll := g.PollNext
		if pausedOnce && lastSeen < subs {
			poll = g.PollPriority
		}
		boe, ok, err := poll()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			// Wait for data or for the count: every record may have been delivered already.
			select {
			case expect = <-waitCount:
				waitCount = nil
			case <-g.Available():
			case <-time.After(10 * time.Second):
				if pausedOnce && lastSeen < subs {
					t.Fatalf("the last barrier overtook nothing: after 10s, %d of %d channels delivered it, as a priority event", lastSeen, subs)
				}
				t.Fatal("timed out waiting for the input gate")
			}
			continue
		}
		ch := boe.Channel
		switch {
		case boe.IsEvent && boe.Priority:
			if boe.Event.CheckpointID == barriers {
				lastSeen++
			}
			l := &consLogs[ch][boe.Event.CheckpointID-1]
			*l = barrierLog{deliveredBef: len(delivered[ch]), bufIndex: len(bufs[ch]), overtaken: boe.Overtaken,
				inCopies: boe.OvertakenData, seen: true}
			if !remote && boe.Overtaken != 0 {
				t.Fatalf("local channel %d: barrier %d overtook %d buffers on the consumer side, want 0",
					ch, boe.Event.CheckpointID, boe.Overtaken)
			}
		case boe.IsEvent:
			if boe.Event.Type != EndOfPartition {
				t.Fatalf("unexpected event %+v", boe)
			}
		default:
			seq := decodeSeq(t, boe.Buffer.Data())
			frames[ch] = append(frames[ch], bytes.Clone(boe.Buffer.Data()))
			boe.Buffer.Recycle()
			bufs[ch] = append(bufs[ch], seq)
			delivered[ch] = append(delivered[ch], seq...)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	for ch := 0; ch < subs; ch++ {
		for i, n := range delivered[ch] {
			if i != n {
				t.Fatalf("channel %d: record %d delivered as number %d", ch, i, n)
			}
		}
		for id := 0; id < barriers; id++ {
			pl, cl := prodLogs[ch][id], consLogs[ch][id]
			if !cl.seen {
				t.Fatalf("channel %d: barrier %d never delivered", ch, id+1)
			}
			if cl.bufIndex+cl.overtaken > len(bufs[ch]) {
				t.Fatalf("channel %d barrier %d: Overtaken %d, but only %d buffers followed it",
					ch, id+1, cl.overtaken, len(bufs[ch])-cl.bufIndex)
			}
			// The copies taken when B was delivered are the buffers delivered after it, byte for byte.
			if len(cl.inCopies) != cl.overtaken {
				t.Fatalf("channel %d barrier %d: %d copies of overtaken buffers, Overtaken %d",
					ch, id+1, len(cl.inCopies), cl.overtaken)
			}
			for i, c := range cl.inCopies {
				if f := frames[ch][cl.bufIndex+i]; !bytes.Equal(c, f) {
					t.Fatalf("channel %d barrier %d: copy of overtaken buffer %d is %q, the buffer delivered %q",
						ch, id+1, i, c, f)
				}
			}
			var inState, outState []int // the consumer's input and the producer's output channel state
			for _, c := range cl.inCopies {
				inState = append(inState, decodeSeq(t, c)...)
			}
			for _, c := range pl.copies {
				outState = append(outState, decodeSeq(t, c)...)
			}
			// Emitted before B, in order: delivered before B, then input state, then output state.
			var got []int
			for i := 0; i < cl.deliveredBef; i++ {
				got = append(got, i)
			}
			got = append(got, inState...)
			got = append(got, outState...)
			if len(got) != pl.emittedBefore {
				t.Fatalf("channel %d barrier %d: %d delivered before + %d input state + %d output state = %d records, "+
					"want the %d emitted before it", ch, id+1, cl.deliveredBef, len(inState), len(outState), len(got),
					pl.emittedBefore)
			}
			for i, n := range got {
				if i != n {
					t.Fatalf("channel %d barrier %d: record %d of (delivered before, input state, output state) is %d"+
						"\ninput state %v\noutput state %v", ch, id+1, i, n, inState, outState)
				}
			}
		}
	}
	// The placed barrier overtook the settled buffers, each one whole: on a local channel all of them at the
	// producer (the consumer's side holds nothing); on a remote one those not yet sent, the others at the consumer,
	// however the credit split them.
	for ch := 0; ch < subs; ch++ {
		pl, cl := prodLogs[ch][barriers-1], consLogs[ch][barriers-1]
		if got := len(pl.copies) + cl.overtaken; got != settledBuffers || (!remote && cl.overtaken != 0) {
			t.Fatalf("channel %d: the last barrier overtook %d buffers at the producer and %d at the consumer, want %d in all"+
				" (all at the producer on a local channel)", ch, len(pl.copies), cl.overtaken, settledBuffers)
		}
		for i, c := range append(slices.Clone(cl.inCopies), pl.copies...) {
			if want := pl.emittedBefore - settledBuffers + i; !slices.Equal(decodeSeq(t, c), []int{want}) {
				t.Fatalf("channel %d: overtaken buffer %d holds records %v, want [%d]", ch, i, decodeSeq(t, c), want)
			}
		}
	}
}

// The buffers a priority barrier overtook in attempt 1, re-emitted with EmitRawBuffer in attempt 2, come first and
// unchanged, then what attempt 2 emits.
func TestEmitRawBufferPrecedesNewRecords(t *testing.T) {
	forBoth(t, func(t *testing.T, remote bool) {
		cfg := testConfig()
		pm, cm := pair(t, remote, cfg)
		a1, err := pm.CreatePartition("job/src/0/1/0", 1) // no consumer: everything stays queued
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []string{"r1", "r2", strings.Repeat("x", 2*cfg.SegmentSize), "r3"} {
			if err := a1.EmitRecord(0, []byte(r)); err != nil {
				t.Fatal(err)
			}
		}
		state, err := a1.BroadcastPriorityEvent(barrier(1))
		if err != nil {
			t.Fatal(err)
		}
		want := [][]byte{frame([]byte("r1"), []byte("r2")), frame([]byte(strings.Repeat("x", 2*cfg.SegmentSize))), frame([]byte("r3"))}
		checkCopies(t, state[0], want)
		a1.Release(nil)

		ps, g := producersAndGate(t, pm, cm, "job/src/0/2/0")
		a2 := ps[0]
		for _, f := range state[0] {
			if err := a2.EmitRawBuffer(0, f); err != nil {
				t.Fatal(err)
			}
		}
		if err := a2.EmitRecord(0, []byte("new")); err != nil {
			t.Fatal(err)
		}
		if err := a2.Finish(); err != nil {
			t.Fatal(err)
		}
		expectBuffers(t, g, 0, append(want, frame([]byte("new"))))
		if boe, err := next(t, g); err != nil || boe.Event.Type != EndOfPartition {
			t.Fatalf("got %+v %v, want EndOfPartition", boe, err)
		}
	})
}

func TestPriorityAndRawBufferErrors(t *testing.T) {
	m := newManager(t, testConfig())
	p, err := m.CreatePartition("job/src/0/0/0", 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"EndOfPartition as priority", func() error { _, err := p.BroadcastPriorityEvent(Event{Type: EndOfPartition}); return err }(),
			"EndOfPartition cannot be a priority event"},
		{"EndOfData as priority", func() error { _, err := p.BroadcastPriorityEvent(Event{Type: EndOfData}); return err }(),
			"EndOfData cannot be a priority event"},
		{"raw buffer out of range", p.EmitRawBuffer(1, frame([]byte("a"))), "subpartition 1 of 1"},
		{"truncated raw buffer", p.EmitRawBuffer(0, []byte{5, 'a'}), "record extends past the end"},
		{"malformed raw buffer", p.EmitRawBuffer(0, []byte{0x80}), "malformed record length"},
		{"raw buffer over the frame cap", p.EmitRawBuffer(0, make([]byte, testConfig().MaxFrameSize+1)), "exceeds the maximum"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, tc.err, tc.want)
		}
	}
	if p.Backlog(0) != 0 {
		t.Fatalf("rejected calls queued %d elements", p.Backlog(0))
	}
	if err := p.Finish(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.BroadcastPriorityEvent(barrier(1)); err == nil || !strings.Contains(err.Error(), "after Finish") {
		t.Fatalf("priority event after Finish: %v", err)
	}
	p.Release(nil)
	if err := p.EmitRawBuffer(0, frame([]byte("a"))); err == nil || !strings.Contains(err.Error(), "released") {
		t.Fatalf("raw buffer after release: %v", err)
	}
}

// A producer cannot fill a consumer's memory with priority events, which take no credit.
func TestPendingPriorityEventsAreBounded(t *testing.T) {
	m := newManager(t, testConfig())
	g, err := m.CreateInputGate([]ChannelSpec{{Partition: "job/src/0/0/0", ProducerAddress: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	c := newRemoteChannel(g, 0) // not the gate's: only its queue is exercised
	for i := 0; i < maxPendingPriority; i++ {
		if err := c.deliverPriority(barrier(int64(i)), 0); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if err := c.deliverPriority(barrier(0), 0); err == nil || !strings.Contains(err.Error(), "priority events pending") {
		t.Fatalf("event over the cap: %v", err)
	}
}
