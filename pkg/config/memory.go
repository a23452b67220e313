package config

import (
	"fmt"
	"math"
)

// NetworkMemory is a TaskManager's network memory, derived as Flink derives
// it: fraction × total memory, raised to min and lowered to max (Flink's
// NetworkBufferCalculation over its total Flink memory; weir has no JVM
// metaspace or overhead, so the total is taskmanager.memory.process.size),
// and cut down to whole segments.
type NetworkMemory struct {
	Bytes   int64 // Buffers × SegmentSize
	Buffers int64
	// SegmentSize is taskmanager.memory.segment-size.
	SegmentSize int64
}

// DeriveNetworkMemory computes the network memory of a TaskManager from its
// configuration. ok is false when taskmanager.memory.process.size is unset:
// there is no budget, and the TaskManager's buffers are bounded only by the
// per-channel and per-gate settings, as before process sizes existed. The
// error names the keys when min exceeds max, or when the network memory
// leaves nothing of the process size for anything else.
func DeriveNetworkMemory(c *Config) (nm NetworkMemory, ok bool, err error) {
	if !c.IsSet(TaskManagerProcessSize) {
		return NetworkMemory{}, false, nil
	}
	total := c.MemorySize(TaskManagerProcessSize)
	lo := c.MemorySize(NetworkMemoryMin)
	hi := int64(math.MaxInt64)
	if c.IsSet(NetworkMemoryMax) {
		hi = c.MemorySize(NetworkMemoryMax)
	}
	if lo > hi {
		return NetworkMemory{}, false, fmt.Errorf("%s (%d bytes) is above %s (%d bytes)", NetworkMemoryMin.Key, lo, NetworkMemoryMax.Key, hi)
	}
	n := int64(c.Float(NetworkMemoryFraction) * float64(total))
	n = min(max(n, lo), hi)
	if n >= total {
		return NetworkMemory{}, false, fmt.Errorf("network memory of %d bytes (%s %v, %s %d bytes) leaves nothing of %s %d bytes",
			n, NetworkMemoryFraction.Key, c.Float(NetworkMemoryFraction), NetworkMemoryMin.Key, lo, TaskManagerProcessSize.Key, total)
	}
	seg := c.MemorySize(SegmentSize)
	nm = NetworkMemory{Buffers: n / seg, SegmentSize: seg}
	if nm.Buffers < 1 {
		return NetworkMemory{}, false, fmt.Errorf("network memory of %d bytes holds no buffer of %s %d bytes", n, SegmentSize.Key, seg)
	}
	nm.Bytes = nm.Buffers * seg
	return nm, true, nil
}
