package network

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"go.uber.org/zap"
)

var (
	errPartitionNotFound = errors.New("partition not found at producer")
	// errProducerBusy: the producer's data server refused the connection over its pending-connection limits.
	errProducerBusy = errors.New("producer busy")
	// errNoAnswer: the connection ended before the producer sent anything. A refused connection usually ends so:
	// the server closes it with the request unread, and the kernel then sends a reset that may overtake the busy
	// error frame.
	errNoAnswer = errors.New("producer closed the connection before answering the partition request")
)

// retryable reports whether a connection attempt failed in a way that is worth retrying with backoff until
// PartitionRequestTimeout: nothing was received on it, so the channel's credit is intact.
func retryable(err error) bool {
	return errors.Is(err, errPartitionNotFound) || errors.Is(err, errProducerBusy) || errors.Is(err, errNoAnswer)
}

type receivedItem struct {
	buf       *Buffer // the buffer, or for an event the credit buffer it occupied (none for a priority event)
	ev        Event
	isEvent   bool
	priority  bool
	overtaken int // priority event: data buffers in received when it arrived
}

// remoteChannel is the consumer end of one channel of the connection to the producer's Manager (a clientConn
// shared by every channel between the two Managers). Its credit is its free buffers: BuffersPerChannel exclusive
// ones plus floating ones borrowed from the gate while the producer announces a backlog larger than that.
// Invariant: len(free) == credit the producer still holds + frames in flight + unannounced. Priority events take no
// credit: they are decoded into the reader's scratch and wait in prio, which poll empties before received, so a
// priority event jumps ahead of the buffers received but not yet polled.
type remoteChannel struct {
	g   *InputGate
	idx int
	log *zap.Logger

	mu          sync.Mutex
	free        []*Buffer
	unannounced int
	backlog     int
	received    ring[receivedItem]
	numData     int // data buffers in received
	prio        ring[receivedItem]
	err         error
	closed      bool
	// The current attempt: the connection the channel is open on and its id there (nil, 0 between attempts).
	cc *clientConn
	id uint32
	// creditQueued: c is in cc's line of channels with credit to announce.
	creditQueued bool

	waitingFloating bool // guarded by g.floating.mu
}

func newRemoteChannel(g *InputGate, idx int) *remoteChannel {
	c := &remoteChannel{g: g, idx: idx, log: g.m.log}
	for i := 0; i < g.m.cfg.BuffersPerChannel; i++ {
		c.free = append(c.free, newBuffer(g.m.cfg.SegmentSize, c))
	}
	return c
}

// announce puts c in its connection's line of credit to announce, once. c.mu is held; the caller calls the
// returned function, if any, after unlocking.
func (c *remoteChannel) announce() *clientConn {
	if c.cc == nil || c.creditQueued {
		return nil
	}
	c.creditQueued = true
	return c.cc
}

// recycle frees a buffer's credit. A floating buffer the channel no longer needs goes back to the gate's pool
// before it is ever announced, so announced credit is always backed by a buffer.
func (c *remoteChannel) recycle(b *Buffer) {
	c.mu.Lock()
	if b.floating && (c.closed || c.backlog <= len(c.free)) {
		c.mu.Unlock()
		c.g.floating.put(b)
		return
	}
	c.free = append(c.free, b)
	c.unannounced++
	cc := c.announce()
	c.mu.Unlock()
	if cc != nil {
		cc.queueCredit(c)
	}
}

// addFloating is the floating pool handing c a buffer it waited for; false if c no longer wants it.
func (c *remoteChannel) addFloating(b *Buffer) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.free = append(c.free, b)
	c.unannounced++
	cc := c.announce()
	c.mu.Unlock()
	if cc != nil {
		cc.queueCredit(c)
	}
	return true
}

// requestFloating borrows floating buffers while the producer's backlog exceeds the free buffers.
func (c *remoteChannel) requestFloating() {
	for {
		c.mu.Lock()
		need := c.backlog - len(c.free)
		c.mu.Unlock()
		if need <= 0 {
			break
		}
		b := c.g.floating.take(c)
		if b == nil {
			break
		}
		if !c.addFloating(b) {
			c.g.floating.put(b)
			break
		}
	}
}

func (c *remoteChannel) run(ctx context.Context) {
	spec := c.g.specs[c.idx]
	timeout := c.g.m.cfg.PartitionRequestTimeout
	done, err := retryUntil(ctx, timeout, func() (bool, error) {
		cc, err := c.g.m.clientFor(ctx, spec.ProducerAddress)
		if err != nil {
			return ctx.Err() != nil, err
		}
		err = cc.serveChannel(c)
		if retryable(err) {
			return ctx.Err() != nil, err
		}
		return true, err
	})
	if ctx.Err() != nil {
		return // closed: not a failure
	}
	if !done && err != nil {
		err = notAvailableErr(spec, timeout, err)
	}
	if err != nil {
		c.fail(err)
	}
}

func (c *remoteChannel) fail(err error) {
	c.mu.Lock()
	if c.err == nil && !c.closed {
		c.err = err
	}
	c.mu.Unlock()
	c.g.notify(c.idx)
}

// clientConn is the consumer end of the one connection from this Manager to a producer's Manager (Flink's
// PartitionRequestClient): every remote channel of every gate reading from that producer is multiplexed on it. Its
// reader delivers each frame to the channel it names and never waits for a channel: a channel's frames land in
// buffers it has announced as credit. Its writer sends partition requests, cancels and the channels' credit. It
// lives while channels use it: the last channel to end closes it (no idle period: a new channel dials again).
type clientConn struct {
	m        *Manager
	addr     string
	maxFrame int
	ready    chan struct{} // closed when the dial has ended; conn or dialErr is set before
	conn     net.Conn
	dialErr  error
	wake     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once

	refs int // channels using or about to use it; guarded by m.clientsMu

	mu       sync.Mutex
	channels map[uint32]clientChannel
	lastID   uint32               // ids at or below it and not in channels have ended on this side
	answered bool                 // a frame arrived: a channel losing the connection may have lost data, so it fails
	err      error                // the connection failed: no channel joins it any more
	out      ring[[]byte]         // requests and cancels, in order
	credits  ring[*remoteChannel] // channels with credit to announce
}

// clientChannel is an open channel of a clientConn; done receives the end of the attempt, once: nil after
// EndOfPartition or a cancel, else why it failed.
type clientChannel struct {
	c    *remoteChannel
	done chan error
}

func newClientConn(m *Manager, addr string) *clientConn {
	return &clientConn{m: m, addr: addr, maxFrame: m.cfg.MaxFrameSize, ready: make(chan struct{}),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), channels: map[uint32]clientChannel{}}
}

// clientFor returns the connection to addr, dialing it if there is none, with one reference taken for the caller:
// serveChannel releases it.
func (m *Manager) clientFor(ctx context.Context, addr string) (*clientConn, error) {
	m.clientsMu.Lock()
	if m.clientsClosed {
		m.clientsMu.Unlock()
		return nil, errManagerClosed
	}
	cc := m.clients[addr]
	if cc == nil {
		cc = newClientConn(m, addr)
		m.clients[addr] = cc
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			cc.dialAndRead()
		}()
	}
	cc.refs++
	m.clientsMu.Unlock()
	select {
	case <-cc.ready:
	case <-ctx.Done():
		m.unref(cc)
		return nil, ctx.Err()
	}
	if cc.dialErr != nil {
		m.unref(cc)
		return nil, cc.dialErr
	}
	return cc, nil
}

// unref releases a reference; the last one closes the connection.
func (m *Manager) unref(cc *clientConn) {
	m.clientsMu.Lock()
	cc.refs--
	last := cc.refs == 0
	if last && m.clients[cc.addr] == cc {
		delete(m.clients, cc.addr)
	}
	m.clientsMu.Unlock()
	if last {
		cc.shutdown()
	}
}

// forget takes a failed connection out of the Manager's map, so that the next channel dials anew.
func (m *Manager) forget(cc *clientConn) {
	m.clientsMu.Lock()
	if m.clients[cc.addr] == cc {
		delete(m.clients, cc.addr)
	}
	m.clientsMu.Unlock()
}

// shutdown stops the writer and closes the connection; the reader sees it and ends.
func (cc *clientConn) shutdown() {
	cc.stopOnce.Do(func() { close(cc.stop) })
	select {
	case <-cc.ready:
		if cc.conn != nil {
			cc.conn.Close()
		}
	default: // still dialing: dialAndRead closes it
	}
}

func (cc *clientConn) signal() {
	select {
	case cc.wake <- struct{}{}:
	default:
	}
}

func (cc *clientConn) queueCredit(c *remoteChannel) {
	cc.mu.Lock()
	cc.credits.push(c)
	cc.mu.Unlock()
	cc.signal()
}

// dialAndRead dials, then runs the writer and, on this goroutine, the reader until the connection ends.
func (cc *clientConn) dialAndRead() {
	conn, err := cc.m.dial(cc.m.ctx, cc.addr)
	if err != nil {
		cc.dialErr = fmt.Errorf("connect to %s: %w", cc.addr, err)
		cc.m.forget(cc)
		close(cc.ready)
		return
	}
	cc.conn = conn
	close(cc.ready)
	select {
	case <-cc.stop: // every channel gave up while it dialed
		conn.Close()
		return
	default:
	}
	cc.m.outgoing.Add(1)
	defer cc.m.outgoing.Add(-1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cc.writeLoop()
	}()
	err = cc.readLoop(bufio.NewReaderSize(conn, 16<<10))
	conn.Close()
	cc.fail(err)
	cc.stopOnce.Do(func() { close(cc.stop) })
	wg.Wait()
}

// fail ends every channel of the connection with err. A connection on which nothing arrived ended before the
// producer answered (a refusal, usually): its channels retry, their credit intact.
func (cc *clientConn) fail(err error) {
	cc.m.forget(cc)
	cc.mu.Lock()
	if cc.err == nil {
		cc.err = err
	}
	answered := cc.answered
	chs := cc.channels
	cc.channels = map[uint32]clientChannel{}
	cc.mu.Unlock()
	select {
	case <-cc.stop:
		if len(chs) == 0 {
			return // closed by its last channel: nothing failed
		}
	default:
	}
	if errors.Is(err, errProtocol) {
		cc.m.log.Error("network: closing connection after protocol error", zap.String("peer", cc.addr),
			zap.Int("channels", len(chs)), zap.Error(err))
	}
	if !answered && isConnErr(err) {
		err = fmt.Errorf("%w: %w", errNoAnswer, err)
	}
	for _, e := range chs {
		e.done <- err
	}
}

// serveChannel opens c on the connection and waits until its attempt ends: nil after EndOfPartition or when c is
// closed, else why (retryable ones: partition not found, producer busy, no answer). It releases the caller's
// reference to cc.
func (cc *clientConn) serveChannel(c *remoteChannel) error {
	defer cc.m.unref(cc)
	spec := c.g.specs[c.idx]
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	// Nothing was received on an earlier attempt (it ended unanswered), so all free buffers are credit.
	credit := len(c.free)
	c.unannounced = 0
	c.mu.Unlock()

	done := make(chan error, 1)
	cc.mu.Lock()
	if cc.err != nil {
		err := cc.err
		cc.mu.Unlock()
		return fmt.Errorf("%w: connection to %s failed before the request: %w", errNoAnswer, cc.addr, err)
	}
	cc.lastID++
	id := cc.lastID
	cc.channels[id] = clientChannel{c: c, done: done}
	cc.out.push(encodePartitionRequest(id, spec.Partition, spec.Subpartition, credit))
	cc.mu.Unlock()
	cc.signal()

	c.mu.Lock()
	c.cc, c.id = cc, id
	c.creditQueued = c.unannounced > 0
	closed, queue := c.closed, c.creditQueued
	c.mu.Unlock()
	if closed {
		cc.cancel(id)
	} else if queue {
		cc.queueCredit(c)
	}
	err := <-done
	c.mu.Lock()
	c.cc, c.id, c.creditQueued = nil, 0, false
	c.mu.Unlock()
	return err
}

// end closes channel id on this side with err; false if it had ended already.
func (cc *clientConn) end(id uint32, err error) bool {
	cc.mu.Lock()
	e, ok := cc.channels[id]
	delete(cc.channels, id)
	cc.mu.Unlock()
	if ok {
		e.done <- err
	}
	return ok
}

// cancel ends channel id and tells the producer, which drops its side (Flink's CancelPartitionRequest).
func (cc *clientConn) cancel(id uint32) {
	cc.mu.Lock()
	e, ok := cc.channels[id]
	if ok {
		delete(cc.channels, id)
		f := make([]byte, frameHeaderLen)
		putHeader(f, frameCancel, id, 0)
		cc.out.push(f)
	}
	cc.mu.Unlock()
	if ok {
		cc.signal()
		e.done <- nil
	}
}

func (cc *clientConn) writeLoop() {
	w := bufio.NewWriterSize(cc.conn, 4<<10)
	var frame [frameHeaderLen + 4]byte
	for {
		select {
		case <-cc.stop:
			return
		case <-cc.wake:
		}
		for {
			cc.mu.Lock()
			f, isOut := cc.out.pop()
			var c *remoteChannel
			ok := false
			if !isOut {
				c, ok = cc.credits.pop()
			}
			cc.mu.Unlock()
			if isOut {
				if _, err := w.Write(f); err != nil {
					cc.conn.Close() // the reader sees it and reports
					return
				}
				continue
			}
			if !ok {
				break
			}
			c.mu.Lock()
			mine := c.cc == cc
			n, id := c.unannounced, c.id
			if mine {
				c.unannounced, c.creditQueued = 0, false
			}
			c.mu.Unlock()
			if !mine || n == 0 {
				continue
			}
			if _, err := w.Write(putUint32Frame(frame[:], frameAddCredit, id, n)); err != nil {
				cc.conn.Close()
				return
			}
		}
		if err := w.Flush(); err != nil {
			cc.conn.Close()
			return
		}
	}
}

// readLoop reads frames until the connection fails; it returns why. A frame for a channel that has ended on this
// side (canceled while the producer was still sending) is skipped; one for a channel never opened is a protocol
// error.
func (cc *clientConn) readLoop(r *bufio.Reader) error {
	var hdr [frameHeaderLen + 4 + eventSize]byte
	h := hdr[:]
	for {
		typ, id, n, err := readHeader(r, h, cc.maxFrame+4)
		if err != nil {
			return connErr(err)
		}
		switch typ {
		case frameBuffer, frameEvent, framePriorityEvent, frameBacklog, frameError:
		default:
			return fmt.Errorf("%w: unknown frame type %d", errProtocol, typ)
		}
		if id == 0 {
			if typ != frameError {
				return fmt.Errorf("%w: frame type %d for channel 0", errProtocol, typ)
			}
			// The producer refused or dropped the whole connection (busy): every channel on it gets the error.
			return readErrorFrame(r, n)
		}
		cc.mu.Lock()
		cc.answered = true
		e, open := cc.channels[id]
		last := cc.lastID
		cc.mu.Unlock()
		if !open {
			if id > last {
				return fmt.Errorf("%w: frame type %d for channel %d, which was never requested (last %d)", errProtocol, typ, id, last)
			}
			if _, err := r.Discard(n); err != nil {
				return connErr(err)
			}
			continue
		}
		ended, err := e.c.readFrame(r, h, typ, n)
		if err != nil {
			if errors.Is(err, errProtocol) || isConnErr(err) {
				return err
			}
			cc.end(id, err) // the producer ended this channel: the others go on
			continue
		}
		if ended {
			cc.end(id, nil)
		}
	}
}

// readErrorFrame reads an error frame's payload and returns what it means: a retryable error (partition not found,
// busy) or the producer's failure.
func readErrorFrame(r io.Reader, n int) error {
	if n > maxErrorLen {
		return fmt.Errorf("%w: error frame of %d bytes", errProtocol, n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return connErr(err)
	}
	code, msg, err := decodeError(p)
	if err != nil {
		return err
	}
	switch code {
	case errCodePartitionNotFound:
		return fmt.Errorf("%w: %s", errPartitionNotFound, msg)
	case errCodeBusy:
		return fmt.Errorf("%w: %s", errProducerBusy, msg)
	}
	return fmt.Errorf("producer: %s: %w", msg, ErrPartitionReleased)
}

// connError marks an error of the connection itself (as opposed to one the producer sent for a channel).
type connError struct{ error }

func (e connError) Unwrap() error { return e.error }

func isConnErr(err error) bool {
	var ce connError
	return errors.As(err, &ce)
}

// readFrame reads the payload of one frame of c (header already read): ended after EndOfPartition; an error frame
// returns the producer's error for this channel; a protocol error or connErr fails the connection.
func (c *remoteChannel) readFrame(r *bufio.Reader, h []byte, typ byte, n int) (ended bool, err error) {
	switch typ {
	case frameBuffer, frameEvent:
		if n < 4 || (typ == frameEvent && n != 4+eventSize) {
			return false, fmt.Errorf("%w: frame type %d of %d bytes", errProtocol, typ, n)
		}
		if _, err := io.ReadFull(r, h[:4]); err != nil {
			return false, connErr(err)
		}
		backlog := int(binary.BigEndian.Uint32(h[:4]))
		b := c.takeCredit()
		if b == nil {
			return false, fmt.Errorf("%w: producer sent without credit on channel %d", errProtocol, c.idx)
		}
		it := receivedItem{buf: b}
		if typ == frameBuffer {
			if n-4 > len(b.data) {
				// A record larger than a segment (bounded by MaxFrameSize).
				data, err := readGrowing(r, n-4, len(b.data))
				if err != nil {
					b.Recycle()
					return false, connErr(err)
				}
				b.data = data
			} else if _, err := io.ReadFull(r, b.data[:n-4]); err != nil {
				b.Recycle()
				return false, connErr(err)
			}
			b.n = n - 4
		} else {
			if _, err := io.ReadFull(r, h[4:4+eventSize]); err != nil {
				b.Recycle()
				return false, connErr(err)
			}
			ev, err := decodeEvent(h[4 : 4+eventSize])
			if err != nil {
				b.Recycle()
				return false, err
			}
			it.ev, it.isEvent = ev, true
		}
		c.deliver(it, backlog)
		return it.isEvent && it.ev.Type == EndOfPartition, nil
	case framePriorityEvent:
		if n != 4+eventSize {
			return false, fmt.Errorf("%w: frame type %d of %d bytes", errProtocol, typ, n)
		}
		if _, err := io.ReadFull(r, h[:4+eventSize]); err != nil {
			return false, connErr(err)
		}
		ev, err := decodeEvent(h[4 : 4+eventSize])
		if err != nil {
			return false, err
		}
		if ev.Type != CheckpointBarrier && ev.Type != CancelCheckpointMarker {
			return false, fmt.Errorf("%w: %s sent as a priority event", errProtocol, ev.Type)
		}
		return false, c.deliverPriority(ev, int(binary.BigEndian.Uint32(h[:4])))
	case frameBacklog:
		if n != 4 {
			return false, fmt.Errorf("%w: backlog frame of %d bytes", errProtocol, n)
		}
		if _, err := io.ReadFull(r, h[:4]); err != nil {
			return false, connErr(err)
		}
		c.mu.Lock()
		c.backlog = int(binary.BigEndian.Uint32(h[:4]))
		c.mu.Unlock()
		c.requestFloating()
		return false, nil
	}
	// frameError
	err = readErrorFrame(r, n)
	if errors.Is(err, errProducerBusy) {
		return false, fmt.Errorf("%w: busy error for channel %d", errProtocol, c.idx)
	}
	return false, err
}

// readGrowing reads n bytes into a new slice that grows, from a first chunk of the given size, with the bytes that
// arrive: a producer that announces a frame of MaxFrameSize and sends ten bytes of it costs the consumer ten bytes
// and a chunk, not MaxFrameSize.
func readGrowing(r io.Reader, n, chunk int) ([]byte, error) {
	buf := make([]byte, min(n, max(chunk, 64<<10)))
	read := 0
	for {
		k, err := io.ReadFull(r, buf[read:])
		read += k
		if err != nil {
			return nil, err
		}
		if read == n {
			return buf, nil
		}
		buf = append(buf, make([]byte, min(n-read, len(buf)))...)
	}
}

func connErr(err error) error {
	if errors.Is(err, errProtocol) {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return connError{fmt.Errorf("connection closed by producer: %w", err)}
	}
	return connError{fmt.Errorf("connection lost: %w", err)}
}

func (c *remoteChannel) takeCredit() *Buffer {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.free)
	if n == 0 {
		return nil
	}
	b := c.free[n-1]
	c.free = c.free[:n-1]
	return b
}

func (c *remoteChannel) deliver(it receivedItem, backlog int) {
	c.mu.Lock()
	c.received.push(it)
	if !it.isEvent {
		c.numData++
	}
	c.backlog = backlog
	c.mu.Unlock()
	c.g.notify(c.idx)
	c.requestFloating()
}

// deliverPriority queues a priority event ahead of everything received. What it overtakes is counted here, under
// the same lock poll takes, so the count is exactly the data buffers poll will return after it that arrived (hence,
// TCP being ordered, were sent) before it.
func (c *remoteChannel) deliverPriority(ev Event, backlog int) error {
	c.mu.Lock()
	if c.prio.len() >= maxPendingPriority {
		c.mu.Unlock()
		return fmt.Errorf("%w: more than %d priority events pending", errProtocol, maxPendingPriority)
	}
	c.prio.push(receivedItem{ev: ev, isEvent: true, priority: true, overtaken: c.numData})
	c.backlog = backlog
	c.mu.Unlock()
	c.g.notifyPriority(c.idx)
	c.requestFloating()
	return nil
}

func (c *remoteChannel) poll() (BufferOrEvent, bool, bool, error) { return c.take(true) }

func (c *remoteChannel) pollPriority() (BufferOrEvent, bool, bool, error) { return c.take(false) }

func (c *remoteChannel) take(withData bool) (BufferOrEvent, bool, bool, error) {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return BufferOrEvent{}, false, false, err
	}
	it, ok := c.prio.pop()
	var copies [][]byte
	if ok {
		copies = c.copyOvertaken(it.overtaken)
	} else if withData {
		if it, ok = c.received.pop(); ok && !it.isEvent {
			c.numData--
		}
	}
	more := c.prio.len() > 0
	if withData {
		more = more || c.received.len() > 0
	}
	c.mu.Unlock()
	if !ok {
		return BufferOrEvent{}, false, false, nil
	}
	if it.isEvent {
		if it.buf != nil {
			it.buf.Recycle() // the event is decoded: its credit is free again
		}
		return BufferOrEvent{Event: it.ev, IsEvent: true, Priority: it.priority, Overtaken: it.overtaken,
			OvertakenData: copies}, more, true, nil
	}
	return BufferOrEvent{Buffer: it.buf}, more, true, nil
}

// copyOvertaken copies the frames of the first n data buffers of received, oldest first, into one allocation:
// the buffers a priority event being taken overtook. c.mu is held. Nothing was taken from received since the event
// arrived (take serves prio first), so these are exactly the buffers counted when it arrived; later arrivals are
// behind them. A priority event is rare (one per checkpoint), so allocating here is fine.
func (c *remoteChannel) copyOvertaken(n int) [][]byte {
	if n <= 0 {
		return nil
	}
	// The first n data buffers, and the events among them.
	items, found := 0, 0
	for ; items < c.received.len() && found < n; items++ {
		if !c.received.at(items).isEvent {
			found++
		}
	}
	return copyFrames(items, func(i int) (*Buffer, bool) { it := c.received.at(i); return it.buf, it.isEvent })
}

func (c *remoteChannel) buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.prio.len() + c.received.len()
}

func (c *remoteChannel) close() {
	c.mu.Lock()
	c.closed = true
	cc, id := c.cc, c.id
	c.mu.Unlock()
	if cc != nil {
		cc.cancel(id)
	}
}

// dial connects to a producer's data server; with TLS the handshake completes within HandshakeTimeout (the
// server's bound too), so that a peer that accepts and stays silent does not hold the channels waiting for it.
func (m *Manager) dial(ctx context.Context, addr string) (net.Conn, error) {
	if m.cfg.TLS == nil {
		d := net.Dialer{Timeout: m.cfg.PartitionRequestTimeout}
		return d.DialContext(ctx, "tcp", addr)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.HandshakeTimeout)
	defer cancel()
	return m.cfg.TLS.Dial(ctx, "tcp", addr)
}
