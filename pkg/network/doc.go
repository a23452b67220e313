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
// Remote channels are multiplexed, as in Flink's Netty shuffle: a Manager holds one TCP connection to each producer
// Manager it reads from, shared by every remote channel of every gate reading from that producer, so a pair of
// TaskManagers has at most one connection per direction of data flow (not one per channel: at parallelism 16 over
// two TaskManagers that was hundreds of sockets and four goroutines each). A channel opens itself on the connection
// with a partition request carrying an id of its own (Flink's InputChannelID); every frame of the channel carries
// the id. The consumer end of a connection has a reader and a writer goroutine (requests, credit, cancels), the
// producer end a reader (requests, credit, cancels) and a writer, which serves the channels with data and credit in
// turn.
//
// Life cycle. The first channel to a producer dials (with TLS, one handshake per connection); later ones join. A
// channel ends on its own: EndOfPartition, an error frame for its id (partition not found, which it retries with
// backoff as before, possibly on a new connection; released; invalid request), or its gate closing (task canceled
// or finished), which sends a cancel so that the producer detaches the subpartition. None of these touches the
// other channels. The connection closes when its last channel ends, at once (no idle period: the next channel dials
// again; a job's channels open together and end together, so keeping idle sockets would buy little). A connection
// that fails (broken, or a protocol error of either side) fails exactly the channels open on it at that moment; as
// before, if nothing at all had arrived on it (a refusal) they retry with their credit intact.
//
// # Credit
//
// A remote channel's credit is its free buffers: BuffersPerChannel exclusive ones, plus floating ones borrowed from
// the gate's pool (FloatingBuffersPerGate) while the producer's announced backlog exceeds the free buffers. The
// initial credit travels with the partition request; recycled buffers are announced in batches, per channel, by the
// connection's writer. The producer sends a buffer or an event only against credit: events take credit too, because the
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
//   - one channel never holds up another on their shared connection: the producer's writer sends a channel's
//     elements only while that channel has credit (a channel without credit announces its backlog and leaves the
//     writer's line until credit comes), and the consumer's reader never waits for a channel: what it reads lands
//     in a buffer the channel announced as credit, else the producer broke the protocol;
//   - a frame naming a channel never opened on the connection, a partition request reusing an id, or an oversized
//     length closes the connection (logged with the reason, naming the peer); a frame for a channel that has ended
//     on the receiving side (a credit or cancel crossing the producer's EndOfPartition, buffers crossing the
//     consumer's cancel) is dropped, read with no allocation;
//   - a connection to the data server that has not sent its partition request is closed after HandshakeTimeout,
//     and so is one that has no open channel (its requests failed, its channels ended) and sends nothing for as
//     long: an honest consumer has a channel open, retries within its backoff, or closes the connection itself;
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
// See frame.go: a 9-byte header (uint32 length, uint8 type, uint32 channel id) then the payload; types are partition
// request, buffer, event, priority event, add-credit, backlog, error (partition not found: retried; released: the
// channel fails; on channel 0, busy: the whole connection is refused) and cancel.
//
// Records in a buffer are framed uvarint(len) | bytes and never span buffers; a record larger than a segment gets a
// buffer of its own. NextRecord iterates them without allocating.
package network
