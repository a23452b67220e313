package taskexec

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/jobgraph"
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
// Rescaling. A checkpoint with channel state restores at another
// parallelism too, as Flink's does: rescale.go decides which recovered
// records each new subtask takes (hash: by key group; forward and
// rebalance: whole old objects; broadcast refused), recovered output
// written for another number of subpartitions goes through the
// partitioner again, and the order above holds per key. So a subtask reads
// the channel state of other old subtasks than its own. Refused, failing
// the task: in-flight data of a broadcast edge across a parallelism
// change, and channel state of an operator that is no longer the head
// (input) or tail (output) of its chain.

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
// order (by gate, then old subtask, then channel): only the objects this
// subtask reads (rescale.go).
type channelRestore struct {
	checkpoint int64
	location   string
	inputs     []restoredChannel
	outputs    []restoredChannel
	// inShares is the share of this subtask in each input gate's channel
	// state.
	inShares map[int]channelShare
}

// rescaleError is the failure of a restore of channel state that cannot be
// redistributed to the new parallelism.
func rescaleError(checkpoint int64, why string) error {
	return fmt.Errorf("checkpoint %d has in-flight data (unaligned) that cannot be restored here; use a savepoint (always aligned) instead (%s)", checkpoint, why)
}

// planChannelState finds the channel state this subtask restores in r
// (nil: none) and checks that it can be restored here. It reads no state.
func (t *Task) planChannelState(r *snapshot.TaskRestore) (*channelRestore, error) {
	if r == nil {
		return nil, nil
	}
	p := int(t.desc.GetParallelism())
	cr := &channelRestore{checkpoint: r.CheckpointID, location: r.Location}
	var inputs, outputs []restoredChannel
	oldIn, oldOut := p, p // the head's and the tail's parallelism in the checkpoint
	for i, c := range t.chain {
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
				if o.Channel == nil {
					return nil, fmt.Errorf("restore subtask %d from checkpoint %d: %s state of operator %q old subtask %d has no channel", t.subtask, r.CheckpointID, o.Kind, c.spec.ID, st.Subtask)
				}
				if st.Subtask < 0 || st.Subtask >= oldP {
					return nil, fmt.Errorf("restore subtask %d from checkpoint %d: %s state of operator %q names old subtask %d of %d", t.subtask, r.CheckpointID, o.Kind, c.spec.ID, st.Subtask, oldP)
				}
				rc := restoredChannel{op: c.spec.ID, subtask: st.Subtask, gate: o.Channel.Gate, channel: o.Channel.Channel, obj: o}
				if o.Kind == snapshot.KindInputChannel {
					if i != 0 {
						return nil, rescaleError(r.CheckpointID, fmt.Sprintf("input channel state of operator %q, which is not the head of its chain now", c.spec.ID))
					}
					if n := len(t.desc.GetInputs()); rc.gate < 0 || rc.gate >= n {
						return nil, rescaleError(r.CheckpointID, fmt.Sprintf("input channel state of input %d, but the task has %d inputs", rc.gate, n))
					}
					inputs, oldIn = append(inputs, rc), oldP
					continue
				}
				if i != len(t.chain)-1 {
					return nil, rescaleError(r.CheckpointID, fmt.Sprintf("output channel state of operator %q, which is not the tail of its chain now", c.spec.ID))
				}
				if n := len(t.desc.GetOutputs()); rc.gate < 0 || rc.gate >= n {
					return nil, rescaleError(r.CheckpointID, fmt.Sprintf("output channel state of output %d, but the task has %d outputs", rc.gate, n))
				}
				outputs, oldOut = append(outputs, rc), oldP
			}
		}
	}
	sortChannels(inputs)
	sortChannels(outputs)
	maxP := int(t.desc.GetMaxParallelism())
	for _, rc := range inputs {
		s, ok := cr.inShares[rc.gate]
		if !ok {
			var err error
			if s, err = inputShare(t.inputRoute(rc.gate), maxP, oldIn, p, t.subtask); err != nil {
				return nil, rescaleError(r.CheckpointID, fmt.Sprintf("input %d of operator %q (from %q): parallelism %d in the checkpoint, %d now: %v",
					rc.gate, rc.op, t.desc.GetInputs()[rc.gate].GetProducerOperator(), oldIn, p, err))
			}
			if cr.inShares == nil {
				cr.inShares = map[int]channelShare{}
			}
			cr.inShares[rc.gate] = s
		}
		if s.owns(rc.subtask) {
			cr.inputs = append(cr.inputs, rc)
		}
	}
	cr.outputs = outputShare(oldOut, p, t.subtask).objects(outputs)
	if len(cr.inputs) == 0 && len(cr.outputs) == 0 {
		return nil, nil
	}
	return cr, nil
}

func isChannelKind(k snapshot.StateKind) bool {
	return k == snapshot.KindInputChannel || k == snapshot.KindResultSubpartition
}

// inputRoute returns how the producer of input gate routes its records.
func (t *Task) inputRoute(gate int) routing {
	switch t.desc.GetInputs()[gate].GetPartition() {
	case jobgraph.Rebalance:
		return routeRebalance
	case jobgraph.Hash:
		return routeHash
	case jobgraph.Broadcast:
		return routeBroadcast
	default:
		return routeForward
	}
}

// inputKey returns the key field of a hash input gate (the head's input
// it is).
func (t *Task) inputKey(gate int) string {
	idx := int(t.desc.GetInputs()[gate].GetInputIndex())
	if ins := t.chain[0].spec.Inputs; idx >= 0 && idx < len(ins) {
		return ins[idx].Key
	}
	return ""
}

// readChannel reads one channel state object and returns the layout it was
// written for and its buffers.
func (t *Task) readChannel(cr *channelRestore, rc restoredChannel) (int, [][]byte, error) {
	what := fmt.Sprintf("output %d subpartition %d", rc.gate, rc.channel)
	if rc.obj.Kind == snapshot.KindInputChannel {
		what = fmt.Sprintf("input %d channel %d", rc.gate, rc.channel)
	}
	fail := func(err error) error {
		return fmt.Errorf("restore subtask %d from checkpoint %d: channel state of %s (operator %q old subtask %d): %w", t.subtask, cr.checkpoint, what, rc.op, rc.subtask, err)
	}
	if !rc.obj.IsInline() && cr.location == "" {
		return 0, nil, fail(fmt.Errorf("state file %s: the restore state has no checkpoint location", rc.obj.Path))
	}
	rd, err := snapshot.OpenState(t.ctx, cr.location, rc.obj.StateHandle)
	if err != nil {
		return 0, nil, fail(err)
	}
	b, err := io.ReadAll(rd)
	_ = rd.Close()
	if err != nil {
		return 0, nil, fail(err)
	}
	layout, n, err := channelStateLayout(b)
	if err != nil {
		return 0, nil, fail(err)
	}
	if layout == 0 || layout > maxChannelLayout {
		return 0, nil, fail(fmt.Errorf("%w: layout %d not in 1..%d", snapshot.ErrCorrupt, layout, maxChannelLayout))
	}
	bufs, err := splitChannelBuffers(b, n, rc.obj.Channel.Offsets)
	if err != nil {
		return 0, nil, fail(err)
	}
	return int(layout), bufs, nil
}

// maxChannelLayout bounds the layout of a channel state object: a
// parallelism (state.MaxParallelismLimit would do; this keeps the check
// local).
const maxChannelLayout = 1 << 15

// restoreOutputState re-sends every recovered output buffer this subtask
// owns, in order, before anything else is emitted: raw to its subpartition
// when the output has as many subpartitions as when it was written, else
// its records through the output's partitioner (rescale.go).
func (t *Task) restoreOutputState(cr *channelRestore) error {
	if cr == nil {
		return nil
	}
	var n, rerouted, bytes int
	for _, rc := range cr.outputs {
		o := t.out.outs[rc.gate]
		layout, bufs, err := t.readChannel(cr, rc)
		if err != nil {
			return err
		}
		failed := func(err error) error {
			if t.canceled.Load() {
				return ErrCanceled
			}
			return &attributedError{fmt.Errorf("re-send recovered output of old subtask %d subpartition %d to %q: %w", rc.subtask, rc.channel, t.desc.GetOutputs()[rc.gate].GetConsumerOperator(), err)}
		}
		if layout != o.numSub {
			if err := rerouteBuffers(o, bufs, &t.dec, &t.rec); err != nil {
				if errors.Is(err, errBroadcastRescale) {
					return rescaleError(cr.checkpoint, fmt.Sprintf("output %d to %q had %d subpartitions and has %d now: %v", rc.gate, o.consumer, layout, o.numSub, err))
				}
				return failed(err)
			}
			rerouted += len(bufs)
		} else {
			for _, b := range bufs {
				if err := o.p.EmitRawBuffer(rc.channel, b); err != nil {
					return failed(err)
				}
			}
		}
		n += len(bufs)
		for _, b := range bufs {
			bytes += len(b)
		}
	}
	if rerouted > 0 {
		t.out.flush()
	}
	if n > 0 {
		t.log.Info("recovered output buffers re-sent", zap.Int64("checkpoint", cr.checkpoint), zap.Int("buffers", n),
			zap.Int("rerouted_buffers", rerouted), zap.Int("bytes", bytes))
	}
	return nil
}

// replayInputState feeds the recovered input records this subtask owns
// through the chain, gate by gate, before the gate is polled.
func (t *Task) replayInputState(cr *channelRestore) error {
	if cr == nil {
		return nil
	}
	var n, bytes int
	var own error // an error of load or emit: complete as it is
	load := func(rc restoredChannel) ([][]byte, error) {
		_, bufs, err := t.readChannel(cr, rc)
		own = err
		return bufs, err
	}
	emit := func(frames []byte) error {
		if t.canceled.Load() {
			own = ErrCanceled
			return own
		}
		if err := t.processBuffer(-1, frames); err != nil { // -1: no barrier between the records of a replay
			own = err
			return err
		}
		t.publish()
		t.maybeFlush()
		n++
		bytes += len(frames)
		return nil
	}
	maxP := int(t.desc.GetMaxParallelism())
	for i := 0; i < len(cr.inputs); {
		gate := cr.inputs[i].gate
		j := i + 1
		for j < len(cr.inputs) && cr.inputs[j].gate == gate {
			j++
		}
		s := cr.inShares[gate]
		var keyGroup func([]byte) (int, error)
		if s.byKey() {
			keyGroup = recordKeyGroup(&t.dec, &t.rec, t.inputKey(gate), maxP)
		}
		if err := s.records(cr.inputs[i:j], load, keyGroup, emit); err != nil {
			if err == own {
				return err
			}
			return fmt.Errorf("restore subtask %d from checkpoint %d: %w", t.subtask, cr.checkpoint, err)
		}
		i = j
	}
	if n > 0 {
		t.log.Info("recovered input buffers replayed", zap.Int64("checkpoint", cr.checkpoint), zap.Int("buffers", n), zap.Int("bytes", bytes))
	}
	return nil
}
