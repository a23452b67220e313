// Package taskmanager is the TaskManager daemon: it runs the subtasks the
// JobManager deploys to it. It owns
//
//   - the data plane (a network.Manager serving result partitions on
//     taskmanager.host:taskmanager.data.port),
//   - the TaskExecutorGateway gRPC service (plus grpc health) on
//     taskmanager.host:taskmanager.rpc.port, through which the JobManager
//     submits, cancels and releases tasks,
//   - the registration with the JobManager and the heartbeat stream,
//   - the bookkeeping of its tasks (package taskexec runs each one) and
//     their state reports (UpdateTaskExecutionState),
//   - the checkpoint RPCs (TriggerCheckpoint, NotifyCheckpointComplete,
//     NotifyCheckpointAborted), handed to the task's mailbox, and the tasks'
//     answers (AcknowledgeCheckpoint, DeclineCheckpoint; see checkpoints.go).
//     A savepoint trigger (with stop and drain for stop-with-savepoint) is
//     passed on as is: the task writes it like a checkpoint, and a stopped
//     task finishes after the savepoint's completion notification (package
//     taskexec tells the protocol); so is the unaligned flag of a
//     checkpoint (the task decides from the job configuration whether it
//     is unaligned at once or aligned until the aligned-checkpoint timeout),
//   - the Prometheus endpoint with the task metrics;
//   - the leader fence (fencing.go): every TaskExecutorGateway call
//     carries its JobManager's leader epoch, and a call with an epoch
//     below the highest seen is rejected (FailedPrecondition) and counted
//     in weir_taskmanager_rejected_leader_calls_total, so a JobManager
//     that lost its leadership cannot act here once its successor has.
//
// # Life cycle of the connection to the JobManager
//
// The decisions are taken by a pure core, follower (leader.go); the
// goroutines, calls and timers around it are registration.go.
//
// Standalone (high-availability.type none; the JobManager is
// jobmanager.rpc.address):
//
//	register (retry, exponential backoff up to taskmanager.registration.max-backoff)
//	  -> heartbeat stream (one heartbeat per interval the JobManager gave, with task counters)
//	  -> stream error, unknown_taskmanager, changed jobmanager_id, or no answer for the timeout
//	  -> cancel every task (registering again makes the JobManager fail them)
//	  -> register again, with the same TaskManager id, reporting nothing
//
// A JobManager restart therefore never requires restarting TaskManagers:
// they notice, register again, and drop the tasks the JobManager has failed
// anyway.
//
// High availability (high-availability.type etcd; Options.Leaders, the
// etcd store, names the leader): the TaskManager registers with whom etcd
// names and follows every change. Each registration reports every task it
// holds (RegisterTaskManagerRequest.tasks: running ones as DEPLOYING,
// RUNNING or CANCELING, and the ended attempts no leader released, as
// FINISHED, FAILED or CANCELED), and its answer raises the leader fence to
// leader_epoch before anything else (so does each epoch etcd names).
//
//	registered with leader A
//	  -> etcd names B, or A's heartbeat ends (while etcd still names A, or B)
//	  -> nothing is canceled; register with the leader etcd names, reporting
//	  -> the answer's jobmanager_id is A's: the same JobManager failed the
//	     tasks it had placed here: cancel the tasks held when the request
//	     was sent (after the answer, not before: the process at A's address
//	     may be a new leader that etcd's news has not named yet)
//	  -> another jobmanager_id: a new leader, which adopts or cancels the
//	     reported tasks; they keep running
//	no registration for longer than the last leader's heartbeat timeout
//	  -> cancel every task once (nobody controls them); keep registering
//
// The JobManager's heartbeat.timeout must therefore exceed the time a
// standby needs to take over (high-availability.etcd.lease-ttl and an
// election), or failovers cancel the tasks they are meant to keep.
//
// What the previous leader did not hear:
//
//   - state reports (UpdateTaskExecutionState) are retried, to whichever
//     JobManager is registered at each try; a state change that a new
//     leader got in the registration's report is not sent to it again (a
//     RUNNING arriving after the FINISHED the report said would undo it);
//   - a checkpoint acknowledgement or decline that could not reach the
//     leader it was first sent to is dropped once a new leader registered
//     this TaskManager: the new leader aborts the checkpoints that were in
//     flight. One first sent after the change goes to the new leader,
//     which ignores a checkpoint id it does not know.
//
// Ended attempts are kept (HA only) until a leader releases their job
// (ReleaseJob), cancels that attempt, or a newer attempt of the subtask
// is deployed, or the same JobManager fails them at a re-registration; at
// most maxEndedAttempts (10,000), the oldest forgotten first. Standalone
// mode keeps none, as before.
//
// # Cancellation and shutdown
//
// Every cancellation (CancelTask, ReleaseJob, a newer attempt, a lost
// JobManager, shutdown) goes through cancelTask, which starts the
// attempt's watchdog (watchdog.go): a warning with the task goroutine's
// stack every task.cancellation.interval, and, once the task has not
// stopped within task.cancellation.timeout, a fatal exit of the process
// (ExitCodeFatal), as Flink's TaskManager does: a goroutine cannot be
// killed, and one left running could write output after a new attempt
// started. Shutdown (SIGTERM, through package daemon) cancels every task
// and waits for them until its context ends, then names the tasks that
// did not stop and returns, and the daemon exits.
//
// # Invariants
//
//   - Slots are counted by the JobManager; a TaskManager only reports
//     taskmanager.numberOfTaskSlots and runs what it is given.
//   - Leader fencing: the highest leader epoch seen never goes down, and
//     no call with a lower one reaches a handler (a call without an epoch
//     is epoch 0: standalone JobManagers do not fence).
//   - A change of JobManager leader cancels no task; only a
//     same-JobManager re-registration, standalone mode's lost
//     registration, the leaderless bound, the JobManager's own calls and
//     shutdown do.
//   - Fencing: never two attempts of the same (job, vertex, subtask) at once.
//     A newer attempt is accepted at once, cancels the older one, and starts
//     only after the older one's Run has returned (its partitions released).
//   - A submission that is rejected (InvalidArgument) started nothing.
//   - State reports of one attempt are sent in order (RUNNING before the
//     final state), by one goroutine per attempt. RUNNING means the chain
//     is open and, for an attempt with restore_state, restored: the
//     checkpoint coordinator never triggers a task still restoring.
//   - Every goroutine is owned by the TaskManager and stopped by Close;
//     after a Shutdown that gave up on stuck tasks, theirs end with them
//     (the process exits anyway).
//   - A canceled task either reaches a final state or, within
//     task.cancellation.timeout (when > 0), the process exits: no attempt
//     outlives its cancellation indefinitely.
package taskmanager
