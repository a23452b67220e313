// Package network is weir's data plane between tasks: Flink's ResultPartition, InputGate and InputChannel with
// credit-based flow control. It moves length-prefixed byte records packed into buffers, and in-band events
// (EndOfPartition, checkpoint barriers, ...), and knows nothing of what the records contain.
//
// # What it owns
//
// One Manager per TaskManager owns the data server (a TCP listener), the result partitions produced on that
// TaskManager, the input gates of its tasks and every connection and goroutine of these. Close releases all of
// them and returns only when every goroutine has stopped.
//
// # Producer side
//
// A ResultPartition has one subpartition per consumer. Its task goroutine appends records to the subpartition's
// current buffer (EmitRecord: no lock, allocation, channel operation or syscall unless the buffer is full); a full
// buffer, a flushed one (Flush, on execution.buffer-timeout) or one followed by an event enters the subpartition's
// queue. Buffers come from the partition's pool of numSubpartitions*BuffersPerChannel+FloatingBuffersPerGate
// segments, and one subpartition holds at most MaxBuffersPerSubpartition of them (queued, being written, or lent to
// a local consumer). When no buffer may be taken, EmitRecord blocks: that is backpressure. As in Flink, a single slow
// consumer therefore eventually blocks its producer task (and with it the task's other subpartitions), but never an
// unrelated producer: pools are per partition and credit is per channel. A task that must not block inside an emit
// (a source, which has to take checkpoint triggers from its mailbox) checks IsAvailable before producing and waits
// on Available meanwhile, as Flink's mailbox does; availability is kept with one atomic flag, set only while buffers
// other than the writer's current ones are held (those the consumers free), so that waiting on it cannot deadlock.
//
// Finish queues EndOfPartition; once every subpartition's consumer has taken it the partition releases itself.
// Release (or Manager.ReleasePartitions by id prefix) drops queued data and fails blocked writers and consumers.
//
// # Consumer side
//
// An InputGate merges channels; the task waits on Available() and calls PollNext until it returns ok=false.
// PollNext returns io.EOF after every channel has delivered EndOfPartition (those events are returned too). Channels
// resolve in the background: a partition that does not exist yet is retried with exponential backoff until
// PartitionRequestTimeout.
//
// A local channel (producer on the same Manager) takes buffers straight from the producer's subpartition queue: no
// copy, no socket; Recycle returns the buffer to the producer's pool.
//
// A remote channel has one TCP connection of its own to the producer's Manager. We chose a connection per channel
// over Flink's one multiplexed connection per TaskManager pair because it keeps each channel's life cycle
// (connect, retry on partition-not-found, fail, close) independent and the framing free of channel ids; the cost
// is one socket and four goroutines per remote channel (producer side: reader and writer; consumer side: reader
// and credit writer), acceptable at the parallelisms weir targets. Multiplexing can be added later
// behind the same API by putting a channel id in the frame header.
//
// # Credit
//
// A remote channel's credit is its free buffers: BuffersPerChannel exclusive ones, plus floating ones borrowed from
// the gate's pool (FloatingBuffersPerGate) while the producer's announced backlog exceeds the free buffers. The
// initial credit travels with the partition request; recycled buffers are announced in batches by a per-connection
// writer. The producer sends a buffer or an event only against credit: events take credit too, because the
// consumer reads every element into one of its own buffers (an event's buffer is freed as soon as PollNext decodes
// it). The one exception is a priority event (below), sent at once without credit and read into no buffer. While the producer holds data but no credit it announces its backlog, so that the consumer can lend floating
// buffers. Hence in-flight data per remote channel is bounded by MaxBuffersPerSubpartition on the producer plus
// the channel's credit on the consumer, and both sides are inspectable (ResultPartition.Backlog,
// InputGate.Buffered) for unaligned checkpoints.
//
// Invariants:
//   - per channel, elements arrive in the order they were queued; an event follows every record emitted before it;
//     the only exception is a priority event, which overtakes data as described below;
//   - a producer never sends more elements than the credit announced to it; a consumer never announces credit it
//     has no buffer for, so receiving a frame never allocates (except for a record larger than a segment);
//   - nothing read from the network is trusted: frame lengths are capped (MaxFrameSize, and far less for control
//     frames), unknown types and malformed payloads close the connection with a logged error naming the peer;
//     nothing panics on input;
//   - a connection to the data server that has not sent its partition request is closed after HandshakeTimeout,
//     and at most MaxPendingConnectionsPerHost such connections per peer IP (MaxPendingConnections in all) are held:
//     the excess is refused on the accept loop, without a goroutine, with a retryable "busy" error. A consumer
//     retries any connection that ended before the producer answered, so a refusal delays an honest channel but
//     never fails it. Log lines about misbehaving peers are sampled, so a flood does not flood the log.
//
// # Priority events (unaligned checkpoints)
//
// An unaligned checkpoint barrier does not wait behind in-flight data: it overtakes it, and the data it overtook
// becomes part of the checkpoint. ResultPartition.BroadcastPriorityEvent queues the barrier (or a cancel marker) on
// every subpartition ahead of the buffers queued there, after queueing the partially filled current buffer, and
// returns copies of the data buffers it overtook; a remote subpartition sends it at once, without credit, and the
// consumer's remote channel puts it ahead of the buffers it has received but the task has not polled, counting them
// in BufferOrEvent.Overtaken and handing copies of their frames over with the event (BufferOrEvent.OvertakenData,
// taken under the channel's lock when PollNext returns the event). PollNext returns a priority event before the data
// of any channel, also from a blocked channel. The overtaken buffers are not dropped: they are still delivered, after
// the event, in their order.
//
// As in Flink, each side persists the buffers the barrier overtook in its own queue, and no buffer is persisted
// twice. A remote channel, with data buffers numbered in the order the producer emitted them (data flows to the
// right: the oldest element of a queue is its rightmost):
//
//	            producer                                                     consumer
//	 current   subpartition queue   writer   wire     reader   received (not polled)    PollNext
//	  [b6]  ->  [b5 b4 b3]       ->   b2  ->  b1  ->    ->       [a3 a2 a1]        ->   ..., a0 (processed)
//
//	BroadcastPriorityEvent(B): b6 is queued, B goes ahead of b3..b6, which are returned as copies.
//	B is sent after b2 (already taken by the writer) and arrives after b1, b2:
//
//	received, in poll order: B, a1 a2 a3 b1 b2; then b3 b4 b5 b6 arrive     B.Overtaken = 5
//
//	PollNext: ..., a0, B, a1 a2 a3 b1 b2, b3 b4 b5 b6, b7 ...
//	          |  1  |     |      2      | |     3     |
//
// Every data buffer emitted before B is in exactly one of:
//
//  1. delivered by PollNext before B: already in the consumer's operator state;
//  2. the first B.Overtaken data buffers of the channel delivered after B: the consumer's input channel state,
//     persisted from B.OvertakenData (equal, byte for byte) when B is delivered, so that a checkpoint need not wait
//     until the consumer has processed them (Flink spills them at the barrier too);
//  3. the copies BroadcastPriorityEvent returned: the producer's output channel state (Flink's
//     ResultSubpartitionState). The consumer processes them after B but does not persist them: they follow B.
//
// Every buffer delivered after B beyond the first B.Overtaken was emitted after B or is one of those copies. The
// boundary between 2 and 3 is the subpartition lock: a buffer the writer polled before B was queued is on its way
// and will be received before B (TCP keeps order); one it had not polled is in the queue B overtakes. Buffers in
// flight are therefore counted by the consumer, never lost between the two sides.
//
// A local channel has one queue, the producer's: the local consumer takes buffers from it directly. What B
// overtakes there is region 3, and Overtaken is always 0; region 2 is empty.
//
// On restore the producer task calls EmitRawBuffer with each buffer of region 3, oldest first, before it emits
// anything else, and the consumer task replays region 2 before it polls its gate: the channel's data is seen again
// in its original order 1, 2, 3, new. Other events queued behind B (aligned barriers, EndOfData) are overtaken too
// but are neither copied nor counted: Overtaken and the copies are data buffers only.
//
// # Wire format
//
// See frame.go: a 5-byte header (uint32 length, uint8 type) then the payload; types are partition request,
// buffer, event, priority event, add-credit, backlog and error (partition not found: retried; released: the channel
// fails).
//
// Records in a buffer are framed uvarint(len) | bytes and never span buffers; a record larger than a segment gets a
// buffer of its own. NextRecord iterates them without allocating.
package network
