package taskmanager

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/ha"
	"github.com/weirstream/weir/proto/weirpb"
)

// fakeLeaders is a LeaderRetrieval whose leader the test sets, reported
// as *ha.Etcd reports it: the leader now, then each change.
type fakeLeaders struct {
	mu      sync.Mutex
	cur     ha.ObservedLeader
	changed chan struct{} // closed and replaced by set
}

func newFakeLeaders() *fakeLeaders { return &fakeLeaders{changed: make(chan struct{})} }

func (f *fakeLeaders) set(addr string, epoch int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cur = ha.ObservedLeader{Address: addr, Epoch: epoch, Revision: epoch}
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeLeaders) Observe(ctx context.Context) <-chan ha.ObservedLeader {
	ch := make(chan ha.ObservedLeader)
	go func() {
		defer close(ch)
		var last ha.ObservedLeader
		sent := false
		for {
			f.mu.Lock()
			cur, changed := f.cur, f.changed
			f.mu.Unlock()
			if !sent || cur != last {
				select {
				case ch <- cur:
					last, sent = cur, true
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// startHATM starts a TaskManager with high-availability.type etcd that
// follows leaders. jobmanager.rpc.address names a documentation address
// that nothing answers: it must not be used.
func startHATM(t *testing.T, leaders LeaderRetrieval, reg *prometheus.Registry, log *zap.Logger) *TaskManager {
	t.Helper()
	cfg, _, err := config.FromMap(map[string]string{
		"high-availability.type":               "etcd",
		"high-availability.etcd.endpoints":     "192.0.2.1:2379",
		"jobmanager.rpc.address":               "192.0.2.1",
		"taskmanager.numberOfTaskSlots":        "4",
		"taskmanager.registration.max-backoff": "100ms",
	})
	if err != nil {
		t.Fatal(err)
	}
	tm, err := New(cfg, log, Options{Registry: reg, NoMetricsServer: true, Leaders: leaders})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tm.Close() })
	return tm
}

// epochClient is a JobManager's client of tm at a fixed leader epoch.
func epochClient(t *testing.T, tm *TaskManager, epoch int64) weirpb.TaskExecutorGatewayClient {
	t.Helper()
	var e atomic.Int64
	e.Store(epoch)
	return weirpb.NewTaskExecutorGatewayClient(leaderClient(t, tm, &e))
}

// subtask returns a one-subtask chain descriptor of job at vertex.
func subtask(t *testing.T, job string, vertex int32, srcProps map[string]any, failAt int) *weirpb.TaskDeploymentDescriptor {
	d := chain(t, job, 0, srcProps, failAt)
	d.Execution.Vertex = vertex
	return d
}

// registration returns the i-th registration jm received.
func (jm *fakeJM) registration(i int) *weirpb.RegisterTaskManagerRequest {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	return jm.registrations[i]
}

// showReport renders the tasks of a registration.
func showReport(r *weirpb.RegisterTaskManagerRequest) string {
	var out []string
	for _, tk := range r.GetTasks() {
		out = append(out, attemptString(tk.GetExecution())+" "+tk.GetState())
	}
	return strings.Join(out, ", ")
}

// statesOfTask returns the states reported for one attempt (job/vN[s]#a).
func (jm *fakeJM) statesOfTask(attempt string) []string {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	out := []string{}
	for _, s := range jm.states {
		if attemptString(s.GetExecution()) == attempt {
			out = append(out, s.GetState())
		}
	}
	return out
}

func (tm *TaskManager) endedAttempts() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	var out []string
	for _, st := range tm.ended {
		out = append(out, attemptString(st.exec)+" "+st.reported())
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
		t.Fatalf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// A new leader named by etcd while the old one still runs: the tasks keep
// running, every one is reported with its exact attempt and state, the
// fence rises to the new leader's epoch, and what happens next goes to
// the new leader only.
func TestFailoverNewLeaderKeepsTasks(t *testing.T) {
	jmA := startJM(t, "127.0.0.1:0", "jm-a")
	jmA.epoch.Store(5)
	jmB := startJM(t, "127.0.0.1:0", "jm-b")
	jmB.epoch.Store(8)
	leaders := newFakeLeaders()
	leaders.set(jmA.addr, 5)
	reg := prometheus.NewRegistry()
	tm := startHATM(t, leaders, reg, zap.NewNop())
	eventually(t, "registration with A", func() bool { return jmA.numRegistrations() == 1 })
	eq(t, "first registration's report", showReport(jmA.registration(0)), "")
	eq(t, "fence after A", tm.LeaderEpoch(), int64(5))

	a := epochClient(t, tm, 5)
	ctx := context.Background()
	for _, d := range []*weirpb.TaskDeploymentDescriptor{
		subtask(t, "j", 0, map[string]any{"name": "keep-v0"}, -1),
		subtask(t, "j", 1, map[string]any{"count": 10}, -1),
		subtask(t, "j", 2, nil, 3),
		subtask(t, "j", 3, map[string]any{"name": "keep-v3"}, -1),
	} {
		if _, err := a.SubmitTask(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "v3 RUNNING", func() bool { return len(jmA.statesOfTask("j/v3[0]#0")) == 1 })
	if _, err := a.CancelTask(ctx, &weirpb.CancelTaskRequest{Execution: &weirpb.ExecutionAttemptID{JobId: "j", Vertex: 3}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ended attempts", func() bool {
		return tm.endedAttempts() == "j/v1[0]#0 FINISHED, j/v2[0]#0 FAILED, j/v3[0]#0 CANCELED"
	})
	eventually(t, "v0 RUNNING at A", func() bool { return len(jmA.statesOfTask("j/v0[0]#0")) == 1 })

	leaders.set(jmB.addr, 8)
	eventually(t, "registration with B", func() bool { return jmB.numRegistrations() == 1 })
	eq(t, "report to B", showReport(jmB.registration(0)),
		"j/v0[0]#0 RUNNING, j/v1[0]#0 FINISHED, j/v2[0]#0 FAILED, j/v3[0]#0 CANCELED")
	eq(t, "fence after B", tm.LeaderEpoch(), int64(8))
	_, err := a.CancelTask(ctx, &weirpb.CancelTaskRequest{Execution: &weirpb.ExecutionAttemptID{JobId: "j"}})
	wantCode(t, "A cancels after B registered the TaskManager", err, codes.FailedPrecondition,
		"CancelTask with leader epoch 5 rejected: this TaskManager has seen leader epoch 8; the caller is no longer the JobManager leader")
	eventually(t, "heartbeats to B with v0", func() bool { return jmB.heartbeatHas("j") })
	activeMu.Lock()
	running := active["keep-v0"]
	activeMu.Unlock()
	eq(t, "v0 instances open", running, 1)
	eq(t, "registrations with A", jmA.numRegistrations(), 1)
	eq(t, "leader changes", counter(t, reg, "weir_taskmanager_leader_changes_total"), 2.0)
	eq(t, "epoch gauge", gauge(t, reg, "weir_taskmanager_leader_epoch"), 8.0)

	// B cancels v0: B hears CANCELED, and not RUNNING again (its report
	// said so); A hears nothing more.
	b := epochClient(t, tm, 8)
	if _, err := b.CancelTask(ctx, &weirpb.CancelTaskRequest{Execution: &weirpb.ExecutionAttemptID{JobId: "j"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "CANCELED at B", func() bool { return len(jmB.statesOfTask("j/v0[0]#0")) == 1 })
	// A canceled attempt that ends is kept for the next leader; an ended
	// attempt a leader cancels is forgotten.
	if _, err := b.CancelTask(ctx, &weirpb.CancelTaskRequest{Execution: &weirpb.ExecutionAttemptID{JobId: "j", Vertex: 2}}); err != nil {
		t.Fatal(err)
	}
	eq(t, "ended after B canceled v0 and v2", tm.endedAttempts(), "j/v0[0]#0 CANCELED, j/v1[0]#0 FINISHED, j/v3[0]#0 CANCELED")
	if _, err := b.ReleaseJob(ctx, &weirpb.ReleaseJobRequest{JobId: "j"}); err != nil {
		t.Fatal(err)
	}
	eq(t, "ended after ReleaseJob", tm.endedAttempts(), "")
	if err := tm.Close(); err != nil {
		t.Fatal(err)
	}
	eq(t, "states at B", jmB.statesOfTask("j/v0[0]#0"), []string{"CANCELED"})
	eq(t, "states of v0 at A", jmA.statesOfTask("j/v0[0]#0"), []string{"RUNNING"})
}

// The leader dies: its heartbeat ends while etcd still names it. Nothing
// is canceled; the standby etcd names next gets the report, with the
// states the dead leader never heard, and is not told them again.
func TestFailoverLeaderDiesStandbyTakesOver(t *testing.T) {
	jmA := startJM(t, "127.0.0.1:0", "jm-a")
	jmA.epoch.Store(5)
	jmB := startJM(t, "127.0.0.1:0", "jm-b")
	jmB.epoch.Store(8)
	leaders := newFakeLeaders()
	leaders.set(jmA.addr, 5)
	tm := startHATM(t, leaders, prometheus.NewRegistry(), zap.NewNop())
	eventually(t, "registration with A", func() bool { return jmA.numRegistrations() == 1 })

	a := epochClient(t, tm, 5)
	ctx := context.Background()
	if _, err := a.SubmitTask(ctx, subtask(t, "j", 0, map[string]any{"name": "survive"}, -1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "v0 RUNNING at A", func() bool { return len(jmA.statesOfTask("j/v0[0]#0")) == 1 })
	// From now on A takes no state report: v1's RUNNING and FINISHED are
	// still being retried when A dies.
	jmA.mu.Lock()
	jmA.failUpdates = 1 << 30
	jmA.mu.Unlock()
	if _, err := a.SubmitTask(ctx, subtask(t, "j", 1, map[string]any{"count": 5}, -1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "v1 ended", func() bool { return tm.endedAttempts() == "j/v1[0]#0 FINISHED" })
	jmA.stop()

	leaders.set(jmB.addr, 8)
	eventually(t, "registration with B", func() bool { return jmB.numRegistrations() == 1 })
	eq(t, "report to B", showReport(jmB.registration(0)), "j/v0[0]#0 RUNNING, j/v1[0]#0 FINISHED")
	activeMu.Lock()
	running := active["survive"]
	activeMu.Unlock()
	eq(t, "v0 instances open", running, 1)
	eq(t, "fence", tm.LeaderEpoch(), int64(8))

	// Close cancels v0 and waits for the reports: B hears v0's CANCELED
	// and nothing of v1.
	if err := tm.Close(); err != nil {
		t.Fatal(err)
	}
	eq(t, "v0 at B", jmB.statesOfTask("j/v0[0]#0"), []string{"CANCELED"})
	eq(t, "v1 at B", jmB.statesOfTask("j/v1[0]#0"), []string{})
}

// Registering again with the same JobManager (it forgot this TaskManager)
// cancels the tasks, as in standalone mode, after the answer.
func TestFailoverSameLeaderReRegistrationCancels(t *testing.T) {
	jmA := startJM(t, "127.0.0.1:0", "jm-a")
	jmA.epoch.Store(5)
	leaders := newFakeLeaders()
	leaders.set(jmA.addr, 5)
	tm := startHATM(t, leaders, prometheus.NewRegistry(), zap.NewNop())
	eventually(t, "registration", func() bool { return jmA.numRegistrations() == 1 })
	a := epochClient(t, tm, 5)
	ctx := context.Background()
	if _, err := a.SubmitTask(ctx, subtask(t, "j", 0, map[string]any{"name": "same-v0"}, -1)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SubmitTask(ctx, subtask(t, "j", 1, map[string]any{"count": 3}, -1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "v1 FINISHED", func() bool { return len(jmA.statesOfTask("j/v1[0]#0")) == 2 })
	eventually(t, "v0 RUNNING", func() bool { return len(jmA.statesOfTask("j/v0[0]#0")) == 1 })

	jmA.unknown.Store(true)
	eventually(t, "second registration", func() bool { return jmA.numRegistrations() == 2 })
	eq(t, "report", showReport(jmA.registration(1)), "j/v0[0]#0 RUNNING, j/v1[0]#0 FINISHED")
	eventually(t, "v0 CANCELED", func() bool { return len(jmA.statesOfTask("j/v0[0]#0")) == 2 })
	eq(t, "v0 states", jmA.statesOfTask("j/v0[0]#0"), []string{"RUNNING", "CANCELED"})
	// The JobManager failed them all: nothing is kept for a next leader.
	eq(t, "ended", tm.endedAttempts(), "")
}

// Without a leader for longer than the last leader's heartbeat timeout,
// every task is canceled, once; the next leader hears the final states
// in the report.
func TestFailoverLeaderlessCancelsAll(t *testing.T) {
	jmA := startJM(t, "127.0.0.1:0", "jm-a")
	jmA.epoch.Store(5)
	jmA.hbTimeoutMs.Store(300)
	jmB := startJM(t, "127.0.0.1:0", "jm-b")
	jmB.epoch.Store(8)
	leaders := newFakeLeaders()
	leaders.set(jmA.addr, 5)
	core, logs := observer.New(zap.InfoLevel)
	tm := startHATM(t, leaders, prometheus.NewRegistry(), zap.New(core))
	eventually(t, "registration", func() bool { return jmA.numRegistrations() == 1 })
	a := epochClient(t, tm, 5)
	ctx := context.Background()
	for _, v := range []int32{0, 1} {
		if _, err := a.SubmitTask(ctx, subtask(t, "j", v, map[string]any{"name": "leaderless"}, -1)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "RUNNING", func() bool {
		return len(jmA.statesOfTask("j/v0[0]#0")) == 1 && len(jmA.statesOfTask("j/v1[0]#0")) == 1
	})
	jmA.stop()
	eventually(t, "tasks canceled", func() bool { return tm.endedAttempts() == "j/v0[0]#0 CANCELED, j/v1[0]#0 CANCELED" })
	msg := "no JobManager leader for longer than the last leader's heartbeat.timeout: canceling the tasks, which no leader controls"
	entries := logs.FilterMessage(msg).All()
	if len(entries) != 1 {
		t.Fatalf("%d log entries %q, want 1", len(entries), msg)
	}
	fields := entries[0].ContextMap()
	if n := fields["tasks_canceled"]; n != int64(2) {
		t.Errorf("tasks_canceled = %v, want 2", n)
	}
	if r, _ := fields["reason"].(string); !strings.Contains(r, "(heartbeat.timeout 300ms); etcd names "+jmA.addr+" (epoch 5)") {
		t.Errorf("reason %q", r)
	}

	leaders.set(jmB.addr, 8)
	eventually(t, "registration with B", func() bool { return jmB.numRegistrations() == 1 })
	eq(t, "report to B", showReport(jmB.registration(0)), "j/v0[0]#0 CANCELED, j/v1[0]#0 CANCELED")
	if err := tm.Close(); err != nil {
		t.Fatal(err)
	}
	eq(t, "states at B", jmB.statesOfTask("j/v0[0]#0"), []string{})
	eq(t, "cancel log entries", len(logs.FilterMessage(msg).All()), 1)
}

// A checkpoint answer that cannot reach the leader it was first sent to
// is dropped once a new leader has registered the TaskManager; answers
// made after that go to the new leader.
func TestFailoverDropsAnswersOfPreviousLeader(t *testing.T) {
	jmA := startJM(t, "127.0.0.1:0", "jm-a")
	jmA.epoch.Store(5)
	jmB := startJM(t, "127.0.0.1:0", "jm-b")
	jmB.epoch.Store(8)
	leaders := newFakeLeaders()
	leaders.set(jmA.addr, 5)
	tm := startHATM(t, leaders, prometheus.NewRegistry(), zap.NewNop())
	eventually(t, "registration", func() bool { return jmA.numRegistrations() == 1 })
	jmA.stop()

	ack := &weirpb.AcknowledgeCheckpointRequest{Execution: &weirpb.ExecutionAttemptID{JobId: "j"}, CheckpointId: 7}
	done := make(chan error, 1)
	go func() { done <- responder{tm: tm}.AcknowledgeCheckpoint(context.Background(), ack) }()
	leaders.set(jmB.addr, 8)
	if err := <-done; err != nil {
		t.Fatalf("answer of the previous leader's checkpoint: %v, want dropped (nil)", err)
	}
	eq(t, "registrations with B", jmB.numRegistrations(), 1)
	eq(t, "acks at B", jmB.ackCount(), 0)
	ack.CheckpointId = 9
	if err := (responder{tm: tm}).AcknowledgeCheckpoint(context.Background(), ack); err != nil {
		t.Fatal(err)
	}
	eq(t, "acks at B", jmB.ackCount(), 1)
}

func TestNewChecksLeaderRetrieval(t *testing.T) {
	for _, tc := range []struct {
		haType  string
		leaders LeaderRetrieval
		want    string
	}{
		{"etcd", nil, "high-availability.type is etcd, but the TaskManager was given no leader retrieval service (Options.Leaders)"},
		{"none", newFakeLeaders(), "high-availability.type is none: the JobManager is jobmanager.rpc.address, and a leader retrieval service (Options.Leaders) is not used"},
	} {
		cfg, _, err := config.FromMap(map[string]string{"high-availability.type": tc.haType, "high-availability.etcd.endpoints": "192.0.2.1:2379"})
		if err != nil {
			t.Fatal(err)
		}
		tm, err := New(cfg, zap.NewNop(), Options{Registry: prometheus.NewRegistry(), NoMetricsServer: true, Leaders: tc.leaders})
		if err == nil {
			_ = tm.Close()
			t.Fatalf("%s: no error", tc.haType)
		}
		eq(t, tc.haType, err.Error(), tc.want)
	}
}
