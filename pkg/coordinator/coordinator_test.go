package coordinator

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const s = time.Second

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func tid(v, st int) TaskID { return TaskID{Vertex: v, Subtask: st} }

func vtx(parallelism int, in ...Input) Vertex { return Vertex{Parallelism: parallelism, Inputs: in} }

func allToAll(from int) Input { return Input{Vertex: from} }

func fwd(from int) Input { return Input{Vertex: from, Forward: true} }

// running lists every task of vs, attempt 0, running.
func running(vs []Vertex) []Task {
	var ts []Task
	for v, vx := range vs {
		for st := 0; st < vx.Parallelism; st++ {
			ts = append(ts, Task{ID: tid(v, st), Running: true})
		}
	}
	return ts
}

// chain2 is source 0/0 -> sink 1/0.
func chain2() []Vertex { return []Vertex{vtx(1), vtx(1, allToAll(0))} }

// fanIn is sources 0/0, 0/1 -> (rebalance) 1/0 -> 2/0.
func fanIn() []Vertex { return []Vertex{vtx(2), vtx(1, allToAll(0)), vtx(1, allToAll(1))} }

// forward is sources 0/0, 0/1 -> (forward) 1/0, 1/1.
func forward() []Vertex { return []Vertex{vtx(2), vtx(2, fwd(0))} }

func stateOf(id int64, t TaskID) []byte { return []byte(fmt.Sprintf("%d@%v", id, t)) }

// ack acknowledges checkpoint id for task v/st with a state of 10*(v+1)
// bytes, v ms of alignment, v*100 in-flight bytes, a sync duration of v+1
// µs and an async one of v+2 ms.
func ack(v, st int, id int64) Acknowledge {
	return Acknowledge{Task: tid(v, st), CheckpointID: id, State: stateOf(id, tid(v, st)),
		StateSize: int64(10 * (v + 1)), AlignmentMs: int64(v), PersistedInFlightBytes: int64(v * 100),
		SyncDuration: time.Duration(v+1) * time.Microsecond, AsyncDuration: time.Duration(v+2) * time.Millisecond}
}

func acked(v, st int, id int64) TaskState {
	return TaskState{State: stateOf(id, tid(v, st)), StateSize: int64(10 * (v + 1))}
}

var done = TaskState{Finished: true}

func persist(next int64) Action { return PersistCheckpointID{Next: next} }

func trig(id int64, when time.Duration, tasks ...TaskID) TriggerTasks {
	return TriggerTasks{CheckpointID: id, Timestamp: at(when), Tasks: tasks, Mode: ExactlyOnce}
}

func meta(id int64, trigAt time.Duration, tasks map[TaskID]TaskState) WriteMetadata {
	return WriteMetadata{CheckpointID: id, Timestamp: at(trigAt), Tasks: tasks}
}

// metaChain2 is the WriteMetadata of checkpoint id of chain2, both acked.
func metaChain2(id int64, trigAt time.Duration) WriteMetadata {
	return meta(id, trigAt, map[TaskID]TaskState{tid(0, 0): acked(0, 0, id), tid(1, 0): acked(1, 0, id)})
}

func written(id int64) MetadataWritten {
	return MetadataWritten{CheckpointID: id, Path: fmt.Sprintf("/cp/chk-%d", id)}
}

func aborted(id int64, r FailureReason, tasks ...TaskID) Action {
	return NotifyAborted{CheckpointID: id, Tasks: tasks, Reason: r}
}

func discard(id int64, r FailureReason) Action {
	return DiscardCheckpoint{CheckpointID: id, Reason: r}
}

// withAcks adds to a DiscardCheckpoint the states the tasks acknowledged.
func withAcks(a Action, tasks ...TaskID) Action {
	d := a.(DiscardCheckpoint)
	for _, t := range tasks {
		d.States = append(d.States, TaskStateOf{Task: t, State: stateOf(d.CheckpointID, t)})
	}
	return d
}

func subsumed(id int64) Action {
	return DiscardCheckpoint{CheckpointID: id, Path: fmt.Sprintf("/cp/chk-%d", id), Reason: ReasonSubsumed}
}

func complete(id int64, tasks ...TaskID) Action {
	return NotifyComplete{CheckpointID: id, Tasks: tasks}
}

func logf(format string, args ...any) Action { return Log{Message: fmt.Sprintf(format, args...)} }

var both = []TaskID{tid(0, 0), tid(1, 0)}

type step struct {
	at    time.Duration
	ev    Event
	want  []Action
	check func(t *testing.T, c *Coordinator)
}

type scenario struct {
	name  string
	cfg   Config
	steps []step
}

// cpChain2 completes checkpoint id of chain2 (triggered at trigAt) with
// acks at ackAt and the metadata written at doneAt, expecting extra actions
// before the NotifyComplete (subsumption) and after it (a queued trigger).
func cpChain2(id int64, trigAt, ackAt, doneAt time.Duration, before, after []Action) []step {
	want := append(append(append([]Action(nil), before...), complete(id, both...)), after...)
	return []step{
		{at: ackAt, ev: ack(0, 0, id)},
		{at: ackAt, ev: ack(1, 0, id), want: []Action{metaChain2(id, trigAt)}},
		{at: doneAt, ev: written(id), want: want},
	}
}

func steps(parts ...any) []step {
	var out []step
	for _, p := range parts {
		switch p := p.(type) {
		case step:
			out = append(out, p)
		case []step:
			out = append(out, p...)
		default:
			panic(fmt.Sprintf("steps: %T", p))
		}
	}
	return out
}

func nextAt(d time.Duration) func(*testing.T, *Coordinator) {
	return func(t *testing.T, c *Coordinator) {
		t.Helper()
		if got := c.NextTriggerTime(); !got.Equal(at(d)) {
			t.Errorf("NextTriggerTime = %v, want t0+%v", got.Sub(t0), d)
		}
	}
}

func noNext(t *testing.T, c *Coordinator) {
	t.Helper()
	if got := c.NextTriggerTime(); !got.IsZero() {
		t.Errorf("NextTriggerTime = t0+%v, want zero", got.Sub(t0))
	}
}

func counts(completed, failed, inProgress int) func(*testing.T, *Coordinator) {
	return func(t *testing.T, c *Coordinator) {
		t.Helper()
		a, b, d := c.Counts()
		if a != completed || b != failed || d != inProgress {
			t.Errorf("Counts = %d, %d, %d; want %d, %d, %d", a, b, d, completed, failed, inProgress)
		}
	}
}

func retained(ids ...int64) func(*testing.T, *Coordinator) {
	return func(t *testing.T, c *Coordinator) {
		t.Helper()
		var got []int64
		for _, cp := range c.Retained() {
			got = append(got, cp.ID)
		}
		if !reflect.DeepEqual(got, ids) {
			t.Errorf("Retained = %v, want %v", got, ids)
		}
		latest := c.Latest()
		switch {
		case len(ids) == 0 && latest != nil:
			t.Errorf("Latest = %d, want nil", latest.ID)
		case len(ids) > 0 && (latest == nil || latest.ID != ids[len(ids)-1]):
			t.Errorf("Latest = %v, want %d", latest, ids[len(ids)-1])
		}
	}
}

func all(checks ...func(*testing.T, *Coordinator)) func(*testing.T, *Coordinator) {
	return func(t *testing.T, c *Coordinator) {
		t.Helper()
		for _, ch := range checks {
			ch(t, c)
		}
	}
}

func run(t *testing.T, sc scenario) *Coordinator {
	t.Helper()
	c, err := New(sc.cfg, t0)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for i, st := range sc.steps {
		got := c.Step(at(st.at), st.ev)
		if !reflect.DeepEqual(got, st.want) {
			t.Fatalf("step %d (t0+%v %T%+v):\n got: %s\nwant: %s", i, st.at, st.ev, st.ev, show(got), show(st.want))
		}
		if st.check != nil {
			st.check(t, c)
			if t.Failed() {
				t.Fatalf("after step %d (t0+%v %T)", i, st.at, st.ev)
			}
		}
	}
	return c
}

func show(as []Action) string {
	if len(as) == 0 {
		return "[]"
	}
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "\n\t%T%+v", a, a)
	}
	return b.String()
}

func TestScenarios(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) { run(t, sc) })
	}
}

func scenarios() []scenario {
	return []scenario{
		{
			name: "periodic at interval, completion after metadata, subsumption",
			cfg:  Config{Interval: 10 * s, Vertices: chain2(), Tasks: running(chain2()), NextCheckpointID: 1},
			steps: steps(
				step{at: 0, ev: Tick{}, check: all(nextAt(10*s), counts(0, 0, 0), retained())},
				step{at: 9 * s, ev: Tick{}},
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 10*s, tid(0, 0))},
					check: all(nextAt(20*s), counts(0, 0, 1))},
				step{at: 11 * s, ev: ack(0, 0, 1)},
				step{at: 12 * s, ev: ack(1, 0, 1), want: []Action{metaChain2(1, 10*s)},
					// Fully acknowledged is not complete: the metadata is not durable yet.
					check: all(counts(0, 0, 1), retained())},
				step{at: 13 * s, ev: written(1), want: []Action{complete(1, both...)},
					check: all(counts(1, 0, 0), retained(1), func(t *testing.T, c *Coordinator) {
						want := CheckpointStats{ID: 1, Status: StatusCompleted, TriggerTime: at(10 * s), Duration: 3 * s,
							StateSize: 30, MaxAlignmentMs: 1, PersistedInFlightBytes: 100, NumAcknowledged: 2, NumTasks: 2, Path: "/cp/chk-1",
							Subtasks: []SubtaskStats{
								{Task: tid(0, 0), AckTime: at(11 * s), StateSize: 10, SyncDuration: time.Microsecond, AsyncDuration: 2 * time.Millisecond},
								{Task: tid(1, 0), AckTime: at(12 * s), StateSize: 20, AlignmentMs: 1, SyncDuration: 2 * time.Microsecond,
									AsyncDuration: 3 * time.Millisecond, PersistedInFlightBytes: 100},
							}}
						if h := c.History(); len(h) != 1 || !reflect.DeepEqual(h[0], want) {
							t.Errorf("History = %+v, want [%+v]", h, want)
						}
						want2 := CompletedCheckpoint{ID: 1, Timestamp: at(10 * s), CompletionTime: at(13 * s), Path: "/cp/chk-1", StateSize: 30,
							Tasks: map[TaskID]TaskState{tid(0, 0): acked(0, 0, 1), tid(1, 0): acked(1, 0, 1)}}
						if l := c.Latest(); !reflect.DeepEqual(*l, want2) {
							t.Errorf("Latest = %+v, want %+v", *l, want2)
						}
					})},
				step{at: 20 * s, ev: Tick{}, want: []Action{persist(3), trig(2, 20*s, tid(0, 0))}},
				cpChain2(2, 20*s, 21*s, 22*s, []Action{subsumed(1)}, nil),
				step{at: 22 * s, ev: Tick{}, check: all(retained(2), counts(2, 0, 0), nextAt(30*s))},
				// A late tick triggers once and keeps the fixed rate.
				step{at: 47 * s, ev: Tick{}, want: []Action{persist(4), trig(3, 47*s, tid(0, 0))}, check: nextAt(50 * s)},
			),
		},
		{
			name: "min-pause: next trigger at end of previous plus min-pause",
			cfg:  Config{Interval: 10 * s, MinPause: 8 * s, MaxConcurrent: 2, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 10*s, tid(0, 0))}},
				// min-pause > 0 implies one concurrent checkpoint, whatever MaxConcurrent says.
				step{at: 20 * s, ev: Tick{}, check: nextAt(30 * s)},
				cpChain2(1, 10*s, 24*s, 25*s, nil, nil),
				// The queued request was dropped for the pause: rescheduled at 25+8.
				step{at: 25 * s, ev: Tick{}, check: nextAt(33 * s)},
				step{at: 32 * s, ev: Tick{}},
				step{at: 33 * s, ev: Tick{}, want: []Action{persist(3), trig(2, 33*s, tid(0, 0))}, check: nextAt(43 * s)},
				cpChain2(2, 33*s, 34*s, 35*s, []Action{subsumed(1)}, nil),
				// 43 >= 35+8: the pause is over at the periodic time.
				step{at: 43 * s, ev: Tick{}, want: []Action{persist(4), trig(3, 43*s, tid(0, 0))}},
			),
		},
		{
			name: "interval below min-pause is raised to min-pause",
			cfg:  Config{Interval: 2 * s, MinPause: 5 * s, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 2 * s, ev: Tick{}, check: nextAt(5 * s)},
				step{at: 5 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 5*s, tid(0, 0))}, check: nextAt(10 * s)},
			),
		},
		{
			name: "max-concurrent 1 queues the periodic request until the pending one ends",
			cfg:  Config{Interval: 10 * s, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 10*s, tid(0, 0))}},
				step{at: 20 * s, ev: Tick{}, check: all(nextAt(30*s), counts(0, 0, 1))},
				// The queued request runs as soon as checkpoint 1 completes.
				cpChain2(1, 10*s, 24*s, 25*s, nil, []Action{persist(3), trig(2, 25*s, tid(0, 0))}),
				step{at: 30 * s, ev: Tick{}, check: nextAt(40 * s)},
				step{at: 31 * s, ev: Decline{Task: tid(1, 0), CheckpointID: 2, Reason: ReasonTaskNotReady},
					want: []Action{aborted(2, ReasonTaskNotReady, both...), discard(2, ReasonTaskNotReady),
						persist(4), trig(3, 31*s, tid(0, 0))}},
			),
		},
		{
			name: "max-concurrent 2: a newer completion subsumes the older pending one",
			cfg:  Config{Interval: 10 * s, MaxConcurrent: 2, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 10*s, tid(0, 0))}},
				step{at: 20 * s, ev: Tick{}, want: []Action{persist(3), trig(2, 20*s, tid(0, 0))}, check: counts(0, 0, 2)},
				step{at: 30 * s, ev: Tick{}, check: nextAt(40 * s)},
				step{at: 31 * s, ev: ack(0, 0, 1)},
				cpChain2(2, 20*s, 32*s, 33*s, []Action{aborted(1, ReasonSubsumed, both...), withAcks(discard(1, ReasonSubsumed), tid(0, 0))},
					[]Action{persist(4), trig(3, 33*s, tid(0, 0))}),
				// A duplicate of an acknowledgement of the retained checkpoint
				// 2 keeps its state; a late one of the aborted 1 has it deleted.
				step{at: 34 * s, ev: ack(1, 0, 2), want: []Action{logf("ignored acknowledgement of checkpoint 2 from task 1/0: not pending (late or unknown)")}},
				step{at: 34 * s, ev: ack(1, 0, 1), want: []Action{logf("ignored acknowledgement of checkpoint 1 from task 1/0: not pending (late or unknown)"),
					DiscardState{CheckpointID: 1, Task: tid(1, 0), State: stateOf(1, tid(1, 0)), Ended: true}},
					check: all(counts(1, 1, 1), func(t *testing.T, c *Coordinator) {
						h := c.History()
						if len(h) != 3 || h[0].ID != 3 || h[1].ID != 2 || h[2].ID != 1 || h[2].Status != StatusFailed ||
							h[2].FailureReason != ReasonSubsumed || h[2].FailureMessage != "checkpoint 1 subsumed by checkpoint 2" || h[2].Duration != 23*s {
							t.Errorf("History = %+v", h)
						}
					})},
			),
		},
		{
			name: "timeout aborts and counts: tolerable 1 survives one, fails on the second",
			cfg:  Config{Interval: 10 * s, Timeout: 15 * s, TolerableFailedCheckpoints: 1, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 10*s, tid(0, 0))}, check: nextAt(20 * s)},
				step{at: 20 * s, ev: Tick{}, check: nextAt(25 * s)},
				step{at: 24 * s, ev: Tick{}},
				step{at: 25 * s, ev: Tick{}, want: []Action{aborted(1, ReasonExpired, both...), discard(1, ReasonExpired),
					persist(3), trig(2, 25*s, tid(0, 0))}, check: all(counts(0, 1, 1), nextAt(30*s))},
				step{at: 40 * s, ev: Tick{}, want: []Action{aborted(2, ReasonExpired, both...), discard(2, ReasonExpired),
					FailJob{Reason: "exceeded checkpoint tolerable failure threshold (1): checkpoint 2 expired before completing"}},
					check: all(counts(0, 2, 0), noNext)},
				step{at: 50 * s, ev: Tick{}},
			),
		},
		{
			name: "tolerable 0: the first counted failure fails the job and aborts the others",
			cfg:  Config{Interval: 10 * s, Timeout: 100 * s, MaxConcurrent: 2, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 10*s, tid(0, 0))}},
				step{at: 20 * s, ev: Tick{}, want: []Action{persist(3), trig(2, 20*s, tid(0, 0))}},
				// Both expire; the first fails the job, which aborts the second.
				step{at: 120 * s, ev: Tick{}, want: []Action{
					aborted(1, ReasonExpired, both...), discard(1, ReasonExpired),
					FailJob{Reason: "exceeded checkpoint tolerable failure threshold (0): checkpoint 1 expired before completing"},
					aborted(2, ReasonJobFailure, both...), discard(2, ReasonJobFailure),
				}, check: counts(0, 2, 0)},
				step{at: 111 * s, ev: TriggerSavepoint{Request: 7}, want: []Action{
					SavepointFailed{Request: 7, Reason: ReasonCoordinatorShutdown, Message: "the checkpoint coordinator is stopped"}}},
			),
		},
		{
			name: "tolerable 2: the third consecutive failure fails the job; a completion resets the count",
			cfg:  Config{Interval: 10 * s, TolerableFailedCheckpoints: 2, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 10*s, tid(0, 0))}},
				step{at: 11 * s, ev: Decline{Task: tid(0, 0), CheckpointID: 1, Message: "disk full"},
					want: []Action{aborted(1, ReasonDeclined, both...), discard(1, ReasonDeclined)},
					check: func(t *testing.T, c *Coordinator) {
						if h := c.History()[0]; h.FailureMessage != "task 0/0 declined checkpoint 1: disk full" {
							t.Errorf("failure message %q", h.FailureMessage)
						}
					}},
				step{at: 20 * s, ev: Tick{}, want: []Action{persist(3), trig(2, 20*s, tid(0, 0))}},
				step{at: 21 * s, ev: Decline{Task: tid(1, 0), CheckpointID: 2, Reason: ReasonAsyncException},
					want: []Action{aborted(2, ReasonAsyncException, both...), discard(2, ReasonAsyncException)}},
				step{at: 30 * s, ev: Tick{}, want: []Action{persist(4), trig(3, 30*s, tid(0, 0))}},
				cpChain2(3, 30*s, 31*s, 32*s, nil, nil),
				// Not counted: the task was not ready.
				step{at: 40 * s, ev: Tick{}, want: []Action{persist(5), trig(4, 40*s, tid(0, 0))}},
				step{at: 41 * s, ev: Decline{Task: tid(1, 0), CheckpointID: 4, Reason: ReasonTaskNotReady},
					want: []Action{aborted(4, ReasonTaskNotReady, both...), discard(4, ReasonTaskNotReady)}},
				step{at: 50 * s, ev: Tick{}, want: []Action{persist(6), trig(5, 50*s, tid(0, 0))}},
				step{at: 51 * s, ev: Decline{Task: tid(1, 0), CheckpointID: 5},
					want: []Action{aborted(5, ReasonDeclined, both...), discard(5, ReasonDeclined)}},
				step{at: 60 * s, ev: Tick{}, want: []Action{persist(7), trig(6, 60*s, tid(0, 0))}},
				step{at: 61 * s, ev: Decline{Task: tid(1, 0), CheckpointID: 6},
					want: []Action{aborted(6, ReasonDeclined, both...), discard(6, ReasonDeclined)}},
				step{at: 70 * s, ev: Tick{}, want: []Action{persist(8), trig(7, 70*s, tid(0, 0))}},
				step{at: 71 * s, ev: Decline{Task: tid(1, 0), CheckpointID: 7}, want: []Action{
					aborted(7, ReasonDeclined, both...), discard(7, ReasonDeclined),
					FailJob{Reason: "exceeded checkpoint tolerable failure threshold (2): task 1/0 declined checkpoint 7"}},
					check: all(counts(1, 6, 0), noNext)},
			),
		},
		{
			name: "decline notifies all; late and stale messages are ignored",
			cfg:  Config{Interval: 10 * s, TolerableFailedCheckpoints: 5, Vertices: fanIn(), Tasks: running(fanIn())},
			steps: steps(
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 10*s, tid(0, 0), tid(0, 1))}},
				step{at: 11 * s, ev: ack(0, 0, 1)},
				step{at: 11 * s, ev: ack(0, 0, 1), want: []Action{
					logf("ignored acknowledgement of checkpoint 1 from task 0/0: not awaited (duplicate, or finished at trigger)")}},
				step{at: 11 * s, ev: Acknowledge{Task: tid(0, 1), Attempt: 1, CheckpointID: 1}, want: []Action{
					logf("ignored acknowledgement of checkpoint 1 from task 0/1 attempt 1: not the current attempt")}},
				// The state a stale attempt wrote belongs to no checkpoint.
				step{at: 11 * s, ev: Acknowledge{Task: tid(0, 1), Attempt: 1, CheckpointID: 1, State: []byte("stale")}, want: []Action{
					logf("ignored acknowledgement of checkpoint 1 from task 0/1 attempt 1: not the current attempt"),
					DiscardState{CheckpointID: 1, Task: tid(0, 1), State: []byte("stale")}}},
				step{at: 11 * s, ev: Acknowledge{Task: tid(9, 9), CheckpointID: 1}, want: []Action{
					logf("ignored acknowledgement of checkpoint 1 from task 9/9 attempt 0: not the current attempt")}},
				step{at: 11 * s, ev: Decline{Task: tid(0, 1), Attempt: 2, CheckpointID: 1}, want: []Action{
					logf("ignored decline of checkpoint 1 from task 0/1 attempt 2: not the current attempt")}},
				step{at: 11 * s, ev: Decline{Task: tid(0, 1), CheckpointID: 9}, want: []Action{
					logf("ignored decline of checkpoint 9 from task 0/1: not pending (late or unknown)")}},
				step{at: 11 * s, ev: MetadataWritten{CheckpointID: 1, Path: "/x"}, want: []Action{
					logf("ignored metadata result of checkpoint 1: not being written")}},
				// An acknowledged task can still decline (Flink aborts on any decline).
				step{at: 12 * s, ev: Decline{Task: tid(0, 0), CheckpointID: 1}, want: []Action{
					aborted(1, ReasonDeclined, tid(0, 0), tid(0, 1), tid(1, 0), tid(2, 0)), withAcks(discard(1, ReasonDeclined), tid(0, 0))}},
				step{at: 13 * s, ev: ack(2, 0, 1), want: []Action{
					logf("ignored acknowledgement of checkpoint 1 from task 2/0: not pending (late or unknown)"),
					DiscardState{CheckpointID: 1, Task: tid(2, 0), State: stateOf(1, tid(2, 0)), Ended: true}},
					check: func(t *testing.T, c *Coordinator) {
						if h := c.History()[0]; h.NumAcknowledged != 1 || h.StateSize != 10 || h.NumTasks != 4 {
							t.Errorf("stats %+v", h)
						}
					}},
			),
		},
		{
			name: "a checkpoint whose id could not be persisted is aborted at once, not counted; the next one is triggered",
			cfg:  Config{Interval: 10 * s, Timeout: 600 * s, TolerableFailedCheckpoints: 0, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 10*s, tid(0, 0))}},
				step{at: 11 * s, ev: TriggerFailed{CheckpointID: 1, Message: "persist checkpoint id counter: etcd unreachable"},
					want: []Action{aborted(1, ReasonTriggerFailure, both...), discard(1, ReasonTriggerFailure)},
					check: func(t *testing.T, c *Coordinator) {
						if h := c.History()[0]; h.FailureMessage != "checkpoint 1 not triggered: persist checkpoint id counter: etcd unreachable" {
							t.Errorf("failure message %q", h.FailureMessage)
						}
					}},
				step{at: 12 * s, ev: TriggerFailed{CheckpointID: 1, Message: "again"}},
				step{at: 20 * s, ev: Tick{}, want: []Action{persist(3), trig(2, 20*s, tid(0, 0))}},
			),
		},
		{
			name: "metadata write error is a counted failure; a write finishing after an abort is discarded",
			cfg:  Config{Interval: 10 * s, Timeout: 5 * s, TolerableFailedCheckpoints: 1, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 10*s, tid(0, 0))}},
				step{at: 11 * s, ev: ack(0, 0, 1)},
				step{at: 11 * s, ev: ack(1, 0, 1), want: []Action{metaChain2(1, 10*s)}},
				step{at: 12 * s, ev: MetadataWritten{CheckpointID: 1, Err: errors.New("no space")},
					want: []Action{aborted(1, ReasonIOException, both...), withAcks(discard(1, ReasonIOException), tid(0, 0), tid(1, 0))},
					check: func(t *testing.T, c *Coordinator) {
						if h := c.History()[0]; h.FailureMessage != "write metadata of checkpoint 1: no space" {
							t.Errorf("failure message %q", h.FailureMessage)
						}
					}},
				step{at: 12 * s, ev: MetadataWritten{CheckpointID: 1, Path: "/cp/chk-1"}, want: []Action{
					logf("ignored metadata result of checkpoint 1: not being written")}},
				step{at: 20 * s, ev: Tick{}, want: []Action{persist(3), trig(2, 20*s, tid(0, 0))}},
				step{at: 21 * s, ev: ack(0, 0, 2)},
				step{at: 21 * s, ev: ack(1, 0, 2), want: []Action{metaChain2(2, 20*s)}},
				// The timeout covers the metadata write too.
				step{at: 25 * s, ev: Tick{}, want: []Action{aborted(2, ReasonExpired, both...), withAcks(discard(2, ReasonExpired), tid(0, 0), tid(1, 0)),
					FailJob{Reason: "exceeded checkpoint tolerable failure threshold (1): checkpoint 2 expired before completing"}}},
				step{at: 26 * s, ev: written(2), want: []Action{
					withAcks(DiscardCheckpoint{CheckpointID: 2, Path: "/cp/chk-2", Reason: ReasonExpired}, tid(0, 0), tid(1, 0))}},
				step{at: 26 * s, ev: written(2), want: []Action{
					logf("ignored metadata result of checkpoint 2: not being written")}},
			),
		},
		{
			name: "a failed write after an abort deletes nothing more",
			cfg:  Config{Interval: 10 * s, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 10*s, tid(0, 0))}},
				step{at: 11 * s, ev: ack(0, 0, 1)},
				step{at: 11 * s, ev: ack(1, 0, 1), want: []Action{metaChain2(1, 10*s)}},
				step{at: 12 * s, ev: Stop{}, want: []Action{aborted(1, ReasonCoordinatorShutdown, both...), withAcks(discard(1, ReasonCoordinatorShutdown), tid(0, 0), tid(1, 0))}},
				step{at: 13 * s, ev: MetadataWritten{CheckpointID: 1, Err: errors.New("canceled")}},
			),
		},
		{
			name: "num-retained 2 keeps two and discards the oldest",
			cfg:  Config{Interval: 10 * s, NumRetained: 2, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 10*s, tid(0, 0))}},
				cpChain2(1, 10*s, 11*s, 12*s, nil, nil),
				step{at: 20 * s, ev: Tick{}, want: []Action{persist(3), trig(2, 20*s, tid(0, 0))}},
				cpChain2(2, 20*s, 21*s, 22*s, nil, nil),
				step{at: 22 * s, ev: Tick{}, check: retained(1, 2)},
				step{at: 30 * s, ev: Tick{}, want: []Action{persist(4), trig(3, 30*s, tid(0, 0))}},
				cpChain2(3, 30*s, 31*s, 32*s, []Action{subsumed(1)}, nil),
				step{at: 32 * s, ev: Tick{}, check: retained(2, 3)},
			),
		},
		{
			name: "savepoint: beyond max-concurrent, aligned, never retained, subsumed or committed",
			cfg:  Config{Interval: 10 * s, Unaligned: true, AlignedCheckpointTimeout: 2 * s, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), TriggerTasks{CheckpointID: 1, Timestamp: at(10 * s),
					Tasks: []TaskID{tid(0, 0)}, Mode: ExactlyOnce, Unaligned: true, AlignedCheckpointTimeout: 2 * s}}},
				// Flink's savepoints are forced: they pass max-concurrent and min-pause.
				step{at: 11 * s, ev: TriggerSavepoint{Request: 42, Target: "/sp"}, want: []Action{persist(3),
					TriggerTasks{CheckpointID: 2, Timestamp: at(11 * s), Tasks: []TaskID{tid(0, 0)}, Mode: ExactlyOnce, Savepoint: true, Target: "/sp"}},
					check: counts(0, 0, 2)},
				step{at: 12 * s, ev: ack(0, 0, 2)},
				step{at: 12 * s, ev: ack(1, 0, 2), want: []Action{WriteMetadata{CheckpointID: 2, Timestamp: at(11 * s), Savepoint: true, Target: "/sp",
					Tasks: map[TaskID]TaskState{tid(0, 0): acked(0, 0, 2), tid(1, 0): acked(1, 0, 2)}}}},
				// A savepoint completing subsumes nothing and notifies no task.
				step{at: 13 * s, ev: MetadataWritten{CheckpointID: 2, Path: "/sp/savepoint-2"}, want: []Action{
					SavepointDone{Request: 42, CheckpointID: 2, Path: "/sp/savepoint-2"}},
					check: all(retained(), counts(1, 0, 1), func(t *testing.T, c *Coordinator) {
						if h := c.History()[0]; !h.Savepoint || h.Unaligned || h.Path != "/sp/savepoint-2" {
							t.Errorf("savepoint stats %+v", h)
						}
						if h := c.History()[1]; h.Savepoint || !h.Unaligned {
							t.Errorf("checkpoint stats %+v", h)
						}
					})},
				cpChain2(1, 10*s, 14*s, 15*s, nil, nil),
				step{at: 15 * s, ev: Tick{}, check: retained(1)},
				// A pending savepoint holds the only slot: the periodic request waits.
				step{at: 16 * s, ev: TriggerSavepoint{Request: 43}, want: []Action{persist(4),
					TriggerTasks{CheckpointID: 3, Timestamp: at(16 * s), Tasks: []TaskID{tid(0, 0)}, Mode: ExactlyOnce, Savepoint: true}}},
				step{at: 20 * s, ev: Tick{}},
				step{at: 21 * s, ev: ack(0, 0, 3)},
				step{at: 21 * s, ev: ack(1, 0, 3), want: []Action{WriteMetadata{CheckpointID: 3, Timestamp: at(16 * s), Savepoint: true,
					Tasks: map[TaskID]TaskState{tid(0, 0): acked(0, 0, 3), tid(1, 0): acked(1, 0, 3)}}}},
				step{at: 22 * s, ev: MetadataWritten{CheckpointID: 3, Path: "/sp/savepoint-3"}, want: []Action{
					SavepointDone{Request: 43, CheckpointID: 3, Path: "/sp/savepoint-3"},
					persist(5), TriggerTasks{CheckpointID: 4, Timestamp: at(22 * s), Tasks: []TaskID{tid(0, 0)}, Mode: ExactlyOnce,
						Unaligned: true, AlignedCheckpointTimeout: 2 * s}}},
			),
		},
		{
			name: "a newer checkpoint does not subsume a pending savepoint, whose later failure is not counted",
			cfg:  Config{Interval: 10 * s, MaxConcurrent: 2, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 1 * s, ev: TriggerSavepoint{Request: 1}, want: []Action{persist(2),
					TriggerTasks{CheckpointID: 1, Timestamp: at(1 * s), Tasks: []TaskID{tid(0, 0)}, Mode: ExactlyOnce, Savepoint: true}}},
				// Not counted: the task was not ready (tolerable 0).
				step{at: 2 * s, ev: Decline{Task: tid(0, 0), CheckpointID: 1, Reason: ReasonTaskNotReady}, want: []Action{
					aborted(1, ReasonTaskNotReady, both...), DiscardCheckpoint{CheckpointID: 1, Savepoint: true, Reason: ReasonTaskNotReady},
					SavepointFailed{Request: 1, CheckpointID: 1, Reason: ReasonTaskNotReady, Message: "task 0/0 declined checkpoint 1"}}},
				step{at: 5 * s, ev: TriggerSavepoint{Request: 2}, want: []Action{persist(3),
					TriggerTasks{CheckpointID: 2, Timestamp: at(5 * s), Tasks: []TaskID{tid(0, 0)}, Mode: ExactlyOnce, Savepoint: true}}},
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(4), trig(3, 10*s, tid(0, 0))}},
				// Checkpoint 3 completes: savepoint 2 stays pending.
				cpChain2(3, 10*s, 11*s, 12*s, nil, nil),
				step{at: 12 * s, ev: Tick{}, check: counts(1, 1, 1)},
				// Savepoint 2 is older than the completed checkpoint 3: not counted.
				step{at: 13 * s, ev: Decline{Task: tid(1, 0), CheckpointID: 2}, want: []Action{
					aborted(2, ReasonDeclined, both...), DiscardCheckpoint{CheckpointID: 2, Savepoint: true, Reason: ReasonDeclined},
					SavepointFailed{Request: 2, CheckpointID: 2, Reason: ReasonDeclined, Message: "task 1/0 declined checkpoint 2"}}},
				step{at: 14 * s, ev: TriggerSavepoint{Request: 3}, want: []Action{persist(5),
					TriggerTasks{CheckpointID: 4, Timestamp: at(14 * s), Tasks: []TaskID{tid(0, 0)}, Mode: ExactlyOnce, Savepoint: true}}},
				step{at: 14 * s, ev: TriggerSavepoint{Request: 4}, want: []Action{persist(6),
					TriggerTasks{CheckpointID: 5, Timestamp: at(14 * s), Tasks: []TaskID{tid(0, 0)}, Mode: ExactlyOnce, Savepoint: true}}},
				// A task declining a user's savepoint does not count (unlike
				// Flink): the caller hears of it, the job keeps running.
				step{at: 15 * s, ev: Decline{Task: tid(1, 0), CheckpointID: 4}, want: []Action{
					aborted(4, ReasonDeclined, both...), DiscardCheckpoint{CheckpointID: 4, Savepoint: true, Reason: ReasonDeclined},
					SavepointFailed{Request: 3, CheckpointID: 4, Reason: ReasonDeclined, Message: "task 1/0 declined checkpoint 4"},
				}},
				step{at: 15 * s, ev: Decline{Task: tid(1, 0), CheckpointID: 5}, want: []Action{
					aborted(5, ReasonDeclined, both...), DiscardCheckpoint{CheckpointID: 5, Savepoint: true, Reason: ReasonDeclined},
					SavepointFailed{Request: 4, CheckpointID: 5, Reason: ReasonDeclined, Message: "task 1/0 declined checkpoint 5"},
				}},
			),
		},
		{
			name: "a failure older than the last completed checkpoint is not counted",
			cfg:  Config{Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 1 * s, ev: TriggerSavepoint{Request: 1}, want: []Action{persist(2),
					TriggerTasks{CheckpointID: 1, Timestamp: at(1 * s), Tasks: []TaskID{tid(0, 0)}, Mode: ExactlyOnce, Savepoint: true}}},
				step{at: 2 * s, ev: TriggerSavepoint{Request: 2}, want: []Action{persist(3),
					TriggerTasks{CheckpointID: 2, Timestamp: at(2 * s), Tasks: []TaskID{tid(0, 0)}, Mode: ExactlyOnce, Savepoint: true}},
					check: nextAt(1*s + DefaultTimeout)},
				step{at: 3 * s, ev: ack(0, 0, 2)},
				step{at: 3 * s, ev: ack(1, 0, 2), want: []Action{WriteMetadata{CheckpointID: 2, Timestamp: at(2 * s), Savepoint: true,
					Tasks: map[TaskID]TaskState{tid(0, 0): acked(0, 0, 2), tid(1, 0): acked(1, 0, 2)}}}},
				step{at: 4 * s, ev: MetadataWritten{CheckpointID: 2, Path: "/sp2"}, want: []Action{SavepointDone{Request: 2, CheckpointID: 2, Path: "/sp2"}}},
				step{at: 5 * s, ev: Decline{Task: tid(0, 0), CheckpointID: 1}, want: []Action{
					aborted(1, ReasonDeclined, both...), DiscardCheckpoint{CheckpointID: 1, Savepoint: true, Reason: ReasonDeclined},
					SavepointFailed{Request: 1, CheckpointID: 1, Reason: ReasonDeclined, Message: "task 0/0 declined checkpoint 1"}},
					check: noNext},
			),
		},
		{
			name: "savepoint timeout and storage failure are not counted",
			cfg:  Config{Timeout: 5 * s, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 1 * s, ev: TriggerSavepoint{Request: 1}, want: []Action{persist(2),
					TriggerTasks{CheckpointID: 1, Timestamp: at(1 * s), Tasks: []TaskID{tid(0, 0)}, Mode: ExactlyOnce, Savepoint: true}},
					check: nextAt(6 * s)},
				step{at: 6 * s, ev: Tick{}, want: []Action{
					aborted(1, ReasonExpired, both...), DiscardCheckpoint{CheckpointID: 1, Savepoint: true, Reason: ReasonExpired},
					SavepointFailed{Request: 1, CheckpointID: 1, Reason: ReasonExpired, Message: "checkpoint 1 expired before completing"}}},
				step{at: 7 * s, ev: TriggerSavepoint{Request: 2, Target: "/t"}, want: []Action{persist(3),
					TriggerTasks{CheckpointID: 2, Timestamp: at(7 * s), Tasks: []TaskID{tid(0, 0)}, Mode: ExactlyOnce, Savepoint: true, Target: "/t"}}},
				step{at: 8 * s, ev: ack(0, 0, 2)},
				step{at: 8 * s, ev: ack(1, 0, 2), want: []Action{WriteMetadata{CheckpointID: 2, Timestamp: at(7 * s), Savepoint: true, Target: "/t",
					Tasks: map[TaskID]TaskState{tid(0, 0): acked(0, 0, 2), tid(1, 0): acked(1, 0, 2)}}}},
				step{at: 9 * s, ev: MetadataWritten{CheckpointID: 2, Err: errors.New("denied")}, want: []Action{
					aborted(2, ReasonIOException, both...), withAcks(DiscardCheckpoint{CheckpointID: 2, Savepoint: true, Target: "/t", Reason: ReasonIOException}, tid(0, 0), tid(1, 0)),
					SavepointFailed{Request: 2, CheckpointID: 2, Reason: ReasonIOException, Message: "write metadata of checkpoint 2: denied"}},
					check: counts(0, 2, 0)},
			),
		},
		{
			name: "stop-with-savepoint: suspends periodic checkpoints, commits, subsumes",
			cfg:  Config{Interval: 10 * s, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 10*s, tid(0, 0))}},
				step{at: 11 * s, ev: TriggerSavepoint{Request: 9, Target: "/sp", Stop: true, Drain: true}, want: []Action{
					aborted(1, ReasonCoordinatorSuspend, both...), discard(1, ReasonCoordinatorSuspend),
					persist(3), TriggerTasks{CheckpointID: 2, Timestamp: at(11 * s), Tasks: []TaskID{tid(0, 0)}, Mode: ExactlyOnce,
						Savepoint: true, Target: "/sp", Stop: true, Drain: true}},
					check: nextAt(11*s + DefaultTimeout)},
				step{at: 12 * s, ev: TriggerSavepoint{Request: 10, Stop: true}, want: []Action{
					SavepointFailed{Request: 10, Reason: ReasonTooManyRequests, Message: "a stop-with-savepoint is already in progress or done"}}},
				step{at: 20 * s, ev: Tick{}},
				step{at: 21 * s, ev: ack(0, 0, 2)},
				step{at: 21 * s, ev: ack(1, 0, 2), want: []Action{WriteMetadata{CheckpointID: 2, Timestamp: at(11 * s), Savepoint: true, Target: "/sp",
					Tasks: map[TaskID]TaskState{tid(0, 0): acked(0, 0, 2), tid(1, 0): acked(1, 0, 2)}}}},
				step{at: 22 * s, ev: MetadataWritten{CheckpointID: 2, Path: "/sp/savepoint-2"}, want: []Action{
					SavepointDone{Request: 9, CheckpointID: 2, Path: "/sp/savepoint-2"}, complete(2, both...)},
					check: all(noNext, retained())},
				// The tasks stop after the notification; the source first.
				step{at: 23 * s, ev: TaskFinished{Task: tid(0, 0)}},
				step{at: 30 * s, ev: Tick{}},
				step{at: 31 * s, ev: Stop{}, check: all(noNext, counts(1, 1, 0))},
				step{at: 32 * s, ev: Stop{}},
			),
		},
		{
			name: "stop-with-savepoint that expires resumes periodic checkpoints; declined fails the job",
			cfg:  Config{Interval: 10 * s, Timeout: 5 * s, TolerableFailedCheckpoints: 3, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 1 * s, ev: TriggerSavepoint{Request: 1, Stop: true}, want: []Action{persist(2),
					TriggerTasks{CheckpointID: 1, Timestamp: at(1 * s), Tasks: []TaskID{tid(0, 0)}, Mode: ExactlyOnce, Savepoint: true, Stop: true}},
					check: nextAt(6 * s)},
				step{at: 6 * s, ev: Tick{}, want: []Action{
					aborted(1, ReasonExpired, both...), DiscardCheckpoint{CheckpointID: 1, Savepoint: true, Reason: ReasonExpired},
					SavepointFailed{Request: 1, CheckpointID: 1, Reason: ReasonExpired, Message: "checkpoint 1 expired before completing"}},
					check: nextAt(16 * s)},
				step{at: 16 * s, ev: Tick{}, want: []Action{persist(3), trig(2, 16*s, tid(0, 0))}},
				step{at: 17 * s, ev: TriggerSavepoint{Request: 2, Stop: true}, want: []Action{
					aborted(2, ReasonCoordinatorSuspend, both...), discard(2, ReasonCoordinatorSuspend),
					persist(4), TriggerTasks{CheckpointID: 3, Timestamp: at(17 * s), Tasks: []TaskID{tid(0, 0)}, Mode: ExactlyOnce, Savepoint: true, Stop: true}}},
				// A task declining a synchronous savepoint fails the job, whatever
				// the reason and the tolerance (Flink).
				step{at: 18 * s, ev: Decline{Task: tid(1, 0), CheckpointID: 3, Reason: ReasonTaskNotReady}, want: []Action{
					aborted(3, ReasonTaskNotReady, both...), DiscardCheckpoint{CheckpointID: 3, Savepoint: true, Reason: ReasonTaskNotReady},
					SavepointFailed{Request: 2, CheckpointID: 3, Reason: ReasonTaskNotReady, Message: "task 1/0 declined checkpoint 3"},
					FailJob{Reason: "stop-with-savepoint 3 failed: task 1/0 declined checkpoint 3"}},
					check: noNext},
			),
		},
		{
			name: "stop-with-savepoint that cannot be triggered resumes periodic checkpoints",
			cfg:  Config{Interval: 10 * s, Vertices: chain2(), Tasks: []Task{{ID: tid(0, 0), Running: true}}},
			steps: steps(
				step{at: 3 * s, ev: TriggerSavepoint{Request: 1, Stop: true}, want: []Action{
					SavepointFailed{Request: 1, Reason: ReasonNotAllTasksRunning, Message: "task 1/0 is not running"}},
					check: nextAt(13 * s)},
				step{at: 13 * s, ev: Tick{}, want: []Action{logf("checkpoint not triggered: task 1/0 is not running")}, check: nextAt(23 * s)},
				step{at: 14 * s, ev: TaskRunning{Task: tid(1, 0), Attempt: 1}},
				step{at: 14 * s, ev: TaskRunning{Task: tid(1, 0)}},
				step{at: 23 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 23*s, tid(0, 0))}},
				// Stop while a stop-with-savepoint is pending: nothing resumes.
				step{at: 24 * s, ev: TriggerSavepoint{Request: 2, Stop: true}, want: []Action{
					aborted(1, ReasonCoordinatorSuspend, both...), discard(1, ReasonCoordinatorSuspend),
					persist(3), TriggerTasks{CheckpointID: 2, Timestamp: at(24 * s), Tasks: []TaskID{tid(0, 0)}, Mode: ExactlyOnce, Savepoint: true, Stop: true}}},
				step{at: 25 * s, ev: Stop{}, want: []Action{
					aborted(2, ReasonCoordinatorShutdown, both...), DiscardCheckpoint{CheckpointID: 2, Savepoint: true, Reason: ReasonCoordinatorShutdown},
					SavepointFailed{Request: 2, CheckpointID: 2, Reason: ReasonCoordinatorShutdown, Message: "the job is ending"}},
					check: noNext},
				step{at: 26 * s, ev: Tick{}},
			),
		},
		{
			name: "FLIP-147: finished sources make their downstream a trigger target",
			cfg:  Config{Interval: 10 * s, Vertices: fanIn(), Tasks: running(fanIn())},
			steps: steps(
				step{at: 5 * s, ev: TaskFinished{Task: tid(0, 0)}},
				step{at: 5 * s, ev: TaskFinished{Task: tid(0, 0)}},
				step{at: 5 * s, ev: TaskFinished{Task: tid(0, 1), Attempt: 3}},
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 10*s, tid(0, 1))}},
				step{at: 11 * s, ev: ack(0, 0, 1), want: []Action{
					logf("ignored acknowledgement of checkpoint 1 from task 0/0: not awaited (duplicate, or finished at trigger)")}},
				step{at: 11 * s, ev: Decline{Task: tid(0, 0), CheckpointID: 1}, want: []Action{
					logf("ignored decline of checkpoint 1 from task 0/0: not part of it")}},
				step{at: 11 * s, ev: TaskRunning{Task: tid(0, 0)}},
				step{at: 11 * s, ev: ack(0, 1, 1)},
				step{at: 11 * s, ev: ack(1, 0, 1)},
				// Acknowledged, then finished: its state stays in checkpoint 1.
				step{at: 12 * s, ev: TaskFinished{Task: tid(0, 1)}},
				step{at: 12 * s, ev: ack(2, 0, 1), want: []Action{meta(1, 10*s, map[TaskID]TaskState{
					tid(0, 0): done, tid(0, 1): acked(0, 1, 1), tid(1, 0): acked(1, 0, 1), tid(2, 0): acked(2, 0, 1)})},
					check: func(t *testing.T, c *Coordinator) {
						if h := c.History()[0]; h.NumTasks != 3 || h.NumAcknowledged != 3 {
							t.Errorf("stats %+v", h)
						}
					}},
				// A finished task gets no notification.
				step{at: 13 * s, ev: written(1), want: []Action{complete(1, tid(1, 0), tid(2, 0))}},
				step{at: 20 * s, ev: Tick{}, want: []Action{persist(3), trig(2, 20*s, tid(1, 0))}},
				// Finished before acknowledging: aborted, not counted (tolerable 0).
				step{at: 21 * s, ev: TaskFinished{Task: tid(1, 0)}, want: []Action{
					aborted(2, ReasonTaskClosing, tid(2, 0)), discard(2, ReasonTaskClosing)},
					check: func(t *testing.T, c *Coordinator) {
						if h := c.History()[0]; h.FailureMessage != "task 1/0 finished before acknowledging checkpoint 2" {
							t.Errorf("failure message %q", h.FailureMessage)
						}
					}},
				step{at: 30 * s, ev: Tick{}, want: []Action{persist(4), trig(3, 30*s, tid(2, 0))}, check: nextAt(40 * s)},
				step{at: 31 * s, ev: TaskFinished{Task: tid(2, 0)}, want: []Action{
					aborted(3, ReasonTaskClosing), discard(3, ReasonTaskClosing)},
					check: noNext},
				// All tasks finished: no more checkpoints, no savepoint.
				step{at: 40 * s, ev: Tick{}},
				step{at: 41 * s, ev: TriggerSavepoint{Request: 5}, want: []Action{
					SavepointFailed{Request: 5, Reason: ReasonNotAllTasksRunning, Message: "every task is finished"}}},
			),
		},
		{
			name: "FLIP-147 over forward edges: only the matching downstream subtask is triggered",
			cfg:  Config{Interval: 10 * s, Vertices: forward(), Tasks: running(forward())},
			steps: steps(
				step{at: 5 * s, ev: TaskFinished{Task: tid(0, 0)}},
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 10*s, tid(0, 1), tid(1, 0))}},
				step{at: 11 * s, ev: ack(0, 1, 1)},
				step{at: 11 * s, ev: ack(1, 0, 1)},
				step{at: 11 * s, ev: ack(1, 1, 1), want: []Action{meta(1, 10*s, map[TaskID]TaskState{
					tid(0, 0): done, tid(0, 1): acked(0, 1, 1), tid(1, 0): acked(1, 0, 1), tid(1, 1): acked(1, 1, 1)})}},
			),
		},
		{
			name: "a queued periodic request is dropped when the last task finishes",
			cfg:  Config{Interval: 10 * s, Vertices: []Vertex{vtx(1)}, Tasks: []Task{{ID: tid(0, 0), Running: true}}},
			steps: steps(
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 10*s, tid(0, 0))}},
				step{at: 20 * s, ev: Tick{}},
				step{at: 21 * s, ev: TaskFinished{Task: tid(0, 0)}, want: []Action{aborted(1, ReasonTaskClosing), discard(1, ReasonTaskClosing)},
					check: all(noNext, counts(0, 1, 0))},
			),
		},
		{
			name: "not all tasks running: periodic trigger skipped, no id consumed",
			cfg:  Config{Interval: 10 * s, Vertices: chain2(), Tasks: []Task{{ID: tid(0, 0), Running: true}, {ID: tid(1, 0), Attempt: 2}}},
			steps: steps(
				step{at: 10 * s, ev: Tick{}, want: []Action{logf("checkpoint not triggered: task 1/0 is not running")}},
				step{at: 11 * s, ev: TaskRunning{Task: tid(1, 0), Attempt: 2}},
				step{at: 20 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 20*s, tid(0, 0))}},
				step{at: 21 * s, ev: TaskFinished{Task: tid(1, 0), Attempt: 1}},
				step{at: 21 * s, ev: Acknowledge{Task: tid(1, 0), Attempt: 2, CheckpointID: 1}},
			),
		},
		{
			name: "Stop aborts everything pending, without counting",
			cfg:  Config{Interval: 10 * s, MaxConcurrent: 2, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), trig(1, 10*s, tid(0, 0))}},
				step{at: 11 * s, ev: TriggerSavepoint{Request: 4}, want: []Action{persist(3),
					TriggerTasks{CheckpointID: 2, Timestamp: at(11 * s), Tasks: []TaskID{tid(0, 0)}, Mode: ExactlyOnce, Savepoint: true}}},
				step{at: 12 * s, ev: Stop{}, want: []Action{
					aborted(1, ReasonCoordinatorShutdown, both...), discard(1, ReasonCoordinatorShutdown),
					aborted(2, ReasonCoordinatorShutdown, both...), DiscardCheckpoint{CheckpointID: 2, Savepoint: true, Reason: ReasonCoordinatorShutdown},
					SavepointFailed{Request: 4, CheckpointID: 2, Reason: ReasonCoordinatorShutdown, Message: "the job is ending"}},
					check: all(noNext, counts(0, 2, 0))},
				step{at: 13 * s, ev: ack(0, 0, 1), want: []Action{
					logf("ignored acknowledgement of checkpoint 1 from task 0/0: not pending (late or unknown)"),
					DiscardState{CheckpointID: 1, Task: tid(0, 0), State: stateOf(1, tid(0, 0)), Ended: true}}},
				step{at: 20 * s, ev: Tick{}},
			),
		},
		{
			name: "restored checkpoints keep being subsumed; a restored savepoint is dropped, not deleted",
			cfg: Config{Interval: 10 * s, NumRetained: 2, NextCheckpointID: 8, Vertices: chain2(), Tasks: running(chain2()), Restored: []CompletedCheckpoint{
				{ID: 6, Path: "/cp/chk-6"}, {ID: 3, Path: "/sp/savepoint-3", Savepoint: true}, {ID: 5, Path: "/cp/chk-5"}}},
			steps: steps(
				step{at: 0, ev: Tick{}, check: retained(3, 5, 6)},
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(9), trig(8, 10*s, tid(0, 0))}},
				cpChain2(8, 10*s, 11*s, 12*s, []Action{subsumed(5)}, nil),
				step{at: 12 * s, ev: Tick{}, check: retained(6, 8)},
			),
		},
		{
			name: "at-least-once mode is passed through",
			cfg:  Config{Interval: 10 * s, Mode: AtLeastOnce, AlignedCheckpointTimeout: s, Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 10 * s, ev: Tick{}, want: []Action{persist(2), TriggerTasks{CheckpointID: 1, Timestamp: at(10 * s),
					Tasks: []TaskID{tid(0, 0)}, Mode: AtLeastOnce, AlignedCheckpointTimeout: s}}},
				step{at: 11 * s, ev: TriggerSavepoint{}, want: []Action{persist(3), TriggerTasks{CheckpointID: 2, Timestamp: at(11 * s),
					Tasks: []TaskID{tid(0, 0)}, Mode: AtLeastOnce, Savepoint: true}}},
			),
		},
		{
			name: "no interval: savepoints only",
			cfg:  Config{Vertices: chain2(), Tasks: running(chain2())},
			steps: steps(
				step{at: 100 * s, ev: Tick{}, check: noNext},
				step{at: 101 * s, ev: Event(nil)},
			),
		},
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Interval: -1, Vertices: chain2()}, "checkpoint coordinator: negative duration in configuration"},
		{Config{NumRetained: -1, Vertices: chain2()}, "checkpoint coordinator: negative number in configuration"},
		{Config{Mode: "MAYBE", Vertices: chain2()}, `checkpoint coordinator: unknown mode "MAYBE"`},
		{Config{Unaligned: true, Mode: AtLeastOnce, Vertices: chain2()}, "checkpoint coordinator: unaligned checkpoints require EXACTLY_ONCE and max-concurrent-checkpoints 1"},
		{Config{Unaligned: true, MaxConcurrent: 2, Vertices: chain2()}, "checkpoint coordinator: unaligned checkpoints require EXACTLY_ONCE and max-concurrent-checkpoints 1"},
		{Config{}, "checkpoint coordinator: no vertices"},
		{Config{Vertices: []Vertex{vtx(1), vtx(0, allToAll(0))}}, "checkpoint coordinator: vertex 1 has parallelism 0"},
		{Config{Vertices: []Vertex{vtx(1), vtx(1, allToAll(2))}}, "checkpoint coordinator: vertex 1 reads from unknown vertex 2"},
		{Config{Vertices: []Vertex{vtx(1), vtx(1, allToAll(-1))}}, "checkpoint coordinator: vertex 1 reads from unknown vertex -1"},
		{Config{Vertices: []Vertex{vtx(2), vtx(3, fwd(0))}}, "checkpoint coordinator: vertex 1 (parallelism 3) reads forward from vertex 0 (parallelism 2)"},
		{Config{Vertices: []Vertex{vtx(1, allToAll(1)), vtx(1, allToAll(0))}}, "checkpoint coordinator: vertex 0 is its own upstream"},
		{Config{Vertices: []Vertex{vtx(2, fwd(0))}}, "checkpoint coordinator: vertex 0 is its own upstream"},
		{Config{Vertices: chain2(), Tasks: []Task{{ID: tid(0, 0)}, {ID: tid(0, 0)}}}, "checkpoint coordinator: task 0/0 listed twice"},
		{Config{Vertices: chain2(), Tasks: []Task{{ID: tid(0, 1)}}}, "checkpoint coordinator: task 0/1 is not in the topology"},
		{Config{Vertices: chain2(), Tasks: []Task{{ID: tid(2, 0)}}}, "checkpoint coordinator: task 2/0 is not in the topology"},
		{Config{Vertices: chain2(), Tasks: []Task{{ID: tid(-1, 0)}}}, "checkpoint coordinator: task -1/0 is not in the topology"},
		{Config{Vertices: chain2(), Tasks: running(chain2()), NextCheckpointID: 5, Restored: []CompletedCheckpoint{{ID: 5}}},
			"checkpoint coordinator: restored checkpoint 5 is not below the next checkpoint id 5"},
		{Config{Vertices: chain2(), Tasks: running(chain2()), NextCheckpointID: 5, Restored: []CompletedCheckpoint{{ID: 0}}},
			"checkpoint coordinator: restored checkpoint 0 is not below the next checkpoint id 5"},
		{Config{Vertices: chain2(), Tasks: running(chain2()), NextCheckpointID: 5, Restored: []CompletedCheckpoint{{ID: 2}, {ID: 2}}},
			"checkpoint coordinator: restored checkpoint 2 listed twice"},
	} {
		c, err := New(tc.cfg, t0)
		if err == nil || err.Error() != tc.want {
			t.Errorf("New(%+v) = %v, %v; want error %q", tc.cfg, c, err, tc.want)
		}
	}
}

func TestHistoryIsBounded(t *testing.T) {
	c, err := New(Config{Vertices: []Vertex{vtx(1)}, Tasks: []Task{{ID: tid(0, 0), Running: true}}, NextCheckpointID: 1}, t0)
	if err != nil {
		t.Fatal(err)
	}
	const n = HistorySize + 5
	for i := int64(1); i <= n; i++ {
		now := at(time.Duration(i) * s)
		c.Step(now, TriggerSavepoint{Request: uint64(i)})
		c.Step(now, ack(0, 0, i))
		got := c.Step(now, MetadataWritten{CheckpointID: i, Path: "p"})
		if want := []Action{SavepointDone{Request: uint64(i), CheckpointID: i, Path: "p"}}; !reflect.DeepEqual(got, want) {
			t.Fatalf("savepoint %d: %s", i, show(got))
		}
	}
	h := c.History()
	if len(h) != HistorySize || h[0].ID != n || h[HistorySize-1].ID != n-HistorySize+1 {
		t.Fatalf("History: %d entries, newest %d, oldest %d", len(h), h[0].ID, h[len(h)-1].ID)
	}
	if a, b, d := c.Counts(); a != n || b != 0 || d != 0 {
		t.Fatalf("Counts = %d, %d, %d", a, b, d)
	}
	if c.NextCheckpointID() != n+1 {
		t.Fatalf("NextCheckpointID = %d", c.NextCheckpointID())
	}
}

// Savepoints beyond MaxPendingSavepoints are refused until one ends.
func TestPendingSavepointsAreBounded(t *testing.T) {
	c, err := New(Config{Vertices: chain2(), Tasks: running(chain2()), MaxConcurrent: 1}, t0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= MaxPendingSavepoints; i++ {
		got := c.Step(t0, TriggerSavepoint{Request: uint64(i)})
		if len(got) != 2 {
			t.Fatalf("savepoint %d: %s", i, show(got))
		}
	}
	refused := SavepointFailed{Request: 99, Reason: ReasonTooManyRequests, Message: "10 savepoints are in progress, the most at once"}
	for _, stop := range []bool{false, true} {
		if got := c.Step(t0, TriggerSavepoint{Request: 99, Stop: stop}); !reflect.DeepEqual(got, []Action{refused}) {
			t.Fatalf("savepoint beyond the bound (stop %t): %s", stop, show(got))
		}
	}
	c.Step(t0, Decline{Task: tid(0, 0), CheckpointID: 1})
	if got := c.Step(t0, TriggerSavepoint{Request: 11}); len(got) != 2 {
		t.Fatalf("savepoint after one ended: %s", show(got))
	}
}

func TestFailureReasonCounted(t *testing.T) {
	counted := map[FailureReason]bool{ReasonExpired: true, ReasonDeclined: true, ReasonAsyncException: true, ReasonIOException: true}
	for _, r := range []FailureReason{ReasonExpired, ReasonDeclined, ReasonAsyncException, ReasonIOException, ReasonTaskNotReady,
		ReasonTaskClosing, ReasonSubsumed, ReasonNotAllTasksRunning, ReasonTooManyRequests, ReasonCoordinatorSuspend,
		ReasonCoordinatorShutdown, ReasonJobFailure, ReasonTriggerFailure} {
		if r.Counted() != counted[r] {
			t.Errorf("%s.Counted() = %v", r, r.Counted())
		}
	}
}

// TestDeterministic replays a scenario twice: the same events at the same
// times must give the same actions (no map order leaks out).
func TestDeterministic(t *testing.T) {
	sc := scenarios()[0]
	for i := 0; i < 20; i++ {
		run(t, sc)
	}
	if got := tid(3, 4).String(); got != "3/4" {
		t.Fatalf("TaskID.String = %q", got)
	}
}

// TestMarkers checks the sealed Event and Action sets against what must
// know all of them: Step has a case for every Event (an event without one
// would be dropped in silence, as Step has no default), and the caller's
// loop in doc.go names every Action (a caller copying it would drop a new
// one). The package's source is read, so a new marker method fails here
// until the lists, Step and doc.go agree.
func TestMarkers(t *testing.T) {
	wantEvents := []string{"Acknowledge", "Decline", "MetadataWritten", "Stop", "TaskFinished", "TaskRunning", "Tick",
		"TriggerFailed", "TriggerSavepoint"}
	wantActions := []string{"DiscardCheckpoint", "DiscardState", "FailJob", "Log", "NotifyAborted", "NotifyComplete",
		"PersistCheckpointID", "SavepointDone", "SavepointFailed", "TriggerTasks", "WriteMetadata"}

	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	markers := map[string][]string{} // marker method -> receiver types
	var stepCases []string
	var doc string
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		if f.Doc != nil {
			doc += f.Doc.Text()
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv == nil {
				continue
			}
			recv := types.ExprString(fn.Recv.List[0].Type)
			if name := fn.Name.Name; name == "isEvent" || name == "isAction" {
				markers[name] = append(markers[name], recv)
			}
			if fn.Name.Name != "Step" || recv != "*Coordinator" {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if sw, ok := n.(*ast.TypeSwitchStmt); ok {
					for _, cc := range sw.Body.List {
						for _, e := range cc.(*ast.CaseClause).List {
							stepCases = append(stepCases, types.ExprString(e))
						}
					}
					return false
				}
				return true
			})
		}
	}
	var docActions []string
	for _, m := range regexp.MustCompile(`coordinator\.([A-Za-z]+)`).FindAllStringSubmatch(doc, -1) {
		if slices.Contains(wantActions, m[1]) && !slices.Contains(docActions, m[1]) {
			docActions = append(docActions, m[1])
		}
	}
	for _, l := range [][]string{markers["isEvent"], markers["isAction"], stepCases, docActions} {
		slices.Sort(l)
	}
	for _, c := range []struct {
		what      string
		got, want []string
	}{
		{"types with isEvent", markers["isEvent"], wantEvents},
		{"types with isAction", markers["isAction"], wantActions},
		{"cases of Step's type switch", stepCases, wantEvents},
		{"actions the caller's loop in doc.go names", docActions, wantActions},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s:\n got %v\nwant %v", c.what, c.got, c.want)
		}
	}
	// The markers themselves, called once each.
	for _, e := range []Event{Tick{}, TriggerSavepoint{}, Acknowledge{}, Decline{}, TaskRunning{}, TaskFinished{},
		MetadataWritten{}, TriggerFailed{}, Stop{}} {
		e.isEvent()
	}
	for _, a := range []Action{PersistCheckpointID{}, TriggerTasks{}, WriteMetadata{}, NotifyComplete{}, NotifyAborted{},
		DiscardCheckpoint{}, DiscardState{}, FailJob{}, SavepointDone{}, SavepointFailed{}, Log{}} {
		a.isAction()
	}
}

// TestSubtaskStatsOrdered: the per-subtask statistics are ordered by task
// whatever the order of the acknowledgements, and History copies them.
func TestSubtaskStatsOrdered(t *testing.T) {
	c, err := New(Config{Interval: 10 * s, Vertices: forward(), Tasks: running(forward())}, t0)
	if err != nil {
		t.Fatal(err)
	}
	c.Step(at(10*s), Tick{})
	for i, task := range []TaskID{tid(1, 1), tid(0, 1), tid(1, 0), tid(0, 0)} {
		c.Step(at(11*s+time.Duration(i)*s), ack(task.Vertex, task.Subtask, 1))
	}
	h := c.History()
	var got []string
	for _, st := range h[0].Subtasks {
		got = append(got, fmt.Sprintf("%v@%v sync=%v async=%v", st.Task, st.AckTime.Sub(t0), st.SyncDuration, st.AsyncDuration))
	}
	want := []string{"0/0@14s sync=1µs async=2ms", "0/1@12s sync=1µs async=2ms", "1/0@13s sync=2µs async=3ms", "1/1@11s sync=2µs async=3ms"}
	if !slices.Equal(got, want) {
		t.Fatalf("Subtasks = %q, want %q", got, want)
	}
	h[0].Subtasks[0].StateSize = -1
	if c.History()[0].Subtasks[0].StateSize == -1 {
		t.Error("History shares its Subtasks with the coordinator")
	}
}
