package taskexec

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/proto/weirpb"
)

// Unaligned checkpoints and the aligned-checkpoint timeout in running
// tasks: channel state captured on both sides, restored in order, and the
// cut of a checkpoint exact across operator and channel state.

func init() {
	operator.Register(&operator.Type{Name: "test-gated", Kind: operator.KindSource, NewSource: newGatedSource})
	operator.Register(&operator.Type{Name: "test-hold", Kind: operator.KindTransform, NewOperator: newHoldOp})
}

// gatedSource emits {"n": pos} while pos < min(limit, count), then waits
// (NothingAvailable) until the test raises the limit (gateOf), and ends at
// count. Its state is its position.
type gatedSource struct {
	g     *gate
	count int64
	pos   int64
	rec   record.Record
}

// gate is the test's handle on a gated source.
type gate struct {
	limit atomic.Int64
	pos   atomic.Int64 // emitted so far
}

var gates sync.Map // name -> *gate

func gateOf(name string) *gate {
	v, _ := gates.LoadOrStore(name, &gate{})
	return v.(*gate)
}

func newGatedSource(p operator.Properties) (operator.Source, error) {
	name, err := p.RequiredString("name")
	if err != nil {
		return nil, err
	}
	s := &gatedSource{g: gateOf(name)}
	if s.count, err = p.Int("count", 0); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *gatedSource) Open(*operator.Context) error { return nil }

func (s *gatedSource) PollNext(out operator.Collector) (operator.SourceStatus, time.Duration, error) {
	if s.pos >= s.count {
		return operator.EndOfInput, 0, nil
	}
	if s.pos >= s.g.limit.Load() {
		return operator.NothingAvailable, time.Millisecond, nil
	}
	s.rec.Reset()
	s.rec.Set("n", record.Int(s.pos))
	s.pos++
	s.g.pos.Store(s.pos)
	return operator.MoreAvailable, 0, out.Collect(&s.rec)
}

func (s *gatedSource) Close() error { return nil }

func (s *gatedSource) SnapshotState(int64) (*operator.Snapshot, error) {
	return &operator.Snapshot{Items: [][]byte{fmt.Appendf(nil, "pos=%d", s.pos)}}, nil
}

func (s *gatedSource) RestoreState(r *operator.RestoredState) error {
	for _, it := range r.Items {
		if _, err := fmt.Sscanf(string(it), "pos=%d", &s.pos); err != nil {
			return fmt.Errorf("item %q: %w", it, err)
		}
	}
	s.g.pos.Store(s.pos)
	return nil
}

// holdOp forwards records; the record {"n": at} blocks it until the test
// releases the hold (holdOf(name)), so that data piles up in the network,
// and the record {"n": again} until it releases holdOf(name+"/again").
type holdOp struct {
	h, h2     *hold
	at, again int64
}

type hold struct {
	held    atomic.Bool
	release chan struct{}
	once    sync.Once
}

var holds sync.Map // name -> *hold

func holdOf(name string) *hold {
	v, _ := holds.LoadOrStore(name, &hold{release: make(chan struct{})})
	return v.(*hold)
}

func (h *hold) open() { h.once.Do(func() { close(h.release) }) }

func newHoldOp(p operator.Properties) (operator.Operator, error) {
	name, err := p.RequiredString("name")
	if err != nil {
		return nil, err
	}
	o := &holdOp{h: holdOf(name), h2: holdOf(name + "/again")}
	if o.at, err = p.Int("at", -1); err != nil {
		return nil, err
	}
	if o.again, err = p.Int("again", -1); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *holdOp) Open(*operator.Context) error { return nil }

func (o *holdOp) ProcessRecord(r *record.Record, out operator.Collector) error {
	v, ok := r.Get("n")
	for _, h := range []struct {
		at int64
		h  *hold
	}{{o.at, o.h}, {o.again, o.h2}} {
		if ok && h.at >= 0 && v.String() == fmt.Sprint(h.at) {
			h.h.held.Store(true)
			<-h.h.release
		}
	}
	return out.Collect(r)
}

func (o *holdOp) EndInput(operator.Collector) error { return nil }
func (o *holdOp) Close() error                      { return nil }

func unalignedConfig(timeout string) map[string]string {
	cfg := ckptConfig("EXACTLY_ONCE")
	cfg["execution.checkpointing.unaligned.enabled"] = "true"
	if timeout != "" {
		cfg["execution.checkpointing.aligned-checkpoint-timeout"] = timeout
	}
	return cfg
}

// channelState decodes the channel state objects of kind in ack under op:
// "gate/channel" -> the records of each buffer, buffers joined by " | ".
func channelState(t *testing.T, ack *weirpb.AcknowledgeCheckpointRequest, op string, kind snapshot.StateKind) map[string]string {
	t.Helper()
	ts, err := snapshot.DecodeTaskState(ack.GetState())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, o := range ts.Operators[op] {
		if o.Kind != kind {
			continue
		}
		var bufs []string
		for _, b := range decodeChannelObject(t, o) {
			bufs = append(bufs, strings.Join(b, " "))
		}
		out[fmt.Sprintf("%d/%d", o.Channel.Gate, o.Channel.Channel)] = strings.Join(bufs, " | ")
	}
	return out
}

// decodeChannelObject returns the records of each buffer of an inline
// channel state object.
func decodeChannelObject(t *testing.T, o snapshot.StateObject) [][]string {
	t.Helper()
	if !o.IsInline() {
		t.Fatalf("channel state in file %s, want inline", o.Path)
	}
	if _, n := binary.Uvarint(o.Inline); n <= 0 || o.Channel.Offsets[0] != int64(n) {
		t.Fatalf("channel state header: offsets %v", o.Channel.Offsets)
	}
	var dec record.Decoder
	var rec record.Record
	var out [][]string
	for i, off := range o.Channel.Offsets {
		end := int64(len(o.Inline))
		if i+1 < len(o.Channel.Offsets) {
			end = o.Channel.Offsets[i+1]
		}
		var recs []string
		for data := o.Inline[off:end]; len(data) > 0; {
			frame, rest, err := network.NextRecord(data)
			if err != nil {
				t.Fatal(err)
			}
			if err := dec.Decode(frame, &rec); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec.String())
			data = rest
		}
		out = append(out, recs)
	}
	return out
}

// channelRecords flattens the records of the channel state objects of kind
// under op, in (gate, channel) order.
func channelRecords(t *testing.T, ack *weirpb.AcknowledgeCheckpointRequest, op string, kind snapshot.StateKind) []string {
	t.Helper()
	ts, err := snapshot.DecodeTaskState(ack.GetState())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range ts.Operators[op] {
		if o.Kind == kind {
			for _, b := range decodeChannelObject(t, o) {
				out = append(out, b...)
			}
		}
	}
	return out
}

func (r *running) mustEnd(t *testing.T, want ExecutionState) Result {
	t.Helper()
	res := r.wait(t)
	if res.State != want {
		t.Fatalf("task %s: %s %v, want %s", r.task.Name(), res.State, res.Err, want)
	}
	return res
}

// The barrier of an unaligned checkpoint overtakes the buffers queued in
// a source's output: they are its output channel state, and still reach
// the consumer, after the barrier (so the consumer's snapshot does not
// hold them).
func TestUnalignedOutputChannelState(t *testing.T) {
	job := "unaligned-out"
	fa, sinkName := job+"-a", job+"-sink"
	reset(fa)
	ckptLogs.Delete(sinkName)
	m := newManager(t)
	a := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{opJSON(t, "a", "test-trickle", map[string]any{"name": fa})}}
	c := &vertex{index: 1, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "c", "test-ckpt", map[string]any{"name": sinkName}, jobgraph.Input{From: "a", Partition: jobgraph.Forward}),
	}}
	e := edge{from: a, to: c, partition: jobgraph.Forward, consumer: "c", producer: "a"}
	cfg := unalignedConfig("")
	resp := &fakeResponder{}
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg, "tm-1")
	if err != nil {
		t.Fatal(err)
	}
	env := Env{Network: m, Logger: zap.NewNop(), Responder: resp, Metrics: metrics}
	ra := startEnv(t, descriptors(job, a, nil, []edge{e}, cfg)[0], env)
	defer ra.task.Cancel()
	for _, v := range []int64{1, 2, 3} {
		feed(fa) <- v
	}
	waitUntil(t, "3 buffers queued without a consumer", func() bool {
		p := ra.task.testPartition()
		return p != nil && p.Backlog(0) == 3
	})
	if err := ra.task.TriggerCheckpoint(1, 5000, CheckpointOptions{Unaligned: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the source's ack", func() bool { return resp.ackOf(0, 1) != nil })
	ack := resp.ackOf(0, 1)
	if got, want := channelState(t, ack, "a", snapshot.KindResultSubpartition), map[string]string{"0/0": `{"n":1} | {"n":2} | {"n":3}`}; !mapsEqual(got, want) {
		t.Errorf("output channel state %v, want %v", got, want)
	}
	var inFlight int64
	for _, o := range mustTaskState(t, ack).Operators["a"] {
		if o.Kind == snapshot.KindResultSubpartition {
			inFlight += o.Size - o.Channel.Offsets[0]
		}
	}
	if ack.GetPersistedInFlightBytes() != inFlight || inFlight == 0 || ack.GetAlignmentMs() != 0 {
		t.Errorf("ack: in-flight %d bytes (objects hold %d), alignment %d ms", ack.GetPersistedInFlightBytes(), inFlight, ack.GetAlignmentMs())
	}
	if got := gaugeValue(t, reg, "weir_task_checkpoint_inflight_bytes", "a"); got != float64(inFlight) {
		t.Errorf("weir_task_checkpoint_inflight_bytes %v, want %d", got, inFlight)
	}

	// The consumer gets the barrier first: its snapshot holds nothing, and
	// the three records come after it.
	rc := startEnv(t, descriptors(job, c, []edge{e}, nil, cfg)[0], env)
	sink := ckptLogOf(sinkName)
	waitUntil(t, "the consumer's ack and 3 records", func() bool { return resp.ackOf(1, 1) != nil && len(sink.records()) == 3 })
	if snap, _ := sink.snapshotOf(1); len(snap) != 0 {
		t.Errorf("consumer snapshot %v, want empty (the records followed the barrier)", snap)
	}
	if got := resp.ackOf(1, 1); got.GetPersistedInFlightBytes() != 0 || len(channelRecords(t, got, "c", snapshot.KindInputChannel)) != 0 {
		t.Errorf("consumer ack has channel state: %d bytes", got.GetPersistedInFlightBytes())
	}
	if got := sink.records(); !slices.Equal(got, seq(1, 4)) {
		t.Errorf("consumer records %v", got)
	}
	feed(fa) <- -1
	ra.mustEnd(t, Finished)
	rc.mustEnd(t, Finished)
}

// testPartition returns the task's first output partition once created.
func (t *Task) testPartition() *network.ResultPartition {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.partitions) == 0 {
		return nil
	}
	return t.partitions[0]
}

// testGate returns the task's input gate once created.
func (t *Task) testGate() *network.InputGate {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.gateRes
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func mustTaskState(t *testing.T, ack *weirpb.AcknowledgeCheckpointRequest) *snapshot.TaskState {
	t.Helper()
	ts, err := snapshot.DecodeTaskState(ack.GetState())
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// A two-input task snapshots at the first barrier and records, on the
// other channel, exactly the buffers between its snapshot and that
// channel's barrier; what follows the first barrier on its own channel is
// processed and not recorded. Nothing is blocked.
func TestUnalignedInputChannelState(t *testing.T) {
	job := "unaligned-in"
	fa, fb, sinkName := job+"-a", job+"-b", job+"-join"
	reset(fa, fb)
	ckptLogs.Delete(sinkName)
	m := newManager(t)
	a := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{opJSON(t, "a", "test-trickle", map[string]any{"name": fa})}}
	b := &vertex{index: 1, par: 1, managers: []*network.Manager{m}, ops: [][]byte{opJSON(t, "b", "test-trickle", map[string]any{"name": fb})}}
	c := &vertex{index: 2, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "join", "test-ckpt", map[string]any{"name": sinkName},
			jobgraph.Input{From: "a", Partition: jobgraph.Forward}, jobgraph.Input{From: "b", Partition: jobgraph.Forward}),
	}}
	ea := edge{from: a, to: c, partition: jobgraph.Forward, consumer: "join", producer: "a"}
	eb := edge{from: b, to: c, partition: jobgraph.Forward, consumer: "join", producer: "b"}
	cfg := unalignedConfig("")
	resp := &fakeResponder{}
	env := Env{Network: m, Logger: zap.NewNop(), Responder: resp}
	rc := startEnv(t, descriptors(job, c, []edge{ea, eb}, nil, cfg)[0], env)
	ra := startEnv(t, descriptors(job, a, nil, []edge{ea}, cfg)[0], env)
	rb := startEnv(t, descriptors(job, b, nil, []edge{eb}, cfg)[0], env)
	sink := ckptLogOf(sinkName)
	in := func(name string, vs ...int64) {
		for _, v := range vs {
			feed(name) <- v
		}
	}
	in(fa, 1, 2)
	in(fb, 101, 102)
	waitUntil(t, "4 records", func() bool { return len(sink.records()) == 4 })

	if err := ra.task.TriggerCheckpoint(1, 5000, CheckpointOptions{Unaligned: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the consumer's snapshot", func() bool { _, ok := sink.snapshotOf(1); return ok })
	in(fa, 3, 4)
	in(fb, 103, 104)
	waitUntil(t, "8 records (nothing blocked)", func() bool { return len(sink.records()) == 8 })
	if err := rb.task.TriggerCheckpoint(1, 5000, CheckpointOptions{Unaligned: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the consumer's ack", func() bool { return resp.ackOf(2, 1) != nil })
	in(fb, 105)
	ack := resp.ackOf(2, 1)
	if got := itemsOf(t, ack, "join"); !slices.Equal(sorted(got), sorted([]string{`{"n":1}`, `{"n":2}`, `{"n":101}`, `{"n":102}`})) {
		t.Errorf("snapshot %v", got)
	}
	if got, want := channelState(t, ack, "join", snapshot.KindInputChannel), map[string]string{"1/0": `{"n":103} | {"n":104}`}; !mapsEqual(got, want) {
		t.Errorf("input channel state %v, want %v", got, want)
	}
	if ack.GetPersistedInFlightBytes() == 0 || ack.GetAlignmentMs() != 0 {
		t.Errorf("ack: in-flight %d bytes, alignment %d ms", ack.GetPersistedInFlightBytes(), ack.GetAlignmentMs())
	}
	for _, v := range []int32{0, 1} {
		if got := resp.ackOf(v, 1).GetPersistedInFlightBytes(); got != 0 {
			t.Errorf("source %d: %d in-flight bytes, want none (its consumer kept up)", v, got)
		}
	}
	waitUntil(t, "9 records", func() bool { return len(sink.records()) == 9 })
	in(fa, -1)
	in(fb, -1)
	ra.mustEnd(t, Finished)
	rb.mustEnd(t, Finished)
	rc.mustEnd(t, Finished)
	if d := resp.declineList(); len(d) != 0 {
		t.Errorf("declines: %v", d)
	}
}

// Aligned-checkpoint timeout: the checkpoint starts aligned (the first
// channel is blocked); once the injected clock passes its start plus the
// timeout, the timer of the task loop switches it to unaligned: snapshot
// (with what the other channel delivered so far), unblock, and record that
// channel until its barrier; the blocked channel's data is post-barrier.
func TestAlignedTimeoutSwitch(t *testing.T) {
	job := "aligned-timeout"
	fa, fb, sinkName := job+"-a", job+"-b", job+"-join"
	reset(fa, fb)
	ckptLogs.Delete(sinkName)
	m := newManager(t)
	a := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{opJSON(t, "a", "test-trickle", map[string]any{"name": fa})}}
	b := &vertex{index: 1, par: 1, managers: []*network.Manager{m}, ops: [][]byte{opJSON(t, "b", "test-trickle", map[string]any{"name": fb})}}
	c := &vertex{index: 2, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "join", "test-ckpt", map[string]any{"name": sinkName},
			jobgraph.Input{From: "a", Partition: jobgraph.Forward}, jobgraph.Input{From: "b", Partition: jobgraph.Forward}),
	}}
	ea := edge{from: a, to: c, partition: jobgraph.Forward, consumer: "join", producer: "a"}
	eb := edge{from: b, to: c, partition: jobgraph.Forward, consumer: "join", producer: "b"}
	cfg := unalignedConfig("20 ms")
	resp := &fakeResponder{}
	clock := &fakeClock{}
	t0 := time.Unix(1_700_000_000, 0)
	clock.set(t0)
	env := Env{Network: m, Logger: zap.NewNop(), Responder: resp, Now: clock.Now}
	rc := startEnv(t, descriptors(job, c, []edge{ea, eb}, nil, cfg)[0], env)
	ra := startEnv(t, descriptors(job, a, nil, []edge{ea}, cfg)[0], env)
	rb := startEnv(t, descriptors(job, b, nil, []edge{eb}, cfg)[0], env)
	sink := ckptLogOf(sinkName)
	in := func(name string, vs ...int64) {
		for _, v := range vs {
			feed(name) <- v
		}
	}
	in(fa, 1)
	in(fb, 101)
	waitUntil(t, "2 records", func() bool { return len(sink.records()) == 2 })

	ts := t0.UnixMilli()
	if err := ra.task.TriggerCheckpoint(1, ts, CheckpointOptions{Unaligned: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the source's ack", func() bool { return resp.ackOf(0, 1) != nil })
	if got := resp.ackOf(0, 1).GetPersistedInFlightBytes(); got != 0 {
		t.Errorf("a timeoutable aligned barrier left the source with %d in-flight bytes", got)
	}
	in(fa, 2) // behind the barrier on the blocked channel
	in(fb, 102)
	aPart := ra.task.partitions[0]
	waitUntil(t, "a's channel blocked, b's record processed", func() bool {
		return aPart.Backlog(0) == 1 && has(sink.records(), `{"n":102}`)
	})
	// The real timer fires every 20ms, but the injected clock says the
	// timeout has not passed.
	clock.set(t0.Add(19 * time.Millisecond))
	in(fb, 103)
	waitUntil(t, "103 processed", func() bool { return has(sink.records(), `{"n":103}`) })
	if _, ok := sink.snapshotOf(1); ok || aPart.Backlog(0) != 1 {
		t.Fatalf("switched before the timeout (snapshot taken, or backlog %d)", aPart.Backlog(0))
	}
	clock.set(t0.Add(20 * time.Millisecond))
	waitUntil(t, "the switch: snapshot and a's channel unblocked", func() bool {
		_, ok := sink.snapshotOf(1)
		return ok && has(sink.records(), `{"n":2}`)
	})
	in(fb, 104)
	waitUntil(t, "104 processed", func() bool { return has(sink.records(), `{"n":104}`) })
	if err := rb.task.TriggerCheckpoint(1, ts, CheckpointOptions{Unaligned: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the consumer's ack", func() bool { return resp.ackOf(2, 1) != nil })
	ack := resp.ackOf(2, 1)
	if got := itemsOf(t, ack, "join"); !slices.Equal(sorted(got), sorted([]string{`{"n":1}`, `{"n":101}`, `{"n":102}`, `{"n":103}`})) {
		t.Errorf("snapshot %v", got)
	}
	if got, want := channelState(t, ack, "join", snapshot.KindInputChannel), map[string]string{"1/0": `{"n":104}`}; !mapsEqual(got, want) {
		t.Errorf("input channel state %v, want %v", got, want)
	}
	if ack.GetAlignmentMs() != 20 {
		t.Errorf("alignment %d ms, want the 20 ms of the injected clock before the switch", ack.GetAlignmentMs())
	}
	in(fa, -1)
	in(fb, -1)
	ra.mustEnd(t, Finished)
	rb.mustEnd(t, Finished)
	rc.mustEnd(t, Finished)
}

// pipeline is a source (test-gated) feeding a chain hold -> ckpt over a
// remote channel, with few network buffers, so that in-flight data sits on
// both sides.
type pipeline struct {
	src, dst *vertex
	e        edge
}

func newPipeline(t *testing.T, srcName, holdName, sinkName string, count, holdAt, holdAgain int64) *pipeline {
	t.Helper()
	cfg := network.DefaultConfig()
	cfg.BuffersPerChannel, cfg.FloatingBuffersPerGate, cfg.MaxBuffersPerSubpartition = 4, 0, 8
	var ms []*network.Manager
	for range 2 {
		m, err := network.NewManager(cfg, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		ms = append(ms, m)
	}
	p := &pipeline{
		src: &vertex{index: 0, par: 1, managers: ms[:1], ops: [][]byte{opJSON(t, "src", "test-gated", map[string]any{"name": srcName, "count": count})}},
		dst: &vertex{index: 1, par: 1, managers: ms[1:], ops: [][]byte{
			opJSON(t, "hold", "test-hold", map[string]any{"name": holdName, "at": holdAt, "again": holdAgain}, jobgraph.Input{From: "src", Partition: jobgraph.Forward}),
			opJSON(t, "c", "test-ckpt", map[string]any{"name": sinkName}, jobgraph.Input{From: "hold", Partition: jobgraph.Forward}),
		}},
	}
	p.e = edge{from: p.src, to: p.dst, partition: jobgraph.Forward, consumer: "hold", producer: "src"}
	return p
}

func (p *pipeline) descriptors(job string) (src, dst *weirpb.TaskDeploymentDescriptor) {
	cfg := unalignedConfig("")
	return descriptors(job, p.src, nil, []edge{p.e}, cfg)[0], descriptors(job, p.dst, []edge{p.e}, nil, cfg)[0]
}

// restoreOf is what the JobManager would send an attempt restoring from
// ack: the state of each operator of the chain (types by id).
func restoreOf(t *testing.T, ack *weirpb.AcknowledgeCheckpointRequest, types map[string]string) *snapshot.TaskRestore {
	t.Helper()
	ts := mustTaskState(t, ack)
	r := &snapshot.TaskRestore{CheckpointID: ack.GetCheckpointId(), Operators: map[string]*snapshot.OperatorState{}}
	for id, typ := range types {
		r.Operators[id] = &snapshot.OperatorState{ID: id, Type: typ, Parallelism: 1,
			Subtasks: []snapshot.SubtaskState{{Subtask: 0, State: ts.Operators[id]}}}
	}
	return r
}

// Exactly once across an unaligned checkpoint: with the consumer held, an
// unaligned checkpoint is taken while data is in flight on both sides of a
// remote channel. Every record before the cut is in exactly one of the
// consumer's operator state, its input channel state or the producer's
// output channel state. Restored into new tasks (the producer re-sends its
// output state first, the consumer replays its input state before polling)
// the pipeline's final output equals an uninterrupted run's.
func TestUnalignedCheckpointExactlyOnce(t *testing.T) {
	const count, emitted, holdAt = 60, 48, 40
	job := "unaligned-eo"
	names := func(run string) (src, hold, sink string) {
		return job + "-" + run + "-src", job + "-" + run + "-hold", job + "-" + run + "-sink"
	}
	for _, run := range []string{"plain", "first", "restored"} {
		src, hold, sink := names(run)
		ckptLogs.Delete(sink)
		forgetRestoreLogs(sink, 1)
		gates.Delete(src)
		holds.Delete(hold)
		holds.Delete(hold + "/again")
	}

	// The uninterrupted run.
	srcName, _, sinkName := names("plain")
	p := newPipeline(t, srcName, job+"-plain-hold", sinkName, count, -1, -1)
	gateOf(srcName).limit.Store(count)
	ds, dd := p.descriptors(job + "-plain")
	env := func(m *network.Manager, resp CheckpointResponder) Env {
		return Env{Network: m, Logger: zap.NewNop(), Responder: resp}
	}
	rd := startEnv(t, dd, env(p.dst.managers[0], nil))
	rs := startEnv(t, ds, env(p.src.managers[0], nil))
	rs.mustEnd(t, Finished)
	rd.mustEnd(t, Finished)
	want := ckptLogOf(sinkName).records()
	if !slices.Equal(want, seq(0, count)) {
		t.Fatalf("uninterrupted run: %v", want)
	}

	// The first attempt: held at record 40 with 41..47 in flight.
	srcName, holdName, sinkName := names("first")
	// Held again at record 41, the first buffer the barrier overtakes at the
	// consumer: the checkpoint must complete without it being processed.
	p = newPipeline(t, srcName, holdName, sinkName, count, holdAt, holdAt+1)
	g, h, h2 := gateOf(srcName), holdOf(holdName), holdOf(holdName+"/again")
	g.limit.Store(emitted)
	defer h.open()
	defer h2.open()
	ds, dd = p.descriptors(job)
	resp := &fakeResponder{}
	rd = startEnv(t, dd, env(p.dst.managers[0], resp))
	rs = startEnv(t, ds, env(p.src.managers[0], resp))
	defer rd.task.Cancel()
	defer rs.task.Cancel()
	var srcPart *network.ResultPartition
	var dstGate *network.InputGate
	waitUntil(t, "the consumer held with 7 buffers in flight, none on the wire", func() bool {
		srcPart, dstGate = rs.task.testPartition(), rd.task.testGate()
		return h.held.Load() && g.pos.Load() == emitted && srcPart != nil && dstGate != nil &&
			srcPart.Backlog(0)+dstGate.Buffered(0) == emitted-holdAt-1
	})
	received := dstGate.Buffered(0)
	t.Logf("in flight: %d queued at the producer, %d received by the consumer", srcPart.Backlog(0), received)
	if err := rs.task.TriggerCheckpoint(1, 5000, CheckpointOptions{Unaligned: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the source's ack", func() bool { return resp.ackOf(0, 1) != nil })
	// Else the consumer could poll record 41 and hold before the barrier.
	waitUntil(t, "the barrier at the consumer", func() bool { return dstGate.Buffered(0) == received+1 })
	g.limit.Store(emitted + 2) // after the cut
	h.open()
	// The overtaken buffers are input channel state from the copies taken
	// when the barrier was delivered, not when they are processed.
	waitUntil(t, "the consumer's ack while it holds record 41", func() bool { return resp.ackOf(1, 1) != nil && h2.held.Load() })
	srcAck, dstAck := resp.ackOf(0, 1), resp.ackOf(1, 1)
	if got := itemsOf(t, srcAck, "src"); !slices.Equal(got, []string{fmt.Sprintf("pos=%d", emitted)}) {
		t.Fatalf("source state %v", got)
	}
	state := itemsOf(t, dstAck, "c")
	inState := channelRecords(t, dstAck, "hold", snapshot.KindInputChannel)
	outState := channelRecords(t, srcAck, "src", snapshot.KindResultSubpartition)
	t.Logf("cut: %d records in state, %d in input channel state, %d in output channel state", len(state), len(inState), len(outState))
	if cut := slices.Concat(state, inState, outState); !slices.Equal(cut, seq(0, emitted)) {
		t.Fatalf("state %v + input channel state %v + output channel state %v, want each of %v once", state, inState, outState, seq(0, emitted))
	}
	if len(inState) == 0 {
		t.Errorf("no input channel state: the barrier overtook nothing at the consumer")
	}
	if srcAck.GetPersistedInFlightBytes() == 0 && len(outState) > 0 || dstAck.GetPersistedInFlightBytes() == 0 {
		t.Errorf("in-flight bytes: source %d, consumer %d", srcAck.GetPersistedInFlightBytes(), dstAck.GetPersistedInFlightBytes())
	}
	h2.open()
	waitUntil(t, "the records after the cut", func() bool { return len(ckptLogOf(sinkName).records()) == emitted+2 })
	// A failure: both tasks go.
	rd.task.Cancel()
	rd.mustEnd(t, Canceled)
	rs.task.Cancel()
	rs.mustEnd(t, Canceled)

	// New attempts restore from checkpoint 1 and run to the end.
	srcName, holdName, sinkName = names("restored")
	p = newPipeline(t, srcName, holdName, sinkName, count, -1, -1)
	gateOf(srcName).limit.Store(count)
	ds, dd = p.descriptors(job)
	ds = withRestore(t, ds, restoreOf(t, srcAck, map[string]string{"src": "test-gated"}))
	dd = withRestore(t, dd, restoreOf(t, dstAck, map[string]string{"hold": "test-hold", "c": "test-ckpt"}))
	rd = startEnv(t, dd, env(p.dst.managers[0], resp))
	rs = startEnv(t, ds, env(p.src.managers[0], resp))
	rs.mustEnd(t, Finished)
	rd.mustEnd(t, Finished)
	rl, ok := restoreLogOf(sinkName, 0)
	if !ok {
		t.Fatal("the consumer did not restore")
	}
	if got := slices.Concat(rl.items, ckptLogOf(sinkName).records()); !slices.Equal(got, want) {
		t.Fatalf("restored run: state %v then records %v, want %v", rl.items, ckptLogOf(sinkName).records(), want)
	}
}

// Channel state that cannot be redistributed fails the task, saying why:
// the in-flight data of a broadcast edge whose consumer was rescaled, on
// either side of the edge (rescaling otherwise: rescale_restore_test.go).
func TestChannelStateRescaleRejected(t *testing.T) {
	jm, err := snapshot.Open("jobmanager", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	loc, err := jm.CheckpointLocation("rescale-cs", 4)
	if err != nil {
		t.Fatal(err)
	}
	var cd channelData
	cd.add([]byte{1, 'x'})
	m := newManager(t)
	src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{opJSON(t, "src", "test-gated", map[string]any{"name": "rescale-cs"})}}
	dst := &vertex{index: 1, par: 2, managers: []*network.Manager{m, m}, ops: [][]byte{opJSON(t, "k", "test-discard", nil, jobgraph.Input{From: "src", Partition: jobgraph.Broadcast})}}
	e := edge{from: src, to: dst, partition: jobgraph.Broadcast, consumer: "k", producer: "src"}
	for _, tc := range []struct {
		name, op, typ string
		kind          snapshot.StateKind
		v             *vertex
		ins, outs     []edge
		want          string
	}{
		{"consumer", "k", "test-discard", snapshot.KindInputChannel, dst, []edge{e}, nil,
			`checkpoint 4 has in-flight data (unaligned) that cannot be restored here; use a savepoint (always aligned) instead (input 0 of operator "k" (from "src"): parallelism 1 in the checkpoint, 2 now: the in-flight data of a broadcast edge cannot be redistributed)`},
		{"producer", "src", "test-gated", snapshot.KindResultSubpartition, src, nil, []edge{e},
			`checkpoint 4 has in-flight data (unaligned) that cannot be restored here; use a savepoint (always aligned) instead (output 0 to "k" had 1 subpartitions and has 2 now: the in-flight data of a broadcast edge cannot be redistributed)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := writeChannelState(t.Context(), loc, tc.op+"-0-0-0", tc.kind, 0, 0, 1, &cd)
			if err != nil {
				t.Fatal(err)
			}
			d := descriptors("rescale-cs", tc.v, tc.ins, tc.outs, unalignedConfig(""))[0]
			d = withRestore(t, d, &snapshot.TaskRestore{CheckpointID: 4, Location: loc.Path(), Operators: map[string]*snapshot.OperatorState{
				tc.op: {ID: tc.op, Type: tc.typ, Parallelism: 1, Subtasks: []snapshot.SubtaskState{{Subtask: 0, State: []snapshot.StateObject{obj}}}},
			}})
			r := startEnv(t, d, Env{Network: m, Logger: zap.NewNop()})
			res := r.mustEnd(t, Failed)
			if res.Err == nil || res.Err.Error() != tc.want {
				t.Fatalf("error %v\nwant %s", res.Err, tc.want)
			}
		})
	}
}

// A backpressured source takes a checkpoint trigger while its output has
// no buffer to give: it waits for one outside of an emit, serving its
// mailbox. Its consumer never reads here, so an emit blocked on the pool
// would never return. The unaligned barrier overtakes everything queued:
// the output channel state is exactly the records before the source's
// position.
func TestBackpressuredSourceTakesTrigger(t *testing.T) {
	const count = 1_000_000
	job := "backpressured-src"
	srcName := job + "-src"
	gates.Delete(srcName)
	p := newPipeline(t, srcName, job+"-hold", job+"-sink", count, -1, -1)
	g := gateOf(srcName)
	g.limit.Store(count)
	ds, _ := p.descriptors(job)
	resp := &fakeResponder{}
	rs := startEnv(t, ds, Env{Network: p.src.managers[0], Logger: zap.NewNop(), Responder: resp})
	defer rs.task.Cancel()
	var part *network.ResultPartition
	waitUntil(t, "the source's output to run out of buffers", func() bool {
		part = rs.task.testPartition()
		return part != nil && !part.IsAvailable()
	})
	if err := rs.task.TriggerCheckpoint(1, 5000, CheckpointOptions{Unaligned: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the source's ack", func() bool { return resp.ackOf(0, 1) != nil })
	ack := resp.ackOf(0, 1)
	pos := g.pos.Load()
	if got := itemsOf(t, ack, "src"); !slices.Equal(got, []string{fmt.Sprintf("pos=%d", pos)}) {
		t.Fatalf("source state %v, want pos=%d (it emitted nothing since its output ran out)", got, pos)
	}
	if got := channelRecords(t, ack, "src", snapshot.KindResultSubpartition); !slices.Equal(got, seq(0, int(pos))) {
		t.Fatalf("output channel state: %d records, want the %d emitted", len(got), pos)
	}
	rs.task.Cancel()
	rs.mustEnd(t, Canceled)
}
