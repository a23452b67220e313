package network

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config sizes the data plane of one TaskManager. Start from DefaultConfig.
type Config struct {
	// ListenAddress is host:port of the data server; port 0 picks a free port (taskmanager.data.port).
	ListenAddress string
	// SegmentSize is the bytes per network buffer (taskmanager.memory.segment-size).
	SegmentSize int
	// BuffersPerChannel is the exclusive buffers, hence the guaranteed credit, of each remote input channel.
	BuffersPerChannel int
	// FloatingBuffersPerGate is the buffers an input gate lends to its channels with a backlog. It also sizes a
	// result partition's pool: numSubpartitions*BuffersPerChannel + FloatingBuffersPerGate buffers.
	FloatingBuffersPerGate int
	// MaxBuffersPerSubpartition bounds the buffers one subpartition holds (queued, being written or lent to a
	// local consumer), so that one slow consumer cannot take the whole pool (Flink: max-buffers-per-channel).
	MaxBuffersPerSubpartition int
	// PartitionRequestTimeout is how long a consumer retries, with backoff, a partition that is not there (yet).
	PartitionRequestTimeout time.Duration
	// MaxFrameSize caps a record, hence a frame read from the network: larger lengths are protocol errors.
	MaxFrameSize int
	// HandshakeTimeout is how long the data server waits for a new connection's partition request before it
	// closes the connection (taskmanager.network.handshake-timeout). An honest consumer sends its request right
	// after connecting; without this deadline a peer that connects and sends nothing holds a socket and a
	// goroutine forever.
	HandshakeTimeout time.Duration
	// MaxPendingConnectionsPerHost and MaxPendingConnections bound the connections accepted that have not yet sent
	// their partition request, from one peer IP and in total (taskmanager.network.max-pending-connections-per-host,
	// taskmanager.network.max-pending-connections). The excess is refused at once with a retryable "busy" error, so
	// an honest consumer caught in a burst retries with backoff while a flood of idle connections costs the server
	// no goroutine.
	MaxPendingConnectionsPerHost int
	MaxPendingConnections        int
	// TLS secures every connection of the data plane (security.ssl.internal.*); nil is plaintext. The server
	// completes the handshake, within HandshakeTimeout, before it reads anything of the peer's.
	TLS TLS
}

// TLS is the internal TLS of the data plane: *security.TLS.
type TLS interface {
	// ServerConfig is the configuration of the data server's connections (mutual TLS).
	ServerConfig() *tls.Config
	// Dial connects and completes the client handshake.
	Dial(ctx context.Context, network, addr string) (*tls.Conn, error)
}

// DefaultConfig returns Flink's defaults.
func DefaultConfig() Config {
	return Config{
		ListenAddress:             "127.0.0.1:0",
		SegmentSize:               32 << 10,
		BuffersPerChannel:         2,
		FloatingBuffersPerGate:    8,
		MaxBuffersPerSubpartition: 10,
		PartitionRequestTimeout:   30 * time.Second,
		MaxFrameSize:              64 << 20,

		HandshakeTimeout:             10 * time.Second,
		MaxPendingConnectionsPerHost: 128,
		MaxPendingConnections:        1024,
	}
}

func (c Config) validate() error {
	switch {
	case c.SegmentSize < 64:
		return fmt.Errorf("network config: segment size %d < 64", c.SegmentSize)
	case c.BuffersPerChannel < 1:
		return fmt.Errorf("network config: buffers per channel %d < 1", c.BuffersPerChannel)
	case c.FloatingBuffersPerGate < 0:
		return fmt.Errorf("network config: floating buffers per gate %d < 0", c.FloatingBuffersPerGate)
	case c.MaxBuffersPerSubpartition < 1:
		return fmt.Errorf("network config: max buffers per subpartition %d < 1", c.MaxBuffersPerSubpartition)
	case c.PartitionRequestTimeout <= 0:
		return fmt.Errorf("network config: partition request timeout %v <= 0", c.PartitionRequestTimeout)
	case c.MaxFrameSize < c.SegmentSize:
		return fmt.Errorf("network config: max frame size %d < segment size %d", c.MaxFrameSize, c.SegmentSize)
	case c.HandshakeTimeout <= 0:
		return fmt.Errorf("network config: handshake timeout %v <= 0", c.HandshakeTimeout)
	case c.MaxPendingConnectionsPerHost < 1:
		return fmt.Errorf("network config: max pending connections per host %d < 1", c.MaxPendingConnectionsPerHost)
	case c.MaxPendingConnections < 1:
		return fmt.Errorf("network config: max pending connections %d < 1", c.MaxPendingConnections)
	}
	return nil
}

// Manager is one TaskManager's data plane: the data server, its result partitions, the input gates of its tasks
// and their connections.
type Manager struct {
	cfg  Config
	log  *zap.Logger
	ln   net.Listener
	addr string
	tls  *tls.Config // nil: plaintext
	// peerLog logs what peers of the data server do wrong. It is sampled: a flood of bad connections must not
	// become a flood of log lines.
	peerLog *zap.Logger

	mu         sync.Mutex
	closed     bool
	partitions map[PartitionID]*ResultPartition
	conns      map[*serverConn]struct{}
	gates      map[*InputGate]struct{}
	// Connections accepted that have not yet sent their partition request, by peer IP and in total.
	pendingByHost map[string]int
	numPending    int

	wg sync.WaitGroup

	requestMisses atomic.Int64 // requests for a partition not (yet) created: tests and metrics
	refused       atomic.Int64 // connections refused over the pending limits: tests and metrics
}

// Sampling of peerLog: per message, the first peerLogFirst lines of each second, then every peerLogThereafter-th.
const (
	peerLogFirst      = 10
	peerLogThereafter = 100
)

var errManagerClosed = errors.New("network manager closed")

// NewManager validates cfg and starts the data server.
func NewManager(cfg Config, log *zap.Logger) (*Manager, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	ln, err := net.Listen("tcp", cfg.ListenAddress)
	if err != nil {
		return nil, fmt.Errorf("network: listen on %q: %w", cfg.ListenAddress, err)
	}
	m := &Manager{
		cfg: cfg, log: log, ln: ln, addr: ln.Addr().String(),
		peerLog: log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
			return zapcore.NewSamplerWithOptions(c, time.Second, peerLogFirst, peerLogThereafter)
		})),
		partitions:    map[PartitionID]*ResultPartition{},
		conns:         map[*serverConn]struct{}{},
		gates:         map[*InputGate]struct{}{},
		pendingByHost: map[string]int{},
	}
	if cfg.TLS != nil {
		m.tls = cfg.TLS.ServerConfig()
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m, nil
}

// Addr returns the data server's actual host:port.
func (m *Manager) Addr() string { return m.addr }

// Close releases every partition, gate and connection and waits for every goroutine of the Manager.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	parts := make([]*ResultPartition, 0, len(m.partitions))
	for _, p := range m.partitions {
		parts = append(parts, p)
	}
	gates := make([]*InputGate, 0, len(m.gates))
	for g := range m.gates {
		gates = append(gates, g)
	}
	conns := make([]*serverConn, 0, len(m.conns))
	for c := range m.conns {
		conns = append(conns, c)
	}
	m.mu.Unlock()

	err := m.ln.Close()
	for _, p := range parts {
		p.Release(errManagerClosed)
	}
	for _, g := range gates {
		g.Close()
	}
	for _, c := range conns {
		c.conn.Close()
	}
	m.wg.Wait()
	return err
}

// CreatePartition registers a partition with numSubpartitions subpartitions; pending and future requests for it
// are served from now on.
func (m *Manager) CreatePartition(id PartitionID, numSubpartitions int) (*ResultPartition, error) {
	if numSubpartitions < 1 {
		return nil, fmt.Errorf("create partition %s: %d subpartitions", id, numSubpartitions)
	}
	if len(id) == 0 || len(id) > maxPartitionIDLen {
		return nil, fmt.Errorf("create partition %q: id must have 1 to %d bytes", id, maxPartitionIDLen)
	}
	poolSize := max(numSubpartitions*m.cfg.BuffersPerChannel+m.cfg.FloatingBuffersPerGate, numSubpartitions+1)
	p := &ResultPartition{
		id:        id,
		m:         m,
		pool:      newPartitionPool(m.cfg.SegmentSize, poolSize, m.cfg.MaxBuffersPerSubpartition, numSubpartitions),
		maxRecord: m.cfg.MaxFrameSize - binary.MaxVarintLen64,
	}
	p.subs = make([]*subpartition, numSubpartitions)
	for i := range p.subs {
		p.subs[i] = &subpartition{p: p, idx: i}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("create partition %s: %w", id, errManagerClosed)
	}
	if _, dup := m.partitions[id]; dup {
		return nil, fmt.Errorf("create partition %s: already exists", id)
	}
	m.partitions[id] = p
	return p, nil
}

// ReleasePartitions releases every partition whose id starts with prefix (job cancellation and cleanup).
func (m *Manager) ReleasePartitions(prefix string) {
	m.mu.Lock()
	var rel []*ResultPartition
	for id, p := range m.partitions {
		if strings.HasPrefix(string(id), prefix) {
			rel = append(rel, p)
		}
	}
	m.mu.Unlock()
	for _, p := range rel {
		p.Release(fmt.Errorf("released by prefix %q", prefix))
	}
}

func (m *Manager) lookup(id PartitionID) *ResultPartition {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.partitions[id]
}

func (m *Manager) removePartition(p *ResultPartition) {
	m.mu.Lock()
	if m.partitions[p.id] == p {
		delete(m.partitions, p.id)
	}
	m.mu.Unlock()
}

// CreateInputGate returns at once; each channel connects (local) or requests its subpartition (remote) in the
// background, retrying until PartitionRequestTimeout, after which PollNext reports an error naming the partition
// and address.
func (m *Manager) CreateInputGate(channels []ChannelSpec) (*InputGate, error) {
	g, err := m.newInputGate(channels)
	if err != nil {
		return nil, err
	}
	for _, c := range g.channels {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			c.run(g.ctx)
		}()
	}
	return g, nil
}

// newInputGate registers a gate whose channels are not started: CreateInputGate starts them; tests and fuzz targets
// drive a channel themselves.
func (m *Manager) newInputGate(channels []ChannelSpec) (*InputGate, error) {
	for i, s := range channels {
		if s.Partition == "" || len(s.Partition) > maxPartitionIDLen || s.Subpartition < 0 || s.ProducerAddress == "" {
			return nil, fmt.Errorf("create input gate: channel %d: invalid spec %+v", i, s)
		}
	}
	g := &InputGate{
		m:         m,
		specs:     append([]ChannelSpec(nil), channels...),
		channels:  make([]inputChannel, len(channels)),
		floating:  &floatingPool{segSize: m.cfg.SegmentSize, size: m.cfg.FloatingBuffersPerGate},
		avail:     make(chan struct{}, 1),
		queued:    make([]bool, len(channels)),
		finished:  make([]bool, len(channels)),
		blocked:   make([]bool, len(channels)),
		signalled: make([]bool, len(channels)),
	}
	g.ready.buf = make([]int, max(len(channels), 1))
	g.prioReady.buf = make([]int, max(len(channels), 1))
	g.prioQueued = make([]bool, len(channels))
	for i, s := range channels {
		if s.ProducerAddress == m.addr {
			g.channels[i] = &localChannel{g: g, idx: i}
		} else {
			g.channels[i] = newRemoteChannel(g, i)
		}
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		g.cancel()
		return nil, fmt.Errorf("create input gate: %w", errManagerClosed)
	}
	m.gates[g] = struct{}{}
	return g, nil
}

func (m *Manager) removeGate(g *InputGate) {
	m.mu.Lock()
	delete(m.gates, g)
	m.mu.Unlock()
}

func (m *Manager) acceptLoop() {
	defer m.wg.Done()
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			m.mu.Lock()
			closed := m.closed
			m.mu.Unlock()
			if !closed {
				m.log.Error("network: data server stopped accepting", zap.String("addr", m.addr), zap.Error(err))
			}
			return
		}
		peer := conn.RemoteAddr().String()
		host := peerHost(conn.RemoteAddr())
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			conn.Close()
			return
		}
		fromHost := m.pendingByHost[host]
		if fromHost >= m.cfg.MaxPendingConnectionsPerHost || m.numPending >= m.cfg.MaxPendingConnections {
			total := m.numPending
			m.mu.Unlock()
			m.refuse(conn, peer, fromHost, total)
			continue
		}
		m.pendingByHost[host]++
		m.numPending++
		if m.tls != nil {
			conn = tls.Server(conn, m.tls) // no I/O yet: serve handshakes
		}
		sc := &serverConn{m: m, conn: conn, peer: peer, host: host, pending: true, wake: make(chan struct{}, 1)}
		m.conns[sc] = struct{}{}
		m.wg.Add(1)
		m.mu.Unlock()
		go sc.serve()
	}
}

// peerHost is the IP of a peer address: the unit of the per-host pending limit.
func peerHost(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// refuse closes a connection over the pending limits. It runs on the accept loop and starts no goroutine, so a
// flood costs no more than accepting it. The error frame tells an honest consumer to retry; writing it cannot block,
// as the socket is new and its send buffer empty (the deadline is a safeguard).
func (m *Manager) refuse(conn net.Conn, peer string, fromHost, total int) {
	m.refused.Add(1)
	limit := fmt.Sprintf("taskmanager.network.max-pending-connections-per-host (%d)", m.cfg.MaxPendingConnectionsPerHost)
	if fromHost < m.cfg.MaxPendingConnectionsPerHost {
		limit = fmt.Sprintf("taskmanager.network.max-pending-connections (%d)", m.cfg.MaxPendingConnections)
	}
	m.peerLog.Warn("network: refusing connection: too many connections without a partition request",
		zap.String("peer", peer), zap.Int("pending_from_host", fromHost), zap.Int("pending_total", total),
		zap.String("limit", limit))
	if m.tls != nil {
		// A frame before the handshake would be noise to a TLS peer: it retries on the broken connection.
		conn.Close()
		return
	}
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = conn.Write(encodeError(errCodeBusy, fmt.Sprintf("data server %s is busy: %s reached", m.addr, limit)))
	conn.Close()
}

// requested takes sc out of the pending connections, once.
func (m *Manager) requested(sc *serverConn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !sc.pending {
		return
	}
	sc.pending = false
	m.numPending--
	if m.pendingByHost[sc.host]--; m.pendingByHost[sc.host] <= 0 {
		delete(m.pendingByHost, sc.host)
	}
}

// pendingConnections returns the connections that have not sent their partition request yet (tests).
func (m *Manager) pendingConnections() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.numPending
}

// serverConn is the producer end of one connection: it serves one subpartition to one remote input channel,
// sending an element only against credit (events included), so the consumer always has a buffer to read it into.
type serverConn struct {
	m      *Manager
	conn   net.Conn
	peer   string
	host   string
	credit atomic.Int64
	wake   chan struct{}

	pending bool // no partition request yet; guarded by m.mu
}

func (sc *serverConn) notifyDataAvailable() {
	select {
	case sc.wake <- struct{}{}:
	default:
	}
}

// hasCredit reports whether the writer may send one more element now (ResultPartition.Drained).
func (sc *serverConn) hasCredit() bool { return sc.credit.Load() > 0 }

// notifyPriority wakes the writer, which sends a priority event whatever its credit.
func (sc *serverConn) notifyPriority() { sc.notifyDataAvailable() }

func (sc *serverConn) protocolError(err error) {
	sc.m.peerLog.Error("network: closing connection after protocol error", zap.String("peer", sc.peer), zap.Error(err))
}

func (sc *serverConn) serve() {
	defer func() {
		sc.conn.Close()
		sc.m.requested(sc)
		sc.m.mu.Lock()
		delete(sc.m.conns, sc)
		sc.m.mu.Unlock()
		sc.m.wg.Done()
	}()
	r := bufio.NewReaderSize(sc.conn, 4<<10)
	var hdr [frameHeaderLen + 4]byte
	// An absolute deadline: a peer that connects and sends nothing, or trickles its request byte by byte, is
	// dropped all the same.
	deadline := time.Now().Add(sc.m.cfg.HandshakeTimeout)
	_ = sc.conn.SetReadDeadline(deadline)
	if tc, ok := sc.conn.(*tls.Conn); ok {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			sc.m.peerLog.Warn("network: TLS handshake refused", zap.String("peer", sc.peer), zap.Error(err))
			return
		}
	}
	id, sub, credit, err := readPartitionRequest(r, hdr[:])
	sc.m.requested(sc)
	if err != nil {
		var ne net.Error
		switch {
		case errors.Is(err, errProtocol):
			sc.protocolError(err)
		case errors.As(err, &ne) && ne.Timeout():
			sc.m.peerLog.Warn("network: closing connection that sent no partition request within taskmanager.network.handshake-timeout",
				zap.String("peer", sc.peer), zap.Duration("timeout", sc.m.cfg.HandshakeTimeout))
		}
		return
	}
	_ = sc.conn.SetReadDeadline(time.Time{})

	p := sc.m.lookup(id)
	if p == nil {
		sc.m.requestMisses.Add(1)
		sc.writeError(errCodePartitionNotFound, fmt.Sprintf("partition %s not found at %s", id, sc.m.addr))
		return
	}
	if sub >= len(p.subs) {
		sc.writeError(errCodeProtocol, fmt.Sprintf("partition %s has %d subpartitions, requested %d", id, len(p.subs), sub))
		return
	}
	s := p.subs[sub]
	sc.credit.Store(int64(credit))
	if err := s.attach(sc); err != nil {
		sc.writeError(errCodeReleased, err.Error())
		return
	}
	defer s.detach(sc)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc.writeLoop(s, stop)
	}()
	defer func() {
		close(stop)
		sc.conn.Close()
		wg.Wait()
	}()
	for {
		n, err := readCredit(r, hdr[:])
		if err == nil {
			if c := sc.credit.Add(int64(n)); c > maxCredit {
				err = fmt.Errorf("%w: credit %d exceeds %d", errProtocol, c, maxCredit)
			}
		}
		if err != nil {
			if errors.Is(err, errProtocol) {
				sc.protocolError(err)
			}
			return // EOF: the consumer is done (or gone)
		}
		sc.notifyDataAvailable()
	}
}

func (sc *serverConn) writeError(code byte, msg string) {
	_ = sc.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = sc.conn.Write(encodeError(code, msg))
}

// writeLoop sends elements of s while there is credit, and priority events at once, credit or not (the consumer
// reads them into no buffer). With data queued but no credit it announces the backlog, so the consumer can lend the
// channel floating buffers.
func (sc *serverConn) writeLoop(s *subpartition, stop <-chan struct{}) {
	w := bufio.NewWriterSize(sc.conn, 64<<10)
	var hdr [frameHeaderLen + 4 + eventSize]byte
	lastBacklog := -1
	for {
		select {
		case <-stop:
			return
		case <-sc.wake:
		}
		for {
			// Only this goroutine takes credit, so credit seen here is still there when the element is sent.
			hasCredit := sc.credit.Load() > 0
			it, _, backlog, ok, err := s.poll(hasCredit)
			if err != nil {
				_ = w.Flush()
				sc.writeError(errCodeReleased, err.Error())
				sc.conn.Close()
				return
			}
			if !ok {
				if !hasCredit {
					if b := s.queued(); b > 0 && b != lastBacklog {
						lastBacklog = b
						if _, err := w.Write(putUint32Frame(hdr[:], frameBacklog, b)); err != nil {
							sc.conn.Close()
							return
						}
					}
				}
				break
			}
			if !it.priority {
				sc.credit.Add(-1)
			}
			lastBacklog = -1
			if err := writeElement(w, hdr[:], it, backlog); err != nil {
				sc.conn.Close()
				return
			}
			if it.isEvent && it.ev.Type == EndOfPartition {
				_ = w.Flush()
				return // the consumer closes the connection after EndOfPartition
			}
		}
		if err := w.Flush(); err != nil {
			sc.conn.Close()
			return
		}
	}
}

func writeElement(w *bufio.Writer, hdr []byte, it queueItem, backlog int) error {
	if it.isEvent {
		typ := frameEvent
		if it.priority {
			typ = framePriorityEvent
		}
		putHeader(hdr, typ, 4+eventSize)
		binary.BigEndian.PutUint32(hdr[5:9], uint32(backlog))
		it.ev.encode(hdr[9 : 9+eventSize])
		_, err := w.Write(hdr[:9+eventSize])
		return err
	}
	defer it.buf.Recycle() // the data is in the socket or the bufio buffer
	putHeader(hdr, frameBuffer, 4+it.buf.n)
	binary.BigEndian.PutUint32(hdr[5:9], uint32(backlog))
	if _, err := w.Write(hdr[:9]); err != nil {
		return err
	}
	_, err := w.Write(it.buf.Data())
	return err
}
