package network

import (
	"sync"
	"sync/atomic"
)

// Buffer is one network buffer: a memory segment holding length-prefixed records (see NextRecord). It belongs to a
// pool and must be recycled exactly once by whoever holds it last; it must not be touched after Recycle.
type Buffer struct {
	data []byte // the segment, or an oversized array for a record larger than a segment
	seg  []byte // the pooled segment; restored on recycle
	n    int    // bytes of data in use

	owner    recycler
	sub      int  // producer side: the subpartition that holds this buffer against its quota
	floating bool // consumer side: borrowed from the gate's floating pool
}

type recycler interface{ recycle(*Buffer) }

func newBuffer(segSize int, owner recycler) *Buffer {
	seg := make([]byte, segSize)
	return &Buffer{data: seg, seg: seg, owner: owner}
}

// Data returns the frames in the buffer.
func (b *Buffer) Data() []byte { return b.data[:b.n] }

// Len is len(Data()).
func (b *Buffer) Len() int { return b.n }

// Recycle returns the buffer to its pool: for a remote channel this frees credit (announced to the producer in
// batches); for a local channel it frees the producer's buffer.
func (b *Buffer) Recycle() {
	if o := b.owner; o != nil {
		b.data, b.n = b.seg, 0
		o.recycle(b)
	}
}

// ring is a FIFO over a growable circular slice: no allocation once it has reached its working size.
type ring[T any] struct {
	buf  []T
	head int
	n    int
}

func (r *ring[T]) len() int { return r.n }

func (r *ring[T]) push(v T) {
	if r.n == len(r.buf) {
		nb := make([]T, max(8, 2*len(r.buf)))
		for i := 0; i < r.n; i++ {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
}

// at returns the i-th element from the head (0 <= i < len()).
func (r *ring[T]) at(i int) T { return r.buf[(r.head+i)%len(r.buf)] }

func (r *ring[T]) pop() (T, bool) {
	var zero T
	if r.n == 0 {
		return zero, false
	}
	v := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return v, true
}

// partitionPool is a ResultPartition's LocalBufferPool: at most size segments (allocated lazily), each
// subpartition holding at most maxPerSub of them at once (queued, being written, or lent to a local consumer).
// request blocks while no buffer may be taken: that is backpressure.
//
// Availability (Flink's AvailabilityProvider): unavailable is set, under mu, while a request for some subpartition
// would block, so that the task can wait for a buffer outside of an emit while it serves its mailbox; avail is
// signalled when it is cleared. It is only ever set when buffers other than the writer's current ones (at most
// one per subpartition) are held, since only those are freed without the writer: waiting for availability never
// waits for the waiter itself. Hence never with maxPerSub < 2 or size <= the number of subpartitions.
type partitionPool struct {
	segSize   int
	size      int
	maxPerSub int
	canWait   bool // maxPerSub >= 2 && size > len(held): see above

	mu        sync.Mutex
	cond      sync.Cond
	free      []*Buffer
	allocated int
	held      []int
	atMax     int   // subpartitions holding maxPerSub buffers
	waiting   int   // writers blocked in request (tests and metrics)
	err       error // set on release: request fails, recycled buffers are dropped

	unavailable atomic.Bool
	avail       chan struct{}
}

func newPartitionPool(segSize, size, maxPerSub, numSubs int) *partitionPool {
	p := &partitionPool{segSize: segSize, size: size, maxPerSub: maxPerSub, held: make([]int, numSubs),
		canWait: maxPerSub >= 2 && size > numSubs, avail: make(chan struct{}, 1)}
	p.cond.L = &p.mu
	return p
}

// updateAvailability recomputes unavailable after a change; p.mu is held.
func (p *partitionPool) updateAvailability() {
	blocked := p.canWait && p.err == nil && (p.atMax > 0 || (len(p.free) == 0 && p.allocated >= p.size))
	if p.unavailable.Load() == blocked {
		return
	}
	p.unavailable.Store(blocked)
	if !blocked {
		select {
		case p.avail <- struct{}{}:
		default:
		}
	}
}

func (p *partitionPool) request(sub int) (*Buffer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.err == nil && (p.held[sub] >= p.maxPerSub || (len(p.free) == 0 && p.allocated >= p.size)) {
		p.waiting++
		p.cond.Wait()
		p.waiting--
	}
	if p.err != nil {
		return nil, p.err
	}
	var b *Buffer
	if n := len(p.free); n > 0 {
		b = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		b = newBuffer(p.segSize, p)
		p.allocated++
	}
	p.held[sub]++
	if p.held[sub] == p.maxPerSub {
		p.atMax++
	}
	b.sub = sub
	p.updateAvailability()
	return b, nil
}

func (p *partitionPool) recycle(b *Buffer) {
	p.mu.Lock()
	if p.held[b.sub] == p.maxPerSub {
		p.atMax--
	}
	p.held[b.sub]--
	if p.err == nil {
		p.free = append(p.free, b)
	}
	p.updateAvailability()
	p.mu.Unlock()
	p.cond.Broadcast()
}

func (p *partitionPool) release(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
		p.free = nil
	}
	p.updateAvailability() // available: the next write fails instead of waiting
	p.mu.Unlock()
	p.cond.Broadcast()
}

func (p *partitionPool) numWaiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiting
}

// floatingPool holds an InputGate's floating buffers, lent to whichever remote channel announces a backlog larger
// than its free buffers. A channel that finds the pool empty waits in line; a returned buffer goes to the first in
// line. It never blocks.
type floatingPool struct {
	segSize int
	size    int

	mu        sync.Mutex
	free      []*Buffer
	allocated int
	waiters   ring[*remoteChannel]
}

// take lends a buffer to c, or queues c for the next returned one and returns nil.
func (f *floatingPool) take(c *remoteChannel) *Buffer {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.free); n > 0 {
		b := f.free[n-1]
		f.free = f.free[:n-1]
		b.owner = c
		return b
	}
	if f.allocated < f.size {
		f.allocated++
		b := newBuffer(f.segSize, c)
		b.floating = true
		return b
	}
	if !c.waitingFloating {
		c.waitingFloating = true
		f.waiters.push(c)
	}
	return nil
}

// put takes a floating buffer back, handing it straight to a waiting channel if there is one.
func (f *floatingPool) put(b *Buffer) {
	for {
		f.mu.Lock()
		c, ok := f.waiters.pop()
		if !ok {
			b.owner = nil
			f.free = append(f.free, b)
			f.mu.Unlock()
			return
		}
		c.waitingFloating = false
		f.mu.Unlock()
		b.owner = c
		if c.addFloating(b) {
			return
		}
	}
}
