package taskexec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/pkg/state"
)

// Restore (failover and savepoints): a subtask attempt whose descriptor has
// restore_state (snapshot.TaskRestore as JSON) gets the state it inherits
// in its task goroutine, after Open of every operator and before the first
// record or PollNext; only then does it report RUNNING, so the checkpoint
// coordinator (which triggers only when every task is RUNNING) never
// triggers a task that is still restoring.
//
// A subtask whose chain had finished when the checkpoint was taken is
// finished on restore (finished.go) and restores nothing. Otherwise, what
// each Snapshotter of the chain gets (RestoreState is called exactly
// once on every Snapshotter when the task restores, in chain order, also
// when the checkpoint has no entry or no state for the operator: it then
// gets empty state, as Flink's initializeState runs with isRestored() true
// for every operator; a sink can rely on it to clean up after the failed
// attempt):
//
//   - Items: the items of every KindOperator object of every OLD subtask,
//     in old-subtask order (union redistribution: the operator keeps its
//     own). They are read, checksummed and decoded before RestoreState.
//   - KeyGroups: the key groups of this subtask's KeyGroupRange (from the
//     new parallelism and the job's max parallelism), each read from the
//     old KindKeyed object whose range holds it, in increasing key-group
//     order. Each key group's bytes are checksummed before fn sees them;
//     the reader given to fn is valid only during that call. Empty key
//     groups are not offered.
//
// The in-flight data of an unaligned checkpoint is not an operator's: the
// task replays and re-sends it (channelstate.go), also from other old
// subtasks than its own when rescaled (rescale.go).
//
// Invariants:
//   - Nothing the restore reads is used unless its CRC-32C matched: a
//     corrupt, truncated or missing state file fails the task (FAILED, the
//     JobManager's restart strategy takes over), even when the operator
//     ignored the error KeyGroups returned to it.
//   - Every key group is offered at most once: old keyed objects whose
//     ranges overlap within this subtask's range fail the restore.
//   - State of an operator id that is not in the chain is ignored (the
//     JobManager decides about non-restored state); state recorded for an
//     operator of another type fails the restore.

// decodeRestore parses the descriptor's restore_state: nil when the
// attempt restores nothing. The checkpoint id is the descriptor's when the
// restore state has none. Task goroutine only.
func (t *Task) decodeRestore() (*snapshot.TaskRestore, error) {
	raw := t.desc.GetRestoreState()
	if len(raw) == 0 {
		return nil, nil
	}
	r, err := snapshot.DecodeTaskRestore(raw)
	if err != nil {
		return nil, fmt.Errorf("restore subtask %d from checkpoint %d: %w", t.subtask, t.desc.GetRestoreCheckpointId(), err)
	}
	if d := t.desc.GetRestoreCheckpointId(); d != 0 && d != r.CheckpointID {
		if r.CheckpointID != 0 {
			return nil, fmt.Errorf("restore subtask %d: the descriptor says checkpoint %d, its restore state checkpoint %d", t.subtask, d, r.CheckpointID)
		}
		r.CheckpointID = d
	}
	if r.FromMetadata {
		if err := t.loadRestore(r); err != nil {
			return nil, fmt.Errorf("restore subtask %d from checkpoint %d: %w", t.subtask, r.CheckpointID, err)
		}
	}
	return r, nil
}

// loadRestore fills in the operators of a restore that points at its
// checkpoint's _metadata. Task goroutine only.
func (t *Task) loadRestore(r *snapshot.TaskRestore) error {
	load := t.env.Metadata
	if load == nil {
		load = snapshot.LoadMetadata
	}
	md, err := load(t.ctx, r.Location)
	if err != nil {
		return err
	}
	if md.CheckpointID != r.CheckpointID {
		return fmt.Errorf("%s holds checkpoint %d", r.Location, md.CheckpointID)
	}
	ids := make([]string, len(t.chain))
	for i, c := range t.chain {
		ids[i] = c.spec.ID
	}
	r.Operators, r.FromMetadata = md.TaskRestore(ids).Operators, false
	return nil
}

// restoreState restores every Snapshotter of the chain from r (nil: the
// attempt restores nothing). Task goroutine only.
func (t *Task) restoreState(r *snapshot.TaskRestore) error {
	if r == nil {
		return nil
	}
	id := r.CheckpointID
	maxP := int(t.desc.GetMaxParallelism())
	kgs := state.KeyGroupRangeForSubtask(maxP, int(t.desc.GetParallelism()), t.subtask)
	var stats restoreStats
	for _, c := range t.chain {
		s, ok := c.instance().(operator.Snapshotter)
		if !ok {
			if os := r.Operators[c.spec.ID]; os != nil && hasState(os) {
				t.log.Warn("operator has state in the checkpoint but cannot restore it; it starts empty",
					zap.String("operator", c.spec.ID), zap.Int64("checkpoint", id))
			}
			continue
		}
		rr := &operatorRestore{
			t: t, id: c.spec.ID, typ: c.spec.Type, checkpoint: id,
			location: r.Location, maxP: maxP, kgs: kgs, stats: &stats,
		}
		if err := rr.restore(s, r.Operators[c.spec.ID]); err != nil {
			return err
		}
	}
	t.log.Info("state restored", zap.Int64("checkpoint", id), zap.String("location", r.Location),
		zap.Int("items", stats.items), zap.Int("key_groups", stats.keyGroups), zap.Int64("bytes", stats.bytes))
	return nil
}

// hasState reports whether os holds operator state (channel state is the
// task's, restored by channelstate.go).
func hasState(os *snapshot.OperatorState) bool {
	for _, st := range os.Subtasks {
		for _, o := range st.State {
			if !isChannelKind(o.Kind) {
				return true
			}
		}
	}
	return false
}

type restoreStats struct {
	items, keyGroups int
	bytes            int64
}

// operatorRestore restores one operator of the chain.
type operatorRestore struct {
	t          *Task
	id, typ    string
	checkpoint int64
	location   string
	maxP       int
	kgs        state.KeyGroupRange // this subtask's key groups
	stats      *restoreStats

	keyed []keyedPart
	// readErr is the first error of reading keyed state: it fails the
	// restore whatever the operator did with it.
	readErr error
	read    bool // KeyGroups was called
	buf     []byte
}

// keyedPart is the part of an old subtask's keyed state object that lies in
// this subtask's key groups [first, last].
type keyedPart struct {
	subtask     int
	obj         snapshot.StateObject
	first, last int
}

func (r *operatorRestore) fail(err error) error {
	if errors.Is(err, ErrCanceled) {
		return err
	}
	return fmt.Errorf("restore operator %q subtask %d from checkpoint %d: %w", r.id, r.t.subtask, r.checkpoint, err)
}

func (r *operatorRestore) restore(s operator.Snapshotter, os *snapshot.OperatorState) error {
	rs := &operator.RestoredState{CheckpointID: r.checkpoint, KeyGroups: r.keyGroups}
	if os != nil {
		if os.Type != "" && os.Type != r.typ {
			return r.fail(fmt.Errorf("the checkpoint holds state of an operator of type %q with this id, but the operator is of type %q", os.Type, r.typ))
		}
		items, err := r.collect(os)
		if err != nil {
			return r.fail(err)
		}
		rs.Items = items
	}
	err := s.RestoreState(rs)
	// A read error fails the restore even if the operator swallowed it; it
	// is the cause, whatever the operator made of it.
	if r.readErr != nil {
		return r.fail(r.readErr)
	}
	if err != nil {
		return r.fail(err)
	}
	if len(r.keyed) > 0 && !r.read {
		r.t.log.Warn("operator did not read its keyed state on restore",
			zap.String("operator", r.id), zap.Int64("checkpoint", r.checkpoint))
	}
	if r.t.canceled.Load() {
		return ErrCanceled
	}
	return nil
}

// collect reads the operator-state items of every old subtask and finds the
// keyed state objects that overlap this subtask's key groups.
func (r *operatorRestore) collect(os *snapshot.OperatorState) ([][]byte, error) {
	var items [][]byte
	for _, st := range os.Subtasks {
		for j, o := range st.State {
			if r.t.canceled.Load() {
				return nil, ErrCanceled
			}
			switch o.Kind {
			case snapshot.KindOperator:
				its, err := r.readItems(o)
				if err != nil {
					return nil, fmt.Errorf("operator state of old subtask %d: %w", st.Subtask, err)
				}
				items = append(items, its...)
				r.stats.items += len(its)
			case snapshot.KindKeyed:
				k := o.KeyGroups
				if k == nil {
					return nil, fmt.Errorf("keyed state %d of old subtask %d has no key groups", j, st.Subtask)
				}
				if k.Start < 0 || k.End < k.Start || k.End >= r.maxP {
					return nil, fmt.Errorf("keyed state of old subtask %d holds key groups [%d-%d], not within the job's max parallelism %d (changed since the checkpoint?)", st.Subtask, k.Start, k.End, r.maxP)
				}
				if first, last := max(k.Start, r.kgs.Start), min(k.End, r.kgs.End); first <= last {
					r.keyed = append(r.keyed, keyedPart{subtask: st.Subtask, obj: o, first: first, last: last})
				}
			case snapshot.KindInputChannel, snapshot.KindResultSubpartition:
				// In-flight data of an unaligned checkpoint: replayed by
				// the task (channelstate.go), not given to the operator.
			default:
				return nil, fmt.Errorf("state %d of old subtask %d: %s state cannot be restored by this TaskManager", j, st.Subtask, o.Kind)
			}
		}
	}
	slices.SortFunc(r.keyed, func(a, b keyedPart) int { return a.first - b.first })
	for i := 1; i < len(r.keyed); i++ {
		if a, b := r.keyed[i-1], r.keyed[i]; b.first <= a.last {
			return nil, fmt.Errorf("key group %d is in the keyed state of old subtasks %d and %d", b.first, a.subtask, b.subtask)
		}
	}
	return items, nil
}

// readItems reads a KindOperator object to its end (which checks its
// CRC-32C) before decoding it, so corrupt bytes are reported as such and
// never decoded.
func (r *operatorRestore) readItems(o snapshot.StateObject) ([][]byte, error) {
	if err := r.checkLocation(o); err != nil {
		return nil, err
	}
	rc, err := snapshot.OpenState(r.t.ctx, r.location, o.StateHandle)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		return nil, err
	}
	r.stats.bytes += int64(len(b))
	return DecodeOperatorItems(bytes.NewReader(b))
}

func (r *operatorRestore) checkLocation(o snapshot.StateObject) error {
	if !o.IsInline() && r.location == "" {
		return fmt.Errorf("state file %s: the restore state has no checkpoint location", o.Path)
	}
	return nil
}

// keyGroups is RestoredState.KeyGroups: it offers fn every non-empty key
// group of this subtask's range, in order, once its bytes are verified.
func (r *operatorRestore) keyGroups(fn func(keyGroup int, rd io.Reader) error) error {
	r.read = true
	if r.readErr != nil {
		return r.readErr
	}
	for _, p := range r.keyed {
		if err := r.readPart(p, fn); err != nil {
			return err
		}
	}
	return nil
}

// readPart offers the key groups of one old keyed object. An error of
// reading is kept in readErr (it fails the restore); an error of fn is the
// operator's and is returned as it is.
func (r *operatorRestore) readPart(p keyedPart, fn func(int, io.Reader) error) error {
	fail := func(err error) error {
		if !errors.Is(err, ErrCanceled) {
			err = fmt.Errorf("keyed state of old subtask %d: %w", p.subtask, err)
		}
		r.readErr = err
		return err
	}
	if err := r.checkLocation(p.obj); err != nil {
		return fail(err)
	}
	rc, err := snapshot.OpenKeyGroups(r.t.ctx, r.location, p.obj, state.KeyGroupRange{Start: p.first, End: p.last})
	if err != nil {
		return fail(err)
	}
	defer rc.Close()
	k := p.obj.KeyGroups
	var rd bytes.Reader
	for g := p.first; g <= p.last; g++ {
		if r.t.canceled.Load() {
			return fail(ErrCanceled)
		}
		// OpenKeyGroups validated the offsets against the size, which
		// matches the file: n is bounded by bytes that exist.
		i := g - k.Start
		end := p.obj.Size
		if i+1 < len(k.Offsets) {
			end = k.Offsets[i+1]
		}
		n := int(end - k.Offsets[i])
		if n == 0 {
			continue // its (empty) checksum is checked by the next read
		}
		if cap(r.buf) < n {
			r.buf = make([]byte, n)
		}
		b := r.buf[:n]
		if err := readExactly(rc, b); err != nil {
			return fail(err)
		}
		r.stats.keyGroups++
		r.stats.bytes += int64(n)
		rd.Reset(b)
		if err := fn(g, &rd); err != nil {
			return err
		}
	}
	// To the end: the checksums of trailing empty key groups.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fail(err)
	}
	return nil
}

// readExactly fills b. Unlike io.ReadFull it never drops an error returned
// with the last bytes: snapshot's readers report a checksum mismatch with
// the read that completes a key group.
func readExactly(r io.Reader, b []byte) error {
	for n := 0; n < len(b); {
		m, err := r.Read(b[n:])
		n += m
		if err == io.EOF && n < len(b) {
			return io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}
