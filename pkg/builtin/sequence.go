package builtin

import (
	"fmt"
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

// seqPosition is where a sequence subtask is: everything it emits next is a
// function of it, so restoring it replays the same records.
type seqPosition struct {
	Seq      int64 // seq of the current round
	KeyIndex int64 // index among this subtask's keys of the next key
}

// sequenceSource emits, round robin over its keys (subtask, subtask+P,
// subtask+2P, ... below keys), seq 0 of every key, then seq 1, and so on.
type sequenceSource struct {
	cfg     sequenceConfig
	subtask int64
	par     int64
	numKeys int64 // keys owned by this subtask

	pos   seqPosition
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
	s.limit = newRateLimiter(s.cfg.rate, maxBatch)
	if s.now == nil {
		start := time.Now()
		s.now = func() time.Duration { return time.Since(start) }
	}
	return nil
}

// position returns where the source is, for a snapshot.
func (s *sequenceSource) position() seqPosition { return s.pos }

// seek makes the source continue from pos (restoring a snapshot).
func (s *sequenceSource) seek(pos seqPosition) error {
	if pos.Seq < 0 || pos.KeyIndex < 0 || (s.numKeys > 0 && pos.KeyIndex >= s.numKeys) {
		return fmt.Errorf("sequence: position %+v out of range for %d keys", pos, s.numKeys)
	}
	s.pos = pos
	return nil
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
	for i := 0; i < n && !s.exhausted(); i++ {
		s.rec.Reset()
		s.rec.Fields = append(s.rec.Fields,
			record.Field{Name: "key", Value: record.Int(s.subtask + s.pos.KeyIndex*s.par)},
			record.Field{Name: "seq", Value: record.Int(s.pos.Seq)})
		if err := out.Collect(&s.rec); err != nil {
			return operator.MoreAvailable, 0, err
		}
		if s.pos.KeyIndex++; s.pos.KeyIndex == s.numKeys {
			s.pos.KeyIndex = 0
			s.pos.Seq++
		}
	}
	if s.exhausted() {
		return operator.EndOfInput, 0, nil
	}
	return operator.MoreAvailable, 0, nil
}

func (s *sequenceSource) Close() error { return nil }
