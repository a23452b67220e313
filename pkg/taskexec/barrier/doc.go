// Package barrier holds the barrier handlers: the pure part of checkpointing
// in a task with inputs (Flink's CheckpointBarrierHandler). It does no I/O,
// starts no goroutine and reads no clock: the caller passes the current
// time with every event. The task goroutine (package taskexec) feeds a
// handler the checkpoint events of its input gate (barriers, cancel
// markers, end of partition), the triggers it gets by RPC and the aborts
// the JobManager notifies, each with the current time, and carries out the
// actions it returns, in order, before it polls the gate again:
//
//	for _, a := range h.Step(now, barrier.BarrierReceived{Channel: ch, CheckpointID: id}) {
//		switch a := a.(type) {
//		case barrier.BlockChannel:        gate.BlockChannel(a.Channel)
//		case barrier.UnblockAll:          gate.UnblockAll()
//		case barrier.TriggerSnapshot:     snapshot the chain, broadcast the barrier, hand the state to the writer
//		case barrier.DeclineCheckpoint:   tell the JobManager (through the writer, after earlier acks)
//		case barrier.ForwardCancelMarker: broadcast a CancelCheckpointMarker on every output
//		}
//	}
//
// Three handlers exist, chosen by execution.checkpointing.mode and
// execution.checkpointing.unaligned.enabled:
//
//   - Aligned (EXACTLY_ONCE, Flink's SingleCheckpointBarrierHandler in
//     aligned mode): a channel that delivered the barrier of checkpoint n is
//     blocked until barrier n arrived on every channel, so that the snapshot
//     reflects exactly the records before the barrier on every channel.
//   - Tracker (AT_LEAST_ONCE, Flink's CheckpointBarrierTracker): never
//     blocks; the snapshot is taken when the last barrier of n arrived, so it
//     may include records that followed barrier n on the faster channels.
//   - Unaligned (EXACTLY_ONCE with unaligned checkpoints, unaligned.go):
//     aligns aligned barriers (savepoints) as Aligned does, snapshots
//     unaligned checkpoints at their first barrier and records the in-flight
//     data as channel state, and switches a timeoutable aligned checkpoint
//     to unaligned when its alignment lasts too long.
//
// Aligned and Unaligned follow one checkpoint at a time and share that
// bookkeeping (single, core.go). Every handler counts a channel that
// delivered EndOfPartition as having delivered every later barrier
// (FLIP-147), so a checkpoint can complete while some inputs have
// finished. Invariants of all of them:
//
//   - a TriggerSnapshot for checkpoint n comes at most once, and never after
//     a DeclineCheckpoint or ForwardCancelMarker for n;
//   - checkpoint ids snapshotted strictly increase;
//   - every BlockChannel is followed by UnblockAll in the same Step that
//     ends the alignment (snapshot or abort); no channel stays blocked when
//     no checkpoint is being aligned.
//
// The slice returned by Step is reused by the next Step.
package barrier
