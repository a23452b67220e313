package taskexec

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/proto/weirpb"
)

// Test operators and fakes for checkpointing.

func init() {
	operator.Register(&operator.Type{Name: "test-ckpt", Kind: operator.KindTransform, NewOperator: newCkptOp})
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
type ckptOp struct {
	log      *ckptLog
	final    bool
	pad      int64
	keyed    bool
	failSnap bool
	recs     []string
	ctx      *operator.Context
}

func newCkptOp(p operator.Properties) (operator.Operator, error) {
	name, err := p.RequiredString("name")
	if err != nil {
		return nil, err
	}
	o := &ckptOp{log: ckptLogOf(name)}
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
			_, err := fmt.Fprintf(w, "k%d;", kg)
			return err
		}
	}
	return s, nil
}

func (o *ckptOp) RestoreState(*operator.RestoredState) error { return nil }

func (o *ckptOp) NotifyCheckpointComplete(id int64) error {
	o.log.event(fmt.Sprintf("complete %d", id))
	return nil
}

func (o *ckptOp) NotifyCheckpointAborted(id int64) error {
	o.log.event(fmt.Sprintf("aborted %d", id))
	return nil
}

func (o *ckptOp) NeedsFinalCheckpoint() bool { return o.final }

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
		out = append(out, fmt.Sprintf("v%d %d %s", d.GetExecution().GetVertex(), d.GetCheckpointId(), d.GetReason()))
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
