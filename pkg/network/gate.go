package network

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// ChannelSpec names the subpartition one input channel consumes. The channel is local when ProducerAddress equals
// the consuming Manager's Addr().
type ChannelSpec struct {
	Partition       PartitionID
	Subpartition    int
	ProducerAddress string
}

// BufferOrEvent is one element taken from an InputGate. Channel is the index into the channel list given to
// CreateInputGate. For a buffer, the receiver must Recycle it when done with its records.
type BufferOrEvent struct {
	Channel int
	Buffer  *Buffer
	Event   Event
	IsEvent bool
	// Priority: the event was sent with BroadcastPriorityEvent (an unaligned checkpoint barrier or its cancel
	// marker). It may have overtaken data of its channel, and it is delivered even while the channel is blocked.
	Priority bool
	// Overtaken, for a priority event: how many data buffers of the same channel it overtook on the consumer side
	// (a remote channel's buffers received but not yet polled when the event arrived). PollNext delivers exactly
	// these next on this channel's data, after the event and in their order (events and later priority events may
	// come in between); the task persists them as input channel state. Always 0 for a local channel: the buffers a
	// priority event overtakes in the producer's queue are the producer's output channel state (see the package
	// doc).
	Overtaken int
	// OvertakenData, for a priority event, holds copies of the frames of those Overtaken buffers, oldest first
	// (len(OvertakenData) == Overtaken), taken under the channel's lock when PollNext returns the event: the task
	// can persist them as input channel state at once instead of waiting until it has processed them (which, under
	// backpressure, is what makes an unaligned checkpoint slow), as Flink spills the overtaken input buffers when it
	// processes the barrier. The buffers themselves stay queued and are delivered as usual. The copies belong to
	// the receiver; nil when Overtaken is 0.
	OvertakenData [][]byte
}

// inputChannel is one of a gate's channels. run connects it in the background (and, for a remote channel, reads
// from the connection); poll and pollPriority are called by the gate's task goroutine only. poll takes the next
// element, priority events first; more reports any element left. pollPriority takes only a priority event; more
// reports another priority event left.
type inputChannel interface {
	run(ctx context.Context)
	poll() (boe BufferOrEvent, more, ok bool, err error)
	pollPriority() (boe BufferOrEvent, more, ok bool, err error)
	buffered() int
	copyToEnd() ([][]byte, bool)
	close()
}

// InputGate merges the channels of one input of a task. It is read by exactly one goroutine (its task): that
// goroutine waits on Available() and then calls PollNext until it returns ok=false.
type InputGate struct {
	m        *Manager
	specs    []ChannelSpec
	channels []inputChannel
	floating *floatingPool
	avail    chan struct{}

	mu     sync.Mutex
	ready  ring[int] // channels that may have data, each at most once
	queued []bool
	// channels that may have a priority event, each at most once; served before ready, blocked or not
	prioReady  ring[int]
	prioQueued []bool
	// numPrio is len(prioReady), readable without mu: HasPriority is asked between two records.
	numPrio atomic.Int32

	// task goroutine only
	finished    []bool
	numFinished int
	err         error
	// blocked channels are skipped by PollNext (checkpoint barrier alignment); signalled[ch] remembers that a
	// blocked channel was signalled, so that UnblockAll puts it back in line.
	blocked    []bool
	signalled  []bool
	numBlocked int

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// NumChannels returns the number of input channels.
func (g *InputGate) NumChannels() int { return len(g.channels) }

// Available is signalled when PollNext may return something. It is a capacity-1 channel: after a receive, call
// PollNext until ok=false before waiting again. Spurious signals happen.
func (g *InputGate) Available() <-chan struct{} { return g.avail }

// Buffered is the number of elements (priority events included) received on channel ch and not yet taken by
// PollNext: for a remote channel the consumer side of the in-flight data; for a local channel the producer's queue.
func (g *InputGate) Buffered(ch int) int {
	if ch < 0 || ch >= len(g.channels) {
		return 0
	}
	return g.channels[ch].buffered()
}

func (g *InputGate) notify(ch int) {
	g.mu.Lock()
	if !g.queued[ch] {
		g.queued[ch] = true
		g.ready.push(ch)
	}
	g.mu.Unlock()
	g.signalAvailable()
}

// notifyPriority puts ch in the priority line: PollNext serves it before any other channel, blocked or not.
func (g *InputGate) notifyPriority(ch int) {
	g.mu.Lock()
	if !g.prioQueued[ch] {
		g.prioQueued[ch] = true
		g.prioReady.push(ch)
		g.numPrio.Add(1)
	}
	g.mu.Unlock()
	g.signalAvailable()
}

func (g *InputGate) signalAvailable() {
	select {
	case g.avail <- struct{}{}:
	default:
	}
}

// BlockChannel stops PollNext from taking elements of channel ch until UnblockAll: Flink's blocking of a channel
// that delivered the barrier of the checkpoint being aligned. Blocking holds data, not priority events: those are
// still delivered. Nothing is dropped: the channel's elements stay
// queued where they are (a remote channel's buffers hold its credit, a local channel's the producer's quota), so the
// data held back is bounded by the channel's credit and the producer is backpressured. Blocking a channel that has
// ended or is out of range does nothing. Task goroutine only.
func (g *InputGate) BlockChannel(ch int) {
	if ch < 0 || ch >= len(g.channels) || g.blocked[ch] || g.finished[ch] {
		return
	}
	g.blocked[ch] = true
	g.numBlocked++
}

// UnblockAll resumes every blocked channel; those that received data while blocked are polled again. Task goroutine
// only.
func (g *InputGate) UnblockAll() {
	if g.numBlocked == 0 {
		return
	}
	for ch, b := range g.blocked {
		if !b {
			continue
		}
		g.blocked[ch] = false
		if g.signalled[ch] {
			g.signalled[ch] = false
			g.notify(ch)
		}
	}
	g.numBlocked = 0
}

// IsBlocked reports whether channel ch is blocked. Task goroutine only.
func (g *InputGate) IsBlocked(ch int) bool {
	return ch >= 0 && ch < len(g.channels) && g.blocked[ch]
}

// PollNext returns the next buffer or event without blocking; ok=false when nothing is available now. err is io.EOF
// once every channel has delivered its EndOfPartition (those events are returned first, one per channel). Any other
// error is a broken channel (producer failed or released, connection lost, request timeout), names the channel, and
// is returned from then on. A priority event is returned as soon as it has arrived on any channel, before the data
// of every channel, and also on a blocked channel. Blocked channels (BlockChannel) are otherwise skipped; ok=false
// while only they have data.
func (g *InputGate) PollNext() (BufferOrEvent, bool, error) { return g.poll(false) }

// HasPriority reports whether a priority event (an unaligned checkpoint's barrier) may be waiting: an atomic load,
// cheap enough to ask between two records of a buffer. It may be true when there is none (PollPriority then
// returns ok=false).
func (g *InputGate) HasPriority() bool { return g.numPrio.Load() > 0 }

// PollPriority is PollNext for priority events only: it returns one if it has arrived, and never data. A task asks
// it between two records while HasPriority, so that a barrier does not wait for the rest of a buffer whose
// processing is slow.
func (g *InputGate) PollPriority() (BufferOrEvent, bool, error) { return g.poll(true) }

func (g *InputGate) poll(onlyPriority bool) (BufferOrEvent, bool, error) {
	for {
		if g.err != nil {
			return BufferOrEvent{}, false, g.err
		}
		if g.numFinished == len(g.channels) {
			return BufferOrEvent{}, false, io.EOF
		}
		g.mu.Lock()
		ch, prio := g.prioReady.pop()
		ok := prio
		if prio {
			g.prioQueued[ch] = false
			g.numPrio.Add(-1)
		} else if onlyPriority {
			g.mu.Unlock()
			return BufferOrEvent{}, false, nil
		} else if ch, ok = g.ready.pop(); ok {
			g.queued[ch] = false
		}
		g.mu.Unlock()
		if !ok {
			return BufferOrEvent{}, false, nil
		}
		if g.finished[ch] {
			continue
		}
		var (
			boe  BufferOrEvent
			more bool
			err  error
		)
		if prio {
			boe, more, ok, err = g.channels[ch].pollPriority()
		} else {
			if g.blocked[ch] {
				// Leave its elements queued; UnblockAll puts it back in line.
				g.signalled[ch] = true
				continue
			}
			boe, more, ok, err = g.channels[ch].poll()
		}
		if err != nil {
			s := g.specs[ch]
			g.err = fmt.Errorf("input channel %d (partition %s subpartition %d at %s): %w",
				ch, s.Partition, s.Subpartition, s.ProducerAddress, err)
			return BufferOrEvent{}, false, g.err
		}
		if more {
			if prio {
				g.notifyPriority(ch)
			} else {
				g.notify(ch)
			}
		}
		if !ok {
			continue
		}
		boe.Channel = ch
		if boe.IsEvent && boe.Event.Type == EndOfPartition {
			g.finished[ch] = true
			g.numFinished++
			g.channels[ch].close()
		}
		return boe, true, nil
	}
}

// Close releases the gate's channels and connections and waits for its goroutines. Buffers the task still holds
// may be recycled after Close.
func (g *InputGate) Close() {
	g.closeOnce.Do(func() {
		g.cancel()
		for _, c := range g.channels {
			c.close()
		}
		g.wg.Wait()
		g.m.removeGate(g)
	})
}

// retryUntil calls attempt with exponential backoff until it reports done, ctx ends, or timeout passes; it returns
// the last attempt's error on timeout (nil if ctx ended).
func retryUntil(ctx context.Context, timeout time.Duration, attempt func() (done bool, err error)) (bool, error) {
	deadline := time.Now().Add(timeout)
	backoff := 5 * time.Millisecond
	for {
		done, err := attempt()
		if done {
			return true, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false, err
		}
		t := time.NewTimer(min(backoff, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return false, nil
		case <-t.C:
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

func notAvailableErr(s ChannelSpec, timeout time.Duration, last error) error {
	return fmt.Errorf("partition %s subpartition %d at %s not available after %v: %w",
		s.Partition, s.Subpartition, s.ProducerAddress, timeout, last)
}

// localChannel reads a subpartition of a partition of the same Manager straight from its queue: no copy, no
// socket; recycling a buffer returns it to the producer's pool.
type localChannel struct {
	g   *InputGate
	idx int

	mu     sync.Mutex
	sub    *subpartition
	err    error
	closed bool
}

func (c *localChannel) notifyDataAvailable() { c.g.notify(c.idx) }
func (c *localChannel) notifyPriority()      { c.g.notifyPriority(c.idx) }

func (c *localChannel) run(ctx context.Context) {
	spec := c.g.specs[c.idx]
	done, err := retryUntil(ctx, c.g.m.cfg.PartitionRequestTimeout, func() (bool, error) {
		p := c.g.m.lookup(spec.Partition)
		if p == nil {
			c.g.m.requestMisses.Add(1)
			return false, fmt.Errorf("partition %s not found", spec.Partition)
		}
		if spec.Subpartition < 0 || spec.Subpartition >= len(p.subs) {
			return true, fmt.Errorf("partition %s has %d subpartitions", spec.Partition, len(p.subs))
		}
		s := p.subs[spec.Subpartition]
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed {
			return true, nil
		}
		if err := s.attach(c); err != nil {
			return true, err
		}
		c.sub = s
		return true, nil
	})
	if !done && err != nil {
		err = notAvailableErr(spec, c.g.m.cfg.PartitionRequestTimeout, err)
	}
	if err != nil {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		c.g.notify(c.idx)
	}
}

func (c *localChannel) poll() (BufferOrEvent, bool, bool, error) { return c.take(true) }

func (c *localChannel) pollPriority() (BufferOrEvent, bool, bool, error) { return c.take(false) }

// take polls the producer's subpartition. A local priority event overtakes nothing on the consumer side: the
// producer's queue is the only queue, and what the event overtook there is the producer's output state.
func (c *localChannel) take(withData bool) (BufferOrEvent, bool, bool, error) {
	c.mu.Lock()
	s, err := c.sub, c.err
	c.mu.Unlock()
	if err != nil {
		return BufferOrEvent{}, false, false, err
	}
	if s == nil {
		return BufferOrEvent{}, false, false, nil
	}
	it, prioLeft, backlog, ok, err := s.poll(withData)
	if err != nil || !ok {
		return BufferOrEvent{}, false, false, err
	}
	more := prioLeft > 0
	if withData {
		more = more || backlog > 0
	}
	if it.isEvent {
		return BufferOrEvent{Event: it.ev, IsEvent: true, Priority: it.priority}, more, true, nil
	}
	return BufferOrEvent{Buffer: it.buf}, more, true, nil
}

func (c *localChannel) buffered() int {
	c.mu.Lock()
	s := c.sub
	c.mu.Unlock()
	if s == nil {
		return 0
	}
	return s.backlog()
}

func (c *localChannel) close() {
	c.mu.Lock()
	s := c.sub
	c.closed = true
	c.mu.Unlock()
	if s != nil {
		s.detach(c)
	}
}
