package taskmanager

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/internal/calltoken"
	"github.com/weirstream/weir/pkg/internal/leaderepoch"
	"github.com/weirstream/weir/proto/weirpb"
)

func TestLeaderFenceAdmit(t *testing.T) {
	f, err := newLeaderFence(prometheus.NewRegistry(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range []struct {
		epoch   int64
		highest int64
		ok      bool
	}{
		{0, 0, true}, // a JobManager that does not fence, before any that does
		{0, 0, true},
		{5, 5, true},
		{5, 5, true}, // the same leader again
		{3, 5, false},
		{0, 5, false}, // no epoch once a fenced leader was heard
		{9, 9, true},
		{5, 9, false},
		{8, 9, false},
	} {
		highest, ok := f.admit(st.epoch)
		if highest != st.highest || ok != st.ok {
			t.Fatalf("step %d: admit(%d) = %d, %v; want %d, %v", i, st.epoch, highest, ok, st.highest, st.ok)
		}
	}
}

// leaderClient is a JobManager's client of tm whose calls carry *epoch
// through the same interceptor the JobManager installs.
func leaderClient(t *testing.T, tm *TaskManager, epoch *atomic.Int64) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(tm.RPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(calltoken.UnaryClientInterceptor(tm.guard.token), leaderepoch.UnaryClientInterceptor(epoch.Load)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// rejectedCalls returns weir_taskmanager_rejected_leader_calls_total by method.
func rejectedCalls(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "weir_taskmanager_rejected_leader_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

func cancelReq(job string) *weirpb.CancelTaskRequest {
	return &weirpb.CancelTaskRequest{Execution: &weirpb.ExecutionAttemptID{JobId: job}}
}

func wantCode(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code || (msg != "" && st.Message() != msg) {
		t.Fatalf("%s: %v; want %s %q", what, err, code, msg)
	}
}

func TestLeaderFenceRejectsDeposedLeader(t *testing.T) {
	jm := startJM(t, "127.0.0.1:0", "jm-1")
	reg := prometheus.NewRegistry()
	tm := startTM(t, jm.addr, reg)
	ctx := context.Background()

	// Standalone: no epoch at all, as today.
	plain := client(t, tm)
	if _, err := plain.CancelTask(ctx, cancelReq("a")); err != nil {
		t.Fatalf("call without an epoch before any leader: %v", err)
	}

	var oldEpoch, newEpoch atomic.Int64
	oldEpoch.Store(5)
	newEpoch.Store(8)
	old := weirpb.NewTaskExecutorGatewayClient(leaderClient(t, tm, &oldEpoch))
	cur := weirpb.NewTaskExecutorGatewayClient(leaderClient(t, tm, &newEpoch))

	if _, err := old.CancelTask(ctx, cancelReq("a")); err != nil {
		t.Fatalf("leader at epoch 5: %v", err)
	}
	if _, err := old.ReleaseJob(ctx, &weirpb.ReleaseJobRequest{JobId: "a"}); err != nil {
		t.Fatalf("leader at epoch 5, again: %v", err)
	}
	if _, err := cur.CancelTask(ctx, cancelReq("a")); err != nil {
		t.Fatalf("leader at epoch 8: %v", err)
	}
	if got := tm.LeaderEpoch(); got != 8 {
		t.Fatalf("LeaderEpoch() = %d, want 8", got)
	}

	// The deposed leader wakes up: nothing it sends is carried out.
	_, err := old.CancelTask(ctx, cancelReq("a"))
	wantCode(t, "cancel at epoch 5 after 8", err, codes.FailedPrecondition,
		"CancelTask with leader epoch 5 rejected: this TaskManager has seen leader epoch 8; the caller is no longer the JobManager leader")
	_, err = old.SubmitTask(ctx, chain(t, "stale-job", 0, map[string]any{"name": "fence"}, -1))
	wantCode(t, "submit at epoch 5 after 8", err, codes.FailedPrecondition,
		"SubmitTask with leader epoch 5 rejected: this TaskManager has seen leader epoch 8; the caller is no longer the JobManager leader")
	_, err = old.TriggerCheckpoint(ctx, &weirpb.TriggerCheckpointRequest{CheckpointId: 3})
	wantCode(t, "trigger at epoch 5 after 8", err, codes.FailedPrecondition, "")
	_, err = old.NotifyCheckpointComplete(ctx, &weirpb.NotifyCheckpointRequest{CheckpointId: 3})
	wantCode(t, "commit at epoch 5 after 8", err, codes.FailedPrecondition, "")
	// Without an epoch is epoch 0: rejected too now.
	_, err = plain.CancelTask(ctx, cancelReq("a"))
	wantCode(t, "cancel without an epoch after 8", err, codes.FailedPrecondition,
		"CancelTask with leader epoch 0 rejected: this TaskManager has seen leader epoch 8; the caller is no longer the JobManager leader")

	tm.mu.Lock()
	n := len(tm.tasks)
	tm.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d task(s) after a rejected submission, want none", n)
	}

	// Equal and higher epochs pass.
	if _, err := cur.CancelTask(ctx, cancelReq("a")); err != nil {
		t.Fatalf("leader at epoch 8, again: %v", err)
	}
	newEpoch.Store(11)
	if _, err := cur.CancelTask(ctx, cancelReq("a")); err != nil {
		t.Fatalf("leader at epoch 11: %v", err)
	}

	// A malformed epoch is refused as such, and not counted as a deposed leader's.
	bad := metadata.AppendToOutgoingContext(ctx, leaderepoch.MetadataKey, "eleven")
	_, err = plain.CancelTask(bad, cancelReq("a"))
	wantCode(t, "malformed epoch", err, codes.InvalidArgument, `metadata weir-leader-epoch "eleven": not a non-negative integer`)

	// The other services of the server are not fenced.
	hc := healthpb.NewHealthClient(leaderClient(t, tm, new(atomic.Int64)))
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health check without an epoch: %v", err)
	}

	want := map[string]float64{"SubmitTask": 1, "CancelTask": 2, "ReleaseJob": 0,
		"TriggerCheckpoint": 1, "NotifyCheckpointComplete": 1, "NotifyCheckpointAborted": 0}
	if got := rejectedCalls(t, reg); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rejected calls = %v, want %v", got, want)
	}
}

// TestLeaderFenceConcurrent runs a deposed and a current leader against
// one TaskManager at once: once a call of the new epoch has returned,
// every call of the old one is rejected, and every rejection is counted.
func TestLeaderFenceConcurrent(t *testing.T) {
	jm := startJM(t, "127.0.0.1:0", "jm-1")
	reg := prometheus.NewRegistry()
	tm := startTM(t, jm.addr, reg)
	ctx := context.Background()

	var oldEpoch, newEpoch atomic.Int64
	oldEpoch.Store(100)
	newEpoch.Store(200)
	old := weirpb.NewTaskExecutorGatewayClient(leaderClient(t, tm, &oldEpoch))
	cur := weirpb.NewTaskExecutorGatewayClient(leaderClient(t, tm, &newEpoch))

	const callers, calls = 8, 25
	var wg sync.WaitGroup
	var firstErr atomic.Value
	fail := func(err error) { firstErr.CompareAndSwap(nil, err) }

	// Before the new leader: the old one's calls pass, from many goroutines.
	for range callers {
		wg.Go(func() {
			for range calls {
				if _, err := old.CancelTask(ctx, cancelReq("x")); err != nil {
					fail(fmt.Errorf("epoch 100 before 200: %w", err))
				}
			}
		})
	}
	wg.Wait()
	if _, err := cur.CancelTask(ctx, cancelReq("x")); err != nil {
		t.Fatalf("epoch 200: %v", err)
	}
	// Both leaders at once: the old one never gets through again.
	var rejected atomic.Int64
	for i := range 2 * callers {
		wg.Go(func() {
			for range calls {
				if i%2 == 0 {
					if _, err := cur.CancelTask(ctx, cancelReq("x")); err != nil {
						fail(fmt.Errorf("epoch 200: %w", err))
					}
					continue
				}
				_, err := old.NotifyCheckpointAborted(ctx, &weirpb.NotifyCheckpointRequest{CheckpointId: 1})
				if status.Code(err) != codes.FailedPrecondition {
					fail(fmt.Errorf("epoch 100 after 200: %v, want FailedPrecondition", err))
					continue
				}
				rejected.Add(1)
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		t.Fatal(err)
	}
	if got, want := rejectedCalls(t, reg)["NotifyCheckpointAborted"], float64(rejected.Load()); got != want || want != callers*calls {
		t.Fatalf("rejected NotifyCheckpointAborted = %v, counted by callers %v, want %d", got, want, callers*calls)
	}
	if got := tm.LeaderEpoch(); got != 200 {
		t.Fatalf("LeaderEpoch() = %d, want 200", got)
	}
}

// TestLeaderFenceAdmitRace admits random epochs from many goroutines:
// the highest epoch ends at the maximum, never goes down meanwhile, and
// exactly the calls below the highest at their time are rejected.
func TestLeaderFenceAdmitRace(t *testing.T) {
	f, err := newLeaderFence(prometheus.NewRegistry(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var wentDown atomic.Bool
	readerDone := make(chan struct{})
	go func() { // a reader that checks the highest epoch never decreases
		defer close(readerDone)
		var last int64
		for {
			select {
			case <-stop:
				return
			default:
			}
			h := f.highest.Load()
			if h < last {
				wentDown.Store(true)
			}
			last = h
		}
	}()
	const goroutines, each = 8, 2000
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				e := int64((g*7919 + i*104729) % 5000)
				highest, ok := f.admit(e)
				if ok && highest != e || !ok && highest <= e {
					wentDown.Store(true)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-readerDone
	var want int64
	for g := range goroutines {
		for i := range each {
			want = max(want, int64((g*7919+i*104729)%5000))
		}
	}
	if got := f.highest.Load(); got != want {
		t.Fatalf("highest = %d, want %d", got, want)
	}
	if wentDown.Load() {
		t.Fatal("an admission contradicted the highest epoch, or the highest epoch went down")
	}
}
