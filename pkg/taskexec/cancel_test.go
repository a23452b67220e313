package taskexec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	// file-sink, for its rate limit.
	_ "github.com/weirstream/weir/pkg/builtin"
	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
)

func init() {
	operator.Register(&operator.Type{Name: "test-idle", Kind: operator.KindSource, NewSource: newIdleSource})
	operator.Register(&operator.Type{Name: "test-await-cancel", Kind: operator.KindSink, NewOperator: newAwaitCancelOp})
}

var marks sync.Map // name -> *atomic.Int32: how often a test operator reached its wait

func mark(name string) *atomic.Int32 {
	v, _ := marks.LoadOrStore(name, new(atomic.Int32))
	return v.(*atomic.Int32)
}

// idleSource never has anything: it asks to be polled again in an hour.
type idleSource struct{ name string }

func newIdleSource(p operator.Properties) (operator.Source, error) {
	name, err := p.RequiredString("name")
	return &idleSource{name: name}, err
}

func (s *idleSource) Open(*operator.Context) error { return nil }
func (s *idleSource) Close() error                 { return nil }
func (s *idleSource) PollNext(operator.Collector) (operator.SourceStatus, time.Duration, error) {
	mark(s.name).Add(1)
	return operator.NothingAvailable, time.Hour, nil
}

// awaitCancelOp blocks in its first ProcessRecord until the task is
// canceled (Context.Done), as an operator waiting for something it can give
// up does.
type awaitCancelOp struct {
	name string
	done <-chan struct{}
}

func newAwaitCancelOp(p operator.Properties) (operator.Operator, error) {
	name, err := p.RequiredString("name")
	return &awaitCancelOp{name: name}, err
}

func (o *awaitCancelOp) Open(ctx *operator.Context) error {
	if ctx.Done == nil {
		return errors.New("operator.Context.Done is nil")
	}
	o.done = ctx.Done
	return nil
}

func (o *awaitCancelOp) ProcessRecord(*record.Record, operator.Collector) error {
	mark(o.name).Add(1)
	<-o.done
	return errors.New("gave up waiting: the task is canceled")
}

func (o *awaitCancelOp) EndInput(operator.Collector) error { return nil }
func (o *awaitCancelOp) Close() error                      { return nil }

// TestCancelWhereTheTaskWaits cancels a task while it waits in each place a
// task can wait, and expects CANCELED (not FAILED) within the deadline of
// mustBeCanceled. Each case first polls until the task waits there.
func TestCancelWhereTheTaskWaits(t *testing.T) {
	type setup struct {
		target  *running
		others  []*running  // canceled after the target
		waiting func() bool // the target waits where the case says
	}
	nobody := func(m *network.Manager) *vertex { return &vertex{index: 9, par: 1, managers: []*network.Manager{m}} }
	outputFull := func(r *running) func() bool {
		return func() bool { p := r.task.testPartition(); return p != nil && !p.IsAvailable() }
	}
	cases := []struct {
		name  string
		start func(t *testing.T, job string, m *network.Manager) setup
	}{
		{"source retry wait", func(t *testing.T, job string, m *network.Manager) setup {
			src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
				opJSON(t, "idle", "test-idle", map[string]any{"name": job}),
			}}
			r := start(t, descriptors(job, src, nil, nil, nil)[0], m)
			return setup{target: r, waiting: func() bool { return mark(job).Load() > 0 }}
		}},
		{"source waiting for an output buffer", func(t *testing.T, job string, m *network.Manager) setup {
			src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
				opJSON(t, "numbers", "test-count", map[string]any{"count": -1}),
			}}
			e := edge{from: src, to: nobody(m), partition: jobgraph.Forward, consumer: "nobody", producer: "numbers"}
			r := start(t, descriptors(job, src, nil, []edge{e}, nil)[0], m)
			return setup{target: r, waiting: outputFull(r)}
		}},
		{"emit blocked for an output buffer", func(t *testing.T, job string, m *network.Manager) setup {
			src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
				opJSON(t, "numbers", "test-count", map[string]any{"count": -1}),
			}}
			mid := &vertex{index: 1, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
				opJSON(t, "map", "test-map", nil, jobgraph.Input{From: "numbers", Partition: jobgraph.Forward}),
			}}
			in := edge{from: src, to: mid, partition: jobgraph.Forward, consumer: "map", producer: "numbers"}
			out := edge{from: mid, to: nobody(m), partition: jobgraph.Forward, consumer: "nobody", producer: "map"}
			rm := start(t, descriptors(job, mid, []edge{in}, []edge{out}, nil)[0], m)
			rs := start(t, descriptors(job, src, nil, []edge{in}, nil)[0], m)
			return setup{target: rm, others: []*running{rs}, waiting: outputFull(rm)}
		}},
		{"input gate empty", func(t *testing.T, job string, m *network.Manager) setup {
			src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}}
			sink := &vertex{index: 1, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
				opJSON(t, "out", "test-discard", nil, jobgraph.Input{From: "numbers", Partition: jobgraph.Forward}),
			}}
			e := edge{from: src, to: sink, partition: jobgraph.Forward, consumer: "out", producer: "numbers"}
			r := start(t, descriptors(job, sink, []edge{e}, nil, nil)[0], m)
			return setup{target: r, waiting: func() bool { return r.task.testGate() != nil }}
		}},
		{"rate-limited file-sink", func(t *testing.T, job string, m *network.Manager) setup {
			dir := t.TempDir()
			src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
				opJSON(t, "numbers", "test-count", map[string]any{"count": 10}),
				// The first record is due at once, the next in 1000 s.
				opJSON(t, "files", "file-sink", map[string]any{"path": dir, "rate": 0.001}, jobgraph.Input{From: "numbers", Partition: jobgraph.Forward}),
			}}
			r := start(t, descriptors(job, src, nil, nil, nil)[0], m)
			return setup{target: r, waiting: func() bool {
				_, err := os.Stat(filepath.Join(dir, ".part-0-0.inprogress"))
				return err == nil
			}}
		}},
		{"operator waiting on Context.Done", func(t *testing.T, job string, m *network.Manager) setup {
			src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
				opJSON(t, "numbers", "test-count", map[string]any{"count": 10}),
				opJSON(t, "wait", "test-await-cancel", map[string]any{"name": job}, jobgraph.Input{From: "numbers", Partition: jobgraph.Forward}),
			}}
			r := start(t, descriptors(job, src, nil, nil, nil)[0], m)
			return setup{target: r, waiting: func() bool { return mark(job).Load() > 0 }}
		}},
		{"final checkpoint wait", func(t *testing.T, job string, m *network.Manager) setup {
			ckptLogs.Delete(job)
			src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
				opJSON(t, "numbers", "test-count", map[string]any{"count": 3}),
				opJSON(t, "commit", "test-ckpt", map[string]any{"name": job, "final": true}, jobgraph.Input{From: "numbers", Partition: jobgraph.Forward}),
			}}
			r := start(t, descriptors(job, src, nil, nil, ckptConfig("EXACTLY_ONCE"))[0], m)
			return setup{target: r, waiting: func() bool { return has(ckptLogOf(job).eventList(), "end-input") }}
		}},
		{"source held by stop-with-savepoint", func(t *testing.T, job string, m *network.Manager) setup {
			ckptLogs.Delete(job)
			src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
				opJSON(t, "numbers", "test-count", map[string]any{"count": -1}),
				opJSON(t, "commit", "test-ckpt", map[string]any{"name": job}, jobgraph.Input{From: "numbers", Partition: jobgraph.Forward}),
			}}
			resp := &fakeResponder{}
			r := startEnv(t, descriptors(job, src, nil, nil, ckptConfig("EXACTLY_ONCE"))[0], Env{Network: m, Logger: zap.NewNop(), Responder: resp})
			if err := r.task.TriggerCheckpoint(1, 0, CheckpointOptions{Savepoint: true, Stop: true}); err != nil {
				t.Fatal(err)
			}
			return setup{target: r, waiting: func() bool { return resp.ackOf(0, 1) != nil }}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job := "cancel-" + strings.ReplaceAll(tc.name, " ", "-")
			marks.Delete(job)
			m := newManager(t)
			s := tc.start(t, job, m)
			all := append([]*running{s.target}, s.others...)
			defer cancelAll(t, all)
			waitUntil(t, "the task to wait ("+tc.name+")", s.waiting)
			s.target.task.Cancel()
			s.target.mustBeCanceled(t)
		})
	}
}

// mustBeCanceled waits (with a deadline) for a canceled task's result.
func (r *running) mustBeCanceled(t *testing.T) {
	t.Helper()
	select {
	case <-r.task.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("task %s still running 10 s after Cancel:\n%s", r.task.Name(), r.task.Stack())
	}
	if res := <-r.result; res.State != Canceled || res.Err != nil {
		t.Fatalf("task %s: %s %v, want CANCELED", r.task.Name(), res.State, res.Err)
	}
}

// cancelAll cancels tasks and waits for them to end, so that nothing leaks
// into the next test when one fails.
func cancelAll(t *testing.T, rs []*running) {
	for _, r := range rs {
		r.task.Cancel()
	}
	for _, r := range rs {
		select {
		case <-r.task.Done():
		case <-time.After(10 * time.Second):
			t.Errorf("task %s still running 10 s after Cancel", r.task.Name())
		}
	}
}

// Stack shows where the task goroutine is, while Run runs.
func TestStack(t *testing.T) {
	job := "stack"
	marks.Delete(job)
	m := newManager(t)
	v := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "numbers", "test-count", map[string]any{"count": 10}),
		opJSON(t, "wait", "test-await-cancel", map[string]any{"name": job}, jobgraph.Input{From: "numbers", Partition: jobgraph.Forward}),
	}}
	task, err := New(descriptors(job, v, nil, nil, nil)[0], Env{Network: m, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if s := task.Stack(); s != "" {
		t.Errorf("Stack before Run = %q, want empty", s)
	}
	r := &running{task: task, result: make(chan Result, 1)}
	go func() { r.result <- task.Run() }()
	defer cancelAll(t, []*running{r})
	waitUntil(t, "the operator to wait", func() bool { return mark(job).Load() > 0 })
	s := task.Stack()
	for _, want := range []string{"goroutine ", "(*awaitCancelOp).ProcessRecord", "(*Task).Run"} {
		if !strings.Contains(s, want) {
			t.Errorf("Stack does not contain %q:\n%s", want, s)
		}
	}
	task.Cancel()
	r.mustBeCanceled(t)
	if s := task.Stack(); s != "" {
		t.Errorf("Stack after Run = %q, want empty", s)
	}
}
