package jobmanager

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/proto/weirpb"
)

// Submissions beyond the documented limits are refused before anything is
// parsed or stored, naming the limit; beyond the gRPC message limit, gRPC
// refuses them before the handler runs.
func TestSubmitLimits(t *testing.T) {
	c := startJM(t, nil, nil)
	long := strings.Repeat("p", config.MaxPathLength+1)
	for _, tc := range []struct {
		name string
		req  *weirpb.SubmitJobRequest
		code codes.Code
		msg  string
	}{
		{"job file over 1 MiB", &weirpb.SubmitJobRequest{FileName: "big.yaml", JobSpec: make([]byte, config.MaxJobFileSize+1)},
			codes.InvalidArgument, "big.yaml is 1048577 bytes: the limit for job files is 1048576 bytes (1 MiB)"},
		{"no file name", &weirpb.SubmitJobRequest{JobSpec: make([]byte, 2<<20)},
			codes.InvalidArgument, "the job file is 2097152 bytes: the limit for job files is 1048576 bytes (1 MiB)"},
		{"file name", &weirpb.SubmitJobRequest{FileName: long, JobSpec: []byte(chainJob(1))},
			codes.InvalidArgument, "job file name is 4097 bytes: the limit is 4096 bytes"},
		{"savepoint path", &weirpb.SubmitJobRequest{FileName: "job.yaml", JobSpec: []byte(chainJob(1)), FromSavepoint: long},
			codes.InvalidArgument, "from_savepoint is 4097 bytes: the limit is 4096 bytes"},
		{"message over 4 MiB", &weirpb.SubmitJobRequest{FileName: "huge.yaml", JobSpec: make([]byte, maxRecvMsgSize)},
			codes.ResourceExhausted, fmt.Sprintf("grpc: received message larger than max (%d vs. %d)", maxRecvMsgSize+16, maxRecvMsgSize)},
	} {
		if tc.code == codes.ResourceExhausted && proto.Size(tc.req) != maxRecvMsgSize+16 {
			t.Fatalf("%s: the request is %d bytes", tc.name, proto.Size(tc.req))
		}
		_, err := c.api.SubmitJob(context.Background(), tc.req)
		if status.Code(err) != tc.code || status.Convert(err).Message() != tc.msg {
			t.Errorf("%s: SubmitJob = %v; want %s %q", tc.name, err, tc.code, tc.msg)
		}
	}
	resp, err := c.api.ListJobs(context.Background(), &weirpb.ListJobsRequest{})
	if err != nil || len(resp.Jobs) != 0 {
		t.Fatalf("ListJobs = %v, %v; want no job", resp, err)
	}
}

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 5, "short"},
		{"longer", 4, "long… (2 more bytes cut)"},
		{"aé", 2, "a… (2 more bytes cut)"}, // é is 2 bytes: never cut in half
		{"日本語", 4, "日… (6 more bytes cut)"},
		{"", 0, ""},
	} {
		if got := clip(tc.in, tc.n); got != tc.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// A TaskManager's failure message is clipped before the job keeps it (per
// subtask and in the exception history); an oversized id is refused.
func TestTaskManagerMessagesAreBounded(t *testing.T) {
	c := startJM(t, nil, nil)
	a := startTM(t, c.jm.Addr(), "tm-a", 1)
	id := c.submit(chainJob(1))
	failure := strings.Repeat("x", 100<<10)
	a.report(a.receive(1)["0/0#0"].Execution, "FAILED", failure)
	clipped := strings.Repeat("x", maxMessageLength) + fmt.Sprintf("… (%d more bytes cut)", len(failure)-maxMessageLength)
	d := c.waitState(id, "FAILED", "src -> map -> sink subtask 0 failed: "+clipped)
	if len(d.Exceptions) != 1 || d.Exceptions[0].Message != clipped || d.Tasks[0].Failure != clipped {
		t.Fatalf("exception and task failure not clipped: %d, %d bytes", len(d.Exceptions[0].Message), len(d.Tasks[0].Failure))
	}

	conn, err := grpc.NewClient(c.jm.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = weirpb.NewJobManagerGatewayClient(conn).RegisterTaskManager(context.Background(), &weirpb.RegisterTaskManagerRequest{
		TaskmanagerId: strings.Repeat("t", 257), RpcAddress: "h:1", DataAddress: "h:2", NumSlots: 1, CallToken: "t"})
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != "register TaskManager: taskmanager_id is 257 bytes: the limit is 256" {
		t.Fatalf("RegisterTaskManager with a 257-byte id = %v", err)
	}
}
