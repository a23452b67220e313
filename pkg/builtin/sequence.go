package builtin

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
)

// maxBatch bounds the records a source emits per PollNext, so that the task
// handles control actions (checkpoint triggers, cancellation) between
// batches.
const maxBatch = 512

// idleRetry is how long a source with nothing to do now (a sequence
// subtask without keys) asks the task to wait before polling again.
const idleRetry = time.Second

// Documented ranges of the sequence's properties (docs/jobs.md, "Limits").
// No state is kept per key, so keys is bounded only so that key and seq
// arithmetic (seq+1, index*parallelism) stays far from int64 overflow.
const (
	maxSequenceKeys  = 1_000_000_000_000_000_000 // 10^18
	maxSequenceCount = 1_000_000_000_000_000_000
)

// maxScan bounds the keys a sequence subtask that is catching up after a
// rescale looks at in one PollNext without emitting them, so that a poll
// returns to the task's mailbox quickly however many keys are ahead.
const maxScan = 64 * maxBatch

func init() {
	operator.Register(&operator.Type{
		Name: "sequence",
		Kind: operator.KindSource,
		Properties: []operator.PropertySpec{
			{Name: "keys", Required: true, Description: "number of keys, 1 to 10^18; emits {\"key\": k, \"seq\": s} for k in 0..keys-1, key k read by subtask k mod parallelism"},
			{Name: "count", Description: "records per key (seq 0..count-1), 0 to 10^18; absent or 0 = unbounded"},
			{Name: "rate", Description: "records per second per subtask, 0.001 to 10^9; absent or 0 = unlimited"},
		},
		Validate: func(p operator.Properties) error {
			_, err := parseSequence(p)
			return err
		},
		NewSource: func(p operator.Properties) (operator.Source, error) {
			cfg, err := parseSequence(p)
			if err != nil {
				return nil, err
			}
			return &sequenceSource{cfg: cfg}, nil
		},
	})
}

type sequenceConfig struct {
	keys  int64
	count int64 // 0 = unbounded
	rate  float64
}

func parseSequence(p operator.Properties) (sequenceConfig, error) {
	var c sequenceConfig
	var err error
	if p["keys"] == nil {
		return c, fmt.Errorf("property %q is required", "keys")
	}
	if c.keys, err = p.IntIn("keys", 0, 1, maxSequenceKeys); err != nil {
		return c, err
	}
	if c.count, err = p.IntIn("count", 0, 0, maxSequenceCount); err != nil {
		return c, err
	}
	if c.rate, err = rateProperty(p); err != nil {
		return c, err
	}
	return c, nil
}

// Range of the `rate` property shared by sequence and file-sink. Below
// minRate a wait between two records would overflow time.Duration's
// arithmetic in rateLimiter; above maxRate (one record per nanosecond) a
// limit means nothing.
const (
	minRate = 0.001
	maxRate = 1e9
)

// rateProperty reads the `rate` property shared by sequence and file-sink.
func rateProperty(p operator.Properties) (float64, error) {
	r, err := p.Float("rate", 0)
	if err != nil {
		return 0, err
	}
	if r != 0 && (r < minRate || r > maxRate) {
		return 0, fmt.Errorf("property %q: want 0 (unlimited) or records per second between 0.001 and 1000000000, got %g", "rate", r)
	}
	return r, nil
}

// seqPosition is where a sequence subtask is in its emission order: the
// round (the seq being emitted) and the index, among this subtask's keys, of
// the next key to visit in it. Every pair before it in (seq, key index)
// order that was due has been emitted, so the subtask itself has taken the
// keys before KeyIndex to Seq+1 and the others to Seq (seek).
type seqPosition struct {
	Seq      int64 // seq of the current round
	KeyIndex int64 // index among this subtask's keys of the next key
}

// less orders positions as the emission does: by round, then by key index.
func (p seqPosition) less(q seqPosition) bool {
	return p.Seq < q.Seq || p.Seq == q.Seq && p.KeyIndex < q.KeyIndex
}

// sequenceSource emits the pairs (key, seq) of its keys (subtask,
// subtask+P, subtask+2P, ... below keys) in increasing (seq, key) order:
// seq 0 of every key, then seq 1, and so on, every key starting at its next
// seq.
//
// No state is kept per key (a sequence may have 10^18 keys). The next seq
// of a key is
//
//	max(base(key), own(key))
//
// where own is this subtask's own progress, its position (Seq, KeyIndex):
// Seq+1 for the keys before KeyIndex, Seq for the others; and base is what
// the subtask was restored with (nil when it started afresh or caught up):
// the positions other runs of the source had reached on these keys. A round
// visits the keys in index order and emits those whose next seq is the
// round's seq, that is whose base is not ahead of it; the next round is the
// smallest next seq seen (roundMin). Once the round passes base.max, the
// largest next seq the base gives any key, the base cannot hold a key back
// any more and every key is emitted in every round: the fast path, which is
// all a run without a rescale ever takes.
//
// State (Snapshotter): the positions, one item per subtask that has keys:
// (parallelism, subtask, keys, Seq, KeyIndex) — see seqState. The next seq
// of a key is the maximum of what all the positions that cover it say, so
// the items of all subtasks, given to every restored subtask, say where
// every key is, at any parallelism. Subtask 0 also writes the base it
// restored (the others have the same one), so that what a run that had not
// caught up yet knew survives the next restore too.
type sequenceSource struct {
	cfg     sequenceConfig
	subtask int64
	par     int64
	numKeys int64 // keys owned by this subtask

	pos      seqPosition
	roundMin int64 // smallest next seq among the keys visited in this round

	base       *seqState // what a restore said about this subtask's keys; nil if nothing
	catchingUp bool      // base != nil && pos.Seq < base.max: look at the base per key

	limit rateLimiter
	now   func() time.Duration // monotonic; injected by tests
	rec   record.Record
}

func (s *sequenceSource) Open(ctx *operator.Context) error {
	if ctx.Parallelism < 1 || ctx.Subtask < 0 || ctx.Subtask >= ctx.Parallelism {
		return fmt.Errorf("sequence: subtask %d of parallelism %d", ctx.Subtask, ctx.Parallelism)
	}
	s.subtask, s.par = int64(ctx.Subtask), int64(ctx.Parallelism)
	s.numKeys = keysOfSubtask(s.cfg.keys, s.par, s.subtask)
	s.pos = seqPosition{}
	s.roundMin = math.MaxInt64
	s.base, s.catchingUp = nil, false
	s.limit = newRateLimiter(s.cfg.rate, maxBatch)
	if s.now == nil {
		start := time.Now()
		s.now = func() time.Duration { return time.Since(start) }
	}
	return nil
}

// keysOfSubtask is how many of keys 0..keys-1 subtask sub of par reads:
// those equal to sub mod par.
func keysOfSubtask(keys, par, sub int64) int64 {
	if sub >= keys {
		return 0
	}
	return (keys-sub-1)/par + 1
}

// position returns where the source is in its emission order.
func (s *sequenceSource) position() seqPosition { return s.pos }

// seek makes the source continue from pos as reached by a run without
// rescaling: keys before pos.KeyIndex at pos.Seq+1, the others at pos.Seq.
func (s *sequenceSource) seek(pos seqPosition) error {
	if pos.Seq < 0 || pos.KeyIndex < 0 || (s.numKeys > 0 && pos.KeyIndex >= s.numKeys) {
		return fmt.Errorf("sequence: position %+v out of range for %d keys", pos, s.numKeys)
	}
	s.base, s.catchingUp = nil, false
	s.start(pos)
	return nil
}

// start sets the position; the keys before its index have been visited
// in this round, and are at Seq+1 at least.
func (s *sequenceSource) start(pos seqPosition) {
	s.pos = pos
	s.roundMin = math.MaxInt64
	if pos.KeyIndex > 0 {
		s.roundMin = pos.Seq + 1
	}
	s.catchingUp = s.base != nil && s.pos.Seq < s.base.max
}

// SnapshotState returns this subtask's position and, from subtask 0, the
// base it restored.
func (s *sequenceSource) SnapshotState(int64) (*operator.Snapshot, error) {
	n := 0
	if s.numKeys > 0 {
		n++
	}
	withBase := s.subtask == 0 && s.base != nil
	if withBase {
		n += s.base.items()
	}
	buf := make([]byte, 0, n*seqItemMaxLen) // one allocation for all items
	items := make([][]byte, 0, n)
	cut := func(start int) { items = append(items, buf[start:len(buf):len(buf)]) }
	if s.numKeys > 0 {
		start := len(buf)
		buf = appendSeqPosition(buf, s.par, s.subtask, s.cfg.keys, s.pos)
		cut(start)
	}
	if withBase {
		for _, l := range s.base.layers {
			for _, e := range l.subs {
				start := len(buf)
				buf = appendSeqPosition(buf, l.par, e.subtask, l.keys, e.pos)
				cut(start)
			}
		}
		for _, k := range s.base.singles {
			start := len(buf)
			buf = appendSeqKey(buf, k.key, k.seq)
			cut(start)
		}
	}
	return &operator.Snapshot{Items: items}, nil
}

// RestoreState keeps what the items say about this subtask's keys and
// resumes each key at its next seq.
func (s *sequenceSource) RestoreState(r *operator.RestoredState) error {
	st, err := decodeSeqState(r.Items, s.cfg.keys)
	if err != nil {
		return fmt.Errorf("sequence: restore checkpoint %d: %w", r.CheckpointID, err)
	}
	if s.numKeys == 0 {
		return nil // not subtask 0, which always has key 0
	}
	// A lower bound of the smallest next seq of this subtask's keys: the
	// first round to look at.
	from := seqPosition{Seq: st.lowerBound(s.par, s.subtask, s.cfg.keys)}
	// The positions of a run like this one (same parallelism and keys)
	// cover exactly one subtask's keys each: the subtask takes its own as
	// its starting position, and nobody needs the base to carry them.
	if i := st.layer(s.par, s.cfg.keys); i >= 0 {
		if e, ok := st.layers[i].find(s.subtask); ok && from.less(e) {
			from = e
		}
		st.layers = slices.Delete(st.layers, i, i+1)
		st.update()
	}
	s.base = st.orNil()
	s.start(from)
	s.dropBaseIfDone()
	return nil
}

// dropBaseIfDone forgets the base once it can hold no key back, except in
// subtask 0, which writes it in its snapshots.
func (s *sequenceSource) dropBaseIfDone() {
	if !s.catchingUp && s.subtask != 0 {
		s.base = nil
	}
}

func (s *sequenceSource) exhausted() bool {
	return s.cfg.count > 0 && s.pos.Seq >= s.cfg.count
}

func (s *sequenceSource) PollNext(out operator.Collector) (operator.SourceStatus, time.Duration, error) {
	if s.numKeys == 0 {
		if s.cfg.count > 0 {
			return operator.EndOfInput, 0, nil
		}
		// Unbounded and nothing to read: stay alive like the other
		// subtasks rather than finish an unbounded source.
		return operator.NothingAvailable, idleRetry, nil
	}
	if s.exhausted() {
		return operator.EndOfInput, 0, nil
	}
	n := maxBatch
	if s.cfg.rate > 0 {
		var wait time.Duration
		if n, wait = s.limit.take(s.now(), maxBatch); n == 0 {
			return operator.NothingAvailable, wait, nil
		}
	}
	for emitted, scanned := 0, 0; emitted < n && !s.exhausted(); {
		key := s.subtask + s.pos.KeyIndex*s.par
		if s.catchingUp {
			if scanned == maxScan {
				break
			}
			scanned++
			if b := s.base.at(key); b > s.pos.Seq {
				// Ahead of this round: its next seq is b.
				s.roundMin = min(s.roundMin, b)
				s.advance()
				continue
			}
		}
		s.rec.Reset()
		s.rec.Fields = append(s.rec.Fields,
			record.Field{Name: "key", Value: record.Int(key)},
			record.Field{Name: "seq", Value: record.Int(s.pos.Seq)})
		if err := out.Collect(&s.rec); err != nil {
			return operator.MoreAvailable, 0, err
		}
		emitted++
		s.roundMin = min(s.roundMin, s.pos.Seq+1)
		s.advance()
	}
	if s.exhausted() {
		return operator.EndOfInput, 0, nil
	}
	return operator.MoreAvailable, 0, nil
}

// advance moves to the next key, and at the end of a round to the next
// round: the smallest next seq of the keys.
func (s *sequenceSource) advance() {
	if s.pos.KeyIndex++; s.pos.KeyIndex < s.numKeys {
		return
	}
	s.start(seqPosition{Seq: s.roundMin})
	s.dropBaseIfDone()
}

func (s *sequenceSource) Close() error { return nil }
