package jobmanager

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/ha"
	"github.com/weirstream/weir/pkg/internal/etcdtest"
	"github.com/weirstream/weir/pkg/internal/leaderepoch"
	"github.com/weirstream/weir/proto/weirpb"
)

// haJM is one JobManager of a highly available group on a real etcd.
type haJM struct {
	*cluster
	store  *ha.Etcd
	addr   string
	exited atomic.Int32 // the code Exit was called with; 0 before
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startHAJM(t *testing.T, etcd *etcdtest.Server, storageDir string) *haJM {
	t.Helper()
	port := freeLoopbackPort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg, _, err := config.New().With(map[string]string{
		"jobmanager.rpc.address": "127.0.0.1", "jobmanager.rpc.port": strconv.Itoa(port),
		"heartbeat.interval": "20ms", "heartbeat.timeout": "3s",
		"high-availability.type": "etcd", "high-availability.etcd.endpoints": strings.Join(etcd.Endpoints(), ","),
		"high-availability.storageDir": storageDir, "high-availability.etcd.lease-ttl": "2s",
	})
	if err != nil {
		t.Fatal(err)
	}
	ecfg, err := ha.EtcdConfigFrom(cfg, addr, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	store, err := ha.NewEtcd(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &haJM{store: store, addr: addr}
	reg := prometheus.NewRegistry()
	jm, err := Start(Options{Config: cfg, Logger: zap.NewNop(), Registerer: reg,
		HA: store, Election: store, Advertised: addr, Exit: func(code int) { h.exited.Store(int32(code)) }})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	h.cluster = &cluster{t: t, jm: jm, reg: reg, api: weirpb.NewJobServiceClient(conn)}
	t.Cleanup(func() {
		conn.Close()
		h.close()
	})
	return h
}

// close stops the JobManager (a leader resigns) and its store; twice is safe.
func (h *haJM) close() {
	if err := h.jm.Close(); err != nil {
		h.t.Error(err)
	}
	_ = h.store.Close()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Two JobManagers on one etcd: one leads, the other stands by and sends
// clients to the leader; when the leader resigns the standby leads and
// recovers the leader's job, deploying attempts above the old ones, with
// the failover in the job's exception history; a reported task of the
// former execution is cancelled. A leader whose session is lost stops
// acting at once and exits with 75.
func TestHighAvailability(t *testing.T) {
	etcd := etcdtest.Start(t)
	dir := t.TempDir()
	a := startHAJM(t, etcd, dir)
	waitFor(t, "a leads", func() bool { return a.jm.leading() })
	b := startHAJM(t, etcd, dir)
	waitFor(t, "b knows the leader", func() bool { li := b.jm.leader.Load(); return li != nil && li.Address == a.addr })

	// The standby refuses with the leader's address.
	var trailer metadata.MD
	_, err := b.api.SubmitJob(t.Context(), &weirpb.SubmitJobRequest{JobSpec: []byte(chainJob(2))}, grpc.Trailer(&trailer))
	if want := "JobManager " + b.addr + " is a standby: the leader is " + a.addr; status.Code(err) != codes.Unavailable || status.Convert(err).Message() != want {
		t.Fatalf("submit to the standby: %v, want UNAVAILABLE %q", err, want)
	}
	if got := trailer.Get(leaderepoch.LeaderAddressKey); len(got) != 1 || got[0] != a.addr {
		t.Fatalf("trailer %v", trailer)
	}
	// Any JobManager lists them all.
	for _, c := range []*haJM{a, b} {
		resp, err := c.api.ListJobManagers(t.Context(), &weirpb.ListJobManagersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, info := range resp.Jobmanagers {
			got = append(got, info.Address+" "+strconv.FormatBool(info.Leader))
			if info.Leader && info.Epoch != a.jm.leaderEpoch() {
				t.Errorf("leader's epoch %d, want %d", info.Epoch, a.jm.leaderEpoch())
			}
		}
		want := []string{a.addr + " true", b.addr + " false"}
		if b.addr < a.addr {
			want = []string{b.addr + " false", a.addr + " true"}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("ListJobManagers on %s: %v, want %v", c.addr, got, want)
		}
	}

	resp, err := a.api.SubmitJob(t.Context(), &weirpb.SubmitJobRequest{JobSpec: []byte(chainJob(2))})
	if err != nil {
		t.Fatal(err)
	}
	job := resp.JobId
	tmA := startTM(t, a.addr, "tm-1", 2)
	first := tmA.receive(2)
	for k, tdd := range first {
		if !strings.HasSuffix(k, "#0") {
			t.Fatalf("first deployment %s: want attempt 0", k)
		}
		tmA.report(tdd.Execution, "RUNNING", "")
	}
	// A second job waits for slots: no TaskManager runs any of its tasks.
	resp, err = a.api.SubmitJob(t.Context(), &weirpb.SubmitJobRequest{JobSpec: []byte(chainJob(2))})
	if err != nil {
		t.Fatal(err)
	}
	waiting := resp.JobId
	epochA := a.jm.leaderEpoch()

	// The leader resigns: b leads at a higher epoch and recovers the jobs.
	a.close()
	tmA.close()
	waitFor(t, "b leads", func() bool { return b.jm.leading() })
	if b.jm.leaderEpoch() <= epochA {
		t.Fatalf("b's epoch %d is not above a's %d", b.jm.leaderEpoch(), epochA)
	}
	// The TaskManager registers with the new leader reporting the running
	// tasks of the first job, and a task of a job nobody knows.
	stray := &weirpb.ExecutionAttemptID{JobId: "0123456789abcdef0123456789abcdef", Vertex: 0, Subtask: 0, Attempt: 2}
	tmB := startSilentTMWith(t, b.addr, "tm-1", 2, []*weirpb.ReportedTask{
		{Execution: &weirpb.ExecutionAttemptID{JobId: job, Vertex: 0, Subtask: 0, Attempt: 0}, State: "RUNNING"},
		{Execution: &weirpb.ExecutionAttemptID{JobId: job, Vertex: 0, Subtask: 1, Attempt: 0}, State: "RUNNING"},
		{Execution: stray, State: "RUNNING"},
	})
	tmB.startHeartbeats(20 * time.Millisecond)
	// The first job is adopted: RUNNING, restarts 0, nothing deployed.
	waitFor(t, "the job adopted", func() bool {
		d, err := b.api.GetJob(t.Context(), &weirpb.GetJobRequest{JobId: job})
		return err == nil && d.State == "RUNNING"
	})
	d, _ := b.api.GetJob(t.Context(), &weirpb.GetJobRequest{JobId: job})
	if len(d.Exceptions) != 1 || d.Exceptions[0].Message != "JobManager failover: the new leader adopted the job's running tasks" || d.Restarts != 0 {
		t.Fatalf("exceptions %v, restarts %d", d.Exceptions, d.Restarts)
	}
	for _, task := range d.Tasks {
		if task.State != "RUNNING" || task.Attempt != 0 || task.Taskmanager != "tm-1" {
			t.Fatalf("adopted task %v", task)
		}
	}
	select {
	case c := <-tmB.canceled:
		if c != "0/0#2" {
			t.Fatalf("canceled %s, want the stray task 0/0#2", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stray task was not cancelled")
	}
	// The waiting job, reported by nobody, restarts at the end of the
	// window (heartbeat.timeout) with attempt 1, recorded first; it runs
	// once a TaskManager has slots.
	waitFor(t, "the waiting job restarted", func() bool {
		d, err := b.api.GetJob(t.Context(), &weirpb.GetJobRequest{JobId: waiting})
		return err == nil && len(d.Exceptions) > 0
	})
	d, _ = b.api.GetJob(t.Context(), &weirpb.GetJobRequest{JobId: waiting})
	if msg := d.Exceptions[0].Message; !strings.HasPrefix(msg, "JobManager failover: the new leader restarts the job from scratch: ") || d.Restarts != 1 {
		t.Fatalf("exception of the waiting job: %q, restarts %d (want 1)", msg, d.Restarts)
	}
	// The metric counts the failover's restart as the status does.
	if got := b.metric("weir_job_restarts_total", map[string]string{"job_id": waiting}); got != 1 {
		t.Fatalf("weir_job_restarts_total of the waiting job %v, want 1 as its status says", got)
	}
	tmC := startTM(t, b.addr, "tm-2", 2)
	for k := range tmC.receive(2) {
		if !strings.HasSuffix(k, "#1") {
			t.Fatalf("deployment of the restarted job %s: want attempt 1", k)
		}
	}
	if attempt, err := b.store.JobAttempt(t.Context(), waiting); err != nil || attempt != 1 {
		t.Fatalf("stored attempt %d, %v", attempt, err)
	}
	select {
	case tdd := <-tmB.submitted:
		t.Fatalf("deployed %v to the TaskManager of the adopted job", tdd.Execution)
	default:
	}

	// b's session is revoked behind its back: fenced at once, exits 75.
	if _, err := etcd.Client().Revoke(context.Background(), leaseOf(t, etcd, b.addr)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b exits", func() bool { return b.exited.Load() == ha.ExitCodeLeadershipLost })
	if b.jm.leading() {
		t.Fatal("b still leads")
	}
	if err := b.jm.mayCall(); err != errNotLeading {
		t.Fatalf("calls to TaskManagers after the loss: %v", err)
	}
	if _, err := b.api.ListJobs(t.Context(), &weirpb.ListJobsRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("ListJobs on a fenced leader: %v", err)
	}
}

// leaseOf finds the lease of addr's election key.
func leaseOf(t *testing.T, etcd *etcdtest.Server, addr string) clientv3.LeaseID {
	t.Helper()
	resp, err := etcd.Client().Get(context.Background(), "/weir/default/leader/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if string(kv.Value) == addr {
			return clientv3.LeaseID(kv.Lease)
		}
	}
	t.Fatalf("no election key of %s", addr)
	return 0
}
