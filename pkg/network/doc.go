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
// unrelated producer: pools are per partition and credit is per channel.
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
// it). While the producer holds data but no credit it announces its backlog, so that the consumer can lend floating
// buffers. Hence in-flight data per remote channel is bounded by MaxBuffersPerSubpartition on the producer plus
// the channel's credit on the consumer, and both sides are inspectable (ResultPartition.Backlog,
// InputGate.Buffered) for unaligned checkpoints.
//
// Invariants:
//   - per channel, elements arrive in the order they were queued; an event follows every record emitted before it;
//   - a producer never sends more elements than the credit announced to it; a consumer never announces credit it
//     has no buffer for, so receiving a frame never allocates (except for a record larger than a segment);
//   - nothing read from the network is trusted: frame lengths are capped (MaxFrameSize, and far less for control
//     frames), unknown types and malformed payloads close the connection with a logged error naming the peer;
//     nothing panics on input.
//
// # Wire format
//
// See frame.go: a 5-byte header (uint32 length, uint8 type) then the payload; types are partition request,
// buffer, event, add-credit, backlog and error (partition not found: retried; released: the channel fails).
//
// Records in a buffer are framed uvarint(len) | bytes and never span buffers; a record larger than a segment gets a
// buffer of its own. NextRecord iterates them without allocating.
package network
