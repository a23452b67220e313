package jobmanager

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/weirstream/weir/pkg/internal/leaderepoch"
	"github.com/weirstream/weir/proto/weirpb"
)

// epochRecorder is a TaskManager that records the leader epoch metadata
// of each CancelTask.
type epochRecorder struct {
	weirpb.UnimplementedTaskExecutorGatewayServer
	got chan []string
}

func (r *epochRecorder) CancelTask(ctx context.Context, _ *weirpb.CancelTaskRequest) (*weirpb.Ack, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.got <- md.Get(leaderepoch.MetadataKey)
	return &weirpb.Ack{}, nil
}

// TestTaskExecutorSendsLeaderEpoch: every call to a TaskManager carries
// the epoch the JobManager's func returns when the call is sent; without
// a func (standalone) no epoch is sent.
func TestTaskExecutorSendsLeaderEpoch(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &epochRecorder{got: make(chan []string, 1)}
	srv := grpc.NewServer()
	weirpb.RegisterTaskExecutorGatewayServer(srv, rec)
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	defer func() { srv.Stop(); <-served }()

	var epoch atomic.Int64
	for _, tc := range []struct {
		name  string
		epoch func() int64
		set   int64
		want  string // "" for none
	}{
		{name: "standalone", epoch: nil, want: ""},
		{name: "leader at 0 (not leading yet)", epoch: epoch.Load, set: 0, want: ""},
		{name: "leader at 12", epoch: epoch.Load, set: 12, want: "12"},
		{name: "leader at 13", epoch: epoch.Load, set: 13, want: "13"},
	} {
		epoch.Store(tc.set)
		te, err := newTaskExecutor("tm", 1, lis.Addr().String(), 5*time.Second, tc.epoch, nil, insecure.NewCredentials(), "token")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); te.run() }()
		callErr := make(chan error, 1)
		te.enqueue(func(ctx context.Context) {
			_, err := te.client.CancelTask(ctx, &weirpb.CancelTaskRequest{})
			callErr <- err
		})
		var got []string
		select {
		case got = <-rec.got:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no call arrived", tc.name)
		}
		if err := <-callErr; err != nil {
			t.Fatalf("%s: CancelTask: %v", tc.name, err)
		}
		te.stop()
		<-done
		switch {
		case tc.want == "" && len(got) != 0:
			t.Errorf("%s: sent epoch %q, want none", tc.name, got)
		case tc.want != "" && (len(got) != 1 || got[0] != tc.want):
			t.Errorf("%s: sent epoch %q, want [%s]", tc.name, got, tc.want)
		}
	}
}
