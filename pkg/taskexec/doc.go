// Package taskexec owns the runtime of one subtask attempt: it builds the
// operator chain of a job vertex from a TaskDeploymentDescriptor, wires it to
// the network (one InputGate over every input channel, one ResultPartition
// per output edge) and runs it to FINISHED, FAILED or CANCELED.
//
// # The mailbox model
//
// A Task runs in exactly one goroutine, the one that calls Run. Records,
// timers (output flushing, a source's retry delay) and control actions
// (Execute: later checkpoint triggers and notifications) are all processed by
// that goroutine, one after the other, never concurrently. Therefore:
//
//   - operators need no locks, and a control action always sees the chain
//     between two records, never in the middle of one;
//   - the current network buffer of every output subpartition is written only
//     by the task goroutine: the buffer-timeout ticker does not flush, it sets
//     an atomic flag that the task goroutine checks between buffers and
//     batches (and selects on while idle), then flushes itself;
//   - in-band input events (end of partition, and checkpoint barriers later)
//     arrive through InputGate.PollNext in order with the data, and are
//     handled by the same goroutine.
//
// The only calls that come from other goroutines are Cancel, Execute (and
// the checkpoint calls built on it: TriggerCheckpoint,
// NotifyCheckpointComplete, NotifyCheckpointAborted), Stack and the counter
// getters.
//
// # Cancellation
//
// Cancel sets the canceled flag, closes cancelCh, cancels the writer's
// context, and releases the task's partitions and closes its input gate
// (the network stack makes those calls safe against the task goroutine).
// Every wait of the task goroutine watches one of them, so a canceled task
// reaches CANCELED without help from its operators:
//
//	source with nothing available (retry)   idle: select on cancelCh
//	source waiting for an output buffer     awaitOutput: select on cancelCh
//	emit blocked for a buffer               the released partition fails it
//	empty input gate                        select on cancelCh; the gate is closed
//	stop-with-savepoint hold, final checkpoint, mailbox   select on cancelCh
//	open and restore                        checked before each Open and key group
//	snapshot writer                         its context; nothing is drained
//
// What an operator waits for itself (a rate limit, a retry backoff, a
// read it can give up) the runtime cannot interrupt: operator.Context.Done
// is cancelCh, and such waits select on it (file-sink's rate limit).
// Checking it costs nothing per record. A task stuck anyway (an operator
// that ignores Done, a read that never returns) is left to the
// TaskManager's watchdog (task.cancellation.interval logs Stack,
// task.cancellation.timeout exits the process): a goroutine cannot be
// killed, and one left running could still write output after a new
// attempt started.
//
// # Checkpoints
//
// Checkpointing is on when the job configuration sets
// execution.checkpointing.interval; execution.checkpointing.mode and
// execution.checkpointing.unaligned.enabled pick the barrier handler
// (package barrier: Aligned for EXACTLY_ONCE, Tracker for AT_LEAST_ONCE,
// Unaligned for EXACTLY_ONCE with unaligned checkpoints), a pure state
// machine the task goroutine feeds with the
// barriers, cancel markers and end-of-partition events of its gate, the
// triggers of the JobManager and its abort notifications. When the handler
// says so, the task goroutine calls SnapshotState on every Snapshotter of
// the chain (head to tail), broadcasts the barrier on every output and
// queues the snapshots to its writer goroutine (writer.go), which writes
// them to checkpoint storage (package snapshot) and acknowledges, or
// declines on a write error. A source (or a task whose inputs all finished
// upstream) is triggered through its mailbox between two PollNext batches.
//
// End of input (Flink's order, FLIP-147): once every channel delivered
// EndOfData or EndOfPartition (a source: EndOfInput), EndInput runs on the
// chain and EndOfData goes downstream; the task keeps polling its gate
// (barriers still come) until every channel delivered EndOfPartition. If
// an operator implements FinalCheckpointer and needs it, the task then
// stays RUNNING, serving its mailbox, until a checkpoint taken after its
// end of input is complete; only then does it send EndOfPartition and
// finish. So a downstream task always gets the final checkpoint's barrier
// after EndOfData and before EndOfPartition.
//
// # Unaligned checkpoints
//
// With execution.checkpointing.unaligned.enabled (EXACTLY_ONCE; the
// JobManager also requires max-concurrent-checkpoints 1), a checkpoint
// triggered unaligned has barriers that overtake in-flight data
// (barrier.FlagUnaligned; network priority events), and that data becomes
// part of the checkpoint as channel state (Flink's FLIP-76):
//
//	source:    snapshot, flush, BroadcastPriorityEvent(barrier); the buffers it
//	           overtook in the output queues are the output channel state
//	any task:  at the FIRST barrier of n on any channel: snapshot at once, forward
//	           the barrier the same way (output channel state); then record, as
//	           input channel state, every data buffer of each channel whose barrier
//	           has not arrived, until it arrives, plus the buffers a barrier
//	           overtook on the consumer side, from the copies the gate delivers
//	           with it (OvertakenData; not when they are processed later).
//	           Nothing is blocked; processing goes on, on copies
//	complete:  every barrier arrived (or its channel ended): the writer writes
//	           operator and channel state, acknowledges with
//	           persisted_in_flight_bytes (alignment_ms 0)
//
// With execution.checkpointing.aligned-checkpoint-timeout > 0 a checkpoint
// starts aligned (barrier.FlagAlignedTimeout, normal events) and switches
// to unaligned for a task once its alignment lasted the timeout from the
// checkpoint's start (the barrier's timestamp, measured with Env.Now): a
// timer in the task loop fires the switch, which snapshots, unblocks every
// channel, forwards the barrier unaligned, and records the channels whose
// barrier has not arrived (the blocked channels' data follows their
// barrier: it is not state). An unaligned barrier from an upstream task
// that switched switches the task too. Savepoints are always aligned.
//
// Channel state is stored as KindInputChannel objects of the head
// operator and KindResultSubpartition objects of the tail (channelstate.go
// has the encoding). A restored attempt first re-sends its recovered output
// buffers (EmitRawBuffer, in order), and feeds its recovered input buffers
// through the chain, channel by channel, before it polls its gate. At
// another parallelism the channel state is redistributed, as Flink does
// (rescale.go): input records by key group on hash edges, whole old
// channels on forward and rebalance edges; output records through the
// partitioner again when the consumer was rescaled. Broadcast edges are
// refused.
//
// Under backpressure a source waits for an output buffer before it polls
// its source (network.ResultPartition.IsAvailable), serving its mailbox
// meanwhile, as Flink's mailbox does: a checkpoint trigger is taken at
// once, not after an emit blocked for a buffer returns. A task with
// inputs, with unaligned checkpoints, takes a priority barrier and its
// mailbox between two records of a buffer (runloop.go betweenRecords): an
// unaligned snapshot there adds the unprocessed rest of the buffer to its
// channel's input channel state. Only a record blocked in an emit (or in a
// slow operator call) delays it, by that one record. Unaligned barriers
// skip the queued data and the overtaken input buffers are persisted from
// copies, so a checkpoint waits neither for the backlog to drain nor for
// the overtaken buffers to be processed. Around the end of input
// (finishedinputs.go) a task waits for its outputs to drain before it
// finishes, and an unaligned trigger at a task whose inputs finished
// copies the queued rest of its channels, so checkpoints after sources
// finished do not wait for the backlog either.
//
// # Savepoints and stop-with-savepoint
//
// A savepoint (barrier.FlagSavepoint) is taken exactly as a checkpoint: the
// same barrier handler, state written to the checkpoint's location of the
// job's storage, the same acknowledgement; the JobManager copies the files
// into the savepoint's directory. Savepoints are never unaligned; in
// AT_LEAST_ONCE mode a savepoint is tracked like the checkpoints (the
// task's handler is chosen by the mode), which is still exact for
// stop-with-savepoint since no record follows its barrier.
//
// Stop-with-savepoint (savepoint.go; Flink's synchronous savepoint and
// FLIP-147 stop modes). The trigger (barrier.FlagStop) reaches the sources:
//
//	source:     snapshot, barrier, then no PollNext (the mailbox is served)
//	every task: aligns, snapshots, acknowledges, and does not finish
//	            before it is told how the savepoint ended
//	complete:   every task runs its CheckpointListeners (sinks commit the
//	            savepoint); then the sources end their input: EndOfData
//	            with EndOfDataFlagStop, then EndOfPartition, and the
//	            dataflow finishes (every task FINISHED)
//	aborted:    the sources poll again; the job goes on
//
// Without drain, no operator's EndInput runs and no task waits for a final
// checkpoint (Flink's StopMode.NO_DRAIN): output that EndInput would flush
// is not in the savepoint, and the job resumed from it produces it again;
// the savepoint is the last checkpoint. A two-phase-commit sink therefore
// has nothing pending once it committed the savepoint, and finishes. A
// task that gets EndOfPartition before its own completion notification
// waits for it (the notification of the source may overtake it), so no
// sink finishes with the savepoint uncommitted.
//
// With drain (barrier.FlagDrain) a source first ends its input as at the
// end of a bounded input (EndInput down the chain, EndOfData without the
// stop flag, so every downstream operator flushes in EndInput), then takes
// the savepoint; its barrier follows EndOfData, and EndOfPartition follows
// the savepoint's completion: the order of a final checkpoint. The
// savepoint's acknowledgements are marked finished (Flink's
// isTaskFinished), but the JobManager records only tasks that were
// FINISHED at the trigger as finished, as Flink's CheckpointPlan does:
// a drained savepoint is a regular one, and a job resumed from it runs
// its sources on from their positions. An aborted drain
// cannot resume a source whose input ended: the job then ends as a bounded
// one, its sinks waiting for a final checkpoint.
//
// # Restore
//
// A descriptor with restore_state (a snapshot.TaskRestore) is a restored
// attempt (restore.go): after Open of every operator and before the first
// record or PollNext, the task goroutine calls RestoreState once on every
// Snapshotter of the chain, with the union of the old subtasks' items and
// the key groups of its own KeyGroupRange (which makes rescaling work), and
// only then reports RUNNING. An operator without state in the checkpoint
// gets empty state. Any read, checksum or RestoreState error fails the task.
//
// Finished on restore (FLIP-147, finished.go): when every operator of the
// chain that has an entry in the restore state is Finished for this
// subtask (after rescaling: for every old subtask), the attempt is deployed
// as finished. It opens, restores, runs and closes no operator; it reports
// RUNNING, sends EndOfData, drains its inputs (if any) to EndOfPartition,
// dropping their records and forwarding their barriers (its snapshots hold
// no operator state and are acknowledged as finished), sends
// EndOfPartition and reports FINISHED. So a bounded source that finished
// before the checkpoint does not emit again. An operator of which only some
// old subtasks finished cannot be rescaled: the restore fails naming it, as
// it does for a chain of finished and unfinished operators.
//
// # Invariants
//
//   - A barrier is forwarded only after the snapshot of every operator in
//     the chain has been taken, and before any record emitted after it.
//   - With EXACTLY_ONCE, a snapshot reflects exactly the records before the
//     barrier on every input channel: a channel that delivered the barrier
//     is not polled until the snapshot is taken (its data waits in the
//     network, bounded by credit). Unaligned, every record before the
//     checkpoint's cut is in exactly one of: the operator state, the input
//     channel state of the consumer, the output channel state of the
//     producer; a restored attempt replays the channel state before any
//     new data, in the order of the original run.
//   - An unaligned snapshot is acknowledged only once its channel state is
//     complete, and dropped (never written) when the checkpoint is
//     canceled, aborted or subsumed first; no channel is blocked while
//     channel state is recorded.
//   - Acknowledgements and declines of a task reach the JobManager in the
//     order the task goroutine decided them (one writer goroutine); a
//     finishing task sends them before it reports FINISHED. A failing
//     snapshot or state write declines the checkpoint and never fails the
//     task; only a broken output or a failing CheckpointListener does.
//   - Nothing reads an operator's Snapshot after the operator's Close.
//   - Close is called on every operator whose Open was called, on every path
//     (finished, failed, canceled), in chain order.
//   - Chained operators call each other directly (operator i's Collector is
//     operator i+1's ProcessRecord); records are borrowed, never copied
//     between operators of a chain.
//   - A record emitted by the tail is serialised once, whatever the number
//     of outputs, into a scratch buffer reused for every record.
//   - Steady-state processing allocates nothing per record and takes no lock:
//     counters are plain ints of the task goroutine, published to atomics
//     (for heartbeats) and Prometheus once per buffer or source batch.
//   - Nothing of a Task is started by New: a descriptor that New rejects
//     leaves no partition, goroutine or open operator behind.
//   - A restored task reports RUNNING only after every operator restored;
//     no state byte reaches an operator before its checksum matched.
//   - A task finished on restore never calls an operator, and still ends
//     its outputs as a finishing task does (EndOfData, then EndOfPartition
//     once its inputs ended), so no consumer or producer waits for it.
//   - A source that emitted the barrier of a stop-with-savepoint emits no
//     record until that savepoint is aborted; a task that snapshotted one
//     finishes only after its CheckpointListeners heard it completed (or
//     after it was aborted).
//   - A task reports CANCELED, not FAILED, when it was canceled, even though
//     the cancellation surfaced as an error inside the chain.
//   - No wait of the task goroutine outlives Cancel: each one selects on
//     cancelCh or is failed by the release of the network resources.
package taskexec
