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
//			case scheduler.LoadRestoreState: // read the latest checkpoint off the lock, then feed RestoreLoaded
//			case scheduler.JobRestarted, scheduler.JobRecovered: // metrics, the recovery log line
//			case scheduler.JobRemoved:    // forget the job's checkpoint statistics and metrics
//			}
//		}
//	}
//
// GlobalFailure fails a whole job over for a cause outside its tasks (the
// checkpoint coordinator's tolerable failures exceeded).
//
// A failed SubmitTask comes back as a TaskStateChanged event with state
// FAILED, so every failure path runs through the same code.
//
// # Failover (full restarts)
//
// As Flink's RestartAllFailoverStrategy, a failure of a RUNNING job
// restarts all of its tasks: a task FAILED (or CANCELED unasked), a
// deployment that failed, a lost TaskManager that ran a task of the job, a
// GlobalFailure, or, for a restarted execution, slot.request.timeout
// passing before its slots could be allocated. The job's restart strategy
// (package restart, given with JobSubmitted) is asked once per failure of
// the execution: the failures that follow while its tasks are being
// canceled (consumers losing their connections to a dead TaskManager) are
// recorded in the exception history but not counted. Then
//
//  1. RUNNING -> RESTARTING (the strategy allows a restart) or
//     RUNNING -> FAILING (it does not); every task not terminal is
//     canceled. A task of a lost TaskManager is terminal (FAILED) at once.
//  2. Once every task is terminal and the strategy's delay has passed
//     (Tick, or the event that made the last task terminal; NextRestart
//     says when to tick), the scheduler asks the caller for the restore
//     state with LoadRestoreState. The caller reads the latest completed
//     checkpoint's _metadata without holding the scheduler and answers
//     RestoreLoaded.
//  3. Every subtask gets attempt+1, whose deployment descriptor carries the
//     snapshot.TaskRestore of its vertex (empty without a checkpoint); the
//     job's slots are freed (a lost TaskManager's are gone), JobRestarted
//     and RESTARTING -> RUNNING are reported, and the job is deployed as a
//     waiting job, on the slots free now, spread as at submission.
//  4. When every task of the new attempts runs, JobRecovered reports the
//     timing of the recovery.
//
// A restore that cannot be read is a failure of the restart: counted by
// the strategy, the job restarts again after the delay or FAILED. When the
// strategy gives up, the job's status message is the cause that exhausted
// it, as "restart strategy exhausted (<strategy>): <cause>" (the cause
// alone for strategy none).
//
// # Job states
//
//	CREATED    --slots allocated, all tasks deployed--> RUNNING
//	CREATED    --slot.request.timeout--> FAILED
//	CREATED    --cancel--> CANCELED
//	RUNNING    --every task FINISHED--> FINISHED
//	RUNNING    --a failure, the strategy restarts--> RESTARTING
//	RESTARTING --every task terminal, delay passed, restore loaded--> RUNNING (tasks SCHEDULED until slots are free)
//	RUNNING    --a failure, the strategy gives up--> FAILING --every task terminal--> FAILED
//	RESTARTING --the restore fails, the strategy gives up--> FAILED
//	RUNNING, RESTARTING, FAILING --cancel--> CANCELING --every task terminal--> CANCELED
//
// FAILING is Flink's name for "failed, waiting for the other tasks to be
// canceled"; RESTARTING the same when a restart follows.
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
// # Job store
//
// A globally terminal job stays listed and found (its status, exceptions
// and tasks) until the job store drops it, as Flink's jobstore.max-capacity
// and jobstore.expiration-time: at most JobStoreMaxCapacity terminal jobs
// are kept, those that ended first are removed first, and each is removed
// JobStoreExpiration after it ended (checked at every Step: a Tick is
// enough). Jobs that have not ended are never removed. JobRemoved tells
// the caller.
//
// # Size
//
// Memory and work per job are linear in its subtasks and edges: a job
// keeps one ExecutionVertex per subtask and counts of their states, so
// that a task report costs O(1) and only job-wide transitions (deploy,
// cancel, restart) walk the subtasks. The one exception is inherent: the
// deployment descriptor of a subtask lists one channel per producer
// subtask of each all-to-all input, p*p channels per such edge over the
// job. They are built when the job is deployed and handed to the caller;
// the job's maximum parallelism bounds them.
//
// # Invariants
//
//   - Step is deterministic: the same events at the same times give the
//     same actions in the same order (maps are iterated in sorted order).
//   - A subtask attempt is deployed at most once, and a new attempt only
//     when every attempt of the job is terminal: two attempts of a subtask
//     never run at once. Updates that name another
//     attempt, another TaskManager or an unknown job are ignored (attempt
//     fencing), so a late report can never move a newer attempt.
//   - A slot is free again only when the job that held it is globally
//     terminal or redeployed after a restart, i.e. every one of its tasks is
//     terminal; a job therefore never shares a slot with a task of another
//     job that is still canceling. A RESTARTING job keeps its slots during
//     the restart delay, so that no later job takes them meanwhile.
//   - The restart strategy is asked once per failure of a RUNNING execution
//     (and once per failed restore); a job's restarts count never decreases.
//   - A slot of a lost TaskManager is never freed: the slots of a
//     registration are gone with it (a re-registration brings fresh ones).
//   - The root cause of a failure is the first one; later failures of the
//     same job (tasks failing while being canceled) do not replace it, with
//     one exception: the loss of a TaskManager that ran tasks of the job
//     replaces a task failure while the job is FAILING or RESTARTING. A dying
//     TaskManager breaks the connections of its consumers elsewhere a moment
//     before its heartbeat stream is seen to close; the loss is the cause,
//     the broken connections are symptoms. (The job cannot be FAILED before
//     that: the dead TaskManager's tasks never acknowledge their cancellation.)
package scheduler
