// Package scheduler is the JobManager's brain: the TaskManagers and their
// task slots, every job's ExecutionGraph (job vertices x subtasks, each with
// an attempt number and an ExecutionState), slot allocation, the deployment
// descriptors sent to TaskManagers, and the job state machine.
//
// Like etcd's raft, it does no I/O and reads no clock. The caller feeds it
// events together with the current time and carries out the actions it
// returns:
//
//	s := scheduler.New(scheduler.Config{HeartbeatTimeout: 50 * time.Second, EvenlySpreadOutSlots: true})
//	for ev := range events {                 // gRPC handlers and a ticker produce these
//		for _, a := range s.Step(time.Now(), ev) {
//			switch a := a.(type) {
//			case scheduler.Deploy:        // SubmitTask(a.TDD) on a.TaskManagerID
//			case scheduler.CancelTask:    // CancelTask(a.Execution) on a.TaskManagerID
//			case scheduler.ReleaseJob:    // ReleaseJob(a.JobID) on a.TaskManagerID
//			case scheduler.TaskManagerAdded, scheduler.TaskManagerRemoved: // open/close the RPC client
//			case scheduler.ExecutionStateChanged: // a task RUNNING or FINISHED: tell the checkpoint coordinator
//			case scheduler.JobStateChanged: // log, metrics, HA store clean-up, start/stop checkpointing
//			}
//		}
//	}
//
// GlobalFailure fails a whole job for a cause outside its tasks (the
// checkpoint coordinator's tolerable failures exceeded).
//
// A failed SubmitTask comes back as a TaskStateChanged event with state
// FAILED, so every failure path runs through the same code.
//
// # Job states
//
//	CREATED  --slots allocated, all tasks deployed--> RUNNING
//	CREATED  --slot.request.timeout--> FAILED
//	CREATED  --cancel--> CANCELED
//	RUNNING  --every task FINISHED--> FINISHED
//	RUNNING  --a task FAILED, its TaskManager lost, or a global failure--> FAILING --every task terminal--> FAILED
//	RUNNING, FAILING --cancel--> CANCELING --every task terminal--> CANCELED
//
// FAILING is Flink's name for "failed, waiting for the other tasks to be
// canceled"; with restart strategies it becomes RESTARTING.
//
// # Slot sharing
//
// As in Flink's default slot sharing group, a job needs max(vertex
// parallelism) slots and slot i hosts subtask i of every vertex. Allocation
// is all-or-nothing: a job is deployed only when every one of its slots is
// allocated, in one go (consumers retry partition requests until their
// producers run). Waiting jobs are served in submission order, each taking
// slots as soon as enough are free. With EvenlySpreadOutSlots every slot
// goes to the TaskManager with the most free slots (ties: lowest id);
// otherwise TaskManagers are filled in id order.
//
// # Invariants
//
//   - Step is deterministic: the same events at the same times give the
//     same actions in the same order (maps are iterated in sorted order).
//   - A subtask attempt is deployed at most once; updates that name another
//     attempt, another TaskManager or an unknown job are ignored (attempt
//     fencing), so a late report can never move a newer attempt.
//   - A slot is free again only when the job that held it is globally
//     terminal, i.e. every one of its tasks is terminal; a job therefore never
//     shares a slot with a task of another job that is still canceling.
//   - A slot of a lost TaskManager is never freed: the slots of a
//     registration are gone with it (a re-registration brings fresh ones).
//   - The root cause of a failure is the first one; later failures of the
//     same job (tasks failing while being canceled) do not replace it, with
//     one exception: the loss of a TaskManager that ran tasks of the job
//     replaces a task failure while the job is FAILING. A dying
//     TaskManager breaks the connections of its consumers elsewhere a moment
//     before its heartbeat stream is seen to close; the loss is the cause,
//     the broken connections are symptoms. (The job cannot be FAILED before
//     that: the dead TaskManager's tasks never acknowledge their cancellation.)
package scheduler
