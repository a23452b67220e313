package jobmanager

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/snapshot"
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
	want := `job.yaml: config: s3.secret-key is a cluster setting (set it in the config.yaml of the JobManager and the TaskManagers), not a job setting`
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != want || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("SubmitJob = %v\nwant InvalidArgument %s", err, want)
	}
}

// A checkpoint (here a savepoint) that a task declined (say, its disk was
// full) is disposed of at once; a task that was still writing then
// acknowledges late, its files recreating the checkpoint's directory. Its
// state, and the directory, are deleted too: nothing of the aborted
// checkpoint is left.
func TestLateAcknowledgementLeavesNoOrphans(t *testing.T) {
	dir := t.TempDir()
	c, a, id, tdds := cpCluster(t, nil, fmt.Sprintf(`  execution.checkpointing.interval: 1h
  execution.checkpointing.dir: %s
  execution.checkpointing.tolerable-failed-checkpoints: 10`, dir))
	store := taskStorage(t, dir)
	res := c.asyncSavepoint(id, filepath.Join(dir, "savepoints"), false, false)
	wantStrings(t, "savepoint triggers", collect(t, a.savepoints, 2), []string{"0/0#0 1 stop=false drain=false", "0/1#0 1 stop=false drain=false"})
	chk1 := filepath.Join(dir, id, "chk-1")
	a.decline(tdds["0/0#0"].Execution, 1, weirpb.DeclineReason_DECLINE_REASON_ASYNC_EXCEPTION, "write state: no space left on device")
	if r := wait(t, res); r.err == nil {
		t.Fatal("savepoint succeeded after a decline")
	}
	waitGone(t, chk1)

	late := writeFile(t, store, id, 1, snapshot.KindOperator, "sink-1", "written after the abort")
	if _, err := os.Stat(filepath.Join(chk1, late.Path)); err != nil {
		t.Fatal(err)
	}
	a.ack(tdds["1/1#0"].Execution, 1, &snapshot.TaskState{Operators: map[string][]snapshot.StateObject{"sink": {late}}})
	waitGone(t, chk1)
	if entries, err := os.ReadDir(filepath.Join(dir, id)); err != nil || len(entries) != 0 {
		t.Fatalf("job directory holds %v, %v", entries, err)
	}
}

// waitGone polls until path does not exist.
func waitGone(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists after 5s (%v)", path, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
