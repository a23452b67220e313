package taskexec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/pkg/state"
	"github.com/weirstream/weir/proto/weirpb"
)

func startEnv(t testing.TB, d *weirpb.TaskDeploymentDescriptor, env Env) *running {
	t.Helper()
	task, err := New(d, env)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r := &running{task: task, result: make(chan Result, 1)}
	go func() { r.result <- task.Run() }()
	return r
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// gaugeValue returns the value of gauge name for the task named operator.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name, operator string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "task_name" && l.GetValue() == operator {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

func has(list []string, s string) bool { return slices.Contains(list, s) }

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// itemsOf decodes the operator-state items an acknowledgement holds for op.
func itemsOf(t *testing.T, ack *weirpb.AcknowledgeCheckpointRequest, op string) []string {
	t.Helper()
	ts, err := snapshot.DecodeTaskState(ack.GetState())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range ts.Operators[op] {
		if o.Kind != snapshot.KindOperator {
			continue
		}
		if !o.IsInline() {
			t.Fatalf("state of %s is in file %s, want inline", op, o.Path)
		}
		items, err := DecodeOperatorItems(bytes.NewReader(o.Inline))
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			out = append(out, string(it))
		}
	}
	return out
}

func ckptConfig(mode string) map[string]string {
	return map[string]string{
		"execution.buffer-timeout":         "0",
		"execution.checkpointing.interval": "1 h", // triggered by the test
		"execution.checkpointing.mode":     mode,
	}
}

// Two producers send barriers to a two-input task over real partitions.
// Exactly-once: the channel whose barrier came first is blocked, so the
// consumer's snapshot holds exactly the records before the barrier on each
// channel and the records after it are processed after the snapshot; the
// barrier is forwarded and every task acknowledges, the consumer with its
// alignment time. At-least-once: nothing is blocked, and the records that
// followed the first barrier are in the snapshot.
func TestTwoInputAlignment(t *testing.T) {
	for _, mode := range []string{"EXACTLY_ONCE", "AT_LEAST_ONCE"} {
		t.Run(mode, func(t *testing.T) { testTwoInputAlignment(t, mode) })
	}
}

func testTwoInputAlignment(t *testing.T, mode string) {
	job := "align-" + strings.ToLower(mode)
	fa, fb, sinkName := job+"-a", job+"-b", job+"-sink"
	reset(fa, fb)
	ckptLogs.Delete(sinkName)
	m := newManager(t)
	a := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "a", "test-trickle", map[string]any{"name": fa}),
	}}
	b := &vertex{index: 1, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "b", "test-trickle", map[string]any{"name": fb}),
	}}
	c := &vertex{index: 2, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "join", "test-ckpt", map[string]any{"name": sinkName},
			jobgraph.Input{From: "a", Partition: jobgraph.Forward}, jobgraph.Input{From: "b", Partition: jobgraph.Forward}),
	}}
	ea := edge{from: a, to: c, partition: jobgraph.Forward, consumer: "join", producer: "a"}
	eb := edge{from: b, to: c, partition: jobgraph.Forward, consumer: "join", producer: "b"}
	cfg := ckptConfig(mode)
	resp := &fakeResponder{}
	clock := &fakeClock{}
	t0 := time.Unix(1_700_000_000, 0)
	clock.set(t0)
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg, "tm-1")
	if err != nil {
		t.Fatal(err)
	}
	env := Env{Network: m, Logger: zap.NewNop(), Responder: resp, Now: clock.Now, Metrics: metrics}
	rc := startEnv(t, descriptors(job, c, []edge{ea, eb}, nil, cfg)[0], env)
	ra := startEnv(t, descriptors(job, a, nil, []edge{ea}, cfg)[0], env)
	rb := startEnv(t, descriptors(job, b, nil, []edge{eb}, cfg)[0], env)
	sink := ckptLogOf(sinkName)
	if got := sink.eventList(); len(got) == 0 {
		waitUntil(t, "open", func() bool { return len(sink.eventList()) > 0 })
	}
	if ev := sink.eventList()[0]; ev != fmt.Sprintf("open checkpointing=true exactly-once=%t", mode == "EXACTLY_ONCE") {
		t.Errorf("operator context: %s", ev)
	}

	in := func(name string, vs ...int64) {
		for _, v := range vs {
			feed(name) <- v
		}
	}
	n := func(v int) string { return fmt.Sprintf(`{"n":%d}`, v) }
	in(fa, 1, 2)
	in(fb, 101, 102)
	waitUntil(t, "4 records", func() bool { return len(sink.records()) == 4 })

	// Barrier 1 from a, then more records on both channels.
	if err := ra.task.TriggerCheckpoint(1, 5000, CheckpointOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a's ack", func() bool { return resp.ackOf(0, 1) != nil })
	in(fa, 3, 4)
	in(fb, 103)
	aPart := ra.task.partitions[0]
	if mode == "EXACTLY_ONCE" {
		// a's channel is blocked: its two records stay in a's queue.
		waitUntil(t, "a's channel blocked with 2 buffers", func() bool {
			return aPart.Backlog(0) == 2 && has(sink.records(), n(103))
		})
	} else {
		waitUntil(t, "all records", func() bool { return len(sink.records()) == 7 })
	}
	clock.set(t0.Add(250 * time.Millisecond))
	if err := rb.task.TriggerCheckpoint(1, 5000, CheckpointOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the consumer's ack", func() bool { return resp.ackOf(2, 1) != nil })

	pre := []string{n(1), n(2), n(101), n(102), n(103)}
	if mode == "AT_LEAST_ONCE" {
		pre = append(pre, n(3), n(4))
	}
	snap, _ := sink.snapshotOf(1)
	if !slices.Equal(sorted(snap), sorted(pre)) {
		t.Fatalf("snapshot 1 saw %v, want %v", snap, pre)
	}
	waitUntil(t, "all records", func() bool { return len(sink.records()) == 7 })
	if mode == "EXACTLY_ONCE" {
		if got := sink.records()[5:]; !slices.Equal(got, []string{n(3), n(4)}) {
			t.Fatalf("records after the snapshot: %v, want 3 and 4", got)
		}
	}
	ack := resp.ackOf(2, 1)
	if got := itemsOf(t, ack, "join"); !slices.Equal(sorted(got), sorted(pre)) {
		t.Errorf("acknowledged items %v, want %v", got, pre)
	}
	wantAlign := int64(250)
	if got := ack.GetAlignmentMs(); got != wantAlign {
		t.Errorf("alignment %d ms, want %d", got, wantAlign)
	}
	if ack.GetStateSize() == 0 || ack.GetFinished() {
		t.Errorf("ack size %d finished %t", ack.GetStateSize(), ack.GetFinished())
	}
	if g := gaugeValue(t, reg, "weir_task_checkpoint_alignment_seconds", "join"); g != 0.25 {
		t.Errorf("alignment gauge %v, want 0.25", g)
	}
	waitUntil(t, "bytes gauge", func() bool {
		return gaugeValue(t, reg, "weir_task_checkpoint_size_bytes", "join") == float64(ack.GetStateSize())
	})

	// The sources have no state: empty acknowledgements.
	for _, v := range []int32{0, 1} {
		ts, err := snapshot.DecodeTaskState(resp.ackOf(v, 1).GetState())
		if err != nil || len(ts.Operators) != 0 {
			t.Errorf("source %d state %+v %v", v, ts, err)
		}
	}

	// Notifications reach the listener in the task goroutine.
	if err := rc.task.NotifyCheckpointComplete(1); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "notification", func() bool { return has(sink.eventList(), "complete 1") })
	in(fa, -1)
	in(fb, -1)
	waitAll(t, []*running{ra, rb, rc})
	if d := resp.declineList(); len(d) != 0 {
		t.Errorf("declines: %v", d)
	}
}

// A newer barrier while an older checkpoint aligns declines the older one
// (subsumed) and forwards a cancel marker for it; the newer one completes.
// An abort notification during alignment unblocks and cancels downstream.
func TestAlignmentSubsumedAndAborted(t *testing.T) {
	job := "subsume"
	fa, fb := job+"-a", job+"-b"
	reset(fa, fb)
	for _, l := range []string{job + "-mid", job + "-down"} {
		ckptLogs.Delete(l)
	}
	m := newManager(t)
	a := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{opJSON(t, "a", "test-trickle", map[string]any{"name": fa})}}
	b := &vertex{index: 1, par: 1, managers: []*network.Manager{m}, ops: [][]byte{opJSON(t, "b", "test-trickle", map[string]any{"name": fb})}}
	mid := &vertex{index: 2, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "mid", "test-ckpt", map[string]any{"name": job + "-mid"},
			jobgraph.Input{From: "a", Partition: jobgraph.Forward}, jobgraph.Input{From: "b", Partition: jobgraph.Forward}),
	}}
	down := &vertex{index: 3, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "down", "test-ckpt", map[string]any{"name": job + "-down"}, jobgraph.Input{From: "mid", Partition: jobgraph.Forward}),
	}}
	ea := edge{from: a, to: mid, partition: jobgraph.Forward, consumer: "mid", producer: "a"}
	eb := edge{from: b, to: mid, partition: jobgraph.Forward, consumer: "mid", producer: "b"}
	ed := edge{from: mid, to: down, partition: jobgraph.Forward, consumer: "down", producer: "mid"}
	cfg := ckptConfig("EXACTLY_ONCE")
	resp := &fakeResponder{}
	env := Env{Network: m, Logger: zap.NewNop(), Responder: resp}
	rd := startEnv(t, descriptors(job, down, []edge{ed}, nil, cfg)[0], env)
	rm := startEnv(t, descriptors(job, mid, []edge{ea, eb}, []edge{ed}, cfg)[0], env)
	ra := startEnv(t, descriptors(job, a, nil, []edge{ea}, cfg)[0], env)
	rb := startEnv(t, descriptors(job, b, nil, []edge{eb}, cfg)[0], env)
	midLog := ckptLogOf(job + "-mid")
	// A record through each channel: both are connected, so the barriers
	// below arrive at mid in the order they are sent.
	feed(fa) <- 100
	feed(fb) <- 200
	waitUntil(t, "connected channels", func() bool { return len(midLog.records()) == 2 })

	// Checkpoint 1 reaches mid from a only; checkpoint 2 from b subsumes it.
	if err := ra.task.TriggerCheckpoint(1, 0, CheckpointOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a's ack of 1", func() bool { return resp.ackOf(0, 1) != nil })
	if err := rb.task.TriggerCheckpoint(2, 0, CheckpointOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "mid's decline of 1", func() bool { return len(resp.declineList()) == 2 })
	want := []string{
		"v2 1 DECLINE_REASON_SUBSUMED: checkpoint 1 was subsumed by checkpoint 2 during alignment",
		// down never saw barrier 1: the cancel marker makes it decline too.
		"v3 1 DECLINE_REASON_ON_CANCELLATION_BARRIER: checkpoint 1 was canceled upstream (cancel marker on input channel 0)",
	}
	// Two tasks decline independently: in either order.
	if got := resp.declineList(); !slices.Equal(sorted(got), sorted(want)) {
		t.Fatalf("declines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := ra.task.TriggerCheckpoint(2, 0, CheckpointOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "down's ack of 2", func() bool { return resp.ackOf(3, 2) != nil })
	if resp.ackOf(2, 2) == nil || resp.ackOf(2, 1) != nil {
		t.Fatal("mid acknowledged 1 or not 2")
	}

	// Checkpoint 3 from a; the JobManager aborts it while mid aligns.
	if err := ra.task.TriggerCheckpoint(3, 0, CheckpointOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a's ack of 3", func() bool { return resp.ackOf(0, 3) != nil })
	feed(fa) <- 7 // behind the barrier: blocked until the abort
	waitUntil(t, "a's record queued", func() bool { return ra.task.partitions[0].Backlog(0) == 1 })
	if err := rm.task.NotifyCheckpointAborted(3); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the blocked record", func() bool { return has(midLog.records(), `{"n":7}`) })
	waitUntil(t, "the listener", func() bool { return has(midLog.eventList(), "aborted 3") })
	// down gets the cancel marker: it declines 3 (it never saw barrier 3).
	waitUntil(t, "down's decline of 3", func() bool { return len(resp.declineList()) == 3 })
	if got := resp.declineList()[2]; got != "v3 3 DECLINE_REASON_ON_CANCELLATION_BARRIER: checkpoint 3 was canceled upstream (cancel marker on input channel 0)" {
		t.Errorf("decline %s", got)
	}
	// b's late barrier 3 is ignored by mid: it neither blocks nor snapshots.
	if err := rb.task.TriggerCheckpoint(3, 0, CheckpointOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "b's ack of 3", func() bool { return resp.ackOf(1, 3) != nil })
	feed(fa) <- 8
	waitUntil(t, "a's next record", func() bool { return has(midLog.records(), `{"n":8}`) })
	if _, ok := midLog.snapshotOf(3); ok {
		t.Error("mid snapshotted the aborted checkpoint 3")
	}

	feed(fa) <- -1
	feed(fb) <- -1
	waitAll(t, []*running{ra, rb, rm, rd})
}

// FLIP-147: a task whose operator needs a final checkpoint does not finish
// at the end of its input: it sends EndOfData, stays running, snapshots on
// the next trigger (or barrier, downstream), and finishes once that
// checkpoint is complete. Both tasks of a source -> sink pipeline with
// two-phase-commit operators do so.
func TestFinalCheckpoint(t *testing.T) {
	job := "final"
	for _, l := range []string{"final-a", "final-b"} {
		ckptLogs.Delete(l)
	}
	m := newManager(t)
	src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "numbers", "test-count", map[string]any{"count": 5}),
		opJSON(t, "commit-a", "test-ckpt", map[string]any{"name": "final-a", "final": true}, jobgraph.Input{From: "numbers", Partition: jobgraph.Forward}),
	}}
	sink := &vertex{index: 1, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "commit-b", "test-ckpt", map[string]any{"name": "final-b", "final": true}, jobgraph.Input{From: "commit-a", Partition: jobgraph.Forward}),
	}}
	e := edge{from: src, to: sink, partition: jobgraph.Forward, consumer: "commit-b", producer: "commit-a"}
	cfg := ckptConfig("EXACTLY_ONCE")
	resp := &fakeResponder{}
	env := Env{Network: m, Logger: zap.NewNop(), Responder: resp}
	rb := startEnv(t, descriptors(job, sink, []edge{e}, nil, cfg)[0], env)
	ra := startEnv(t, descriptors(job, src, nil, []edge{e}, cfg)[0], env)
	la, lb := ckptLogOf("final-a"), ckptLogOf("final-b")

	// Both end their input (b thanks to EndOfData) and wait.
	waitUntil(t, "end of input", func() bool { return has(la.eventList(), "end-input") && has(lb.eventList(), "end-input") })
	if len(lb.records()) != 5 {
		t.Fatalf("b got %d records before EndOfData, want 5", len(lb.records()))
	}
	if err := ra.task.TriggerCheckpoint(1, 0, CheckpointOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "both acks", func() bool { return resp.ackOf(0, 1) != nil && resp.ackOf(1, 1) != nil })
	for v := int32(0); v < 2; v++ {
		if !resp.ackOf(v, 1).GetFinished() {
			t.Errorf("vertex %d: ack of the final checkpoint not marked finished", v)
		}
	}
	if got := itemsOf(t, resp.ackOf(1, 1), "commit-b"); len(got) != 5 {
		t.Errorf("b's final state has %d items, want 5", len(got))
	}
	for _, r := range []*running{ra, rb} {
		select {
		case res := <-r.result:
			t.Fatalf("task %s ended (%s) before its final checkpoint completed", r.task.Name(), res.State)
		default:
		}
	}
	// Completion of an older checkpoint does not count.
	for _, r := range []*running{ra, rb} {
		if err := r.task.NotifyCheckpointComplete(0); err != nil {
			t.Fatal(err)
		}
		if err := r.task.NotifyCheckpointComplete(1); err != nil {
			t.Fatal(err)
		}
	}
	waitAll(t, []*running{ra, rb})
	for _, l := range []*ckptLog{la, lb} {
		want := []string{"open checkpointing=true exactly-once=true", "end-input", "snapshot 1", "complete 0", "complete 1", "close"}
		if got := l.eventList(); !slices.Equal(got, want) {
			t.Errorf("events %v, want %v", got, want)
		}
	}
}

// Without checkpointing, a final-checkpoint operator does not hold the
// task back; a trigger is declined.
func TestFinalCheckpointNeedsCheckpointing(t *testing.T) {
	ckptLogs.Delete("nofinal")
	m := newManager(t)
	v := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "numbers", "test-count", map[string]any{"count": 3}),
		opJSON(t, "c", "test-ckpt", map[string]any{"name": "nofinal", "final": true}, jobgraph.Input{From: "numbers", Partition: jobgraph.Forward}),
	}}
	r := startEnv(t, descriptors("nofinal", v, nil, nil, nil)[0], Env{Network: m, Logger: zap.NewNop(), Responder: &fakeResponder{}})
	waitAll(t, []*running{r})
	if err := r.task.TriggerCheckpoint(1, 0, CheckpointOptions{}); err != ErrNotRunning {
		t.Errorf("trigger after the end: %v, want ErrNotRunning", err)
	}
}

// A failing state write (the checkpoint directory is under a regular file)
// declines the checkpoint; the task keeps running and finishes. A failing
// operator snapshot declines too. Keyed state and items that fit are
// written and can be read back.
func TestSnapshotWriteFailureDeclines(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		props map[string]any
		dir   string
		want  string
	}{
		{"disk", map[string]any{"pad": 64 << 10}, filepath.Join(file, "cp"), "v0 1 DECLINE_REASON_ASYNC_EXCEPTION: checkpoint 1: operator \"c\"[0]: write operator state: create state file in " + filepath.Join(file, "cp", "writefail-disk", "chk-1") + ": mkdir " + file + ": not a directory"},
		{"snapshot", map[string]any{"fail-snapshot": true}, filepath.Join(tmp, "ok"), `v0 1 DECLINE_REASON_DECLINED: operator "c"[0]: snapshot of checkpoint 1: no snapshot today`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := "writefail-" + tc.name
			reset(job)
			ckptLogs.Delete(job)
			m := newManager(t)
			props := map[string]any{"name": job}
			for k, v := range tc.props {
				props[k] = v
			}
			v := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
				opJSON(t, "drip", "test-trickle", map[string]any{"name": job}),
				opJSON(t, "c", "test-ckpt", props, jobgraph.Input{From: "drip", Partition: jobgraph.Forward}),
			}}
			cfg := ckptConfig("EXACTLY_ONCE")
			cfg["execution.checkpointing.dir"] = tc.dir
			resp := &fakeResponder{}
			r := startEnv(t, descriptors(job, v, nil, nil, cfg)[0], Env{Network: m, Logger: zap.NewNop(), Responder: resp})
			feed(job) <- 1
			if err := r.task.TriggerCheckpoint(1, 0, CheckpointOptions{}); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "decline", func() bool { return len(resp.declineList()) == 1 })
			if got := resp.declineList()[0]; got != tc.want {
				t.Errorf("decline\n%s\nwant\n%s", got, tc.want)
			}
			feed(job) <- 2
			feed(job) <- -1
			waitAll(t, []*running{r})
			if got := ckptLogOf(job).records(); len(got) != 2 {
				t.Errorf("records %v", got)
			}
		})
	}
}

// A snapshot that fails after some of its state files were written (the
// items, then the keyed state hits a full disk) declines, and deletes the
// files it wrote: they belong to no checkpoint.
func TestFailedSnapshotDeletesItsFiles(t *testing.T) {
	job := "partial"
	reset(job)
	ckptLogs.Delete(job)
	dir := t.TempDir()
	m := newManager(t)
	v := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "drip", "test-trickle", map[string]any{"name": job}),
		opJSON(t, "c", "test-ckpt", map[string]any{"name": job, "pad": 64 << 10, "keyed": true, "fail-keyed": true},
			jobgraph.Input{From: "drip", Partition: jobgraph.Hash, Key: "k"}),
	}}
	cfg := ckptConfig("EXACTLY_ONCE")
	cfg["execution.checkpointing.dir"] = dir
	resp := &fakeResponder{}
	r := startEnv(t, descriptors(job, v, nil, nil, cfg)[0], Env{Network: m, Logger: zap.NewNop(), Responder: resp})
	feed(job) <- 1
	if err := r.task.TriggerCheckpoint(1, 0, CheckpointOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "decline", func() bool { return len(resp.declineList()) == 1 })
	want := `v0 1 DECLINE_REASON_ASYNC_EXCEPTION: checkpoint 1: operator "c"[0]: write key group 0: no space left on device`
	if got := resp.declineList()[0]; got != want {
		t.Errorf("decline\n%s\nwant\n%s", got, want)
	}
	var files []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 0 {
		t.Errorf("a failed snapshot left %q", files)
	}
	feed(job) <- -1
	waitAll(t, []*running{r})
}

// Items and keyed state go to filesystem storage; the acknowledgement's
// handles read back what was written.
func TestSnapshotToFilesystem(t *testing.T) {
	job := "fsstate"
	reset(job)
	ckptLogs.Delete(job)
	dir := t.TempDir()
	m := newManager(t)
	src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "drip", "test-trickle", map[string]any{"name": job}),
	}}
	sink := &vertex{index: 1, par: 2, managers: []*network.Manager{m, m}, ops: [][]byte{
		opJSON(t, "k", "test-ckpt", map[string]any{"name": job, "keyed": true, "pad": 30 << 10}, jobgraph.Input{From: "drip", Partition: jobgraph.Hash, Key: "n"}),
	}}
	e := edge{from: src, to: sink, partition: jobgraph.Hash, key: "n", consumer: "k", producer: "drip"}
	cfg := ckptConfig("EXACTLY_ONCE")
	cfg["execution.checkpointing.dir"] = dir
	resp := &fakeResponder{}
	env := Env{Network: m, Logger: zap.NewNop(), Responder: resp}
	var rs []*running
	ds := descriptors(job, sink, []edge{e}, nil, cfg)
	rs = append(rs, startEnv(t, ds[1], env))
	rs = append(rs, startEnv(t, ds[0], env))
	rsrc := startEnv(t, descriptors(job, src, nil, []edge{e}, cfg)[0], env)
	if err := rsrc.task.TriggerCheckpoint(4, 0, CheckpointOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "acks", func() bool {
		resp.mu.Lock()
		defer resp.mu.Unlock()
		return len(resp.acks) == 3
	})
	loc := filepath.Join(dir, job, "chk-4")
	resp.mu.Lock()
	acks := slices.Clone(resp.acks)
	resp.mu.Unlock()
	for _, ack := range acks {
		if ack.GetExecution().GetVertex() != 1 {
			continue
		}
		sub := int(ack.GetExecution().GetSubtask())
		ts, err := snapshot.DecodeTaskState(ack.GetState())
		if err != nil {
			t.Fatal(err)
		}
		objs := ts.Operators["k"]
		if len(objs) != 2 || objs[0].Kind != snapshot.KindOperator || objs[1].Kind != snapshot.KindKeyed {
			t.Fatalf("subtask %d: state objects %+v", sub, objs)
		}
		if objs[0].IsInline() {
			t.Errorf("subtask %d: 30 KiB of items inline", sub)
		}
		rc, err := snapshot.OpenState(t.Context(), loc, objs[0].StateHandle)
		if err != nil {
			t.Fatal(err)
		}
		items, err := DecodeOperatorItems(rc)
		_ = rc.Close()
		if err != nil || len(items) != 1 || len(items[0]) != 30<<10 {
			t.Fatalf("subtask %d: items %d %v", sub, len(items), err)
		}
		rng := state.KeyGroupRangeForSubtask(maxP, 2, sub)
		kr, err := snapshot.OpenKeyGroups(t.Context(), loc, objs[1], rng)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(kr)
		_ = kr.Close()
		if err != nil {
			t.Fatal(err)
		}
		var want strings.Builder
		for kg := rng.Start; kg <= rng.End; kg++ {
			fmt.Fprintf(&want, "k%d;", kg)
		}
		if string(b) != want.String() {
			t.Errorf("subtask %d: keyed state %q, want %q", sub, b, want.String())
		}
		if sum := objs[0].Size + objs[1].Size; ack.GetStateSize() != sum {
			t.Errorf("state size %d, want %d", ack.GetStateSize(), sum)
		}
	}
	feed(job) <- -1
	waitAll(t, append(rs, rsrc))
}

func TestOperatorItemsEncoding(t *testing.T) {
	var buf bytes.Buffer
	items := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte("x"), 300)}
	if err := EncodeOperatorItems(&buf, items); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeOperatorItems(bytes.NewReader(buf.Bytes()))
	if err != nil || len(got) != 3 || string(got[0]) != "a" || len(got[1]) != 0 || len(got[2]) != 300 {
		t.Fatalf("decoded %q %v", got, err)
	}
	for _, bad := range [][]byte{
		{},
		{2, 1, 'a'},
		{1, 5, 'a'},
		{1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		append(slices.Clone(buf.Bytes()), 0),
	} {
		if _, err := DecodeOperatorItems(bytes.NewReader(bad)); err == nil {
			t.Errorf("%v decoded", bad)
		} else if errors.Is(err, io.EOF) {
			t.Errorf("%v: bare EOF %v", bad, err)
		}
	}
}
