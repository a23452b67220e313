package jobmanager

import (
	"context"
	"fmt"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/proto/weirpb"
)

// TestCheckpointDetails: the sync and async durations, alignment and size
// that each subtask acknowledges arrive per subtask in the checkpoint's
// details (ListCheckpoints with a checkpoint id), and only there.
func TestCheckpointDetails(t *testing.T) {
	c, a, id, tdds := cpCluster(t, zap.NewNop(), fmt.Sprintf(`  execution.checkpointing.interval: 20ms
  execution.checkpointing.dir: %s`, t.TempDir()))
	collect(t, a.triggered, 2)
	tasks := []string{"0/0#0", "0/1#0", "1/0#0", "1/1#0", "1/2#0"}
	// Out of order: the details are ordered by vertex and subtask.
	for i := len(tasks) - 1; i >= 0; i-- {
		b, err := snapshot.EncodeTaskState(&snapshot.TaskState{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.gw.AcknowledgeCheckpoint(context.Background(), &weirpb.AcknowledgeCheckpointRequest{
			Execution: tdds[tasks[i]].Execution, CheckpointId: 1, State: b, StateSize: int64(100 + i), AlignmentMs: int64(i),
			SyncDurationMicros: int64(10 + i), AsyncDurationMicros: int64(2000 + i),
		}); err != nil {
			t.Fatal(err)
		}
	}
	c.waitCheckpoint(id, 1, "COMPLETED")
	if cp := c.checkpoint(id, 1); len(cp.Subtasks) != 0 {
		t.Errorf("the list carries subtasks: %v", cp.Subtasks)
	}
	resp, err := c.api.ListCheckpoints(context.Background(), &weirpb.ListCheckpointsRequest{JobId: id, CheckpointId: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Checkpoints) != 1 || resp.Checkpoints[0].Id != 1 {
		t.Fatalf("details of checkpoint 1: %v", resp.Checkpoints)
	}
	cp := resp.Checkpoints[0]
	var got []string
	for _, s := range cp.Subtasks {
		got = append(got, fmt.Sprintf("%d/%d %s size=%d align=%d sync=%dus async=%dus", s.Vertex, s.Subtask, s.Operator,
			s.StateSize, s.AlignmentMs, s.SyncDurationMicros, s.AsyncDurationMicros))
		if s.AckTimeUnixMs < cp.TriggerTimeUnixMs || s.EndToEndDurationMs != s.AckTimeUnixMs-cp.TriggerTimeUnixMs {
			t.Errorf("subtask %d/%d: ack at %d ms, end to end %d ms, trigger at %d ms", s.Vertex, s.Subtask, s.AckTimeUnixMs, s.EndToEndDurationMs, cp.TriggerTimeUnixMs)
		}
	}
	wantStrings(t, "subtasks of checkpoint 1", got, []string{
		"0/0 src -> map size=100 align=0 sync=10us async=2000us",
		"0/1 src -> map size=101 align=1 sync=11us async=2001us",
		"1/0 sink size=102 align=2 sync=12us async=2002us",
		"1/1 sink size=103 align=3 sync=13us async=2003us",
		"1/2 sink size=104 align=4 sync=14us async=2004us",
	})
	_, err = c.api.ListCheckpoints(context.Background(), &weirpb.ListCheckpointsRequest{JobId: id, CheckpointId: 999})
	want := fmt.Sprintf("checkpoint 999 of job %s is not among its last 100 checkpoints", id)
	if status.Code(err) != codes.NotFound || status.Convert(err).Message() != want {
		t.Errorf("unknown checkpoint: %v, want NotFound %q", err, want)
	}
}
