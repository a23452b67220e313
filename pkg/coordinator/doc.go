// Package coordinator is weir's checkpoint coordinator (Flink's
// CheckpointCoordinator with its PendingCheckpoint, CheckpointRequestDecider,
// CheckpointFailureManager and completed checkpoint store) for one job
// execution: it decides when to checkpoint, which tasks to trigger, when a
// checkpoint is complete, which checkpoints to keep, and when checkpoint
// failures must fail the job.
//
// Like etcd's raft it is a pure state machine: it starts no goroutine, does
// no I/O and never reads the clock. The caller feeds it events with the
// current time and carries out the actions it returns, in order.
//
// # Life cycle
//
// When an execution of a job starts, the JobManager builds a coordinator
// with the checkpointing options, the topology of the execution (its
// vertices, each with its parallelism and the vertices it reads from), the
// attempt and state of each task, the next checkpoint id from its
// persistent counter and the completed checkpoints its HA store holds:
//
//	c, err := coordinator.New(coordinator.Config{
//		Interval: 10 * time.Second, Timeout: 10 * time.Minute, NumRetained: 3,
//		NextCheckpointID: counter.Next(), Vertices: vertices, Tasks: tasks,
//		Restored: haStore.Checkpoints(),
//	}, time.Now())
//
// Then one goroutine owns it and runs this loop; events come from the gRPC
// handlers (acknowledgements, declines, task state changes), the REST/CLI
// handlers (savepoints), the storage goroutine (metadata writes) and one
// timer, always reset to NextTriggerTime:
//
//	for {
//		var ev coordinator.Event
//		select {
//		case <-timer.C:
//			ev = coordinator.Tick{}
//		case ev = <-events:
//		}
//		for _, a := range c.Step(time.Now(), ev) {
//			switch a := a.(type) {
//			case coordinator.PersistCheckpointID: // counter.Store(a.Next), synchronously
//			case coordinator.TriggerTasks:        // TriggerCheckpoint RPC to each of a.Tasks
//			case coordinator.WriteMetadata:       // go: write _metadata, add to HA store, send MetadataWritten
//			case coordinator.NotifyComplete:      // NotifyCheckpointComplete RPC to a.Tasks
//			case coordinator.NotifyAborted:       // NotifyCheckpointAborted RPC to a.Tasks
//			case coordinator.DiscardCheckpoint:   // go: remove from HA store, delete files
//			case coordinator.DiscardState:        // go: delete the files of a late acknowledgement
//			case coordinator.SavepointDone, coordinator.SavepointFailed: // answer a.Request
//			case coordinator.FailJob:             // global failover of the job
//			case coordinator.Log:                 // log a.Message
//			}
//		}
//		if next := c.NextTriggerTime(); !next.IsZero() {
//			timer.Reset(time.Until(next))
//		}
//	}
//
// At each Interval a Tick starts a periodic checkpoint. The coordinator
// takes the next id and asks for it to be persisted (PersistCheckpointID)
// before anything names it, so no JobManager ever reuses an id. It plans the
// checkpoint: every task that is not FINISHED must acknowledge it, the tasks
// already FINISHED are recorded as finished (FLIP-147), and the trigger goes
// to the tasks with no unfinished upstream task: the sources, or the tasks
// whose inputs have all finished. The tasks inject barriers, snapshot and
// Acknowledge with an opaque state handle. With the last acknowledgement the
// checkpoint is fully acknowledged but not complete: WriteMetadata asks the
// caller to make it durable, and only a successful MetadataWritten completes
// it. Then the checkpoint joins the retained ones, the oldest beyond
// NumRetained are discarded (DiscardCheckpoint), older pending checkpoints
// are aborted as subsumed, and NotifyComplete lets the tasks commit.
//
// A checkpoint fails when a task declines it, when Timeout passes before it
// completes (the metadata write included), when the metadata cannot be
// written, when a task finishes before acknowledging it, when a newer one
// completes first, or when the coordinator stops. The tasks hear
// NotifyAborted and the caller deletes what was written (DiscardCheckpoint).
// A task still writing then acknowledges late: its state belongs to no
// checkpoint and the caller deletes it too (DiscardState), so that an
// aborted checkpoint leaves nothing behind.
// Consecutive failures of the counted kinds (FailureReason.Counted:
// timeouts, declines, asynchronous snapshot failures, storage failures)
// beyond TolerableFailedCheckpoints produce FailJob; a completion resets the
// count. Failures caused by the job itself ending or failing, by tasks not
// ready or finishing, and by subsumption are not counted, as in Flink.
//
// A savepoint (TriggerSavepoint) is triggered at once, beyond MaxConcurrent
// and MinPause (Flink's savepoints are "forced"), up to MaxPendingSavepoints
// in progress (more are refused with TOO_MANY_CHECKPOINT_REQUESTS); it is
// aligned, never retained or subsumed, and answered with SavepointDone or
// SavepointFailed.
// It commits nothing (no NotifyComplete), except stop-with-savepoint, which
// first aborts the pending checkpoints and suspends periodic ones; when it
// completes the tasks are notified and stop. If it fails, periodic
// checkpointing resumes one interval later.
//
// Stop ends the coordinator when the execution ends: pending checkpoints
// are aborted (not counted) and nothing is triggered any more. The next
// execution gets a new coordinator, built with the next id and the retained
// checkpoints.
//
// # Semantics chosen where Flink leaves room
//
//   - MinPause counts from the completion of the last checkpoint, as Flink's
//     lastCheckpointCompletionRelativeTime: a failed checkpoint does not
//     start a pause. A periodic request held back only by the pause is
//     rescheduled at completion+MinPause, then the fixed rate resumes.
//   - A periodic request that finds MaxConcurrent checkpoints pending waits
//     (at most one waits) and starts as soon as one ends.
//   - Periodic triggers run at a fixed rate from New's time: the first at
//     now+Interval (Flink picks a random initial delay). A late Tick triggers
//     once and skips the missed periods.
//   - A checkpoint is triggered only when every unfinished task is RUNNING;
//     otherwise the periodic trigger is skipped without consuming an id (a
//     savepoint fails with NOT_ALL_REQUIRED_TASKS_RUNNING).
//   - A task that finishes after acknowledging keeps its state in the
//     checkpoint; a task that finishes before acknowledging aborts it
//     (CHECKPOINT_DECLINED_TASK_CLOSING, not counted), because its
//     acknowledgement could still be in flight and a finished source may
//     never have injected the barrier.
//   - Failures of savepoints follow CheckpointFailureManager: on the
//     JobManager (timeout, storage) they never count; a task declining a
//     savepoint counts; a task declining a stop-with-savepoint fails the job.
//     A failure of a checkpoint older than the last completed one never
//     counts.
//   - FailJob stops the coordinator: its pending checkpoints are aborted
//     (JOB_FAILURE).
//   - A metadata write that succeeds after its checkpoint was aborted is
//     discarded (DiscardCheckpoint with its Path).
//
// # Invariants
//
//   - Step is deterministic: the same events at the same times give the
//     same actions in the same order (maps are iterated in sorted order).
//   - Checkpoint ids strictly increase, also across executions: an id is
//     used only after the PersistCheckpointID that covers it.
//   - A checkpoint completes only after every task not FINISHED at its
//     trigger acknowledged it with its current attempt and its metadata was
//     written; messages of other attempts, or for checkpoints not pending,
//     change nothing.
//   - A checkpoint ends once: completed or failed, never both; its failure
//     counts at most once.
//   - Only checkpoints are retained and subsumed; a savepoint's files are
//     never discarded once it completed.
//   - At most MaxConcurrent checkpoints (1 when MinPause > 0) are pending,
//     savepoints aside; nothing is triggered after Stop or FailJob.
//   - Memory and work grow linearly with the tasks and the edges, never
//     with pairs of subtasks: the topology is kept per vertex (an
//     all-to-all edge is one entry, not parallelism squared), and planning
//     a trigger checks each all-to-all edge once per vertex.
//
// The maps in WriteMetadata and CompletedCheckpoint are the caller's to
// read, not to modify.
package coordinator
