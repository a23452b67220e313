package taskexec

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
)

// Test-only operator types. Instances report to per-test sinks and hooks
// looked up by the "name" property, so that parallel tests do not share
// state.

// collected is a record received by a collecting sink.
type collected struct {
	Subtask   int
	KeyGroups [2]int
	JSON      string
}

type sinkStore struct {
	mu   sync.Mutex
	recs []collected
	// closed counts Close calls.
	closed atomic.Int32
}

func (s *sinkStore) snapshot() []collected {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]collected(nil), s.recs...)
}

var (
	storesMu sync.Mutex
	stores   = map[string]*sinkStore{}
	feedsMu  sync.Mutex
	feeds    = map[string]chan int64{} // trickle sources
	closes   sync.Map                  // name -> *atomic.Int32 (Close calls of sources/maps)
)

func store(name string) *sinkStore {
	storesMu.Lock()
	defer storesMu.Unlock()
	s, ok := stores[name]
	if !ok {
		s = &sinkStore{}
		stores[name] = s
	}
	return s
}

func feed(name string) chan int64 {
	feedsMu.Lock()
	defer feedsMu.Unlock()
	c, ok := feeds[name]
	if !ok {
		c = make(chan int64, 1024)
		feeds[name] = c
	}
	return c
}

func closeCounter(name string) *atomic.Int32 {
	v, _ := closes.LoadOrStore(name, new(atomic.Int32))
	return v.(*atomic.Int32)
}

func init() {
	operator.Register(&operator.Type{Name: "test-count", Kind: operator.KindSource, NewSource: newCountSource})
	operator.Register(&operator.Type{Name: "test-trickle", Kind: operator.KindSource, NewSource: newTrickleSource})
	operator.Register(&operator.Type{Name: "test-map", Kind: operator.KindTransform, NewOperator: newMapOp})
	operator.Register(&operator.Type{Name: "test-sink", Kind: operator.KindSink, NewOperator: newSinkOp})
	operator.Register(&operator.Type{Name: "test-discard", Kind: operator.KindSink, NewOperator: func(operator.Properties) (operator.Operator, error) {
		return discardOp{}, nil
	}})
}

// countSource emits {"key": <subtask*1000 + i) % keys>, "n": i} for i in
// [0, count) (count < 0: forever), batch records per PollNext.
type countSource struct {
	name        string
	count, keys int64
	batch       int64
	i           int64
	subtask     int64
	rec         record.Record
}

func newCountSource(p operator.Properties) (operator.Source, error) {
	s := &countSource{}
	var err error
	if s.name, err = p.String("name", ""); err != nil {
		return nil, err
	}
	if s.count, err = p.Int("count", 10); err != nil {
		return nil, err
	}
	if s.keys, err = p.Int("keys", 1<<62); err != nil {
		return nil, err
	}
	if s.batch, err = p.Int("batch", 64); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *countSource) Open(ctx *operator.Context) error {
	s.subtask = int64(ctx.Subtask)
	return nil
}

func (s *countSource) PollNext(out operator.Collector) (operator.SourceStatus, time.Duration, error) {
	for j := int64(0); j < s.batch; j++ {
		if s.count >= 0 && s.i >= s.count {
			return operator.EndOfInput, 0, nil
		}
		s.rec.Reset()
		s.rec.Set("key", record.Int((s.subtask*1000+s.i)%s.keys))
		s.rec.Set("n", record.Int(s.i))
		s.i++
		if err := out.Collect(&s.rec); err != nil {
			return 0, 0, err
		}
	}
	return operator.MoreAvailable, 0, nil
}

func (s *countSource) Close() error {
	closeCounter(s.name).Add(1)
	return nil
}

// trickleSource emits {"n": v} for each v received on feed(name); a
// negative v ends the input.
type trickleSource struct {
	name string
	ch   chan int64
	rec  record.Record
}

func newTrickleSource(p operator.Properties) (operator.Source, error) {
	name, err := p.RequiredString("name")
	if err != nil {
		return nil, err
	}
	return &trickleSource{name: name, ch: feed(name)}, nil
}

func (s *trickleSource) Open(*operator.Context) error { return nil }

func (s *trickleSource) PollNext(out operator.Collector) (operator.SourceStatus, time.Duration, error) {
	select {
	case v := <-s.ch:
		if v < 0 {
			return operator.EndOfInput, 0, nil
		}
		s.rec.Reset()
		s.rec.Set("n", record.Int(v))
		return operator.MoreAvailable, 0, out.Collect(&s.rec)
	default:
		return operator.NothingAvailable, 5 * time.Millisecond, nil
	}
}

func (s *trickleSource) Close() error { return nil }

// mapOp keeps records with an even "n" (mode "evens"), adds "doubled": 2n,
// fails on n == failAt, drops the "key" field when dropKey, and emits
// {"end": subtask} from EndInput when endMarker.
type mapOp struct {
	name      string
	failAt    int64
	evens     bool
	dropKey   bool
	endMarker bool
	subtask   int
	out       record.Record
}

func newMapOp(p operator.Properties) (operator.Operator, error) {
	m := &mapOp{}
	var err error
	if m.name, err = p.String("name", ""); err != nil {
		return nil, err
	}
	if m.failAt, err = p.Int("fail-at", -1<<40); err != nil {
		return nil, err
	}
	if m.evens, err = p.Bool("evens", false); err != nil {
		return nil, err
	}
	if m.dropKey, err = p.Bool("drop-key", false); err != nil {
		return nil, err
	}
	if m.endMarker, err = p.Bool("end-marker", false); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *mapOp) Open(ctx *operator.Context) error {
	m.subtask = ctx.Subtask
	return nil
}

func (m *mapOp) ProcessRecord(r *record.Record, out operator.Collector) error {
	v, _ := r.Get("n")
	n, ok := v.AsInt()
	if !ok {
		return errors.New("no int field n")
	}
	if n == m.failAt {
		return fmt.Errorf("boom at %d", n)
	}
	if m.evens && n%2 != 0 {
		return nil
	}
	m.out.Reset()
	for _, f := range r.Fields {
		if m.dropKey && f.Name == "key" {
			continue
		}
		m.out.Fields = append(m.out.Fields, f)
	}
	m.out.Set("doubled", record.Int(2*n))
	return out.Collect(&m.out)
}

func (m *mapOp) EndInput(out operator.Collector) error {
	if !m.endMarker {
		return nil
	}
	m.out.Reset()
	m.out.Set("end", record.Int(int64(m.subtask)))
	m.out.Set("n", record.Int(-1))
	return out.Collect(&m.out)
}

func (m *mapOp) Close() error {
	closeCounter(m.name).Add(1)
	return nil
}

// sinkOp appends every record to store(name).
type sinkOp struct {
	s   *sinkStore
	ctx *operator.Context
}

func newSinkOp(p operator.Properties) (operator.Operator, error) {
	name, err := p.RequiredString("name")
	if err != nil {
		return nil, err
	}
	return &sinkOp{s: store(name)}, nil
}

func (k *sinkOp) Open(ctx *operator.Context) error {
	k.ctx = ctx
	return nil
}

func (k *sinkOp) ProcessRecord(r *record.Record, _ operator.Collector) error {
	k.s.mu.Lock()
	k.s.recs = append(k.s.recs, collected{
		Subtask:   k.ctx.Subtask,
		KeyGroups: [2]int{k.ctx.KeyGroups.Start, k.ctx.KeyGroups.End},
		JSON:      r.String(),
	})
	k.s.mu.Unlock()
	return nil
}

func (k *sinkOp) EndInput(operator.Collector) error { return nil }

func (k *sinkOp) Close() error {
	k.s.closed.Add(1)
	return nil
}

// discardOp drops every record (benchmark sink).
type discardOp struct{}

func (discardOp) Open(*operator.Context) error                           { return nil }
func (discardOp) ProcessRecord(*record.Record, operator.Collector) error { return nil }
func (discardOp) EndInput(operator.Collector) error                      { return nil }
func (discardOp) Close() error                                           { return nil }

// reset forgets the sinks, feeds and close counters of the given names, so
// that a test run with -count > 1 starts clean.
func reset(names ...string) {
	storesMu.Lock()
	feedsMu.Lock()
	for _, n := range names {
		delete(stores, n)
		delete(feeds, n)
		closes.Delete(n)
	}
	feedsMu.Unlock()
	storesMu.Unlock()
}
