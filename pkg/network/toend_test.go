package network

import (
	"fmt"
	"strings"
	"testing"
)

// framesOf renders copies of buffers as their records.
func framesOf(t *testing.T, copies [][]byte) string {
	t.Helper()
	var bufs []string
	for _, c := range copies {
		var recs []string
		for data := c; len(data) > 0; {
			rec, rest, err := NextRecord(data)
			if err != nil {
				t.Fatal(err)
			}
			recs, data = append(recs, string(rec)), rest
		}
		bufs = append(bufs, strings.Join(recs, ","))
	}
	return strings.Join(bufs, " | ")
}

// TestCopyToEnd: a finished producer's queued rest of a channel is copied only once its EndOfPartition is queued,
// and the buffers are still delivered afterwards, in order; the producer is drained once the consumer has it all.
func TestCopyToEnd(t *testing.T) {
	for _, remote := range []bool{false, true} {
		t.Run(fmt.Sprintf("remote=%v", remote), func(t *testing.T) {
			cfg := testConfig()
			pm, cm := pair(t, remote, cfg)
			p, g := oneChannel(t, pm, cm)
			for i, recs := range [][]string{{"a", "b"}, {"c"}, {"d", "e"}} {
				for _, r := range recs {
					if err := p.EmitRecord(0, []byte(r)); err != nil {
						t.Fatal(err)
					}
				}
				p.Flush()
				if i == 0 {
					waitFor(t, "the first buffer at the consumer", func() bool { return g.Buffered(0) == 1 })
					if copies, ok := g.CopyToEnd(0); ok || copies != nil {
						t.Fatalf("CopyToEnd before the end: %q, %v", copies, ok)
					}
				}
			}
			if p.Drained() {
				t.Fatal("drained with three buffers queued")
			}
			if err := p.Finish(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "every buffer and the end at the consumer", func() bool { return g.Buffered(0) == 4 })
			// Remote: everything is in the consumer's gate; local: the consumer's queue is the producer's.
			if p.Drained() != remote {
				t.Fatalf("drained = %v with everything at the consumer (remote %v)", p.Drained(), remote)
			}
			copies, ok := g.CopyToEnd(0)
			if got, want := framesOf(t, copies), "a,b | c | d,e"; !ok || got != want {
				t.Fatalf("CopyToEnd = %q, %v; want %q, true", got, ok, want)
			}
			got, err := readAll(t, g)
			if err != nil {
				t.Fatal(err)
			}
			if want := "a b c d e EndOfPartition:0"; strings.Join(got[0], " ") != want {
				t.Fatalf("consumer got %q, want %q", got[0], want)
			}
			if !p.Drained() {
				t.Fatal("not drained after everything was consumed")
			}
		})
	}
}

// TestDrainedLeavesCreditForTheEnd: a remote consumer whose credit is used up holds the producer's last buffers;
// the producer is not drained until the consumer has credit again, so that the EndOfPartition sent after Drained goes
// out at once and the consumer's gate holds the whole rest of the channel (CopyToEnd), however slowly it processes.
func TestDrainedLeavesCreditForTheEnd(t *testing.T) {
	cfg := testConfig()
	cfg.BuffersPerChannel, cfg.FloatingBuffersPerGate = 2, 0
	pm, cm := pair(t, true, cfg)
	p, g := oneChannel(t, pm, cm)
	for _, r := range []string{"a", "b", "c"} {
		if err := p.EmitRecord(0, []byte(r)); err != nil {
			t.Fatal(err)
		}
		p.Flush()
	}
	waitFor(t, "two buffers at the consumer, one queued at the producer", func() bool { return g.Buffered(0) == 2 && p.Backlog(0) == 1 })
	if p.Drained() {
		t.Fatal("drained with a buffer queued")
	}
	// The consumer processes one buffer: its credit lets "c" go, and only then is there none for the end.
	boe, ok, err := g.PollNext()
	if !ok || err != nil {
		t.Fatalf("PollNext: %v %v", ok, err)
	}
	if got := describe(t, boe); len(got) != 1 || got[0] != "a" {
		t.Fatalf("first buffer %q", got)
	}
	waitFor(t, `"c" at the consumer`, func() bool { return g.Buffered(0) == 2 && p.Backlog(0) == 0 })
	if p.Drained() {
		t.Fatal("drained without credit for the end of the partition")
	}
	boe, ok, err = g.PollNext()
	if !ok || err != nil {
		t.Fatalf("PollNext: %v %v", ok, err)
	}
	describe(t, boe)
	waitFor(t, "drained with credit for the end", p.Drained)
	if err := p.Finish(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the end at the consumer", func() bool { return g.Buffered(0) == 2 })
	copies, ok := g.CopyToEnd(0)
	if got := framesOf(t, copies); !ok || got != "c" {
		t.Fatalf("CopyToEnd = %q, %v; want \"c\", true", got, ok)
	}
}

// oneChannel creates a one-subpartition partition on pm and a gate of one channel to it on cm (closed at the
// end of the test).
func oneChannel(t *testing.T, pm, cm *Manager) (*ResultPartition, *InputGate) {
	t.Helper()
	p, err := pm.CreatePartition("job/src/0/0/0", 1)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cm.CreateInputGate([]ChannelSpec{{Partition: p.ID(), ProducerAddress: pm.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return p, g
}
