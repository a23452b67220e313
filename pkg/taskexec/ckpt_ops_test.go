package taskexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/proto/weirpb"
)

// Test operators and fakes for checkpointing.

func init() {
	operator.Register(&operator.Type{Name: "test-ckpt", Kind: operator.KindTransform, NewOperator: newCkptOp})
	operator.Register(&operator.Type{Name: "test-resume", Kind: operator.KindSource, NewSource: newResumeSource})
}

// restoreLog is what RestoreState gave one subtask of a test-ckpt
// operator: the items, and "kg=bytes" for each key group offered.
type restoreLog struct {
	checkpoint int64
	items      []string
	keyGroups  []string
	kgErr      error // what KeyGroups returned
}

var restoreLogs sync.Map // "name/subtask" -> *restoreLog

func restoreLogOf(name string, subtask int) (*restoreLog, bool) {
	v, ok := restoreLogs.Load(fmt.Sprintf("%s/%d", name, subtask))
	if !ok {
		return nil, false
	}
	return v.(*restoreLog), true
}

func forgetRestoreLogs(name string, par int) {
	for s := range par {
		restoreLogs.Delete(fmt.Sprintf("%s/%d", name, s))
	}
}

// ckptLog is what one named test-ckpt operator saw: its records, the
// records it had seen at each snapshot, and its life-cycle events.
type ckptLog struct {
	mu        sync.Mutex
	recs      []string
	snapshots map[int64][]string
	events    []string
}

var ckptLogs sync.Map // name -> *ckptLog

func ckptLogOf(name string) *ckptLog {
	v, _ := ckptLogs.LoadOrStore(name, &ckptLog{snapshots: map[int64][]string{}})
	return v.(*ckptLog)
}

func (l *ckptLog) event(e string) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *ckptLog) records() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs)
}

func (l *ckptLog) snapshotOf(id int64) ([]string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.snapshots[id]
	return s, ok
}

func (l *ckptLog) eventList() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// ckptOp forwards every record and keeps them as its state: its snapshot
// items are the records seen so far (plus a pad item of pad bytes), its
// keyed state (keyed) "k<group>" for every key group. final makes it
// need a final checkpoint.
//
// RestoreState records what it got (restoreLogOf); fail-restore makes it
// fail, swallow-errors makes it ignore the error of KeyGroups.
type ckptOp struct {
	name     string
	log      *ckptLog
	failRest bool
	swallow  bool
	final    bool
	pad      int64
	keyed    bool
	failKey  bool
	failSnap bool
	recs     []string
	ctx      *operator.Context
}

func newCkptOp(p operator.Properties) (operator.Operator, error) {
	name, err := p.RequiredString("name")
	if err != nil {
		return nil, err
	}
	o := &ckptOp{name: name, log: ckptLogOf(name)}
	if o.failRest, err = p.Bool("fail-restore", false); err != nil {
		return nil, err
	}
	if o.swallow, err = p.Bool("swallow-errors", false); err != nil {
		return nil, err
	}
	if o.final, err = p.Bool("final", false); err != nil {
		return nil, err
	}
	if o.pad, err = p.Int("pad", 0); err != nil {
		return nil, err
	}
	if o.keyed, err = p.Bool("keyed", false); err != nil {
		return nil, err
	}
	if o.failSnap, err = p.Bool("fail-snapshot", false); err != nil {
		return nil, err
	}
	if o.failKey, err = p.Bool("fail-keyed", false); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *ckptOp) Open(ctx *operator.Context) error {
	o.ctx = ctx
	o.log.event(fmt.Sprintf("open checkpointing=%t exactly-once=%t", ctx.Checkpointing, ctx.ExactlyOnce))
	return nil
}

func (o *ckptOp) ProcessRecord(r *record.Record, out operator.Collector) error {
	s := r.String()
	o.recs = append(o.recs, s)
	o.log.mu.Lock()
	o.log.recs = append(o.log.recs, s)
	o.log.mu.Unlock()
	return out.Collect(r)
}

func (o *ckptOp) EndInput(operator.Collector) error {
	o.log.event("end-input")
	return nil
}

func (o *ckptOp) Close() error {
	o.log.event("close")
	return nil
}

func (o *ckptOp) SnapshotState(id int64) (*operator.Snapshot, error) {
	o.log.event(fmt.Sprintf("snapshot %d", id))
	if o.failSnap {
		return nil, fmt.Errorf("no snapshot today")
	}
	o.log.mu.Lock()
	o.log.snapshots[id] = slices.Clone(o.recs)
	o.log.mu.Unlock()
	s := &operator.Snapshot{}
	for _, r := range o.recs {
		s.Items = append(s.Items, []byte(r))
	}
	if o.pad > 0 {
		s.Items = append(s.Items, make([]byte, o.pad))
	}
	if o.keyed {
		s.WriteKeyGroup = func(kg int, w io.Writer) error {
			if o.failKey {
				return errors.New("no space left on device")
			}
			_, err := fmt.Fprintf(w, "k%d;", kg)
			return err
		}
	}
	return s, nil
}

func (o *ckptOp) RestoreState(r *operator.RestoredState) error {
	o.log.event(fmt.Sprintf("restore %d", r.CheckpointID))
	l := &restoreLog{checkpoint: r.CheckpointID}
	for _, it := range r.Items {
		l.items = append(l.items, string(it))
	}
	if r.KeyGroups != nil {
		l.kgErr = r.KeyGroups(func(kg int, rd io.Reader) error {
			b, err := io.ReadAll(rd)
			if err != nil {
				return err
			}
			l.keyGroups = append(l.keyGroups, fmt.Sprintf("%d=%s", kg, b))
			return nil
		})
	}
	restoreLogs.Store(fmt.Sprintf("%s/%d", o.name, o.ctx.Subtask), l)
	switch {
	case o.failRest:
		return errors.New("cannot restore today")
	case o.swallow:
		return nil
	}
	return l.kgErr
}

func (o *ckptOp) NotifyCheckpointComplete(id int64) error {
	o.log.event(fmt.Sprintf("complete %d", id))
	return nil
}

func (o *ckptOp) NotifyCheckpointAborted(id int64) error {
	o.log.event(fmt.Sprintf("aborted %d", id))
	return nil
}

func (o *ckptOp) NeedsFinalCheckpoint() bool { return o.final }

// resumeSource emits {"n": i} for i in [pos, count), one per PollNext;
// its state is the item "s<subtask>=<pos>", and RestoreState resumes at the
// item of its subtask. polled records whether PollNext ran before
// RestoreState.
type resumeSource struct {
	name     string
	count    int64
	pos      int64
	subtask  int
	polled   bool
	restored atomic.Bool
	rec      record.Record
}

var resumeSources sync.Map // name -> *resumeSource

func newResumeSource(p operator.Properties) (operator.Source, error) {
	name, err := p.RequiredString("name")
	if err != nil {
		return nil, err
	}
	s := &resumeSource{name: name}
	if s.count, err = p.Int("count", 0); err != nil {
		return nil, err
	}
	resumeSources.Store(name, s)
	return s, nil
}

func (s *resumeSource) Open(ctx *operator.Context) error {
	s.subtask = ctx.Subtask
	return nil
}

func (s *resumeSource) PollNext(out operator.Collector) (operator.SourceStatus, time.Duration, error) {
	s.polled = true
	if s.pos >= s.count {
		return operator.EndOfInput, 0, nil
	}
	s.rec.Reset()
	s.rec.Set("n", record.Int(s.pos))
	s.pos++
	return operator.MoreAvailable, 0, out.Collect(&s.rec)
}

func (s *resumeSource) Close() error { return nil }

func (s *resumeSource) SnapshotState(int64) (*operator.Snapshot, error) {
	return &operator.Snapshot{Items: [][]byte{fmt.Appendf(nil, "s%d=%d", s.subtask, s.pos)}}, nil
}

func (s *resumeSource) RestoreState(r *operator.RestoredState) error {
	if s.polled {
		return errors.New("restored after PollNext")
	}
	for _, it := range r.Items {
		var sub int
		var pos int64
		if _, err := fmt.Sscanf(string(it), "s%d=%d", &sub, &pos); err != nil {
			return fmt.Errorf("item %q: %w", it, err)
		}
		if sub == s.subtask {
			s.pos = pos
		}
	}
	s.restored.Store(true)
	return nil
}

// fakeResponder records acknowledgements and declines in order.
type fakeResponder struct {
	mu       sync.Mutex
	acks     []*weirpb.AcknowledgeCheckpointRequest
	declines []*weirpb.DeclineCheckpointRequest
}

func (f *fakeResponder) AcknowledgeCheckpoint(_ context.Context, req *weirpb.AcknowledgeCheckpointRequest) error {
	f.mu.Lock()
	f.acks = append(f.acks, req)
	f.mu.Unlock()
	return nil
}

func (f *fakeResponder) DeclineCheckpoint(_ context.Context, req *weirpb.DeclineCheckpointRequest) error {
	f.mu.Lock()
	f.declines = append(f.declines, req)
	f.mu.Unlock()
	return nil
}

// ackOf returns the acknowledgement of checkpoint id by vertex v.
func (f *fakeResponder) ackOf(v int32, id int64) *weirpb.AcknowledgeCheckpointRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.acks {
		if a.GetExecution().GetVertex() == v && a.GetCheckpointId() == id {
			return a
		}
	}
	return nil
}

func (f *fakeResponder) declineList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, d := range f.declines {
		out = append(out, fmt.Sprintf("v%d %d %s: %s", d.GetExecution().GetVertex(), d.GetCheckpointId(), d.GetReasonCode(), d.GetMessage()))
	}
	return out
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}
