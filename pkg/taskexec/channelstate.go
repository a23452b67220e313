package taskexec

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/pkg/taskexec/barrier"
)

// Channel state: the in-flight data of an unaligned checkpoint, the task's
// side (the decisions are barrier.Unaligned's).
//
// Capture. When the handler snapshots unaligned, the task snapshots its
// chain, flushes its outputs (the records in a partly filled buffer were
// emitted before the barrier) and sends the barrier with
// BroadcastPriorityEvent, which returns the buffers it overtook in each
// output subpartition's queue: the output channel state. Then, per
// RecordBuffer, it copies each input buffer the handler names, and per
// RecordOvertaken it adds the copies of the buffers a barrier overtook in
// the gate, which the gate hands over with the barrier (those buffers are
// processed later and not recorded again): the input channel state.
// Copies, because processing goes on (the buffers are recycled; the
// overtaken output buffers are still sent downstream). At
// ChannelStateComplete the snapshot and the channel state go to the writer
// together; at DiscardChannelState they are dropped.
//
// Objects. One KindInputChannel object per input channel with data, in the
// head operator's state (Flink keeps input channel state with the head,
// result subpartition state with the tail), ChannelStateInfo{Gate: index
// of the input in the deployment descriptor, Channel: index of the
// channel in that input}; one KindResultSubpartition object per output
// partition and subpartition with data, in the tail operator's state,
// {Gate: output index, Channel: subpartition}. The bytes of an object are
//
//	uvarint(layout) | frames of buffer 0 | frames of buffer 1 | ...
//
// where the frames of a buffer are its Data() (records framed by the
// network: uvarint(len) | record), Offsets[i] is where buffer i starts
// (after the header), and layout is the number of channels of that input
// (the producer's parallelism) or the number of subpartitions of that
// output (the consumer's parallelism) when the checkpoint was taken.
//
// Restore. A restored attempt first re-sends every recovered output buffer
// to its subpartition (EmitRawBuffer, in order), before any operator is
// opened; then, once its operators restored their state and before it
// polls its gate, it feeds every recovered input buffer through the chain,
// channel by channel, each channel's buffers in order. Only then does it
// run normally. So a consumer sees, per channel: its own recovered input
// state, the producer's recovered output state, then new data: the order
// of the original run.
//
// Rescaling. A checkpoint with channel state cannot be restored at another
// parallelism: the task fails. Flink redistributes channel state on
// rescaling (it reroutes recovered buffers by key group to the new
// subtasks, with virtual channels that demultiplex them until the
// recovered data is consumed), which weir does not do yet. Checked: the
// task's own parallelism against each operator's in the checkpoint, and
// the layout recorded in each object against the current descriptor (so
// that a producer whose consumer was rescaled fails too, as its recovered
// subpartition buffers would go to the wrong consumer). A savepoint is
// always aligned, so rescaling from a savepoint works.

// channelData is the recorded buffers of one channel: their frames back to
// back, and where each buffer starts.
type channelData struct {
	data    []byte
	offsets []int64
}

func (c *channelData) add(frames []byte) {
	c.offsets = append(c.offsets, int64(len(c.data)))
	c.data = append(c.data, frames...)
}

// channelCapture is the channel state of one unaligned checkpoint being
// recorded, with its snapshot. Task goroutine only until handed to the
// writer.
type channelCapture struct {
	id      int64
	job     *writeJob
	inputs  []channelData   // per gate channel
	outputs [][]channelData // per output, per subpartition
}

// barrierFlags returns the flags of the barrier of a triggered checkpoint:
// an unaligned request is unaligned (or timeoutable aligned with an
// aligned-checkpoint timeout) only in a job with unaligned checkpoints
// enabled in EXACTLY_ONCE mode, else aligned.
func (t *Task) barrierFlags(o CheckpointOptions) uint32 {
	f := o.flags()
	if f&barrier.FlagUnaligned == 0 {
		return f
	}
	f &^= barrier.FlagUnaligned
	switch {
	case t.uh == nil:
	case t.alignedTimeout > 0:
		f |= barrier.FlagAlignedTimeout
	default:
		f |= barrier.FlagUnaligned
	}
	return f
}

// sendPriorityBarrier sends the barrier of an unaligned checkpoint ahead
// of the buffers queued in every output, after flushing the current
// buffers into the queues, and returns a capture holding what it overtook.
func (t *Task) sendPriorityBarrier(ev network.Event) (*channelCapture, error) {
	c := &channelCapture{id: ev.CheckpointID, inputs: make([]channelData, len(t.inputOf))}
	t.out.flush()
	c.outputs = make([][]channelData, len(t.out.outs))
	for i, o := range t.out.outs {
		if o.p == nil {
			continue
		}
		overtaken, err := o.p.BroadcastPriorityEvent(ev)
		if err != nil {
			return nil, &attributedError{fmt.Errorf("send %s to %q: %w", ev.Type, t.desc.GetOutputs()[i].GetConsumerOperator(), err)}
		}
		c.outputs[i] = make([]channelData, o.numSub)
		for sub, bufs := range overtaken {
			if sub >= o.numSub {
				break
			}
			for _, b := range bufs {
				// A copy: the buffer is still sent downstream, and
				// recycled then.
				c.outputs[i][sub].add(b)
			}
		}
	}
	return c, nil
}

// recordBuffer feeds the handler a data buffer polled on ch while it
// records channel state, and copies the buffer if it says so.
func (t *Task) recordBuffer(ch int, data []byte) error {
	if ch < 0 || ch >= len(t.bufferEvents) {
		return nil
	}
	return t.carryOut(t.handler.Step(t.now(), t.bufferEvents[ch]), carried{data: data})
}

// channelStateComplete hands the snapshot and channel state of checkpoint
// id to the writer.
func (t *Task) channelStateComplete(id int64) {
	c := t.capture
	if c == nil || c.id != id {
		return // its snapshot was declined
	}
	t.capture = nil
	c.job.channels = c
	t.startWriter().enqueue(c.job)
}

// discardChannelState drops the snapshot and channel state of checkpoint
// id.
func (t *Task) discardChannelState(id int64) {
	if c := t.capture; c != nil && c.id == id {
		t.capture = nil
		t.log.Debug("dropping the channel state of an unaligned checkpoint that will not complete", zap.Int64("checkpoint", id))
	}
}

// armAlignmentTimer arms the timer of the aligned-checkpoint timeout for
// the handler's deadline, or stops it when there is none. Task goroutine
// only; the timer's channel is selected in runInput.
func (t *Task) armAlignmentTimer() {
	if t.uh == nil {
		return
	}
	d, ok := t.uh.Deadline()
	if !ok {
		if t.alignTimerC != nil {
			t.alignTimer.Stop()
			t.alignTimerC = nil
		}
		return
	}
	if t.alignTimerC != nil && d.Equal(t.alignDeadline) {
		return
	}
	wait := max(d.Sub(t.now()), 0)
	if t.alignTimer == nil {
		t.alignTimer = time.NewTimer(wait)
	} else {
		t.alignTimer.Reset(wait)
	}
	t.alignTimerC, t.alignDeadline = t.alignTimer.C, d
}

// alignmentTimerFired tells the handler the timer fired; it switches the
// checkpoint to unaligned if the (injected) clock says the timeout passed,
// else the timer is armed again.
func (t *Task) alignmentTimerFired() error {
	t.alignTimerC = nil
	return t.stepBarrier(barrier.AlignmentTimerFired{})
}

func (t *Task) stopAlignmentTimer() {
	if t.alignTimer != nil {
		t.alignTimer.Stop()
		t.alignTimerC = nil
	}
}

// writeChannelState writes the recorded buffers of one channel as one
// object (the encoding is in the comment at the top of this file).
func writeChannelState(ctx context.Context, loc snapshot.Location, name string, kind snapshot.StateKind, gate, channel, layout int, c *channelData) (snapshot.StateObject, error) {
	sw, err := loc.CreateStateFile(ctx, name)
	if err != nil {
		return snapshot.StateObject{}, err
	}
	hdr, offs := channelStateHeader(layout, c)
	if _, err := sw.Write(hdr); err != nil {
		_ = sw.Abort()
		return snapshot.StateObject{}, fmt.Errorf("write channel state: %w", err)
	}
	if _, err := sw.Write(c.data); err != nil {
		_ = sw.Abort()
		return snapshot.StateObject{}, fmt.Errorf("write channel state: %w", err)
	}
	h, err := sw.Close()
	if err != nil {
		return snapshot.StateObject{}, err
	}
	return snapshot.StateObject{Kind: kind, StateHandle: h, Channel: &snapshot.ChannelStateInfo{Gate: gate, Channel: channel, Offsets: offs}}, nil
}

// channelStateHeader returns the header of the object holding c (uvarint(layout)) and the offsets of c's buffers
// in the object: the object is the header followed by c.data.
func channelStateHeader(layout int, c *channelData) (hdr []byte, offs []int64) {
	hdr = binary.AppendUvarint(nil, uint64(layout))
	offs = make([]int64, len(c.offsets))
	for i, o := range c.offsets {
		offs[i] = o + int64(len(hdr))
	}
	return hdr, offs
}

// channelStateLayout reads the header of a channel state object: the layout it was written for and the header's
// length.
func channelStateLayout(b []byte) (layout uint64, n int, err error) {
	layout, n = binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, fmt.Errorf("%w: malformed header", snapshot.ErrCorrupt)
	}
	return layout, n, nil
}

// splitChannelBuffers splits a channel state object b, whose header has n bytes, into its buffers at offs (the
// object's ChannelStateInfo.Offsets). The buffers alias b. Offsets that do not start right after the header, go
// backwards or point beyond b are corrupt data, never a panic.
func splitChannelBuffers(b []byte, n int, offs []int64) ([][]byte, error) {
	if len(offs) == 0 || offs[0] != int64(n) {
		return nil, fmt.Errorf("%w: buffer offsets %v do not start after the %d-byte header", snapshot.ErrCorrupt, offs, n)
	}
	bufs := make([][]byte, 0, len(offs))
	for i, off := range offs {
		end := int64(len(b))
		if i+1 < len(offs) {
			end = offs[i+1]
		}
		if off > end || end > int64(len(b)) {
			return nil, fmt.Errorf("%w: buffer offsets %v out of order or beyond the %d bytes", snapshot.ErrCorrupt, offs, len(b))
		}
		bufs = append(bufs, b[off:end])
	}
	return bufs, nil
}

// writeChannels writes the channel state of j into ts and returns its
// bytes (in-flight data, without headers) and the size of its objects.
// Writer goroutine.
func (w *snapshotWriter) writeChannels(ctx context.Context, loc snapshot.Location, j *writeJob, ts *snapshot.TaskState) (inFlight, size int64, err error) {
	t := w.t
	c := j.channels
	head, tail := t.chain[0].spec.ID, t.chain[len(t.chain)-1].spec.ID
	for ch := range c.inputs {
		cd := &c.inputs[ch]
		if len(cd.offsets) == 0 {
			continue
		}
		gate, idx := t.channelGate[ch], t.channelIndex[ch]
		layout := len(t.desc.GetInputs()[gate].GetChannels())
		obj, err := writeChannelState(ctx, loc, fmt.Sprintf("%s-%d-in-%d-%d", head, t.subtask, gate, idx), snapshot.KindInputChannel, gate, idx, layout, cd)
		if err != nil {
			return 0, 0, fmt.Errorf("input channel state of input %d channel %d: %w", gate, idx, err)
		}
		ts.Operators[head] = append(ts.Operators[head], obj)
		inFlight += int64(len(cd.data))
		size += obj.Size
	}
	for out, subs := range c.outputs {
		for sub := range subs {
			cd := &subs[sub]
			if len(cd.offsets) == 0 {
				continue
			}
			obj, err := writeChannelState(ctx, loc, fmt.Sprintf("%s-%d-out-%d-%d", tail, t.subtask, out, sub), snapshot.KindResultSubpartition, out, sub, len(subs), cd)
			if err != nil {
				return 0, 0, fmt.Errorf("output channel state of output %d subpartition %d: %w", out, sub, err)
			}
			ts.Operators[tail] = append(ts.Operators[tail], obj)
			inFlight += int64(len(cd.data))
			size += obj.Size
		}
	}
	return inFlight, size, nil
}

// restoredChannel is one channel state object a restored attempt replays.
type restoredChannel struct {
	op      string
	subtask int // the old subtask that wrote it
	gate    int
	channel int
	obj     snapshot.StateObject
}

// channelRestore is the channel state of a restored attempt, in replay
// order (by gate, then channel).
type channelRestore struct {
	checkpoint int64
	location   string
	inputs     []restoredChannel
	outputs    []restoredChannel
}

// rescaleError is the failure of a restore of channel state at another
// parallelism.
func rescaleError(checkpoint int64, why string) error {
	return fmt.Errorf("checkpoint %d has in-flight data (unaligned) and cannot be restored at a different parallelism; use a savepoint (always aligned) to rescale (%s)", checkpoint, why)
}

// planChannelState finds the channel state of this subtask in r (nil: no
// restore) and checks that it can be restored here. It reads no state.
func (t *Task) planChannelState(r *snapshot.TaskRestore) (*channelRestore, error) {
	if r == nil {
		return nil, nil
	}
	p := int(t.desc.GetParallelism())
	cr := &channelRestore{checkpoint: r.CheckpointID, location: r.Location}
	for _, c := range t.chain {
		os := r.Operators[c.spec.ID]
		if os == nil {
			continue
		}
		oldP := os.Parallelism
		if oldP <= 0 {
			oldP = len(os.Subtasks)
		}
		for _, st := range os.Subtasks {
			for _, o := range st.State {
				if !isChannelKind(o.Kind) {
					continue
				}
				if oldP != p {
					return nil, rescaleError(r.CheckpointID, fmt.Sprintf("operator %q has parallelism %d in the checkpoint and %d now", c.spec.ID, oldP, p))
				}
				if st.Subtask != t.subtask {
					continue
				}
				if o.Channel == nil {
					return nil, fmt.Errorf("restore subtask %d from checkpoint %d: %s state of operator %q has no channel", t.subtask, r.CheckpointID, o.Kind, c.spec.ID)
				}
				rc := restoredChannel{op: c.spec.ID, gate: o.Channel.Gate, channel: o.Channel.Channel, obj: o}
				if err := t.checkChannel(r.CheckpointID, o.Kind, rc.gate, rc.channel); err != nil {
					return nil, err
				}
				if o.Kind == snapshot.KindInputChannel {
					cr.inputs = append(cr.inputs, rc)
				} else {
					cr.outputs = append(cr.outputs, rc)
				}
			}
		}
	}
	byChannel := func(a, b restoredChannel) int {
		if a.gate != b.gate {
			return a.gate - b.gate
		}
		return a.channel - b.channel
	}
	slices.SortStableFunc(cr.inputs, byChannel)
	slices.SortStableFunc(cr.outputs, byChannel)
	if len(cr.inputs) == 0 && len(cr.outputs) == 0 {
		return nil, nil
	}
	return cr, nil
}

func isChannelKind(k snapshot.StateKind) bool {
	return k == snapshot.KindInputChannel || k == snapshot.KindResultSubpartition
}

// checkChannel checks that a channel of the checkpoint exists here.
func (t *Task) checkChannel(checkpoint int64, kind snapshot.StateKind, gate, channel int) error {
	if kind == snapshot.KindInputChannel {
		ins := t.desc.GetInputs()
		if gate < 0 || gate >= len(ins) {
			return rescaleError(checkpoint, fmt.Sprintf("input channel state of input %d, but the task has %d inputs", gate, len(ins)))
		}
		if n := len(ins[gate].GetChannels()); channel < 0 || channel >= n {
			return rescaleError(checkpoint, fmt.Sprintf("input channel state of input %d channel %d, but the input has %d channels", gate, channel, n))
		}
		return nil
	}
	outs := t.desc.GetOutputs()
	if gate < 0 || gate >= len(outs) {
		return rescaleError(checkpoint, fmt.Sprintf("output channel state of output %d, but the task has %d outputs", gate, len(outs)))
	}
	if n := int(outs[gate].GetNumSubpartitions()); channel < 0 || channel >= n {
		return rescaleError(checkpoint, fmt.Sprintf("output channel state of output %d subpartition %d, but the output has %d subpartitions", gate, channel, n))
	}
	return nil
}

// readChannel reads one channel state object, checks the layout it was
// written for against the current one and returns its buffers.
func (t *Task) readChannel(cr *channelRestore, rc restoredChannel, layout int) ([][]byte, error) {
	what := fmt.Sprintf("output %d subpartition %d", rc.gate, rc.channel)
	if rc.obj.Kind == snapshot.KindInputChannel {
		what = fmt.Sprintf("input %d channel %d", rc.gate, rc.channel)
	}
	fail := func(err error) error {
		return fmt.Errorf("restore subtask %d from checkpoint %d: channel state of %s (operator %q): %w", t.subtask, cr.checkpoint, what, rc.op, err)
	}
	if !rc.obj.IsInline() && cr.location == "" {
		return nil, fail(fmt.Errorf("state file %s: the restore state has no checkpoint location", rc.obj.Path))
	}
	rd, err := snapshot.OpenState(t.ctx, cr.location, rc.obj.StateHandle)
	if err != nil {
		return nil, fail(err)
	}
	b, err := io.ReadAll(rd)
	_ = rd.Close()
	if err != nil {
		return nil, fail(err)
	}
	old, n, err := channelStateLayout(b)
	if err != nil {
		return nil, fail(err)
	}
	if old != uint64(layout) {
		kind := "the producer's parallelism (channels of the input)"
		if rc.obj.Kind == snapshot.KindResultSubpartition {
			kind = "the consumer's parallelism (subpartitions of the output)"
		}
		return nil, rescaleError(cr.checkpoint, fmt.Sprintf("%s: %s was %d and is %d", what, kind, old, layout))
	}
	bufs, err := splitChannelBuffers(b, n, rc.obj.Channel.Offsets)
	if err != nil {
		return nil, fail(err)
	}
	return bufs, nil
}

// restoreOutputState re-sends every recovered output buffer to its
// subpartition, in order, before anything else is emitted.
func (t *Task) restoreOutputState(cr *channelRestore) error {
	if cr == nil {
		return nil
	}
	var n, bytes int
	for _, rc := range cr.outputs {
		p := t.out.outs[rc.gate].p
		bufs, err := t.readChannel(cr, rc, t.out.outs[rc.gate].numSub)
		if err != nil {
			return err
		}
		for _, b := range bufs {
			if err := p.EmitRawBuffer(rc.channel, b); err != nil {
				if t.canceled.Load() {
					return ErrCanceled
				}
				return &attributedError{fmt.Errorf("re-send recovered output to %q subpartition %d: %w", t.desc.GetOutputs()[rc.gate].GetConsumerOperator(), rc.channel, err)}
			}
			n++
			bytes += len(b)
		}
	}
	if n > 0 {
		t.log.Info("recovered output buffers re-sent", zap.Int64("checkpoint", cr.checkpoint), zap.Int("buffers", n), zap.Int("bytes", bytes))
	}
	return nil
}

// replayInputState feeds every recovered input buffer through the chain,
// channel by channel, before the gate is polled.
func (t *Task) replayInputState(cr *channelRestore) error {
	if cr == nil {
		return nil
	}
	var n, bytes int
	for _, rc := range cr.inputs {
		bufs, err := t.readChannel(cr, rc, len(t.desc.GetInputs()[rc.gate].GetChannels()))
		if err != nil {
			return err
		}
		for _, b := range bufs {
			if t.canceled.Load() {
				return ErrCanceled
			}
			if err := t.processBuffer(b); err != nil {
				return err
			}
			t.publish()
			t.maybeFlush()
			n++
			bytes += len(b)
		}
	}
	if n > 0 {
		t.log.Info("recovered input buffers replayed", zap.Int64("checkpoint", cr.checkpoint), zap.Int("buffers", n), zap.Int("bytes", bytes))
	}
	return nil
}
