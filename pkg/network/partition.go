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
	buf     *Buffer
	ev      Event
	isEvent bool
}

// dataListener is told when a subpartition gets a new element or is released. It is called without locks held and
// must not block: a local input channel marks itself ready in its gate; a server connection wakes its writer.
type dataListener interface{ notifyDataAvailable() }

// subpartition is the queue of one consumer. The writer's current buffer is private to the task goroutine and
// enters the queue only when full, flushed or followed by an event; the queue itself is shared with the reader.
type subpartition struct {
	p       *ResultPartition
	idx     int
	current *Buffer // task goroutine only

	mu        sync.Mutex
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

// poll takes the next element. backlog is what is left behind it. Taking EndOfPartition marks the subpartition
// consumed, which releases the partition once every subpartition is.
func (s *subpartition) poll() (it queueItem, backlog int, ok bool, err error) {
	s.mu.Lock()
	if s.err != nil {
		err = s.err
		s.mu.Unlock()
		return it, 0, false, err
	}
	it, ok = s.queue.pop()
	backlog = s.queue.len()
	s.mu.Unlock()
	if ok && it.isEvent && it.ev.Type == EndOfPartition {
		s.p.subConsumed()
	}
	return it, backlog, ok, nil
}

func (s *subpartition) backlog() int {
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
	pending := s.queue.len() > 0
	s.mu.Unlock()
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

// Backlog is the number of elements (buffers and events) queued in subpartition sub that its consumer has not
// taken yet: the producer side of the in-flight data.
func (p *ResultPartition) Backlog(sub int) int {
	if sub < 0 || sub >= len(p.subs) {
		return 0
	}
	return p.subs[sub].backlog()
}

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
