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
// The only calls that come from other goroutines are Cancel, Execute and the
// counter getters. Cancel interrupts a blocked emit or poll by releasing the
// task's partitions and closing its input gate; the network stack makes those
// calls safe against the task goroutine.
//
// # Invariants
//
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
//   - A task reports CANCELED, not FAILED, when it was canceled, even though
//     the cancellation surfaced as an error inside the chain.
package taskexec
