package network

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.SegmentSize = 256
	cfg.MaxFrameSize = 1 << 20
	cfg.PartitionRequestTimeout = 5 * time.Second
	return cfg
}

func newManager(t testing.TB, cfg Config) *Manager {
	t.Helper()
	m, err := NewManager(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// next waits for the gate's next element (or error).
func next(t testing.TB, g *InputGate) (BufferOrEvent, error) {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		boe, ok, err := g.PollNext()
		if err != nil || ok {
			return boe, err
		}
		select {
		case <-g.Available():
		case <-timer.C:
			t.Fatal("timed out waiting for the input gate")
		}
	}
}

// readAll consumes g until io.EOF or an error, describing each channel's elements as strings.
func readAll(t testing.TB, g *InputGate) (map[int][]string, error) {
	t.Helper()
	got := map[int][]string{}
	for {
		boe, err := next(t, g)
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got[boe.Channel] = append(got[boe.Channel], describe(t, boe)...)
	}
}

func describe(t testing.TB, boe BufferOrEvent) []string {
	if boe.IsEvent {
		return []string{fmt.Sprintf("%s:%d", boe.Event.Type, boe.Event.CheckpointID)}
	}
	var out []string
	data := boe.Buffer.Data()
	for len(data) > 0 {
		rec, rest, err := NextRecord(data)
		if err != nil {
			t.Fatalf("NextRecord: %v", err)
		}
		if len(rec) > 50 {
			out = append(out, fmt.Sprintf("big:%d", len(rec)))
		} else {
			out = append(out, string(rec))
		}
		data = rest
	}
	boe.Buffer.Recycle()
	return out
}

// pair returns the producer and consumer Managers: the same one for local channels.
func pair(t *testing.T, remote bool, cfg Config) (prod, cons *Manager) {
	prod = newManager(t, cfg)
	if !remote {
		return prod, prod
	}
	return prod, newManager(t, cfg)
}

func forBoth(t *testing.T, f func(t *testing.T, remote bool)) {
	t.Run("local", func(t *testing.T) { f(t, false) })
	t.Run("remote", func(t *testing.T) { f(t, true) })
}

func TestOrderEventsAndEndOfPartition(t *testing.T) {
	forBoth(t, func(t *testing.T, remote bool) {
		pm, cm := pair(t, remote, testConfig())
		p, err := pm.CreatePartition("job/src/0/0/0", 2)
		if err != nil {
			t.Fatal(err)
		}
		g, err := cm.CreateInputGate([]ChannelSpec{
			{Partition: p.ID(), Subpartition: 1, ProducerAddress: pm.Addr()},
			{Partition: p.ID(), Subpartition: 0, ProducerAddress: pm.Addr()},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()

		want := map[int][]string{}
		errc := make(chan error, 1)
		go func() {
			errc <- func() error {
				for i := 0; i < 300; i++ {
					for sub := 0; sub < 2; sub++ {
						rec := fmt.Sprintf("s%d-r%d", sub, i)
						if err := p.EmitRecord(sub, []byte(rec)); err != nil {
							return err
						}
					}
					if i%100 == 50 {
						if err := p.BroadcastEvent(Event{Type: CheckpointBarrier, CheckpointID: int64(i)}); err != nil {
							return err
						}
					}
					if i == 120 {
						if err := p.EmitRecord(1, make([]byte, 1000)); err != nil { // larger than a segment
							return err
						}
					}
				}
				if err := p.BroadcastRecord([]byte("last")); err != nil {
					return err
				}
				return p.Finish()
			}()
		}()
		for i := 0; i < 300; i++ {
			for sub := 0; sub < 2; sub++ {
				ch := 1 - sub
				want[ch] = append(want[ch], fmt.Sprintf("s%d-r%d", sub, i))
			}
			if i%100 == 50 {
				want[0] = append(want[0], fmt.Sprintf("CheckpointBarrier:%d", i))
				want[1] = append(want[1], fmt.Sprintf("CheckpointBarrier:%d", i))
			}
			if i == 120 {
				want[0] = append(want[0], "big:1000")
			}
		}
		for ch := 0; ch < 2; ch++ {
			want[ch] = append(want[ch], "last", "EndOfPartition:0")
		}

		got, err := readAll(t, g)
		if err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		for ch := 0; ch < 2; ch++ {
			if strings.Join(got[ch], ",") != strings.Join(want[ch], ",") {
				t.Fatalf("channel %d:\n got %v\nwant %v", ch, got[ch], want[ch])
			}
		}
		if _, _, err := g.PollNext(); err != io.EOF {
			t.Fatalf("after EOF: %v", err)
		}
		waitFor(t, "partition to release itself once consumed", func() bool { return pm.lookup(p.ID()) == nil })
	})
}

func TestFlushSendsPartialBuffer(t *testing.T) {
	forBoth(t, func(t *testing.T, remote bool) {
		pm, cm := pair(t, remote, testConfig())
		ps, g := producersAndGate(t, pm, cm, "job/src/0/0/0")
		p := ps[0]
		for _, r := range []string{"a", "bb"} {
			if err := p.EmitRecord(0, []byte(r)); err != nil {
				t.Fatal(err)
			}
		}
		p.Flush()
		boe, err := next(t, g)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(describe(t, boe), ","); got != "a,bb" {
			t.Fatalf("flushed buffer = %q", got)
		}
		p.Flush() // nothing pending: no empty buffer
		if err := p.EmitRecord(0, []byte("c")); err != nil {
			t.Fatal(err)
		}
		p.Flush()
		boe, err = next(t, g)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(describe(t, boe), ","); got != "c" {
			t.Fatalf("second flushed buffer = %q", got)
		}
		p.Release(nil)
	})
}

// fullRecord fills exactly one buffer of cfg's segment size.
func fullRecord(cfg Config) []byte {
	n := cfg.SegmentSize - 2 // the uvarint of a length in [128, 16383] takes 2 bytes
	return make([]byte, n)
}

func TestCreditBoundsInFlightBuffers(t *testing.T) {
	forBoth(t, func(t *testing.T, remote bool) {
		cfg := testConfig()
		cfg.BuffersPerChannel = 2
		cfg.FloatingBuffersPerGate = 2
		cfg.MaxBuffersPerSubpartition = 3
		pm, cm := pair(t, remote, cfg)
		ps, g := producersAndGate(t, pm, cm, "job/src/0/0/0")
		p := ps[0]

		var emitted atomic.Int64
		done := make(chan error, 1)
		go func() {
			rec := fullRecord(cfg)
			for {
				if err := p.EmitRecord(0, rec); err != nil {
					done <- err
					return
				}
				emitted.Add(1)
			}
		}()
		// The consumer never reads. Its credit (exclusive + all floating) fills, then the subpartition's quota.
		wantConsumer := 0
		if remote {
			wantConsumer = cfg.BuffersPerChannel + cfg.FloatingBuffersPerGate
		}
		waitFor(t, "producer to block", func() bool {
			return p.pool.numWaiting() == 1 && p.Backlog(0) == cfg.MaxBuffersPerSubpartition &&
				(!remote || g.Buffered(0) == wantConsumer)
		})
		if got, want := emitted.Load(), int64(wantConsumer+cfg.MaxBuffersPerSubpartition); got != want {
			t.Fatalf("emitted %d buffers before blocking, want %d", got, want)
		}
		p.Release(errors.New("test over"))
		if err := <-done; !errors.Is(err, ErrPartitionReleased) || !strings.Contains(err.Error(), "test over") {
			t.Fatalf("blocked writer got %v", err)
		}
	})
}

func TestSlowConsumerDoesNotBlockUnrelatedProducer(t *testing.T) {
	cfg := testConfig()
	pm, cm := pair(t, true, cfg)
	ps, g := producersAndGate(t, pm, cm, "job/a/0/0/0", "job/b/0/0/0")
	slow, fast := ps[0], ps[1]

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // fills its consumer's credit, then blocks until released
		defer wg.Done()
		for slow.EmitRecord(0, fullRecord(cfg)) == nil {
		}
	}()
	const n = 2000
	fastErr := make(chan error, 1)
	go func() {
		defer wg.Done()
		fastErr <- func() error {
			for i := 0; i < n; i++ {
				if err := fast.EmitRecord(0, []byte(fmt.Sprint(i))); err != nil {
					return err
				}
			}
			return fast.Finish()
		}()
	}()

	var held []*Buffer // the slow channel's buffers are never recycled
	count := 0
	for done := false; !done; {
		boe, err := next(t, g)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case boe.Channel == 0 && boe.Buffer != nil:
			held = append(held, boe.Buffer)
		case boe.Channel == 1 && boe.IsEvent:
			done = boe.Event.Type == EndOfPartition
		case boe.Channel == 1:
			recs := describe(t, boe)
			for _, r := range recs {
				if r != fmt.Sprint(count) {
					t.Fatalf("record %d = %q", count, r)
				}
				count++
			}
		}
	}
	if count != n {
		t.Fatalf("fast channel delivered %d records, want %d", count, n)
	}
	if err := <-fastErr; err != nil {
		t.Fatal(err)
	}
	slow.Release(nil)
	wg.Wait()
	for _, b := range held {
		b.Recycle()
	}
}

func TestPartitionRequestedBeforeCreated(t *testing.T) {
	forBoth(t, func(t *testing.T, remote bool) {
		pm, cm := pair(t, remote, testConfig())
		g, err := cm.CreateInputGate([]ChannelSpec{{Partition: "job/late/0/0/0", ProducerAddress: pm.Addr()}})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		waitFor(t, "a request for the missing partition", func() bool { return pm.requestMisses.Load() > 0 })
		p, err := pm.CreatePartition("job/late/0/0/0", 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.EmitRecord(0, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		if err := p.Finish(); err != nil {
			t.Fatal(err)
		}
		got, err := readAll(t, g)
		if err != nil {
			t.Fatal(err)
		}
		if s := strings.Join(got[0], ","); s != "hello,EndOfPartition:0" {
			t.Fatalf("got %q", s)
		}
	})
}

func TestPartitionRequestTimeoutNamesPartition(t *testing.T) {
	forBoth(t, func(t *testing.T, remote bool) {
		cfg := testConfig()
		cfg.PartitionRequestTimeout = 50 * time.Millisecond
		pm, cm := pair(t, remote, cfg)
		g, err := cm.CreateInputGate([]ChannelSpec{{Partition: "job/never/0/0/0", Subpartition: 0, ProducerAddress: pm.Addr()}})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		_, err = next(t, g)
		if err == nil || err == io.EOF {
			t.Fatalf("err = %v, want a timeout", err)
		}
		for _, s := range []string{"job/never/0/0/0", pm.Addr(), "input channel 0", "not available after 50ms"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not mention %q", err, s)
			}
		}
	})
}

func TestRemoteUnreachableProducerTimesOut(t *testing.T) {
	cfg := testConfig()
	cfg.PartitionRequestTimeout = 50 * time.Millisecond
	cm := newManager(t, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	g, err := cm.CreateInputGate([]ChannelSpec{{Partition: "job/x/0/0/0", ProducerAddress: addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := next(t, g); err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "job/x/0/0/0") {
		t.Fatalf("err = %v", err)
	}
}

func TestProducerReleaseFailsConsumer(t *testing.T) {
	forBoth(t, func(t *testing.T, remote bool) {
		pm, cm := pair(t, remote, testConfig())
		ps, g := producersAndGate(t, pm, cm, "job/src/0/0/0")
		p := ps[0]
		if err := p.EmitRecord(0, []byte("x")); err != nil {
			t.Fatal(err)
		}
		p.Flush()
		boe, err := next(t, g)
		if err != nil {
			t.Fatal(err)
		}
		boe.Buffer.Recycle()
		p.Release(errors.New("task failed"))
		_, err = next(t, g)
		if !errors.Is(err, ErrPartitionReleased) || !strings.Contains(err.Error(), "task failed") ||
			!strings.Contains(err.Error(), "input channel 0") {
			t.Fatalf("err = %v", err)
		}
		if err := p.EmitRecord(0, []byte("y")); !errors.Is(err, ErrPartitionReleased) {
			t.Fatalf("emit after release: %v", err)
		}
	})
}

func TestReleasePartitionsByPrefix(t *testing.T) {
	m := newManager(t, testConfig())
	for _, id := range []PartitionID{"job1/a/0/0/0", "job1/b/0/0/0", "job2/a/0/0/0"} {
		if _, err := m.CreatePartition(id, 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.CreatePartition("job1/a/0/0/0", 1); err == nil {
		t.Fatal("duplicate partition accepted")
	}
	m.ReleasePartitions("job1/")
	for id, want := range map[PartitionID]bool{"job1/a/0/0/0": false, "job1/b/0/0/0": false, "job2/a/0/0/0": true} {
		if got := m.lookup(id) != nil; got != want {
			t.Errorf("%s present = %v, want %v", id, got, want)
		}
	}
}

// TestMalformedFramesCloseConnection sends bad input to the data server: each connection must be closed and the
// peer named in the log; the Manager keeps serving.
func TestMalformedFramesCloseConnection(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	m, err := NewManager(testConfig(), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p, err := m.CreatePartition("job/src/0/0/0", 2)
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(typ byte, n int) []byte { b := make([]byte, frameHeaderLen); putHeader(b, typ, 1, n); return b }
	req := func(sub int) []byte { return encodePartitionRequest(1, p.ID(), sub, 1) }
	credit := func(ch uint32, n int) []byte {
		return putUint32Frame(make([]byte, frameHeaderLen+4), frameAddCredit, ch, n)
	}
	cases := []struct {
		name    string
		send    [][]byte
		wantLog bool
		reason  string // in the logged error, if set
	}{
		{"huge length", [][]byte{hdr(framePartitionRequest, 1<<31)}, true, "length 2147483648 exceeds cap 1032"},
		{"unknown first frame", [][]byte{hdr(42, 0)}, true, "frame type 42 of 0 bytes from a consumer"},
		{"bad request payload", [][]byte{append(hdr(framePartitionRequest, 3), 1, 2, 3)}, true, "partition request of 3 bytes"},
		{"unknown frame after request", [][]byte{req(0), hdr(99, 4), {0, 0, 0, 0}}, true, "frame type 99 of 4 bytes from a consumer"},
		{"credit overflow", [][]byte{req(1), credit(1, 1<<30)}, true, "channel 1 announces credit 1073741824, more than 1048576"},
		{"credit for an unknown channel", [][]byte{req(1), credit(2, 1)}, true, "frame type 4 for channel 2, which was never requested (last 1)"},
		{"duplicate channel id", [][]byte{req(1), encodePartitionRequest(1, p.ID(), 0, 1)}, true,
			"partition request for channel 1, which is not above the last requested 1 (duplicate id)"},
		{"channel 0", [][]byte{encodePartitionRequest(0, p.ID(), 0, 1)}, true, "frame type 1 names channel 0"},
		{"truncated", [][]byte{hdr(framePartitionRequest, 100), {1, 2}}, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := logs.Len()
			conn, err := net.Dial("tcp", m.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// One write: the server may close as soon as it has read a bad header, and a later write would then
			// race with its close.
			if _, err := conn.Write(bytes.Join(tc.send, nil)); err != nil {
				t.Fatal(err)
			}
			if tc.name == "truncated" {
				conn.(*net.TCPConn).CloseWrite()
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			// A server that closes with unread input (the rest of a bad frame) makes the kernel send a reset
			// instead of a FIN: both mean the server closed. Only the read deadline means it did not.
			if _, err := io.Copy(io.Discard, conn); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("server did not close the connection: %v", err)
			}
			if tc.wantLog {
				waitFor(t, "protocol error log", func() bool { return logs.Len() > before })
				e := logs.All()[before]
				if e.ContextMap()["peer"] != conn.LocalAddr().String() {
					t.Fatalf("log %v does not name peer %s", e.ContextMap(), conn.LocalAddr())
				}
				if msg, _ := e.ContextMap()["error"].(string); !strings.Contains(msg, tc.reason) {
					t.Fatalf("logged error %q, want it to say %q", msg, tc.reason)
				}
			}
		})
	}
	// Still serving.
	g, err := m.CreateInputGate([]ChannelSpec{{Partition: "job/other/0/0/0", ProducerAddress: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
}

// TestMalformedFramesFromProducerFailChannel plays a hostile producer against a remote input channel.
func TestMalformedFramesFromProducerFailChannel(t *testing.T) {
	bufFrame := func(n int) []byte {
		b := make([]byte, frameHeaderLen+4+n)
		putHeader(b, frameBuffer, 1, 4+n)
		return b
	}
	cases := []struct {
		name string
		send []byte
		want string
	}{
		{"huge length", bufFrame(0)[:frameHeaderLen:frameHeaderLen], "exceeds cap"},
		{"unknown type", []byte{0, 0, 0, 0, 77, 0, 0, 0, 1}, "unknown frame type 77"},
		{"no credit", append(append(bufFrame(3), bufFrame(3)...), bufFrame(3)...), "without credit"},
		{"bad event", append([]byte{0, 0, 0, 25, frameEvent, 0, 0, 0, 1, 0, 0, 0, 0, 99}, make([]byte, 20)...), "unknown event type"},
		{"short event", []byte{0, 0, 0, 5, frameEvent, 0, 0, 0, 1, 0, 0, 0, 0, 1}, "frame type 3 of 5 bytes"},
		{"priority EndOfPartition", append([]byte{0, 0, 0, 25, framePriorityEvent, 0, 0, 0, 1, 0, 0, 0, 0, 1}, make([]byte, 20)...),
			"EndOfPartition sent as a priority event"},
		{"short priority event", []byte{0, 0, 0, 5, framePriorityEvent, 0, 0, 0, 1, 0, 0, 0, 0, 2}, "frame type 7 of 5 bytes"},
		{"unknown channel", []byte{0, 0, 0, 4, frameBacklog, 0, 0, 0, 7, 0, 0, 0, 1}, "frame type 5 for channel 7, which was never requested (last 1)"},
		{"data on channel 0", []byte{0, 0, 0, 4, frameBacklog, 0, 0, 0, 0, 0, 0, 0, 1}, "frame type 5 for channel 0"},
	}
	putHeader(cases[0].send, frameBuffer, 1, 1<<30)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			served := make(chan struct{})
			go func() {
				defer close(served)
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				r := bufio.NewReader(conn)
				if _, _, n, err := readHeader(r, make([]byte, frameHeaderLen), maxRequestLen); err == nil {
					_, _ = io.ReadFull(r, make([]byte, n))
				}
				_, _ = conn.Write(tc.send)
				_, _ = io.Copy(io.Discard, r) // until the consumer closes
			}()
			core, logs := observer.New(zap.WarnLevel)
			cm, err := NewManager(testConfig(), zap.New(core))
			if err != nil {
				t.Fatal(err)
			}
			defer cm.Close()
			g, err := cm.CreateInputGate([]ChannelSpec{{Partition: "job/src/0/0/0", ProducerAddress: ln.Addr().String()}})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			var boe BufferOrEvent
			for err == nil { // buffers that did have credit are held, not recycled
				boe, err = next(t, g)
				if err == nil && boe.Buffer == nil {
					t.Fatalf("unexpected %+v", boe)
				}
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			<-served
			if logs.Len() == 0 || logs.All()[0].ContextMap()["peer"] != ln.Addr().String() {
				t.Fatalf("no log naming the peer: %v", logs.All())
			}
		})
	}
}

func TestCreateInputGateRejectsInvalidSpecs(t *testing.T) {
	m := newManager(t, testConfig())
	for _, s := range []ChannelSpec{
		{Partition: "", ProducerAddress: m.Addr()},
		{Partition: "p", Subpartition: -1, ProducerAddress: m.Addr()},
		{Partition: "p"},
	} {
		if g, err := m.CreateInputGate([]ChannelSpec{s}); err == nil {
			g.Close()
			t.Errorf("spec %+v accepted", s)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	for _, mut := range []func(*Config){
		func(c *Config) { c.SegmentSize = 0 },
		func(c *Config) { c.BuffersPerChannel = 0 },
		func(c *Config) { c.FloatingBuffersPerGate = -1 },
		func(c *Config) { c.MaxBuffersPerSubpartition = 0 },
		func(c *Config) { c.PartitionRequestTimeout = 0 },
		func(c *Config) { c.MaxFrameSize = 10 },
		func(c *Config) { c.HandshakeTimeout = 0 },
		func(c *Config) { c.MaxPendingConnectionsPerHost = 0 },
		func(c *Config) { c.MaxPendingConnections = 0 },
	} {
		cfg := DefaultConfig()
		mut(&cfg)
		if _, err := NewManager(cfg, nil); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

// producersAndGate creates one single-subpartition partition per id on pm
// and an input gate on cm reading them all, closed when the test ends.
func producersAndGate(t *testing.T, pm, cm *Manager, ids ...PartitionID) ([]*ResultPartition, *InputGate) {
	t.Helper()
	ps := make([]*ResultPartition, len(ids))
	specs := make([]ChannelSpec, len(ids))
	for i, id := range ids {
		p, err := pm.CreatePartition(id, 1)
		if err != nil {
			t.Fatal(err)
		}
		ps[i] = p
		specs[i] = ChannelSpec{Partition: id, ProducerAddress: pm.Addr()}
	}
	g, err := cm.CreateInputGate(specs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return ps, g
}
