package network

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
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
	// AdvertisedHost is the host the other TaskManagers are told to reach the data server at (taskmanager.host),
	// when it listens on another (taskmanager.bind-host, e.g. 0.0.0.0). Addr is this host and the listener's port, so
	// that a channel whose ProducerAddress is that address is local. "": Addr is the listener's address.
	AdvertisedHost string
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
	// goroutine forever. A connection with no open channel (its requests failed, or its channels ended) must send
	// a frame within it too.
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

	// ctx ends with the Manager: it bounds the dials of client connections, which no single channel owns.
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	closed     bool
	partitions map[PartitionID]*ResultPartition
	conns      map[*serverConn]struct{}
	gates      map[*InputGate]struct{}
	// Connections accepted that have not yet sent their partition request, by peer IP and in total.
	pendingByHost map[string]int
	numPending    int

	// clients are the connections to producers' data servers, one per address, shared by every remote channel
	// reading from that producer.
	clientsMu     sync.Mutex
	clients       map[string]*clientConn
	clientsClosed bool
	outgoing      atomic.Int64 // client connections established and open

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

// advertisedAddr is host with the port of the listener's address a, or a itself without host.
func advertisedAddr(a net.Addr, host string) string {
	if t, ok := a.(*net.TCPAddr); ok && host != "" {
		return net.JoinHostPort(host, strconv.Itoa(t.Port))
	}
	return a.String()
}

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
		cfg: cfg, log: log, ln: ln, addr: advertisedAddr(ln.Addr(), cfg.AdvertisedHost),
		peerLog: log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
			return zapcore.NewSamplerWithOptions(c, time.Second, peerLogFirst, peerLogThereafter)
		})),
		partitions:    map[PartitionID]*ResultPartition{},
		conns:         map[*serverConn]struct{}{},
		gates:         map[*InputGate]struct{}{},
		pendingByHost: map[string]int{},
		clients:       map[string]*clientConn{},
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
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
	parts, gates := m.liveLocked()
	conns := slices.Collect(maps.Keys(m.conns))
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
	// The gates are closed, so their channels have released their connections; a dial still under way ends here.
	m.cancel()
	m.clientsMu.Lock()
	m.clientsClosed = true
	clients := make([]*clientConn, 0, len(m.clients))
	for _, cc := range m.clients {
		clients = append(clients, cc)
	}
	m.clientsMu.Unlock()
	for _, cc := range clients {
		cc.shutdown()
	}
	m.wg.Wait()
	return err
}

// Connections returns the data connections open now: outgoing ones (this Manager's channels reading from a
// producer elsewhere, one per producer Manager) and incoming ones (accepted by the data server, one per consumer
// Manager, plus connections that have not sent their first request yet).
func (m *Manager) Connections() (outgoing, incoming int) {
	m.mu.Lock()
	incoming = len(m.conns)
	m.mu.Unlock()
	return int(m.outgoing.Load()), incoming
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
		sc := &serverConn{m: m, conn: conn, peer: peer, host: host, pending: true, wake: make(chan struct{}, 1),
			channels: map[uint32]*serverChannel{}, idle: true}
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
	_, _ = conn.Write(encodeError(0, errCodeBusy, fmt.Sprintf("data server %s is busy: %s reached", m.addr, limit)))
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

// serverConn is the producer end of one connection: it serves the subpartitions that one consumer Manager's remote
// channels request on it. Its reader (serve) opens channels, adds credit and cancels them; its one writer sends
// each channel's elements only against that channel's credit (events included), so the consumer always has a buffer
// to read them into, and a channel without credit waits without holding up the others.
type serverConn struct {
	m    *Manager
	conn net.Conn
	peer string
	host string
	wake chan struct{}

	pending bool // no partition request yet; guarded by m.mu

	mu       sync.Mutex
	channels map[uint32]*serverChannel
	idle     bool                 // no open channel: the read deadline is armed (armIdle)
	lastID   uint32               // highest channel id requested: ids at or below it and not in channels have ended
	ready    ring[*serverChannel] // channels the writer should look at, each at most once
	errs     ring[[]byte]         // error frames answering failed requests, sent before any channel's data
}

// serverChannel is one subpartition served on a serverConn. Only the writer polls its subpartition, so that the
// writer alone decides (and announces) what a channel's credit is spent on.
type serverChannel struct {
	sc     *serverConn
	id     uint32
	sub    *subpartition
	credit atomic.Int64

	queued   bool // in sc.ready; guarded by sc.mu
	canceled bool // the consumer released it: the writer detaches it; guarded by sc.mu
	removed  bool // guarded by sc.mu

	lastBacklog int // writer only
}

func (ch *serverChannel) notifyDataAvailable() { ch.sc.enqueue(ch) }

// notifyPriority wakes the writer, which sends a priority event whatever the channel's credit.
func (ch *serverChannel) notifyPriority() { ch.sc.enqueue(ch) }

// hasCredit reports whether the writer may send one more element of this channel now (ResultPartition.Drained).
func (ch *serverChannel) hasCredit() bool { return ch.credit.Load() > 0 }

func (sc *serverConn) enqueue(ch *serverChannel) {
	sc.mu.Lock()
	if !ch.queued && !ch.removed {
		ch.queued = true
		sc.ready.push(ch)
	}
	sc.mu.Unlock()
	sc.signal()
}

func (sc *serverConn) signal() {
	select {
	case sc.wake <- struct{}{}:
	default:
	}
}

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
	f, err := readPartitionRequest(r, hdr[:])
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

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc.writeLoop(stop)
	}()
	defer func() {
		close(stop)
		sc.conn.Close()
		wg.Wait()
		sc.detachAll() // the writer has stopped: nothing polls the subpartitions any more
	}()
	for {
		if err == nil {
			err = sc.handle(f)
		}
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, errProtocol):
				sc.protocolError(err)
			case errors.As(err, &ne) && ne.Timeout():
				sc.m.peerLog.Warn("network: closing connection that has no open channel and sent nothing within taskmanager.network.handshake-timeout",
					zap.String("peer", sc.peer), zap.Duration("timeout", sc.m.cfg.HandshakeTimeout))
			}
			return // EOF: the consumer is done (or gone)
		}
		sc.mu.Lock()
		sc.armIdle(true)
		sc.mu.Unlock()
		f, err = readConsumerFrame(r, hdr[:])
	}
}

// armIdle keeps the pending-connection bound from being sidestepped: a connection with no open channel (its
// requests all failed, or its channels ended) must send a frame within HandshakeTimeout, as a new one must send its
// first request, or it is closed. An honest consumer either has a channel open, or retries a request within the
// retry backoff (at most 500 ms), or closes the connection itself. rearm restarts the clock (a frame was read).
// sc.mu is held.
func (sc *serverConn) armIdle(rearm bool) {
	idle := len(sc.channels) == 0
	switch {
	case idle && (rearm || !sc.idle):
		_ = sc.conn.SetReadDeadline(time.Now().Add(sc.m.cfg.HandshakeTimeout))
	case !idle && sc.idle:
		_ = sc.conn.SetReadDeadline(time.Time{})
	}
	sc.idle = idle
}

// handle applies one frame of the consumer. A credit or cancel for a channel that has ended is dropped: it crossed
// the channel's EndOfPartition (or error) on the wire.
func (sc *serverConn) handle(f consumerFrame) error {
	if f.typ == framePartitionRequest {
		return sc.open(f)
	}
	sc.mu.Lock()
	ch := sc.channels[f.ch]
	known := f.ch <= sc.lastID
	if ch != nil && f.typ == frameCancel {
		ch.canceled = true
		if !ch.queued {
			ch.queued = true
			sc.ready.push(ch)
		}
	}
	sc.mu.Unlock()
	switch {
	case ch == nil && !known:
		return fmt.Errorf("%w: frame type %d for channel %d, which was never requested (last %d)", errProtocol, f.typ, f.ch, sc.lastID)
	case ch == nil:
		return nil
	case f.typ == frameAddCredit:
		if c := ch.credit.Add(int64(f.credit)); c > maxCredit {
			return fmt.Errorf("%w: channel %d credit %d exceeds %d", errProtocol, f.ch, c, maxCredit)
		}
		sc.enqueue(ch)
	default:
		sc.signal()
	}
	return nil
}

// open serves a partition request. A request that cannot be served is answered with an error frame for its channel;
// the connection and its other channels go on.
func (sc *serverConn) open(f consumerFrame) error {
	sc.mu.Lock()
	if f.ch <= sc.lastID {
		last := sc.lastID
		sc.mu.Unlock()
		return fmt.Errorf("%w: partition request for channel %d, which is not above the last requested %d (duplicate id)",
			errProtocol, f.ch, last)
	}
	sc.lastID = f.ch
	sc.mu.Unlock()

	p := sc.m.lookup(f.partition)
	if p == nil {
		sc.m.requestMisses.Add(1)
		return sc.answerError(f.ch, errCodePartitionNotFound, fmt.Sprintf("partition %s not found at %s", f.partition, sc.m.addr))
	}
	if f.sub >= len(p.subs) {
		return sc.answerError(f.ch, errCodeProtocol, fmt.Sprintf("partition %s has %d subpartitions, requested %d", f.partition, len(p.subs), f.sub))
	}
	ch := &serverChannel{sc: sc, id: f.ch, sub: p.subs[f.sub], lastBacklog: -1}
	ch.credit.Store(int64(f.credit))
	sc.mu.Lock()
	sc.channels[f.ch] = ch
	sc.mu.Unlock()
	if err := ch.sub.attach(ch); err != nil {
		sc.mu.Lock()
		ch.removed = true
		delete(sc.channels, f.ch)
		sc.mu.Unlock()
		return sc.answerError(f.ch, errCodeReleased, err.Error())
	}
	return nil
}

// answerError queues an error frame for the writer. A consumer that keeps requesting without reading the answers is
// cut off rather than buffered for.
func (sc *serverConn) answerError(ch uint32, code byte, msg string) error {
	sc.mu.Lock()
	if sc.errs.len() >= maxPendingErrors {
		sc.mu.Unlock()
		return fmt.Errorf("%w: more than %d failed partition requests unanswered: the consumer does not read", errProtocol, maxPendingErrors)
	}
	sc.errs.push(encodeError(ch, code, msg))
	sc.mu.Unlock()
	sc.signal()
	return nil
}

// remove ends a channel on the producer side. Writer only (or after the writer stopped): the subpartition is
// detached only when nothing polls it.
func (sc *serverConn) remove(ch *serverChannel) {
	sc.mu.Lock()
	ch.removed = true
	if sc.channels[ch.id] == ch {
		delete(sc.channels, ch.id)
	}
	sc.armIdle(false)
	sc.mu.Unlock()
	ch.sub.detach(ch)
}

func (sc *serverConn) detachAll() {
	sc.mu.Lock()
	chs := make([]*serverChannel, 0, len(sc.channels))
	for _, ch := range sc.channels {
		chs = append(chs, ch)
	}
	sc.mu.Unlock()
	for _, ch := range chs {
		sc.remove(ch)
	}
}

// writeBudget is the elements the writer sends of one channel before it looks at the next one in line, so that a
// channel with much credit and data does not hold the connection.
const writeBudget = 16

// writeLoop serves the channels in line, round robin: a channel's elements while it has credit, and its priority
// events at once, credit or not (the consumer reads them into no buffer). A channel with data queued but no credit
// gets its backlog announced, so the consumer can lend it floating buffers, and leaves the line until credit comes.
func (sc *serverConn) writeLoop(stop <-chan struct{}) {
	w := bufio.NewWriterSize(sc.conn, 64<<10)
	var hdr [frameHeaderLen + 4 + eventSize]byte
	for {
		select {
		case <-stop:
			return
		case <-sc.wake:
		}
		for {
			sc.mu.Lock()
			errFrame, isErr := sc.errs.pop()
			var ch *serverChannel
			ok := false
			if !isErr {
				if ch, ok = sc.ready.pop(); ok {
					ch.queued = false
				}
			}
			canceled := ok && ch.canceled
			removed := ok && ch.removed // queued again while the writer was ending it
			sc.mu.Unlock()
			if isErr {
				if _, err := w.Write(errFrame); err != nil {
					sc.conn.Close()
					return
				}
				continue
			}
			if !ok {
				break
			}
			if removed {
				continue
			}
			if canceled {
				sc.remove(ch)
				continue
			}
			if err := sc.writeChannel(w, hdr[:], ch); err != nil {
				sc.conn.Close()
				return
			}
		}
		if err := w.Flush(); err != nil {
			sc.conn.Close()
			return
		}
	}
}

// writeChannel sends up to writeBudget elements of ch; only a write error is returned.
func (sc *serverConn) writeChannel(w *bufio.Writer, hdr []byte, ch *serverChannel) error {
	for range writeBudget {
		// Only the writer takes credit, so credit seen here is still there when the element is sent.
		hasCredit := ch.credit.Load() > 0
		it, _, backlog, ok, err := ch.sub.poll(hasCredit)
		if err != nil {
			sc.remove(ch)
			_, werr := w.Write(encodeError(ch.id, errCodeReleased, err.Error()))
			return werr
		}
		if !ok {
			if !hasCredit {
				if b := ch.sub.queued(); b > 0 && b != ch.lastBacklog {
					ch.lastBacklog = b
					_, err := w.Write(putUint32Frame(hdr, frameBacklog, ch.id, b))
					return err
				}
			}
			return nil
		}
		if !it.priority {
			ch.credit.Add(-1)
		}
		ch.lastBacklog = -1
		if err := writeElement(w, hdr, ch.id, it, backlog); err != nil {
			return err
		}
		if it.isEvent && it.ev.Type == EndOfPartition {
			sc.remove(ch) // the consumer ends the channel on its side when it reads EndOfPartition
			return nil
		}
	}
	sc.enqueue(ch) // budget spent: behind the others
	return nil
}

func writeElement(w *bufio.Writer, hdr []byte, ch uint32, it queueItem, backlog int) error {
	const h = frameHeaderLen
	if it.isEvent {
		typ := frameEvent
		if it.priority {
			typ = framePriorityEvent
		}
		putHeader(hdr, typ, ch, 4+eventSize)
		binary.BigEndian.PutUint32(hdr[h:h+4], uint32(backlog))
		it.ev.encode(hdr[h+4 : h+4+eventSize])
		_, err := w.Write(hdr[:h+4+eventSize])
		return err
	}
	defer it.buf.Recycle() // the data is in the socket or the bufio buffer
	putHeader(hdr, frameBuffer, ch, 4+it.buf.n)
	binary.BigEndian.PutUint32(hdr[h:h+4], uint32(backlog))
	if _, err := w.Write(hdr[:h+4]); err != nil {
		return err
	}
	_, err := w.Write(it.buf.Data())
	return err
}
