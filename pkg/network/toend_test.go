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
			p, err := pm.CreatePartition("job/src/0/0/0", 1)
			if err != nil {
				t.Fatal(err)
			}
			g, err := cm.CreateInputGate([]ChannelSpec{{Partition: p.ID(), ProducerAddress: pm.Addr()}})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
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
