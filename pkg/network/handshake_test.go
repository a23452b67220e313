package network

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// dialFrom connects to addr from the local IP ip (any address of 127.0.0.0/8 is loopback on Linux), so that a test
// can play several hosts.
func dialFrom(t *testing.T, ip, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot connect from %s: %v", ip, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// awaitServerClose reads conn until the server closes it and returns what it sent. The read deadline is only a
// guard against a hang: reaching it means the server did not close.
func awaitServerClose(t *testing.T, conn net.Conn) []byte {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got bytes.Buffer
	// A close with unread input arrives as a reset rather than a FIN: both mean the server closed.
	if _, err := io.Copy(&got, conn); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("server did not close the connection: %v", err)
	}
	return got.Bytes()
}

// logNaming waits for a log entry with message msg and returns it, failing unless it names peer.
func logNaming(t *testing.T, logs *observer.ObservedLogs, msg, peer string) observer.LoggedEntry {
	t.Helper()
	var found []observer.LoggedEntry
	waitFor(t, "log "+msg, func() bool { found = logs.FilterMessage(msg).All(); return len(found) > 0 })
	e := found[0]
	if got := e.ContextMap()["peer"]; got != peer {
		t.Fatalf("log %q names peer %v, want %s", msg, got, peer)
	}
	return e
}

const (
	msgHandshakeTimeout = "network: closing connection that sent no partition request within taskmanager.network.handshake-timeout"
	msgRefused          = "network: refusing connection: too many connections without a partition request"
)

func TestHandshakeTimeoutClosesSilentConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"sends nothing", nil},
		{"stops inside the header", []byte{0, 0}},
		{"stops inside the request", encodePartitionRequest(1, "job/src/0/0/0", 0, 1)[:frameHeaderLen+3]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			cfg := testConfig()
			cfg.HandshakeTimeout = 50 * time.Millisecond
			// Only the handshake timeout may close the connection before awaitServerClose gives up.
			cfg.PartitionRequestTimeout = time.Hour
			m, err := NewManager(cfg, zap.New(core))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			conn, err := net.Dial("tcp", m.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if got := awaitServerClose(t, conn); len(got) != 0 {
				t.Fatalf("server sent %x before closing, want nothing", got)
			}
			logNaming(t, logs, msgHandshakeTimeout, conn.LocalAddr().String())
			waitFor(t, "no pending connection", func() bool { return m.pendingConnections() == 0 })
		})
	}
}

// fillPending opens n connections from ip that send nothing and waits until the server counts them all as pending.
func fillPending(t *testing.T, m *Manager, ip string, n int) []net.Conn {
	t.Helper()
	before := m.pendingConnections()
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = dialFrom(t, ip, m.Addr())
	}
	waitFor(t, "pending connections", func() bool { return m.pendingConnections() == before+n })
	return conns
}

// expectBusy reads the refusal of conn: a busy error frame naming limit, then the close.
func expectBusy(t *testing.T, conn net.Conn, limit string) {
	t.Helper()
	got := awaitServerClose(t, conn)
	typ, ch, n, err := readHeader(bytes.NewReader(got), make([]byte, frameHeaderLen), maxErrorLen)
	if err != nil || typ != frameError || ch != 0 || n != len(got)-frameHeaderLen {
		t.Fatalf("refusal = %x (type %d, channel %d, length %d, %v), want one connection error frame", got, typ, ch, n, err)
	}
	code, msg, err := decodeError(got[frameHeaderLen:])
	if err != nil || code != errCodeBusy || !strings.Contains(msg, limit) {
		t.Fatalf("refusal = code %d %q %v, want busy naming %s", code, msg, err, limit)
	}
}

func TestPendingConnectionsPerHostAreBounded(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	cfg := testConfig()
	cfg.HandshakeTimeout = time.Hour // the idle connections stay pending for the whole test
	cfg.MaxPendingConnectionsPerHost = 3
	m, err := NewManager(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p, err := m.CreatePartition("job/src/0/0/0", 1)
	if err != nil {
		t.Fatal(err)
	}

	idle := fillPending(t, m, "127.0.0.2", 3)
	extra := dialFrom(t, "127.0.0.2", m.Addr())
	expectBusy(t, extra, "taskmanager.network.max-pending-connections-per-host (3)")
	e := logNaming(t, logs, msgRefused, extra.LocalAddr().String())
	if got := e.ContextMap()["pending_from_host"]; got != int64(3) {
		t.Fatalf("log says %v pending from the host, want 3", got)
	}
	if n := m.refused.Load(); n != 1 {
		t.Fatalf("refused %d connections, want 1", n)
	}
	if n := m.pendingConnections(); n != 3 {
		t.Fatalf("%d pending connections after the refusal, want the 3 idle ones", n)
	}

	// Another host is served at once while 127.0.0.2 is at its limit.
	cm := newManager(t, testConfig())
	g, err := cm.CreateInputGate([]ChannelSpec{{Partition: p.ID(), ProducerAddress: m.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	sendOneRecord(t, p, g)
	if n := m.refused.Load(); n != 1 {
		t.Fatalf("refused %d connections, want still 1", n)
	}
	for _, c := range idle {
		c.Close()
	}
	waitFor(t, "idle connections gone", func() bool { return m.pendingConnections() == 0 })
}

func TestPendingConnectionsInTotalAreBounded(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	cfg := testConfig()
	cfg.HandshakeTimeout = time.Hour
	cfg.MaxPendingConnections = 2
	m, err := NewManager(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fillPending(t, m, "127.0.0.2", 1)
	fillPending(t, m, "127.0.0.3", 1)
	extra := dialFrom(t, "127.0.0.4", m.Addr())
	expectBusy(t, extra, "taskmanager.network.max-pending-connections (2)")
	logNaming(t, logs, msgRefused, extra.LocalAddr().String())
}

// TestRefusedConsumerRetries: an honest consumer refused because its host is at the limit retries with backoff and
// is served once the limit frees up.
func TestRefusedConsumerRetries(t *testing.T) {
	cfg := testConfig()
	cfg.HandshakeTimeout = time.Hour
	cfg.MaxPendingConnectionsPerHost = 2
	pm := newManager(t, cfg)
	p, err := pm.CreatePartition("job/src/0/0/0", 1)
	if err != nil {
		t.Fatal(err)
	}
	idle := fillPending(t, pm, "127.0.0.1", 2)

	cm := newManager(t, testConfig())
	g, err := cm.CreateInputGate([]ChannelSpec{{Partition: p.ID(), ProducerAddress: pm.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	waitFor(t, "the consumer's connection refused", func() bool { return pm.refused.Load() > 0 })
	if _, ok, err := g.PollNext(); ok || err != nil {
		t.Fatalf("PollNext = %v, %v while refused, want nothing yet", ok, err)
	}
	for _, c := range idle {
		c.Close()
	}
	sendOneRecord(t, p, g)
}

// sendOneRecord sends one record and the end of the partition from p, and checks that g's consumer got exactly that.
func sendOneRecord(t *testing.T, p *ResultPartition, g *InputGate) {
	t.Helper()
	if err := p.EmitRecord(0, []byte("r1")); err != nil {
		t.Fatal(err)
	}
	if err := p.Finish(); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, g)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"r1", "EndOfPartition:0"}; strings.Join(got[0], " ") != strings.Join(want, " ") {
		t.Fatalf("consumer got %q, want %q", got[0], want)
	}
}

// TestConnectionWithoutChannelsIsClosed: a peer whose request failed (partition not found) and which then stays
// silent is closed after the handshake timeout, as a connection that never sent a request is; a connection with an
// open channel is not, however long its channel is quiet.
func TestConnectionWithoutChannelsIsClosed(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	cfg := testConfig()
	cfg.HandshakeTimeout = 100 * time.Millisecond
	m, err := NewManager(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	conn, err := net.Dial("tcp", m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(encodePartitionRequest(1, "job/none/0/0/0", 0, 1)); err != nil {
		t.Fatal(err)
	}
	got := awaitServerClose(t, conn)
	typ, ch, n, err := readHeader(bytes.NewReader(got), make([]byte, frameHeaderLen), maxErrorLen)
	if err != nil || typ != frameError || ch != 1 || n != len(got)-frameHeaderLen {
		t.Fatalf("server sent %x (type %d, channel %d, %v), want one error frame for channel 1", got, typ, ch, err)
	}
	if code, msg, _ := decodeError(got[frameHeaderLen:]); code != errCodePartitionNotFound || !strings.Contains(msg, "job/none/0/0/0") {
		t.Fatalf("error frame = code %d %q, want partition not found naming it", code, msg)
	}
	logNaming(t, logs, "network: closing connection that has no open channel and sent nothing within taskmanager.network.handshake-timeout",
		conn.LocalAddr().String())

	// A channel quiet for many handshake timeouts keeps its connection.
	cm := newManager(t, cfg)
	p, g := oneChannel(t, m, cm)
	if err := p.EmitRecord(0, []byte("r0")); err != nil {
		t.Fatal(err)
	}
	p.Flush()
	if boe, err := next(t, g); err != nil {
		t.Fatal(err)
	} else {
		boe.Buffer.Recycle()
	}
	before := len(logs.All())
	time.Sleep(5 * cfg.HandshakeTimeout) // not a guess at a duration: the quiet period under test
	if o, _ := cm.Connections(); o != 1 || len(logs.All()) != before {
		t.Fatalf("quiet channel: %d outgoing connections, logs %v", o, logs.All()[before:])
	}
	sendOneRecord(t, p, g)
}
