package builtin

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
)

// maxNexmarkEvents bounds `events`, and ends an unbounded nexmark source,
// so that event numbers (and ids and times derived from them) stay far from
// int64 overflow.
const maxNexmarkEvents = 1_000_000_000_000_000_000 // 10^18

// nexItemV1 is the version byte of a nexmark state item: version, uvarint
// parallelism, uvarint subtask, uvarint next event number.
const (
	nexItemV1     = 1
	nexItemMaxLen = 1 + 3*binary.MaxVarintLen64
)

func init() {
	operator.Register(&operator.Type{
		Name: "nexmark",
		Kind: operator.KindSource,
		Properties: []operator.PropertySpec{
			{Name: "events", Description: "events over all subtasks, 0 to 10^18; absent or 0 = unbounded; event n is read by subtask n mod parallelism"},
			{Name: "rate", Description: "records per second per subtask, 0.001 to 10^9; absent or 0 = unlimited"},
			{Name: "seed", Description: "integer; the events are a function of (seed, event number); default 0"},
			{Name: "kinds", Description: "list of person, auction, bid: the event types emitted (the others are skipped, numbering unchanged); default all"},
		},
		Validate: func(p operator.Properties) error {
			_, err := parseNexmark(p)
			return err
		},
		NewSource: func(p operator.Properties) (operator.Source, error) {
			cfg, err := parseNexmark(p)
			if err != nil {
				return nil, err
			}
			return &nexmarkSource{cfg: cfg}, nil
		},
	})
}

type nexmarkConfig struct {
	events int64 // 0 = unbounded
	rate   float64
	seed   int64
	kinds  [3]bool // by event type
}

func parseNexmark(p operator.Properties) (nexmarkConfig, error) {
	var c nexmarkConfig
	var err error
	if c.events, err = p.IntIn("events", 0, 0, maxNexmarkEvents); err != nil {
		return c, err
	}
	if c.rate, err = rateProperty(p); err != nil {
		return c, err
	}
	if c.seed, err = p.Int("seed", 0); err != nil {
		return c, err
	}
	v, ok := p["kinds"]
	if !ok || v == nil {
		c.kinds = [3]bool{true, true, true}
		return c, nil
	}
	const want = `property "kinds": want a non-empty list of "person", "auction" and "bid"`
	list, isList := v.([]any)
	if !isList || len(list) == 0 {
		return c, fmt.Errorf("%s, got %v", want, describeKinds(v))
	}
	for i, e := range list {
		switch e {
		case "person":
			c.kinds[nexPerson] = true
		case "auction":
			c.kinds[nexAuction] = true
		case "bid":
			c.kinds[nexBid] = true
		default:
			return c, fmt.Errorf("%s, got %v at index %d", want, describeKinds(e), i)
		}
	}
	return c, nil
}

func describeKinds(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case []any:
		return "an empty list"
	case map[string]any, map[any]any:
		return "a map"
	}
	return fmt.Sprint(v)
}

// nexmarkSource emits the Nexmark events numbered subtask, subtask+P,
// subtask+2P, ... (P the parallelism) in that order, each built from
// (seed, event number) alone: the union over subtasks is the stream one
// generator would produce, whatever the parallelism, and a restore replays
// it exactly. Its state is the next event number.
type nexmarkSource struct {
	cfg          nexmarkConfig
	subtask, par int64
	next         int64 // next event number, = subtask mod par
	end          int64 // event numbers from end on are not emitted
	canEmit      bool  // some event of a wanted kind falls to this subtask

	gen   nexGen
	limit rateLimiter
	now   func() time.Duration // monotonic; injected by tests
	rec   record.Record
}

func (s *nexmarkSource) Open(ctx *operator.Context) error {
	if ctx.Parallelism < 1 || ctx.Subtask < 0 || ctx.Subtask >= ctx.Parallelism {
		return fmt.Errorf("nexmark: subtask %d of parallelism %d", ctx.Subtask, ctx.Parallelism)
	}
	s.subtask, s.par = int64(ctx.Subtask), int64(ctx.Parallelism)
	s.next = s.subtask
	s.end = maxNexmarkEvents
	if s.cfg.events > 0 {
		s.end = s.cfg.events
	}
	// Event n falls here when n = subtask mod P; its kind depends on
	// n mod 50, so the residues mod 50 that reach this subtask are those
	// equal to subtask mod gcd(P, 50).
	s.canEmit = false
	g := gcd(s.par, nexTotalProportion)
	for r := int64(0); r < nexTotalProportion; r++ {
		if r%g == s.subtask%g && s.cfg.kinds[nexKind(r)] {
			s.canEmit = true
		}
	}
	s.gen = nexGen{seed: s.cfg.seed, pools: nexPoolsOnce()}
	s.limit = newRateLimiter(s.cfg.rate, maxBatch)
	if s.now == nil {
		start := time.Now()
		s.now = func() time.Duration { return time.Since(start) }
	}
	return nil
}

func (s *nexmarkSource) PollNext(out operator.Collector) (operator.SourceStatus, time.Duration, error) {
	if s.next >= s.end {
		return operator.EndOfInput, 0, nil
	}
	if !s.canEmit {
		if s.cfg.events > 0 {
			return operator.EndOfInput, 0, nil
		}
		// Unbounded and nothing of the wanted kinds to emit: stay alive
		// like the other subtasks rather than finish, and do not spin.
		return operator.NothingAvailable, idleRetry, nil
	}
	n := maxBatch
	if s.cfg.rate > 0 {
		var wait time.Duration
		if n, wait = s.limit.take(s.now(), maxBatch); n == 0 {
			return operator.NothingAvailable, wait, nil
		}
	}
	// Skipped events (kinds) are cheap, but bounded per poll too, so that
	// a poll returns to the task's mailbox quickly.
	for emitted, scanned := 0, 0; emitted < n && scanned < maxScan && s.next < s.end; scanned++ {
		ev := s.next
		if !s.cfg.kinds[nexKind(ev)] {
			s.next += s.par
			continue
		}
		s.gen.build(ev, &s.rec)
		if err := out.Collect(&s.rec); err != nil {
			return operator.MoreAvailable, 0, err
		}
		s.next += s.par
		emitted++
	}
	if s.next >= s.end {
		return operator.EndOfInput, 0, nil
	}
	return operator.MoreAvailable, 0, nil
}

// SnapshotState returns this subtask's next event number.
func (s *nexmarkSource) SnapshotState(int64) (*operator.Snapshot, error) {
	b := make([]byte, 0, nexItemMaxLen)
	b = append(b, nexItemV1)
	b = binary.AppendUvarint(b, uint64(s.par))
	b = binary.AppendUvarint(b, uint64(s.subtask))
	b = binary.AppendUvarint(b, uint64(s.next))
	return &operator.Snapshot{Items: [][]byte{b}}, nil
}

// RestoreState continues at the next event number this subtask had
// reached. A restore at another parallelism is refused: the old subtasks'
// positions do not describe the events left as one position per new
// subtask, and restarting from the smallest would emit events twice.
func (s *nexmarkSource) RestoreState(r *operator.RestoredState) error {
	found := false
	for i, item := range r.Items {
		par, sub, next, err := decodeNexItem(item)
		if err != nil {
			return fmt.Errorf("nexmark: restore checkpoint %d: item %d: %w", r.CheckpointID, i, err)
		}
		if par != s.par {
			return fmt.Errorf("nexmark: restore checkpoint %d: the state was taken at parallelism %d, not %d; a nexmark source cannot be rescaled (restore at parallelism %d)",
				r.CheckpointID, par, s.par, par)
		}
		if sub == s.subtask {
			if found {
				return fmt.Errorf("nexmark: restore checkpoint %d: two positions for subtask %d", r.CheckpointID, sub)
			}
			found, s.next = true, next
		}
	}
	if !found && len(r.Items) > 0 {
		return fmt.Errorf("nexmark: restore checkpoint %d: no position for subtask %d of %d", r.CheckpointID, s.subtask, s.par)
	}
	return nil
}

func decodeNexItem(b []byte) (par, sub, next int64, err error) {
	if len(b) == 0 || b[0] != nexItemV1 {
		return 0, 0, 0, fmt.Errorf("not a nexmark item of version %d: %q", nexItemV1, b)
	}
	rest := b[1:]
	read := func(what string, lo, hi uint64) (int64, error) {
		v, k := binary.Uvarint(rest)
		if k <= 0 || v < lo || v > hi {
			return 0, fmt.Errorf("bad %s in nexmark item %q", what, b)
		}
		rest = rest[k:]
		return int64(v), nil
	}
	if par, err = read("parallelism", 1, math.MaxInt32); err != nil {
		return
	}
	if sub, err = read("subtask", 0, uint64(par-1)); err != nil {
		return
	}
	if next, err = read("event number", 0, maxNexmarkEvents+uint64(par)); err != nil {
		return
	}
	if next%par != sub || len(rest) != 0 {
		err = fmt.Errorf("bad event number in nexmark item %q", b)
	}
	return
}

func (s *nexmarkSource) Close() error { return nil }
