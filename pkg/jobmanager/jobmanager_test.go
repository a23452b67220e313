package jobmanager

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/internal/calltoken"
	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/proto/weirpb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Test operator types, so that these tests do not depend on the built-in
// operators and their properties.
func init() {
	operator.Register(&operator.Type{Name: "jmtest-source", Kind: operator.KindSource})
	operator.Register(&operator.Type{Name: "jmtest-map", Kind: operator.KindTransform})
	operator.Register(&operator.Type{Name: "jmtest-sink", Kind: operator.KindSink})
}

// pipelineJob: src(2) -rebalance-> sink(3), i.e. two job vertices and 3 slots.
const pipelineJob = `name: pipeline
parallelism: 2
config:
  execution.buffer-timeout: 5ms
operators:
- id: src
  type: jmtest-source
- id: sink
  type: jmtest-sink
  parallelism: 3
  input: {from: src, partition: rebalance}
`

// chainJob: src -> map -> sink, all chained into one vertex of parallelism p.
func chainJob(p int) string {
	return fmt.Sprintf(`name: chain
parallelism: %d
operators:
- id: src
  type: jmtest-source
- id: map
  type: jmtest-map
  input: src
- id: sink
  type: jmtest-sink
  input: map
`, p)
}

type cluster struct {
	t   *testing.T
	jm  *JobManager
	api weirpb.JobServiceClient
	reg *prometheus.Registry
}

func startJM(t *testing.T, log *zap.Logger, overrides map[string]string) *cluster {
	t.Helper()
	kv := map[string]string{"jobmanager.rpc.port": "0", "heartbeat.interval": "20ms", "heartbeat.timeout": "10s"}
	for k, v := range overrides {
		kv[k] = v
	}
	cfg, _, err := config.New().With(kv)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	jm, err := Start(Options{Config: cfg, Logger: log, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(jm.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		if err := jm.Close(); err != nil {
			t.Error(err)
		}
	})
	return &cluster{t: t, jm: jm, api: weirpb.NewJobServiceClient(conn), reg: reg}
}

// fakeTM is a TaskManager as the JobManager sees it: it registers,
// heartbeats, records what it is asked to do and reports task states when
// the test says so.
// fakeToken is the call token of fake TaskManager id.
func fakeToken(id string) string { return "token-of-" + id }

type fakeTM struct {
	weirpb.UnimplementedTaskExecutorGatewayServer
	t        *testing.T
	id       string
	rpcAddr  string
	dataAddr string
	srv      *grpc.Server
	gw       weirpb.JobManagerGatewayClient
	conn     *grpc.ClientConn

	submitted chan *weirpb.TaskDeploymentDescriptor
	canceled  chan string // ExecutionAttemptID in prototext
	released  chan string
	// Checkpoint RPCs, as "vertex/subtask#attempt checkpoint-id".
	triggered, completed, aborted chan string
	// Savepoint triggers, as "vertex/subtask#attempt checkpoint-id stop=… drain=…".
	savepoints chan string

	mu        sync.Mutex
	submitErr error
	metrics   []*weirpb.TaskMetrics
	unknown   bool // the JobManager answered unknown_taskmanager

	hbCancel context.CancelFunc
	hbDone   chan struct{}
	wg       sync.WaitGroup
}

func startTM(t *testing.T, jmAddr, id string, slots int) *fakeTM {
	t.Helper()
	tm := startSilentTM(t, jmAddr, id, slots)
	tm.startHeartbeats(20 * time.Millisecond)
	return tm
}

// startSilentTM registers a TaskManager that sends no heartbeats.
func startSilentTM(t *testing.T, jmAddr, id string, slots int) *fakeTM {
	t.Helper()
	return startSilentTMWith(t, jmAddr, id, slots, nil)
}

// startSilentTMWith is startSilentTM reporting tasks on registration, as
// after a JobManager failover.
func startSilentTMWith(t *testing.T, jmAddr, id string, slots int, tasks []*weirpb.ReportedTask) *fakeTM {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(jmAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	tm := &fakeTM{
		t: t, id: id, rpcAddr: lis.Addr().String(), dataAddr: fmt.Sprintf("127.0.0.1:%d", lis.Addr().(*net.TCPAddr).Port+1),
		// Like a real TaskManager, it refuses calls without the
		// token it registered with: every test that deploys checks
		// that the JobManager sends it.
		srv: grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := calltoken.Check(ctx, fakeToken(id)); err != nil {
				return nil, status.Error(codes.PermissionDenied, err.Error())
			}
			return h(ctx, req)
		})),
		gw: weirpb.NewJobManagerGatewayClient(conn), conn: conn,
		submitted:  make(chan *weirpb.TaskDeploymentDescriptor, 100),
		canceled:   make(chan string, 100),
		released:   make(chan string, 100),
		triggered:  make(chan string, 1000),
		completed:  make(chan string, 1000),
		aborted:    make(chan string, 1000),
		savepoints: make(chan string, 1000),
	}
	weirpb.RegisterTaskExecutorGatewayServer(tm.srv, tm)
	tm.wg.Add(1)
	go func() { defer tm.wg.Done(); _ = tm.srv.Serve(lis) }()
	t.Cleanup(tm.close)

	resp, err := tm.gw.RegisterTaskManager(context.Background(), &weirpb.RegisterTaskManagerRequest{
		TaskmanagerId: id, RpcAddress: lis.Addr().String(), DataAddress: tm.dataAddr, NumSlots: int32(slots), Tasks: tasks, CallToken: fakeToken(id),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.JobmanagerId) != 32 || resp.HeartbeatIntervalMs != 20 || resp.HeartbeatTimeoutMs < 300 {
		t.Fatalf("registration answer: %v", resp)
	}
	return tm
}

func (tm *fakeTM) startHeartbeats(interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	tm.hbCancel, tm.hbDone = cancel, make(chan struct{})
	stream, err := tm.gw.Heartbeat(ctx)
	if err != nil {
		tm.t.Fatal(err)
	}
	// The JobManager binds a stream to its TaskManager on the first
	// heartbeat: wait for its answer, so that a test that kills the
	// stream at once kills a bound one.
	answered := make(chan struct{})
	go func() {
		defer close(tm.hbDone)
		first := true
		defer func() {
			if first {
				close(answered)
			}
		}()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			tm.mu.Lock()
			hb := &weirpb.TaskManagerHeartbeat{TaskmanagerId: tm.id, Tasks: tm.metrics}
			tm.mu.Unlock()
			if stream.Send(hb) != nil {
				return
			}
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			tm.mu.Lock()
			tm.unknown = resp.UnknownTaskmanager
			tm.mu.Unlock()
			if first {
				first = false
				close(answered)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	<-answered
}

// killHeartbeats closes the heartbeat stream, as a SIGKILLed process would.
func (tm *fakeTM) killHeartbeats() {
	if tm.hbCancel == nil {
		return
	}
	tm.hbCancel()
	<-tm.hbDone
}

func (tm *fakeTM) close() {
	tm.killHeartbeats()
	tm.srv.Stop()
	tm.wg.Wait()
	tm.conn.Close()
}

func (tm *fakeTM) SubmitTask(_ context.Context, tdd *weirpb.TaskDeploymentDescriptor) (*weirpb.Ack, error) {
	tm.mu.Lock()
	err := tm.submitErr
	tm.mu.Unlock()
	if err != nil {
		return nil, err
	}
	tm.submitted <- tdd
	return &weirpb.Ack{}, nil
}

func (tm *fakeTM) CancelTask(_ context.Context, req *weirpb.CancelTaskRequest) (*weirpb.Ack, error) {
	tm.canceled <- execString(req.Execution)
	return &weirpb.Ack{}, nil
}

func (tm *fakeTM) ReleaseJob(_ context.Context, req *weirpb.ReleaseJobRequest) (*weirpb.Ack, error) {
	tm.released <- req.JobId
	return &weirpb.Ack{}, nil
}

func execString(e *weirpb.ExecutionAttemptID) string {
	return fmt.Sprintf("%d/%d#%d", e.Vertex, e.Subtask, e.Attempt)
}

// report tells the JobManager that an attempt changed state.
func (tm *fakeTM) report(exec *weirpb.ExecutionAttemptID, state, failure string) {
	tm.t.Helper()
	if _, err := tm.gw.UpdateTaskExecutionState(context.Background(), &weirpb.TaskExecutionState{
		TaskmanagerId: tm.id, Execution: exec, State: state, Failure: failure,
	}); err != nil {
		tm.t.Fatal(err)
	}
}

// receive waits for n deployments and returns them keyed "vertex/subtask#attempt".
func (tm *fakeTM) receive(n int) map[string]*weirpb.TaskDeploymentDescriptor {
	tm.t.Helper()
	out := map[string]*weirpb.TaskDeploymentDescriptor{}
	deadline := time.After(5 * time.Second)
	for len(out) < n {
		select {
		case tdd := <-tm.submitted:
			out[execString(tdd.Execution)] = tdd
		case <-deadline:
			tm.t.Fatalf("%s: %d deployments after 5s, want %d", tm.id, len(out), n)
		}
	}
	return out
}

func expect(t *testing.T, ch chan string, want ...string) {
	t.Helper()
	var got []string
	deadline := time.After(5 * time.Second)
	for len(got) < len(want) {
		select {
		case s := <-ch:
			got = append(got, s)
		case <-deadline:
			t.Fatalf("got %q after 5s, want %q", got, want)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// eventually polls cond until it returns "" (success) or 5s pass.
func eventually(t *testing.T, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *cluster) submit(spec string) string {
	c.t.Helper()
	resp, err := c.api.SubmitJob(context.Background(), &weirpb.SubmitJobRequest{JobSpec: []byte(spec), FileName: "job.yaml"})
	if err != nil {
		c.t.Fatal(err)
	}
	if len(resp.JobId) != 32 {
		c.t.Fatalf("job id %q: want 32 hex characters", resp.JobId)
	}
	return resp.JobId
}

func (c *cluster) job(id string) *weirpb.JobDetails {
	c.t.Helper()
	d, err := c.api.GetJob(context.Background(), &weirpb.GetJobRequest{JobId: id})
	if err != nil {
		c.t.Fatal(err)
	}
	return d
}

// waitState polls the job until it is in state with the given status message.
func (c *cluster) waitState(id, state, msg string) *weirpb.JobDetails {
	c.t.Helper()
	var d *weirpb.JobDetails
	eventually(c.t, func() string {
		d = c.job(id)
		if d.State != state || d.StatusMessage != msg {
			return fmt.Sprintf("job %s %q, want %s %q", d.State, d.StatusMessage, state, msg)
		}
		return ""
	})
	return d
}

func taskSummary(d *weirpb.JobDetails) string {
	var out []string
	for _, ts := range d.Tasks {
		s := fmt.Sprintf("%s/%d %s %s #%d in=%d out=%d", ts.Operator, ts.Subtask, ts.State, ts.Taskmanager, ts.Attempt, ts.RecordsIn, ts.RecordsOut)
		if ts.Failure != "" {
			s += " " + ts.Failure
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

func TestSubmitDeployFinish(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	c := startJM(t, zap.New(core), nil)
	a := startTM(t, c.jm.Addr(), "tm-a", 2)
	b := startTM(t, c.jm.Addr(), "tm-b", 2)

	id := c.submit(pipelineJob)
	// 3 slots, spread: slot 0 -> tm-a, slot 1 -> tm-b, slot 2 -> tm-a.
	onA, onB := a.receive(3), b.receive(2)
	if _, ok := onA["0/0#0"]; !ok {
		t.Fatalf("tm-a got %v", onA)
	}
	ch := func(p string, sub int32, tm *fakeTM) *weirpb.InputChannelDeploymentDescriptor {
		return &weirpb.InputChannelDeploymentDescriptor{PartitionId: id + p, Subpartition: sub, ProducerDataAddress: tm.dataAddr, ProducerTaskmanagerId: tm.id}
	}
	wantConfig := map[string]string{
		"jobmanager.rpc.port": "0", "heartbeat.interval": "20ms", "heartbeat.timeout": "10s", "execution.buffer-timeout": "5ms",
	}
	wantSink2 := &weirpb.TaskDeploymentDescriptor{
		Execution: &weirpb.ExecutionAttemptID{JobId: id, Vertex: 1, Subtask: 2}, JobName: "pipeline", Parallelism: 3, MaxParallelism: 128,
		Operators: [][]byte{[]byte(`{"id":"sink","type":"jmtest-sink","parallelism":3,"inputs":[{"from":"src","partition":"rebalance"}]}`)},
		Config:    wantConfig,
		Inputs: []*weirpb.InputGateDeploymentDescriptor{{InputIndex: 0, ProducerOperator: "src", Partition: "rebalance",
			Channels: []*weirpb.InputChannelDeploymentDescriptor{ch("/0/0/0/0", 2, a), ch("/0/1/0/0", 2, b)}}},
	}
	if !proto.Equal(onA["1/2#0"], wantSink2) {
		t.Fatalf("sink subtask 2:\n%s\nwant:\n%s", prototext.Format(onA["1/2#0"]), prototext.Format(wantSink2))
	}
	wantSrc1 := &weirpb.TaskDeploymentDescriptor{
		Execution: &weirpb.ExecutionAttemptID{JobId: id, Vertex: 0, Subtask: 1}, JobName: "pipeline", Parallelism: 2, MaxParallelism: 128,
		Operators: [][]byte{[]byte(`{"id":"src","type":"jmtest-source","parallelism":2}`)},
		Config:    wantConfig,
		Outputs: []*weirpb.ResultPartitionDeploymentDescriptor{
			{PartitionId: id + "/0/1/0/0", ConsumerOperator: "sink", Partition: "rebalance", NumSubpartitions: 3}},
	}
	if !proto.Equal(onB["0/1#0"], wantSrc1) {
		t.Fatalf("src subtask 1:\n%s\nwant:\n%s", prototext.Format(onB["0/1#0"]), prototext.Format(wantSrc1))
	}

	d := c.job(id)
	if d.State != "RUNNING" || d.Parallelism != 3 || d.Name != "pipeline" {
		t.Fatalf("job: %v", d)
	}
	// Every task reports RUNNING; tm-a's heartbeats carry counters.
	for _, tdd := range onA {
		a.report(tdd.Execution, "RUNNING", "")
	}
	for _, tdd := range onB {
		b.report(tdd.Execution, "RUNNING", "")
	}
	a.mu.Lock()
	a.metrics = []*weirpb.TaskMetrics{{Execution: onA["0/0#0"].Execution, RecordsOut: 42}, {Execution: onA["1/2#0"].Execution, RecordsIn: 17}}
	a.mu.Unlock()
	eventually(t, func() string {
		got := taskSummary(c.job(id))
		want := "src/0 RUNNING tm-a #0 in=0 out=42; src/1 RUNNING tm-b #0 in=0 out=0; " +
			"sink/0 RUNNING tm-a #0 in=0 out=0; sink/1 RUNNING tm-b #0 in=0 out=0; sink/2 RUNNING tm-a #0 in=17 out=0"
		if got != want {
			return fmt.Sprintf("tasks:\n%s\nwant:\n%s", got, want)
		}
		return ""
	})
	if got := c.metric("weir_jobmanager_task_slots_available", nil); got != 1 {
		t.Fatalf("free slots gauge = %v, want 1", got)
	}

	for _, tdd := range onA {
		a.report(tdd.Execution, "FINISHED", "")
	}
	for _, tdd := range onB {
		b.report(tdd.Execution, "FINISHED", "")
	}
	d = c.waitState(id, "FINISHED", "")
	if d.EndTimeUnixMs < d.StartTimeUnixMs || d.StartTimeUnixMs == 0 {
		t.Fatalf("times: start %d end %d", d.StartTimeUnixMs, d.EndTimeUnixMs)
	}
	expect(t, a.released, id)
	expect(t, b.released, id)

	tms, err := c.api.ListTaskManagers(context.Background(), &weirpb.ListTaskManagersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tm := range tms.Taskmanagers {
		got = append(got, fmt.Sprintf("%s %s %d/%d", tm.Id, tm.DataAddress, tm.SlotsFree, tm.SlotsTotal))
	}
	if want := fmt.Sprintf("tm-a %s 2/2,tm-b %s 2/2", a.dataAddr, b.dataAddr); strings.Join(got, ",") != want {
		t.Fatalf("taskmanagers: %v, want %s", got, want)
	}
	for name, want := range map[string]float64{"weir_jobmanager_taskmanagers_registered": 2, "weir_jobmanager_task_slots": 4, "weir_jobmanager_task_slots_available": 4} {
		if got := c.metric(name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := c.metric("weir_jobmanager_jobs", map[string]string{"state": "FINISHED"}); got != 1 {
		t.Errorf("jobs{FINISHED} = %v", got)
	}
	if got := c.metric("weir_jobmanager_jobs", map[string]string{"state": "RUNNING"}); got != 0 {
		t.Errorf("jobs{RUNNING} = %v", got)
	}

	// Every line about the job names it.
	var lines []string
	for _, e := range logs.All() {
		if strings.Contains(e.Message, "job") {
			if e.ContextMap()["job"] != id {
				t.Errorf("log line %q without job=%s: %v", e.Message, id, e.ContextMap())
			}
			lines = append(lines, fmt.Sprintf("%s %v->%v", e.Message, e.ContextMap()["from"], e.ContextMap()["to"]))
		}
	}
	want := []string{"job submitted <nil>-><nil>", "job state changed ->CREATED", "job state changed CREATED->RUNNING", "job state changed RUNNING->FINISHED"}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("job log lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestHeartbeatStreamClosedFailsJob(t *testing.T) {
	c := startJM(t, nil, nil)
	a := startTM(t, c.jm.Addr(), "127.0.0.1:40123-ab12cd", 2)
	id := c.submit(chainJob(2))
	tdds := a.receive(2)
	if got := string(tdds["0/0#0"].Operators[1]); got != `{"id":"map","type":"jmtest-map","parallelism":2,"inputs":[{"from":"src","partition":"forward"}]}` {
		t.Fatalf("chained operator: %s", got)
	}
	a.report(tdds["0/0#0"].Execution, "RUNNING", "")

	a.killHeartbeats()
	msg := "TaskManager 127.0.0.1:40123-ab12cd (data " + a.dataAddr + ") lost: heartbeat stream closed"
	d := c.waitState(id, "FAILED", msg)
	if got, want := taskSummary(d), "src -> map -> sink/0 FAILED 127.0.0.1:40123-ab12cd #0 in=0 out=0 "+msg+"; src -> map -> sink/1 FAILED 127.0.0.1:40123-ab12cd #0 in=0 out=0 "+msg; got != want {
		t.Fatalf("tasks:\n%s\nwant:\n%s", got, want)
	}
	tms, _ := c.api.ListTaskManagers(context.Background(), &weirpb.ListTaskManagersRequest{})
	if len(tms.Taskmanagers) != 0 {
		t.Fatalf("lost TaskManager still listed: %v", tms.Taskmanagers)
	}
	// Heartbeats of a lost TaskManager are answered "unknown": it must register again.
	a.startHeartbeats(20 * time.Millisecond)
	eventually(t, func() string {
		a.mu.Lock()
		defer a.mu.Unlock()
		if !a.unknown {
			return "unknown_taskmanager not set"
		}
		return ""
	})
}

func TestNoHeartbeatFailsJob(t *testing.T) {
	c := startJM(t, nil, map[string]string{"heartbeat.timeout": "300ms"})
	// A TaskManager that registers and then says nothing (hung, or partitioned away).
	a := startSilentTM(t, c.jm.Addr(), "silent", 1)
	id := c.submit(chainJob(1))
	a.receive(1)
	c.waitState(id, "FAILED", "TaskManager silent (data "+a.dataAddr+") lost: no heartbeat for 300ms")
}

func TestInvalidJobIsRejected(t *testing.T) {
	c := startJM(t, nil, nil)
	a := startTM(t, c.jm.Addr(), "tm-a", 4)
	for _, tc := range []struct{ spec, msg string }{
		{"name: x\noperators:\n- id: src\n  type: nope\n", `job.yaml: operator "src": unknown type "nope"`},
		{"name: x\nconfig:\n  heartbeat.interval: soon\noperators:\n- id: src\n  type: jmtest-source\n",
			`job.yaml: config: invalid value "soon" for key "heartbeat.interval": want a duration like 500ms, 10 s or 2 min`},
	} {
		_, err := c.api.SubmitJob(context.Background(), &weirpb.SubmitJobRequest{JobSpec: []byte(tc.spec), FileName: "job.yaml"})
		if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), tc.msg) {
			t.Errorf("SubmitJob = %v, want InvalidArgument %q", err, tc.msg)
		}
	}
	jobs, err := c.api.ListJobs(context.Background(), &weirpb.ListJobsRequest{})
	if err != nil || len(jobs.Jobs) != 0 {
		t.Fatalf("ListJobs = %v, %v; want none", jobs, err)
	}
	// A valid job afterwards is the first thing tm-a is asked to run.
	id := c.submit(chainJob(1))
	if got := a.receive(1)["0/0#0"].Execution.JobId; got != id {
		t.Fatalf("first deployment is of job %s, want %s", got, id)
	}
}

func TestCancelJob(t *testing.T) {
	c := startJM(t, nil, nil)
	a := startTM(t, c.jm.Addr(), "tm-a", 2)
	id := c.submit(chainJob(2))
	tdds := a.receive(2)
	a.report(tdds["0/0#0"].Execution, "RUNNING", "")
	a.report(tdds["0/1#0"].Execution, "FINISHED", "")

	if _, err := c.api.CancelJob(context.Background(), &weirpb.CancelJobRequest{JobId: id}); err != nil {
		t.Fatal(err)
	}
	expect(t, a.canceled, "0/0#0")
	c.waitState(id, "CANCELING", "")
	a.report(tdds["0/0#0"].Execution, "CANCELED", "")
	c.waitState(id, "CANCELED", "")
	expect(t, a.released, id)

	if _, err := c.api.CancelJob(context.Background(), &weirpb.CancelJobRequest{JobId: id}); err != nil {
		t.Fatalf("cancel a canceled job: %v", err)
	}
	_, err := c.api.CancelJob(context.Background(), &weirpb.CancelJobRequest{JobId: "0123"})
	if status.Code(err) != codes.NotFound || status.Convert(err).Message() != "job 0123 not found" {
		t.Fatalf("cancel unknown job: %v", err)
	}
	_, err = c.api.GetJob(context.Background(), &weirpb.GetJobRequest{JobId: "0123"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("get unknown job: %v", err)
	}
}

func TestCancelFinishedJobFails(t *testing.T) {
	c := startJM(t, nil, nil)
	a := startTM(t, c.jm.Addr(), "tm-a", 1)
	id := c.submit(chainJob(1))
	a.report(a.receive(1)["0/0#0"].Execution, "FINISHED", "")
	c.waitState(id, "FINISHED", "")
	_, err := c.api.CancelJob(context.Background(), &weirpb.CancelJobRequest{JobId: id})
	if status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != "job "+id+" is already FINISHED" {
		t.Fatalf("cancel finished job: %v", err)
	}
}

func TestTaskFailureAndDeployFailure(t *testing.T) {
	c := startJM(t, nil, nil)
	a := startTM(t, c.jm.Addr(), "tm-a", 2)
	id := c.submit(chainJob(2))
	tdds := a.receive(2)
	a.report(tdds["0/1#0"].Execution, "FAILED", "division by zero")
	expect(t, a.canceled, "0/0#0")
	a.report(tdds["0/0#0"].Execution, "CANCELED", "")
	c.waitState(id, "FAILED", "src -> map -> sink subtask 1 failed: division by zero")
	expect(t, a.released, id)

	a.mu.Lock()
	a.submitErr = status.Error(codes.InvalidArgument, "unknown operator type")
	a.mu.Unlock()
	id = c.submit(chainJob(1))
	c.waitState(id, "FAILED", "src -> map -> sink subtask 0 failed: deploy to TaskManager tm-a: unknown operator type")
}

func TestWaitingForSlots(t *testing.T) {
	c := startJM(t, nil, map[string]string{"slot.request.timeout": "500ms"})
	startTM(t, c.jm.Addr(), "tm-a", 2)
	id := c.submit(chainJob(4))
	if d := c.job(id); d.State != "CREATED" || d.StatusMessage != "waiting for 2 more task slots: needs 4, 2 free" {
		t.Fatalf("job %s %q", d.State, d.StatusMessage)
	}
	c.waitState(id, "FAILED", "could not allocate 4 task slots within slot.request.timeout (500ms): 2 free")
}

func TestReRegistrationReplacesTaskManager(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	c := startJM(t, zap.New(core), nil)
	a := startTM(t, c.jm.Addr(), "tm-a", 1)
	id := c.submit(chainJob(1))
	a.receive(1)
	// The old stream is bound to the first registration; wait until it has
	// heartbeated at least once after the deployment.
	eventually(t, func() string {
		d := c.job(id)
		tms, _ := c.api.ListTaskManagers(context.Background(), &weirpb.ListTaskManagersRequest{})
		if len(tms.Taskmanagers) != 1 || tms.Taskmanagers[0].LastHeartbeatUnixMs <= d.StartTimeUnixMs {
			return "no heartbeat after the deployment yet"
		}
		return ""
	})
	if _, err := a.gw.RegisterTaskManager(context.Background(), &weirpb.RegisterTaskManagerRequest{
		TaskmanagerId: "tm-a", RpcAddress: a.rpcAddr, DataAddress: a.dataAddr, NumSlots: 3, CallToken: fakeToken("tm-a"),
	}); err != nil {
		t.Fatal(err)
	}
	c.waitState(id, "FAILED", "TaskManager tm-a (data "+a.dataAddr+") lost: re-registered")
	// The stream of the old registration closing must not remove the new one.
	a.killHeartbeats()
	eventually(t, func() string {
		if logs.FilterMessage("heartbeat stream of a replaced registration closed").Len() != 1 {
			return "old heartbeat stream not closed yet"
		}
		return ""
	})
	a.startHeartbeats(20 * time.Millisecond)
	id2 := c.submit(chainJob(3))
	a.receive(3)
	d := c.job(id2)
	if d.State != "RUNNING" {
		t.Fatalf("job on the new registration: %s %q", d.State, d.StatusMessage)
	}
	tms, _ := c.api.ListTaskManagers(context.Background(), &weirpb.ListTaskManagersRequest{})
	if len(tms.Taskmanagers) != 1 || tms.Taskmanagers[0].SlotsTotal != 3 || tms.Taskmanagers[0].Address != a.rpcAddr {
		t.Fatalf("taskmanagers: %v", tms.Taskmanagers)
	}
}

func TestRegistrationValidation(t *testing.T) {
	c := startJM(t, nil, nil)
	conn, err := grpc.NewClient(c.jm.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	gw := weirpb.NewJobManagerGatewayClient(conn)
	for _, tc := range []struct {
		req *weirpb.RegisterTaskManagerRequest
		msg string
	}{
		{&weirpb.RegisterTaskManagerRequest{RpcAddress: "h:1", DataAddress: "h:2", NumSlots: 1}, "register TaskManager: taskmanager_id is empty"},
		{&weirpb.RegisterTaskManagerRequest{TaskmanagerId: "x", RpcAddress: "h:1", DataAddress: "h:2", NumSlots: 1}, "register TaskManager x: call_token is empty"},
		{&weirpb.RegisterTaskManagerRequest{TaskmanagerId: "x", RpcAddress: "h:1", DataAddress: "h:2", NumSlots: 1, CallToken: strings.Repeat("t", 129)}, "register TaskManager x: call_token is 129 bytes: the limit is 128"},
		{&weirpb.RegisterTaskManagerRequest{TaskmanagerId: "x", RpcAddress: "h:1", DataAddress: "h:2", CallToken: "t"}, "register TaskManager x: num_slots must be >= 1, is 0"},
		{&weirpb.RegisterTaskManagerRequest{TaskmanagerId: "x", RpcAddress: "h", DataAddress: "h:2", NumSlots: 1, CallToken: "t"}, `register TaskManager x: rpc_address "h": want host:port`},
		{&weirpb.RegisterTaskManagerRequest{TaskmanagerId: "x", RpcAddress: "h:1", NumSlots: 1, CallToken: "t"}, `register TaskManager x: data_address "": want host:port`},
	} {
		_, err := gw.RegisterTaskManager(context.Background(), tc.req)
		if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != tc.msg {
			t.Errorf("RegisterTaskManager = %v, want InvalidArgument %q", err, tc.msg)
		}
	}
	_, err = gw.UpdateTaskExecutionState(context.Background(), &weirpb.TaskExecutionState{State: "DEPLOYING"})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("UpdateTaskExecutionState(DEPLOYING) = %v", err)
	}
}

func TestUnknownJobAndHealth(t *testing.T) {
	c := startJM(t, nil, nil)
	ctx := context.Background()
	_, err := c.api.TriggerSavepoint(ctx, &weirpb.TriggerSavepointRequest{JobId: "x"})
	if status.Code(err) != codes.NotFound || status.Convert(err).Message() != "job x not found" {
		t.Errorf("TriggerSavepoint = %v", err)
	}
	_, err = c.api.StopJob(ctx, &weirpb.StopJobRequest{JobId: "x"})
	if status.Code(err) != codes.NotFound || status.Convert(err).Message() != "job x not found" {
		t.Errorf("StopJob = %v", err)
	}
	_, err = c.api.ListCheckpoints(ctx, &weirpb.ListCheckpointsRequest{JobId: "x"})
	if status.Code(err) != codes.NotFound || status.Convert(err).Message() != "job x not found" {
		t.Errorf("ListCheckpoints = %v", err)
	}

	conn, err := grpc.NewClient(c.jm.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", resp, err)
	}
}

func TestCloseWithOpenHeartbeatStream(t *testing.T) {
	c := startJM(t, nil, nil)
	a := startTM(t, c.jm.Addr(), "tm-a", 1)
	c.submit(chainJob(1))
	a.receive(1)
	done := make(chan error, 1)
	go func() { done <- c.jm.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs with an open heartbeat stream")
	}
	<-a.hbDone // the TaskManager sees its stream end
}
