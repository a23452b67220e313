package network

import (
	"testing"
)

// signalled reports whether ch holds a signal, taking it.
func signalled(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// IsAvailable is false exactly while the next buffer request of some subpartition would block, and Available is
// signalled when a consumer frees a buffer. It is never false when the writer's own current buffers could be what
// blocks it, and it is true once the partition is released.
func TestPartitionAvailability(t *testing.T) {
	tests := []struct {
		name          string
		subs          int
		perChannel    int
		floating      int
		maxPerSub     int
		availableUpTo int // full records emitted to subpartition 0 with IsAvailable still true; -1: always
	}{
		{"subpartition at its maximum", 1, 2, 8, 3, 2},
		{"pool exhausted", 2, 1, 1, 10, 2},
		{"a maximum of one buffer is the current one", 1, 2, 8, 1, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.BuffersPerChannel, cfg.FloatingBuffersPerGate, cfg.MaxBuffersPerSubpartition = tc.perChannel, tc.floating, tc.maxPerSub
			m := newManager(t, cfg)
			p, err := m.CreatePartition("job/src/0/0/0", tc.subs)
			if err != nil {
				t.Fatal(err)
			}
			if !p.IsAvailable() {
				t.Fatal("a new partition is not available")
			}
			n := tc.availableUpTo + 1 // the last one takes the last buffer that can be taken
			if tc.availableUpTo < 0 {
				n = tc.maxPerSub // as many as can be taken without blocking
			}
			for i := 1; i <= n; i++ {
				if err := p.EmitRecord(0, fullRecord(cfg)); err != nil {
					t.Fatal(err)
				}
				if want := tc.availableUpTo < 0 || i <= tc.availableUpTo; p.IsAvailable() != want {
					t.Fatalf("after %d full records: IsAvailable %t, want %t", i, !want, want)
				}
			}
			if tc.availableUpTo < 0 {
				p.Release(nil)
				return
			}
			signalled(p.Available()) // a stale signal of an earlier change, if any

			// A consumer takes a queued buffer and frees it.
			g, err := m.CreateInputGate([]ChannelSpec{{Partition: p.ID(), ProducerAddress: m.Addr()}})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			boe, err := next(t, g)
			if err != nil || boe.IsEvent {
				t.Fatalf("got %+v %v, want a buffer", boe, err)
			}
			if p.IsAvailable() || signalled(p.Available()) {
				t.Fatal("available while the consumer holds the buffer")
			}
			boe.Buffer.Recycle()
			if !signalled(p.Available()) || !p.IsAvailable() {
				t.Fatal("recycling a buffer did not make the partition available")
			}

			// Unavailable again, then released: available, and the next write fails instead of blocking.
			if err := p.EmitRecord(0, fullRecord(cfg)); err != nil {
				t.Fatal(err)
			}
			if p.IsAvailable() {
				t.Fatal("available after the freed buffer was taken again")
			}
			p.Release(nil)
			if !signalled(p.Available()) || !p.IsAvailable() {
				t.Fatal("a released partition is not available")
			}
			if err := p.EmitRecord(0, fullRecord(cfg)); err == nil {
				t.Fatal("write to a released partition succeeded")
			}
		})
	}
}
