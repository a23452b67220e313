package taskmanager

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/pkg/taskexec"
	"github.com/weirstream/weir/proto/weirpb"
)

// tm-count counts its records; its state is the count, and it records the
// checkpoint notifications it gets.
type countOp struct{ n int64 }

var (
	countEventsMu sync.Mutex
	countEvents   []string
)

func init() {
	operator.Register(&operator.Type{Name: "tm-count", Kind: operator.KindSink, NewOperator: func(operator.Properties) (operator.Operator, error) {
		return &countOp{}, nil
	}})
}

func (o *countOp) Open(*operator.Context) error { return nil }
func (o *countOp) ProcessRecord(*record.Record, operator.Collector) error {
	o.n++
	return nil
}
func (o *countOp) EndInput(operator.Collector) error { return nil }
func (o *countOp) Close() error                      { return nil }
func (o *countOp) SnapshotState(int64) (*operator.Snapshot, error) {
	return &operator.Snapshot{Items: [][]byte{[]byte(fmt.Sprint(o.n))}}, nil
}
func (o *countOp) RestoreState(*operator.RestoredState) error { return nil }
func (o *countOp) NotifyCheckpointComplete(id int64) error {
	countEventsMu.Lock()
	countEvents = append(countEvents, fmt.Sprintf("complete %d", id))
	countEventsMu.Unlock()
	return nil
}
func (o *countOp) NotifyCheckpointAborted(id int64) error {
	countEventsMu.Lock()
	countEvents = append(countEvents, fmt.Sprintf("aborted %d", id))
	countEventsMu.Unlock()
	return nil
}

func (jm *fakeJM) AcknowledgeCheckpoint(_ context.Context, req *weirpb.AcknowledgeCheckpointRequest) (*weirpb.Ack, error) {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	jm.acks = append(jm.acks, req)
	return &weirpb.Ack{}, nil
}

func (jm *fakeJM) DeclineCheckpoint(_ context.Context, req *weirpb.DeclineCheckpointRequest) (*weirpb.Ack, error) {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	jm.declines = append(jm.declines, fmt.Sprintf("%s %d %s: %s", req.GetExecution().GetJobId(), req.GetCheckpointId(), req.GetReasonCode(), req.GetMessage()))
	return &weirpb.Ack{}, nil
}

func (jm *fakeJM) ackCount() int {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	return len(jm.acks)
}

func (jm *fakeJM) declineList() []string {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	return slices.Clone(jm.declines)
}

// Trigger -> acknowledgement with the chain's state; notifications reach the
// operators; fencing by attempt; triggers of tasks not running are declined.
func TestCheckpointRPCs(t *testing.T) {
	countEventsMu.Lock()
	countEvents = nil
	countEventsMu.Unlock()
	jm := startJM(t, "127.0.0.1:0", "jm-1")
	reg := prometheus.NewRegistry()
	tm := startTM(t, jm.addr, reg)
	c := client(t, tm)
	ctx := context.Background()

	d := &weirpb.TaskDeploymentDescriptor{
		Execution:      &weirpb.ExecutionAttemptID{JobId: "ckpt", Attempt: 2},
		JobName:        "ckpt",
		Parallelism:    1,
		MaxParallelism: 128,
		Operators: [][]byte{
			opJSON(t, "src", "tm-spin", map[string]any{"name": "ckpt"}),
			opJSON(t, "count", "tm-count", nil, jobgraph.Input{From: "src", Partition: jobgraph.Forward}),
		},
		Config: map[string]string{"execution.checkpointing.interval": "1 h"},
	}
	if _, err := c.SubmitTask(ctx, d); err != nil {
		t.Fatal(err)
	}
	eventually(t, "RUNNING", func() bool { return len(jm.statesOf("ckpt", 2)) == 1 })

	if _, err := c.TriggerCheckpoint(ctx, &weirpb.TriggerCheckpointRequest{Execution: d.Execution, CheckpointId: 7, TimestampUnixMs: 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "acknowledgement", func() bool { return jm.ackCount() == 1 })
	jm.mu.Lock()
	ack := jm.acks[0]
	jm.mu.Unlock()
	if ack.GetCheckpointId() != 7 || ack.GetExecution().GetAttempt() != 2 || ack.GetStateSize() == 0 {
		t.Fatalf("ack %v", ack)
	}
	ts, err := snapshot.DecodeTaskState(ack.GetState())
	if err != nil {
		t.Fatal(err)
	}
	objs := ts.Operators["count"]
	if len(objs) != 1 || objs[0].Kind != snapshot.KindOperator || !objs[0].IsInline() {
		t.Fatalf("state %+v", ts)
	}
	items, err := taskexec.DecodeOperatorItems(bytes.NewReader(objs[0].Inline))
	if err != nil || len(items) != 1 {
		t.Fatalf("items %q %v", items, err)
	}

	// Other attempts are fenced off; this one's notifications arrive.
	other := &weirpb.ExecutionAttemptID{JobId: "ckpt", Attempt: 1}
	for _, ex := range []*weirpb.ExecutionAttemptID{other, d.Execution} {
		if _, err := c.NotifyCheckpointComplete(ctx, &weirpb.NotifyCheckpointRequest{Execution: ex, CheckpointId: 7}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.NotifyCheckpointAborted(ctx, &weirpb.NotifyCheckpointRequest{Execution: ex, CheckpointId: 8}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "notifications", func() bool {
		countEventsMu.Lock()
		defer countEventsMu.Unlock()
		return len(countEvents) == 2
	})
	countEventsMu.Lock()
	got := strings.Join(countEvents, ",")
	countEventsMu.Unlock()
	if got != "complete 7,aborted 8" {
		t.Errorf("operator notified %s", got)
	}
	if _, err := c.TriggerCheckpoint(ctx, &weirpb.TriggerCheckpointRequest{Execution: other, CheckpointId: 9}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "decline", func() bool { return len(jm.declineList()) == 1 })
	if got := jm.declineList()[0]; got != "ckpt 9 DECLINE_REASON_TASK_NOT_READY: task not running" {
		t.Errorf("decline %q", got)
	}
	if g := gaugeOf(t, reg, "weir_task_checkpoint_size_bytes"); g != float64(ack.GetStateSize()) {
		t.Errorf("weir_task_checkpoint_size_bytes = %v, want %d", g, ack.GetStateSize())
	}

	// A finished task declines.
	if _, err := c.CancelTask(ctx, &weirpb.CancelTaskRequest{Execution: d.Execution}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "CANCELED", func() bool { return len(jm.statesOf("ckpt", 2)) == 2 })
	if _, err := c.TriggerCheckpoint(ctx, &weirpb.TriggerCheckpointRequest{Execution: d.Execution, CheckpointId: 10}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "decline", func() bool { return len(jm.declineList()) == 2 })
	if got := jm.declineList()[1]; got != "ckpt 10 DECLINE_REASON_TASK_NOT_READY: task not running" {
		t.Errorf("decline %q", got)
	}
	if _, err := c.TriggerCheckpoint(ctx, &weirpb.TriggerCheckpointRequest{}); err == nil {
		t.Error("a trigger without execution was accepted")
	}
}

// gaugeOf returns the value of the first series of gauge name.
func gaugeOf(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}
