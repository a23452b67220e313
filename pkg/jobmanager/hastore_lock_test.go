package jobmanager

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/ha"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/proto/weirpb"
)

// lockAuditStore is an HA store that checks, at every call, that the
// calling goroutine does not hold its JobManager's mutex: the call first
// takes jm.mu itself (and lets it go). A caller that holds jm.mu makes
// that impossible for as long as the call lasts, so the audit waits up to
// lockAuditPatience and then records the call as made under the lock. A
// caller that does not hold it lets the audit through at once, unless
// another goroutine keeps jm.mu for that long, which nothing in the
// JobManager does.
type lockAuditStore struct {
	inner HAServices
	ready chan struct{} // closed once jm is set: calls wait for it
	jm    *JobManager

	mu    sync.Mutex
	ops   map[string]bool // every operation called
	under []string        // operations called with jm.mu held
}

const lockAuditPatience = 5 * time.Second

func newLockAuditStore(inner HAServices) *lockAuditStore {
	return &lockAuditStore{inner: inner, ready: make(chan struct{}), ops: map[string]bool{}}
}

// setJM starts the audit; calls made before wait for it.
func (s *lockAuditStore) setJM(jm *JobManager) {
	s.jm = jm
	close(s.ready)
}

func (s *lockAuditStore) audit(op, jobID string) {
	<-s.ready
	held := true
	for deadline := time.Now().Add(lockAuditPatience); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if s.jm.mu.TryLock() {
			s.jm.mu.Unlock()
			held = false
			break
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops[op] = true
	if held {
		s.under = append(s.under, op+" "+jobID)
	}
}

// result returns the operations called, sorted, and those called under
// jm.mu.
func (s *lockAuditStore) result() (ops, under []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for op := range s.ops {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	return ops, slices.Clone(s.under)
}

func (s *lockAuditStore) PutJobGraph(ctx context.Context, g ha.JobGraphRecord) error {
	s.audit("PutJobGraph", g.JobID)
	return s.inner.PutJobGraph(ctx, g)
}

func (s *lockAuditStore) JobGraph(ctx context.Context, jobID string) (ha.JobGraphRecord, bool, error) {
	s.audit("JobGraph", jobID)
	return s.inner.JobGraph(ctx, jobID)
}

func (s *lockAuditStore) JobIDs(ctx context.Context) ([]string, error) {
	s.audit("JobIDs", "")
	return s.inner.JobIDs(ctx)
}

func (s *lockAuditStore) RemoveJob(ctx context.Context, jobID string) error {
	s.audit("RemoveJob", jobID)
	return s.inner.RemoveJob(ctx, jobID)
}

func (s *lockAuditStore) CheckpointIDCounter(ctx context.Context, jobID string) (int64, error) {
	s.audit("CheckpointIDCounter", jobID)
	return s.inner.CheckpointIDCounter(ctx, jobID)
}

func (s *lockAuditStore) SetCheckpointIDCounter(ctx context.Context, jobID string, next int64) error {
	s.audit("SetCheckpointIDCounter", jobID)
	return s.inner.SetCheckpointIDCounter(ctx, jobID, next)
}

func (s *lockAuditStore) AddCompletedCheckpoint(ctx context.Context, jobID string, cp ha.CompletedCheckpoint) error {
	s.audit("AddCompletedCheckpoint", jobID)
	return s.inner.AddCompletedCheckpoint(ctx, jobID, cp)
}

func (s *lockAuditStore) RemoveCompletedCheckpoint(ctx context.Context, jobID string, checkpointID int64) error {
	s.audit("RemoveCompletedCheckpoint", jobID)
	return s.inner.RemoveCompletedCheckpoint(ctx, jobID, checkpointID)
}

func (s *lockAuditStore) CompletedCheckpoints(ctx context.Context, jobID string) ([]ha.CompletedCheckpoint, error) {
	s.audit("CompletedCheckpoints", jobID)
	return s.inner.CompletedCheckpoints(ctx, jobID)
}

func (s *lockAuditStore) SetJobAttempt(ctx context.Context, jobID string, attempt int) error {
	s.audit("SetJobAttempt", jobID)
	return s.inner.SetJobAttempt(ctx, jobID, attempt)
}

func (s *lockAuditStore) JobAttempt(ctx context.Context, jobID string) (int, error) {
	s.audit("JobAttempt", jobID)
	return s.inner.JobAttempt(ctx, jobID)
}

func (s *lockAuditStore) PutJobResult(ctx context.Context, jobID string, r ha.JobResult) error {
	s.audit("PutJobResult", jobID)
	return s.inner.PutJobResult(ctx, jobID, r)
}

func (s *lockAuditStore) JobResult(ctx context.Context, jobID string) (ha.JobResult, bool, error) {
	s.audit("JobResult", jobID)
	return s.inner.JobResult(ctx, jobID)
}

// fixedElection elects its JobManager at once at a fixed epoch and never
// reports another leader: HA without etcd, for JobManagers that share a
// Standalone store one after the other.
type fixedElection struct{ epoch int64 }

func (e fixedElection) StartSession(context.Context) (<-chan struct{}, error) {
	return make(chan struct{}), nil
}
func (e fixedElection) Campaign(context.Context) (int64, error) { return e.epoch, nil }
func (e fixedElection) StopLeading()                            {}
func (e fixedElection) CloseSession(context.Context) error      { return nil }
func (e fixedElection) Observe(ctx context.Context) <-chan ha.ObservedLeader {
	ch := make(chan ha.ObservedLeader)
	go func() { <-ctx.Done(); close(ch) }()
	return ch
}
func (e fixedElection) Contenders(context.Context) ([]ha.Contender, error) { return nil, nil }
func (e fixedElection) Epoch() int64                                       { return e.epoch }

// startLeaderOn starts a JobManager that leads at epoch on store (through
// a lockAuditStore) and waits until it has recovered the store's jobs.
func startLeaderOn(t *testing.T, store HAServices, epoch int64) (*cluster, *lockAuditStore) {
	t.Helper()
	audit := newLockAuditStore(store)
	// Registered first, so that it runs after the JobManager closed.
	t.Cleanup(func() {
		if _, under := audit.result(); len(under) > 0 {
			t.Errorf("JobManager at epoch %d: HA store calls with jm.mu held: %s", epoch, strings.Join(under, "; "))
		}
	})
	c := startJMWith(t, Options{HA: audit, Election: fixedElection{epoch: epoch}, Exit: func(int) {}})
	audit.setJM(c.jm)
	waitFor(t, "the JobManager leads", func() bool { return c.jm.leading() })
	return c, audit
}

// startJMWith is startJM with the HA options given.
func startJMWith(t *testing.T, opts Options) *cluster {
	t.Helper()
	cfg, _, err := config.New().With(map[string]string{"jobmanager.rpc.port": "0", "heartbeat.interval": "20ms", "heartbeat.timeout": "10s"})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	opts.Config, opts.Registerer = cfg, reg
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	jm, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(jm.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, jm: jm, api: weirpb.NewJobServiceClient(conn), reg: reg}
	t.Cleanup(func() {
		conn.Close()
		if err := jm.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// ackAll acknowledges checkpoint id for every task of tdds, without state.
func ackAll(tm *fakeTM, tdds map[string]*weirpb.TaskDeploymentDescriptor, id int64) {
	for _, k := range slices.Sorted(maps.Keys(tdds)) {
		tm.ack(tdds[k].Execution, id, &snapshot.TaskState{})
	}
}

// sourceTrigger waits for the trigger of one checkpoint at both sources
// (0/0 and 0/1 at attempt) and returns its id.
func sourceTrigger(t *testing.T, tm *fakeTM, attempt int) int64 {
	t.Helper()
	got := collect(t, tm.triggered, 2)
	var id int64
	if _, err := fmt.Sscanf(got[0], fmt.Sprintf("0/0#%d %%d", attempt), &id); err != nil {
		t.Fatalf("triggers %q: want both sources at attempt %d", got, attempt)
	}
	wantStrings(t, "source triggers", got, []string{fmt.Sprintf("0/0#%d %d", attempt, id), fmt.Sprintf("0/1#%d %d", attempt, id)})
	return id
}

// No call to the HA store is made while jm.mu is held: not at submission,
// deployment (the coordinator starts from what the JobManager knows is in
// the store), checkpoint trigger (the id counter is written first, off
// the lock, and the trigger sent once it is), completion, subsumption,
// restart, recovery by a new leader, adoption, cancellation and the job's
// end. Checkpoint ids strictly increase across the restart and the new
// leader, which aborts exactly the checkpoint the old one had in flight.
func TestHAStoreNeverCalledUnderLock(t *testing.T) {
	store := ha.NewStandalone()
	dir := t.TempDir()
	a, auditA := startLeaderOn(t, store, 1)
	tmA := startTM(t, a.jm.Addr(), "tm-a", 3)
	id := a.submit(cpJob(fmt.Sprintf(`  execution.checkpointing.interval: 20ms
  execution.checkpointing.dir: %s
  restart-strategy.type: fixed-delay
  restart-strategy.fixed-delay.attempts: 1
  restart-strategy.fixed-delay.delay: 10ms`, dir)))
	keys := []string{"0/0#%d", "0/1#%d", "1/0#%d", "1/1#%d", "1/2#%d"}
	running := func(tm *fakeTM, attempt int) map[string]*weirpb.TaskDeploymentDescriptor {
		tdds := tm.receive(5)
		for _, k := range keys {
			tm.report(tdds[fmt.Sprintf(k, attempt)].Execution, "RUNNING", "")
		}
		return tdds
	}
	tdds := running(tmA, 0)

	// Checkpoints 1 and 2 complete; 2 subsumes 1 (num-retained 1).
	var ids []int64
	for range 2 {
		cp := sourceTrigger(t, tmA, 0)
		ids = append(ids, cp)
		ackAll(tmA, tdds, cp)
		a.waitCheckpoint(id, cp, "COMPLETED")
	}
	// Checkpoint 3 is in flight when a task fails: the job restarts from
	// checkpoint 2 and the new coordinator goes on with 4.
	ids = append(ids, sourceTrigger(t, tmA, 0))
	tmA.report(tdds["1/0#0"].Execution, "FAILED", "boom")
	a.waitState(id, "RESTARTING", "sink subtask 0 failed: boom")
	for _, k := range keys {
		if k != "1/0#%d" {
			tmA.report(tdds[fmt.Sprintf(k, 0)].Execution, "CANCELED", "")
		}
	}
	tdds = running(tmA, 1)
	if got := tdds["0/0#1"].RestoreCheckpointId; got != 2 {
		t.Fatalf("restored checkpoint %d, want 2", got)
	}
	cp := sourceTrigger(t, tmA, 1)
	ids = append(ids, cp)
	ackAll(tmA, tdds, cp)
	a.waitCheckpoint(id, cp, "COMPLETED")
	// Checkpoint 5 is in flight when the leader goes.
	ids = append(ids, sourceTrigger(t, tmA, 1))
	if err := a.jm.Close(); err != nil {
		t.Fatal(err)
	}
	tmA.close()

	// A new leader on the same store adopts the running tasks: it aborts
	// checkpoint 5, notifies 4 again, and goes on with 6.
	b, auditB := startLeaderOn(t, store, 2)
	var reported []*weirpb.ReportedTask
	for _, k := range keys {
		reported = append(reported, &weirpb.ReportedTask{Execution: tdds[fmt.Sprintf(k, 1)].Execution, State: "RUNNING"})
	}
	tmB := startSilentTMWith(t, b.jm.Addr(), "tm-a", 3, reported)
	tmB.startHeartbeats(20 * time.Millisecond)
	waitFor(t, "the job adopted", func() bool {
		d, err := b.api.GetJob(t.Context(), &weirpb.GetJobRequest{JobId: id})
		return err == nil && d.State == "RUNNING"
	})
	all := func(id int64) []string {
		var out []string
		for _, k := range keys {
			out = append(out, fmt.Sprintf(k+" %d", 1, id))
		}
		return out
	}
	wantStrings(t, "aborted after the failover", collect(t, tmB.aborted, 5), all(5))
	wantStrings(t, "notified complete after the failover", collect(t, tmB.completed, 5), all(4))
	cp = sourceTrigger(t, tmB, 1)
	ids = append(ids, cp)
	ackAll(tmB, tdds, cp)
	b.waitCheckpoint(id, cp, "COMPLETED")
	if want := []int64{1, 2, 3, 4, 5, 6}; !slices.Equal(ids, want) {
		t.Fatalf("checkpoint ids %v, want %v", ids, want)
	}

	// Cancelled: the result is recorded, the job and its checkpoints go.
	if _, err := b.api.CancelJob(t.Context(), &weirpb.CancelJobRequest{JobId: id}); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		tmB.report(tdds[fmt.Sprintf(k, 1)].Execution, "CANCELED", "")
	}
	b.waitState(id, "CANCELED", "")
	waitFor(t, "the job removed from the store", func() bool {
		ids, _ := store.JobIDs(t.Context())
		r, ok, _ := store.JobResult(t.Context(), id)
		return len(ids) == 0 && ok && r.State == ha.JobCanceled
	})
	if err := b.jm.Close(); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name  string
		audit *lockAuditStore
		want  []string
	}{
		{"first leader", auditA, []string{"AddCompletedCheckpoint", "JobIDs", "PutJobGraph", "RemoveCompletedCheckpoint", "SetCheckpointIDCounter", "SetJobAttempt"}},
		{"second leader", auditB, []string{"AddCompletedCheckpoint", "CheckpointIDCounter", "CompletedCheckpoints", "JobAttempt", "JobGraph", "JobIDs",
			"JobResult", "PutJobResult", "RemoveCompletedCheckpoint", "RemoveJob", "SetCheckpointIDCounter"}},
	} {
		ops, _ := c.audit.result() // calls under jm.mu: see startLeaderOn
		wantStrings(t, c.name+": HA store calls", ops, c.want)
	}
}

// failingCounterStore fails the first fails writes of the checkpoint id
// counter, as an unreachable etcd would.
type failingCounterStore struct {
	HAServices
	fails atomic.Int32
}

func (s *failingCounterStore) SetCheckpointIDCounter(ctx context.Context, jobID string, next int64) error {
	if s.fails.Add(-1) >= 0 {
		return errors.New("etcd unreachable")
	}
	return s.HAServices.SetCheckpointIDCounter(ctx, jobID, next)
}

// A trigger is sent only once the counter write that covers its id has
// succeeded: when it fails, the checkpoint is not triggered and is aborted
// at once (TRIGGER_CHECKPOINT_FAILURE, not counted), and the next one (a
// new id, a new write) is.
func TestCheckpointNotTriggeredWhenIDNotPersisted(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	store := &failingCounterStore{HAServices: ha.NewStandalone()}
	store.fails.Store(1)
	c := startJMWith(t, Options{HA: store, Logger: zap.New(core)})
	tm := startTM(t, c.jm.Addr(), "tm-a", 3)
	id := c.submit(cpJob(fmt.Sprintf(`  execution.checkpointing.interval: 20ms
  execution.checkpointing.timeout: 10min
  execution.checkpointing.tolerable-failed-checkpoints: 0
  execution.checkpointing.dir: %s`, t.TempDir())))
	tdds := tm.receive(5)
	for _, k := range []string{"0/0#0", "0/1#0", "1/0#0", "1/1#0", "1/2#0"} {
		tm.report(tdds[k].Execution, "RUNNING", "")
	}

	if got := sourceTrigger(t, tm, 0); got != 2 {
		t.Fatalf("first checkpoint triggered: %d, want 2 (the counter write for 1 failed)", got)
	}
	if f := c.waitCheckpoint(id, 1, "FAILED").Failure; f != "TRIGGER_CHECKPOINT_FAILURE: checkpoint 1 not triggered: persist checkpoint id counter: etcd unreachable" {
		t.Fatalf("checkpoint 1 failed with %q, want TRIGGER_CHECKPOINT_FAILURE", f)
	}
	var lines []string
	for _, e := range logs.FilterMessage("persist checkpoint id counter: the checkpoint is not triggered").All() {
		f := e.ContextMap()
		lines = append(lines, fmt.Sprintf("checkpoint=%v next=%v error=%v", f["checkpoint"], f["next"], f["error"]))
	}
	wantStrings(t, "log lines", lines, []string{"checkpoint=1 next=2 error=etcd unreachable"})
	ackAll(tm, tdds, 2)
	c.waitCheckpoint(id, 2, "COMPLETED")
	if next, err := store.CheckpointIDCounter(t.Context(), id); err != nil || next < 3 {
		t.Fatalf("stored counter %d, %v: want 3 or more", next, err)
	}
}

// What a leader knows the store holds stays in id order whatever the
// order in which metadata writers report.
func TestCheckpointingStoreMirror(t *testing.T) {
	cp := &checkpointing{}
	cp.setStored(5, []ha.CompletedCheckpoint{{CheckpointID: 4, Location: "/sp", Savepoint: true}})
	cp.addCompleted(ha.CompletedCheckpoint{CheckpointID: 7, Location: "/c7"})
	cp.addCompleted(ha.CompletedCheckpoint{CheckpointID: 6, Location: "/c6"})
	cp.removeCompleted(4)
	cp.removeCompleted(9)
	if got, want := fmt.Sprint(cp.completed), "[{6 /c6 false} {7 /c7 false}]"; got != want || *cp.latestCompleted() != cp.completed[1] || cp.persistedNext != 5 {
		t.Fatalf("completed %s, latest %v, counter %d: want %s, 7, 5", got, cp.latestCompleted(), cp.persistedNext, want)
	}
	cp.removeCompleted(6)
	cp.removeCompleted(7)
	if cp.latestCompleted() != nil {
		t.Fatalf("latest %v after every checkpoint was removed", cp.latestCompleted())
	}
}
