package jobmanager

import (
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/proto/weirpb"
)

// counter returns the value of a counter with exactly the given labels.
// metric is the value of the counter or gauge name whose labels are exactly
// labels.
func (c *cluster) metric(name string, labels map[string]string) float64 {
	c.t.Helper()
	v, ok := c.lookupMetric(name, labels)
	if !ok {
		c.t.Fatalf("no metric %s%v", name, labels)
	}
	return v
}

// lookupMetric finds the series of name that has labels (and maybe more).
func (c *cluster) lookupMetric(name string, labels map[string]string) (float64, bool) {
	c.t.Helper()
	mfs, err := c.reg.Gather()
	if err != nil {
		c.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// A task failure restarts the job: the other tasks are canceled, and once
// all are, every task is redeployed with its next attempt and the state of
// the latest completed checkpoint. A new coordinator goes on with the next
// checkpoint id; the job keeps one checkpoint history.
func TestFailoverRestoresLatestCheckpoint(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	dir := t.TempDir()
	c, a, id, tdds := cpCluster(t, zap.New(core), fmt.Sprintf(`  execution.checkpointing.interval: 20ms
  execution.checkpointing.dir: %s
  restart-strategy.type: fixed-delay
  restart-strategy.fixed-delay.attempts: 1
  restart-strategy.fixed-delay.delay: 10ms`, dir))
	all := []string{"0/0#0", "0/1#0", "1/0#0", "1/1#0", "1/2#0"}

	wantStrings(t, "triggers of checkpoint 1", collect(t, a.triggered, 2), []string{"0/0#0 1", "0/1#0 1"})
	src0, map0 := inline(snapshot.KindOperator, "offset=10"), inline(snapshot.KindOperator, "m0")
	src1, pending := inline(snapshot.KindOperator, "offset=11"), inline(snapshot.KindSinkPending, "part-1")
	a.ack(tdds["0/0#0"].Execution, 1, &snapshot.TaskState{Operators: map[string][]snapshot.StateObject{"src": {src0}, "map": {map0}}})
	a.ack(tdds["0/1#0"].Execution, 1, &snapshot.TaskState{Operators: map[string][]snapshot.StateObject{"src": {src1}}})
	a.ack(tdds["1/0#0"].Execution, 1, &snapshot.TaskState{})
	a.ack(tdds["1/1#0"].Execution, 1, &snapshot.TaskState{Operators: map[string][]snapshot.StateObject{"sink": {pending}}})
	a.ack(tdds["1/2#0"].Execution, 1, &snapshot.TaskState{})
	cp1 := c.waitCheckpoint(id, 1, "COMPLETED")
	// Checkpoint 2 is pending when the job fails: it is aborted.
	wantStrings(t, "triggers of checkpoint 2", collect(t, a.triggered, 2), []string{"0/0#0 2", "0/1#0 2"})

	a.report(tdds["1/0#0"].Execution, "FAILED", "boom")
	c.waitState(id, "RESTARTING", "sink subtask 0 failed: boom")
	expect(t, a.canceled, "0/0#0", "0/1#0", "1/1#0", "1/2#0")
	c.waitCheckpoint(id, 2, "FAILED")
	for _, k := range all {
		if k != "1/0#0" {
			a.report(tdds[k].Execution, "CANCELED", "")
		}
	}

	next := a.receive(5)
	path1 := filepath.Join(dir, id, "chk-1")
	md, err := snapshot.LoadMetadata(t.Context(), path1)
	if err != nil {
		t.Fatal(err)
	}
	op := func(id string) *snapshot.OperatorState {
		for i := range md.Operators {
			if md.Operators[i].ID == id {
				return &md.Operators[i]
			}
		}
		t.Fatalf("no operator %s in checkpoint 1", id)
		return nil
	}
	chain := &snapshot.TaskRestore{CheckpointID: 1, Location: path1, Operators: map[string]*snapshot.OperatorState{"src": op("src"), "map": op("map")}}
	sink := &snapshot.TaskRestore{CheckpointID: 1, Location: path1, Operators: map[string]*snapshot.OperatorState{"sink": op("sink")}}
	for k, want := range map[string]*snapshot.TaskRestore{"0/0#1": chain, "0/1#1": chain, "1/0#1": sink, "1/1#1": sink, "1/2#1": sink} {
		tdd := next[k]
		if tdd == nil {
			t.Fatalf("no deployment of %s: %v", k, next)
		}
		got := readRestore(t, tdd.RestoreState, want)
		if tdd.RestoreCheckpointId != 1 || !reflect.DeepEqual(got, want) {
			t.Fatalf("restore of %s (checkpoint %d):\n%+v\nwant:\n%+v", k, tdd.RestoreCheckpointId, got, want)
		}
	}
	// The restored state is what the tasks acknowledged.
	if s := op("map").Subtasks[0].State; len(s) != 1 || string(s[0].Inline) != "m0" {
		t.Fatalf("map state in checkpoint 1: %+v", s)
	}

	// Reports of the old attempts are ignored; the new ones run.
	a.report(tdds["1/0#0"].Execution, "FAILED", "late")
	for _, k := range []string{"0/0#1", "0/1#1", "1/0#1", "1/1#1", "1/2#1"} {
		a.report(next[k].Execution, "RUNNING", "")
	}
	d := c.waitState(id, "RUNNING", "")
	if d.Restarts != 1 || len(d.Exceptions) != 1 || d.Exceptions[0].Task != "sink[0]" || d.Exceptions[0].Message != "boom" {
		t.Fatalf("job after the restart: restarts %d, exceptions %v", d.Restarts, d.Exceptions)
	}
	eventually(t, func() string {
		if n := logs.FilterMessage("job recovered").Len(); n != 1 {
			return fmt.Sprintf("%d job recovered log lines", n)
		}
		return ""
	})
	m := logs.FilterMessage("job recovered").All()[0].ContextMap()
	if m["job"] != id || m["restored_checkpoint"] != int64(1) || m["restart_delay"] == nil || m["deploy"] == nil || m["failure_time"] == nil || m["detected"] == nil {
		t.Fatalf("job recovered log line: %v", m)
	}
	if got := c.metric("weir_job_restarts_total", map[string]string{"job_id": id}); got != 1 {
		t.Errorf("job_restarts_total = %v", got)
	}
	if got := c.metric("weir_job_restores_total", map[string]string{"job_id": id, "from": "checkpoint"}); got != 1 {
		t.Errorf("restores_total{from=checkpoint} = %v", got)
	}
	if got := c.metric("weir_job_restores_total", map[string]string{"job_id": id, "from": "scratch"}); got != 0 {
		t.Errorf("restores_total{from=scratch} = %v", got)
	}
	if got := c.metric("weir_job_last_restore_timestamp_seconds", map[string]string{"job_id": id}); got <= 0 {
		t.Errorf("last_restore_timestamp_seconds = %v", got)
	}

	// The new execution's coordinator goes on with the next id, triggers
	// the new attempts, and ignores the old ones.
	wantStrings(t, "triggers of checkpoint 3", collect(t, a.triggered, 2), []string{"0/0#1 3", "0/1#1 3"})
	a.ack(tdds["0/0#0"].Execution, 3, &snapshot.TaskState{})
	for _, k := range []string{"0/0#1", "0/1#1", "1/0#1", "1/1#1", "1/2#1"} {
		a.ack(next[k].Execution, 3, &snapshot.TaskState{})
	}
	c.waitCheckpoint(id, 3, "COMPLETED")
	d = c.job(id)
	if cs := d.Checkpoints; cs.Completed != 2 || cs.Failed != 1 || cs.Latest.GetId() != 3 {
		t.Fatalf("checkpoint stats across the restart: %v", cs)
	}
	var history []string
	for _, k := range []int64{1, 2, 3} {
		cp := c.checkpoint(id, k)
		history = append(history, fmt.Sprintf("%d %s", k, cp.GetStatus()))
	}
	wantStrings(t, "history", history, []string{"1 COMPLETED", "2 FAILED", "3 COMPLETED"})
	if cp := c.checkpoint(id, 1); cp.TriggerTimeUnixMs != cp1.TriggerTimeUnixMs || cp.Path != path1 {
		t.Fatalf("checkpoint 1 after the restart: %v, was %v", cp, cp1)
	}
}

// The latest checkpoint is restored with its times in `weir status` when
// the new execution has not completed one yet.
func TestFailoverStatusKeepsLatestCheckpoint(t *testing.T) {
	dir := t.TempDir()
	c, a, id, tdds := cpCluster(t, nil, fmt.Sprintf(`  execution.checkpointing.interval: 20ms
  execution.checkpointing.dir: %s
  restart-strategy.type: fixed-delay
  restart-strategy.fixed-delay.delay: 0s`, dir))
	all := []string{"0/0#0", "0/1#0", "1/0#0", "1/1#0", "1/2#0"}
	collect(t, a.triggered, 2)
	for _, k := range all {
		a.ack(tdds[k].Execution, 1, &snapshot.TaskState{Operators: map[string][]snapshot.StateObject{}})
	}
	cp1 := c.waitCheckpoint(id, 1, "COMPLETED")
	a.report(tdds["0/0#0"].Execution, "FAILED", "boom")
	for _, k := range all[1:] {
		a.report(tdds[k].Execution, "CANCELED", "")
	}
	a.receive(5)
	d := c.waitState(id, "RUNNING", "")
	if l := d.Checkpoints.Latest; l.GetId() != 1 || l.TriggerTimeUnixMs != cp1.TriggerTimeUnixMs || l.DurationMs != cp1.DurationMs || l.Path != cp1.Path {
		t.Fatalf("latest checkpoint after the restart: %v, want %v", l, cp1)
	}
}

// A lost TaskManager's tasks are terminal at once; a job without
// checkpointing restarts from scratch on the TaskManagers left, and the
// strategy gives up at the next failure.
func TestFailoverTaskManagerLost(t *testing.T) {
	c := startJM(t, nil, nil)
	a := startTM(t, c.jm.Addr(), "tm-a", 1)
	id := c.submit(chainJob(1) + `config:
  restart-strategy.type: fixed-delay
  restart-strategy.fixed-delay.attempts: 1
  restart-strategy.fixed-delay.delay: 0s
`)
	first := a.receive(1)["0/0#0"]
	a.report(first.Execution, "RUNNING", "")
	b := startTM(t, c.jm.Addr(), "tm-b", 1)
	a.killHeartbeats()
	lost := "TaskManager tm-a (data " + a.dataAddr + ") lost: heartbeat stream closed"

	second := b.receive(1)["0/0#1"]
	if len(second.RestoreState) != 0 || second.RestoreCheckpointId != 0 {
		t.Fatalf("restart without checkpointing restores %q from %d", second.RestoreState, second.RestoreCheckpointId)
	}
	d := c.waitState(id, "RUNNING", "")
	if d.Restarts != 1 || len(d.Exceptions) != 1 || d.Exceptions[0].Task != "tm-a" || d.Exceptions[0].Message != lost {
		t.Fatalf("job after the restart: restarts %d, exceptions %v", d.Restarts, d.Exceptions)
	}
	if got := c.metric("weir_job_restores_total", map[string]string{"job_id": id, "from": "scratch"}); got != 1 {
		t.Errorf("restores_total{from=scratch} = %v", got)
	}

	b.report(second.Execution, "FAILED", "boom")
	want := "restart strategy exhausted (fixed-delay (attempts 1, delay 0s)): src -> map -> sink subtask 0 failed: boom"
	d = c.waitState(id, "FAILED", want)
	var exc []string
	for _, e := range d.Exceptions {
		exc = append(exc, e.Task+": "+e.Message)
	}
	wantStrings(t, "exceptions", exc, []string{"src -> map -> sink[0]: boom", "tm-a: " + lost})
}

// Canceling a RESTARTING job ends it without a redeployment.
func TestFailoverCancelWhileRestarting(t *testing.T) {
	c := startJM(t, nil, nil)
	a := startTM(t, c.jm.Addr(), "tm-a", 1)
	id := c.submit(chainJob(1) + `config:
  restart-strategy.type: fixed-delay
  restart-strategy.fixed-delay.delay: 1h
`)
	first := a.receive(1)["0/0#0"]
	a.report(first.Execution, "FAILED", "boom")
	c.waitState(id, "RESTARTING", "src -> map -> sink subtask 0 failed: boom")
	if _, err := c.api.CancelJob(t.Context(), &weirpb.CancelJobRequest{JobId: id}); err != nil {
		t.Fatal(err)
	}
	c.waitState(id, "CANCELED", "")
	expect(t, a.released, id)
	select {
	case tdd := <-a.submitted:
		t.Fatalf("redeployed after cancel: %v", tdd.Execution)
	default:
	}
}

// readRestore decodes a descriptor's restore state, which must point at its
// checkpoint's _metadata, and reads that as a TaskManager whose chain has
// the operators of want does.
func readRestore(t *testing.T, raw []byte, want *snapshot.TaskRestore) *snapshot.TaskRestore {
	t.Helper()
	r, err := snapshot.DecodeTaskRestore(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !r.FromMetadata || len(r.Operators) != 0 {
		t.Fatalf("restore state %s: want a pointer to the checkpoint's _metadata", raw)
	}
	md, err := snapshot.LoadMetadata(t.Context(), r.Location)
	if err != nil {
		t.Fatal(err)
	}
	if md.CheckpointID != r.CheckpointID {
		t.Fatalf("%s holds checkpoint %d, the restore says %d", r.Location, md.CheckpointID, r.CheckpointID)
	}
	var ops []string
	for id := range want.Operators {
		ops = append(ops, id)
	}
	return md.TaskRestore(ops)
}
