package taskexec

import (
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/snapshot"
)

// midBufferRun is a producer task feeding hold -> c over a remote channel,
// with records 0..9 travelling in one buffer and the consumer held inside
// record 3 of it (and, once released, inside record 5).
type midBufferRun struct {
	count, first int
	rs, rd       *running
	src          *gate
	h, h2        *hold
	resp         *fakeResponder
	sinkName     string
}

// startMidBuffer starts it; failingProducer chains, after the source, an
// operator whose snapshot fails.
func startMidBuffer(t *testing.T, job string, failingProducer bool) *midBufferRun {
	t.Helper()
	m := &midBufferRun{count: 20, first: 10, resp: &fakeResponder{}}
	srcName, holdName := job+"-src", job+"-hold"
	m.sinkName = job + "-sink"
	for _, n := range []string{m.sinkName, job + "-failing"} {
		ckptLogs.Delete(n)
	}
	gates.Delete(srcName)
	holds.Delete(holdName)
	holds.Delete(holdName + "/again")
	p := newPipeline(t, srcName, holdName, m.sinkName, int64(m.count), 3, 5)
	if failingProducer {
		p.src.ops = append(p.src.ops, opJSON(t, "failing", "test-ckpt", map[string]any{"name": job + "-failing", "fail-snapshot": true},
			jobgraph.Input{From: "src", Partition: jobgraph.Forward}))
		p.e.producer = "failing"
		p.dst.ops[0] = opJSON(t, "hold", "test-hold", map[string]any{"name": holdName, "at": 3, "again": 5},
			jobgraph.Input{From: "failing", Partition: jobgraph.Forward})
	}
	m.src, m.h, m.h2 = gateOf(srcName), holdOf(holdName), holdOf(holdName+"/again")
	t.Cleanup(m.h.open)
	t.Cleanup(m.h2.open)
	// Flushed by the timer, not after every record: the first ten records
	// travel in one buffer.
	cfg := unalignedConfig("")
	cfg["execution.buffer-timeout"] = "100 ms"
	ds, dd := descriptors(job, p.src, nil, []edge{p.e}, cfg)[0], descriptors(job, p.dst, []edge{p.e}, nil, cfg)[0]
	env := func(nm *network.Manager) Env { return Env{Network: nm, Logger: zap.NewNop(), Responder: m.resp} }
	m.rd = startEnv(t, dd, env(p.dst.managers[0]))
	m.rs = startEnv(t, ds, env(p.src.managers[0]))
	t.Cleanup(m.rd.task.Cancel)
	t.Cleanup(m.rs.task.Cancel)
	m.src.limit.Store(int64(m.first))
	waitUntil(t, "the consumer held inside record 3 of the one buffer", func() bool {
		g, part := m.rd.task.testGate(), m.rs.task.testPartition()
		return m.h.held.Load() && m.src.pos.Load() == int64(m.first) && g != nil && part != nil &&
			part.Backlog(0) == 0 && g.Buffered(0) == 0
	})
	return m
}

// finish releases everything and checks that both tasks finish with every
// record at the sink.
func (m *midBufferRun) finish(t *testing.T) {
	t.Helper()
	m.h2.open()
	m.src.limit.Store(int64(m.count))
	m.rs.mustEnd(t, Finished)
	m.rd.mustEnd(t, Finished)
	if got := ckptLogOf(m.sinkName).records(); !slices.Equal(got, seq(0, m.count)) {
		t.Fatalf("records %v", got)
	}
}

// A barrier between two records: it is taken right after record 3, not
// after the buffer: the snapshot has 0..3, the rest of the buffer (4..9)
// is input channel state, and the ack comes while the consumer is held
// again inside record 5.
func TestUnalignedBarrierBetweenRecords(t *testing.T) {
	m := startMidBuffer(t, "mid-buffer", false)
	if err := m.rs.task.TriggerCheckpoint(1, 5000, CheckpointOptions{Unaligned: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the barrier at the consumer", m.rd.task.testGate().HasPriority)
	m.h.open()
	waitUntil(t, "the consumer's ack while it is held inside record 5", func() bool { return m.resp.ackOf(1, 1) != nil && m.h2.held.Load() })
	dstAck := m.resp.ackOf(1, 1)
	state := itemsOf(t, dstAck, "c")
	inState := channelRecords(t, dstAck, "hold", snapshot.KindInputChannel)
	if !slices.Equal(state, seq(0, 4)) || !slices.Equal(inState, seq(4, m.first)) {
		t.Fatalf("snapshot %v and input channel state %v, want %v and %v", state, inState, seq(0, 4), seq(4, m.first))
	}
	if got := channelState(t, dstAck, "hold", snapshot.KindInputChannel); len(got) != 1 || got["0/0"] != strings.Join(seq(4, m.first), " ") {
		t.Fatalf("input channel state objects %v, want one buffer on channel 0/0", got)
	}
	m.finish(t)
	if d := m.resp.declineList(); len(d) != 0 {
		t.Errorf("declines: %v", d)
	}
}

// With unaligned checkpoints a cancel marker is a priority event too: a
// producer whose snapshot fails cancels the checkpoint downstream, and the
// consumer declines it between two records, not after the buffer.
func TestUnalignedCancelMarkerOvertakes(t *testing.T) {
	m := startMidBuffer(t, "mid-buffer-cancel", true)
	if err := m.rs.task.TriggerCheckpoint(1, 5000, CheckpointOptions{Unaligned: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the producer's decline", func() bool { return len(m.resp.declineList()) == 1 })
	waitUntil(t, "the marker at the consumer", m.rd.task.testGate().HasPriority)
	m.h.open()
	waitUntil(t, "the consumer's decline while it is held inside record 5", func() bool { return len(m.resp.declineList()) == 2 && m.h2.held.Load() })
	if got := m.resp.declineList()[1]; got != "v1 1 DECLINE_REASON_ON_CANCELLATION_BARRIER: checkpoint 1 was canceled upstream (cancel marker on input channel 0)" {
		t.Fatalf("consumer's decline %q", got)
	}
	m.finish(t)
}
