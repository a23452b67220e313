package jobmanager

import (
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/coordinator"
	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/proto/weirpb"
)

func (tm *fakeTM) TriggerCheckpoint(_ context.Context, req *weirpb.TriggerCheckpointRequest) (*weirpb.Ack, error) {
	tm.triggered <- fmt.Sprintf("%s %d", execString(req.Execution), req.CheckpointId)
	if req.Savepoint {
		tm.savepoints <- fmt.Sprintf("%s %d stop=%t drain=%t", execString(req.Execution), req.CheckpointId, req.Stop, req.Drain)
	}
	return &weirpb.Ack{}, nil
}

func (tm *fakeTM) NotifyCheckpointComplete(_ context.Context, req *weirpb.NotifyCheckpointRequest) (*weirpb.Ack, error) {
	tm.completed <- fmt.Sprintf("%s %d", execString(req.Execution), req.CheckpointId)
	return &weirpb.Ack{}, nil
}

func (tm *fakeTM) NotifyCheckpointAborted(_ context.Context, req *weirpb.NotifyCheckpointRequest) (*weirpb.Ack, error) {
	tm.aborted <- fmt.Sprintf("%s %d", execString(req.Execution), req.CheckpointId)
	return &weirpb.Ack{}, nil
}

// ack acknowledges a checkpoint for a task with the given state.
func (tm *fakeTM) ack(exec *weirpb.ExecutionAttemptID, id int64, st *snapshot.TaskState) {
	tm.t.Helper()
	b, err := snapshot.EncodeTaskState(st)
	if err != nil {
		tm.t.Fatal(err)
	}
	if _, err := tm.gw.AcknowledgeCheckpoint(context.Background(), &weirpb.AcknowledgeCheckpointRequest{
		Execution: exec, CheckpointId: id, State: b, AlignmentMs: 3,
	}); err != nil {
		tm.t.Fatal(err)
	}
}

func (tm *fakeTM) decline(exec *weirpb.ExecutionAttemptID, id int64, reason weirpb.DeclineReason, msg string) {
	tm.t.Helper()
	if _, err := tm.gw.DeclineCheckpoint(context.Background(), &weirpb.DeclineCheckpointRequest{
		Execution: exec, CheckpointId: id, ReasonCode: reason, Message: msg,
	}); err != nil {
		tm.t.Fatal(err)
	}
}

// inline is an inline state object holding s.
func inline(kind snapshot.StateKind, s string) snapshot.StateObject {
	return snapshot.StateObject{Kind: kind, StateHandle: snapshot.StateHandle{
		Size: int64(len(s)), CRC: crc32.Checksum([]byte(s), crc32.MakeTable(crc32.Castagnoli)), Inline: []byte(s),
	}}
}

// cpJob: [src -> map](2) -rebalance-> sink(3): a chain and an all-to-all
// edge, 5 tasks in 3 slots. config is added to its config: section.
func cpJob(config string) string {
	return `name: cp
parallelism: 2
max-parallelism: 64
config:
` + config + `
operators:
- id: src
  type: jmtest-source
- id: map
  type: jmtest-map
  input: src
- id: sink
  type: jmtest-sink
  parallelism: 3
  input: {from: map, partition: rebalance}
`
}

// cpCluster starts a JobManager and one TaskManager with 3 slots, submits
// cpJob and reports every task RUNNING.
func cpCluster(t *testing.T, log *zap.Logger, config string) (*cluster, *fakeTM, string, map[string]*weirpb.TaskDeploymentDescriptor) {
	t.Helper()
	c := startJM(t, log, nil)
	a := startTM(t, c.jm.Addr(), "tm-a", 3)
	id := c.submit(cpJob(config))
	tdds := a.receive(5)
	for _, k := range []string{"0/0#0", "0/1#0", "1/0#0", "1/1#0", "1/2#0"} {
		a.report(tdds[k].Execution, "RUNNING", "")
	}
	return c, a, id, tdds
}

// sinkTriggers reads triggers until the three sink subtasks got one of the
// same checkpoint, and returns its id. Triggers at the sources are skipped.
func sinkTriggers(t *testing.T, ch chan string) int64 {
	t.Helper()
	got := map[int64][]string{}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s := <-ch:
			task, idText, _ := strings.Cut(s, " ")
			var id int64
			fmt.Sscan(idText, &id)
			if !strings.HasPrefix(task, "1/") {
				continue
			}
			got[id] = append(got[id], task)
			if len(got[id]) == 3 {
				wantStrings(t, "sink triggers", sortedCopy(got[id]), []string{"1/0#0", "1/1#0", "1/2#0"})
				return id
			}
		case <-deadline:
			t.Fatalf("sink triggers after 5s: %v", got)
		}
	}
}

// collect reads n messages from ch and returns them sorted.
func collect(t *testing.T, ch chan string, n int) []string {
	t.Helper()
	var got []string
	deadline := time.After(5 * time.Second)
	for len(got) < n {
		select {
		case s := <-ch:
			got = append(got, s)
		case <-deadline:
			t.Fatalf("got %q after 5s, want %d messages", got, n)
		}
	}
	return sortedCopy(got)
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func wantStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\n%s\nwant:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// checkpoint returns the checkpoint with id from ListCheckpoints.
func (c *cluster) checkpoint(jobID string, id int64) *weirpb.CheckpointInfo {
	c.t.Helper()
	resp, err := c.api.ListCheckpoints(context.Background(), &weirpb.ListCheckpointsRequest{JobId: jobID})
	if err != nil {
		c.t.Fatal(err)
	}
	for _, cp := range resp.Checkpoints {
		if cp.Id == id {
			return cp
		}
	}
	return nil
}

// waitCheckpoint polls until checkpoint id has the status.
func (c *cluster) waitCheckpoint(jobID string, id int64, st string) *weirpb.CheckpointInfo {
	c.t.Helper()
	var cp *weirpb.CheckpointInfo
	eventually(c.t, func() string {
		cp = c.checkpoint(jobID, id)
		if cp == nil || cp.Status != st {
			return fmt.Sprintf("checkpoint %d: %v, want %s", id, cp, st)
		}
		return ""
	})
	return cp
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// A checkpoint from trigger to _metadata, then a finished source (FLIP-147),
// subsumption and RETAIN_ON_CANCELLATION when the job finishes.
func TestCheckpointCompletes(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	dir := t.TempDir()
	c, a, id, tdds := cpCluster(t, zap.New(core), fmt.Sprintf(`  execution.checkpointing.interval: 20ms
  execution.checkpointing.dir: %s
  execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION`, dir))

	// The triggers go to the sources only.
	wantStrings(t, "triggers of checkpoint 1", collect(t, a.triggered, 2), []string{"0/0#0 1", "0/1#0 1"})
	if cp := c.checkpoint(id, 1); cp == nil || cp.Status != "IN_PROGRESS" {
		t.Fatalf("checkpoint 1 = %v, want IN_PROGRESS", cp)
	}
	// A chain acknowledges the state of each of its operators.
	src0, map0 := inline(snapshot.KindOperator, "offset=10"), inline(snapshot.KindOperator, "m0")
	src1 := inline(snapshot.KindOperator, "offset=11")
	pending := inline(snapshot.KindSinkPending, "part-1")
	a.ack(tdds["0/0#0"].Execution, 1, &snapshot.TaskState{Operators: map[string][]snapshot.StateObject{"src": {src0}, "map": {map0}}})
	a.ack(tdds["0/1#0"].Execution, 1, &snapshot.TaskState{Operators: map[string][]snapshot.StateObject{"src": {src1}}})
	a.ack(tdds["1/0#0"].Execution, 1, &snapshot.TaskState{})
	a.ack(tdds["1/1#0"].Execution, 1, &snapshot.TaskState{Operators: map[string][]snapshot.StateObject{"sink": {pending}}})
	// A late duplicate or a stale attempt changes nothing.
	a.ack(&weirpb.ExecutionAttemptID{JobId: id, Vertex: 1, Subtask: 2, Attempt: 7}, 1, &snapshot.TaskState{})
	if cp := c.checkpoint(id, 1); cp.Status != "IN_PROGRESS" {
		t.Fatalf("checkpoint 1 = %v, want IN_PROGRESS", cp)
	}
	a.ack(tdds["1/2#0"].Execution, 1, &snapshot.TaskState{})

	wantStrings(t, "notifications of checkpoint 1", collect(t, a.completed, 5), []string{"0/0#0 1", "0/1#0 1", "1/0#0 1", "1/1#0 1", "1/2#0 1"})
	cp1 := c.waitCheckpoint(id, 1, "COMPLETED")
	path1 := filepath.Join(dir, id, "chk-1")
	size := int64(len("offset=10") + len("m0") + len("offset=11") + len("part-1"))
	if cp1.Path != path1 || cp1.SizeBytes != size || cp1.AlignmentMs != 3 || cp1.Failure != "" || cp1.TriggerTimeUnixMs <= 0 || cp1.DurationMs < 0 {
		t.Fatalf("checkpoint 1: %v, want path %s, size %d", cp1, path1, size)
	}
	md, err := snapshot.LoadMetadata(t.Context(), path1)
	if err != nil {
		t.Fatal(err)
	}
	want := &snapshot.Metadata{
		JobID: id, JobName: "cp", CheckpointID: 1, TimestampMs: cp1.TriggerTimeUnixMs, MaxParallelism: 64, Dir: path1,
		Operators: []snapshot.OperatorState{
			{ID: "map", Type: "jmtest-map", Parallelism: 2, Subtasks: []snapshot.SubtaskState{{Subtask: 0, State: []snapshot.StateObject{map0}}, {Subtask: 1}}},
			{ID: "sink", Type: "jmtest-sink", Parallelism: 3, Subtasks: []snapshot.SubtaskState{{Subtask: 0}, {Subtask: 1, State: []snapshot.StateObject{pending}}, {Subtask: 2}}},
			{ID: "src", Type: "jmtest-source", Parallelism: 2, Subtasks: []snapshot.SubtaskState{{Subtask: 0, State: []snapshot.StateObject{src0}}, {Subtask: 1, State: []snapshot.StateObject{src1}}}},
		},
	}
	if !reflect.DeepEqual(md, want) {
		t.Fatalf("_metadata:\n%+v\nwant:\n%+v", md, want)
	}
	d := c.job(id)
	if cs := d.Checkpoints; cs.Completed != 1 || cs.Failed != 0 || cs.Latest == nil || cs.Latest.Id != 1 || cs.Latest.Path != path1 || cs.Latest.SizeBytes != size {
		t.Fatalf("job checkpoint stats: %v", cs)
	}
	if got := c.metric("weir_job_checkpoints_completed_total", map[string]string{"job_id": id}); got != 1 {
		t.Errorf("completed_total = %v", got)
	}
	if got := c.metric("weir_job_last_checkpoint_size_bytes", map[string]string{"job_id": id}); got != float64(size) {
		t.Errorf("last_checkpoint_size_bytes = %v", got)
	}
	if got := c.metric("weir_job_checkpoints_failed_total", map[string]string{"job_id": id}); got != 0 {
		t.Errorf("failed_total = %v", got)
	}
	var lines []string
	for _, e := range logs.FilterMessage("checkpoint completed").All() {
		m := e.ContextMap()
		lines = append(lines, fmt.Sprintf("job=%v checkpoint=%v size=%v path=%v", m["job"], m["checkpoint"], m["size_bytes"], m["path"]))
	}
	wantStrings(t, "log lines", lines, []string{fmt.Sprintf("job=%s checkpoint=1 size=%d path=%s", id, size, path1)})

	// The sources finish: the next checkpoint is triggered at the sink
	// subtasks, whose inputs have all finished, and records the sources
	// finished. (A checkpoint triggered at the sources before they
	// finished is aborted: they finished before acknowledging it.)
	a.report(tdds["0/0#0"].Execution, "FINISHED", "")
	a.report(tdds["0/1#0"].Execution, "FINISHED", "")
	n := sinkTriggers(t, a.triggered)
	for _, k := range []string{"1/0#0", "1/1#0", "1/2#0"} {
		a.ack(tdds[k].Execution, n, &snapshot.TaskState{})
	}
	c.waitCheckpoint(id, n, "COMPLETED")
	pathN := filepath.Join(dir, id, fmt.Sprintf("chk-%d", n))
	md, err = snapshot.LoadMetadata(t.Context(), pathN)
	if err != nil {
		t.Fatal(err)
	}
	var finished []string
	for _, op := range md.Operators {
		for _, st := range op.Subtasks {
			finished = append(finished, fmt.Sprintf("%s/%d finished=%t state=%d", op.ID, st.Subtask, st.Finished, len(st.State)))
		}
	}
	wantStrings(t, "last checkpoint", finished, []string{
		"map/0 finished=true state=0", "map/1 finished=true state=0",
		"sink/0 finished=false state=0", "sink/1 finished=false state=0", "sink/2 finished=false state=0",
		"src/0 finished=true state=0", "src/1 finished=true state=0",
	})
	var notified []string
	eventually(t, func() string {
		for len(a.completed) > 0 {
			notified = append(notified, <-a.completed)
		}
		want := []string{fmt.Sprintf("1/0#0 %d", n), fmt.Sprintf("1/1#0 %d", n), fmt.Sprintf("1/2#0 %d", n)}
		if got := sortedCopy(notified); strings.Join(got, ",") != strings.Join(want, ",") {
			return fmt.Sprintf("notifications %q, want %q", got, want)
		}
		return ""
	})
	// num-retained 1: checkpoint 1 is subsumed and deleted.
	eventually(t, func() string {
		if exists(path1) {
			return "subsumed checkpoint 1 still on disk"
		}
		return ""
	})

	for _, k := range []string{"1/0#0", "1/1#0", "1/2#0"} {
		a.report(tdds[k].Execution, "FINISHED", "")
	}
	c.waitState(id, "FINISHED", "")
	// RETAIN_ON_CANCELLATION keeps the retained checkpoint of a finished
	// job, and its history stays listed.
	expect(t, a.released, id)
	if !exists(filepath.Join(pathN, "_metadata")) {
		t.Fatalf("checkpoint %d of the finished job was deleted", n)
	}
	if cp := c.checkpoint(id, n); cp == nil || cp.Status != "COMPLETED" {
		t.Fatalf("checkpoint %d after the job ended: %v", n, cp)
	}
}

// A declined checkpoint fails with the task's reason; beyond
// tolerable-failed-checkpoints the job fails over, here without restarts.
func TestCheckpointDeclinedFailsJob(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	c, a, id, tdds := cpCluster(t, zap.New(core), `  execution.checkpointing.interval: 20ms
  execution.checkpointing.tolerable-failed-checkpoints: 1
  restart-strategy.type: none`)

	wantStrings(t, "triggers of checkpoint 1", collect(t, a.triggered, 2), []string{"0/0#0 1", "0/1#0 1"})
	a.decline(tdds["0/1#0"].Execution, 1, weirpb.DeclineReason_DECLINE_REASON_DECLINED, "snapshot of operator src: disk full")
	cp := c.waitCheckpoint(id, 1, "FAILED")
	if want := "CHECKPOINT_DECLINED: task 0/1 declined checkpoint 1: snapshot of operator src: disk full"; cp.Failure != want || cp.Path != "" {
		t.Fatalf("checkpoint 1: %v, want failure %q", cp, want)
	}
	wantStrings(t, "aborted", collect(t, a.aborted, 5), []string{"0/0#0 1", "0/1#0 1", "1/0#0 1", "1/1#0 1", "1/2#0 1"})
	if d := c.job(id); d.State != "RUNNING" || d.Checkpoints.Failed != 1 || d.Checkpoints.Latest != nil {
		t.Fatalf("job after one failed checkpoint: %s %v", d.State, d.Checkpoints)
	}
	if got := logs.FilterMessage("checkpoint failed").Len(); got != 1 {
		t.Fatalf("%d warnings for the failed checkpoint", got)
	}

	// A task not ready yet does not count (CHECKPOINT_DECLINED_TASK_NOT_READY).
	wantStrings(t, "triggers of checkpoint 2", collect(t, a.triggered, 2), []string{"0/0#0 2", "0/1#0 2"})
	a.decline(tdds["0/0#0"].Execution, 2, weirpb.DeclineReason_DECLINE_REASON_TASK_NOT_READY, "restoring")
	if cp := c.waitCheckpoint(id, 2, "FAILED"); cp.Failure != "CHECKPOINT_DECLINED_TASK_NOT_READY: task 0/0 declined checkpoint 2: restoring" {
		t.Fatalf("checkpoint 2: %v", cp)
	}

	wantStrings(t, "triggers of checkpoint 3", collect(t, a.triggered, 2), []string{"0/0#0 3", "0/1#0 3"})
	// A reason this JobManager does not know, from a hostile or newer peer,
	// with an oversized message: a counted decline, the message clipped.
	boom := strings.Repeat("x", 100<<10)
	a.decline(tdds["0/0#0"].Execution, 3, weirpb.DeclineReason(99), boom)
	clipped := strings.Repeat("x", maxMessageLength) + fmt.Sprintf("… (%d more bytes cut)", len(boom)-maxMessageLength)
	want := "exceeded checkpoint tolerable failure threshold (1): task 0/0 declined checkpoint 3: unknown decline reason 99: " + clipped
	c.waitState(id, "FAILING", want)
	expect(t, a.canceled, "0/0#0", "0/1#0", "1/0#0", "1/1#0", "1/2#0")
	for _, k := range []string{"0/0#0", "0/1#0", "1/0#0", "1/1#0", "1/2#0"} {
		a.report(tdds[k].Execution, "CANCELED", "")
	}
	d := c.waitState(id, "FAILED", want)
	if len(d.Exceptions) != 1 || d.Exceptions[0].Message != want || d.Exceptions[0].Task != "" {
		t.Fatalf("exceptions: %v", d.Exceptions)
	}
	if d.Checkpoints.Failed != 3 || d.Checkpoints.InProgress != 0 {
		t.Fatalf("checkpoint stats: %v", d.Checkpoints)
	}
	// A job that ended leaves no series behind.
	for _, name := range []string{"weir_job_checkpoints_failed_total", "weir_job_checkpoints_completed_total", "weir_job_uptime_seconds", "weir_job_restarts_total"} {
		if v, ok := c.lookupMetric(name, map[string]string{"job_id": id}); ok {
			t.Errorf("%s of the FAILED job still exported: %v", name, v)
		}
	}
}

// A checkpoint not acknowledged within execution.checkpointing.timeout
// expires; the tasks hear it was aborted.
func TestCheckpointTimeout(t *testing.T) {
	c, a, id, _ := cpCluster(t, nil, `  execution.checkpointing.interval: 20ms
  execution.checkpointing.timeout: 50ms
  execution.checkpointing.tolerable-failed-checkpoints: 100`)
	wantStrings(t, "triggers of checkpoint 1", collect(t, a.triggered, 2), []string{"0/0#0 1", "0/1#0 1"})
	cp := c.waitCheckpoint(id, 1, "FAILED")
	if cp.Failure != "CHECKPOINT_EXPIRED: checkpoint 1 expired before completing" {
		t.Fatalf("checkpoint 1: %v", cp)
	}
	wantStrings(t, "aborted", collect(t, a.aborted, 5), []string{"0/0#0 1", "0/1#0 1", "1/0#0 1", "1/1#0 1", "1/2#0 1"})
	// The next one is triggered with the next id.
	wantStrings(t, "triggers of checkpoint 2", collect(t, a.triggered, 2), []string{"0/0#0 2", "0/1#0 2"})
}

// A _metadata that cannot be written fails that checkpoint with the cause;
// the JobManager goes on, and the earlier checkpoint is intact.
func TestCheckpointMetadataWriteFails(t *testing.T) {
	dir := t.TempDir()
	c, a, id, tdds := cpCluster(t, nil, fmt.Sprintf(`  execution.checkpointing.interval: 20ms
  execution.checkpointing.dir: %s
  execution.checkpointing.num-retained: 2
  execution.checkpointing.tolerable-failed-checkpoints: 1`, dir))
	all := []string{"0/0#0", "0/1#0", "1/0#0", "1/1#0", "1/2#0"}
	ackAll := func(cp int64) {
		for _, k := range all {
			a.ack(tdds[k].Execution, cp, &snapshot.TaskState{})
		}
	}
	collect(t, a.triggered, 2)
	ackAll(1)
	c.waitCheckpoint(id, 1, "COMPLETED")
	// A file where chk-2 must go: its directory cannot be created.
	chk2 := filepath.Join(dir, id, "chk-2")
	if err := os.WriteFile(chk2, []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantStrings(t, "triggers of checkpoint 2", collect(t, a.triggered, 2), []string{"0/0#0 2", "0/1#0 2"})
	ackAll(2)
	cp := c.waitCheckpoint(id, 2, "FAILED")
	if prefix := "IO_EXCEPTION: write metadata of checkpoint 2: write _metadata of " + chk2 + ": "; !strings.HasPrefix(cp.Failure, prefix) {
		t.Fatalf("checkpoint 2 failure %q, want prefix %q", cp.Failure, prefix)
	}
	if _, err := snapshot.LoadMetadata(t.Context(), filepath.Join(dir, id, "chk-1")); err != nil {
		t.Fatalf("checkpoint 1 after checkpoint 2 failed: %v", err)
	}
	os.Remove(chk2)
	wantStrings(t, "triggers of checkpoint 3", collect(t, a.triggered, 2), []string{"0/0#0 3", "0/1#0 3"})
	ackAll(3)
	c.waitCheckpoint(id, 3, "COMPLETED")
	if d := c.job(id); d.State != "RUNNING" || d.Checkpoints.Latest.GetId() != 3 {
		t.Fatalf("job: %s %v", d.State, d.Checkpoints)
	}
}

// A malformed acknowledgement is refused and declines the checkpoint.
func TestCheckpointInvalidAcknowledgement(t *testing.T) {
	c, a, id, tdds := cpCluster(t, nil, `  execution.checkpointing.interval: 20ms
  execution.checkpointing.tolerable-failed-checkpoints: 10`)
	collect(t, a.triggered, 2)
	b, _ := snapshot.EncodeTaskState(&snapshot.TaskState{Operators: map[string][]snapshot.StateObject{"sink": nil}})
	_, err := a.gw.AcknowledgeCheckpoint(context.Background(), &weirpb.AcknowledgeCheckpointRequest{Execution: tdds["0/0#0"].Execution, CheckpointId: 1, State: b})
	msg := `acknowledgement of checkpoint 1 with invalid state: state of operator "sink", which is not in the chain src -> map`
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != msg {
		t.Fatalf("AcknowledgeCheckpoint = %v", err)
	}
	if cp := c.waitCheckpoint(id, 1, "FAILED"); cp.Failure != "CHECKPOINT_DECLINED: task 0/0 declined checkpoint 1: "+msg {
		t.Fatalf("checkpoint 1: %v", cp)
	}
	for _, tc := range []struct {
		exec *weirpb.ExecutionAttemptID
		code codes.Code
		msg  string
	}{
		{&weirpb.ExecutionAttemptID{JobId: "nope"}, codes.NotFound, "job nope not found"},
		{&weirpb.ExecutionAttemptID{JobId: id, Vertex: 2}, codes.InvalidArgument, "job " + id + " has no task 2/0"},
	} {
		_, err := a.gw.DeclineCheckpoint(context.Background(), &weirpb.DeclineCheckpointRequest{Execution: tc.exec, CheckpointId: 1})
		if status.Code(err) != tc.code || status.Convert(err).Message() != tc.msg {
			t.Errorf("DeclineCheckpoint(%v) = %v, want %v %q", tc.exec, err, tc.code, tc.msg)
		}
	}
}

// The retention policy decides what happens to the retained checkpoints
// when the job ends, as Flink's ExternalizedCheckpointRetention.
func TestCheckpointRetention(t *testing.T) {
	for _, tc := range []struct {
		policy, end, msg string
		kept             bool
	}{
		{"DELETE_ON_CANCELLATION", "CANCELED", "", false},
		{"DELETE_ON_CANCELLATION", "FAILED", "sink subtask 0 failed: boom", true},
		{"DELETE_ON_CANCELLATION", "FINISHED", "", false},
		{"RETAIN_ON_CANCELLATION", "CANCELED", "", true},
		{"NO_EXTERNALIZED_CHECKPOINTS", "FAILED", "sink subtask 0 failed: boom", false},
	} {
		t.Run(tc.policy+"/"+tc.end, func(t *testing.T) {
			dir := t.TempDir()
			c, a, id, tdds := cpCluster(t, nil, fmt.Sprintf(`  execution.checkpointing.interval: 20ms
  execution.checkpointing.dir: %s
  execution.checkpointing.externalized-checkpoint-retention: %s
  restart-strategy.type: none`, dir, tc.policy))
			all := []string{"0/0#0", "0/1#0", "1/0#0", "1/1#0", "1/2#0"}
			collect(t, a.triggered, 2)
			for _, k := range all {
				a.ack(tdds[k].Execution, 1, &snapshot.TaskState{})
			}
			c.waitCheckpoint(id, 1, "COMPLETED")
			switch tc.end {
			case "CANCELED":
				if _, err := c.api.CancelJob(context.Background(), &weirpb.CancelJobRequest{JobId: id}); err != nil {
					t.Fatal(err)
				}
				for _, k := range all {
					a.report(tdds[k].Execution, "CANCELED", "")
				}
			case "FAILED":
				a.report(tdds["1/0#0"].Execution, "FAILED", "boom")
				for _, k := range all[:4] {
					if k != "1/0#0" {
						a.report(tdds[k].Execution, "CANCELED", "")
					}
				}
				a.report(tdds["1/2#0"].Execution, "CANCELED", "")
			case "FINISHED":
				for _, k := range all {
					a.report(tdds[k].Execution, "FINISHED", "")
				}
			}
			c.waitState(id, tc.end, tc.msg)
			chk1 := filepath.Join(dir, id, "chk-1")
			if tc.kept {
				expect(t, a.released, id) // the job's end was carried out
				if _, err := snapshot.LoadMetadata(t.Context(), chk1); err != nil {
					t.Fatalf("retained checkpoint: %v", err)
				}
				return
			}
			eventually(t, func() string {
				if exists(chk1) {
					return chk1 + " still exists"
				}
				return ""
			})
		})
	}
}

// Checkpointing settings are checked at submission; nothing is stored or
// deployed for a job that fails.
func TestCheckpointConfigValidation(t *testing.T) {
	dir := t.TempDir()
	notADir := filepath.Join(dir, "file")
	if err := os.WriteFile(notADir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startJM(t, nil, nil)
	a := startTM(t, c.jm.Addr(), "tm-a", 4)
	for _, tc := range []struct{ config, msg string }{
		{"  execution.checkpointing.interval: 0", `job.yaml: config: invalid value "0" for key "execution.checkpointing.interval": want a duration >= 10ms`},
		{"  execution.checkpointing.interval: -1s", `job.yaml: config: invalid value "-1s" for key "execution.checkpointing.interval"`},
		{"  execution.checkpointing.interval: 1s\n  execution.checkpointing.mode: SOMETIMES",
			`job.yaml: config: invalid value "SOMETIMES" for key "execution.checkpointing.mode": want one of EXACTLY_ONCE, AT_LEAST_ONCE`},
		{"  execution.checkpointing.interval: 1s\n  execution.checkpointing.externalized-checkpoint-retention: KEEP",
			`job.yaml: config: invalid value "KEEP" for key "execution.checkpointing.externalized-checkpoint-retention"`},
		{"  execution.checkpointing.interval: 1s\n  execution.checkpointing.storage: filesystem",
			`checkpointing: execution.checkpointing.storage is "filesystem" but execution.checkpointing.dir is not set: say where checkpoints go`},
		{"  execution.checkpointing.interval: 1s\n  execution.checkpointing.dir: " + filepath.Join(notADir, "cp"),
			"checkpointing: checkpoint directory " + filepath.Join(notADir, "cp") + "/"},
		{"  execution.checkpointing.interval: 1s\n  execution.checkpointing.unaligned.enabled: true\n  execution.checkpointing.mode: AT_LEAST_ONCE",
			"checkpointing: execution.checkpointing.unaligned.enabled is true but execution.checkpointing.mode is AT_LEAST_ONCE: unaligned checkpoints require EXACTLY_ONCE"},
		{"  execution.checkpointing.interval: 1s\n  execution.checkpointing.unaligned.enabled: true\n  execution.checkpointing.max-concurrent-checkpoints: 2",
			"checkpointing: execution.checkpointing.unaligned.enabled is true but execution.checkpointing.max-concurrent-checkpoints is 2: unaligned checkpoints require 1"},
	} {
		_, err := c.api.SubmitJob(context.Background(), &weirpb.SubmitJobRequest{JobSpec: []byte(cpJob(tc.config)), FileName: "job.yaml"})
		if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), tc.msg) {
			t.Errorf("SubmitJob(%q) = %v, want InvalidArgument %q", tc.config, err, tc.msg)
		}
	}
	jobs, err := c.api.ListJobs(context.Background(), &weirpb.ListJobsRequest{})
	if err != nil || len(jobs.Jobs) != 0 {
		t.Fatalf("ListJobs = %v, %v; want none", jobs, err)
	}
	// Without an interval, periodic checkpointing is off: no trigger, no
	// history; an acknowledgement of no savepoint is ignored.
	id := c.submit(chainJob(1))
	a.report(a.receive(1)["0/0#0"].Execution, "RUNNING", "")
	_, err = a.gw.AcknowledgeCheckpoint(context.Background(), &weirpb.AcknowledgeCheckpointRequest{Execution: &weirpb.ExecutionAttemptID{JobId: id}, CheckpointId: 1})
	if err != nil {
		t.Fatalf("AcknowledgeCheckpoint for a job without checkpointing = %v", err)
	}
	resp, err := c.api.ListCheckpoints(context.Background(), &weirpb.ListCheckpointsRequest{JobId: id})
	if err != nil || len(resp.Checkpoints) != 0 || len(a.triggered) != 0 {
		t.Fatalf("ListCheckpoints = %v, %v; %d triggers", resp, err, len(a.triggered))
	}
}

// The cluster's configuration enables checkpointing too, and its
// combination with the job's is what is checked.
func TestClusterCheckpointConfig(t *testing.T) {
	c := startJM(t, nil, map[string]string{"execution.checkpointing.interval": "1s", "execution.checkpointing.storage": "filesystem"})
	_, err := c.api.SubmitJob(context.Background(), &weirpb.SubmitJobRequest{JobSpec: []byte(chainJob(1)), FileName: "job.yaml"})
	if want := "checkpointing: execution.checkpointing.storage is \"filesystem\" but execution.checkpointing.dir is not set: say where checkpoints go"; status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != want {
		t.Fatalf("SubmitJob = %v, want %q", err, want)
	}
}

// execution.checkpointing.checkpoints-after-tasks-finish: false is refused
// at submission, under either name and with or without an interval, never
// accepted and ignored; true is accepted.
func TestCheckpointsAfterTasksFinishFalseRefused(t *testing.T) {
	c := startJM(t, nil, nil)
	want := "checkpointing: execution.checkpointing.checkpoints-after-tasks-finish is false, which weir does not support: " +
		"checkpoints go on after some tasks finished (FLIP-147), and sinks that commit on checkpoints wait for a final one; " +
		"remove the key or set it to true"
	for _, conf := range []string{
		"  execution.checkpointing.checkpoints-after-tasks-finish: false\n  execution.checkpointing.interval: 1s",
		"  execution.checkpointing.checkpoints-after-tasks-finish.enabled: false",
	} {
		spec := strings.Replace(chainJob(1), "operators:", "config:\n"+conf+"\noperators:", 1)
		_, err := c.api.SubmitJob(context.Background(), &weirpb.SubmitJobRequest{JobSpec: []byte(spec), FileName: "job.yaml"})
		if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != want {
			t.Fatalf("SubmitJob with\n%s\n= %v, want %q", conf, err, want)
		}
	}
	spec := strings.Replace(chainJob(1), "operators:", "config:\n  execution.checkpointing.checkpoints-after-tasks-finish: true\noperators:", 1)
	if _, err := c.api.SubmitJob(context.Background(), &weirpb.SubmitJobRequest{JobSpec: []byte(spec), FileName: "job.yaml"}); err != nil {
		t.Fatalf("SubmitJob with true: %v", err)
	}

	// From the cluster's configuration too.
	c = startJM(t, nil, map[string]string{"execution.checkpointing.checkpoints-after-tasks-finish": "false"})
	_, err := c.api.SubmitJob(context.Background(), &weirpb.SubmitJobRequest{JobSpec: []byte(chainJob(1)), FileName: "job.yaml"})
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != want {
		t.Fatalf("SubmitJob with false in the cluster's configuration = %v, want %q", err, want)
	}
}

func TestDeclineFailureReason(t *testing.T) {
	for _, tc := range []struct {
		code        weirpb.DeclineReason
		msg         string
		reason, out string
	}{
		{weirpb.DeclineReason_DECLINE_REASON_DECLINED, "disk full", "CHECKPOINT_DECLINED", "disk full"},
		{weirpb.DeclineReason_DECLINE_REASON_ASYNC_EXCEPTION, "write state: EIO", "CHECKPOINT_ASYNC_EXCEPTION", "write state: EIO"},
		{weirpb.DeclineReason_DECLINE_REASON_TASK_NOT_READY, "restoring", "CHECKPOINT_DECLINED_TASK_NOT_READY", "restoring"},
		{weirpb.DeclineReason_DECLINE_REASON_TASK_CLOSING, "", "CHECKPOINT_DECLINED_TASK_CLOSING", ""},
		{weirpb.DeclineReason_DECLINE_REASON_SUBSUMED, "barrier 4", "CHECKPOINT_DECLINED_SUBSUMED", "barrier 4"},
		{weirpb.DeclineReason_DECLINE_REASON_ON_CANCELLATION_BARRIER, "", "CHECKPOINT_DECLINED_ON_CANCELLATION_BARRIER", ""},
		// A peer that sets no code, or one this JobManager does not know:
		// a plain decline, message kept.
		{weirpb.DeclineReason_DECLINE_REASON_UNSPECIFIED, "boom", "CHECKPOINT_DECLINED", "boom"},
		{weirpb.DeclineReason(99), "boom", "CHECKPOINT_DECLINED", "unknown decline reason 99: boom"},
		{weirpb.DeclineReason(-1), "", "CHECKPOINT_DECLINED", "unknown decline reason -1: "},
		// The text is no longer parsed.
		{weirpb.DeclineReason_DECLINE_REASON_UNSPECIFIED, "CHECKPOINT_DECLINED_TASK_NOT_READY: x", "CHECKPOINT_DECLINED", "CHECKPOINT_DECLINED_TASK_NOT_READY: x"},
	} {
		r, msg := declineFailureReason(tc.code, tc.msg)
		if string(r) != tc.reason || msg != tc.out {
			t.Errorf("declineFailureReason(%v, %q) = %s, %q; want %s, %q", tc.code, tc.msg, r, msg, tc.reason, tc.out)
		}
	}
	// Every reason of the enum but UNSPECIFIED is in the table, once.
	seen := map[coordinator.FailureReason]bool{}
	for n := range weirpb.DeclineReason_name {
		code := weirpb.DeclineReason(n)
		r, ok := declineFailureReasons[code]
		if ok == (code == weirpb.DeclineReason_DECLINE_REASON_UNSPECIFIED) {
			t.Errorf("%v: in the table %v", code, ok)
		}
		if ok && seen[r] {
			t.Errorf("%v: %s twice in the table", code, r)
		}
		seen[r] = true
	}
}

// The coordinator's topology: one entry per edge, forward or all-to-all.
func TestCoordinatorTopology(t *testing.T) {
	vs := []*jobgraph.JobVertex{
		{Index: 0, Parallelism: 2},
		{Index: 1, Parallelism: 2, Inputs: []jobgraph.VertexInput{{FromVertex: 0, Partition: jobgraph.Forward}}},
		{Index: 2, Parallelism: 1, Inputs: []jobgraph.VertexInput{
			{FromVertex: 0, Partition: jobgraph.Hash}, {FromVertex: 1, Partition: jobgraph.Rebalance}, {FromVertex: 0, Partition: jobgraph.Broadcast}}},
	}
	var got []string
	for i, v := range coordinatorTopology(vs) {
		got = append(got, fmt.Sprintf("%d x%d <- %v", i, v.Parallelism, v.Inputs))
	}
	wantStrings(t, "vertices", got, []string{
		"0 x2 <- []",
		"1 x2 <- [{0 true}]",
		"2 x1 <- [{0 false} {1 false} {0 false}]",
	})
}
