package taskexec

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	_ "github.com/weirstream/weir/pkg/builtin" // file-sink: a real two-phase-commit sink
	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/pkg/taskexec/barrier"
)

func TestCheckpointOptionsFlags(t *testing.T) {
	for _, tc := range []struct {
		o    CheckpointOptions
		want uint32
	}{
		{CheckpointOptions{}, 0},
		{CheckpointOptions{Unaligned: true}, barrier.FlagUnaligned},
		{CheckpointOptions{Savepoint: true}, barrier.FlagSavepoint},
		// Savepoints are always aligned.
		{CheckpointOptions{Savepoint: true, Unaligned: true}, barrier.FlagSavepoint},
		{CheckpointOptions{Savepoint: true, Stop: true}, barrier.FlagSavepoint | barrier.FlagStop},
		{CheckpointOptions{Savepoint: true, Stop: true, Drain: true}, barrier.FlagSavepoint | barrier.FlagStop | barrier.FlagDrain},
		// Drain without stop, stop without savepoint: nothing to stop.
		{CheckpointOptions{Savepoint: true, Drain: true}, barrier.FlagSavepoint},
		{CheckpointOptions{Stop: true, Drain: true}, 0},
	} {
		if got := tc.o.flags(); got != tc.want {
			t.Errorf("%+v: flags %04b, want %04b", tc.o, got, tc.want)
		}
	}
}

// stopJob is a two-task pipeline with a two-phase-commit sink:
//
//	source -> mid (test-ckpt)  =forward=>  down (test-ckpt) -> out (file-sink)
//
// src is the source's JSON (id "src").
type stopJob struct {
	src, sink *running
	resp      *fakeResponder
	mid, down *ckptLog
	out       string
}

func startStopJob(t *testing.T, job, mode string, src []byte) *stopJob {
	t.Helper()
	for _, l := range []string{job + "-mid", job + "-down"} {
		ckptLogs.Delete(l)
	}
	m := newManager(t)
	v0 := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		src,
		opJSON(t, "mid", "test-ckpt", map[string]any{"name": job + "-mid"}, jobgraph.Input{From: "src", Partition: jobgraph.Forward}),
	}}
	out := filepath.Join(t.TempDir(), "out")
	v1 := &vertex{index: 1, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "down", "test-ckpt", map[string]any{"name": job + "-down"}, jobgraph.Input{From: "mid", Partition: jobgraph.Forward}),
		opJSON(t, "out", "file-sink", map[string]any{"path": out}, jobgraph.Input{From: "down", Partition: jobgraph.Forward}),
	}}
	e := edge{from: v0, to: v1, partition: jobgraph.Forward, consumer: "down", producer: "mid"}
	cfg := ckptConfig(mode)
	cfg["execution.checkpointing.dir"] = filepath.Join(t.TempDir(), "checkpoints")
	resp := &fakeResponder{}
	env := Env{Network: m, Logger: zap.NewNop(), Responder: resp}
	j := &stopJob{resp: resp, mid: ckptLogOf(job + "-mid"), down: ckptLogOf(job + "-down"), out: out}
	j.sink = startEnv(t, descriptors(job, v1, []edge{e}, nil, cfg)[0], env)
	j.src = startEnv(t, descriptors(job, v0, nil, []edge{e}, cfg)[0], env)
	t.Cleanup(func() {
		// A failed test may leave tasks running: stop them before goleak.
		for _, r := range []*running{j.src, j.sink} {
			r.task.Cancel()
			<-r.task.Done()
		}
	})
	return j
}

// acked waits for both tasks' acknowledgements of id and checks that
// nothing was declined.
func (j *stopJob) acked(t *testing.T, id int64) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("acknowledgements of %d", id), func() bool {
		return j.resp.ackOf(0, id) != nil && j.resp.ackOf(1, id) != nil
	})
	if d := j.resp.declineList(); len(d) != 0 {
		t.Fatalf("declines: %v", d)
	}
}

// sourcePos returns the position of the resume source in its
// acknowledgement of id: the number of records it emitted before the
// barrier.
func (j *stopJob) sourcePos(t *testing.T, id int64) int {
	t.Helper()
	items := itemsOf(t, j.resp.ackOf(0, id), "src")
	var pos int
	if len(items) != 1 {
		t.Fatalf("source state %q", items)
	}
	if _, err := fmt.Sscanf(items[0], "s0=%d", &pos); err != nil {
		t.Fatalf("source state %q: %v", items[0], err)
	}
	return pos
}

// committed returns the records of the sink's visible part files, in part
// order, and the names of its hidden (uncommitted) files.
func (j *stopJob) committed(t *testing.T) (recs, hidden []string) {
	t.Helper()
	entries, err := os.ReadDir(j.out)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			hidden = append(hidden, e.Name())
			continue
		}
		parts = append(parts, e.Name())
	}
	slices.SortFunc(parts, func(a, b string) int {
		var x, y int
		fmt.Sscanf(a, "part-0-%d", &x)
		fmt.Sscanf(b, "part-0-%d", &y)
		return x - y
	})
	for _, p := range parts {
		b, err := os.ReadFile(filepath.Join(j.out, p))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if l != "" {
				recs = append(recs, l)
			}
		}
	}
	return recs, hidden
}

// seq returns {"n":from} .. {"n":to-1}.
func seq(from, to int) []string {
	var s []string
	for i := from; i < to; i++ {
		s = append(s, fmt.Sprintf(`{"n":%d}`, i))
	}
	return s
}

// probe runs f in the task goroutine and returns its result; err is
// ErrNotRunning when the task has ended.
func probe[T any](r *running, f func() T) (T, error) {
	ch := make(chan T, 1)
	var zero T
	if err := r.task.Execute(func() error { ch <- f(); return nil }); err != nil {
		return zero, err
	}
	select {
	case v := <-ch:
		return v, nil
	case <-r.task.Done():
		return zero, ErrNotRunning
	}
}

// allPartitionsEnded reports (in the task goroutine) whether every input
// channel delivered EndOfPartition.
func (t *Task) allPartitionsEnded() bool {
	h, ok := t.handler.(interface{ AllEnded() bool })
	return ok && h.AllEnded()
}

func stillRunning(t *testing.T, rs ...*running) {
	t.Helper()
	for _, r := range rs {
		select {
		case res := <-r.result:
			t.Fatalf("task %s ended (%s %v) too early", r.task.Name(), res.State, res.Err)
		default:
		}
	}
}

// A savepoint is taken like a checkpoint: every task writes its state to
// the checkpoint's location of the job's storage and acknowledges; the
// sources go on emitting.
func TestSavepointWrittenToCheckpointLocation(t *testing.T) {
	job := "sp-location"
	reset(job)
	ckptLogs.Delete(job)
	m := newManager(t)
	src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "drip", "test-trickle", map[string]any{"name": job}),
	}}
	sink := &vertex{index: 1, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "c", "test-ckpt", map[string]any{"name": job, "pad": 30 << 10}, jobgraph.Input{From: "drip", Partition: jobgraph.Forward}),
	}}
	e := edge{from: src, to: sink, partition: jobgraph.Forward, consumer: "c", producer: "drip"}
	dir := t.TempDir()
	cfg := ckptConfig("EXACTLY_ONCE")
	cfg["execution.checkpointing.dir"] = dir
	resp := &fakeResponder{}
	env := Env{Network: m, Logger: zap.NewNop(), Responder: resp}
	rs := startEnv(t, descriptors(job, sink, []edge{e}, nil, cfg)[0], env)
	rd := startEnv(t, descriptors(job, src, nil, []edge{e}, cfg)[0], env)
	l := ckptLogOf(job)
	feed(job) <- 1
	feed(job) <- 2
	waitUntil(t, "2 records", func() bool { return len(l.records()) == 2 })

	if err := rd.task.TriggerCheckpoint(3, 0, CheckpointOptions{Savepoint: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "acknowledgements", func() bool { return resp.ackOf(0, 3) != nil && resp.ackOf(1, 3) != nil })
	if d := resp.declineList(); len(d) != 0 {
		t.Fatalf("savepoint declined: %v", d)
	}
	ts, err := snapshot.DecodeTaskState(resp.ackOf(1, 3).GetState())
	if err != nil {
		t.Fatal(err)
	}
	objs := ts.Operators["c"]
	if len(objs) != 1 || objs[0].IsInline() {
		t.Fatalf("state %+v, want one state file", objs)
	}
	loc := filepath.Join(dir, job, "chk-3")
	rc, err := snapshot.OpenState(t.Context(), loc, objs[0].StateHandle)
	if err != nil {
		t.Fatalf("state of the savepoint is not in the checkpoint location %s: %v", loc, err)
	}
	items, err := DecodeOperatorItems(rc)
	_ = rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items[:len(items)-1] { // the last is the pad
		got = append(got, string(it))
	}
	if want := seq(1, 3); !slices.Equal(got, want) {
		t.Errorf("savepoint state %v, want %v", got, want)
	}

	// The job keeps running: the source is not held.
	feed(job) <- 3
	waitUntil(t, "a record after the savepoint", func() bool { return len(l.records()) == 3 })
	feed(job) <- -1
	waitAll(t, []*running{rd, rs})
}

// Stop-with-savepoint: the source emits nothing after its barrier (the
// records fed to it afterwards are never polled); every task snapshots and
// acknowledges; nobody finishes before the savepoint completes; on
// completion the sinks commit exactly the records before the barrier and
// every task finishes, the sink only after its own notification. Without
// drain no operator's EndInput runs.
func TestStopWithSavepoint(t *testing.T) {
	job := "sp-stop"
	reset(job)
	j := startStopJob(t, job, "EXACTLY_ONCE", opJSON(t, "src", "test-trickle", map[string]any{"name": job}))
	for v := range 5 {
		feed(job) <- int64(v)
	}
	waitUntil(t, "5 records", func() bool { return len(j.down.records()) == 5 })

	if err := j.src.task.TriggerCheckpoint(4, 0, CheckpointOptions{Savepoint: true, Stop: true}); err != nil {
		t.Fatal(err)
	}
	j.acked(t, 4)
	// The source is held: 3 more records are never polled.
	for v := 5; v < 8; v++ {
		feed(job) <- int64(v)
	}
	stillRunning(t, j.src, j.sink)
	if recs, hidden := j.committed(t); len(recs) != 0 || len(hidden) != 1 {
		t.Fatalf("before completion: committed %v, hidden %v; want nothing committed, one pending part", recs, hidden)
	}

	// The source hears first: it ends; the sink consumes its
	// EndOfPartition but waits for its own notification.
	if err := j.src.task.NotifyCheckpointComplete(4); err != nil {
		t.Fatal(err)
	}
	waitAll(t, []*running{j.src})
	waitUntil(t, "the sink at the end of its input", func() bool {
		ended, err := probe(j.sink, j.sink.task.allPartitionsEnded)
		if err != nil {
			t.Fatalf("the sink ended before its notification: %v", err)
		}
		return ended
	})
	if _, err := probe(j.sink, func() bool { return true }); err != nil {
		t.Fatalf("the sink ended before its notification: %v", err)
	}
	if err := j.sink.task.NotifyCheckpointComplete(4); err != nil {
		t.Fatal(err)
	}
	waitAll(t, []*running{j.sink})

	if n := len(feed(job)); n != 3 {
		t.Errorf("%d records left in the source's feed, want the 3 fed after the barrier", n)
	}
	recs, hidden := j.committed(t)
	if want := seq(0, 5); !slices.Equal(recs, want) || len(hidden) != 0 {
		t.Errorf("committed %v (hidden %v), want %v", recs, hidden, want)
	}
	want := []string{"open checkpointing=true exactly-once=true", "snapshot 4", "complete 4", "close"}
	for _, l := range []*ckptLog{j.mid, j.down} {
		if got := l.eventList(); !slices.Equal(got, want) {
			t.Errorf("events %v, want %v", got, want)
		}
	}
	if got := j.down.records(); !slices.Equal(got, seq(0, 5)) {
		t.Errorf("sink saw %v", got)
	}
}

// A busy source stopped with a savepoint, in both modes: the savepoint
// holds its position P, the sink received exactly records 0..P-1 (nothing
// after the barrier) and committed exactly those.
func TestStopWithSavepointBusySource(t *testing.T) {
	for _, mode := range []string{"EXACTLY_ONCE", "AT_LEAST_ONCE"} {
		t.Run(mode, func(t *testing.T) {
			job := "sp-busy-" + strings.ToLower(mode)
			j := startStopJob(t, job, mode, opJSON(t, "src", "test-resume", map[string]any{"name": job, "count": 1 << 40}))
			waitUntil(t, "100 records", func() bool { return len(j.down.records()) >= 100 })
			if err := j.src.task.TriggerCheckpoint(1, 0, CheckpointOptions{Savepoint: true, Stop: true}); err != nil {
				t.Fatal(err)
			}
			j.acked(t, 1)
			pos := j.sourcePos(t, 1)
			if snap, _ := j.down.snapshotOf(1); !slices.Equal(snap, seq(0, pos)) {
				t.Fatalf("sink snapshot has %d records, want the %d before the barrier", len(snap), pos)
			}
			for _, r := range []*running{j.sink, j.src} {
				if err := r.task.NotifyCheckpointComplete(1); err != nil {
					t.Fatal(err)
				}
			}
			waitAll(t, []*running{j.src, j.sink})
			if got := j.down.records(); !slices.Equal(got, seq(0, pos)) {
				t.Errorf("the sink received %d records, want exactly the %d before the barrier", len(got), pos)
			}
			if recs, hidden := j.committed(t); !slices.Equal(recs, seq(0, pos)) || len(hidden) != 0 {
				t.Errorf("committed %d records (hidden %v), want %d", len(recs), hidden, pos)
			}
		})
	}
}

// An aborted stop-with-savepoint resumes the source: the job goes on
// without a gap or a duplicate, and a second stop ends it.
func TestStopWithSavepointAborted(t *testing.T) {
	job := "sp-abort"
	j := startStopJob(t, job, "EXACTLY_ONCE", opJSON(t, "src", "test-resume", map[string]any{"name": job, "count": 1 << 40}))
	waitUntil(t, "10 records", func() bool { return len(j.down.records()) >= 10 })
	if err := j.src.task.TriggerCheckpoint(5, 0, CheckpointOptions{Savepoint: true, Stop: true}); err != nil {
		t.Fatal(err)
	}
	j.acked(t, 5)
	pos := j.sourcePos(t, 5)
	for _, r := range []*running{j.sink, j.src} {
		if err := r.task.NotifyCheckpointAborted(5); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "records after the aborted savepoint", func() bool { return len(j.down.records()) > pos+10 })
	stillRunning(t, j.src, j.sink)

	if err := j.src.task.TriggerCheckpoint(6, 0, CheckpointOptions{Savepoint: true, Stop: true}); err != nil {
		t.Fatal(err)
	}
	j.acked(t, 6)
	pos6 := j.sourcePos(t, 6)
	for _, r := range []*running{j.sink, j.src} {
		if err := r.task.NotifyCheckpointComplete(6); err != nil {
			t.Fatal(err)
		}
	}
	waitAll(t, []*running{j.src, j.sink})
	if got := j.down.records(); !slices.Equal(got, seq(0, pos6)) {
		t.Errorf("the sink received %d records, want 0..%d in order", len(got), pos6-1)
	}
	if recs, hidden := j.committed(t); !slices.Equal(recs, seq(0, pos6)) || len(hidden) != 0 {
		t.Errorf("committed %d records (hidden %v), want %d", len(recs), hidden, pos6)
	}
	want := []string{"open checkpointing=true exactly-once=true", "snapshot 5", "aborted 5", "snapshot 6", "complete 6", "close"}
	if got := j.down.eventList(); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// Stop-with-savepoint with drain: the source ends its input first, so
// EndInput runs down the dataflow and EndOfData arrives before the
// barrier; the savepoint is acknowledged as finished; EndOfPartition
// follows its completion. The sink's last part is committed by the
// savepoint: it needs no further checkpoint.
func TestStopWithSavepointDrain(t *testing.T) {
	job := "sp-drain"
	reset(job)
	j := startStopJob(t, job, "EXACTLY_ONCE", opJSON(t, "src", "test-trickle", map[string]any{"name": job}))
	for v := range 4 {
		feed(job) <- int64(v)
	}
	waitUntil(t, "4 records", func() bool { return len(j.down.records()) == 4 })
	if err := j.src.task.TriggerCheckpoint(2, 0, CheckpointOptions{Savepoint: true, Stop: true, Drain: true}); err != nil {
		t.Fatal(err)
	}
	j.acked(t, 2)
	feed(job) <- 99 // never polled: the input ended
	for v := int32(0); v < 2; v++ {
		if !j.resp.ackOf(v, 2).GetFinished() {
			t.Errorf("vertex %d: the drained savepoint is not acknowledged as finished", v)
		}
	}
	stillRunning(t, j.src, j.sink)
	for _, r := range []*running{j.src, j.sink} {
		if err := r.task.NotifyCheckpointComplete(2); err != nil {
			t.Fatal(err)
		}
	}
	waitAll(t, []*running{j.src, j.sink})
	want := []string{"open checkpointing=true exactly-once=true", "end-input", "snapshot 2", "complete 2", "close"}
	for _, l := range []*ckptLog{j.mid, j.down} {
		if got := l.eventList(); !slices.Equal(got, want) {
			t.Errorf("events %v, want %v", got, want)
		}
	}
	if recs, hidden := j.committed(t); !slices.Equal(recs, seq(0, 4)) || len(hidden) != 0 {
		t.Errorf("committed %v (hidden %v), want 0..3", recs, hidden)
	}
	if n := len(feed(job)); n != 1 {
		t.Errorf("%d records left in the feed, want 1", n)
	}
}

// A drained stop-with-savepoint that is aborted cannot resume its source
// (its input ended): the job ends as a bounded one, the sink waiting for a
// final checkpoint that commits its output.
func TestStopWithSavepointDrainAborted(t *testing.T) {
	job := "sp-drain-abort"
	reset(job)
	j := startStopJob(t, job, "EXACTLY_ONCE", opJSON(t, "src", "test-trickle", map[string]any{"name": job}))
	for v := range 3 {
		feed(job) <- int64(v)
	}
	waitUntil(t, "3 records", func() bool { return len(j.down.records()) == 3 })
	if err := j.src.task.TriggerCheckpoint(2, 0, CheckpointOptions{Savepoint: true, Stop: true, Drain: true}); err != nil {
		t.Fatal(err)
	}
	j.acked(t, 2)
	for _, r := range []*running{j.src, j.sink} {
		if err := r.task.NotifyCheckpointAborted(2); err != nil {
			t.Fatal(err)
		}
	}
	waitAll(t, []*running{j.src})
	stillRunning(t, j.sink)
	// FLIP-147: the sink, whose input finished, is triggered directly.
	if err := j.sink.task.TriggerCheckpoint(3, 0, CheckpointOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the final checkpoint's ack", func() bool { return j.resp.ackOf(1, 3) != nil })
	if err := j.sink.task.NotifyCheckpointComplete(3); err != nil {
		t.Fatal(err)
	}
	waitAll(t, []*running{j.sink})
	if recs, hidden := j.committed(t); !slices.Equal(recs, seq(0, 3)) || len(hidden) != 0 {
		t.Errorf("committed %v (hidden %v), want 0..2", recs, hidden)
	}
	want := []string{"open checkpointing=true exactly-once=true", "end-input", "snapshot 2", "aborted 2", "snapshot 3", "complete 3", "close"}
	if got := j.down.eventList(); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// A suspended source whose stop-with-savepoint is followed by a completed
// later checkpoint (the savepoint's abort was lost) resumes: only its own
// savepoint's completion stops it.
func TestStopWithSavepointLaterCheckpointResumes(t *testing.T) {
	job := "sp-later"
	j := startStopJob(t, job, "EXACTLY_ONCE", opJSON(t, "src", "test-resume", map[string]any{"name": job, "count": 1 << 40}))
	waitUntil(t, "10 records", func() bool { return len(j.down.records()) >= 10 })
	if err := j.src.task.TriggerCheckpoint(5, 0, CheckpointOptions{Savepoint: true, Stop: true}); err != nil {
		t.Fatal(err)
	}
	j.acked(t, 5)
	pos := j.sourcePos(t, 5)
	if err := j.src.task.TriggerCheckpoint(6, 0, CheckpointOptions{}); err != nil {
		t.Fatal(err)
	}
	j.acked(t, 6)
	if pos6 := j.sourcePos(t, 6); pos6 != pos {
		t.Fatalf("the held source moved from %d to %d", pos, pos6)
	}
	for _, r := range []*running{j.sink, j.src} {
		if err := r.task.NotifyCheckpointComplete(6); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "records after checkpoint 6", func() bool { return len(j.down.records()) > pos+10 })
	stillRunning(t, j.src, j.sink)
	// Downstream first: a sink canceled after its source could first see
	// the source's partition released and fail (1 run in 100).
	for _, r := range []*running{j.sink, j.src} {
		r.task.Cancel()
		if res := r.wait(t); res.State != Canceled {
			t.Errorf("%s: %s %v", r.task.Name(), res.State, res.Err)
		}
	}
}
