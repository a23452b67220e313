package taskexec

import (
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/snapshot"
)

// finishedEntry is the entry of operator id at parallelism len(finished):
// old subtask i finished iff finished[i].
func finishedEntry(id string, finished ...bool) *snapshot.OperatorState {
	os := &snapshot.OperatorState{ID: id, Parallelism: len(finished)}
	for i, f := range finished {
		os.Subtasks = append(os.Subtasks, snapshot.SubtaskState{Subtask: i, Finished: f})
	}
	return os
}

func TestFinishedOnRestoreDecision(t *testing.T) {
	state := []snapshot.StateObject{{Kind: snapshot.KindOperator, StateHandle: snapshot.StateHandle{Inline: []byte{}}}}
	withState := func(os *snapshot.OperatorState, i int) *snapshot.OperatorState {
		os.Subtasks[i].State = state
		return os
	}
	chain := []string{"src", "map"}
	for _, tc := range []struct {
		name        string
		ops         map[string]*snapshot.OperatorState // nil: no restore
		subtask, p  int
		want        bool
		wantErr     string
		noneRestore bool
	}{
		{name: "no restore", noneRestore: true, p: 2},
		{name: "no entries", ops: map[string]*snapshot.OperatorState{}, p: 2},
		{name: "same parallelism, this subtask finished", ops: map[string]*snapshot.OperatorState{
			"src": finishedEntry("src", true, false), "map": finishedEntry("map", true, false)}, subtask: 0, p: 2, want: true},
		{name: "same parallelism, another subtask finished", ops: map[string]*snapshot.OperatorState{
			"src": finishedEntry("src", true, false), "map": finishedEntry("map", true, false)}, subtask: 1, p: 2},
		{name: "operator without entry does not count", ops: map[string]*snapshot.OperatorState{
			"src": finishedEntry("src", false, true)}, subtask: 1, p: 2, want: true},
		{name: "entry of an operator not in the chain is ignored", ops: map[string]*snapshot.OperatorState{
			"src": finishedEntry("src", true), "gone": finishedEntry("gone", false)}, p: 1, want: true},
		{name: "unfinished subtask with state", ops: map[string]*snapshot.OperatorState{
			"src": withState(finishedEntry("src", false, true), 0)}, subtask: 0, p: 2},
		{name: "another finished subtask's state is not ours", ops: map[string]*snapshot.OperatorState{
			"src": withState(finishedEntry("src", false, true), 1)}, subtask: 0, p: 2},
		{name: "rescaled, all finished", ops: map[string]*snapshot.OperatorState{
			"src": finishedEntry("src", true, true)}, subtask: 2, p: 3, want: true},
		{name: "rescaled, none finished", ops: map[string]*snapshot.OperatorState{
			"src": finishedEntry("src", false, false)}, subtask: 0, p: 1},
		{name: "rescaled, partially finished", ops: map[string]*snapshot.OperatorState{
			"src": finishedEntry("src", true, false)}, subtask: 0, p: 3,
			wantErr: `operator "src" is partially finished (1 of 2 subtasks finished) and cannot be rescaled from parallelism 2 to 3`},
		{name: "rescaled, partially finished, later operator", ops: map[string]*snapshot.OperatorState{
			"src": finishedEntry("src", false, false, false), "map": finishedEntry("map", false, true, true)}, subtask: 0, p: 1,
			wantErr: `operator "map" is partially finished (2 of 3 subtasks finished) and cannot be rescaled from parallelism 3 to 1`},
		{name: "mixed chain", ops: map[string]*snapshot.OperatorState{
			"src": finishedEntry("src", true), "map": finishedEntry("map", false)}, p: 1,
			wantErr: `the chain mixes finished operators ("src") with unfinished ones ("map"); only a whole chain can be restored as finished (was the job's chaining changed?)`},
		{name: "finished with state", ops: map[string]*snapshot.OperatorState{
			"src": withState(finishedEntry("src", false, true), 1)}, subtask: 1, p: 2,
			wantErr: `operator "src": old subtask 1 is marked finished but holds 1 state objects; a finished subtask has no state to restore`},
		{name: "rescaled, all finished, one with state", ops: map[string]*snapshot.OperatorState{
			"src": withState(finishedEntry("src", true, true), 1)}, subtask: 0, p: 1,
			wantErr: `operator "src": old subtask 1 is marked finished but holds 1 state objects; a finished subtask has no state to restore`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r *snapshot.TaskRestore
			if !tc.noneRestore {
				r = &snapshot.TaskRestore{CheckpointID: restoreID, Operators: tc.ops}
			}
			got, err := finishedOnRestore(r, chain, tc.subtask, tc.p)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("got %t, %v\nwant error %s", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %t, %v; want %t", got, err, tc.want)
			}
		})
	}
}

// pollAll reads g until io.EOF: the event types, and "record" per buffer.
func pollAll(t *testing.T, g *network.InputGate) []string {
	t.Helper()
	var got []string
	deadline := time.After(10 * time.Second)
	for {
		boe, ok, err := g.PollNext()
		switch {
		case err == io.EOF:
			return got
		case err != nil:
			t.Fatalf("PollNext: %v (after %v)", err, got)
		case !ok:
			select {
			case <-g.Available():
			case <-deadline:
				t.Fatalf("no EndOfPartition; got %v", got)
			}
		case boe.IsEvent:
			got = append(got, boe.Event.Type.String())
		default:
			got = append(got, "buffer")
			boe.Buffer.Recycle()
		}
	}
}

// A source chain whose subtask finished before the checkpoint neither
// opens nor polls its operators when restored: it reports RUNNING, sends
// EndOfData then EndOfPartition and nothing else, and FINISHES.
func TestFinishedOnRestoreSource(t *testing.T) {
	job := "finished-source"
	reset(job + "-src")
	reset(job + "-map")
	m := newManager(t)
	v := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "src", "test-count", map[string]any{"name": job + "-src", "count": 10}),
		opJSON(t, "map", "test-map", map[string]any{"name": job + "-map"}, jobgraph.Input{From: "src", Partition: jobgraph.Forward}),
	}}
	down := &vertex{index: 1, par: 1, managers: []*network.Manager{m}}
	e := edge{from: v, to: down, partition: jobgraph.Forward, consumer: "sink", producer: "map"}
	g, err := m.CreateInputGate([]network.ChannelSpec{{Partition: network.PartitionID(pid(job, 0, 0, 0)), ProducerAddress: m.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	r := &snapshot.TaskRestore{CheckpointID: restoreID, Operators: map[string]*snapshot.OperatorState{
		"src": finishedEntry("src", true), "map": finishedEntry("map", true),
	}}
	var running atomic.Bool
	res := startEnv(t, withRestore(t, descriptors(job, v, nil, []edge{e}, nil)[0], r),
		Env{Network: m, Logger: zap.NewNop(), OnRunning: func() { running.Store(true) }})
	if got, want := pollAll(t, g), []string{"EndOfData", "EndOfPartition"}; !slices.Equal(got, want) {
		t.Errorf("downstream got %v, want %v", got, want)
	}
	if got := res.wait(t); got.State != Finished {
		t.Fatalf("result %s %v", got.State, got.Err)
	}
	if !running.Load() {
		t.Error("RUNNING not reported")
	}
	for _, n := range []string{job + "-src", job + "-map"} {
		if c := closeCounter(n).Load(); c != 0 {
			t.Errorf("%s closed %d times, want never opened", n, c)
		}
	}
	if n := res.task.RecordsOut(); n != 0 {
		t.Errorf("records out %d", n)
	}
}

// Of a source at parallelism 2, subtask 0 finished before the checkpoint
// and subtask 1 did not. On restore subtask 0 finishes at once while the
// downstream task keeps running, and the downstream task gets its
// EndOfPartition: it finishes when subtask 1 ends, with exactly subtask
// 1's records.
func TestFinishedOnRestoreDownstreamKeepsRunning(t *testing.T) {
	job := "finished-downstream"
	drip, sinkName := job+"-drip", job+"-sink"
	reset(drip, sinkName)
	m := newManager(t)
	src := &vertex{index: 0, par: 2, managers: []*network.Manager{m, m}, ops: [][]byte{
		opJSON(t, "drip", "test-trickle", map[string]any{"name": drip}),
	}}
	sink := &vertex{index: 1, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "out", "test-sink", map[string]any{"name": sinkName}, jobgraph.Input{From: "drip", Partition: jobgraph.Rebalance}),
	}}
	e := edge{from: src, to: sink, partition: jobgraph.Rebalance, consumer: "out", producer: "drip"}
	r := &snapshot.TaskRestore{CheckpointID: restoreID, Operators: map[string]*snapshot.OperatorState{
		"drip": finishedEntry("drip", true, false),
	}}
	env := Env{Network: m, Logger: zap.NewNop()}
	rs := startEnv(t, descriptors(job, sink, []edge{e}, nil, nil)[0], env)
	var srcs []*running
	for _, d := range descriptors(job, src, nil, []edge{e}, nil) {
		srcs = append(srcs, startEnv(t, withRestore(t, d, r), env))
	}
	if res := srcs[0].wait(t); res.State != Finished {
		t.Fatalf("subtask 0: %s %v", res.State, res.Err)
	}
	select {
	case res := <-rs.result:
		t.Fatalf("downstream ended (%s %v) while subtask 1 runs", res.State, res.Err)
	case <-srcs[1].result:
		t.Fatal("subtask 1 ended before its input did")
	default:
	}
	for _, v := range []int64{1, 2, -1} {
		feed(drip) <- v
	}
	waitAll(t, []*running{srcs[1], rs})
	if got, want := jsons(store(sinkName).snapshot()), []string{`{"n":1}`, `{"n":2}`}; !slices.Equal(got, want) {
		t.Errorf("downstream got %v, want %v", got, want)
	}
}

// A subtask that had not finished restores as before (its state, then its
// records), next to a finished one that emits nothing and opens nothing.
func TestFinishedOnRestoreOtherSubtaskRestores(t *testing.T) {
	job := "finished-other"
	reset(job)
	resumeSources.Delete(job)
	m := newManager(t)
	v := &vertex{index: 0, par: 2, managers: []*network.Manager{m, m}, ops: [][]byte{
		opJSON(t, "seq", "test-resume", map[string]any{"name": job, "count": 8}),
		opJSON(t, "out", "test-sink", map[string]any{"name": job}, jobgraph.Input{From: "seq", Partition: jobgraph.Forward}),
	}}
	st, err := snapshot.Open("jobmanager", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	loc, err := st.CheckpointLocation(job, restoreID)
	if err != nil {
		t.Fatal(err)
	}
	o, err := writeItems(t.Context(), loc, "seq", [][]byte{[]byte("s1=5")})
	if err != nil {
		t.Fatal(err)
	}
	seq := finishedEntry("seq", true, false)
	seq.Type = "test-resume"
	seq.Subtasks[1].State = []snapshot.StateObject{o}
	r := &snapshot.TaskRestore{CheckpointID: restoreID, Location: loc.Path(), Operators: map[string]*snapshot.OperatorState{
		"seq": seq, "out": finishedEntry("out", true, false),
	}}
	var rs []*running
	for _, d := range descriptors(job, v, nil, nil, nil) {
		rs = append(rs, startEnv(t, withRestore(t, d, r), Env{Network: m, Logger: zap.NewNop()}))
	}
	waitAll(t, rs)
	var got []string
	for _, c := range store(job).snapshot() {
		got = append(got, fmt.Sprintf("%d %s", c.Subtask, c.JSON))
	}
	if want := []string{`1 {"n":5}`, `1 {"n":6}`, `1 {"n":7}`}; !slices.Equal(got, want) {
		t.Errorf("sink got %v, want %v", got, want)
	}
	if n := store(job).closed.Load(); n != 1 {
		t.Errorf("sink closed %d times, want once (subtask 1)", n)
	}
}

// A source of which one of two subtasks finished cannot be rescaled: every
// new subtask fails naming the operator, before opening anything. When
// both had finished, every new subtask is finished on restore.
func TestFinishedOnRestoreRescale(t *testing.T) {
	for _, tc := range []struct {
		name     string
		finished []bool
		want     func(subtask int) string // "" for FINISHED
	}{
		{"partially finished", []bool{true, false}, func(s int) string {
			return fmt.Sprintf(`restore subtask %d from checkpoint 7: operator "src" is partially finished (1 of 2 subtasks finished) and cannot be rescaled from parallelism 2 to 3`, s)
		}},
		{"all finished", []bool{true, true}, func(int) string { return "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := "finished-rescale-" + tc.name
			ckptLogs.Delete(job)
			m := newManager(t)
			r := &snapshot.TaskRestore{CheckpointID: restoreID, Operators: map[string]*snapshot.OperatorState{
				"src": finishedEntry("src", tc.finished...), "c": finishedEntry("c", tc.finished...),
			}}
			for s, res := range runRestored(t, job, restoredVertex(t, m, job, 3, nil), r) {
				want := tc.want(s)
				switch {
				case want == "" && res.State != Finished:
					t.Errorf("subtask %d: %s %v, want FINISHED", s, res.State, res.Err)
				case want != "" && (res.State != Failed || res.Err == nil || res.Err.Error() != want):
					t.Errorf("subtask %d: %s %v\nwant FAILED %s", s, res.State, res.Err, want)
				}
			}
			if ev := ckptLogOf(job).eventList(); len(ev) != 0 {
				t.Errorf("operator events %v, want none", ev)
			}
		})
	}
}

// A task with inputs finished on restore drains them: it drops the
// records of a producer that still runs, forwards its barrier and
// acknowledges the checkpoint as finished without operator state, and
// finishes once the producer's EndOfPartition came; the producer is never
// blocked.
func TestFinishedOnRestoreDrainsInputs(t *testing.T) {
	job := "finished-drain"
	drip := job + "-drip"
	reset(drip)
	ckptLogs.Delete(job)
	m := newManager(t)
	src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "drip", "test-trickle", map[string]any{"name": drip}),
	}}
	k := &vertex{index: 1, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "k", "test-ckpt", map[string]any{"name": job}, jobgraph.Input{From: "drip", Partition: jobgraph.Forward}),
	}}
	down := &vertex{index: 2, par: 1, managers: []*network.Manager{m}}
	e := edge{from: src, to: k, partition: jobgraph.Forward, consumer: "k", producer: "drip"}
	out := edge{from: k, to: down, partition: jobgraph.Forward, consumer: "next", producer: "k"}
	g, err := m.CreateInputGate([]network.ChannelSpec{{Partition: network.PartitionID(pid(job, 1, 0, 0)), ProducerAddress: m.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	cfg := ckptConfig("EXACTLY_ONCE")
	resp := &fakeResponder{}
	env := Env{Network: m, Logger: zap.NewNop(), Responder: resp}
	r := &snapshot.TaskRestore{CheckpointID: restoreID, Operators: map[string]*snapshot.OperatorState{"k": finishedEntry("k", true)}}
	rk := startEnv(t, withRestore(t, descriptors(job, k, []edge{e}, []edge{out}, cfg)[0], r), env)
	rs := startEnv(t, descriptors(job, src, nil, []edge{e}, cfg)[0], env)
	feed(drip) <- 1
	feed(drip) <- 2
	waitUntil(t, "records sent", func() bool { return rs.task.RecordsOut() == 2 })
	if err := rs.task.TriggerCheckpoint(8, 0, CheckpointOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "both acks", func() bool { return resp.ackOf(0, 8) != nil && resp.ackOf(1, 8) != nil })
	feed(drip) <- -1
	waitAll(t, []*running{rs, rk})

	if got, want := pollAll(t, g), []string{"EndOfData", "CheckpointBarrier", "EndOfPartition"}; !slices.Equal(got, want) {
		t.Errorf("downstream got %v, want %v", got, want)
	}
	ack := resp.ackOf(1, 8)
	ts, err := snapshot.DecodeTaskState(ack.GetState())
	if err != nil {
		t.Fatal(err)
	}
	if !ack.GetFinished() || len(ts.Operators) != 0 {
		t.Errorf("ack of the finished task: finished %t, operators %v; want finished without state", ack.GetFinished(), ts.Operators)
	}
	if resp.ackOf(0, 8).GetFinished() {
		t.Error("the producer's ack is marked finished")
	}
	if ev := ckptLogOf(job).eventList(); len(ev) != 0 {
		t.Errorf("operator events %v, want none", ev)
	}
	if rk.task.dropped != 2 {
		t.Errorf("dropped %d records, want 2", rk.task.dropped)
	}
}
