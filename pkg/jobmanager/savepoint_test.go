package jobmanager

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/proto/weirpb"
)

var allTasks = []string{"0/0#0", "0/1#0", "1/0#0", "1/1#0", "1/2#0"}

// taskStorage is the checkpoint storage as a TaskManager opens it; with
// FileInlineThreshold -1 every piece of state is a file of its own.
func taskStorage(t *testing.T, dir string) snapshot.Storage {
	t.Helper()
	s, err := snapshot.OpenWithOptions(dir, zap.NewNop(), snapshot.Options{FileInlineThreshold: -1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeFile writes data as a state file of checkpoint id, as a task does.
func writeFile(t *testing.T, s snapshot.Storage, job string, id int64, kind snapshot.StateKind, name, data string) snapshot.StateObject {
	t.Helper()
	loc, err := s.CheckpointLocation(job, id)
	if err != nil {
		t.Fatal(err)
	}
	w, err := loc.CreateStateFile(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	h, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return snapshot.StateObject{Kind: kind, StateHandle: h}
}

// asyncSavepoint runs a TriggerSavepoint (stop false) or StopJob call in
// the background; the channel yields its path or error.
type spResult struct {
	path string
	err  error
}

func (c *cluster) asyncSavepoint(job, target string, stop, drain bool) chan spResult {
	ch := make(chan spResult, 1)
	go func() {
		if stop {
			r, err := c.api.StopJob(context.Background(), &weirpb.StopJobRequest{JobId: job, TargetDirectory: target, Drain: drain})
			ch <- spResult{r.GetPath(), err}
			return
		}
		r, err := c.api.TriggerSavepoint(context.Background(), &weirpb.TriggerSavepointRequest{JobId: job, TargetDirectory: target})
		ch <- spResult{r.GetPath(), err}
	}()
	return ch
}

func wait(t *testing.T, ch chan spResult) spResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no answer to the savepoint call after 5s")
	}
	return spResult{}
}

// A savepoint of a job without periodic checkpointing: triggered at the
// sources (aligned, not stop), the tasks write into chk-<id> and
// acknowledge; the JobManager copies the files into a new savepoint
// directory under savepoint-dir, writes _metadata with relative paths,
// deletes chk-<id> and answers the path. The job keeps running, and the
// history lists the savepoint.
func TestSavepointCompletes(t *testing.T) {
	root := t.TempDir()
	cpDir, spDir := filepath.Join(root, "checkpoints"), filepath.Join(root, "savepoints")
	c, a, id, tdds := cpCluster(t, nil, fmt.Sprintf(`  execution.checkpointing.dir: %s
  execution.checkpointing.savepoint-dir: %s`, cpDir, spDir))
	store := taskStorage(t, cpDir)

	res := c.asyncSavepoint(id, "", false, false)
	wantStrings(t, "savepoint triggers", collect(t, a.savepoints, 2), []string{"0/0#0 1 stop=false drain=false", "0/1#0 1 stop=false drain=false"})
	src0 := writeFile(t, store, id, 1, snapshot.KindOperator, "src-0", "offset=10")
	src1 := writeFile(t, store, id, 1, snapshot.KindOperator, "src-1", "offset=11")
	pending := writeFile(t, store, id, 1, snapshot.KindSinkPending, "sink-1", "part-1")
	small := inline(snapshot.KindOperator, "m0")
	a.ack(tdds["0/0#0"].Execution, 1, &snapshot.TaskState{Operators: map[string][]snapshot.StateObject{"src": {src0}, "map": {small}}})
	a.ack(tdds["0/1#0"].Execution, 1, &snapshot.TaskState{Operators: map[string][]snapshot.StateObject{"src": {src1}}})
	a.ack(tdds["1/0#0"].Execution, 1, &snapshot.TaskState{})
	a.ack(tdds["1/1#0"].Execution, 1, &snapshot.TaskState{Operators: map[string][]snapshot.StateObject{"sink": {pending}}})
	a.ack(tdds["1/2#0"].Execution, 1, &snapshot.TaskState{})

	r := wait(t, res)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(spDir) + `/savepoint-` + id[:6] + `-[0-9a-f]{12}$`).MatchString(r.path) {
		t.Fatalf("savepoint path %q", r.path)
	}
	md, err := snapshot.LoadMetadata(t.Context(), r.path)
	if err != nil {
		t.Fatal(err)
	}
	info := c.checkpoint(id, 1)
	want := &snapshot.Metadata{
		JobID: id, JobName: "cp", CheckpointID: 1, TimestampMs: info.TriggerTimeUnixMs, Savepoint: true, MaxParallelism: 64, Dir: r.path,
		Operators: []snapshot.OperatorState{
			{ID: "map", Type: "jmtest-map", Parallelism: 2, Subtasks: []snapshot.SubtaskState{{Subtask: 0, State: []snapshot.StateObject{small}}, {Subtask: 1}}},
			{ID: "sink", Type: "jmtest-sink", Parallelism: 3, Subtasks: []snapshot.SubtaskState{{Subtask: 0}, {Subtask: 1, State: []snapshot.StateObject{pending}}, {Subtask: 2}}},
			{ID: "src", Type: "jmtest-source", Parallelism: 2, Subtasks: []snapshot.SubtaskState{{Subtask: 0, State: []snapshot.StateObject{src0}}, {Subtask: 1, State: []snapshot.StateObject{src1}}}},
		},
	}
	if !reflect.DeepEqual(md, want) {
		t.Fatalf("_metadata:\n%+v\nwant:\n%+v", md, want)
	}
	// Self-contained: the files are in the savepoint, under their names.
	entries, _ := os.ReadDir(r.path)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	wantStrings(t, "savepoint files", names, sortedCopy([]string{"_metadata", src0.Path, src1.Path, pending.Path}))
	for _, o := range []snapshot.StateObject{src0, pending} {
		if strings.Contains(o.Path, "/") {
			t.Fatalf("state path %q is not relative", o.Path)
		}
	}
	// The temporary checkpoint directory is gone.
	eventually(t, func() string {
		if exists(filepath.Join(cpDir, id, "chk-1")) {
			return "chk-1 still exists"
		}
		return ""
	})
	if info.Status != "COMPLETED" || !info.Savepoint || info.Path != r.path || info.SizeBytes != int64(len("offset=10offset=11part-1m0")) {
		t.Fatalf("history entry: %v", info)
	}
	if d := c.job(id); d.State != "RUNNING" {
		t.Fatalf("job is %s after a savepoint", d.State)
	}
	// A savepoint commits nothing: the tasks hear nothing more of it.
	if len(a.completed) != 0 || len(a.aborted) != 0 {
		t.Fatalf("notifications after a savepoint: %d complete, %d aborted", len(a.completed), len(a.aborted))
	}

	// An explicit target directory wins over savepoint-dir; ids go on.
	other := filepath.Join(root, "other")
	res = c.asyncSavepoint(id, other, false, false)
	wantStrings(t, "savepoint triggers", collect(t, a.savepoints, 2), []string{"0/0#0 2 stop=false drain=false", "0/1#0 2 stop=false drain=false"})
	for _, k := range allTasks {
		a.ack(tdds[k].Execution, 2, &snapshot.TaskState{})
	}
	if r := wait(t, res); r.err != nil || filepath.Dir(r.path) != other {
		t.Fatalf("savepoint to %s: %v", other, r)
	}
}

// A failed savepoint (its directory cannot be created, a task declines,
// it expires) answers the cause and leaves the job RUNNING (a decline
// within the tolerable failures); what the tasks wrote is deleted. Without a directory, or for a job not RUNNING, nothing
// is triggered.
func TestSavepointFails(t *testing.T) {
	root := t.TempDir()
	cpDir := filepath.Join(root, "checkpoints")
	// As in Flink, a task declining a savepoint counts toward the
	// tolerable failures (0 by default: the job would fail over).
	c, a, id, tdds := cpCluster(t, nil, fmt.Sprintf(`  execution.checkpointing.dir: %s
  execution.checkpointing.timeout: 1s
  execution.checkpointing.tolerable-failed-checkpoints: 5`, cpDir))
	store := taskStorage(t, cpDir)

	_, err := c.api.TriggerSavepoint(context.Background(), &weirpb.TriggerSavepointRequest{JobId: id})
	if want := "no savepoint directory: pass one (weir savepoint JOBID DIR) or set execution.checkpointing.savepoint-dir"; status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != want {
		t.Fatalf("savepoint without a directory = %v", err)
	}
	_, err = c.api.StopJob(context.Background(), &weirpb.StopJobRequest{JobId: id})
	if want := "no savepoint directory: pass one (weir stop --savepoint-path DIR JOBID) or set execution.checkpointing.savepoint-dir"; status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != want {
		t.Fatalf("stop without a directory = %v", err)
	}

	// A file where the savepoint directory must go.
	notADir := filepath.Join(root, "file")
	if err := os.WriteFile(notADir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := c.asyncSavepoint(id, notADir, false, false)
	collect(t, a.savepoints, 2)
	src0 := writeFile(t, store, id, 1, snapshot.KindOperator, "src-0", "offset=10")
	a.ack(tdds["0/0#0"].Execution, 1, &snapshot.TaskState{Operators: map[string][]snapshot.StateObject{"src": {src0}}})
	for _, k := range allTasks[1:] {
		a.ack(tdds[k].Execution, 1, &snapshot.TaskState{})
	}
	r := wait(t, res)
	prefix := "savepoint 1 failed: IO_EXCEPTION: write metadata of checkpoint 1: create savepoint directory in " + notADir + ": "
	if status.Code(r.err) != codes.Aborted || !strings.HasPrefix(status.Convert(r.err).Message(), prefix) {
		t.Fatalf("savepoint into a file = %v, want Aborted %q...", r.err, prefix)
	}
	eventually(t, func() string {
		if exists(filepath.Join(cpDir, id, "chk-1")) {
			return "chk-1 of the failed savepoint still exists"
		}
		return ""
	})
	if info := c.checkpoint(id, 1); info.Status != "FAILED" || !info.Savepoint {
		t.Fatalf("history entry: %v", info)
	}

	// A task declines.
	res = c.asyncSavepoint(id, filepath.Join(root, "sp"), false, false)
	collect(t, a.savepoints, 2)
	a.decline(tdds["0/1#0"].Execution, 2, weirpb.DeclineReason_DECLINE_REASON_DECLINED, "snapshot of operator src: disk full")
	r = wait(t, res)
	if want := "savepoint 2 failed: CHECKPOINT_DECLINED: task 0/1 declined checkpoint 2: snapshot of operator src: disk full"; status.Code(r.err) != codes.Aborted || status.Convert(r.err).Message() != want {
		t.Fatalf("declined savepoint = %v, want %q", r.err, want)
	}

	// Nobody acknowledges: it expires.
	res = c.asyncSavepoint(id, filepath.Join(root, "sp"), false, false)
	collect(t, a.savepoints, 2)
	r = wait(t, res)
	if want := "savepoint 3 failed: CHECKPOINT_EXPIRED: checkpoint 3 expired before completing"; status.Code(r.err) != codes.DeadlineExceeded || status.Convert(r.err).Message() != want {
		t.Fatalf("expired savepoint = %v, want %q", r.err, want)
	}
	if d := c.job(id); d.State != "RUNNING" {
		t.Fatalf("job is %s after failed savepoints", d.State)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "sp")); len(entries) != 0 {
		t.Fatalf("failed savepoints left %v", entries)
	}

	// A job that is not RUNNING.
	if _, err := c.api.CancelJob(context.Background(), &weirpb.CancelJobRequest{JobId: id}); err != nil {
		t.Fatal(err)
	}
	for _, stop := range []bool{false, true} {
		r := wait(t, c.asyncSavepoint(id, root, stop, false))
		verb := "take a savepoint"
		if stop {
			verb = "be stopped with a savepoint"
		}
		if want := fmt.Sprintf("job %s is CANCELING: only a RUNNING job can %s", id, verb); status.Code(r.err) != codes.FailedPrecondition || status.Convert(r.err).Message() != want {
			t.Fatalf("savepoint of a canceling job = %v, want %q", r.err, want)
		}
	}
}

// Stop-with-savepoint: the sources are triggered with stop (and drain);
// once the savepoint is complete the call answers its path and the tasks
// hear it is complete, so they finish and the job ends FINISHED. The
// savepoint survives the end of the job and its checkpoint clean-up.
func TestStopWithSavepoint(t *testing.T) {
	root := t.TempDir()
	cpDir, spDir := filepath.Join(root, "checkpoints"), filepath.Join(root, "savepoints")
	c, a, id, tdds := cpCluster(t, nil, fmt.Sprintf(`  execution.checkpointing.interval: 1h
  execution.checkpointing.dir: %s
  state.savepoints.dir: %s`, cpDir, spDir))
	store := taskStorage(t, cpDir)

	res := c.asyncSavepoint(id, "", true, true)
	wantStrings(t, "stop triggers", collect(t, a.savepoints, 2), []string{"0/0#0 1 stop=true drain=true", "0/1#0 1 stop=true drain=true"})
	pending := writeFile(t, store, id, 1, snapshot.KindSinkPending, "sink-0", "part-0")
	a.ack(tdds["1/0#0"].Execution, 1, &snapshot.TaskState{Operators: map[string][]snapshot.StateObject{"sink": {pending}}})
	for _, k := range allTasks {
		if k != "1/0#0" {
			a.ack(tdds[k].Execution, 1, &snapshot.TaskState{})
		}
	}
	r := wait(t, res)
	if r.err != nil || filepath.Dir(r.path) != spDir {
		t.Fatalf("StopJob = %v, want a savepoint in %s", r, spDir)
	}
	wantStrings(t, "notifications", collect(t, a.completed, 5), []string{"0/0#0 1", "0/1#0 1", "1/0#0 1", "1/1#0 1", "1/2#0 1"})
	for _, k := range allTasks {
		a.report(tdds[k].Execution, "FINISHED", "")
	}
	c.waitState(id, "FINISHED", "")
	expect(t, a.released, id)
	md, err := snapshot.LoadMetadata(t.Context(), r.path)
	if err != nil || !md.Savepoint || len(md.Operators) != 3 {
		t.Fatalf("savepoint after the job finished: %v, %v", md, err)
	}
	if info := c.checkpoint(id, 1); info.Status != "COMPLETED" || !info.Savepoint || info.Path != r.path {
		t.Fatalf("history entry: %v", info)
	}
}

// DisposeSavepoint deletes exactly a savepoint and refuses anything else.
func TestDisposeSavepoint(t *testing.T) {
	root := t.TempDir()
	c := startJM(t, nil, nil)
	sp := writeSavepoint(t, root, "a1b2c3d4e5f60718", 64, nil)
	keep := filepath.Join(root, "keep")
	if err := os.MkdirAll(keep, 0o755); err != nil {
		t.Fatal(err)
	}
	s := taskStorage(t, root)
	chk, _ := s.CheckpointLocation("job1", 3)
	if _, err := chk.WriteMetadata(t.Context(), &snapshot.Metadata{JobID: "job1", CheckpointID: 3, MaxParallelism: 8}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		code codes.Code
		msg  string
	}{
		{keep, codes.InvalidArgument, "dispose savepoint: not a weir checkpoint or savepoint: " + keep + ": no _metadata"},
		{filepath.Join(root, "nonexistent"), codes.InvalidArgument, "dispose savepoint: not a weir checkpoint or savepoint: " + filepath.Join(root, "nonexistent") + ": does not exist"},
		{chk.Path(), codes.FailedPrecondition, "dispose savepoint: " + chk.Path() + " holds checkpoint 3 of job job1, not a savepoint; refusing to delete it"},
		{"", codes.InvalidArgument, "dispose savepoint: no path given"},
	} {
		_, err := c.api.DisposeSavepoint(context.Background(), &weirpb.DisposeSavepointRequest{Path: tc.path})
		if status.Code(err) != tc.code || status.Convert(err).Message() != tc.msg {
			t.Errorf("DisposeSavepoint(%q) = %v, want %v %q", tc.path, err, tc.code, tc.msg)
		}
	}
	if _, err := c.api.DisposeSavepoint(context.Background(), &weirpb.DisposeSavepointRequest{Path: sp}); err != nil {
		t.Fatal(err)
	}
	if exists(sp) || !exists(keep) || !exists(filepath.Join(chk.Path(), "_metadata")) {
		t.Fatalf("after dispose: savepoint %t, keep %t, checkpoint %t", exists(sp), exists(keep), exists(chk.Path()))
	}
}

// writeSavepoint writes a savepoint (id 7) of a cpJob-shaped job into dir:
// src and sink with state in files, map with none; types overrides
// operator types by id.
func writeSavepoint(t *testing.T, dir, job string, maxP int, types map[string]string) string {
	t.Helper()
	s := taskStorage(t, filepath.Join(dir, "checkpoints"))
	loc, err := s.SavepointLocation(t.Context(), filepath.Join(dir, "savepoints"), job)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := loc.CreateStateFile(t.Context(), "src")
	_, _ = w.Write([]byte("offset=99"))
	h, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	typ := func(id, def string) string {
		if ty, ok := types[id]; ok {
			return ty
		}
		return def
	}
	obj := []snapshot.StateObject{{Kind: snapshot.KindOperator, StateHandle: h}}
	md := &snapshot.Metadata{JobID: job, JobName: "cp", CheckpointID: 7, Savepoint: true, MaxParallelism: maxP,
		Operators: []snapshot.OperatorState{
			{ID: "src", Type: typ("src", "jmtest-source"), Parallelism: 2, Subtasks: []snapshot.SubtaskState{{Subtask: 0, State: obj}, {Subtask: 1}}},
			{ID: "map", Type: typ("map", "jmtest-map"), Parallelism: 2, Subtasks: []snapshot.SubtaskState{{Subtask: 0}, {Subtask: 1}}},
			{ID: "sink", Type: typ("sink", "jmtest-sink"), Parallelism: 1, Subtasks: []snapshot.SubtaskState{{Subtask: 0, State: []snapshot.StateObject{inline(snapshot.KindSinkPending, "part-9")}}}},
		}}
	if _, err := loc.WriteMetadata(t.Context(), md); err != nil {
		t.Fatal(err)
	}
	return loc.Path()
}

// A job started from a savepoint: its first deployment restores from the
// savepoint's directory (rescaled: sink had parallelism 1), its checkpoint
// ids go on above the savepoint's, a restart before its first checkpoint
// restores from the savepoint again, and no checkpoint clean-up ever
// deletes the savepoint.
func TestSubmitFromSavepoint(t *testing.T) {
	root := t.TempDir()
	sp := writeSavepoint(t, root, "0a1b2c3d4e5f6071", 64, nil)
	c := startJM(t, nil, nil)
	a := startTM(t, c.jm.Addr(), "tm-a", 3)
	resp, err := c.api.SubmitJob(context.Background(), &weirpb.SubmitJobRequest{JobSpec: []byte(cpJob(fmt.Sprintf(`  execution.checkpointing.interval: 20ms
  execution.checkpointing.dir: %s
  restart-strategy.type: fixed-delay
  restart-strategy.fixed-delay.delay: 0s`, filepath.Join(root, "checkpoints")))), FileName: "job.yaml", FromSavepoint: sp})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.JobId
	md, err := snapshot.LoadMetadata(t.Context(), sp)
	if err != nil {
		t.Fatal(err)
	}
	chain := &snapshot.TaskRestore{CheckpointID: 7, Location: sp, Operators: map[string]*snapshot.OperatorState{"src": &md.Operators[2]}}
	sink := &snapshot.TaskRestore{CheckpointID: 7, Location: sp, Operators: map[string]*snapshot.OperatorState{"sink": &md.Operators[1]}}
	checkRestore := func(tdds map[string]*weirpb.TaskDeploymentDescriptor, attempt int) {
		t.Helper()
		for _, k := range []string{"0/0", "0/1", "1/0", "1/1", "1/2"} {
			k = fmt.Sprintf("%s#%d", k, attempt)
			want := sink
			if k[0] == '0' {
				want = chain
			}
			got := readRestore(t, tdds[k].RestoreState, want)
			if tdds[k].RestoreCheckpointId != 7 || !reflect.DeepEqual(got, want) {
				t.Fatalf("restore of %s (checkpoint %d):\n%+v\nwant:\n%+v", k, tdds[k].RestoreCheckpointId, got, want)
			}
		}
	}
	tdds := a.receive(5)
	checkRestore(tdds, 0)
	for _, k := range allTasks {
		a.report(tdds[k].Execution, "RUNNING", "")
	}
	// Checkpoint ids go on above the savepoint's.
	wantStrings(t, "first triggers", collect(t, a.triggered, 2), []string{"0/0#0 8", "0/1#0 8"})

	// A failure before a checkpoint completed restores the savepoint again.
	a.report(tdds["1/0#0"].Execution, "FAILED", "boom")
	expect(t, a.canceled, "0/0#0", "0/1#0", "1/1#0", "1/2#0")
	for _, k := range allTasks[:2] {
		a.report(tdds[k].Execution, "CANCELED", "")
	}
	for _, k := range allTasks[3:] {
		a.report(tdds[k].Execution, "CANCELED", "")
	}
	next := a.receive(5)
	checkRestore(next, 1)
	for _, k := range []string{"0/0#1", "0/1#1", "1/0#1", "1/1#1", "1/2#1"} {
		a.report(next[k].Execution, "RUNNING", "")
	}
	// The first checkpoint of the new execution subsumes the savepoint as
	// the restore point, without deleting it.
	n := sinkOrSourceTrigger(t, a.triggered)
	for _, k := range []string{"0/0#1", "0/1#1", "1/0#1", "1/1#1", "1/2#1"} {
		a.ack(next[k].Execution, n, &snapshot.TaskState{})
	}
	c.waitCheckpoint(id, n, "COMPLETED")
	if _, err := c.api.CancelJob(context.Background(), &weirpb.CancelJobRequest{JobId: id}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"0/0#1", "0/1#1", "1/0#1", "1/1#1", "1/2#1"} {
		a.report(next[k].Execution, "CANCELED", "")
	}
	c.waitState(id, "CANCELED", "")
	eventually(t, func() string {
		if exists(filepath.Join(root, "checkpoints", id, fmt.Sprintf("chk-%d", n))) {
			return "the canceled job's checkpoint still exists"
		}
		return ""
	})
	if _, err := snapshot.LoadMetadata(t.Context(), sp); err != nil {
		t.Fatalf("the savepoint after the job ended: %v", err)
	}
}

// sinkOrSourceTrigger returns the id of the next checkpoint triggered at
// both sources.
func sinkOrSourceTrigger(t *testing.T, ch chan string) int64 {
	t.Helper()
	got := collect(t, ch, 2)
	var id0, id1 int64
	fmt.Sscanf(got[0], "0/0#1 %d", &id0)
	fmt.Sscanf(got[1], "0/1#1 %d", &id1)
	if id0 == 0 || id0 != id1 {
		t.Fatalf("triggers %q", got)
	}
	return id0
}

// What a job is started from is checked at submission; nothing is stored
// or deployed for a job that fails.
func TestSubmitFromSavepointRejected(t *testing.T) {
	root := t.TempDir()
	c := startJM(t, nil, nil)
	a := startTM(t, c.jm.Addr(), "tm-a", 3)
	sp := writeSavepoint(t, filepath.Join(root, "a"), "0a1b2c3d4e5f6071", 64, nil)
	maxP := writeSavepoint(t, filepath.Join(root, "b"), "0a1b2c3d4e5f6071", 128, nil)
	typed := writeSavepoint(t, filepath.Join(root, "c"), "0a1b2c3d4e5f6071", 64, map[string]string{"src": "old-source", "map": "old-map"})
	truncated := filepath.Join(root, "truncated")
	_ = os.MkdirAll(truncated, 0o755)
	b, _ := os.ReadFile(filepath.Join(sp, "_metadata"))
	_ = os.WriteFile(filepath.Join(truncated, "_metadata"), b[:len(b)/2], 0o644)
	empty := filepath.Join(root, "empty")
	_ = os.MkdirAll(empty, 0o755)

	noSink := `name: nosink
parallelism: 2
max-parallelism: 64
operators:
- id: src
  type: jmtest-source
- id: out
  type: jmtest-sink
  input: src
`
	for _, tc := range []struct {
		job, path, msg string
	}{
		{noSink, sp, "the savepoint " + sp + " has state of operators the job does not have: sink; to start without that state, pass --allow-non-restored-state"},
		{cpJob("  execution.checkpointing.interval: 1h"), maxP, "the job's max-parallelism is 64 but the savepoint " + maxP + " was taken with max-parallelism 128: it cannot change for a job restored from state; set max-parallelism: 128"},
		{cpJob("  execution.checkpointing.interval: 1h"), typed, `operator "src" has type "old-source" in the savepoint ` + typed + ` but type "jmtest-source" in the job: its state cannot be restored into another type of operator (give the new operator a new id)`},
		{cpJob("  execution.checkpointing.interval: 1h"), truncated, "cannot restore from " + truncated + ": " + filepath.Join(truncated, "_metadata") + ": truncated _metadata: "},
		{cpJob("  execution.checkpointing.interval: 1h"), empty, empty + " is not a weir savepoint or checkpoint: no _metadata"},
		{cpJob("  execution.checkpointing.interval: 1h"), filepath.Join(root, "missing"), filepath.Join(root, "missing") + " is not a weir savepoint or checkpoint: does not exist"},
	} {
		_, err := c.api.SubmitJob(context.Background(), &weirpb.SubmitJobRequest{JobSpec: []byte(tc.job), FileName: "job.yaml", FromSavepoint: tc.path})
		if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), tc.msg) {
			t.Errorf("SubmitJob from %s = %v, want InvalidArgument %q", tc.path, err, tc.msg)
		}
	}
	if jobs, err := c.api.ListJobs(context.Background(), &weirpb.ListJobsRequest{}); err != nil || len(jobs.Jobs) != 0 {
		t.Fatalf("ListJobs = %v, %v; want none", jobs, err)
	}

	// With allow-non-restored-state the sink's state is dropped; src's is
	// restored; the new operator out starts empty.
	resp, err := c.api.SubmitJob(context.Background(), &weirpb.SubmitJobRequest{JobSpec: []byte(noSink), FileName: "job.yaml", FromSavepoint: sp, AllowNonRestoredState: true})
	if err != nil {
		t.Fatal(err)
	}
	tdds := a.receive(2)
	for _, k := range []string{"0/0#0", "0/1#0"} {
		got := readRestore(t, tdds[k].RestoreState, &snapshot.TaskRestore{Operators: map[string]*snapshot.OperatorState{"src": nil}})
		if got.Location != sp || len(got.Operators) != 1 || got.Operators["src"] == nil {
			t.Fatalf("restore of %s: %+v", k, got)
		}
	}
	if d := c.job(resp.JobId); d.State != "RUNNING" {
		t.Fatalf("job from savepoint: %s", d.State)
	}
	// The _metadata file itself is accepted too.
	if _, err := loadSavepoint(t.Context(), filepath.Join(sp, "_metadata")); err != nil {
		t.Fatal(err)
	}
}

func TestMatchSavepointStateless(t *testing.T) {
	// Operators without state may go away or change type freely.
	md := &snapshot.Metadata{MaxParallelism: 8, Operators: []snapshot.OperatorState{
		{ID: "gone", Type: "map", Parallelism: 1, Subtasks: []snapshot.SubtaskState{{Subtask: 0}}},
	}}
	if dropped, err := matchSavepoint(md, 8, nil, false); err != nil || len(dropped) != 0 {
		t.Fatalf("matchSavepoint = %v, %v", dropped, err)
	}
}

// In-flight data of an unaligned checkpoint restores at another
// parallelism, except on a broadcast edge; and only into the chain
// positions it was written at.
func TestMatchSavepointChannelStateRescale(t *testing.T) {
	md := func(aggGate int) *snapshot.Metadata {
		return &snapshot.Metadata{Dir: "/cp/job/chk-3", MaxParallelism: 8, Operators: []snapshot.OperatorState{
			{ID: "src", Type: "sequence", Parallelism: 2, Subtasks: []snapshot.SubtaskState{
				{Subtask: 0, State: []snapshot.StateObject{{Kind: snapshot.KindResultSubpartition, Channel: &snapshot.ChannelStateInfo{Gate: 1}}}},
				{Subtask: 1},
			}},
			{ID: "agg", Type: "aggregate", Parallelism: 2, Subtasks: []snapshot.SubtaskState{
				{Subtask: 0, State: []snapshot.StateObject{{Kind: snapshot.KindInputChannel, Channel: &snapshot.ChannelStateInfo{Gate: aggGate}}}},
				{Subtask: 1},
			}},
		}}
	}
	// src -> agg on two edges: hash (gate 0) and broadcast (gate 1).
	vertices := func(p int, chained bool) []*jobgraph.JobVertex {
		src := &jobgraph.Operator{ID: "src", Type: "sequence", Parallelism: 2}
		agg := &jobgraph.Operator{ID: "agg", Type: "aggregate", Parallelism: p}
		if chained {
			return []*jobgraph.JobVertex{{Operators: []*jobgraph.Operator{src, agg}, Parallelism: 2}}
		}
		return []*jobgraph.JobVertex{
			{Index: 0, Operators: []*jobgraph.Operator{src}, Parallelism: 2, Outputs: []jobgraph.VertexOutput{
				{OutputIndex: 0, ToVertex: 1, ToOperator: "agg", Partition: jobgraph.Hash, Key: "k"},
				{OutputIndex: 1, ToVertex: 1, ToOperator: "agg", InputIndex: 1, Partition: jobgraph.Broadcast},
			}},
			{Index: 1, Operators: []*jobgraph.Operator{agg}, Parallelism: p, Inputs: []jobgraph.VertexInput{
				{InputIndex: 0, FromVertex: 0, FromOperator: "src", Partition: jobgraph.Hash, Key: "k"},
				{InputIndex: 1, FromVertex: 0, FromOperator: "src", Partition: jobgraph.Broadcast},
			}},
		}
	}
	noBroadcastOut := func(m *snapshot.Metadata) *snapshot.Metadata {
		m.Operators[0].Subtasks[0].State[0].Channel.Gate = 0
		return m
	}
	for _, tc := range []struct {
		name string
		md   *snapshot.Metadata
		v    []*jobgraph.JobVertex
		want string
	}{
		{"same parallelism", md(1), vertices(2, false), ""},
		{"rescaled hash edge", noBroadcastOut(md(0)), vertices(3, false), ""},
		{"rescaled broadcast input", noBroadcastOut(md(1)), vertices(3, false),
			`/cp/job/chk-3 has in-flight data of the broadcast edge from "src" to "agg" (an unaligned checkpoint), which cannot be redistributed to another parallelism of "agg" (3, was 2); take a savepoint (always aligned) to rescale`},
		{"rescaled broadcast output", md(0), vertices(1, false),
			`/cp/job/chk-3 has in-flight data of the broadcast edge from "src" to "agg" (an unaligned checkpoint), which cannot be redistributed to another parallelism of "agg" (1, was 2); take a savepoint (always aligned) to rescale`},
		{"chain changed", noBroadcastOut(md(0)), vertices(2, true),
			`/cp/job/chk-3 has in-flight data of the output of operator "src" (an unaligned checkpoint), which is no longer the last operator of its chain; restore it with the job's chains unchanged, or take a savepoint (always aligned)`},
	} {
		_, err := matchSavepoint(tc.md, 8, tc.v, false)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || err.Error() != tc.want) {
			t.Errorf("%s: got %v\nwant %q", tc.name, err, tc.want)
		}
	}
}
