package taskmanager

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/internal/calltoken"
	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/proto/weirpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ---------------------------------------------------------------------------
// Test operators: a source that runs until canceled (tracking how many
// instances of one name are open at once), and a map that fails on demand.

var (
	activeMu sync.Mutex
	active   = map[string]int{}
	maxOpen  = map[string]int{}
)

func init() {
	operator.Register(&operator.Type{Name: "tm-spin", Kind: operator.KindSource, NewSource: func(p operator.Properties) (operator.Source, error) {
		name, err := p.String("name", "")
		if err != nil {
			return nil, err
		}
		count, err := p.Int("count", -1)
		return &spinSource{name: name, count: count}, err
	}})
	operator.Register(&operator.Type{Name: "tm-fail", Kind: operator.KindTransform, NewOperator: func(p operator.Properties) (operator.Operator, error) {
		at, err := p.Int("fail-at", -1)
		return &failMap{at: at}, err
	}})
	operator.Register(&operator.Type{Name: "tm-discard", Kind: operator.KindSink, NewOperator: func(operator.Properties) (operator.Operator, error) {
		return discard{}, nil
	}})
}

type spinSource struct {
	name  string
	count int64
	i     int64
	rec   record.Record
}

func (s *spinSource) Open(*operator.Context) error {
	activeMu.Lock()
	active[s.name]++
	maxOpen[s.name] = max(maxOpen[s.name], active[s.name])
	activeMu.Unlock()
	return nil
}

func (s *spinSource) PollNext(out operator.Collector) (operator.SourceStatus, time.Duration, error) {
	if s.count >= 0 && s.i >= s.count {
		return operator.EndOfInput, 0, nil
	}
	s.rec.Reset()
	s.rec.Set("n", record.Int(s.i))
	s.i++
	if err := out.Collect(&s.rec); err != nil {
		return 0, 0, err
	}
	if s.count < 0 && s.i%100 == 0 {
		return operator.NothingAvailable, time.Millisecond, nil
	}
	return operator.MoreAvailable, 0, nil
}

func (s *spinSource) Close() error {
	activeMu.Lock()
	active[s.name]--
	activeMu.Unlock()
	return nil
}

type failMap struct{ at int64 }

func (m *failMap) Open(*operator.Context) error { return nil }
func (m *failMap) ProcessRecord(r *record.Record, out operator.Collector) error {
	v, _ := r.Get("n")
	if n, _ := v.AsInt(); n == m.at {
		return fmt.Errorf("boom at %d", n)
	}
	return out.Collect(r)
}
func (m *failMap) EndInput(operator.Collector) error { return nil }
func (m *failMap) Close() error                      { return nil }

type discard struct{}

func (discard) Open(*operator.Context) error                           { return nil }
func (discard) ProcessRecord(*record.Record, operator.Collector) error { return nil }
func (discard) EndInput(operator.Collector) error                      { return nil }
func (discard) Close() error                                           { return nil }

// ---------------------------------------------------------------------------
// A fake JobManager.

type fakeJM struct {
	weirpb.UnimplementedJobManagerGatewayServer
	addr string
	srv  *grpc.Server
	done chan struct{}

	id      atomic.Value // string
	unknown atomic.Bool
	// epoch is the leader_epoch it answers registrations with (0: a
	// standalone JobManager); hbTimeoutMs its heartbeat timeout (0: 2 s).
	epoch       atomic.Int64
	hbTimeoutMs atomic.Int64

	mu            sync.Mutex
	registrations []*weirpb.RegisterTaskManagerRequest
	heartbeats    []*weirpb.TaskManagerHeartbeat
	states        []*weirpb.TaskExecutionState
	failUpdates   int // fail this many UpdateTaskExecutionState calls first
	acks          []*weirpb.AcknowledgeCheckpointRequest
	declines      []string // "<job> <checkpoint> <reason code>: <message>"
}

func startJM(t *testing.T, addr, id string) *fakeJM {
	t.Helper()
	var lis net.Listener
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		if lis, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the previous JobManager's port is being freed
	}
	if err != nil {
		t.Fatal(err)
	}
	jm := &fakeJM{addr: lis.Addr().String(), srv: grpc.NewServer(), done: make(chan struct{})}
	jm.id.Store(id)
	weirpb.RegisterJobManagerGatewayServer(jm.srv, jm)
	go func() { defer close(jm.done); _ = jm.srv.Serve(lis) }()
	t.Cleanup(jm.stop)
	return jm
}

func (jm *fakeJM) stop() {
	jm.srv.Stop()
	<-jm.done
}

func (jm *fakeJM) RegisterTaskManager(_ context.Context, req *weirpb.RegisterTaskManagerRequest) (*weirpb.RegisterTaskManagerResponse, error) {
	jm.mu.Lock()
	jm.registrations = append(jm.registrations, req)
	jm.mu.Unlock()
	jm.unknown.Store(false)
	timeout := jm.hbTimeoutMs.Load()
	if timeout == 0 {
		timeout = 2000
	}
	return &weirpb.RegisterTaskManagerResponse{JobmanagerId: jm.id.Load().(string), HeartbeatIntervalMs: 20, HeartbeatTimeoutMs: timeout,
		LeaderEpoch: jm.epoch.Load()}, nil
}

func (jm *fakeJM) Heartbeat(stream weirpb.JobManagerGateway_HeartbeatServer) error {
	for {
		hb, err := stream.Recv()
		if err != nil {
			return nil
		}
		jm.mu.Lock()
		jm.heartbeats = append(jm.heartbeats, hb)
		jm.mu.Unlock()
		if err := stream.Send(&weirpb.JobManagerHeartbeat{JobmanagerId: jm.id.Load().(string), UnknownTaskmanager: jm.unknown.Load()}); err != nil {
			return nil
		}
	}
}

func (jm *fakeJM) UpdateTaskExecutionState(_ context.Context, s *weirpb.TaskExecutionState) (*weirpb.Ack, error) {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	if jm.failUpdates > 0 {
		jm.failUpdates--
		return nil, status.Error(codes.Unavailable, "try again")
	}
	jm.states = append(jm.states, s)
	return &weirpb.Ack{}, nil
}

func (jm *fakeJM) numRegistrations() int {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	return len(jm.registrations)
}

// statesOf returns the states reported for one attempt, with failures.
func (jm *fakeJM) statesOf(job string, attempt int32) []string {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	var out []string
	for _, s := range jm.states {
		if s.GetExecution().GetJobId() == job && s.GetExecution().GetAttempt() == attempt {
			st := s.GetState()
			if s.GetFailure() != "" {
				st += ": " + s.GetFailure()
			}
			out = append(out, st)
		}
	}
	return out
}

func (jm *fakeJM) heartbeatHas(job string) bool {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	if len(jm.heartbeats) == 0 {
		return false
	}
	for _, tk := range jm.heartbeats[len(jm.heartbeats)-1].GetTasks() {
		if tk.GetExecution().GetJobId() == job {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startTM(t *testing.T, jmAddr string, reg *prometheus.Registry) *TaskManager {
	t.Helper()
	host, port, _ := net.SplitHostPort(jmAddr)
	cfg, _, err := config.FromMap(map[string]string{
		"jobmanager.rpc.address":               host,
		"jobmanager.rpc.port":                  port,
		"taskmanager.numberOfTaskSlots":        "3",
		"taskmanager.registration.max-backoff": "100ms",
	})
	if err != nil {
		t.Fatal(err)
	}
	tm, err := New(cfg, zap.NewNop(), Options{Registry: reg, NoMetricsServer: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tm.Close() })
	return tm
}

func client(t *testing.T, tm *TaskManager) weirpb.TaskExecutorGatewayClient {
	t.Helper()
	conn, err := grpc.NewClient(tm.RPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(calltoken.UnaryClientInterceptor(tm.guard.token)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return weirpb.NewTaskExecutorGatewayClient(conn)
}

func opJSON(t *testing.T, id, typ string, props map[string]any, inputs ...jobgraph.Input) []byte {
	t.Helper()
	b, err := json.Marshal(&jobgraph.Operator{ID: id, Type: typ, Properties: operator.Properties(props), Inputs: inputs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// chain returns a descriptor of a one-subtask source -> (fail) -> sink chain.
func chain(t *testing.T, job string, attempt int32, srcProps map[string]any, failAt int) *weirpb.TaskDeploymentDescriptor {
	ops := [][]byte{opJSON(t, "src", "tm-spin", srcProps)}
	prev := "src"
	if failAt >= 0 {
		ops = append(ops, opJSON(t, "m", "tm-fail", map[string]any{"fail-at": failAt}, jobgraph.Input{From: "src", Partition: jobgraph.Forward}))
		prev = "m"
	}
	ops = append(ops, opJSON(t, "out", "tm-discard", nil, jobgraph.Input{From: prev, Partition: jobgraph.Forward}))
	return &weirpb.TaskDeploymentDescriptor{
		Execution:      &weirpb.ExecutionAttemptID{JobId: job, Attempt: attempt},
		JobName:        job,
		Parallelism:    1,
		MaxParallelism: 128,
		Operators:      ops,
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func TestRegisterSubmitCancelFinish(t *testing.T) {
	jm := startJM(t, "127.0.0.1:0", "jm-1")
	reg := prometheus.NewRegistry()
	tm := startTM(t, jm.addr, reg)
	if !regexp.MustCompile(`^127\.0\.0\.1:\d+-[0-9a-f]{6}$`).MatchString(tm.ID()) {
		t.Errorf("id %q does not look like <host>:<rpc-port>-<6 hex>", tm.ID())
	}
	eventually(t, "registration", func() bool { return jm.numRegistrations() == 1 })
	jm.mu.Lock()
	r := jm.registrations[0]
	jm.mu.Unlock()
	if r.GetTaskmanagerId() != tm.ID() || r.GetRpcAddress() != tm.RPCAddr() || r.GetDataAddress() != tm.DataAddr() || r.GetNumSlots() != 3 {
		t.Errorf("registration %v, want id %s rpc %s data %s slots 3", r, tm.ID(), tm.RPCAddr(), tm.DataAddr())
	}
	c := client(t, tm)
	ctx := context.Background()

	// A bounded task finishes.
	if _, err := c.SubmitTask(ctx, chain(t, "bounded", 0, map[string]any{"count": 10}, -1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "FINISHED", func() bool { return len(jm.statesOf("bounded", 0)) == 2 })
	if got := strings.Join(jm.statesOf("bounded", 0), ","); got != "RUNNING,FINISHED" {
		t.Errorf("states %s, want RUNNING,FINISHED", got)
	}

	// An unbounded one runs, shows in heartbeats and the gauge, and is canceled.
	d := chain(t, "forever", 0, map[string]any{"name": "forever"}, -1)
	if _, err := c.SubmitTask(ctx, d); err != nil {
		t.Fatal(err)
	}
	eventually(t, "RUNNING", func() bool { return len(jm.statesOf("forever", 0)) == 1 })
	eventually(t, "a heartbeat with the task", func() bool { return jm.heartbeatHas("forever") })
	if g := gauge(t, reg, "weir_taskmanager_tasks_running"); g != 1 {
		t.Errorf("tasks running = %v, want 1", g)
	}
	// Canceling another attempt is a no-op.
	other := &weirpb.ExecutionAttemptID{JobId: "forever", Attempt: 7}
	if _, err := c.CancelTask(ctx, &weirpb.CancelTaskRequest{Execution: other}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CancelTask(ctx, &weirpb.CancelTaskRequest{Execution: d.GetExecution()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "CANCELED", func() bool { return len(jm.statesOf("forever", 0)) == 2 })
	if got := strings.Join(jm.statesOf("forever", 0), ","); got != "RUNNING,CANCELED" {
		t.Errorf("states %s, want RUNNING,CANCELED", got)
	}
	eventually(t, "gauge back to 0", func() bool { return gauge(t, reg, "weir_taskmanager_tasks_running") == 0 })
}

func TestInvalidDescriptor(t *testing.T) {
	jm := startJM(t, "127.0.0.1:0", "jm-1")
	tm := startTM(t, jm.addr, prometheus.NewRegistry())
	c := client(t, tm)
	d := chain(t, "bad", 0, nil, -1)
	d.Operators[0] = opJSON(t, "src", "no-such-type", nil)
	_, err := c.SubmitTask(context.Background(), d)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `operator "src": unknown type "no-such-type"`) {
		t.Fatalf("SubmitTask error = %v, want InvalidArgument naming the type", err)
	}
}

func TestFailedTaskReportsMessageDespiteRetries(t *testing.T) {
	jm := startJM(t, "127.0.0.1:0", "jm-1")
	jm.failUpdates = 2
	tm := startTM(t, jm.addr, prometheus.NewRegistry())
	c := client(t, tm)
	if _, err := c.SubmitTask(context.Background(), chain(t, "fails", 0, nil, 3)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "FAILED", func() bool { return len(jm.statesOf("fails", 0)) == 2 })
	if got := strings.Join(jm.statesOf("fails", 0), ","); got != `RUNNING,FAILED: operator "m"[0]: boom at 3` {
		t.Errorf("states %s", got)
	}
}

// A new attempt of a running subtask waits for the old one to be gone.
func TestFencingOfAttempts(t *testing.T) {
	jm := startJM(t, "127.0.0.1:0", "jm-1")
	tm := startTM(t, jm.addr, prometheus.NewRegistry())
	c := client(t, tm)
	ctx := context.Background()
	if _, err := c.SubmitTask(ctx, chain(t, "fenced", 0, map[string]any{"name": "fenced"}, -1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "attempt 0 RUNNING", func() bool { return len(jm.statesOf("fenced", 0)) == 1 })
	if _, err := c.SubmitTask(ctx, chain(t, "fenced", 0, nil, -1)); status.Code(err) != codes.AlreadyExists {
		t.Errorf("same attempt again: %v, want AlreadyExists", err)
	}
	if _, err := c.SubmitTask(ctx, chain(t, "fenced", 1, map[string]any{"name": "fenced"}, -1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "attempt 1 RUNNING", func() bool { return len(jm.statesOf("fenced", 1)) == 1 })
	// Attempt 0 ended before attempt 1 opened; its report may come later.
	eventually(t, "attempt 0 CANCELED", func() bool { return len(jm.statesOf("fenced", 0)) == 2 })
	if got := strings.Join(jm.statesOf("fenced", 0), ","); got != "RUNNING,CANCELED" {
		t.Errorf("attempt 0 states %s, want RUNNING,CANCELED", got)
	}
	if _, err := c.SubmitTask(ctx, chain(t, "fenced", 0, nil, -1)); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("older attempt: %v, want FailedPrecondition", err)
	}
	activeMu.Lock()
	m := maxOpen["fenced"]
	activeMu.Unlock()
	if m != 1 {
		t.Errorf("%d attempts were open at once, want 1", m)
	}
	if _, err := c.ReleaseJob(ctx, &weirpb.ReleaseJobRequest{JobId: "fenced"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "attempt 1 CANCELED", func() bool { return len(jm.statesOf("fenced", 1)) == 2 })
	if got := strings.Join(jm.statesOf("fenced", 1), ","); got != "RUNNING,CANCELED" {
		t.Errorf("attempt 1 states %s, want RUNNING,CANCELED", got)
	}
}

// The JobManager forgetting the TaskManager, and a JobManager restart on the
// same address, make the TaskManager register again and cancel its tasks.
func TestReRegistration(t *testing.T) {
	jm := startJM(t, "127.0.0.1:0", "jm-1")
	tm := startTM(t, jm.addr, prometheus.NewRegistry())
	c := client(t, tm)
	ctx := context.Background()
	eventually(t, "registration", func() bool { return jm.numRegistrations() == 1 })
	if _, err := c.SubmitTask(ctx, chain(t, "j1", 0, map[string]any{"name": "j1"}, -1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "RUNNING", func() bool { return len(jm.statesOf("j1", 0)) == 1 })

	jm.unknown.Store(true)
	eventually(t, "second registration", func() bool { return jm.numRegistrations() == 2 })
	eventually(t, "CANCELED", func() bool { return len(jm.statesOf("j1", 0)) == 2 })
	if got := jm.statesOf("j1", 0)[1]; got != "CANCELED" {
		t.Errorf("state %s, want CANCELED", got)
	}

	// Restart the JobManager on the same port with a new id.
	if _, err := c.SubmitTask(ctx, chain(t, "j2", 0, map[string]any{"name": "j2"}, -1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "RUNNING", func() bool { return len(jm.statesOf("j2", 0)) == 1 })
	jm.stop()
	jm2 := startJM(t, jm.addr, "jm-2")
	eventually(t, "registration with the new JobManager", func() bool { return jm2.numRegistrations() >= 1 })
	jm2.mu.Lock()
	id := jm2.registrations[0].GetTaskmanagerId()
	jm2.mu.Unlock()
	if id != tm.ID() {
		t.Errorf("registered again as %s, want the same id %s", id, tm.ID())
	}
	// RUNNING may come again: a report the old JobManager took just before
	// it stopped, without answering, is retried.
	eventually(t, "CANCELED reported to the new JobManager", func() bool {
		st := jm2.statesOf("j2", 0)
		return len(st) > 0 && st[len(st)-1] == "CANCELED"
	})
	// Standalone: no registration reports tasks, and no ended attempt is
	// kept for one.
	for _, j := range []*fakeJM{jm, jm2} {
		for i := range j.numRegistrations() {
			if r := showReport(j.registration(i)); r != "" {
				t.Errorf("registration %d with %s reported %s, want nothing", i, j.id.Load(), r)
			}
		}
	}
	if e := tm.endedAttempts(); e != "" {
		t.Errorf("ended attempts %s, want none in standalone mode", e)
	}
}

func TestHeartbeatVerdict(t *testing.T) {
	tests := []struct {
		hb     *weirpb.JobManagerHeartbeat
		ok     bool
		reason string
	}{
		{&weirpb.JobManagerHeartbeat{JobmanagerId: "a"}, true, ""},
		{&weirpb.JobManagerHeartbeat{}, true, ""},
		{&weirpb.JobManagerHeartbeat{JobmanagerId: "a", UnknownTaskmanager: true}, false, "the JobManager does not know this TaskManager"},
		{&weirpb.JobManagerHeartbeat{JobmanagerId: "b"}, false, `the JobManager changed (id "b", registered with "a")`},
	}
	for i, tc := range tests {
		ok, reason := heartbeatVerdict("a", tc.hb)
		if ok != tc.ok || reason != tc.reason {
			t.Errorf("%d: got %v %q, want %v %q", i, ok, reason, tc.ok, tc.reason)
		}
	}
}

func TestNextBackoff(t *testing.T) {
	var got []string
	for b := 500 * time.Millisecond; len(got) < 7; b = nextBackoff(b, 10*time.Second) {
		got = append(got, b.String())
	}
	if s := strings.Join(got, " "); s != "500ms 1s 2s 4s 8s 10s 10s" {
		t.Errorf("backoffs %s", s)
	}
}

func TestUnreachableJobManagerThenUp(t *testing.T) {
	// Reserve a port, then free it: nobody listens there yet.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	tm := startTM(t, addr, prometheus.NewRegistry())
	jm := startJM(t, addr, "late")
	eventually(t, "registration once the JobManager is up", func() bool { return jm.numRegistrations() >= 1 })
	jm.mu.Lock()
	id := jm.registrations[0].GetTaskmanagerId()
	jm.mu.Unlock()
	if id != tm.ID() {
		t.Errorf("registered as %s, want %s", id, tm.ID())
	}
}
