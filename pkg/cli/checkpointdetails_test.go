package cli

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weirstream/weir/proto/weirpb"
)

func TestCheckpointDetails(t *testing.T) {
	f := &fakeJobService{checkpoints: func(r *weirpb.ListCheckpointsRequest) (*weirpb.ListCheckpointsResponse, error) {
		if r.GetCheckpointId() != 12 {
			return nil, status.Errorf(codes.NotFound, "checkpoint %d of job %s is not among its last 100 checkpoints", r.GetCheckpointId(), r.GetJobId())
		}
		return &weirpb.ListCheckpointsResponse{Checkpoints: []*weirpb.CheckpointInfo{
			{Id: 12, Status: "COMPLETED", TriggerTimeUnixMs: ms(testNow.Add(-11 * time.Second)), DurationMs: 340,
				SizeBytes: 1258291, AlignmentMs: 12, Path: "file:///tmp/cp/7f3c2a1e/chk-12",
				Subtasks: []*weirpb.SubtaskCheckpointInfo{
					{Vertex: 0, Operator: "src -> agg", Subtask: 0, AckTimeUnixMs: ms(testNow.Add(-10800 * time.Millisecond)),
						EndToEndDurationMs: 200, StateSize: 1258291, SyncDurationMicros: 12, AsyncDurationMicros: 187654},
					{Vertex: 1, Operator: "sink", Subtask: 1, AckTimeUnixMs: ms(testNow.Add(-10660 * time.Millisecond)),
						EndToEndDurationMs: 340, AlignmentMs: 12, SyncDurationMicros: 2500, AsyncDurationMicros: 900,
						PersistedInFlightBytes: 2048},
				}},
		}}, nil
	}}
	addr := serve(t, f)
	weir(t, addr, "checkpoints", "7f3c2a1e", "12").check(t, ""+
		"Checkpoint 12 (checkpoint) COMPLETED, triggered 2025-03-01 11:59:49, 340ms, 1.2 MiB, file:///tmp/cp/7f3c2a1e/chk-12\n"+
		"2 subtasks acknowledged.\n"+
		"\n"+
		"OPERATOR    SUBTASK  ACKNOWLEDGED         END TO END  SIZE     IN-FLIGHT  ALIGNMENT  SYNC  ASYNC\n"+
		"src -> agg  0        2025-03-01 11:59:49  200ms       1.2 MiB  0 B        0ms        12µs  187ms\n"+
		"sink        1        2025-03-01 11:59:49  340ms       0 B      2.0 KiB    12ms       2ms   900µs\n", "", 0)
	weir(t, addr, "checkpoints", "7f3c2a1e", "12", "-o", "json").check(t, `{
  "id": 12,
  "savepoint": false,
  "status": "COMPLETED",
  "trigger_time": "2025-03-01T11:59:49.000Z",
  "duration_ms": 340,
  "size_bytes": 1258291,
  "alignment_ms": 12,
  "path": "file:///tmp/cp/7f3c2a1e/chk-12",
  "failure": "",
  "unaligned": false,
  "persisted_in_flight_bytes": 0,
  "subtasks": [
    {
      "operator": "src -> agg",
      "vertex": 0,
      "subtask": 0,
      "ack_time": "2025-03-01T11:59:49.200Z",
      "end_to_end_duration_ms": 200,
      "state_size": 1258291,
      "alignment_ms": 0,
      "sync_duration_ms": 0.012,
      "async_duration_ms": 187.654,
      "persisted_in_flight_bytes": 0
    },
    {
      "operator": "sink",
      "vertex": 1,
      "subtask": 1,
      "ack_time": "2025-03-01T11:59:49.340Z",
      "end_to_end_duration_ms": 340,
      "state_size": 0,
      "alignment_ms": 12,
      "sync_duration_ms": 2.5,
      "async_duration_ms": 0.9,
      "persisted_in_flight_bytes": 2048
    }
  ]
}
`, "", 0)
	if got := f.received()[0]; !proto.Equal(got.(proto.Message), &weirpb.ListCheckpointsRequest{JobId: "7f3c2a1e", CheckpointId: 12}) {
		t.Errorf("request %v", got)
	}
	weir(t, addr, "checkpoints", "7f3c2a1e", "13").check(t, "",
		"weir: checkpoint 13 of job 7f3c2a1e is not among its last 100 checkpoints\n", 1)
	weir(t, addr, "checkpoints", "7f3c2a1e", "x1").check(t, "", "weir: checkpoint id \"x1\": want a positive integer\n", 1)
	weir(t, addr, "checkpoints", "7f3c2a1e", "0").check(t, "", "weir: checkpoint id \"0\": want a positive integer\n", 1)
}
