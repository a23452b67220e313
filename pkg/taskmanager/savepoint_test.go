package taskmanager

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/proto/weirpb"
)

// A savepoint trigger is acknowledged like a checkpoint (not declined);
// stop-with-savepoint reaches the task with its stop flag: after the
// completion notification the task finishes and reports FINISHED.
func TestSavepointRPCs(t *testing.T) {
	countEventsMu.Lock()
	countEvents = nil
	countEventsMu.Unlock()
	jm := startJM(t, "127.0.0.1:0", "jm-1")
	tm := startTM(t, jm.addr, prometheus.NewRegistry())
	c := client(t, tm)
	ctx := context.Background()

	d := &weirpb.TaskDeploymentDescriptor{
		Execution:      &weirpb.ExecutionAttemptID{JobId: "sp", Attempt: 1},
		JobName:        "sp",
		Parallelism:    1,
		MaxParallelism: 128,
		Operators: [][]byte{
			opJSON(t, "src", "tm-spin", map[string]any{"name": "sp"}),
			opJSON(t, "count", "tm-count", nil, jobgraph.Input{From: "src", Partition: jobgraph.Forward}),
		},
		Config: map[string]string{
			"execution.checkpointing.interval": "1 h",
			"execution.checkpointing.dir":      t.TempDir(),
		},
	}
	if _, err := c.SubmitTask(ctx, d); err != nil {
		t.Fatal(err)
	}
	eventually(t, "RUNNING", func() bool { return len(jm.statesOf("sp", 1)) == 1 })

	if _, err := c.TriggerCheckpoint(ctx, &weirpb.TriggerCheckpointRequest{Execution: d.Execution, CheckpointId: 3, Savepoint: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "acknowledgement of the savepoint", func() bool { return jm.ackCount() == 1 })
	if _, err := c.TriggerCheckpoint(ctx, &weirpb.TriggerCheckpointRequest{Execution: d.Execution, CheckpointId: 4, Savepoint: true, Stop: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "acknowledgement of the stop-with-savepoint", func() bool { return jm.ackCount() == 2 })
	if d := jm.declineList(); len(d) != 0 {
		t.Fatalf("declines: %v", d)
	}
	if got := jm.statesOf("sp", 1); !slices.Equal(got, []string{"RUNNING"}) {
		t.Fatalf("states %v before the savepoint completed", got)
	}
	if _, err := c.NotifyCheckpointComplete(ctx, &weirpb.NotifyCheckpointRequest{Execution: d.Execution, CheckpointId: 4}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "FINISHED", func() bool { return len(jm.statesOf("sp", 1)) == 2 })
	if got := jm.statesOf("sp", 1); !slices.Equal(got, []string{"RUNNING", "FINISHED"}) {
		t.Errorf("states %v", got)
	}
	countEventsMu.Lock()
	got := strings.Join(countEvents, ",")
	countEventsMu.Unlock()
	if got != "complete 4" {
		t.Errorf("operator notified %q", got)
	}
}
