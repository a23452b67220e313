package network

// Reading a finished producer's channel to its end, for unaligned checkpoints at a task whose inputs have all
// finished (FLIP-147). Such a checkpoint has no barrier to wait for: it sits at the end of every channel, after the
// last record, so everything still queued before the EndOfPartition is its input channel state. CopyToEnd hands over
// copies of that data at once, as a priority barrier's OvertakenData does, so that the checkpoint does not wait for
// the backlog to be processed. The buffers themselves are still delivered and processed afterwards.

// copyFrames copies the frames of the data buffers among items, oldest first, into one allocation. A checkpoint
// calls it once per channel, so allocating here is fine.
func copyFrames(n int, at func(i int) (buf *Buffer, isEvent bool)) [][]byte {
	size, count := 0, 0
	for i := 0; i < n; i++ {
		if b, ev := at(i); !ev {
			size += b.n
			count++
		}
	}
	out := make([][]byte, 0, count)
	backing := make([]byte, 0, size)
	for i := 0; i < n; i++ {
		if b, ev := at(i); !ev {
			start := len(backing)
			backing = append(backing, b.Data()...)
			out = append(out, backing[start:len(backing):len(backing)])
		}
	}
	return out
}

// CopyToEnd returns copies of the frames of every data buffer queued on channel ch and not yet polled, oldest
// first, if the channel's EndOfPartition is queued behind them (ok); if it is not (yet), it copies nothing and
// returns false: the producer has not sent its last element, or it is still in flight. A channel whose
// EndOfPartition was already polled is not asked (the task knows it ended). Call it from the gate's goroutine.
func (g *InputGate) CopyToEnd(ch int) (copies [][]byte, ok bool) {
	if ch < 0 || ch >= len(g.channels) {
		return nil, false
	}
	return g.channels[ch].copyToEnd()
}

func (c *remoteChannel) copyToEnd() ([][]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	end := -1
	for i := 0; i < c.received.len(); i++ {
		if it := c.received.at(i); it.isEvent && it.ev.Type == EndOfPartition {
			end = i
			break
		}
	}
	if end < 0 {
		return nil, false
	}
	return copyFrames(end, func(i int) (*Buffer, bool) { it := c.received.at(i); return it.buf, it.isEvent }), true
}

func (c *localChannel) copyToEnd() ([][]byte, bool) {
	c.mu.Lock()
	s := c.sub
	c.mu.Unlock()
	if s == nil {
		return nil, false
	}
	return s.copyToEnd()
}

// copyToEnd is InputGate.CopyToEnd for a local channel: the producer's queue is the channel's queue.
func (s *subpartition) copyToEnd() ([][]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	end := -1
	for i := 0; i < s.queue.len(); i++ {
		if it := s.queue.at(i); it.isEvent && it.ev.Type == EndOfPartition {
			end = i
			break
		}
	}
	if end < 0 {
		return nil, false
	}
	return copyFrames(end, func(i int) (*Buffer, bool) { it := s.queue.at(i); return it.buf, it.isEvent }), true
}

// Drained reports whether every subpartition has handed over everything queued (to the socket for a remote
// consumer, to the consumer's task for a local one) and could hand over one more element at once: a remote consumer
// has credit for it. A producer that has ended its input waits for it (with unaligned checkpoints) before it sends
// EndOfPartition and finishes, so that the EndOfPartition goes out at once and a checkpoint of its consumer,
// triggered once it finished, finds the whole rest of the channel in the consumer's gate (CopyToEnd). Call it from
// the producer's task goroutine, after Flush.
func (p *ResultPartition) Drained() bool {
	if p.released.Load() {
		return true // nothing will be handed over any more
	}
	for _, s := range p.subs {
		if s.backlog() > 0 || !s.canSendNow() {
			return false
		}
	}
	return true
}

// creditor is a dataListener that sends only against credit: a server connection.
type creditor interface{ hasCredit() bool }

// canSendNow reports whether an element queued now would be handed over without waiting for the consumer.
func (s *subpartition) canSendNow() bool {
	s.mu.Lock()
	l := s.listener
	s.mu.Unlock()
	if c, ok := l.(creditor); ok {
		return c.hasCredit()
	}
	return true
}
