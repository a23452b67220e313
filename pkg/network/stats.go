package network

import (
	"maps"
	"slices"
)

// BufferStats is a snapshot of the network buffers and queues of a Manager's
// result partitions and input gates, for the TaskManager's metrics (Flink's
// Shuffle.Netty.TotalMemorySegments / AvailableMemorySegments and the input
// and output queue lengths, summed over the TaskManager).
type BufferStats struct {
	// Total is the buffers the partitions and gates may hold at most: each
	// partition's pool size, and per gate its remote channels' exclusive
	// buffers and its floating buffers. Buffers are allocated lazily, so
	// Total is an upper bound, not memory in use.
	Total int
	// Available is the part of Total that could be taken now without
	// waiting: free or not yet allocated.
	Available int
	// InputQueue is the buffers and events received by remote input
	// channels and not yet taken by their task. A local channel reads its
	// producer's queue, which OutputQueue counts.
	InputQueue int
	// OutputQueue is the buffers and events queued in subpartitions and not
	// yet taken by their consumer.
	OutputQueue int
}

// BufferStats sums the buffers and queues of every live partition and
// gate. It takes each one's locks in turn, never two at once, so it is for
// a scrape, not for the record path.
func (m *Manager) BufferStats() BufferStats {
	m.mu.Lock()
	parts, gates := m.liveLocked()
	m.mu.Unlock()

	var s BufferStats
	for _, p := range parts {
		p.pool.mu.Lock()
		s.Total += p.pool.size
		if p.pool.err == nil {
			s.Available += p.pool.size - p.pool.allocated + len(p.pool.free)
		}
		p.pool.mu.Unlock()
		for _, sub := range p.subs {
			s.OutputQueue += sub.backlog()
		}
	}
	for _, g := range gates {
		f := g.floating
		f.mu.Lock()
		s.Total += f.size
		s.Available += f.size - f.allocated + len(f.free)
		f.mu.Unlock()
		for _, ch := range g.channels {
			c, ok := ch.(*remoteChannel)
			if !ok {
				continue
			}
			s.Total += g.m.cfg.BuffersPerChannel
			c.mu.Lock()
			// c.free may hold floating buffers too: they are taken now
			// without waiting as well.
			s.Available += len(c.free)
			s.InputQueue += c.prio.len() + c.received.len()
			c.mu.Unlock()
		}
	}
	s.Available = min(s.Available, s.Total)
	return s
}

// liveLocked returns the live partitions and gates, so that they can be
// visited after m.mu is released. The caller holds m.mu.
func (m *Manager) liveLocked() ([]*ResultPartition, []*InputGate) {
	return slices.Collect(maps.Values(m.partitions)), slices.Collect(maps.Keys(m.gates))
}
