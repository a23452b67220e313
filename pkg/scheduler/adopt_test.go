package scheduler

import (
	"testing"
	"time"
)

// adopted is a JobAdopted of job j (pipeline(2, 2), attempt 3) with tasks
// given as (vertex, subtask, TaskManager, state).
func adopted(tasks ...AdoptedTask) Event {
	ev := submitWith("j", pipeline(2, 2), fixed(5, 0)).(JobSubmitted)
	ev.FirstAttempt = 3
	ev.Failover = "JobManager failover"
	return JobAdopted{Job: ev, Tasks: tasks}
}

func at(v, st int, tm string, s ExecutionState) AdoptedTask {
	return AdoptedTask{Vertex: v, Subtask: st, TaskManagerID: tm, State: s}
}

// A new leader adopts a job whose tasks run: RUNNING at once, nothing
// deployed, the slots taken, the coordinator told which tasks run; a task
// list that is not one whole execution fails the job over, cancelling the
// listed tasks on registered TaskManagers.
func TestAdopt(t *testing.T) {
	t.Run("whole", func(t *testing.T) {
		s := runScenario(t, Config{}, []step{
			{0, reg("a", 2), []string{"tm+ a#1 a:1"}},
			{0, reg("b", 1), []string{"tm+ b#2 b:1"}},
			{0, adopted(at(0, 0, "a", ExecutionRunning), at(0, 1, "b", ExecutionRunning), at(1, 0, "a", ExecutionFinished), at(1, 1, "b", ExecutionDeploying)), []string{
				"job j  -> CREATED", "job j CREATED -> RUNNING", "task j/0/0#3 RUNNING", "task j/0/1#3 RUNNING", "task j/1/0#3 FINISHED"}},
			// The deploying task comes up as any would.
			{time.Second, report("b", "j", 1, 1, 3, ExecutionRunning, ""), []string{"task j/1/1#3 RUNNING"}},
			// b's one slot is taken: a job of two slots waits.
			{time.Second, submit("k", pipeline(2, 1)), []string{"job k  -> CREATED"}},
		})
		if total, free := s.SlotCounts(); total != 3 || free != 1 {
			t.Fatalf("slots %d total, %d free; want 3, 1", total, free)
		}
		d, _ := s.JobDetails("j")
		if d.Restarts != 0 || len(d.Exceptions) != 1 || d.Exceptions[0].Message != "JobManager failover" {
			t.Fatalf("restarts %d, exceptions %v", d.Restarts, d.Exceptions)
		}
	})
	t.Run("all finished", func(t *testing.T) {
		runScenario(t, Config{}, []step{
			{0, reg("a", 2), []string{"tm+ a#1 a:1"}},
			{0, adopted(at(0, 0, "a", ExecutionFinished), at(0, 1, "a", ExecutionFinished), at(1, 0, "a", ExecutionFinished), at(1, 1, "a", ExecutionFinished)), []string{
				"job j  -> CREATED", "job j CREATED -> RUNNING",
				"task j/0/0#3 FINISHED", "task j/0/1#3 FINISHED", "task j/1/0#3 FINISHED", "task j/1/1#3 FINISHED",
				"job j RUNNING -> FINISHED", "release a j"}},
		})
	})
	t.Run("a task missing", func(t *testing.T) {
		runScenario(t, Config{}, []step{
			{0, reg("a", 2), []string{"tm+ a#1 a:1"}},
			{0, adopted(at(0, 0, "a", ExecutionRunning), at(0, 1, "a", ExecutionRunning), at(1, 0, "a", ExecutionRunning)), []string{
				"job j  -> CREATED", "job j CREATED -> RUNNING",
				"cancel a j/0/0#3", "cancel a j/0/1#3", "cancel a j/1/0#3",
				"job j RUNNING -> RESTARTING: adopt the job's tasks after a JobManager failover: 3 of the job's 4 tasks are reported"}},
			{0, report("a", "j", 0, 0, 3, ExecutionCanceled, ""), nil},
			{0, report("a", "j", 0, 1, 3, ExecutionCanceled, ""), nil},
			{0, report("a", "j", 1, 0, 3, ExecutionCanceled, ""), []string{"load j #1"}},
			{0, RestoreLoaded{JobID: "j", Request: 1}, []string{"restarted j 1 from scratch", "job j RESTARTING -> RUNNING",
				"deploy a j/0/0#4", "deploy a j/0/1#4", "deploy a j/1/0#4", "deploy a j/1/1#4"}},
		})
	})
	t.Run("one slot on two TaskManagers", func(t *testing.T) {
		runScenario(t, Config{}, []step{
			{0, reg("a", 2), []string{"tm+ a#1 a:1"}},
			{0, reg("b", 2), []string{"tm+ b#2 b:1"}},
			{0, adopted(at(0, 0, "a", ExecutionRunning), at(0, 1, "a", ExecutionRunning), at(1, 0, "b", ExecutionRunning), at(1, 1, "a", ExecutionRunning)), []string{
				"job j  -> CREATED", "job j CREATED -> RUNNING",
				"cancel a j/0/0#3", "cancel a j/0/1#3", "cancel b j/1/0#3", "cancel a j/1/1#3",
				"job j RUNNING -> RESTARTING: adopt the job's tasks after a JobManager failover: subtask 0 runs on TaskManagers a and b: one slot holds it"}},
		})
	})
	t.Run("unregistered TaskManager", func(t *testing.T) {
		runScenario(t, Config{}, []step{
			{0, reg("a", 2), []string{"tm+ a#1 a:1"}},
			{0, adopted(at(0, 0, "a", ExecutionRunning), at(0, 1, "gone", ExecutionRunning), at(1, 0, "a", ExecutionRunning), at(1, 1, "gone", ExecutionRunning)), []string{
				"job j  -> CREATED", "job j CREATED -> RUNNING",
				"cancel a j/0/0#3", "cancel a j/1/0#3",
				"job j RUNNING -> RESTARTING: adopt the job's tasks after a JobManager failover: task 0/1 runs on TaskManager gone, which is not registered"}},
		})
	})
	t.Run("paused", func(t *testing.T) {
		runScenario(t, Config{}, []step{
			{0, SchedulingPaused{Paused: true}, nil},
			{0, reg("a", 2), []string{"tm+ a#1 a:1"}},
			{0, submit("k", pipeline(1, 1)), []string{"job k  -> CREATED"}},
			{0, SchedulingPaused{Paused: false}, []string{"deploy a k/0/0#0", "deploy a k/1/0#0", "job k CREATED -> RUNNING"}},
		})
	})
}
