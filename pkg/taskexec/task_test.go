package taskexec

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/pkg/state"
	"github.com/weirstream/weir/proto/weirpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const maxP = 128

func newManager(t testing.TB) *network.Manager {
	t.Helper()
	m, err := network.NewManager(network.DefaultConfig(), zap.NewNop())
	if err != nil {
		t.Fatalf("network.NewManager: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func opJSON(t testing.TB, id, typ string, props map[string]any, inputs ...jobgraph.Input) []byte {
	t.Helper()
	b, err := json.Marshal(&jobgraph.Operator{ID: id, Type: typ, Properties: operator.Properties(props), Inputs: inputs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vertex describes a job vertex of a test job: its chain and where its
// subtasks run.
type vertex struct {
	index    int
	ops      [][]byte
	par      int
	managers []*network.Manager // per subtask
}

func pid(job string, v, subtask, out int) string {
	return fmt.Sprintf("%s/v%d-s%d-o%d", job, v, subtask, out)
}

// edge connects producer vertex from (output index out) to consumer to.
type edge struct {
	from, to  *vertex
	out       int
	partition string
	key       string
	consumer  string // head operator id of to
	producer  string // tail operator id of from
}

func descriptors(job string, v *vertex, ins, outs []edge, cfg map[string]string) []*weirpb.TaskDeploymentDescriptor {
	var ds []*weirpb.TaskDeploymentDescriptor
	for s := 0; s < v.par; s++ {
		d := &weirpb.TaskDeploymentDescriptor{
			Execution:      &weirpb.ExecutionAttemptID{JobId: job, Vertex: int32(v.index), Subtask: int32(s)},
			JobName:        "test",
			Parallelism:    int32(v.par),
			MaxParallelism: maxP,
			Operators:      v.ops,
			Config:         cfg,
		}
		for i, e := range ins {
			in := &weirpb.InputGateDeploymentDescriptor{InputIndex: int32(i), ProducerOperator: e.producer, Partition: e.partition}
			for ps := 0; ps < e.from.par; ps++ {
				if e.partition == jobgraph.Forward && ps != s {
					continue
				}
				sub := s
				if e.partition == jobgraph.Forward {
					sub = 0
				}
				in.Channels = append(in.Channels, &weirpb.InputChannelDeploymentDescriptor{
					PartitionId:         pid(job, e.from.index, ps, e.out),
					Subpartition:        int32(sub),
					ProducerDataAddress: e.from.managers[ps].Addr(),
				})
			}
			d.Inputs = append(d.Inputs, in)
		}
		for _, e := range outs {
			n := e.to.par
			if e.partition == jobgraph.Forward {
				n = 1
			}
			d.Outputs = append(d.Outputs, &weirpb.ResultPartitionDeploymentDescriptor{
				PartitionId:      pid(job, v.index, s, e.out),
				ConsumerOperator: e.consumer,
				Partition:        e.partition,
				Key:              e.key,
				NumSubpartitions: int32(n),
			})
		}
		ds = append(ds, d)
	}
	return ds
}

type running struct {
	task   *Task
	result chan Result
}

func start(t testing.TB, d *weirpb.TaskDeploymentDescriptor, m *network.Manager) *running {
	t.Helper()
	task, err := New(d, Env{Network: m, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r := &running{task: task, result: make(chan Result, 1)}
	go func() { r.result <- task.Run() }()
	return r
}

func (r *running) wait(t testing.TB) Result {
	t.Helper()
	select {
	case res := <-r.result:
		return res
	case <-time.After(10 * time.Second):
		r.task.Cancel()
		<-r.result
		t.Fatalf("task %s[%d] did not end", r.task.Name(), r.task.Execution().GetSubtask())
		return Result{}
	}
}

func waitAll(t testing.TB, rs []*running) {
	t.Helper()
	for _, r := range rs {
		if res := r.wait(t); res.State != Finished {
			t.Fatalf("task %s[%d]: %s %v", r.task.Name(), r.task.Execution().GetSubtask(), res.State, res.Err)
		}
	}
}

func jsons(cs []collected) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.JSON
	}
	return out
}

// source -> map (chained) -forward-> map -> sink: exact output and order,
// end markers from EndInput in chain order, Close on every operator.
func TestChainForwardLocal(t *testing.T) {
	reset("fwd", "fwd-src", "fwd-evens", "fwd-strip")
	job := "fwd"
	m := newManager(t)
	src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "numbers", "test-count", map[string]any{"name": "fwd-src", "count": 10, "keys": 3, "batch": 4}),
		opJSON(t, "evens", "test-map", map[string]any{"name": "fwd-evens", "evens": true, "end-marker": true}, jobgraph.Input{From: "numbers", Partition: jobgraph.Forward}),
	}}
	sink := &vertex{index: 1, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "strip", "test-map", map[string]any{"name": "fwd-strip", "drop-key": true}, jobgraph.Input{From: "evens", Partition: jobgraph.Forward}),
		opJSON(t, "out", "test-sink", map[string]any{"name": "fwd"}, jobgraph.Input{From: "strip", Partition: jobgraph.Forward}),
	}}
	e := edge{from: src, to: sink, partition: jobgraph.Forward, consumer: "strip", producer: "evens"}
	sinkTask := start(t, descriptors(job, sink, []edge{e}, nil, nil)[0], m)
	srcTask := start(t, descriptors(job, src, nil, []edge{e}, nil)[0], m)
	waitAll(t, []*running{srcTask, sinkTask})

	got := jsons(store("fwd").snapshot())
	want := []string{
		`{"n":0,"doubled":0}`,
		`{"n":2,"doubled":4}`,
		`{"n":4,"doubled":8}`,
		`{"n":6,"doubled":12}`,
		`{"n":8,"doubled":16}`,
		`{"end":0,"n":-1,"doubled":-2}`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("sink got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got, want := srcTask.task.RecordsOut(), int64(6); got != want {
		t.Errorf("source task records out = %d, want %d", got, want)
	}
	if got, want := sinkTask.task.RecordsIn(), int64(6); got != want {
		t.Errorf("sink task records in = %d, want %d", got, want)
	}
	for _, name := range []string{"fwd-src", "fwd-evens", "fwd-strip"} {
		if n := closeCounter(name).Load(); n != 1 {
			t.Errorf("%s closed %d times, want 1", name, n)
		}
	}
	if n := store("fwd").closed.Load(); n != 1 {
		t.Errorf("sink closed %d times, want 1", n)
	}
}

// Two TaskManagers (network Managers): sources of parallelism 2 hash by
// "key" into sinks of parallelism 3 spread over both. Every record arrives
// exactly once, on the subtask whose key-group range holds its key.
func TestHashRoutingRemote(t *testing.T) {
	reset("hash")
	job := "hash"
	m1, m2 := newManager(t), newManager(t)
	src := &vertex{index: 0, par: 2, managers: []*network.Manager{m1, m2}, ops: [][]byte{
		opJSON(t, "numbers", "test-count", map[string]any{"count": 500, "keys": 97}),
	}}
	sink := &vertex{index: 1, par: 3, managers: []*network.Manager{m2, m1, m2}, ops: [][]byte{
		opJSON(t, "counted", "test-sink", map[string]any{"name": "hash"}, jobgraph.Input{From: "numbers", Partition: jobgraph.Hash, Key: "key"}),
	}}
	e := edge{from: src, to: sink, partition: jobgraph.Hash, key: "key", consumer: "counted", producer: "numbers"}
	var rs []*running
	for i, d := range descriptors(job, sink, []edge{e}, nil, nil) {
		rs = append(rs, start(t, d, sink.managers[i]))
	}
	for i, d := range descriptors(job, src, nil, []edge{e}, nil) {
		rs = append(rs, start(t, d, src.managers[i]))
	}
	waitAll(t, rs)

	got := store("hash").snapshot()
	var want []string
	for s := 0; s < 2; s++ {
		for i := 0; i < 500; i++ {
			want = append(want, fmt.Sprintf(`{"key":%d,"n":%d}`, (s*1000+i)%97, i))
		}
	}
	gotJSON := jsons(got)
	sort.Strings(gotJSON)
	sort.Strings(want)
	if !slices.Equal(gotJSON, want) {
		t.Fatalf("sinks got %d records, want %d (or contents differ)", len(gotJSON), len(want))
	}
	perSubtask := map[int]int{}
	var dec record.Decoder
	for _, c := range got {
		var r record.Record
		if err := dec.DecodeJSON([]byte(c.JSON), &r); err != nil {
			t.Fatal(err)
		}
		k, _ := r.Get("key")
		kg := state.KeyGroupFor(k, maxP)
		rng := state.KeyGroupRangeForSubtask(maxP, 3, c.Subtask)
		if c.KeyGroups != [2]int{rng.Start, rng.End} {
			t.Fatalf("subtask %d opened with key groups %v, want %v", c.Subtask, c.KeyGroups, rng)
		}
		if !rng.Contains(kg) {
			t.Fatalf("record %s (key group %d) on subtask %d with range %v", c.JSON, kg, c.Subtask, rng)
		}
		perSubtask[c.Subtask]++
	}
	if len(perSubtask) != 3 {
		t.Errorf("records reached subtasks %v, want all 3", perSubtask)
	}
}

// Rebalance spreads round robin starting at the producer's subtask index.
func TestRebalanceRoundRobin(t *testing.T) {
	reset("rebalance")
	job := "rebalance"
	m := newManager(t)
	src := &vertex{index: 0, par: 2, managers: []*network.Manager{m, m}, ops: [][]byte{
		opJSON(t, "numbers", "test-count", map[string]any{"count": 6}),
	}}
	sink := &vertex{index: 1, par: 3, managers: []*network.Manager{m, m, m}, ops: [][]byte{
		opJSON(t, "out", "test-sink", map[string]any{"name": "rebalance"}, jobgraph.Input{From: "numbers", Partition: jobgraph.Rebalance}),
	}}
	e := edge{from: src, to: sink, partition: jobgraph.Rebalance, consumer: "out", producer: "numbers"}
	var rs []*running
	for _, d := range descriptors(job, sink, []edge{e}, nil, nil) {
		rs = append(rs, start(t, d, m))
	}
	for _, d := range descriptors(job, src, nil, []edge{e}, nil) {
		rs = append(rs, start(t, d, m))
	}
	waitAll(t, rs)
	got := map[string]int{}
	for _, c := range store("rebalance").snapshot() {
		got[c.JSON] = c.Subtask
	}
	for s := 0; s < 2; s++ {
		for i := 0; i < 6; i++ {
			j := fmt.Sprintf(`{"key":%d,"n":%d}`, s*1000+i, i)
			if want := (s + i) % 3; got[j] != want {
				t.Errorf("%s on subtask %d, want %d", j, got[j], want)
			}
		}
	}
	if len(got) != 12 {
		t.Errorf("got %d records, want 12", len(got))
	}
}

// An operator error fails the task naming the operator and subtask.
func TestOperatorErrorFailsTask(t *testing.T) {
	reset("fail", "fail-src", "fail-map")
	job := "fail"
	m := newManager(t)
	v := &vertex{index: 0, par: 2, managers: []*network.Manager{m, m}, ops: [][]byte{
		opJSON(t, "numbers", "test-count", map[string]any{"name": "fail-src", "count": 100}),
		opJSON(t, "evens", "test-map", map[string]any{"name": "fail-map", "fail-at": 5}, jobgraph.Input{From: "numbers", Partition: jobgraph.Forward}),
		opJSON(t, "out", "test-sink", map[string]any{"name": "fail"}, jobgraph.Input{From: "evens", Partition: jobgraph.Forward}),
	}}
	r := start(t, descriptors(job, v, nil, nil, nil)[1], m)
	res := r.wait(t)
	if res.State != Failed {
		t.Fatalf("state %s, want FAILED", res.State)
	}
	if got, want := res.Err.Error(), `operator "evens"[1]: boom at 5`; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	if got := len(store("fail").snapshot()); got != 5 {
		t.Errorf("sink got %d records before the failure, want 5", got)
	}
	if closeCounter("fail-src").Load() != 1 || closeCounter("fail-map").Load() != 1 || store("fail").closed.Load() != 1 {
		t.Errorf("not every operator closed once after the failure")
	}
}

// A record without the hash key fails the task with the record in the message.
func TestMissingHashKey(t *testing.T) {
	job := "nokey"
	m := newManager(t)
	src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "numbers", "test-count", map[string]any{"count": 3}),
		opJSON(t, "strip", "test-map", map[string]any{"drop-key": true}, jobgraph.Input{From: "numbers", Partition: jobgraph.Forward}),
	}}
	sink := &vertex{index: 1, par: 2, managers: []*network.Manager{m, m}}
	e := edge{from: src, to: sink, partition: jobgraph.Hash, key: "key", consumer: "counted", producer: "strip"}
	res := start(t, descriptors(job, src, nil, []edge{e}, nil)[0], m).wait(t)
	if res.State != Failed {
		t.Fatalf("state %s, want FAILED", res.State)
	}
	if got, want := res.Err.Error(), `operator "counted": record has no key field "key": {"n":0,"doubled":0}`; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
}

// A source blocked on backpressure (nobody consumes its partition) is
// interrupted by Cancel and reports CANCELED after closing its operators.
func TestCancelBlockedOnBackpressure(t *testing.T) {
	reset("cancel-src")
	job := "cancel"
	m := newManager(t)
	src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "numbers", "test-count", map[string]any{"name": "cancel-src", "count": -1}),
	}}
	sink := &vertex{index: 1, par: 1, managers: []*network.Manager{m}}
	e := edge{from: src, to: sink, partition: jobgraph.Forward, consumer: "out", producer: "numbers"}
	r := start(t, descriptors(job, src, nil, []edge{e}, nil)[0], m)
	// Wait until the task is stuck: its counter stops moving once the
	// partition's pool is exhausted.
	deadline := time.Now().Add(5 * time.Second)
	last, stable := int64(-1), 0
	for stable < 5 {
		if time.Now().After(deadline) {
			t.Fatal("source never blocked on backpressure")
		}
		n := r.task.RecordsOut()
		if n > 0 && n == last {
			stable++
		} else {
			stable = 0
		}
		last = n
		time.Sleep(20 * time.Millisecond)
	}
	r.task.Cancel()
	res := r.wait(t)
	if res.State != Canceled || res.Err != nil {
		t.Fatalf("result %s %v, want CANCELED", res.State, res.Err)
	}
	if n := closeCounter("cancel-src").Load(); n != 1 {
		t.Errorf("source closed %d times, want 1", n)
	}
	if err := r.task.Execute(func() error { return nil }); err != ErrNotRunning {
		t.Errorf("Execute after the end = %v, want ErrNotRunning", err)
	}
}

// A consumer waiting for input is canceled too.
func TestCancelIdleConsumer(t *testing.T) {
	reset("cancel-idle")
	job := "cancel-idle"
	m := newManager(t)
	src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}}
	sink := &vertex{index: 1, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "out", "test-sink", map[string]any{"name": "cancel-idle"}, jobgraph.Input{From: "numbers", Partition: jobgraph.Forward}),
	}}
	e := edge{from: src, to: sink, partition: jobgraph.Forward, consumer: "out", producer: "numbers"}
	r := start(t, descriptors(job, sink, []edge{e}, nil, nil)[0], m)
	r.task.Cancel()
	if res := r.wait(t); res.State != Canceled {
		t.Fatalf("result %s %v, want CANCELED", res.State, res.Err)
	}
}

// With a buffer timeout, a slow trickle of records still reaches the
// consumer one by one: the task goroutine flushes on the timer while its
// source has nothing to emit.
func TestBufferTimeoutFlushesTrickle(t *testing.T) {
	reset("trickle")
	job := "trickle"
	m1, m2 := newManager(t), newManager(t)
	src := &vertex{index: 0, par: 1, managers: []*network.Manager{m1}, ops: [][]byte{
		opJSON(t, "drip", "test-trickle", map[string]any{"name": "trickle"}),
	}}
	sink := &vertex{index: 1, par: 1, managers: []*network.Manager{m2}, ops: [][]byte{
		opJSON(t, "out", "test-sink", map[string]any{"name": "trickle"}, jobgraph.Input{From: "drip", Partition: jobgraph.Forward}),
	}}
	cfg := map[string]string{"execution.buffer-timeout": "10ms"}
	e := edge{from: src, to: sink, partition: jobgraph.Forward, consumer: "out", producer: "drip"}
	rs := []*running{
		start(t, descriptors(job, sink, []edge{e}, nil, cfg)[0], m2),
		start(t, descriptors(job, src, nil, []edge{e}, cfg)[0], m1),
	}
	in := feed("trickle")
	for i := 0; i < 5; i++ {
		in <- int64(i)
		deadline := time.Now().Add(5 * time.Second)
		for len(store("trickle").snapshot()) < i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("record %d not delivered by the buffer timeout", i)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	in <- -1
	waitAll(t, rs)
	want := []string{`{"n":0}`, `{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`}
	if got := jsons(store("trickle").snapshot()); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// Mailbox actions run in the task goroutine between records.
func TestExecuteRunsInTaskLoop(t *testing.T) {
	reset("mailbox")
	job := "mailbox"
	m := newManager(t)
	v := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "drip", "test-trickle", map[string]any{"name": "mailbox"}),
		opJSON(t, "out", "test-sink", map[string]any{"name": "mailbox"}, jobgraph.Input{From: "drip", Partition: jobgraph.Forward}),
	}}
	r := start(t, descriptors(job, v, nil, nil, nil)[0], m)
	done := make(chan int, 1)
	// Execute may come before the loop runs: it is queued either way.
	if err := r.task.Execute(func() error { done <- len(store("mailbox").snapshot()); return nil }); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-done:
		if n != 0 {
			t.Errorf("action saw %d records, want 0", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("action never ran")
	}
	if err := r.task.Execute(func() error { return fmt.Errorf("no snapshot") }); err != nil {
		t.Fatal(err)
	}
	res := r.wait(t)
	if res.State != Failed || res.Err.Error() != "control action: no snapshot" {
		t.Fatalf("result %s %v, want FAILED control action: no snapshot", res.State, res.Err)
	}
}

func TestNewRejectsBadDescriptors(t *testing.T) {
	m := newManager(t)
	good := func() *weirpb.TaskDeploymentDescriptor {
		return &weirpb.TaskDeploymentDescriptor{
			Execution:      &weirpb.ExecutionAttemptID{JobId: "j", Subtask: 0},
			Parallelism:    1,
			MaxParallelism: maxP,
			Operators:      [][]byte{opJSON(t, "numbers", "test-count", nil)},
			Outputs: []*weirpb.ResultPartitionDeploymentDescriptor{
				{PartitionId: "j/p", ConsumerOperator: "c", Partition: jobgraph.Hash, Key: "key", NumSubpartitions: 2},
			},
		}
	}
	if _, err := New(good(), Env{Network: m}); err != nil {
		t.Fatalf("good descriptor rejected: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(d *weirpb.TaskDeploymentDescriptor)
		want   string
	}{
		{"no execution", func(d *weirpb.TaskDeploymentDescriptor) { d.Execution = nil }, "execution: missing"},
		{"subtask", func(d *weirpb.TaskDeploymentDescriptor) { d.Execution.Subtask = 1 }, "execution.subtask: 1 is outside [0, parallelism 1)"},
		{"no operators", func(d *weirpb.TaskDeploymentDescriptor) { d.Operators = nil }, "operators: empty"},
		{"bad json", func(d *weirpb.TaskDeploymentDescriptor) { d.Operators = [][]byte{[]byte("{")} }, "operator 0 of the chain: invalid JSON: unexpected end of JSON input"},
		{"unknown type", func(d *weirpb.TaskDeploymentDescriptor) {
			d.Operators = [][]byte{opJSON(t, "x", "nope", nil)}
		}, `operator "x": unknown type "nope"`},
		{"bad property", func(d *weirpb.TaskDeploymentDescriptor) {
			d.Operators = [][]byte{opJSON(t, "numbers", "test-count", map[string]any{"count": "many"})}
		}, `operator "numbers": property "count"`},
		{"source not head", func(d *weirpb.TaskDeploymentDescriptor) {
			d.Operators = append(d.Operators, opJSON(t, "again", "test-count", nil))
		}, `operator "again": a source (type "test-count") can only head a chain`},
		{"hash without key", func(d *weirpb.TaskDeploymentDescriptor) { d.Outputs[0].Key = "" }, `outputs[0] (to "c"): hash partition without a key`},
		{"partitioning", func(d *weirpb.TaskDeploymentDescriptor) { d.Outputs[0].Partition = "random" }, `outputs[0] (to "c"): unknown partition "random"`},
		{"config", func(d *weirpb.TaskDeploymentDescriptor) {
			d.Config = map[string]string{"execution.buffer-timeout": "soon"}
		}, `job configuration: `},
		{"transform head without inputs", func(d *weirpb.TaskDeploymentDescriptor) {
			d.Operators = [][]byte{opJSON(t, "m", "test-map", nil)}
		}, `operator "m": the head of a chain that is not a source needs inputs`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := good()
			tc.mutate(d)
			_, err := New(d, Env{Network: m})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("New() error = %v, want prefix %q", err, tc.want)
			}
		})
	}
}

// source -> map -hash-> sink through the runtime, on one Manager. Reports
// records/s and allocs/record (allocs/op of one record).
func BenchmarkSourceMapHashSink(b *testing.B) {
	m := newManager(b)
	n := b.N
	job := fmt.Sprintf("bench-%d", n)
	src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(b, "numbers", "test-count", map[string]any{"count": n, "keys": 1000, "batch": 256}),
		opJSON(b, "double", "test-map", nil, jobgraph.Input{From: "numbers", Partition: jobgraph.Forward}),
	}}
	sink := &vertex{index: 1, par: 2, managers: []*network.Manager{m, m}, ops: [][]byte{
		opJSON(b, "out", "test-discard", nil, jobgraph.Input{From: "double", Partition: jobgraph.Hash, Key: "key"}),
	}}
	e := edge{from: src, to: sink, partition: jobgraph.Hash, key: "key", consumer: "out", producer: "double"}
	var rs []*running
	b.ReportAllocs()
	b.ResetTimer()
	for _, d := range descriptors(job, sink, []edge{e}, nil, nil) {
		rs = append(rs, start(b, d, m))
	}
	rs = append(rs, start(b, descriptors(job, src, nil, []edge{e}, nil)[0], m))
	waitAll(b, rs)
	b.StopTimer()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
