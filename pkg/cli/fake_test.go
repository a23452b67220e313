package cli

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	_ "github.com/weirstream/weir/pkg/builtin"
	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/proto/weirpb"
)

// fakeJobService is a JobService whose answers the test chooses. A nil
// function answers Unimplemented, as the JobManager does for later issues.
type fakeJobService struct {
	weirpb.UnimplementedJobServiceServer

	mu       sync.Mutex
	requests []any // every request received, in order

	submit       func(*weirpb.SubmitJobRequest) (*weirpb.SubmitJobResponse, error)
	list         func() (*weirpb.ListJobsResponse, error)
	get          func(context.Context, *weirpb.GetJobRequest) (*weirpb.JobDetails, error)
	cancel       func(*weirpb.CancelJobRequest) (*weirpb.CancelJobResponse, error)
	taskManagers func() (*weirpb.ListTaskManagersResponse, error)
	checkpoints  func(*weirpb.ListCheckpointsRequest) (*weirpb.ListCheckpointsResponse, error)
	savepoint    func(*weirpb.TriggerSavepointRequest) (*weirpb.TriggerSavepointResponse, error)
	stop         func(*weirpb.StopJobRequest) (*weirpb.StopJobResponse, error)
	dispose      func(*weirpb.DisposeSavepointRequest) (*weirpb.DisposeSavepointResponse, error)
	jobManagers  func() (*weirpb.ListJobManagersResponse, error)
}

func (f *fakeJobService) record(req any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, req)
}

func (f *fakeJobService) received() []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]any(nil), f.requests...)
}

func (f *fakeJobService) SubmitJob(ctx context.Context, r *weirpb.SubmitJobRequest) (*weirpb.SubmitJobResponse, error) {
	f.record(r)
	if f.submit == nil {
		return f.UnimplementedJobServiceServer.SubmitJob(ctx, r)
	}
	return f.submit(r)
}

func (f *fakeJobService) ListJobs(ctx context.Context, r *weirpb.ListJobsRequest) (*weirpb.ListJobsResponse, error) {
	f.record(r)
	if f.list == nil {
		return f.UnimplementedJobServiceServer.ListJobs(ctx, r)
	}
	return f.list()
}

func (f *fakeJobService) GetJob(ctx context.Context, r *weirpb.GetJobRequest) (*weirpb.JobDetails, error) {
	f.record(r)
	if f.get == nil {
		return f.UnimplementedJobServiceServer.GetJob(ctx, r)
	}
	return f.get(ctx, r)
}

func (f *fakeJobService) CancelJob(ctx context.Context, r *weirpb.CancelJobRequest) (*weirpb.CancelJobResponse, error) {
	f.record(r)
	if f.cancel == nil {
		return f.UnimplementedJobServiceServer.CancelJob(ctx, r)
	}
	return f.cancel(r)
}

func (f *fakeJobService) ListTaskManagers(ctx context.Context, r *weirpb.ListTaskManagersRequest) (*weirpb.ListTaskManagersResponse, error) {
	f.record(r)
	if f.taskManagers == nil {
		return f.UnimplementedJobServiceServer.ListTaskManagers(ctx, r)
	}
	return f.taskManagers()
}

func (f *fakeJobService) ListCheckpoints(ctx context.Context, r *weirpb.ListCheckpointsRequest) (*weirpb.ListCheckpointsResponse, error) {
	f.record(r)
	if f.checkpoints == nil {
		return f.UnimplementedJobServiceServer.ListCheckpoints(ctx, r)
	}
	return f.checkpoints(r)
}

func (f *fakeJobService) TriggerSavepoint(ctx context.Context, r *weirpb.TriggerSavepointRequest) (*weirpb.TriggerSavepointResponse, error) {
	f.record(r)
	if f.savepoint == nil {
		return f.UnimplementedJobServiceServer.TriggerSavepoint(ctx, r)
	}
	return f.savepoint(r)
}

func (f *fakeJobService) StopJob(ctx context.Context, r *weirpb.StopJobRequest) (*weirpb.StopJobResponse, error) {
	f.record(r)
	if f.stop == nil {
		return f.UnimplementedJobServiceServer.StopJob(ctx, r)
	}
	return f.stop(r)
}

func (f *fakeJobService) DisposeSavepoint(ctx context.Context, r *weirpb.DisposeSavepointRequest) (*weirpb.DisposeSavepointResponse, error) {
	f.record(r)
	if f.dispose == nil {
		return f.UnimplementedJobServiceServer.DisposeSavepoint(ctx, r)
	}
	return f.dispose(r)
}

func (f *fakeJobService) ListJobManagers(ctx context.Context, r *weirpb.ListJobManagersRequest) (*weirpb.ListJobManagersResponse, error) {
	f.record(r)
	if f.jobManagers == nil {
		return f.UnimplementedJobServiceServer.ListJobManagers(ctx, r)
	}
	return f.jobManagers()
}

// serve starts f on a loopback port and returns its address; the server is
// stopped when the test ends.
func serve(t *testing.T, f *fakeJobService, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	weirpb.RegisterJobServiceServer(srv, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String()
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// testNow is the fixed "now" of the tests; job times are set relative to it.
var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func ms(t time.Time) int64 { return t.UnixMilli() }

// syncBuffer is a bytes.Buffer that a test may read while weir writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type result struct {
	stdout, stderr string
	code           int
}

// testApp is weir as a test runs it: fixed clock, UTC, fast polling and no
// environment unless env says otherwise.
func testApp(stdout, stderr *syncBuffer, env map[string]string) *app {
	a := newApp(stdout, stderr)
	a.getenv = func(k string) string { return env[k] }
	// The machine's /etc/weir/config.yaml is none of the tests' business.
	a.fileExists = func(p string) bool { return p != config.SystemConfigFile && config.FileExists(p) }
	a.now = func() time.Time { return testNow }
	a.loc = time.UTC
	a.pollInterval = time.Millisecond
	return a
}

// weir runs the command line args against the JobManager at addr.
func weir(t *testing.T, addr string, args ...string) result {
	t.Helper()
	return weirApp(t, nil, addr, args...)
}

// weirApp is weir with a hook to adjust the app before it runs.
func weirApp(t *testing.T, adjust func(*app), addr string, args ...string) result {
	t.Helper()
	var stdout, stderr syncBuffer
	a := testApp(&stdout, &stderr, nil)
	if adjust != nil {
		adjust(a)
	}
	if addr != "" {
		args = append([]string{"--jobmanager", addr}, args...)
	}
	code := a.run(context.Background(), args)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func (r result) check(t *testing.T, wantStdout, wantStderr string, wantCode int) {
	t.Helper()
	if r.stdout != wantStdout {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, wantStdout)
	}
	if r.stderr != wantStderr {
		t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, wantStderr)
	}
	if r.code != wantCode {
		t.Errorf("exit code %d, want %d", r.code, wantCode)
	}
}
