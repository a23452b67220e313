package taskexec

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/pkg/taskexec/barrier"
)

// control is how other goroutines reach the task goroutine: Cancel,
// Execute (the mailbox), the flush ticker, heartbeats (the published
// counters) and Stack. Every field is safe for concurrent use; New creates
// the channels and the context, nothing replaces them.
type control struct {
	recordsIn  atomic.Int64
	recordsOut atomic.Int64
	bytesIn    atomic.Int64
	bytesOut   atomic.Int64
	// The last checkpoint's alignment and start delay (nanoseconds), state
	// size and in-flight data (bytes), for the metrics.
	lastAlignment      atomic.Int64
	lastStartDelay     atomic.Int64
	lastCheckpointSize atomic.Int64
	lastInFlightBytes  atomic.Int64
	times              taskTime // busy, idle, backpressured
	flushDue           atomic.Bool
	flushWake          chan struct{}
	canceled           atomic.Bool
	cancelCh           chan struct{} // closed by Cancel; also operator.Context.Done
	goid               atomic.Int64  // id of the goroutine in Run, 0 outside (Stack)
	// ctx is canceled by Cancel and at the end of Run: it bounds what the
	// writer goroutine does (state writes, answers to the JobManager).
	ctx        context.Context
	ctxCancel  context.CancelFunc
	cancelOnce sync.Once
	pending    atomic.Int32
	mailbox    chan Action
	done       chan struct{}
}

// init makes the channels and the context (in place: control holds
// atomics and a sync.Once, which must not be copied).
func (c *control) init() {
	c.flushWake = make(chan struct{}, 1)
	c.cancelCh = make(chan struct{})
	c.mailbox = make(chan Action, 16)
	c.done = make(chan struct{})
	c.ctx, c.ctxCancel = context.WithCancel(context.Background())
}

// loopState is the record path's state: the task goroutine's alone, so it
// needs no lock; the counters reach other goroutines through publish, once
// per buffer or source batch.
type loopState struct {
	dec         record.Decoder
	rec         record.Record // reused for every record read from the gate
	nIn         int64
	nBytesIn    int64
	pubIn       int64
	pubOut      int64
	pubBytesIn  int64
	pubBytesOut int64
	timer       *time.Timer // a source's retry delay (idle)
	// deployedFinished: finished on restore (finished.go); no operator of
	// the chain is opened, and records from the inputs are dropped.
	deployedFinished bool
	dropped          int64 // records dropped while deployedFinished
	// mid is the buffer being processed while the task takes a priority
	// event or its mailbox between two of its records (betweenRecords).
	mid midBuffer
}

// midBuffer: the unprocessed rest of the buffer of channel whose records
// are being processed. An unaligned snapshot taken now adds it to the
// input channel state (once per checkpoint: addedTo).
type midBuffer struct {
	active  bool
	channel int
	rest    []byte
	addedTo int64
}

// startFlushTicker starts the goroutine that marks the output buffers due
// for a flush every buffer timeout. It never touches a buffer itself.
func (t *Task) startFlushTicker() (stop func()) {
	if t.bufferTimeout <= 0 || len(t.desc.GetOutputs()) == 0 {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(t.bufferTimeout)
		defer tk.Stop()
		for {
			select {
			case <-tk.C:
				t.flushDue.Store(true)
				select {
				case t.flushWake <- struct{}{}:
				default:
				}
			case <-quit:
				return
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
}

// maybeFlush flushes the outputs if the ticker marked them due.
func (t *Task) maybeFlush() {
	if t.flushDue.Load() {
		t.flushDue.Store(false)
		t.out.flush()
	}
}

// publish makes the task goroutine's counters visible to heartbeats and
// Prometheus (Metrics reads them at scrape time).
func (t *Task) publish() {
	if t.nIn != t.pubIn {
		t.pubIn = t.nIn
		t.recordsIn.Store(t.nIn)
	}
	if t.out.count != t.pubOut {
		t.pubOut = t.out.count
		t.recordsOut.Store(t.out.count)
	}
	if t.nBytesIn != t.pubBytesIn {
		t.pubBytesIn = t.nBytesIn
		t.bytesIn.Store(t.nBytesIn)
	}
	if t.out.bytes != t.pubBytesOut {
		t.pubBytesOut = t.out.bytes
		t.bytesOut.Store(t.out.bytes)
	}
}

// runMailbox runs the actions waiting in the mailbox.
func (t *Task) runMailbox() error {
	for t.pending.Load() > 0 {
		var a Action
		select {
		case a = <-t.mailbox:
		case <-t.cancelCh:
			return ErrCanceled
		}
		t.pending.Add(-1)
		if err := t.runAction(a); err != nil {
			return err
		}
	}
	return nil
}

func (t *Task) runAction(a Action) error {
	if err := a(); err != nil {
		return fmt.Errorf("control action: %w", err)
	}
	return nil
}

// runSource drives the head source until it reports EndOfInput.
func (t *Task) runSource() error {
	src := t.chain[0].src
	id := t.chain[0].spec.ID
	for {
		if t.canceled.Load() {
			return ErrCanceled
		}
		if t.pending.Load() > 0 {
			if err := t.runMailbox(); err != nil {
				return err
			}
		}
		// A stop-with-savepoint holds the source after its barrier, and
		// ends it once complete (or drained).
		if end, err := t.holdSource(); end || err != nil {
			return err
		}
		// Under backpressure, wait for an output buffer here rather than
		// blocked in an emit, where a checkpoint trigger waits until the
		// emit returns (Flink's mailbox suspends the source the same way).
		if p := t.out.unavailable(); p != nil {
			if err := t.awaitOutput(p); err != nil {
				return err
			}
			continue
		}
		status, retry, err := src.PollNext(t.headOut)
		t.publish()
		if err != nil {
			return opError(id, t.subtask, err)
		}
		t.maybeFlush()
		switch status {
		case operator.MoreAvailable:
		case operator.EndOfInput:
			return nil
		case operator.NothingAvailable:
			if retry <= 0 {
				retry = time.Millisecond
			}
			if err := t.idle(retry); err != nil {
				return err
			}
		default:
			return opError(id, t.subtask, fmt.Errorf("PollNext returned unknown status %d", status))
		}
	}
}

// awaitOutput waits until output p may have a buffer again, or the mailbox
// or the flush timer needs the task goroutine, and serves them.
func (t *Task) awaitOutput(p *network.ResultPartition) error {
	t.times.switchTo(stateBackPressured)
	select {
	case <-p.Available():
		t.times.switchTo(stateBusy)
	case a := <-t.mailbox:
		t.times.switchTo(stateBusy)
		t.pending.Add(-1)
		return t.runAction(a)
	case <-t.flushWake:
		t.times.switchTo(stateBusy)
		t.maybeFlush()
	case <-t.cancelCh:
		t.times.switchTo(stateBusy)
		return ErrCanceled
	}
	return nil
}

// idle waits up to d (a source with nothing available) while serving the
// mailbox and the flush timer.
func (t *Task) idle(d time.Duration) error {
	if t.timer == nil {
		t.timer = time.NewTimer(d)
	} else {
		t.timer.Reset(d)
	}
	for {
		t.times.switchTo(stateIdle)
		select {
		case <-t.timer.C:
			t.times.switchTo(stateBusy)
			return nil
		case a := <-t.mailbox:
			t.times.switchTo(stateBusy)
			t.pending.Add(-1)
			if err := t.runAction(a); err != nil {
				t.timer.Stop()
				return err
			}
		case <-t.flushWake:
			t.times.switchTo(stateBusy)
			t.maybeFlush()
		case <-t.cancelCh:
			t.times.switchTo(stateBusy)
			t.timer.Stop()
			return ErrCanceled
		}
	}
}

// runInput drives the head operator from the input gate until every
// channel delivered EndOfPartition. Once every channel delivered EndOfData
// (or EndOfPartition) the input has ended (endInput); checkpoint barriers
// and cancel markers may still come after that, until EndOfPartition.
func (t *Task) runInput() error {
	head := t.chain[0]
	g := t.gate
	for {
		if t.canceled.Load() {
			return ErrCanceled
		}
		if t.pending.Load() > 0 {
			if err := t.runMailbox(); err != nil {
				return err
			}
		}
		boe, ok, err := g.PollNext()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if t.canceled.Load() {
				return ErrCanceled
			}
			return fmt.Errorf("input of operator %q[%d]: %w", head.spec.ID, t.subtask, err)
		}
		if !ok {
			t.times.switchTo(stateIdle)
			select {
			case <-g.Available():
				t.times.switchTo(stateBusy)
			case a := <-t.mailbox:
				t.times.switchTo(stateBusy)
				t.pending.Add(-1)
				if err := t.runAction(a); err != nil {
					return err
				}
			case <-t.flushWake:
				t.times.switchTo(stateBusy)
				t.maybeFlush()
			case <-t.alignTimerC: // nil unless a timeoutable checkpoint aligns
				t.times.switchTo(stateBusy)
				if err := t.alignmentTimerFired(); err != nil {
					return err
				}
			case <-t.cancelCh:
				t.times.switchTo(stateBusy)
				return ErrCanceled
			}
			continue
		}
		if boe.IsEvent {
			if err := t.handleEvent(boe.Channel, boe.Event, boe.OvertakenData); err != nil {
				return err
			}
			continue
		}
		data := boe.Buffer.Data()
		t.nBytesIn += int64(len(data))
		if t.uh != nil {
			// The switch of a timed-out alignment first: the buffer is
			// then recorded if its channel's barrier has not arrived.
			if t.alignTimerC != nil {
				select {
				case <-t.alignTimerC:
					if err := t.alignmentTimerFired(); err != nil {
						boe.Buffer.Recycle()
						return err
					}
				default:
				}
			}
			if t.uh.Recording() {
				// Before its records are processed: a copy of the
				// buffer goes to the channel state if the handler says so.
				if err := t.recordBuffer(boe.Channel, data); err != nil {
					boe.Buffer.Recycle()
					return err
				}
			}
		}
		if t.deployedFinished {
			t.dropBuffer(data)
		} else {
			err = t.processBuffer(boe.Channel, data)
		}
		boe.Buffer.Recycle()
		t.publish()
		if err != nil {
			return err
		}
		t.maybeFlush()
	}
}

// handleEvent handles an in-band event of a channel, in order with its
// data: every record before it has been processed, none after it.
// overtaken holds copies of the buffers a priority barrier overtook on its
// channel (network.BufferOrEvent.OvertakenData).
func (t *Task) handleEvent(channel int, ev network.Event, overtaken [][]byte) error {
	switch ev.Type {
	case network.CheckpointBarrier:
		b := barrier.BarrierReceived{Channel: channel, CheckpointID: ev.CheckpointID, Timestamp: ev.Timestamp, Flags: ev.Flags, Overtaken: len(overtaken)}
		return t.carryOut(t.handler.Step(t.now(), b), carried{overtaken: overtaken})
	case network.CancelCheckpointMarker:
		return t.stepBarrier(barrier.CancelMarkerReceived{Channel: channel, CheckpointID: ev.CheckpointID})
	case network.EndOfData:
		t.endOfDataReceived(ev.Flags)
		return t.channelEnded(channel)
	case network.EndOfPartition:
		// The end of input first: a checkpoint this completes (FLIP-147)
		// then covers everything the channel sent.
		if err := t.channelEnded(channel); err != nil {
			return err
		}
		return t.stepBarrier(barrier.EndOfPartitionReceived{Channel: channel})
	default:
		if channel >= 0 && channel < len(t.inputOf) {
			t.log.Debug("ignoring input event", zap.Stringer("event", ev.Type), zap.Int("input", t.inputOf[channel]))
		}
		return nil
	}
}

// processBuffer decodes the records of one buffer of channel into the
// reused record and hands each to the head. The record does not alias the
// buffer (the decoder copies strings), so the buffer can be recycled
// afterwards. With unaligned checkpoints, a barrier that arrives (a
// priority event) and the mailbox (a trigger) are served between two
// records: a checkpoint never waits for the rest of a buffer whose
// records are slow to process (two atomic loads per record). channel -1:
// recovered channel state being replayed, before the gate is polled.
func (t *Task) processBuffer(channel int, data []byte) error {
	head := t.chain[0]
	between := t.uh != nil && channel >= 0
	for len(data) > 0 {
		if between && (t.gate.HasPriority() || t.pending.Load() > 0) {
			if err := t.betweenRecords(channel, data); err != nil {
				return err
			}
		}
		frame, rest, err := network.NextRecord(data)
		if err != nil {
			return fmt.Errorf("input of operator %q[%d]: %w", head.spec.ID, t.subtask, err)
		}
		if err := t.dec.Decode(frame, &t.rec); err != nil {
			return fmt.Errorf("input of operator %q[%d]: %w", head.spec.ID, t.subtask, err)
		}
		t.nIn++
		if err := head.op.ProcessRecord(&t.rec, t.headOut); err != nil {
			return opError(head.spec.ID, t.subtask, err)
		}
		data = rest
	}
	return nil
}

// betweenRecords takes the priority events that arrived (unaligned
// barriers, cancel markers) and runs the mailbox, between two records of a
// buffer of channel; rest is the part of the buffer not processed yet,
// which an unaligned snapshot taken now adds to channel's input channel
// state (carryOut), ahead of what its barrier overtook in the gate.
func (t *Task) betweenRecords(channel int, rest []byte) error {
	t.mid = midBuffer{active: true, channel: channel, rest: rest, addedTo: noID}
	defer func() { t.mid = midBuffer{} }()
	for t.gate.HasPriority() {
		boe, ok, err := t.gate.PollPriority()
		if err != nil && err != io.EOF {
			if t.canceled.Load() {
				return ErrCanceled
			}
			return fmt.Errorf("input of operator %q[%d]: %w", t.chain[0].spec.ID, t.subtask, err)
		}
		if !ok {
			break
		}
		if err := t.handleEvent(boe.Channel, boe.Event, boe.OvertakenData); err != nil {
			return err
		}
	}
	if t.pending.Load() > 0 {
		return t.runMailbox()
	}
	return nil
}
