package taskexec

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/pkg/state"
	"github.com/weirstream/weir/pkg/taskexec/barrier"
	"github.com/weirstream/weir/proto/weirpb"
)

// CheckpointResponder carries a task's answers to the JobManager (Flink's
// CheckpointResponder). Calls come from the task's writer goroutine, one at
// a time, in checkpoint order; an error is logged (the JobManager then
// times the checkpoint out).
type CheckpointResponder interface {
	AcknowledgeCheckpoint(ctx context.Context, req *weirpb.AcknowledgeCheckpointRequest) error
	DeclineCheckpoint(ctx context.Context, req *weirpb.DeclineCheckpointRequest) error
}

// opSnapshot is the captured state of one operator of the chain.
type opSnapshot struct {
	id        string
	keyGroups state.KeyGroupRange
	snap      *operator.Snapshot
}

// writeJob is one unit of the writer's queue: a snapshot to write and
// acknowledge, or a decline to send.
type writeJob struct {
	id        int64
	ts        int64
	alignment time.Duration
	sync      time.Duration // the synchronous part (Task.snapshot)
	finished  bool
	ops       []opSnapshot
	decline   *weirpb.DeclineCheckpointRequest
	// unaligned: taken unaligned; channels is its channel state (nil when
	// none was recorded).
	unaligned bool
	channels  *channelCapture
}

// snapshotWriter is the goroutine of a task that writes its snapshots to
// checkpoint storage and answers the JobManager, in the order the task
// goroutine queued them: so acknowledgements of one task come in checkpoint
// order, and a decline never overtakes an earlier acknowledgement. A write
// error declines the checkpoint; it never fails the task.
type snapshotWriter struct {
	t      *Task
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{}

	mu      sync.Mutex
	queue   []*writeJob
	closing bool
}

// startWriter starts the writer goroutine on first use. Task goroutine only.
func (t *Task) startWriter() *snapshotWriter {
	if t.writer != nil {
		return t.writer
	}
	w := &snapshotWriter{t: t, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	w.ctx, w.cancel = context.WithCancel(t.ctx)
	t.writer = w
	go w.run()
	return w
}

// stopWriter stops the writer goroutine: after writing and answering what
// is queued when drain is set (the task finished: its acknowledgements go
// out before it reports FINISHED), else at once, dropping what is queued.
func (t *Task) stopWriter(drain bool) {
	w := t.writer
	if w == nil {
		return
	}
	if !drain {
		w.cancel()
	}
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	w.signal()
	<-w.done
	w.cancel()
}

func (w *snapshotWriter) enqueue(j *writeJob) {
	w.mu.Lock()
	w.queue = append(w.queue, j)
	w.mu.Unlock()
	w.signal()
}

func (w *snapshotWriter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *snapshotWriter) run() {
	defer close(w.done)
	for {
		w.mu.Lock()
		var j *writeJob
		if len(w.queue) > 0 {
			j = w.queue[0]
			w.queue[0] = nil
			w.queue = w.queue[1:]
		}
		closing := w.closing
		w.mu.Unlock()
		if w.ctx.Err() != nil {
			return
		}
		if j == nil {
			if closing {
				return
			}
			<-w.wake
			continue
		}
		w.process(j)
	}
}

func (w *snapshotWriter) process(j *writeJob) {
	t := w.t
	if j.decline != nil {
		if err := w.respond(func(r CheckpointResponder) error { return r.DeclineCheckpoint(w.ctx, j.decline) }); err != nil {
			t.log.Warn("cannot decline checkpoint", zap.Int64("checkpoint", j.id), zap.Error(err))
		}
		return
	}
	ack, err := w.write(j)
	if err != nil {
		if w.ctx.Err() != nil {
			return // canceled: nobody waits for this checkpoint any more
		}
		t.log.Warn("checkpoint failed", zap.Int64("checkpoint", j.id), zap.Error(err))
		req := &weirpb.DeclineCheckpointRequest{Execution: t.exec, CheckpointId: j.id, ReasonCode: barrier.DeclineReasonAsync, Message: err.Error()}
		if err := w.respond(func(r CheckpointResponder) error { return r.DeclineCheckpoint(w.ctx, req) }); err != nil {
			t.log.Warn("cannot decline checkpoint", zap.Int64("checkpoint", j.id), zap.Error(err))
		}
		return
	}
	t.lastCheckpointSize.Store(ack.StateSize)
	t.lastInFlightBytes.Store(ack.PersistedInFlightBytes)
	if err := w.respond(func(r CheckpointResponder) error { return r.AcknowledgeCheckpoint(w.ctx, ack) }); err != nil {
		t.log.Warn("cannot acknowledge checkpoint", zap.Int64("checkpoint", j.id), zap.Error(err))
		return
	}
	t.log.Debug("checkpoint acknowledged", zap.Int64("checkpoint", j.id), zap.Int64("state_size", ack.StateSize),
		zap.Bool("unaligned", j.unaligned), zap.Int64("in_flight_bytes", ack.PersistedInFlightBytes))
}

func (w *snapshotWriter) respond(f func(CheckpointResponder) error) error {
	if w.t.env.Responder == nil {
		return errors.New("no checkpoint responder")
	}
	return f(w.t.env.Responder)
}

// write writes the state of every operator of j into the checkpoint's
// location and returns the acknowledgement. Storage I/O ends
// execution.checkpointing.timeout after the write starts, or when the task
// is canceled. The state files of a failed write are deleted: they belong
// to no checkpoint, and with entropy injection they lie outside the
// checkpoint's directory that the JobManager disposes of.
func (w *snapshotWriter) write(j *writeJob) (ack *weirpb.AcknowledgeCheckpointRequest, err error) {
	t := w.t
	asyncStart := time.Now() // Flink's async duration: the write to storage
	loc, err := t.storage.CheckpointLocation(t.exec.GetJobId(), j.id)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %d: %w", j.id, err)
	}
	// The timeout counts from now, not from the trigger's timestamp: that
	// is the JobManager's clock. The JobManager expires the checkpoint on
	// its own; this only ends I/O that nobody waits for any more.
	ctx, cancel := context.WithCancel(w.ctx)
	if t.checkpointTimeout > 0 {
		ctx, cancel = context.WithTimeout(w.ctx, t.checkpointTimeout)
	}
	defer cancel()
	ts := &snapshot.TaskState{Operators: make(map[string][]snapshot.StateObject, len(j.ops))}
	defer func() {
		if err != nil {
			w.discard(loc, ts)
		}
	}()
	var size int64
	for _, o := range j.ops {
		if len(o.snap.Items) > 0 {
			obj, err := writeItems(ctx, loc, fmt.Sprintf("%s-%d-items", o.id, t.subtask), o.snap.Items)
			if err != nil {
				return nil, fmt.Errorf("checkpoint %d: operator %q[%d]: %w", j.id, o.id, t.subtask, err)
			}
			ts.Operators[o.id] = append(ts.Operators[o.id], obj)
			size += obj.Size
		}
		if o.snap.WriteKeyGroup != nil {
			obj, err := writeKeyed(ctx, loc, fmt.Sprintf("%s-%d-keyed", o.id, t.subtask), o.keyGroups, o.snap.WriteKeyGroup)
			if err != nil {
				return nil, fmt.Errorf("checkpoint %d: operator %q[%d]: %w", j.id, o.id, t.subtask, err)
			}
			ts.Operators[o.id] = append(ts.Operators[o.id], obj)
			size += obj.Size
		}
		if ts.Operators[o.id] == nil {
			ts.Operators[o.id] = []snapshot.StateObject{}
		}
	}
	var inFlight int64
	if j.channels != nil {
		n, s, err := w.writeChannels(ctx, loc, j, ts)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %d: %w", j.id, err)
		}
		inFlight = n
		size += s
	}
	b, err := snapshot.EncodeTaskState(ts)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %d: encode task state: %w", j.id, err)
	}
	return &weirpb.AcknowledgeCheckpointRequest{
		Execution:    t.exec,
		CheckpointId: j.id,
		State:        b,
		StateSize:    size,
		AlignmentMs:  j.alignment.Milliseconds(),
		Finished:     j.finished,

		PersistedInFlightBytes: inFlight,
		SyncDurationMicros:     j.sync.Microseconds(),
		AsyncDurationMicros:    time.Since(asyncStart).Microseconds(),
	}, nil
}

// discardTimeout bounds deleting the state files of a failed write.
const discardTimeout = 10 * time.Second

// discard deletes the state files of a failed write. A canceled task
// leaves them to the JobManager, which disposes of the checkpoint.
func (w *snapshotWriter) discard(loc snapshot.Location, ts *snapshot.TaskState) {
	if w.ctx.Err() != nil {
		return
	}
	var objs []snapshot.StateObject
	for _, o := range ts.Operators {
		objs = append(objs, o...)
	}
	ctx, cancel := context.WithTimeout(w.ctx, discardTimeout)
	defer cancel()
	if err := snapshot.DisposeState(ctx, loc.Path(), objs); err != nil {
		w.t.log.Warn("cannot delete the state files of a failed checkpoint", zap.Error(err))
	}
}

// writeItems writes operator state items as one KindOperator state file
// (EncodeOperatorItems).
func writeItems(ctx context.Context, loc snapshot.Location, name string, items [][]byte) (snapshot.StateObject, error) {
	sw, err := loc.CreateStateFile(ctx, name)
	if err != nil {
		return snapshot.StateObject{}, err
	}
	if err := EncodeOperatorItems(sw, items); err != nil {
		_ = sw.Abort()
		return snapshot.StateObject{}, fmt.Errorf("write operator state: %w", err)
	}
	h, err := sw.Close()
	if err != nil {
		return snapshot.StateObject{}, err
	}
	return snapshot.StateObject{Kind: snapshot.KindOperator, StateHandle: h}, nil
}

// writeKeyed writes the keyed state of every key group of r, in order.
func writeKeyed(ctx context.Context, loc snapshot.Location, name string, r state.KeyGroupRange, write func(int, io.Writer) error) (snapshot.StateObject, error) {
	if r.NumKeyGroups() <= 0 {
		return snapshot.StateObject{}, fmt.Errorf("keyed state: empty key group range %v", r)
	}
	sw, err := loc.CreateStateFile(ctx, name)
	if err != nil {
		return snapshot.StateObject{}, err
	}
	kw := snapshot.NewKeyGroupWriter(sw, r)
	for kg := r.Start; kg <= r.End; kg++ {
		if err := ctx.Err(); err != nil {
			_ = kw.Abort()
			return snapshot.StateObject{}, err
		}
		err := kw.StartKeyGroup(kg)
		if err == nil {
			err = write(kg, kw)
		}
		if err != nil {
			_ = kw.Abort()
			return snapshot.StateObject{}, fmt.Errorf("write key group %d: %w", kg, err)
		}
	}
	return kw.Close()
}

// maxItemLen bounds one operator state item when decoding.
const maxItemLen = 1 << 30

// EncodeOperatorItems writes operator state items as stored in a
// KindOperator state file: uvarint(count), then uvarint(len) | bytes for
// each item.
func EncodeOperatorItems(w io.Writer, items [][]byte) error {
	var buf [binary.MaxVarintLen64]byte
	if _, err := w.Write(buf[:binary.PutUvarint(buf[:], uint64(len(items)))]); err != nil {
		return err
	}
	for _, it := range items {
		if _, err := w.Write(buf[:binary.PutUvarint(buf[:], uint64(len(it)))]); err != nil {
			return err
		}
		if _, err := w.Write(it); err != nil {
			return err
		}
	}
	return nil
}

// DecodeOperatorItems reads what EncodeOperatorItems wrote. Malformed input
// is an error, never a panic or an unbounded allocation.
func DecodeOperatorItems(r io.Reader) ([][]byte, error) {
	br := bufio.NewReader(r)
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("operator state: item count: %w", noEOF(err))
	}
	var items [][]byte
	for i := uint64(0); i < n; i++ {
		l, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, fmt.Errorf("operator state: item %d of %d: length: %w", i, n, noEOF(err))
		}
		if l > maxItemLen {
			return nil, fmt.Errorf("operator state: item %d of %d: length %d exceeds %d", i, n, l, maxItemLen)
		}
		it := make([]byte, l)
		if _, err := io.ReadFull(br, it); err != nil {
			return nil, fmt.Errorf("operator state: item %d of %d: %w", i, n, noEOF(err))
		}
		items = append(items, it)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("operator state: trailing bytes after %d items", n)
	}
	return items, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
