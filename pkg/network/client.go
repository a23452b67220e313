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

// remoteChannel is the consumer end of one TCP connection to the producer's Manager. Its credit is its free buffers:
// BuffersPerChannel exclusive ones plus floating ones borrowed from the gate while the producer announces a backlog
// larger than that. Invariant: len(free) == credit the producer still holds + frames in flight + unannounced.
// Priority events take no credit: they are decoded into the header scratch and wait in prio, which poll empties
// before received, so a priority event jumps ahead of the buffers received but not yet polled.
type remoteChannel struct {
	g        *InputGate
	idx      int
	maxFrame int
	log      *zap.Logger

	mu          sync.Mutex
	free        []*Buffer
	unannounced int
	backlog     int
	received    ring[receivedItem]
	numData     int // data buffers in received
	prio        ring[receivedItem]
	err         error
	closed      bool
	conn        net.Conn

	waitingFloating bool          // guarded by g.floating.mu
	wake            chan struct{} // credit to announce
	hdr             [frameHeaderLen + 4 + eventSize]byte
}

func newRemoteChannel(g *InputGate, idx int) *remoteChannel {
	c := &remoteChannel{g: g, idx: idx, maxFrame: g.m.cfg.MaxFrameSize, log: g.m.log, wake: make(chan struct{}, 1)}
	for i := 0; i < g.m.cfg.BuffersPerChannel; i++ {
		c.free = append(c.free, newBuffer(g.m.cfg.SegmentSize, c))
	}
	return c
}

func (c *remoteChannel) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
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
	c.mu.Unlock()
	c.signal()
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
	c.mu.Unlock()
	c.signal()
	return true
}

// requestFloating borrows floating buffers while the producer's backlog exceeds the free buffers.
func (c *remoteChannel) requestFloating() {
	added := false
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
		added = true
	}
	if added {
		c.signal()
	}
}

func (c *remoteChannel) run(ctx context.Context) {
	spec := c.g.specs[c.idx]
	timeout := c.g.m.cfg.PartitionRequestTimeout
	done, err := retryUntil(ctx, timeout, func() (bool, error) {
		conn, err := c.g.m.dial(ctx, spec.ProducerAddress)
		if err != nil {
			return ctx.Err() != nil, err
		}
		err = c.serve(conn)
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

// serve requests the subpartition on conn and reads from it until EndOfPartition (nil), an error frame or a
// broken connection. It owns conn and the credit-announcing goroutine of this connection.
func (c *remoteChannel) serve(conn net.Conn) error {
	spec := c.g.specs[c.idx]
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		conn.Close()
		return nil
	}
	c.conn = conn
	// Nothing was received on an earlier attempt (it ended in partition-not-found), so all free buffers are credit.
	credit := len(c.free)
	c.unannounced = 0
	c.mu.Unlock()
	defer conn.Close()

	if _, err := conn.Write(encodePartitionRequest(spec.Partition, spec.Subpartition, credit)); err != nil {
		return fmt.Errorf("%w: send partition request: %w", errNoAnswer, err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.announceCredit(conn, stop)
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()

	r := bufio.NewReaderSize(conn, 16<<10)
	if _, err := r.Peek(1); err != nil {
		return fmt.Errorf("%w: %w", errNoAnswer, err)
	}
	err := c.readFrames(r)
	if errors.Is(err, errProtocol) {
		c.log.Error("network: closing connection after protocol error",
			zap.String("peer", conn.RemoteAddr().String()), zap.String("partition", string(spec.Partition)), zap.Error(err))
	}
	return err
}

func (c *remoteChannel) announceCredit(conn net.Conn, stop <-chan struct{}) {
	var frame [9]byte
	for {
		select {
		case <-stop:
			return
		case <-c.wake:
		}
		c.mu.Lock()
		n := c.unannounced
		c.unannounced = 0
		c.mu.Unlock()
		if n == 0 {
			continue
		}
		if _, err := conn.Write(putUint32Frame(frame[:], frameAddCredit, n)); err != nil {
			conn.Close() // the reader sees it and reports
			return
		}
	}
}

func (c *remoteChannel) readFrames(r *bufio.Reader) error {
	h := c.hdr[:]
	for {
		typ, n, err := readHeader(r, h, c.maxFrame+4)
		if err != nil {
			return connErr(err)
		}
		switch typ {
		case frameBuffer, frameEvent:
			if n < 4 || (typ == frameEvent && n != 4+eventSize) {
				return fmt.Errorf("%w: frame type %d of %d bytes", errProtocol, typ, n)
			}
			if _, err := io.ReadFull(r, h[:4]); err != nil {
				return connErr(err)
			}
			backlog := int(binary.BigEndian.Uint32(h[:4]))
			b := c.takeCredit()
			if b == nil {
				return fmt.Errorf("%w: producer sent without credit", errProtocol)
			}
			it := receivedItem{buf: b}
			if typ == frameBuffer {
				if n-4 > len(b.data) {
					// A record larger than a segment (bounded by MaxFrameSize).
					data, err := readGrowing(r, n-4, len(b.data))
					if err != nil {
						b.Recycle()
						return connErr(err)
					}
					b.data = data
				} else if _, err := io.ReadFull(r, b.data[:n-4]); err != nil {
					b.Recycle()
					return connErr(err)
				}
				b.n = n - 4
			} else {
				if _, err := io.ReadFull(r, h[4:4+eventSize]); err != nil {
					b.Recycle()
					return connErr(err)
				}
				ev, err := decodeEvent(h[4 : 4+eventSize])
				if err != nil {
					b.Recycle()
					return err
				}
				it.ev, it.isEvent = ev, true
			}
			c.deliver(it, backlog)
			if it.isEvent && it.ev.Type == EndOfPartition {
				return nil
			}
		case framePriorityEvent:
			if n != 4+eventSize {
				return fmt.Errorf("%w: frame type %d of %d bytes", errProtocol, typ, n)
			}
			if _, err := io.ReadFull(r, h[:4+eventSize]); err != nil {
				return connErr(err)
			}
			ev, err := decodeEvent(h[4 : 4+eventSize])
			if err != nil {
				return err
			}
			if ev.Type != CheckpointBarrier && ev.Type != CancelCheckpointMarker {
				return fmt.Errorf("%w: %s sent as a priority event", errProtocol, ev.Type)
			}
			if err := c.deliverPriority(ev, int(binary.BigEndian.Uint32(h[:4]))); err != nil {
				return err
			}
		case frameBacklog:
			if n != 4 {
				return fmt.Errorf("%w: backlog frame of %d bytes", errProtocol, n)
			}
			if _, err := io.ReadFull(r, h[:4]); err != nil {
				return connErr(err)
			}
			c.mu.Lock()
			c.backlog = int(binary.BigEndian.Uint32(h[:4]))
			c.mu.Unlock()
			c.requestFloating()
		case frameError:
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
		default:
			return fmt.Errorf("%w: unknown frame type %d", errProtocol, typ)
		}
	}
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
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("connection closed by producer: %w", err)
	}
	if errors.Is(err, errProtocol) {
		return err
	}
	return fmt.Errorf("connection lost: %w", err)
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
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// dial connects to a producer's data server; with TLS the handshake completes within HandshakeTimeout (the
// server's bound too), so that a peer that accepts and stays silent does not hold the channel.
func (m *Manager) dial(ctx context.Context, addr string) (net.Conn, error) {
	if m.cfg.TLS == nil {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.HandshakeTimeout)
	defer cancel()
	return m.cfg.TLS.Dial(ctx, "tcp", addr)
}
