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

// A barrier between two records: one buffer holds records 0..9; the
// consumer is held inside record 3 when an unaligned barrier arrives. It
// takes the barrier right after record 3, not after the buffer: its
// snapshot has 0..3, the rest of the buffer (4..9) is input channel state,
// and it acknowledges while held again inside record 5.
func TestUnalignedBarrierBetweenRecords(t *testing.T) {
	const count, first = 20, 10 // the first ten in one buffer, then the rest
	job := "mid-buffer"
	srcName, holdName, sinkName := job+"-src", job+"-hold", job+"-sink"
	ckptLogs.Delete(sinkName)
	gates.Delete(srcName)
	holds.Delete(holdName)
	holds.Delete(holdName + "/again")
	p := newPipeline(t, srcName, holdName, sinkName, count, 3, 5)
	g, h, h2 := gateOf(srcName), holdOf(holdName), holdOf(holdName+"/again")
	defer h.open()
	defer h2.open()
	// Flushed by the timer, not after every record: the ten records
	// travel in one buffer.
	cfg := unalignedConfig("")
	cfg["execution.buffer-timeout"] = "100 ms"
	ds, dd := descriptors(job, p.src, nil, []edge{p.e}, cfg)[0], descriptors(job, p.dst, []edge{p.e}, nil, cfg)[0]
	resp := &fakeResponder{}
	env := func(m *network.Manager) Env { return Env{Network: m, Logger: zap.NewNop(), Responder: resp} }
	rd := startEnv(t, dd, env(p.dst.managers[0]))
	rs := startEnv(t, ds, env(p.src.managers[0]))
	defer rd.task.Cancel()
	defer rs.task.Cancel()
	g.limit.Store(first)
	var dstGate *network.InputGate
	waitUntil(t, "the consumer held inside record 3 of the one buffer", func() bool {
		dstGate = rd.task.testGate()
		part := rs.task.testPartition()
		return h.held.Load() && g.pos.Load() == first && dstGate != nil && part != nil &&
			part.Backlog(0) == 0 && dstGate.Buffered(0) == 0
	})
	if err := rs.task.TriggerCheckpoint(1, 5000, CheckpointOptions{Unaligned: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the barrier at the consumer", dstGate.HasPriority)
	h.open()
	waitUntil(t, "the consumer's ack while it is held inside record 5", func() bool { return resp.ackOf(1, 1) != nil && h2.held.Load() })
	dstAck := resp.ackOf(1, 1)
	state := itemsOf(t, dstAck, "c")
	inState := channelRecords(t, dstAck, "hold", snapshot.KindInputChannel)
	if !slices.Equal(state, seq(0, 4)) || !slices.Equal(inState, seq(4, first)) {
		t.Fatalf("snapshot %v and input channel state %v, want %v and %v", state, inState, seq(0, 4), seq(4, first))
	}
	if got := channelState(t, dstAck, "hold", snapshot.KindInputChannel); len(got) != 1 || got["0/0"] != strings.Join(seq(4, first), " ") {
		t.Fatalf("input channel state objects %v, want one buffer on channel 0/0", got)
	}
	h2.open()
	g.limit.Store(count)
	rs.mustEnd(t, Finished)
	rd.mustEnd(t, Finished)
	if got := ckptLogOf(sinkName).records(); !slices.Equal(got, seq(0, count)) {
		t.Fatalf("records %v", got)
	}
	if d := resp.declineList(); len(d) != 0 {
		t.Errorf("declines: %v", d)
	}
}

// With unaligned checkpoints a cancel marker is a priority event too: a
// producer whose snapshot fails cancels the checkpoint downstream, and the
// consumer, held inside record 3 of a ten-record buffer, declines it
// between two records, not after the buffer.
func TestUnalignedCancelMarkerOvertakes(t *testing.T) {
	const count, first = 20, 10
	job := "mid-buffer-cancel"
	srcName, holdName, sinkName := job+"-src", job+"-hold", job+"-sink"
	for _, n := range []string{sinkName, job + "-failing"} {
		ckptLogs.Delete(n)
	}
	gates.Delete(srcName)
	holds.Delete(holdName)
	holds.Delete(holdName + "/again")
	p := newPipeline(t, srcName, holdName, sinkName, count, 3, 5)
	// The producer's chain: the source, then an operator whose snapshot fails.
	p.src.ops = append(p.src.ops, opJSON(t, "failing", "test-ckpt", map[string]any{"name": job + "-failing", "fail-snapshot": true},
		jobgraph.Input{From: "src", Partition: jobgraph.Forward}))
	p.e.producer = "failing"
	p.dst.ops[0] = opJSON(t, "hold", "test-hold", map[string]any{"name": holdName, "at": 3, "again": 5},
		jobgraph.Input{From: "failing", Partition: jobgraph.Forward})
	g, h, h2 := gateOf(srcName), holdOf(holdName), holdOf(holdName+"/again")
	defer h.open()
	defer h2.open()
	cfg := unalignedConfig("")
	cfg["execution.buffer-timeout"] = "100 ms"
	ds, dd := descriptors(job, p.src, nil, []edge{p.e}, cfg)[0], descriptors(job, p.dst, []edge{p.e}, nil, cfg)[0]
	resp := &fakeResponder{}
	env := func(m *network.Manager) Env { return Env{Network: m, Logger: zap.NewNop(), Responder: resp} }
	rd := startEnv(t, dd, env(p.dst.managers[0]))
	rs := startEnv(t, ds, env(p.src.managers[0]))
	defer rd.task.Cancel()
	defer rs.task.Cancel()
	g.limit.Store(first)
	waitUntil(t, "the consumer held inside record 3 of the one buffer", func() bool {
		dstGate, part := rd.task.testGate(), rs.task.testPartition()
		return h.held.Load() && g.pos.Load() == first && dstGate != nil && part != nil &&
			part.Backlog(0) == 0 && dstGate.Buffered(0) == 0
	})
	if err := rs.task.TriggerCheckpoint(1, 5000, CheckpointOptions{Unaligned: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the producer's decline", func() bool { return len(resp.declineList()) == 1 })
	waitUntil(t, "the marker at the consumer", rd.task.testGate().HasPriority)
	h.open()
	waitUntil(t, "the consumer's decline while it is held inside record 5", func() bool { return len(resp.declineList()) == 2 && h2.held.Load() })
	if got := resp.declineList()[1]; got != "v1 1 DECLINE_REASON_ON_CANCELLATION_BARRIER: checkpoint 1 was canceled upstream (cancel marker on input channel 0)" {
		t.Fatalf("consumer's decline %q", got)
	}
	h2.open()
	g.limit.Store(count)
	rs.mustEnd(t, Finished)
	rd.mustEnd(t, Finished)
	if got := ckptLogOf(sinkName).records(); !slices.Equal(got, seq(0, count)) {
		t.Fatalf("records %v", got)
	}
}
