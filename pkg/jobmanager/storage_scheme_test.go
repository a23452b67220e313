package jobmanager

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/proto/weirpb"
)

// A cluster whose checkpoint directory has a scheme no driver supports
// fails only the jobs that checkpoint, naming the scheme and the supported
// ones; a job that does not checkpoint runs, and its savepoint to an
// unsupported scheme is refused before any task is asked for a snapshot.
func TestUnsupportedStorageScheme(t *testing.T) {
	c := startJM(t, nil, map[string]string{"state.checkpoints.dir": "hdfs:///checkpoints"})
	a := startTM(t, c.jm.Addr(), "tm-a", 4)
	_, err := c.api.SubmitJob(context.Background(), &weirpb.SubmitJobRequest{JobSpec: []byte(cpJob("  execution.checkpointing.interval: 1s")), FileName: "job.yaml"})
	want := `checkpointing: checkpoint storage: unsupported storage scheme "hdfs" in "hdfs:///checkpoints" (supported: file://, jobmanager:// or a plain path)`
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != want {
		t.Fatalf("SubmitJob with checkpointing = %v\nwant InvalidArgument %s", err, want)
	}

	id := c.submit(chainJob(1))
	a.report(a.receive(1)["0/0#0"].Execution, "RUNNING", "")
	want = `savepoint directory: unsupported storage scheme "hdfs" in "hdfs:///savepoints" (supported: file://, jobmanager:// or a plain path)`
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = c.api.TriggerSavepoint(context.Background(), &weirpb.TriggerSavepointRequest{JobId: id, TargetDirectory: "hdfs:///savepoints"})
		if status.Code(err) != codes.FailedPrecondition || time.Now().After(deadline) {
			break // FailedPrecondition: the job is not RUNNING yet
		}
		time.Sleep(10 * time.Millisecond)
	}
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != want {
		t.Fatalf("TriggerSavepoint = %v\nwant InvalidArgument %s", err, want)
	}
	if n := len(a.savepoints); n != 0 {
		t.Fatalf("%d savepoint triggers reached the tasks", n)
	}
}

// Credentials and the other s3.* keys are the daemons' own: a job's
// config: that sets them is refused, without echoing the value.
func TestJobConfigCannotSetClusterOptions(t *testing.T) {
	c := startJM(t, nil, nil)
	_, err := c.api.SubmitJob(context.Background(), &weirpb.SubmitJobRequest{JobSpec: []byte(cpJob("  s3.secret-key: hunter2-secret")), FileName: "job.yaml"})
	want := `job.yaml: config: key "s3.secret-key" is a cluster option: set it in the configuration of the JobManager and TaskManagers, not in a job`
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != want || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("SubmitJob = %v\nwant InvalidArgument %s", err, want)
	}
}
