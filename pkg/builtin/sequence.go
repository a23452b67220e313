package builtin

import (
	"encoding/binary"
	"fmt"
	"math"
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

func init() {
	operator.Register(&operator.Type{
		Name: "sequence",
		Kind: operator.KindSource,
		Properties: []operator.PropertySpec{
			{Name: "keys", Required: true, Description: "number of keys, >= 1; emits {\"key\": k, \"seq\": s} for k in 0..keys-1, key k read by subtask k mod parallelism"},
			{Name: "count", Description: "records per key (seq 0..count-1); absent or 0 = unbounded"},
			{Name: "rate", Description: "records per second per subtask; absent or 0 = unlimited"},
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
	if c.keys, err = p.Int("keys", 0); err != nil {
		return c, err
	}
	if c.keys < 1 {
		return c, fmt.Errorf("property %q: want an integer >= 1, got %d", "keys", c.keys)
	}
	if c.count, err = p.Int("count", 0); err != nil {
		return c, err
	}
	if c.count < 0 {
		return c, fmt.Errorf("property %q: want an integer >= 0 (0 = unbounded), got %d", "count", c.count)
	}
	if c.rate, err = nonNegativeRate(p); err != nil {
		return c, err
	}
	return c, nil
}

// nonNegativeRate reads the `rate` property shared by sequence and
// file-sink.
func nonNegativeRate(p operator.Properties) (float64, error) {
	r, err := p.Float("rate", 0)
	if err != nil {
		return 0, err
	}
	if r < 0 {
		return 0, fmt.Errorf("property %q: want records per second >= 0 (0 = unlimited), got %g", "rate", r)
	}
	return r, nil
}

// seqPosition is where a sequence subtask is in its emission order: the
// round (the seq being emitted) and the index, among this subtask's keys, of
// the next key to visit in it. Without a restore at another parallelism
// every key before KeyIndex has next seq Seq+1 and every other key Seq, so
// the pair alone says everything (seek).
type seqPosition struct {
	Seq      int64 // seq of the current round
	KeyIndex int64 // index among this subtask's keys of the next key
}

// sequenceSource emits the pairs (key, seq) of its keys (subtask,
// subtask+P, subtask+2P, ... below keys) in increasing (seq, key) order:
// seq 0 of every key, then seq 1, and so on. Each key has its own next seq
// (next), so that after a restore at another parallelism, where a subtask
// inherits keys that different old subtasks had taken to different seqs,
// every key resumes exactly at its next seq and the order is still a
// function of the state: a round visits the keys in index order and emits
// those whose next seq is the round's seq; the next round is the smallest
// next seq. In a run without rescaling every key is emitted in every round.
//
// State (Snapshotter): one item per key of the subtask, (key, next seq), so
// that the items of all old subtasks together say where every key is, and
// a restored subtask keeps those of its keys (k mod parallelism ==
// subtask). A key without an item starts at seq 0; an item of a key not
// below `keys` is ignored.
type sequenceSource struct {
	cfg     sequenceConfig
	subtask int64
	par     int64
	numKeys int64 // keys owned by this subtask

	next     []int64 // next seq of each key, by key index
	pos      seqPosition
	roundMin int64 // smallest next seq among the keys visited in this round

	limit rateLimiter
	now   func() time.Duration // monotonic; injected by tests
	rec   record.Record
}

func (s *sequenceSource) Open(ctx *operator.Context) error {
	if ctx.Parallelism < 1 || ctx.Subtask < 0 || ctx.Subtask >= ctx.Parallelism {
		return fmt.Errorf("sequence: subtask %d of parallelism %d", ctx.Subtask, ctx.Parallelism)
	}
	s.subtask, s.par = int64(ctx.Subtask), int64(ctx.Parallelism)
	if s.subtask < s.cfg.keys {
		s.numKeys = (s.cfg.keys-s.subtask-1)/s.par + 1
	}
	s.next = make([]int64, s.numKeys)
	s.pos = seqPosition{}
	s.roundMin = math.MaxInt64
	s.limit = newRateLimiter(s.cfg.rate, maxBatch)
	if s.now == nil {
		start := time.Now()
		s.now = func() time.Duration { return time.Since(start) }
	}
	return nil
}

// position returns where the source is in its emission order.
func (s *sequenceSource) position() seqPosition { return s.pos }

// seek makes the source continue from pos as reached by a run without
// rescaling: keys before pos.KeyIndex at pos.Seq+1, the others at pos.Seq.
func (s *sequenceSource) seek(pos seqPosition) error {
	if pos.Seq < 0 || pos.KeyIndex < 0 || (s.numKeys > 0 && pos.KeyIndex >= s.numKeys) {
		return fmt.Errorf("sequence: position %+v out of range for %d keys", pos, s.numKeys)
	}
	for i := range s.next {
		s.next[i] = pos.Seq
		if int64(i) < pos.KeyIndex {
			s.next[i]++
		}
	}
	s.pos = pos
	s.roundMin = math.MaxInt64
	if pos.KeyIndex > 0 {
		s.roundMin = pos.Seq + 1
	}
	return nil
}

// seqItemV1 is the version byte of a sequence state item:
// version, uvarint key, uvarint next seq.
const seqItemV1 = 1

// SnapshotState returns one item per key of this subtask: (key, next seq).
func (s *sequenceSource) SnapshotState(int64) (*operator.Snapshot, error) {
	const maxItem = 1 + 2*binary.MaxVarintLen64
	buf := make([]byte, 0, len(s.next)*maxItem) // one allocation for all items
	items := make([][]byte, len(s.next))
	for i, seq := range s.next {
		start := len(buf)
		buf = append(buf, seqItemV1)
		buf = binary.AppendUvarint(buf, uint64(s.subtask+int64(i)*s.par))
		buf = binary.AppendUvarint(buf, uint64(seq))
		items[i] = buf[start:len(buf):len(buf)]
	}
	return &operator.Snapshot{Items: items}, nil
}

// RestoreState keeps the items of this subtask's keys and resumes each key
// at its next seq.
func (s *sequenceSource) RestoreState(r *operator.RestoredState) error {
	seen := make([]bool, s.numKeys)
	for i, item := range r.Items {
		key, seq, err := decodeSeqItem(item)
		if err != nil {
			return fmt.Errorf("sequence: restore checkpoint %d: item %d: %w", r.CheckpointID, i, err)
		}
		if key >= s.cfg.keys || key%s.par != s.subtask {
			continue
		}
		idx := (key - s.subtask) / s.par
		if seen[idx] {
			return fmt.Errorf("sequence: restore checkpoint %d: key %d appears twice", r.CheckpointID, key)
		}
		seen[idx] = true
		s.next[idx] = seq
	}
	// Start at the smallest (seq, key index) pair: the round of the
	// smallest next seq, at its first key.
	s.pos = seqPosition{Seq: math.MaxInt64}
	for i, seq := range s.next {
		if seq < s.pos.Seq {
			s.pos = seqPosition{Seq: seq, KeyIndex: int64(i)}
		}
	}
	if s.numKeys == 0 {
		s.pos = seqPosition{}
	}
	// The keys before KeyIndex are ahead of the round: visited.
	s.roundMin = math.MaxInt64
	for _, seq := range s.next[:s.pos.KeyIndex] {
		s.roundMin = min(s.roundMin, seq)
	}
	return nil
}

func decodeSeqItem(b []byte) (key, seq int64, err error) {
	if len(b) == 0 || b[0] != seqItemV1 {
		return 0, 0, fmt.Errorf("not a sequence item of version %d: %q", seqItemV1, b)
	}
	k, n := binary.Uvarint(b[1:])
	if n <= 0 || k > math.MaxInt64 {
		return 0, 0, fmt.Errorf("bad key in item %q", b)
	}
	q, m := binary.Uvarint(b[1+n:])
	if m <= 0 || q > math.MaxInt64 || 1+n+m != len(b) {
		return 0, 0, fmt.Errorf("bad seq in item %q", b)
	}
	return int64(k), int64(q), nil
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
	for emitted := 0; emitted < n && !s.exhausted(); {
		k := s.pos.KeyIndex
		if s.next[k] == s.pos.Seq {
			s.rec.Reset()
			s.rec.Fields = append(s.rec.Fields,
				record.Field{Name: "key", Value: record.Int(s.subtask + k*s.par)},
				record.Field{Name: "seq", Value: record.Int(s.pos.Seq)})
			if err := out.Collect(&s.rec); err != nil {
				return operator.MoreAvailable, 0, err
			}
			s.next[k]++
			emitted++
		}
		s.roundMin = min(s.roundMin, s.next[k])
		if s.pos.KeyIndex++; s.pos.KeyIndex == s.numKeys {
			s.pos = seqPosition{Seq: s.roundMin}
			s.roundMin = math.MaxInt64
		}
	}
	if s.exhausted() {
		return operator.EndOfInput, 0, nil
	}
	return operator.MoreAvailable, 0, nil
}

func (s *sequenceSource) Close() error { return nil }
