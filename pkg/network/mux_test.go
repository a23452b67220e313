package network

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/weirstream/weir/pkg/security/securitytest"
)

// expectConnections waits until m has exactly the given outgoing and incoming data connections.
func expectConnections(t *testing.T, m *Manager, outgoing, incoming int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s: %d outgoing and %d incoming connections", m.Addr(), outgoing, incoming), func() bool {
		o, i := m.Connections()
		return o == outgoing && i == incoming
	})
}

// emitNumbered emits records "<prefix><i>" for i in [0, n) to p's subpartition 0, then finishes p.
func emitNumbered(p *ResultPartition, prefix string, n int) error {
	for i := 0; i < n; i++ {
		if err := p.EmitRecord(0, []byte(prefix+fmt.Sprint(i))); err != nil {
			return err
		}
	}
	return p.Finish()
}

// checkNumbered fails unless recs are exactly "<prefix>0" .. "<prefix><n-1>" then EndOfPartition.
func checkNumbered(t *testing.T, what string, recs []string, prefix string, n int) {
	t.Helper()
	if len(recs) != n+1 || recs[n] != "EndOfPartition:0" {
		t.Fatalf("%s: %d elements, want %d records and EndOfPartition (last %q)", what, len(recs), n, recs[len(recs)-1:])
	}
	for i := 0; i < n; i++ {
		if recs[i] != prefix+fmt.Sprint(i) {
			t.Fatalf("%s: element %d = %q, want %q", what, i, recs[i], prefix+fmt.Sprint(i))
		}
	}
}

// TestCreditPerChannelOnSharedConnection: two channels share one connection; the consumer holds every buffer of
// the first, so it runs out of credit, and the second still delivers all its records to the end. Then the first is
// read on: each channel delivered each of its records exactly once, in order.
func TestCreditPerChannelOnSharedConnection(t *testing.T) {
	cfg := testConfig()
	pm, cm := pair(t, true, cfg)
	ps, g := producersAndGate(t, pm, cm, "job/slow/0/0/0", "job/fast/0/0/0")
	const nSlow, nFast = 500, 3000 // the slow channel's records fill far more than its credit
	errs := make(chan error, 2)
	go func() { errs <- emitNumbered(ps[0], "s", nSlow) }()
	go func() { errs <- emitNumbered(ps[1], "f", nFast) }()

	var held []BufferOrEvent // channel 0's buffers: not recycled, so its credit is not given back
	got := map[int][]string{}
	for len(got[1]) == 0 || got[1][len(got[1])-1] != "EndOfPartition:0" {
		boe, err := next(t, g)
		if err != nil {
			t.Fatal(err)
		}
		if boe.Channel == 0 && !boe.IsEvent {
			held = append(held, boe)
			continue
		}
		got[boe.Channel] = append(got[boe.Channel], describe(t, boe)...)
	}
	checkNumbered(t, "the channel with credit", got[1], "f", nFast)
	if max := cfg.BuffersPerChannel + cfg.FloatingBuffersPerGate; len(held) > max {
		t.Fatalf("channel without credit delivered %d buffers, more than its credit %d", len(held), max)
	}
	if b := ps[0].Backlog(0); b == 0 {
		t.Fatal("the slow producer has nothing queued: the test did not starve its channel")
	}
	expectConnections(t, cm, 1, 0)
	expectConnections(t, pm, 0, 1)

	for _, boe := range held {
		got[0] = append(got[0], describe(t, boe)...)
	}
	rest, err := readAll(t, g)
	if err != nil {
		t.Fatal(err)
	}
	checkNumbered(t, "the channel that had no credit", append(got[0], rest[0]...), "s", nSlow)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// The last channel ended: the consumer closed the connection.
	expectConnections(t, cm, 0, 0)
	expectConnections(t, pm, 0, 0)
}

// TestManyChannelsOneConnection: two gates of 12 channels each read from one producer Manager over one connection;
// canceling one gate mid-stream removes its channels only (the producer detaches their subpartitions) and the other
// gate reads on; the connection closes when the last channel is gone.
func TestManyChannelsOneConnection(t *testing.T) {
	cfg := testConfig()
	pm, cm := pair(t, true, cfg)
	const n = 12
	var ps [n]*ResultPartition
	var specsA, specsB []ChannelSpec
	for i := range ps {
		p, err := pm.CreatePartition(PartitionID(fmt.Sprintf("job/src/%d/0/0", i)), 2)
		if err != nil {
			t.Fatal(err)
		}
		ps[i] = p
		specsA = append(specsA, ChannelSpec{Partition: p.ID(), Subpartition: 0, ProducerAddress: pm.Addr()})
		specsB = append(specsB, ChannelSpec{Partition: p.ID(), Subpartition: 1, ProducerAddress: pm.Addr()})
	}
	ga, err := cm.CreateInputGate(specsA)
	if err != nil {
		t.Fatal(err)
	}
	defer ga.Close()
	gb, err := cm.CreateInputGate(specsB)
	if err != nil {
		t.Fatal(err)
	}
	defer gb.Close()

	// One record per channel, read by both gates: every channel is open.
	for _, p := range ps {
		for sub := range 2 {
			if err := p.EmitRecord(sub, []byte("first")); err != nil {
				t.Fatal(err)
			}
		}
		p.Flush()
	}
	for _, g := range []*InputGate{ga, gb} {
		for range n {
			boe, err := next(t, g)
			if err != nil {
				t.Fatal(err)
			}
			if recs := describe(t, boe); len(recs) != 1 || recs[0] != "first" {
				t.Fatalf("channel %d delivered %q", boe.Channel, recs)
			}
		}
	}
	expectConnections(t, cm, 1, 0)
	expectConnections(t, pm, 0, 1)

	// Gate A is canceled (its task ended): the producer lets go of its subpartitions, gate B is untouched.
	ga.Close()
	waitFor(t, "gate A's subpartitions detached at the producer", func() bool {
		for _, p := range ps {
			s := p.subs[0]
			s.mu.Lock()
			reader := s.hasReader
			s.mu.Unlock()
			if reader {
				return false
			}
		}
		return true
	})
	expectConnections(t, cm, 1, 0)
	const perChannel = 300
	errs := make(chan error, n)
	for i, p := range ps {
		go func() {
			for j := range perChannel {
				if err := p.EmitRecord(1, []byte(fmt.Sprintf("%d-%d", i, j))); err != nil {
					errs <- err
					return
				}
			}
			errs <- p.BroadcastEvent(Event{Type: EndOfPartition})
		}()
	}
	got, err := readAll(t, gb)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		checkNumbered(t, fmt.Sprintf("gate B channel %d", i), got[i], fmt.Sprintf("%d-", i), perChannel)
	}
	for range n {
		if err := <-errs; err != nil && !errors.Is(err, ErrPartitionReleased) {
			t.Fatal(err)
		}
	}
	expectConnections(t, cm, 0, 0)
	expectConnections(t, pm, 0, 0)
}

// TestConnectionLossFailsItsChannelsOnly: the connection to one producer Manager is cut (through a proxy) while its
// two channels are under load; exactly those fail, naming the producer, and a channel of the same gate reading from
// another producer Manager, as well as another gate's, deliver everything.
func TestConnectionLossFailsItsChannelsOnly(t *testing.T) {
	cfg := testConfig()
	cfg.PartitionRequestTimeout = time.Hour // a retry must not be what ends the test
	cut, other, cm := newManager(t, cfg), newManager(t, cfg), newManager(t, cfg)
	proxy := toxiproxy.NewProxy(toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop()),
		"data", "127.0.0.1:0", cut.Addr())
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	defer proxy.Stop()

	var cutParts []*ResultPartition
	for i := range 2 {
		p, err := cut.CreatePartition(PartitionID(fmt.Sprintf("job/cut/%d/0/0", i)), 1)
		if err != nil {
			t.Fatal(err)
		}
		cutParts = append(cutParts, p)
	}
	kept, err := other.CreatePartition("job/kept/0/0/0", 1)
	if err != nil {
		t.Fatal(err)
	}
	kept2, err := other.CreatePartition("job/kept/1/0/0", 1)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cm.CreateInputGate([]ChannelSpec{
		{Partition: cutParts[0].ID(), ProducerAddress: proxy.Listen},
		{Partition: cutParts[1].ID(), ProducerAddress: proxy.Listen},
		{Partition: kept.ID(), ProducerAddress: other.Addr()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g2, err := cm.CreateInputGate([]ChannelSpec{{Partition: kept2.ID(), ProducerAddress: other.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()

	// Load on the channels of the connection to be cut: endless records.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, p := range cutParts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if p.EmitRecord(0, []byte(fmt.Sprint(i))) != nil {
					return
				}
			}
		}()
	}
	defer func() {
		close(stop)
		for _, p := range cutParts {
			p.Release(errors.New("test over"))
		}
		wg.Wait()
	}()

	// Both cut channels deliver data, then the connection breaks.
	seen := map[int]bool{}
	for !seen[0] || !seen[1] {
		boe, err := next(t, g)
		if err != nil {
			t.Fatal(err)
		}
		seen[boe.Channel] = true
		describe(t, boe)
	}
	expectConnections(t, cm, 2, 0)
	proxy.Stop()

	const nKept = 2000
	keptErrs := make(chan error, 2)
	go func() { keptErrs <- emitNumbered(kept, "k", nKept) }()
	go func() { keptErrs <- emitNumbered(kept2, "k", nKept) }()
	got2, err := readAll(t, g2)
	if err != nil {
		t.Fatalf("the other gate failed: %v", err)
	}
	checkNumbered(t, "the other gate", got2[0], "k", nKept)

	// The gate with the cut channels reports one of them, naming the producer's address and a lost connection.
	var failure error
	var keptRecs []string
	for failure == nil {
		boe, err := next(t, g)
		if err != nil {
			failure = err
			break
		}
		recs := describe(t, boe)
		if boe.Channel == 2 {
			keptRecs = append(keptRecs, recs...)
		}
	}
	if !strings.Contains(failure.Error(), proxy.Listen) || !strings.Contains(failure.Error(), "connection") ||
		strings.Contains(failure.Error(), "input channel 2") {
		t.Fatalf("gate error = %v, want one of the cut channels, naming %s and the connection", failure, proxy.Listen)
	}
	// Exactly the two cut channels failed: the channel to the other producer is still readable to its end.
	for ch := range 2 {
		if _, _, _, err := g.channels[ch].poll(); err == nil {
			t.Fatalf("cut channel %d did not fail", ch)
		}
	}
	for {
		boe, more, ok, err := g.channels[2].poll()
		if err != nil {
			t.Fatalf("the channel to the other producer failed: %v", err)
		}
		if ok {
			keptRecs = append(keptRecs, describe(t, boe)...)
			if boe.IsEvent && boe.Event.Type == EndOfPartition {
				break
			}
		}
		if !ok && !more {
			select {
			case <-g.Available():
			case <-time.After(10 * time.Second):
				t.Fatal("timed out waiting for the channel to the other producer")
			}
		}
	}
	checkNumbered(t, "the channel to the other producer", keptRecs, "k", nKept)
	for range 2 {
		if err := <-keptErrs; err != nil {
			t.Fatal(err)
		}
	}
	expectConnections(t, cm, 0, 0)
}

// TestTLSChannelsShareOneConnection: with internal TLS, channels of two gates to one producer share one connection,
// hence one handshake.
func TestTLSChannelsShareOneConnection(t *testing.T) {
	dir := t.TempDir()
	ca := securitytest.NewCA(t, "Internal CA")
	pm := newManager(t, tlsConfig(t, internalTLS(t, dir, ca, "producer")))
	cm := newManager(t, tlsConfig(t, internalTLS(t, dir, ca, "consumer")))
	ps, g1 := producersAndGate(t, pm, cm, "job/a/0/0/0", "job/b/0/0/0")
	p3, err := pm.CreatePartition("job/c/0/0/0", 1)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := cm.CreateInputGate([]ChannelSpec{{Partition: p3.ID(), ProducerAddress: pm.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	for i, p := range append(ps, p3) {
		if err := p.EmitRecord(0, []byte(fmt.Sprint("r", i))); err != nil {
			t.Fatal(err)
		}
		p.Flush()
	}
	for _, g := range []*InputGate{g1, g1, g2} {
		boe, err := next(t, g)
		if err != nil {
			t.Fatal(err)
		}
		boe.Buffer.Recycle()
	}
	expectConnections(t, cm, 1, 0)
	expectConnections(t, pm, 0, 1)
}
