package scheduler

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/restart"
	"github.com/weirstream/weir/pkg/snapshot"
)

func fixed(attempts int, delay time.Duration) restart.Strategy {
	s, err := restart.NewFixedDelay(attempts, delay)
	if err != nil {
		panic(err)
	}
	return s
}

// countingStrategy counts the failures it is told about.
type countingStrategy struct {
	restart.Strategy
	calls int
}

func (c *countingStrategy) NotifyFailure(now time.Time) (bool, time.Duration) {
	c.calls++
	return c.Strategy.NotifyFailure(now)
}

func submitWith(id string, vs []*jobgraph.JobVertex, s restart.Strategy) Event {
	ev := submit(id, vs).(JobSubmitted)
	ev.RestartStrategy = s
	return ev
}

// checkpointMD is the _metadata of checkpoint id of a pipeline job: src has
// state, sink has none.
func checkpointMD(id int64) *snapshot.Metadata {
	return &snapshot.Metadata{JobID: "j", CheckpointID: id, MaxParallelism: 128, Dir: fmt.Sprintf("/cp/chk-%d", id),
		Operators: []snapshot.OperatorState{
			{ID: "sink", Type: "print", Parallelism: 1, Subtasks: []snapshot.SubtaskState{{Subtask: 0}}},
			{ID: "src", Type: "gen", Parallelism: 1, Subtasks: []snapshot.SubtaskState{{Subtask: 0, State: []snapshot.StateObject{
				{Kind: snapshot.KindOperator, StateHandle: snapshot.StateHandle{Size: 3, Inline: []byte("pos")}}}}}},
		}}
}

func sec(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// failAndRestart fails src subtask 0 of a pipeline(1, 1) job on a, whose
// attempts are attempt, and restarts it from scratch one second later.
func failAndRestart(at time.Duration, attempt int, request uint64, restarts int) []step {
	return []step{
		{at, report("a", "j", 0, 0, attempt, ExecutionFailed, "boom"), []string{
			fmt.Sprintf("cancel a j/1/0#%d", attempt), "job j RUNNING -> RESTARTING: src subtask 0 failed: boom"}},
		{at, report("a", "j", 1, 0, attempt, ExecutionCanceled, ""), nil},
		{at + time.Second, Tick{}, []string{fmt.Sprintf("load j #%d", request)}},
		{at + time.Second, RestoreLoaded{JobID: "j", Request: request}, []string{
			fmt.Sprintf("restarted j %d from scratch", restarts), "job j RESTARTING -> RUNNING",
			fmt.Sprintf("deploy a j/0/0#%d", attempt+1), fmt.Sprintf("deploy a j/1/0#%d", attempt+1)}},
	}
}

func concat(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestRestartScenarios(t *testing.T) {
	deployed := []string{"job j  -> CREATED", "deploy a j/0/0#0", "deploy a j/1/0#0", "job j CREATED -> RUNNING"}
	deployedAB := []string{"job j  -> CREATED", "deploy a j/0/0#0", "deploy b j/0/1#0", "deploy a j/1/0#0", "job j CREATED -> RUNNING"}
	exhausted := func(s restart.Strategy) string { return "restart strategy exhausted (" + s.String() + "): " }
	concurrent := &countingStrategy{Strategy: fixed(1, time.Second)}
	tests := []struct {
		name  string
		cfg   Config
		steps []step
		// checks on the final state
		jobState   JobState
		status     string
		restarts   int32
		exceptions []string // "task: message", newest first
		total      int
		free       int
		check      func(t *testing.T, s *Scheduler)
	}{
		{
			name: "a task failure restarts the job from the latest checkpoint; the old attempts are fenced",
			steps: []step{
				{0, reg("a", 2), []string{"tm+ a#1 a:1"}},
				{0, submitWith("j", pipeline(1, 1), fixed(2, time.Second)), deployed},
				{sec(1), report("a", "j", 0, 0, 0, ExecutionRunning, ""), []string{"task j/0/0#0 RUNNING"}},
				{sec(1), report("a", "j", 1, 0, 0, ExecutionRunning, ""), []string{"task j/1/0#0 RUNNING"}},
				{sec(2), report("a", "j", 0, 0, 0, ExecutionFailed, "boom"), []string{
					"cancel a j/1/0#0", "job j RUNNING -> RESTARTING: src subtask 0 failed: boom"}},
				// Every task is terminal before the delay has passed: wait.
				{sec(2.5), report("a", "j", 1, 0, 0, ExecutionCanceled, ""), nil},
				{sec(2.9), Tick{}, nil},
				{sec(3), Tick{}, []string{"load j #1"}},
				{sec(3), Tick{}, nil}, // asked once
				{sec(3.1), RestoreLoaded{JobID: "j", Request: 2, Checkpoint: checkpointMD(6)}, nil}, // not the request
				{sec(3.1), RestoreLoaded{JobID: "j", Request: 1, Checkpoint: checkpointMD(7)}, []string{
					"restarted j 1 from 7 /cp/chk-7", "job j RESTARTING -> RUNNING", "deploy a j/0/0#1", "deploy a j/1/0#1"}},
				{sec(3.1), RestoreLoaded{JobID: "j", Request: 1, Checkpoint: checkpointMD(7)}, nil}, // answered already
				// Reports of the old attempts change nothing; one that
				// claims to run is a zombie and is canceled.
				{sec(3.2), report("a", "j", 0, 0, 0, ExecutionFailed, "late"), nil},
				{sec(3.2), report("a", "j", 1, 0, 0, ExecutionCanceled, ""), nil},
				{sec(3.2), report("a", "j", 0, 0, 0, ExecutionRunning, ""), []string{"cancel a j/0/0#0"}},
				{sec(3.3), report("a", "j", 0, 0, 1, ExecutionRunning, ""), []string{"task j/0/0#1 RUNNING"}},
				{sec(3.5), report("a", "j", 1, 0, 1, ExecutionRunning, ""), []string{"task j/1/0#1 RUNNING",
					"recovered j failure=2s detected=2s delay=1s redeployed=3.1s running=3.5s checkpoint=7"}},
			},
			jobState: JobRunning, restarts: 1, exceptions: []string{"src[0]: boom"}, total: 2, free: 1,
			check: func(t *testing.T, s *Scheduler) {
				var execs []string
				infos, _ := s.Executions("j")
				for _, e := range infos {
					execs = append(execs, fmt.Sprintf("%s %s %s", e.ID, e.State, e.TaskManager))
				}
				wantStrings(t, "executions", execs, []string{"j/0/0#1 RUNNING a", "j/1/0#1 RUNNING a"})
			},
		},
		{
			name: "fixed-delay with 2 attempts: the third failure fails the job, after exactly 2 restarts",
			steps: concat(
				[]step{
					{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
					{0, submitWith("j", pipeline(1, 1), fixed(2, time.Second)), deployed},
				},
				failAndRestart(sec(10), 0, 1, 1),
				failAndRestart(sec(20), 1, 2, 2),
				[]step{
					{sec(30), report("a", "j", 0, 0, 2, ExecutionFailed, "boom"), []string{"cancel a j/1/0#2",
						"job j RUNNING -> FAILING: " + exhausted(fixed(2, time.Second)) + "src subtask 0 failed: boom"}},
					{sec(31), report("a", "j", 1, 0, 2, ExecutionCanceled, ""), []string{
						"job j FAILING -> FAILED: " + exhausted(fixed(2, time.Second)) + "src subtask 0 failed: boom", "release a j"}},
					{sec(40), Tick{}, nil},
				}),
			jobState: JobFailed, status: "restart strategy exhausted (fixed-delay (attempts 2, delay 1s)): src subtask 0 failed: boom",
			restarts: 2, exceptions: []string{"src[0]: boom", "src[0]: boom", "src[0]: boom"}, total: 1, free: 1,
		},
		{
			name: "restart strategy none: the first failure fails the job with its cause, no restart",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, submitWith("j", pipeline(1, 1), restart.NoRestart{}), deployed},
				{sec(1), report("a", "j", 0, 0, 0, ExecutionFailed, "boom"), []string{"cancel a j/1/0#0", "job j RUNNING -> FAILING: src subtask 0 failed: boom"}},
				{sec(2), report("a", "j", 1, 0, 0, ExecutionCanceled, ""), []string{"job j FAILING -> FAILED: src subtask 0 failed: boom", "release a j"}},
			},
			jobState: JobFailed, status: "src subtask 0 failed: boom", exceptions: []string{"src[0]: boom"}, total: 1, free: 1,
		},
		{
			name: "fixed-delay with 0 attempts names the strategy",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, submitWith("j", pipeline(1, 1), fixed(0, time.Second)), deployed},
				{sec(1), report("a", "j", 1, 0, 0, ExecutionFailed, "boom"), []string{"cancel a j/0/0#0",
					"job j RUNNING -> FAILING: restart strategy exhausted (fixed-delay (attempts 0, delay 1s)): sink subtask 0 failed: boom"}},
			},
			jobState: JobFailing, status: "restart strategy exhausted (fixed-delay (attempts 0, delay 1s)): sink subtask 0 failed: boom",
			exceptions: []string{"sink[0]: boom"}, total: 1, free: 0,
		},
		{
			name: "a global failure (checkpoint failures) goes through the strategy; delay 0 restarts when the tasks are canceled",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, submitWith("j", pipeline(1, 1), fixed(1, 0)), deployed},
				{sec(1), GlobalFailure{JobID: "j", Cause: "exceeded checkpoint tolerable failure threshold"}, []string{
					"cancel a j/0/0#0", "cancel a j/1/0#0", "job j RUNNING -> RESTARTING: exceeded checkpoint tolerable failure threshold"}},
				{sec(1), GlobalFailure{JobID: "j", Cause: "again"}, nil}, // the same failover
				{sec(2), report("a", "j", 0, 0, 0, ExecutionCanceled, ""), nil},
				{sec(2), report("a", "j", 1, 0, 0, ExecutionCanceled, ""), []string{"load j #1"}},
				{sec(2), RestoreLoaded{JobID: "j", Request: 1, Checkpoint: checkpointMD(4)}, []string{
					"restarted j 1 from 4 /cp/chk-4", "job j RESTARTING -> RUNNING", "deploy a j/0/0#1", "deploy a j/1/0#1"}},
			},
			jobState: JobRunning, restarts: 1, total: 1, free: 0,
			exceptions: []string{": again", ": exceeded checkpoint tolerable failure threshold"},
		},
		{
			name: "a lost TaskManager's slots are gone: the job waits for a new one and spreads over what is there",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, reg("b", 1), []string{"tm+ b#2 b:1"}},
				{0, submitWith("j", pipeline(2, 1), fixed(3, time.Second)), deployedAB},
				{sec(1), report("b", "j", 0, 1, 0, ExecutionRunning, ""), []string{"task j/0/1#0 RUNNING"}},
				{sec(2), TaskManagerLost{ID: "a", Reason: "heartbeat stream closed"}, []string{
					"tm- a#1: " + lostA + "heartbeat stream closed", "cancel b j/0/1#0",
					"job j RUNNING -> RESTARTING: " + lostA + "heartbeat stream closed"}},
				{sec(2.5), report("b", "j", 0, 1, 0, ExecutionCanceled, ""), nil},
				{sec(3), Tick{}, []string{"load j #1"}},
				{sec(3), RestoreLoaded{JobID: "j", Request: 1}, []string{"restarted j 1 from scratch", "job j RESTARTING -> RUNNING"}},
				{sec(4), reg("c", 1), []string{"tm+ c#3 c:1", "deploy b j/0/0#1", "deploy c j/0/1#1", "deploy b j/1/0#1"}},
			},
			jobState: JobRunning, restarts: 1, exceptions: []string{"a: " + lostA + "heartbeat stream closed"}, total: 2, free: 0,
		},
		{
			name: "a TaskManager lost by heartbeat timeout: the failure time is its last heartbeat",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, reg("b", 1), []string{"tm+ b#2 b:1"}},
				{0, submitWith("j", pipeline(1, 1), fixed(1, 0)), deployed},
				{sec(30), HeartbeatReceived{TaskManagerID: "b"}, nil},
				{sec(51), Tick{}, []string{"tm- a#1: " + lostA + "no heartbeat for 50s",
					"job j RUNNING -> RESTARTING: " + lostA + "no heartbeat for 50s", "load j #1"}},
				{sec(51), RestoreLoaded{JobID: "j", Request: 1}, []string{
					"restarted j 1 from scratch", "job j RESTARTING -> RUNNING", "deploy b j/0/0#1", "deploy b j/1/0#1"}},
				{sec(52), report("b", "j", 0, 0, 1, ExecutionRunning, ""), []string{"task j/0/0#1 RUNNING"}},
				{sec(52), report("b", "j", 1, 0, 1, ExecutionFinished, ""), []string{"task j/1/0#1 FINISHED",
					"recovered j failure=0s detected=51s delay=0s redeployed=51s running=52s checkpoint=0"}},
			},
			jobState: JobRunning, restarts: 1, exceptions: []string{"a: " + lostA + "no heartbeat for 50s"}, total: 1, free: 0,
		},
		{
			name: "not enough slots after a restart: slot.request.timeout counts as a failure and the job restarts again",
			cfg:  Config{EvenlySpreadOutSlots: true}, // no heartbeat timeout
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, reg("b", 1), []string{"tm+ b#2 b:1"}},
				{0, submitWith("j", pipeline(2, 1), fixed(2, time.Second)), deployedAB},
				{sec(1), TaskManagerLost{ID: "a", Reason: "gone"}, []string{
					"tm- a#1: " + lostA + "gone", "cancel b j/0/1#0", "job j RUNNING -> RESTARTING: " + lostA + "gone"}},
				{sec(1), report("b", "j", 0, 1, 0, ExecutionCanceled, ""), nil},
				{sec(2), Tick{}, []string{"load j #1"}},
				{sec(2), RestoreLoaded{JobID: "j", Request: 1}, []string{"restarted j 1 from scratch", "job j RESTARTING -> RUNNING"}},
				{sec(2) + 5*time.Minute - 1, Tick{}, nil},
				{sec(2) + 5*time.Minute, Tick{}, []string{
					"job j RUNNING -> RESTARTING: could not allocate 2 task slots within slot.request.timeout (5m0s): 1 free"}},
				{sec(2) + 5*time.Minute, reg("c", 1), []string{"tm+ c#3 c:1"}}, // RESTARTING: not yet
				{sec(3) + 5*time.Minute, Tick{}, []string{"load j #2"}},
				{sec(3) + 5*time.Minute, RestoreLoaded{JobID: "j", Request: 2}, []string{
					"restarted j 2 from scratch", "job j RESTARTING -> RUNNING", "deploy b j/0/0#2", "deploy c j/0/1#2", "deploy b j/1/0#2"}},
			},
			jobState: JobRunning, restarts: 2, total: 2, free: 0, exceptions: []string{
				": could not allocate 2 task slots within slot.request.timeout (5m0s): 1 free", "a: " + lostA + "gone"},
		},
		{
			name: "not enough slots after a restart, strategy exhausted: FAILED",
			cfg:  Config{EvenlySpreadOutSlots: true}, // no heartbeat timeout
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, reg("b", 1), []string{"tm+ b#2 b:1"}},
				{0, submitWith("j", pipeline(2, 1), fixed(1, time.Second)), deployedAB},
				{sec(1), TaskManagerLost{ID: "a", Reason: "gone"}, []string{
					"tm- a#1: " + lostA + "gone", "cancel b j/0/1#0", "job j RUNNING -> RESTARTING: " + lostA + "gone"}},
				{sec(1), report("b", "j", 0, 1, 0, ExecutionCanceled, ""), nil},
				{sec(2), Tick{}, []string{"load j #1"}},
				{sec(2), RestoreLoaded{JobID: "j", Request: 1}, []string{"restarted j 1 from scratch", "job j RESTARTING -> RUNNING"}},
				{sec(2) + 5*time.Minute, Tick{}, []string{
					"job j RUNNING -> FAILED: restart strategy exhausted (fixed-delay (attempts 1, delay 1s)): could not allocate 2 task slots within slot.request.timeout (5m0s): 1 free",
					"release b j"}},
			},
			jobState: JobFailed, restarts: 1, total: 1, free: 1,
			status: "restart strategy exhausted (fixed-delay (attempts 1, delay 1s)): could not allocate 2 task slots within slot.request.timeout (5m0s): 1 free",
			exceptions: []string{
				": could not allocate 2 task slots within slot.request.timeout (5m0s): 1 free", "a: " + lostA + "gone"},
		},
		{
			name: "concurrent failures of one execution are one failure; the lost TaskManager becomes the cause",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, reg("b", 1), []string{"tm+ b#2 b:1"}},
				{0, submitWith("j", pipeline(2, 1), concurrent), deployedAB},
				// a dies: b's consumer... here b's source sees its
				// connection to a break first.
				{sec(1), report("b", "j", 0, 1, 0, ExecutionFailed, "connection reset"), []string{
					"cancel a j/0/0#0", "cancel a j/1/0#0", "job j RUNNING -> RESTARTING: src subtask 1 failed: connection reset"}},
				{sec(1), report("a", "j", 1, 0, 0, ExecutionFailed, "broken pipe"), nil},
				{sec(1), GlobalFailure{JobID: "j", Cause: "checkpoint"}, nil},
				{sec(2), TaskManagerLost{ID: "a", Reason: "heartbeat stream closed"}, []string{
					"tm- a#1: " + lostA + "heartbeat stream closed", "load j #1"}},
			},
			jobState: JobRestarting, status: lostA + "heartbeat stream closed", total: 1, free: 0,
			exceptions: []string{"a: " + lostA + "heartbeat stream closed", ": checkpoint", "sink[0]: broken pipe", "src[1]: connection reset"},
			check: func(t *testing.T, s *Scheduler) {
				if concurrent.calls != 1 {
					t.Fatalf("the strategy was asked %d times, want once", concurrent.calls)
				}
			},
		},
		{
			name: "cancel while RESTARTING: CANCELED once the tasks are, no redeployment",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, submitWith("j", pipeline(1, 1), fixed(1, 10*time.Second)), deployed},
				{sec(1), report("a", "j", 0, 0, 0, ExecutionFailed, "boom"), []string{"cancel a j/1/0#0", "job j RUNNING -> RESTARTING: src subtask 0 failed: boom"}},
				{sec(2), CancelRequested{JobID: "j"}, []string{"job j RESTARTING -> CANCELING"}},
				{sec(3), report("a", "j", 1, 0, 0, ExecutionCanceled, ""), []string{"job j CANCELING -> CANCELED", "release a j"}},
				{sec(20), Tick{}, nil},
			},
			jobState: JobCanceled, exceptions: []string{"src[0]: boom"}, total: 1, free: 1,
		},
		{
			name: "cancel while the restore state is loaded: CANCELED at once, the answer is ignored",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, submitWith("j", pipeline(1, 1), fixed(1, 0)), deployed},
				{sec(1), report("a", "j", 0, 0, 0, ExecutionFailed, "boom"), []string{"cancel a j/1/0#0", "job j RUNNING -> RESTARTING: src subtask 0 failed: boom"}},
				{sec(1), report("a", "j", 1, 0, 0, ExecutionCanceled, ""), []string{"load j #1"}},
				{sec(2), CancelRequested{JobID: "j"}, []string{"job j RESTARTING -> CANCELED", "release a j"}},
				{sec(2), RestoreLoaded{JobID: "j", Request: 1}, nil},
			},
			jobState: JobCanceled, exceptions: []string{"src[0]: boom"}, total: 1, free: 1,
		},
		{
			name: "a restore that fails counts as a failure: the job restarts again after the delay",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, submitWith("j", pipeline(1, 1), fixed(2, time.Second)), deployed},
				{sec(1), report("a", "j", 0, 0, 0, ExecutionFailed, "boom"), []string{"cancel a j/1/0#0", "job j RUNNING -> RESTARTING: src subtask 0 failed: boom"}},
				{sec(1), report("a", "j", 1, 0, 0, ExecutionCanceled, ""), nil},
				{sec(2), Tick{}, []string{"load j #1"}},
				{sec(2), RestoreLoaded{JobID: "j", Request: 1, Err: errors.New("read checkpoint 3: corrupt")}, nil},
				{sec(3), Tick{}, []string{"load j #2"}},
				{sec(3), RestoreLoaded{JobID: "j", Request: 2, Checkpoint: checkpointMD(3)}, []string{
					"restarted j 1 from 3 /cp/chk-3", "job j RESTARTING -> RUNNING", "deploy a j/0/0#1", "deploy a j/1/0#1"}},
			},
			jobState: JobRunning, restarts: 1, total: 1, free: 0,
			exceptions: []string{": restore the job: read checkpoint 3: corrupt", "src[0]: boom"},
		},
		{
			name: "a restore that fails with the strategy exhausted fails the job",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, submitWith("j", pipeline(1, 1), fixed(1, 0)), deployed},
				{sec(1), TaskManagerLost{ID: "a", Reason: "gone"}, []string{"tm- a#1: " + lostA + "gone", "job j RUNNING -> RESTARTING: " + lostA + "gone", "load j #1"}},
				{sec(1), RestoreLoaded{JobID: "j", Request: 1, Checkpoint: &snapshot.Metadata{CheckpointID: 3}}, []string{
					"job j RESTARTING -> FAILED: restart strategy exhausted (fixed-delay (attempts 1, delay 0s)): restore the job from checkpoint 3: checkpoint 3 has no location"}},
			},
			jobState: JobFailed, status: "restart strategy exhausted (fixed-delay (attempts 1, delay 0s)): restore the job from checkpoint 3: checkpoint 3 has no location",
			exceptions: []string{": restore the job from checkpoint 3: checkpoint 3 has no location", "a: " + lostA + "gone"},
		},
		{
			name: "a TaskManager lost while FAILING: its tasks are terminal, the job FAILED",
			steps: []step{
				{0, reg("a", 1), []string{"tm+ a#1 a:1"}},
				{0, reg("b", 1), []string{"tm+ b#2 b:1"}},
				{0, submit("j", pipeline(2, 1)), deployedAB},
				{sec(1), report("b", "j", 0, 1, 0, ExecutionFailed, "boom"), []string{"cancel a j/0/0#0", "cancel a j/1/0#0", "job j RUNNING -> FAILING: src subtask 1 failed: boom"}},
				{sec(2), TaskManagerLost{ID: "a", Reason: "gone"}, []string{"tm- a#1: " + lostA + "gone",
					"job j FAILING -> FAILED: " + lostA + "gone", "release b j"}},
			},
			jobState: JobFailed, status: lostA + "gone", total: 1, free: 1,
			exceptions: []string{"a: " + lostA + "gone", "src[1]: boom"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg == (Config{}) {
				cfg = spread
			}
			s := runScenario(t, cfg, tt.steps)
			d, ok := s.JobDetails("j")
			if !ok {
				t.Fatal("job j unknown")
			}
			if JobState(d.State) != tt.jobState || d.StatusMessage != tt.status || d.Restarts != tt.restarts {
				t.Fatalf("job: state %s %q restarts %d, want %s %q restarts %d", d.State, d.StatusMessage, d.Restarts, tt.jobState, tt.status, tt.restarts)
			}
			var exc []string
			for _, e := range d.Exceptions {
				exc = append(exc, e.Task+": "+e.Message)
			}
			wantStrings(t, "exceptions", exc, tt.exceptions)
			if total, free := s.SlotCounts(); total != tt.total || free != tt.free {
				t.Fatalf("slots total/free = %d/%d, want %d/%d", total, free, tt.total, tt.free)
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

func wantStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// The restarted tasks' descriptors carry the checkpoint's state of their
// chain's operators; a restart without a checkpoint carries none.
func TestRestoreDescriptors(t *testing.T) {
	s := New(spread)
	s.Step(t0, reg("a", 3))
	s.Step(t0, submitWith("j", diamond(), fixed(5, 0)))
	if acts := s.Step(t0, TaskManagerLost{ID: "a", Reason: "gone"}); render(acts[len(acts)-1]) != "load j #1" {
		t.Fatalf("no restore requested: %v", acts)
	}
	s.Step(t0, reg("b", 3))
	obj := func(s string) []snapshot.StateObject {
		return []snapshot.StateObject{{Kind: snapshot.KindOperator, StateHandle: snapshot.StateHandle{Size: int64(len(s)), Inline: []byte(s)}}}
	}
	md := &snapshot.Metadata{JobID: "j", CheckpointID: 9, MaxParallelism: 128, Dir: "file:///cp/j/chk-9", Operators: []snapshot.OperatorState{
		{ID: "agg", Type: "aggregate", Parallelism: 3, Subtasks: []snapshot.SubtaskState{{Subtask: 0, State: obj("k0")}, {Subtask: 1}, {Subtask: 2, State: obj("k2")}}},
		{ID: "filter", Type: "filter", Parallelism: 2, Subtasks: []snapshot.SubtaskState{{Subtask: 0, Finished: true}, {Subtask: 1}}},
		{ID: "gone", Type: "map", Parallelism: 1, Subtasks: []snapshot.SubtaskState{{Subtask: 0, State: obj("x")}}},
		{ID: "map", Type: "map", Parallelism: 2, Subtasks: []snapshot.SubtaskState{{Subtask: 0}, {Subtask: 1}}},
		{ID: "src", Type: "gen", Parallelism: 2, Subtasks: []snapshot.SubtaskState{{Subtask: 0, State: obj("p0")}, {Subtask: 1, State: obj("p1")}}},
	}}
	restores := map[string]*snapshot.TaskRestore{}
	for _, a := range s.Step(t0, RestoreLoaded{JobID: "j", Request: 1, Checkpoint: md}) {
		d, ok := a.(Deploy)
		if !ok {
			continue
		}
		id := ExecutionAttemptIDFromProto(d.TDD.Execution)
		if id.Attempt != 1 || d.TDD.RestoreCheckpointId != 9 {
			t.Fatalf("%s: restore checkpoint %d", id, d.TDD.RestoreCheckpointId)
		}
		r, err := snapshot.DecodeTaskRestore(d.TDD.RestoreState)
		if err != nil {
			t.Fatal(err)
		}
		restores[id.String()] = r
	}
	if len(restores) != 7 {
		t.Fatalf("%d deployments, want 7", len(restores))
	}
	// A durable checkpoint is a pointer: the TaskManagers read its
	// _metadata (taskexec). Every vertex here has state in it.
	pointer := &snapshot.TaskRestore{CheckpointID: 9, Location: "file:///cp/j/chk-9", FromMetadata: true}
	for id, w := range map[string]*snapshot.TaskRestore{
		"j/0/0#1": pointer, "j/0/1#1": pointer, // src
		"j/1/0#1": pointer, "j/1/1#1": pointer, // map (nothing) -> filter (a finished subtask)
		"j/2/0#1": pointer, "j/2/1#1": pointer, "j/2/2#1": pointer, // agg
	} {
		if !reflect.DeepEqual(restores[id], w) {
			t.Errorf("restore of %s:\n%+v\nwant:\n%+v", id, restores[id], w)
		}
	}

	// Without a checkpoint the next attempts start from scratch.
	s.Step(t0, TaskManagerLost{ID: "b", Reason: "gone"})
	s.Step(t0, reg("c", 3))
	for _, a := range s.Step(t0, RestoreLoaded{JobID: "j", Request: 2}) {
		if d, ok := a.(Deploy); ok && (len(d.TDD.RestoreState) != 0 || d.TDD.RestoreCheckpointId != 0 || d.TDD.Execution.Attempt != 2) {
			t.Fatalf("restart from scratch deploys %v", d.TDD)
		}
	}
}

func TestNextRestart(t *testing.T) {
	s := New(spread)
	s.Step(t0, reg("a", 2))
	s.Step(t0, submitWith("j", pipeline(1, 1), fixed(1, 10*time.Second)))
	s.Step(t0, submitWith("k", pipeline(1, 1), fixed(1, 5*time.Second)))
	if next := s.NextRestart(); !next.IsZero() {
		t.Fatalf("NextRestart = %v with nothing restarting", next)
	}
	s.Step(t0.Add(time.Second), report("a", "j", 0, 0, 0, ExecutionFailed, "boom"))
	if next := s.NextRestart(); !next.IsZero() {
		t.Fatalf("NextRestart = %v while tasks are canceling", next)
	}
	s.Step(t0.Add(2*time.Second), report("a", "j", 1, 0, 0, ExecutionCanceled, ""))
	if next := s.NextRestart(); !next.Equal(t0.Add(11 * time.Second)) {
		t.Fatalf("NextRestart = %v, want t0+11s", next.Sub(t0))
	}
	s.Step(t0.Add(3*time.Second), TaskManagerLost{ID: "a", Reason: "gone"}) // k restarts at t0+8s
	if next := s.NextRestart(); !next.Equal(t0.Add(8 * time.Second)) {
		t.Fatalf("NextRestart = %v, want t0+8s", next.Sub(t0))
	}
	s.Step(t0.Add(8*time.Second), Tick{}) // k's restore is requested
	if next := s.NextRestart(); !next.Equal(t0.Add(11 * time.Second)) {
		t.Fatalf("NextRestart = %v, want t0+11s", next.Sub(t0))
	}
}

// The exception history keeps the newest 100 failures, newest first.
func TestExceptionHistoryBounded(t *testing.T) {
	j := &job{}
	for i := range 150 {
		j.addException(t0.Add(time.Duration(i)*time.Second), failure{task: "t", message: fmt.Sprint(i)})
	}
	if len(j.exceptions) != maxExceptions || j.exceptions[0].Message != "149" || j.exceptions[99].Message != "50" {
		t.Fatalf("%d exceptions, first %q, last %q", len(j.exceptions), j.exceptions[0].Message, j.exceptions[len(j.exceptions)-1].Message)
	}
	if j.exceptions[0].TimeUnixMs != t0.Add(149*time.Second).UnixMilli() {
		t.Fatalf("time of the newest: %d", j.exceptions[0].TimeUnixMs)
	}
}

// A job started from a savepoint deploys its first attempts with the
// savepoint's state; its restarts restore from what the caller loads.
func TestSubmitWithRestore(t *testing.T) {
	s := New(spread)
	s.Step(t0, reg("a", 2))
	md := checkpointMD(4)
	md.Savepoint, md.Dir = true, "/sp/savepoint-j-1"
	ev := submitWith("j", pipeline(1, 1), fixed(5, 0)).(JobSubmitted)
	ev.Restore = md
	deployed := 0
	for _, a := range s.Step(t0, ev) {
		d, ok := a.(Deploy)
		if !ok {
			continue
		}
		deployed++
		if d.TDD.RestoreCheckpointId != 4 || d.TDD.Execution.Attempt != 0 {
			t.Fatalf("first deployment %v: restore checkpoint %d", d.TDD.Execution, d.TDD.RestoreCheckpointId)
		}
		r, err := snapshot.DecodeTaskRestore(d.TDD.RestoreState)
		if err != nil {
			t.Fatal(err)
		}
		want := &snapshot.TaskRestore{CheckpointID: 4, Location: "/sp/savepoint-j-1"}
		if d.TDD.Execution.Vertex == 0 {
			want.FromMetadata = true // the only vertex with state in the savepoint
		}
		if !reflect.DeepEqual(r, want) {
			t.Fatalf("restore of %v:\n%+v\nwant:\n%+v", d.TDD.Execution, r, want)
		}
	}
	if deployed != 2 {
		t.Fatalf("%d deployments, want 2", deployed)
	}

	// A restore that cannot be prepared fails the job at submission.
	s.Step(t0, reg("b", 2))
	bad := submit("k", pipeline(1, 1)).(JobSubmitted)
	bad.Restore = &snapshot.Metadata{CheckpointID: 5}
	var got []string
	for _, a := range s.Step(t0, bad) {
		got = append(got, render(a))
	}
	if want := "job k CREATED -> FAILED: restore the job from checkpoint 5: checkpoint 5 has no location"; !strings.Contains(strings.Join(got, "\n"), want) {
		t.Fatalf("actions:\n%s\nwant %q", strings.Join(got, "\n"), want)
	}
}

// Deployment descriptors stay small whatever the parallelism: a durable
// checkpoint travels as a pointer of constant size; jobmanager storage
// carries the entries of every old subtask, and a restore that would put
// more than maxRestoreBytes into each descriptor fails the restart with a
// reason instead of deploying descriptors gRPC would refuse.
func TestRestoreDescriptorSize(t *testing.T) {
	// src had 20,000 subtasks, each with an inline position of 100 bytes:
	// about 4 MB of entries that every new subtask of src would inherit.
	wide := func(dir string) *snapshot.Metadata {
		md := checkpointMD(9)
		md.Dir = dir
		src := &md.Operators[1]
		src.Parallelism, src.Subtasks = 20000, make([]snapshot.SubtaskState, 20000)
		for i := range src.Subtasks {
			pos := bytes.Repeat([]byte{'p'}, 100)
			src.Subtasks[i] = snapshot.SubtaskState{Subtask: i, State: []snapshot.StateObject{
				{Kind: snapshot.KindOperator, StateHandle: snapshot.StateHandle{Size: 100, Inline: pos}}}}
		}
		return md
	}
	restart := func(md *snapshot.Metadata) (*Scheduler, []Action) {
		s := New(spread)
		s.Step(t0, reg("a", 2))
		s.Step(t0, submitWith("j", pipeline(1, 1), fixed(5, 0)))
		if acts := s.Step(t0, TaskManagerLost{ID: "a", Reason: "gone"}); render(acts[len(acts)-1]) != "load j #1" {
			t.Fatalf("no restore requested: %v", acts)
		}
		s.Step(t0, reg("b", 2))
		return s, s.Step(t0, RestoreLoaded{JobID: "j", Request: 1, Checkpoint: md})
	}
	restores := func(acts []Action) map[int32][]byte {
		m := map[int32][]byte{}
		for _, a := range acts {
			if d, ok := a.(Deploy); ok {
				m[d.TDD.Execution.Vertex] = d.TDD.RestoreState
			}
		}
		return m
	}

	_, acts := restart(wide("s3://state/cp/j/chk-9"))
	got := restores(acts)
	if want := `{"checkpoint_id":9,"location":"s3://state/cp/j/chk-9","from_metadata":true}`; string(got[0]) != want {
		t.Fatalf("restore of src from s3: %s, want %s", got[0], want)
	}
	if want := `{"checkpoint_id":9,"location":"s3://state/cp/j/chk-9"}`; string(got[1]) != want {
		t.Fatalf("restore of the stateless sink: %s, want %s", got[1], want)
	}

	// jobmanager storage: the entries themselves, while they fit.
	small := checkpointMD(9)
	small.Dir = "jobmanager://j/chk-9"
	_, acts = restart(small)
	r, err := snapshot.DecodeTaskRestore(restores(acts)[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := (&snapshot.TaskRestore{CheckpointID: 9, Location: small.Dir, Operators: map[string]*snapshot.OperatorState{"src": &small.Operators[1]}}); !reflect.DeepEqual(r, want) {
		t.Fatalf("restore from jobmanager storage:\n%+v\nwant:\n%+v", r, want)
	}

	s, acts := restart(wide("jobmanager://j/chk-9"))
	if d := restores(acts); len(d) != 0 {
		t.Fatalf("deployed %d descriptors of a restore that does not fit", len(d))
	}
	v, _ := s.JobDetails("j")
	if len(v.Exceptions) == 0 {
		t.Fatal("no exception recorded for the failed restore")
	}
	const want = "restore the job from checkpoint 9: restore of "
	if msg := v.Exceptions[0].Message; !strings.HasPrefix(msg, want) ||
		!strings.Contains(msg, "more than the 1048576 a deployment may carry; jobmanager checkpoint storage cannot restore this job at this parallelism: set execution.checkpointing.dir") {
		t.Fatalf("exception: %q", msg)
	}
}
