package taskmanager

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/weirstream/weir/pkg/internal/calltoken"
	"github.com/weirstream/weir/proto/weirpb"
)

// TestCallToken: the TaskManager registers with its call token and refuses
// task API calls without it, or with another, before anything runs; each
// refusal is counted by method and reason.
func TestCallToken(t *testing.T) {
	jm := startJM(t, "127.0.0.1:0", "jm-1")
	reg := prometheus.NewRegistry()
	tm := startTM(t, jm.addr, reg)
	eventually(t, "registered", func() bool { return jm.numRegistrations() > 0 })
	if got := jm.registration(0).CallToken; got != tm.guard.token || len(got) != 26 {
		t.Fatalf("registered with call token %q, want the TaskManager's (%d characters)", got, len(tm.guard.token))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func(token string) weirpb.TaskExecutorGatewayClient {
		conn, err := grpc.NewClient(tm.RPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithUnaryInterceptor(calltoken.UnaryClientInterceptor(token)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return weirpb.NewTaskExecutorGatewayClient(conn)
	}
	none, wrong := dial(""), dial(calltoken.New())
	_, err := none.SubmitTask(ctx, chain(t, "job-x", 0, map[string]any{"name": "stranger"}, -1))
	wantCode(t, "no token", err, codes.PermissionDenied,
		"SubmitTask refused: the call carries no weir-call-token: only the JobManager this TaskManager registered with may call it")
	_, err = wrong.CancelTask(ctx, cancelReq("a"))
	wantCode(t, "wrong token", err, codes.PermissionDenied,
		"CancelTask refused: the call's weir-call-token is not the one this TaskManager registered with: only that JobManager may call it")
	_, err = wrong.TriggerCheckpoint(ctx, &weirpb.TriggerCheckpointRequest{})
	wantCode(t, "wrong token", err, codes.PermissionDenied,
		"TriggerCheckpoint refused: the call's weir-call-token is not the one this TaskManager registered with: only that JobManager may call it")
	tm.mu.Lock()
	n := len(tm.tasks)
	tm.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d tasks after refused calls", n)
	}
	// The right token passes (the task is unknown here: the answer is the handler's).
	if _, err := client(t, tm).CancelTask(ctx, cancelReq("a")); err != nil {
		t.Fatalf("CancelTask with the token: %v", err)
	}
	// Health is open, for probes.
	conn, err := grpc.NewClient(tm.RPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health check: %v", err)
	}

	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "weir_taskmanager_rejected_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if v := m.GetCounter().GetValue(); v > 0 {
				l := m.GetLabel()
				got[l[0].GetValue()+"/"+l[1].GetValue()] = v
			}
		}
	}
	want := map[string]float64{"SubmitTask/no_token": 1, "CancelTask/wrong_token": 1, "TriggerCheckpoint/wrong_token": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("weir_taskmanager_rejected_calls_total = %v, want %v", got, want)
	}
}
