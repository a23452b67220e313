package scheduler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/jobgraph"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// pipeline is src (parallelism p0) -rebalance-> sink (parallelism p1).
func pipeline(p0, p1 int) []*jobgraph.JobVertex {
	return []*jobgraph.JobVertex{
		{Index: 0, Parallelism: p0, Operators: []*jobgraph.Operator{{ID: "src", Type: "gen", Parallelism: p0}},
			Outputs: []jobgraph.VertexOutput{{OutputIndex: 0, ToVertex: 1, ToOperator: "sink", Partition: jobgraph.Rebalance}}},
		{Index: 1, Parallelism: p1, Operators: []*jobgraph.Operator{{ID: "sink", Type: "print", Parallelism: p1,
			Inputs: []jobgraph.Input{{From: "src", Partition: jobgraph.Rebalance}}}},
			Inputs: []jobgraph.VertexInput{{FromVertex: 0, FromOperator: "src", Partition: jobgraph.Rebalance}}},
	}
}

// step is one row of a scenario: an event at t0+at, and the actions it must
// produce, rendered by render.
type step struct {
	at   time.Duration
	ev   Event
	want []string
}

func render(a Action) string {
	switch a := a.(type) {
	case Deploy:
		return fmt.Sprintf("deploy %s %s", a.TaskManagerID, ExecutionAttemptIDFromProto(a.TDD.Execution))
	case ExecutionStateChanged:
		return fmt.Sprintf("task %s %s", a.Execution, a.State)
	case CancelTask:
		return fmt.Sprintf("cancel %s %s", a.TaskManagerID, a.Execution)
	case ReleaseJob:
		return fmt.Sprintf("release %s %s", a.TaskManagerID, a.JobID)
	case TaskManagerAdded:
		return fmt.Sprintf("tm+ %s#%d %s", a.ID, a.Instance, a.RPCAddress)
	case TaskManagerRemoved:
		return fmt.Sprintf("tm- %s#%d: %s", a.ID, a.Instance, a.Reason)
	case LoadRestoreState:
		return fmt.Sprintf("load %s #%d", a.JobID, a.Request)
	case JobRestarted:
		if a.CheckpointID == 0 {
			return fmt.Sprintf("restarted %s %d from scratch", a.JobID, a.Restarts)
		}
		return fmt.Sprintf("restarted %s %d from %d %s", a.JobID, a.Restarts, a.CheckpointID, a.Location)
	case JobRecovered:
		return fmt.Sprintf("recovered %s failure=%v detected=%v delay=%v redeployed=%v running=%v checkpoint=%d", a.JobID,
			a.FailureTime.Sub(t0), a.Detected.Sub(t0), a.RestartDelay, a.Redeployed.Sub(t0), a.Running.Sub(t0), a.CheckpointID)
	case JobRemoved:
		return fmt.Sprintf("removed %s: %s", a.JobID, a.Reason)
	case JobStateChanged:
		s := fmt.Sprintf("job %s %s -> %s", a.JobID, a.From, a.To)
		if a.Message != "" {
			s += ": " + a.Message
		}
		return s
	}
	return fmt.Sprintf("%T", a)
}

func reg(id string, slots int) Event {
	return TaskManagerRegistered{ID: id, RPCAddress: id + ":1", DataAddress: id + ":2", Slots: slots}
}

func submit(id string, vs []*jobgraph.JobVertex) Event {
	return JobSubmitted{JobID: id, Name: "name-" + id, MaxParallelism: 128, Vertices: vs, SlotRequestTimeout: 5 * time.Minute}
}

func report(tm, job string, v, st, attempt int, state ExecutionState, failure string) Event {
	return TaskStateChanged{TaskManagerID: tm, Execution: ExecutionAttemptID{JobID: job, Vertex: v, Subtask: st, Attempt: attempt}, State: state, Failure: failure}
}

// runScenario feeds the steps to a new scheduler and checks every step's actions.
func runScenario(t *testing.T, cfg Config, steps []step) *Scheduler {
	t.Helper()
	s := New(cfg)
	for i, st := range steps {
		var got []string
		for _, a := range s.Step(t0.Add(st.at), st.ev) {
			got = append(got, render(a))
		}
		if strings.Join(got, "\n") != strings.Join(st.want, "\n") {
			t.Fatalf("step %d (%T %+v):\ngot:\n  %s\nwant:\n  %s", i, st.ev, st.ev, strings.Join(got, "\n  "), strings.Join(st.want, "\n  "))
		}
		checkCounts(t, s)
	}
	return s
}

var spread = Config{HeartbeatTimeout: 50 * time.Second, EvenlySpreadOutSlots: true}

const (
	lostA = "TaskManager a (data a:2) lost: "
	lostB = "TaskManager b (data b:2) lost: "
)

func TestScenarios(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		steps []step
		// checks on the final state
		jobState JobState
		status   string
		total    int
		free     int
	}{
		{
			name: "all tasks finished -> FINISHED, slots freed, job released",
			steps: []step{
				{0, reg("a", 2), []string{"tm+ a#1 a:1"}},
				{0, submit("j", pipeline(2, 1)), []string{
					"job j  -> CREATED", "deploy a j/0/0#0", "deploy a j/0/1#0", "deploy a j/1/0#0", "job j CREATED -> RUNNING"}},
				{1, report("a", "j", 0, 0, 0, ExecutionRunning, ""), []string{"task j/0/0#0 RUNNING"}},
				{1, report("a", "j", 0, 0, 0, ExecutionFinished, ""), []string{"task j/0/0#0 FINISHED"}},
				{1, report("a", "j", 0, 1, 0, ExecutionFinished, ""), []string{"task j/0/1#0 FINISHED"}},
				{2, report("a", "j", 1, 0, 0, ExecutionFinished, ""), []string{"task j/1/0#0 FINISHED", "job j RUNNING -> FINISHED", "release a j"}},
			},
			jobState: JobFinished, total: 2, free: 2,
		},
		{
			name: "waiting for slots, then deployed when enough arrive (all or nothing)",
			steps: []step{
				{0, submit("j", pipeline(4, 2)), []string{"job j  -> CREATED"}},
				{1, reg("a", 2), []string{"tm+ a#1 a:1"}},
				{2, reg("b", 1), []string{"tm+ b#2 b:1"}},
				{3, reg("c", 2), []string{"tm+ c#3 c:1",
					// a: 2, c: 2, b: 1 -> a, c, a (tie a/b/c... a=1,b=1,c=1 -> a), b
					"deploy a j/0/0#0", "deploy c j/0/1#0", "deploy a j/0/2#0", "deploy b j/0/3#0",
					"deploy a j/1/0#0", "deploy c j/1/1#0", "job j CREATED -> RUNNING"}},
			},
			jobState: JobRunning, total: 5, free: 1,
		},
		{
			name: "status message while waiting",
			steps: []step{
				{0, reg("a", 2), []string{"tm+ a#1 a:1"}},
				{0, submit("j", pipeline(4, 1)), []string{"job j  -> CREATED"}},
			},
			jobState: JobCreated, status: "waiting for 2 more task slots: needs 4, 2 free", total: 2, free: 2,
		},
		{
			name: "one missing slot is singular",
			steps: []step{
				{0, reg("a", 3), []string{"tm+ a#1 a:1"}},
				{0, submit("j", pipeline(4, 1)), []string{"job j  -> CREATED"}},
			},
			jobState: JobCreated, status: "waiting for 1 more task slot: needs 4, 3 free", total: 3, free: 3,
		},
		{
			name: "slot.request.timeout -> FAILED",
			steps: []step{
				{0, reg("a", 2), []string{"tm+ a#1 a:1"}},
				{0, submit("j", pipeline(4, 1)), []string{"job j  -> CREATED"}},
				{4*time.Minute + 30*time.Second, HeartbeatReceived{TaskManagerID: "a"}, nil},
				{4*time.Minute + 59*time.Second, Tick{}, nil},
				{5 * time.Minute, Tick{}, []string{"job j CREATED -> FAILED: could not allocate 4 task slots within slot.request.timeout (5m0s): 2 free"}},
				{6 * time.Minute, reg("b", 2), []string{"tm+ b#2 b:1"}}, // too late: nothing deployed
			},
			jobState: JobFailed, status: "could not allocate 4 task slots within slot.request.timeout (5m0s): 2 free", total: 4, free: 4,
		},
		{
			name: "a task failed -> FAILING with the root cause, others canceled, then FAILED",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, reg("b", 1), []string{"tm+ b#2 b:1"}},
				{0, submit("j", pipeline(2, 2)), []string{"job j  -> CREATED",
					"deploy a j/0/0#0", "deploy b j/0/1#0", "deploy a j/1/0#0", "deploy b j/1/1#0", "job j CREATED -> RUNNING"}},
				{1, report("a", "j", 0, 0, 0, ExecutionRunning, ""), []string{"task j/0/0#0 RUNNING"}},
				{1, report("a", "j", 1, 0, 0, ExecutionFinished, ""), []string{"task j/1/0#0 FINISHED"}},
				{2, report("b", "j", 0, 1, 0, ExecutionFailed, "boom"), []string{
					"cancel a j/0/0#0", "cancel b j/1/1#0", "job j RUNNING -> FAILING: src subtask 1 failed: boom"}},
				// A second failure while failing does not replace the root cause.
				{3, report("a", "j", 0, 0, 0, ExecutionFailed, "interrupted"), nil},
				{3, report("b", "j", 1, 1, 0, ExecutionRunning, ""), nil}, // late RUNNING: stays CANCELING
				{4, report("b", "j", 1, 1, 0, ExecutionCanceled, ""), []string{
					"job j FAILING -> FAILED: src subtask 1 failed: boom", "release a j", "release b j"}},
			},
			jobState: JobFailed, status: "src subtask 1 failed: boom", total: 2, free: 2,
		},
		{
			name: "a failure without a reason still names one",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, submit("j", pipeline(1, 1)), []string{"job j  -> CREATED", "deploy a j/0/0#0", "deploy a j/1/0#0", "job j CREATED -> RUNNING"}},
				{1, report("a", "j", 1, 0, 0, ExecutionFailed, ""), []string{"cancel a j/0/0#0", "job j RUNNING -> FAILING: sink subtask 0 failed: failed without a reason"}},
				{2, report("a", "j", 0, 0, 0, ExecutionFinished, ""), []string{"job j FAILING -> FAILED: sink subtask 0 failed: failed without a reason", "release a j"}},
			},
			jobState: JobFailed, status: "sink subtask 0 failed: failed without a reason", total: 1, free: 1,
		},
		{
			name: "a global failure (checkpoint failures) fails the whole job with its cause",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, submit("j", pipeline(1, 1)), []string{"job j  -> CREATED", "deploy a j/0/0#0", "deploy a j/1/0#0", "job j CREATED -> RUNNING"}},
				{1, report("a", "j", 0, 0, 0, ExecutionRunning, ""), []string{"task j/0/0#0 RUNNING"}},
				{2, GlobalFailure{JobID: "j", Cause: "exceeded checkpoint tolerable failure threshold"}, []string{
					"cancel a j/0/0#0", "cancel a j/1/0#0", "job j RUNNING -> FAILING: exceeded checkpoint tolerable failure threshold"}},
				{2, GlobalFailure{JobID: "j", Cause: "second"}, nil}, // the first cause stays
				{2, GlobalFailure{JobID: "nope", Cause: "unknown job"}, nil},
				{3, report("a", "j", 0, 0, 0, ExecutionCanceled, ""), nil},
				{3, report("a", "j", 1, 0, 0, ExecutionCanceled, ""), []string{
					"job j FAILING -> FAILED: exceeded checkpoint tolerable failure threshold", "release a j"}},
			},
			jobState: JobFailed, status: "exceeded checkpoint tolerable failure threshold", total: 1, free: 1,
		},
		{
			name: "a task canceled without a request fails the job",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, submit("j", pipeline(1, 1)), []string{"job j  -> CREATED", "deploy a j/0/0#0", "deploy a j/1/0#0", "job j CREATED -> RUNNING"}},
				{1, report("a", "j", 0, 0, 0, ExecutionCanceled, ""), []string{"cancel a j/1/0#0", "job j RUNNING -> FAILING: src subtask 0 failed: canceled without a cancel request"}},
			},
			jobState: JobFailing, status: "src subtask 0 failed: canceled without a cancel request", total: 1, free: 0,
		},
		{
			name: "cancel -> CANCELING -> CANCELED once every task is terminal",
			steps: []step{
				{0, reg("a", 2), []string{"tm+ a#1 a:1"}},
				{0, submit("j", pipeline(2, 1)), []string{"job j  -> CREATED", "deploy a j/0/0#0", "deploy a j/0/1#0", "deploy a j/1/0#0", "job j CREATED -> RUNNING"}},
				{1, report("a", "j", 0, 1, 0, ExecutionFinished, ""), []string{"task j/0/1#0 FINISHED"}},
				{2, CancelRequested{JobID: "j"}, []string{"cancel a j/0/0#0", "cancel a j/1/0#0", "job j RUNNING -> CANCELING"}},
				{2, CancelRequested{JobID: "j"}, nil}, // idempotent
				{3, report("a", "j", 0, 0, 0, ExecutionCanceled, ""), nil},
				{3, report("a", "j", 1, 0, 0, ExecutionFailed, "interrupted while canceling"), []string{"job j CANCELING -> CANCELED", "release a j"}},
				{4, CancelRequested{JobID: "j"}, nil},
			},
			jobState: JobCanceled, total: 2, free: 2,
		},
		{
			name: "cancel while waiting for slots -> CANCELED at once",
			steps: []step{
				{0, submit("j", pipeline(2, 1)), []string{"job j  -> CREATED"}},
				{1, CancelRequested{JobID: "j"}, []string{"job j CREATED -> CANCELED"}},
				{2, reg("a", 2), []string{"tm+ a#1 a:1"}},
				{3, CancelRequested{JobID: "unknown"}, nil},
			},
			jobState: JobCanceled, total: 2, free: 2,
		},
		{
			name: "cancel while failing -> CANCELED",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, submit("j", pipeline(1, 1)), []string{"job j  -> CREATED", "deploy a j/0/0#0", "deploy a j/1/0#0", "job j CREATED -> RUNNING"}},
				{1, report("a", "j", 1, 0, 0, ExecutionFailed, "x"), []string{"cancel a j/0/0#0", "job j RUNNING -> FAILING: sink subtask 0 failed: x"}},
				{2, CancelRequested{JobID: "j"}, []string{"job j FAILING -> CANCELING: sink subtask 0 failed: x"}},
				{3, report("a", "j", 0, 0, 0, ExecutionCanceled, ""), []string{"job j CANCELING -> CANCELED: sink subtask 0 failed: x", "release a j"}},
			},
			jobState: JobCanceled, status: "sink subtask 0 failed: x", total: 1, free: 1,
		},
		{
			name: "TaskManager lost (stream closed) -> FAILED naming it; its slots are gone",
			steps: []step{
				{0, reg("a", 2), []string{"tm+ a#1 a:1"}},
				{0, reg("b", 2), []string{"tm+ b#2 b:1"}},
				{0, submit("j", pipeline(1, 1)), []string{"job j  -> CREATED", "deploy a j/0/0#0", "deploy a j/1/0#0", "job j CREATED -> RUNNING"}},
				{1, TaskManagerLost{ID: "a", Instance: 1, Reason: "heartbeat stream closed"}, []string{
					"tm- a#1: " + lostA + "heartbeat stream closed",
					"job j RUNNING -> FAILED: " + lostA + "heartbeat stream closed"}},
				{2, TaskManagerLost{ID: "a", Reason: "again"}, nil}, // unknown now
			},
			jobState: JobFailed, status: lostA + "heartbeat stream closed", total: 2, free: 2,
		},
		{
			name: "TaskManager lost with tasks elsewhere -> FAILING until they are canceled",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, reg("b", 1), []string{"tm+ b#2 b:1"}},
				{0, submit("j", pipeline(2, 1)), []string{"job j  -> CREATED", "deploy a j/0/0#0", "deploy b j/0/1#0", "deploy a j/1/0#0", "job j CREATED -> RUNNING"}},
				{1, report("b", "j", 0, 1, 0, ExecutionRunning, ""), []string{"task j/0/1#0 RUNNING"}},
				{2, TaskManagerLost{ID: "a", Reason: "heartbeat stream closed"}, []string{
					"tm- a#1: " + lostA + "heartbeat stream closed",
					"cancel b j/0/1#0",
					"job j RUNNING -> FAILING: " + lostA + "heartbeat stream closed"}},
				{3, report("b", "j", 0, 1, 0, ExecutionCanceled, ""), []string{
					"job j FAILING -> FAILED: " + lostA + "heartbeat stream closed", "release b j"}},
			},
			jobState: JobFailed, status: lostA + "heartbeat stream closed", total: 1, free: 1,
		},
		{
			name: "a TaskManager lost while failing becomes the root cause (its consumers failed first)",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, reg("b", 1), []string{"tm+ b#2 b:1"}},
				{0, reg("c", 1), []string{"tm+ c#3 c:1"}},
				{0, submit("j", pipeline(3, 3)), []string{"job j  -> CREATED",
					"deploy a j/0/0#0", "deploy b j/0/1#0", "deploy c j/0/2#0", "deploy a j/1/0#0", "deploy b j/1/1#0", "deploy c j/1/2#0", "job j CREATED -> RUNNING"}},
				{1, report("b", "j", 1, 1, 0, ExecutionFailed, "connection closed by producer"), []string{
					"cancel a j/0/0#0", "cancel b j/0/1#0", "cancel c j/0/2#0", "cancel a j/1/0#0", "cancel c j/1/2#0",
					"job j RUNNING -> FAILING: sink subtask 1 failed: connection closed by producer"}},
				{1, TaskManagerLost{ID: "a", Reason: "heartbeat stream closed"}, []string{"tm- a#1: " + lostA + "heartbeat stream closed"}},
				// A second loss does not replace the first.
				{2, TaskManagerLost{ID: "c", Reason: "heartbeat stream closed"}, []string{"tm- c#3: TaskManager c (data c:2) lost: heartbeat stream closed"}},
				{3, report("b", "j", 0, 1, 0, ExecutionCanceled, ""), []string{
					"job j FAILING -> FAILED: " + lostA + "heartbeat stream closed", "release b j"}},
			},
			jobState: JobFailed, status: lostA + "heartbeat stream closed", total: 1, free: 1,
		},
		{
			name: "no heartbeat for heartbeat.timeout -> lost",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, reg("b", 1), []string{"tm+ b#2 b:1"}},
				{0, submit("j", pipeline(1, 1)), []string{"job j  -> CREATED", "deploy a j/0/0#0", "deploy a j/1/0#0", "job j CREATED -> RUNNING"}},
				{30 * time.Second, HeartbeatReceived{TaskManagerID: "a"}, nil},
				{50 * time.Second, Tick{}, nil},
				{51 * time.Second, Tick{}, []string{"tm- b#2: " + lostB + "no heartbeat for 50s"}},
				{80 * time.Second, Tick{}, nil},
				{81 * time.Second, Tick{}, []string{
					"tm- a#1: " + lostA + "no heartbeat for 50s",
					"job j RUNNING -> FAILED: " + lostA + "no heartbeat for 50s"}},
			},
			jobState: JobFailed, status: lostA + "no heartbeat for 50s", total: 0, free: 0,
		},
		{
			name: "re-registration replaces the old one and fails its tasks; old stream fenced",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, submit("j", pipeline(1, 1)), []string{"job j  -> CREATED", "deploy a j/0/0#0", "deploy a j/1/0#0", "job j CREATED -> RUNNING"}},
				{1, reg("a", 1), []string{
					"tm- a#1: " + lostA + "re-registered",
					"job j RUNNING -> FAILED: " + lostA + "re-registered",
					"tm+ a#2 a:1"}},
				{2, TaskManagerLost{ID: "a", Instance: 1, Reason: "heartbeat stream closed"}, nil},
				{3, report("a", "j", 0, 0, 0, ExecutionRunning, ""), []string{"cancel a j/0/0#0"}}, // zombie
			},
			jobState: JobFailed, status: lostA + "re-registered", total: 1, free: 1,
		},
		{
			name: "attempt fencing: stale, duplicate and misplaced updates are ignored",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, reg("b", 1), []string{"tm+ b#2 b:1"}},
				{0, submit("j", pipeline(1, 1)), []string{"job j  -> CREATED", "deploy a j/0/0#0", "deploy a j/1/0#0", "job j CREATED -> RUNNING"}},
				{1, report("a", "j", 0, 0, 1, ExecutionFailed, "other attempt"), nil},
				{1, report("a", "j", 0, 0, -1, ExecutionFailed, "other attempt"), nil},
				{1, report("b", "j", 0, 0, 0, ExecutionFailed, "wrong taskmanager"), nil},
				{1, report("a", "j", 5, 0, 0, ExecutionFailed, "no such vertex"), nil},
				{1, report("a", "j", 0, 3, 0, ExecutionFailed, "no such subtask"), nil},
				{1, report("a", "x", 0, 0, 0, ExecutionFailed, "no such job"), nil},
				{1, report("b", "j", 0, 0, 0, ExecutionRunning, ""), []string{"cancel b j/0/0#0"}},       // zombie on b
				{1, report("c", "j", 0, 0, 0, ExecutionRunning, ""), nil},                                // unknown TM: nobody to tell
				{1, report("a", "j", 0, 0, 0, ExecutionState("DEPLOYING"), ""), nil},                     // not a report a TM makes
				{2, report("a", "j", 0, 0, 0, ExecutionFinished, ""), []string{"task j/0/0#0 FINISHED"}}, // accepted
				{3, report("a", "j", 0, 0, 0, ExecutionFailed, "duplicate after finish"), nil},           // terminal: ignored
				{4, report("a", "j", 1, 0, 0, ExecutionFinished, ""), []string{"task j/1/0#0 FINISHED", "job j RUNNING -> FINISHED", "release a j"}},
				{5, report("a", "j", 1, 0, 0, ExecutionFinished, ""), nil},
			},
			jobState: JobFinished, total: 2, free: 2,
		},
		{
			name: "waiting jobs get slots in submission order when a job ends",
			steps: []step{
				{0, reg("a", 2), []string{"tm+ a#1 a:1"}},
				{0, submit("j1", pipeline(2, 2)), []string{"job j1  -> CREATED", "deploy a j1/0/0#0", "deploy a j1/0/1#0", "deploy a j1/1/0#0", "deploy a j1/1/1#0", "job j1 CREATED -> RUNNING"}},
				{1, submit("j2", pipeline(1, 1)), []string{"job j2  -> CREATED"}},
				{2, CancelRequested{JobID: "j1"}, []string{"cancel a j1/0/0#0", "cancel a j1/0/1#0", "cancel a j1/1/0#0", "cancel a j1/1/1#0", "job j1 RUNNING -> CANCELING"}},
				{3, report("a", "j1", 0, 0, 0, ExecutionCanceled, ""), nil},
				{3, report("a", "j1", 0, 1, 0, ExecutionCanceled, ""), nil},
				{3, report("a", "j1", 1, 0, 0, ExecutionCanceled, ""), nil},
				{4, report("a", "j1", 1, 1, 0, ExecutionCanceled, ""), []string{
					"job j1 CANCELING -> CANCELED", "release a j1",
					"deploy a j2/0/0#0", "deploy a j2/1/0#0", "job j2 CREATED -> RUNNING"}},
			},
			jobState: JobRunning, total: 2, free: 1,
		},
		{
			name: "evenly spread: most free slots first, ties to the lowest id",
			cfg:  spread,
			steps: []step{
				{0, reg("b", 2), []string{"tm+ b#1 b:1"}},
				{0, reg("a", 4), []string{"tm+ a#2 a:1"}},
				{0, submit("j", pipeline(4, 1)), []string{"job j  -> CREATED",
					"deploy a j/0/0#0", "deploy a j/0/1#0", "deploy a j/0/2#0", "deploy b j/0/3#0", "deploy a j/1/0#0", "job j CREATED -> RUNNING"}},
			},
			jobState: JobRunning, total: 6, free: 2,
		},
		{
			name: "not spread: TaskManagers filled in id order",
			cfg:  Config{HeartbeatTimeout: 50 * time.Second},
			steps: []step{
				{0, reg("b", 2), []string{"tm+ b#1 b:1"}},
				{0, reg("a", 3), []string{"tm+ a#2 a:1"}},
				{0, submit("j", pipeline(4, 1)), []string{"job j  -> CREATED",
					"deploy a j/0/0#0", "deploy a j/0/1#0", "deploy a j/0/2#0", "deploy b j/0/3#0", "deploy a j/1/0#0", "job j CREATED -> RUNNING"}},
			},
			jobState: JobRunning, total: 5, free: 1,
		},
		{
			name: "a malformed graph fails the job without deploying",
			steps: []step{
				{0, reg("a", 2), []string{"tm+ a#1 a:1"}},
				{0, submit("j", pipeline(2, 1)[1:]), []string{"job j  -> CREATED", "job j CREATED -> FAILED: invalid job graph: vertex 0 is malformed"}},
				{0, submit("j", pipeline(1, 1)), nil}, // duplicate id
			},
			jobState: JobFailed, status: "invalid job graph: vertex 0 is malformed", total: 2, free: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg == (Config{}) {
				cfg = spread
			}
			s := runScenario(t, cfg, tt.steps)
			jobID := "j"
			if _, ok := s.jobs["j2"]; ok {
				jobID = "j2"
			}
			d, ok := s.JobDetails(jobID)
			if !ok {
				t.Fatalf("job %s unknown", jobID)
			}
			if JobState(d.State) != tt.jobState || d.StatusMessage != tt.status {
				t.Fatalf("job %s: state %s %q, want %s %q", jobID, d.State, d.StatusMessage, tt.jobState, tt.status)
			}
			if total, free := s.SlotCounts(); total != tt.total || free != tt.free {
				t.Fatalf("slots total/free = %d/%d, want %d/%d", total, free, tt.total, tt.free)
			}
		})
	}
}

func TestMalformedGraphs(t *testing.T) {
	noMatch := pipeline(1, 1)
	noMatch[0].Outputs[0].InputIndex = 3
	badFrom := pipeline(1, 1)
	badFrom[1].Inputs[0].FromVertex = 7
	badTo := pipeline(1, 1)
	badTo[0].Outputs[0].ToVertex = -1
	fwd := pipeline(2, 1)
	fwd[1].Inputs[0].Partition = jobgraph.Forward
	noOps := pipeline(1, 1)
	noOps[1].Operators = nil
	badJSON := pipeline(1, 1)
	badJSON[0].Operators[0].Properties = map[string]any{"f": func() {}}
	for _, tc := range []struct {
		vs   []*jobgraph.JobVertex
		want string
	}{
		{nil, "job has no operators"},
		{noMatch, "invalid job graph: vertex 1 input 0 has no matching output in vertex 0"},
		{badFrom, "invalid job graph: vertex 1 reads from unknown vertex 7"},
		{badTo, "invalid job graph: vertex 0 writes to unknown vertex -1"},
		{fwd, "invalid job graph: forward edge from vertex 0 to 1 changes parallelism"},
		{noOps, "invalid job graph: vertex 1 is malformed"},
		{badJSON, `encode operator "src": json: unsupported type: func()`},
	} {
		s := New(spread)
		s.Step(t0, reg("a", 4))
		acts := s.Step(t0, submit("j", tc.vs))
		want := []string{"job j  -> CREATED", "job j CREATED -> FAILED: " + tc.want}
		var got []string
		for _, a := range acts {
			got = append(got, render(a))
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestViews(t *testing.T) {
	s := New(spread)
	s.Step(t0, reg("b", 2))
	s.Step(t0.Add(time.Second), reg("a", 1))
	s.Step(t0.Add(2*time.Second), submit("j1", pipeline(2, 1)))
	s.Step(t0.Add(3*time.Second), submit("j2", pipeline(4, 4)))
	s.Step(t0.Add(4*time.Second), HeartbeatReceived{TaskManagerID: "b", Tasks: []TaskMetrics{
		{Execution: ExecutionAttemptID{JobID: "j1", Vertex: 0, Subtask: 0}, RecordsIn: 0, RecordsOut: 7},
		{Execution: ExecutionAttemptID{JobID: "j1", Vertex: 1, Subtask: 0}, RecordsIn: 5, RecordsOut: 0},
		{Execution: ExecutionAttemptID{JobID: "j1", Vertex: 0, Subtask: 1}, RecordsIn: 9, RecordsOut: 9}, // on a, not b: ignored
		{Execution: ExecutionAttemptID{JobID: "j1", Vertex: 0, Subtask: 0, Attempt: 2}, RecordsOut: 99},  // other attempt
	}})
	s.Step(t0.Add(5*time.Second), report("a", "j1", 0, 1, 0, ExecutionFailed, "boom"))

	var tms []string
	for _, tm := range s.TaskManagers() {
		tms = append(tms, fmt.Sprintf("%s %s %s %d/%d reg=%d hb=%d", tm.Id, tm.Address, tm.DataAddress, tm.SlotsFree, tm.SlotsTotal,
			tm.RegisteredUnixMs-t0.UnixMilli(), tm.LastHeartbeatUnixMs-t0.UnixMilli()))
	}
	wantTMs := []string{"a a:1 a:2 0/1 reg=1000 hb=1000", "b b:1 b:2 1/2 reg=0 hb=4000"}
	if strings.Join(tms, "\n") != strings.Join(wantTMs, "\n") {
		t.Fatalf("TaskManagers:\n%s\nwant:\n%s", strings.Join(tms, "\n"), strings.Join(wantTMs, "\n"))
	}

	var jobs []string
	for _, j := range s.Jobs() {
		jobs = append(jobs, fmt.Sprintf("%s %s %s start=%d end=%d", j.Id, j.Name, j.State, j.StartTimeUnixMs-t0.UnixMilli(), j.EndTimeUnixMs))
	}
	wantJobs := []string{"j1 name-j1 FAILING start=2000 end=0", "j2 name-j2 CREATED start=3000 end=0"}
	if strings.Join(jobs, "\n") != strings.Join(wantJobs, "\n") {
		t.Fatalf("Jobs:\n%s\nwant:\n%s", strings.Join(jobs, "\n"), strings.Join(wantJobs, "\n"))
	}

	d, _ := s.JobDetails("j1")
	if d.Parallelism != 2 || d.MaxParallelism != 128 || d.StatusMessage != "src subtask 1 failed: boom" {
		t.Fatalf("details: %v", d)
	}
	var tasks []string
	for _, ts := range d.Tasks {
		tasks = append(tasks, fmt.Sprintf("%s/%d %s %s in=%d out=%d #%d %q", ts.Operator, ts.Subtask, ts.State, ts.Taskmanager, ts.RecordsIn, ts.RecordsOut, ts.Attempt, ts.Failure))
	}
	wantTasks := []string{
		`src/0 CANCELING b in=0 out=7 #0 ""`,
		`src/1 FAILED a in=0 out=0 #0 "boom"`,
		`sink/0 CANCELING b in=5 out=0 #0 ""`,
	}
	if strings.Join(tasks, "\n") != strings.Join(wantTasks, "\n") {
		t.Fatalf("tasks:\n%s\nwant:\n%s", strings.Join(tasks, "\n"), strings.Join(wantTasks, "\n"))
	}
	if len(d.Exceptions) != 1 || d.Exceptions[0].Task != "src[1]" || d.Exceptions[0].Message != "boom" || d.Exceptions[0].TimeUnixMs != t0.Add(5*time.Second).UnixMilli() {
		t.Fatalf("exceptions: %v", d.Exceptions)
	}
	counts := s.JobCounts()
	if len(counts) != len(JobStates) || counts[JobFailing] != 1 || counts[JobCreated] != 1 || counts[JobRunning] != 0 {
		t.Fatalf("JobCounts = %v", counts)
	}
	if inst, ok := s.TaskManagerInstance("b"); !ok || inst != 1 {
		t.Fatalf("TaskManagerInstance(b) = %d, %v", inst, ok)
	}
	if _, ok := s.TaskManagerInstance("x"); ok || s.NumTaskManagers() != 2 {
		t.Fatal("unknown TaskManager found")
	}
	if st, ok := s.JobState("j2"); !ok || st != JobCreated {
		t.Fatalf("JobState(j2) = %s, %v", st, ok)
	}
	var execs []string
	infos, _ := s.Executions("j1")
	for _, e := range infos {
		execs = append(execs, fmt.Sprintf("%s %s %s", e.ID, e.State, e.TaskManager))
	}
	wantExecs := []string{"j1/0/0#0 CANCELING b", "j1/0/1#0 FAILED a", "j1/1/0#0 CANCELING b"}
	if strings.Join(execs, "\n") != strings.Join(wantExecs, "\n") {
		t.Fatalf("Executions:\n%s\nwant:\n%s", strings.Join(execs, "\n"), strings.Join(wantExecs, "\n"))
	}
	if e, ok := s.Execution("j1", 0, 1); !ok || e != infos[1] {
		t.Fatalf("Execution(j1, 0, 1) = %+v, %v", e, ok)
	}
	for _, bad := range [][2]int{{-1, 0}, {2, 0}, {0, 2}, {0, -1}} {
		if _, ok := s.Execution("j1", bad[0], bad[1]); ok {
			t.Fatalf("Execution(j1, %d, %d) found", bad[0], bad[1])
		}
	}
	if _, ok := s.Executions("nope"); ok {
		t.Fatal("Executions of an unknown job found")
	}
	if _, ok := s.JobDetails("nope"); ok {
		t.Fatal("unknown job found")
	}
}
