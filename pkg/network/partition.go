package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// PartitionID names one result partition: "<job-id>/<vertex>/<subtask>/<attempt>/<output>". It is opaque to this
// package except that ReleasePartitions matches by prefix.
type PartitionID string

// ErrPartitionReleased is wrapped by the errors of writers and readers of a released partition.
var ErrPartitionReleased = errors.New("result partition released")

// queueItem is one element of a subpartition queue: a buffer of records or an event.
type queueItem struct {
	buf      *Buffer
	ev       Event
	isEvent  bool
	priority bool // queued by BroadcastPriorityEvent: sent without credit
}

// dataListener is told when a subpartition gets a new element or is released. It is called without locks held and
// must not block: a local input channel marks itself ready in its gate; a server connection wakes its writer.
// notifyPriority is called instead when the new element is a priority event.
type dataListener interface {
	notifyDataAvailable()
	notifyPriority()
}

// subpartition is the queue of one consumer. The writer's current buffer is private to the task goroutine and
// enters the queue only when full, flushed or followed by an event; the queue itself is shared with the reader.
// Priority events wait in prio, which the reader always empties before taking from queue: that is how a priority
// event overtakes everything in queue without moving it.
type subpartition struct {
	p       *ResultPartition
	idx     int
	current *Buffer // task goroutine only

	mu        sync.Mutex
	prio      ring[queueItem]
	queue     ring[queueItem]
	listener  dataListener
	hasReader bool
	err       error // set on release
}

func (s *subpartition) add(it queueItem) error {
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		if it.buf != nil {
			it.buf.Recycle()
		}
		return err
	}
	s.queue.push(it)
	l := s.listener
	s.mu.Unlock()
	if l != nil {
		l.notifyDataAvailable()
	}
	return nil
}

// addPriority queues a priority event ahead of every element of queue and returns copies of the frames of the data
// buffers in queue, oldest first: the buffers it overtook. Both happen under one lock, so a buffer is either taken
// by the reader before the event is queued, or overtaken and copied; never both, never neither.
func (s *subpartition) addPriority(ev Event) ([][]byte, error) {
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return nil, err
	}
	var overtaken [][]byte
	for i := 0; i < s.queue.len(); i++ {
		if it := s.queue.at(i); it.buf != nil {
			overtaken = append(overtaken, append([]byte(nil), it.buf.Data()...))
		}
	}
	s.prio.push(queueItem{ev: ev, isEvent: true, priority: true})
	l := s.listener
	s.mu.Unlock()
	if l != nil {
		l.notifyPriority()
	}
	return overtaken, nil
}

// poll takes the next element: a priority event if one is queued, else, if withData, the head of queue. prioLeft
// and backlog are the priority events and the elements of queue left behind it. Taking EndOfPartition marks the
// subpartition consumed, which releases the partition once every subpartition is.
func (s *subpartition) poll(withData bool) (it queueItem, prioLeft, backlog int, ok bool, err error) {
	s.mu.Lock()
	if s.err != nil {
		err = s.err
		s.mu.Unlock()
		return it, 0, 0, false, err
	}
	it, ok = s.prio.pop()
	if !ok && withData {
		it, ok = s.queue.pop()
	}
	prioLeft, backlog = s.prio.len(), s.queue.len()
	s.mu.Unlock()
	if ok && it.isEvent && it.ev.Type == EndOfPartition {
		s.p.subConsumed()
	}
	return it, prioLeft, backlog, ok, nil
}

// backlog counts every element not taken yet, priority events included.
func (s *subpartition) backlog() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prio.len() + s.queue.len()
}

// queued counts the elements that need credit to be sent: everything but priority events.
func (s *subpartition) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queue.len()
}

// attach registers the one reader of this subpartition (pipelined subpartitions are consumed once).
func (s *subpartition) attach(l dataListener) error {
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return err
	}
	if s.hasReader {
		s.mu.Unlock()
		return fmt.Errorf("subpartition %d of %s is already being consumed", s.idx, s.p.id)
	}
	s.hasReader, s.listener = true, l
	pending, prio := s.queue.len() > 0, s.prio.len() > 0
	s.mu.Unlock()
	if prio {
		l.notifyPriority()
	}
	if pending {
		l.notifyDataAvailable()
	}
	return nil
}

func (s *subpartition) detach(l dataListener) {
	s.mu.Lock()
	if s.listener == l {
		s.listener, s.hasReader = nil, false
	}
	s.mu.Unlock()
}

func (s *subpartition) release(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	for s.prio.len() > 0 {
		s.prio.pop()
	}
	var drop []*Buffer
	for {
		it, ok := s.queue.pop()
		if !ok {
			break
		}
		if it.buf != nil {
			drop = append(drop, it.buf)
		}
	}
	l := s.listener
	s.mu.Unlock()
	for _, b := range drop {
		b.Recycle()
	}
	if l != nil {
		l.notifyDataAvailable()
	}
}

// ResultPartition is the output of one subtask attempt, split into one subpartition per consumer subtask. It is
// written by exactly one goroutine (its task) and read by the consumers of its subpartitions.
type ResultPartition struct {
	id        PartitionID
	m         *Manager
	pool      *partitionPool
	subs      []*subpartition
	maxRecord int

	finished bool // task goroutine only

	released    atomic.Bool
	cause       error // written before released is set
	releaseOnce sync.Once
	consumed    atomic.Int32
}

// ID returns the partition's id.
func (p *ResultPartition) ID() PartitionID { return p.id }

// NumSubpartitions returns the number of subpartitions (consumers).
func (p *ResultPartition) NumSubpartitions() int { return len(p.subs) }

// Backlog is the number of elements (buffers and events, priority events included) queued in subpartition sub that
// its consumer has not taken yet: the producer side of the in-flight data.
func (p *ResultPartition) Backlog(sub int) int {
	if sub < 0 || sub >= len(p.subs) {
		return 0
	}
	return p.subs[sub].backlog()
}

// IsAvailable reports whether a buffer can be taken for any subpartition without blocking (Flink's
// isAvailable): when it is false, the next EmitRecord may block under backpressure. A task that must stay
// responsive (a source serving checkpoint triggers from its mailbox) waits on Available instead of blocking in an
// emit; Flink's mailbox does the same. It is false only while buffers other than the current ones are held, which
// the consumers free, so waiting for it never waits for the writer itself. True once released (the next write
// fails). One atomic load: cheap enough to call per record.
func (p *ResultPartition) IsAvailable() bool { return !p.pool.unavailable.Load() }

// Available is signalled when IsAvailable may have become true. It is a capacity-1 channel: check IsAvailable
// after a receive; spurious signals happen.
func (p *ResultPartition) Available() <-chan struct{} { return p.pool.avail }

// EmitRecord appends uvarint(len(data))+data to subpartition sub's current buffer. A full buffer is queued and a new
// one taken from the partition's pool, blocking while none may be taken (backpressure). A record larger than a
// segment gets a buffer of its own. data is copied; the caller may reuse it.
func (p *ResultPartition) EmitRecord(sub int, data []byte) error {
	if uint(sub) >= uint(len(p.subs)) {
		return fmt.Errorf("partition %s: emit to subpartition %d of %d", p.id, sub, len(p.subs))
	}
	s := p.subs[sub]
	if b := s.current; b != nil && !p.released.Load() {
		need := uvarintLen(uint64(len(data))) + len(data)
		if len(b.data)-b.n >= need {
			b.n += binary.PutUvarint(b.data[b.n:], uint64(len(data)))
			b.n += copy(b.data[b.n:], data)
			return nil
		}
	}
	return p.emitSlow(s, data)
}

func (p *ResultPartition) emitSlow(s *subpartition, data []byte) error {
	if err := p.writable(); err != nil {
		return err
	}
	if len(data) > p.maxRecord {
		return fmt.Errorf("partition %s: record of %d bytes exceeds the maximum of %d", p.id, len(data), p.maxRecord)
	}
	if err := p.flushSub(s); err != nil {
		return err
	}
	b, err := p.pool.request(s.idx)
	if err != nil {
		return p.releasedErr()
	}
	need := uvarintLen(uint64(len(data))) + len(data)
	if need > len(b.data) {
		b.data = make([]byte, need) // rare: a record larger than a segment travels alone
	}
	b.n = binary.PutUvarint(b.data, uint64(len(data)))
	b.n += copy(b.data[b.n:], data)
	if need > len(b.seg) {
		return p.queue(s, queueItem{buf: b})
	}
	s.current = b
	return nil
}

func (p *ResultPartition) writable() error {
	if p.released.Load() {
		return p.releasedErr()
	}
	if p.finished {
		return fmt.Errorf("partition %s: write after Finish", p.id)
	}
	return nil
}

func (p *ResultPartition) releasedErr() error {
	return fmt.Errorf("partition %s: %w", p.id, p.cause)
}

func (p *ResultPartition) queue(s *subpartition, it queueItem) error {
	if err := s.add(it); err != nil {
		return p.releasedErr()
	}
	return nil
}

func (p *ResultPartition) flushSub(s *subpartition) error {
	b := s.current
	if b == nil {
		return nil
	}
	s.current = nil
	return p.queue(s, queueItem{buf: b})
}

// BroadcastRecord emits the same record to every subpartition.
func (p *ResultPartition) BroadcastRecord(data []byte) error {
	for i := range p.subs {
		if err := p.EmitRecord(i, data); err != nil {
			return err
		}
	}
	return nil
}

// BroadcastEvent queues every subpartition's current buffer, then the event, so the event follows all data emitted
// before it. Events take no buffer from the pool.
func (p *ResultPartition) BroadcastEvent(ev Event) error {
	if err := p.writable(); err != nil {
		return err
	}
	for _, s := range p.subs {
		if err := p.flushSub(s); err != nil {
			return err
		}
		if err := p.queue(s, queueItem{ev: ev, isEvent: true}); err != nil {
			return err
		}
	}
	return nil
}

// BroadcastPriorityEvent queues ev on every subpartition AHEAD of the data buffers queued there (the current
// partially filled buffer is first closed and queued as usual, so it is overtaken too), and returns, per
// subpartition, copies of the frames of the data buffers it overtook, oldest first: the checkpoint's output channel
// state (Flink's ResultSubpartitionState). The overtaken buffers stay queued and are still delivered, after ev; see
// the package doc for who persists which buffer. Buffers already taken by a consumer (local) or by the connection's
// writer (remote) are not overtaken. A remote subpartition sends ev at once, without credit. Only checkpoint
// barriers and cancel markers may be priority events: EndOfPartition and EndOfData must follow the data.
func (p *ResultPartition) BroadcastPriorityEvent(ev Event) (overtaken [][][]byte, err error) {
	if ev.Type != CheckpointBarrier && ev.Type != CancelCheckpointMarker {
		return nil, fmt.Errorf("partition %s: %s cannot be a priority event", p.id, ev.Type)
	}
	if err := p.writable(); err != nil {
		return nil, err
	}
	overtaken = make([][][]byte, len(p.subs))
	for i, s := range p.subs {
		if err := p.flushSub(s); err != nil {
			return nil, err
		}
		ov, err := s.addPriority(ev)
		if err != nil {
			return nil, p.releasedErr()
		}
		overtaken[i] = ov
	}
	return overtaken, nil
}

// EmitRawBuffer queues a recovered output buffer on subpartition sub: frames exactly as BroadcastPriorityEvent
// returned them in an earlier attempt (records framed uvarint(len) | bytes). The task calls it first, at restore,
// for every recovered buffer in order, so they precede everything it emits afterwards; a partially filled current
// buffer is queued first, keeping call order in any case. It takes a buffer from the pool (blocking under
// backpressure) and copies frames; malformed frames are rejected, as they would fail the consumer.
func (p *ResultPartition) EmitRawBuffer(sub int, frames []byte) error {
	if uint(sub) >= uint(len(p.subs)) {
		return fmt.Errorf("partition %s: raw buffer for subpartition %d of %d", p.id, sub, len(p.subs))
	}
	if err := p.writable(); err != nil {
		return err
	}
	if len(frames) == 0 {
		return nil
	}
	if len(frames) > p.m.cfg.MaxFrameSize {
		return fmt.Errorf("partition %s: raw buffer of %d bytes exceeds the maximum of %d", p.id, len(frames), p.m.cfg.MaxFrameSize)
	}
	for rest := frames; len(rest) > 0; {
		var err error
		if _, rest, err = NextRecord(rest); err != nil {
			return fmt.Errorf("partition %s subpartition %d: recovered buffer: %w", p.id, sub, err)
		}
	}
	s := p.subs[sub]
	if err := p.flushSub(s); err != nil {
		return err
	}
	b, err := p.pool.request(sub)
	if err != nil {
		return p.releasedErr()
	}
	if len(frames) > len(b.data) {
		b.data = make([]byte, len(frames)) // rare: a recovered record larger than a segment
	}
	b.n = copy(b.data, frames)
	return p.queue(s, queueItem{buf: b})
}

// Flush queues partially filled current buffers (the task calls it on execution.buffer-timeout).
func (p *ResultPartition) Flush() {
	if p.released.Load() {
		return
	}
	for _, s := range p.subs {
		_ = p.flushSub(s) // only fails on release, which the next write reports
	}
}

// Finish broadcasts EndOfPartition. The data stays readable until every subpartition is consumed, then the
// partition releases itself.
func (p *ResultPartition) Finish() error {
	if err := p.BroadcastEvent(Event{Type: EndOfPartition}); err != nil {
		return err
	}
	p.finished = true
	return nil
}

// Release drops the queued data and fails blocked writers and the consumers' channels with cause. Idempotent.
func (p *ResultPartition) Release(cause error) {
	if cause == nil {
		cause = ErrPartitionReleased
	} else if !errors.Is(cause, ErrPartitionReleased) {
		cause = fmt.Errorf("%w: %w", ErrPartitionReleased, cause)
	}
	p.release(cause)
}

func (p *ResultPartition) release(cause error) {
	p.releaseOnce.Do(func() {
		p.cause = cause
		p.released.Store(true)
		p.pool.release(cause)
		for _, s := range p.subs {
			s.release(cause)
		}
		p.m.removePartition(p)
	})
}

func (p *ResultPartition) subConsumed() {
	if int(p.consumed.Add(1)) == len(p.subs) {
		p.release(fmt.Errorf("%w: fully consumed", ErrPartitionReleased))
	}
}
