package network

import (
	"testing"
)

// BufferStats counts a partition's pool and queue, and a remote gate's
// exclusive and floating buffers and its received queue: what is queued
// is in use, the rest available.
func TestBufferStats(t *testing.T) {
	prod, cons := newManager(t, DefaultConfig()), newManager(t, DefaultConfig())
	if got := prod.BufferStats(); got != (BufferStats{}) {
		t.Fatalf("no partition: %+v", got)
	}
	p, err := prod.CreatePartition("job/p", 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := prod.cfg
	poolSize := cfg.BuffersPerChannel + cfg.FloatingBuffersPerGate
	if got, want := prod.BufferStats(), (BufferStats{Total: poolSize, Available: poolSize}); got != want {
		t.Fatalf("empty partition: %+v, want %+v", got, want)
	}
	for range 2 {
		if err := p.EmitRecord(0, []byte("x")); err != nil {
			t.Fatal(err)
		}
		p.Flush()
	}
	if got, want := prod.BufferStats(), (BufferStats{Total: poolSize, Available: poolSize - 2, OutputQueue: 2}); got != want {
		t.Fatalf("2 buffers queued: %+v, want %+v", got, want)
	}

	g, err := cons.CreateInputGate([]ChannelSpec{{Partition: "job/p", Subpartition: 0, ProducerAddress: prod.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	gateTotal := cfg.BuffersPerChannel + cfg.FloatingBuffersPerGate
	waitFor(t, "both buffers received", func() bool { return cons.BufferStats().InputQueue == 2 })
	got := cons.BufferStats()
	if got.Total != gateTotal || got.Available != gateTotal-2 || got.OutputQueue != 0 {
		t.Fatalf("consumer with 2 buffers received: %+v, want total %d, available %d", got, gateTotal, gateTotal-2)
	}
}
