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
//   - the Prometheus endpoint with the task metrics.
//
// # Life cycle of the connection to the JobManager
//
//	register (retry, exponential backoff up to taskmanager.registration.max-backoff)
//	  -> heartbeat stream (one heartbeat per interval the JobManager gave, with task counters)
//	  -> stream error, unknown_taskmanager, changed jobmanager_id, or no answer for the timeout
//	  -> cancel every task (registering again makes the JobManager fail them)
//	  -> register again, with the same TaskManager id
//
// A JobManager restart therefore never requires restarting TaskManagers:
// they notice, register again, and drop the tasks the JobManager has failed
// anyway.
//
// # Invariants
//
//   - Slots are counted by the JobManager; a TaskManager only reports
//     taskmanager.numberOfTaskSlots and runs what it is given.
//   - Fencing: never two attempts of the same (job, vertex, subtask) at once.
//     A newer attempt is accepted at once, cancels the older one, and starts
//     only after the older one's Run has returned (its partitions released).
//   - A submission that is rejected (InvalidArgument) started nothing.
//   - State reports of one attempt are sent in order (RUNNING before the
//     final state), by one goroutine per attempt. RUNNING means the chain
//     is open and, for an attempt with restore_state, restored: the
//     checkpoint coordinator never triggers a task still restoring.
//   - Every goroutine is owned by the TaskManager and stopped by Close.
package taskmanager
