package jobmanager

import (
	"context"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/proto/weirpb"
)

// TestSavepointRelativeTargetRejected: a relative target directory would
// be resolved by the JobManager (metadata) and by each TaskManager (state)
// against its own working directory, giving a savepoint that cannot be
// restored; it is refused before anything is triggered.
func TestSavepointRelativeTargetRejected(t *testing.T) {
	c := startJM(t, zap.NewNop(), nil)
	const want = `savepoint directory "sp/here" is a relative path: give an absolute path or a URI such as file:///var/weir/savepoints, ` +
		`since the JobManager and each TaskManager would resolve it against its own working directory`
	_, err := c.api.TriggerSavepoint(context.Background(), &weirpb.TriggerSavepointRequest{JobId: "0123456789abcdef0123456789abcdef", TargetDirectory: "sp/here"})
	if s, _ := status.FromError(err); s.Code() != codes.InvalidArgument || s.Message() != want {
		t.Errorf("savepoint: %v\nwant InvalidArgument: %s", err, want)
	}
	_, err = c.api.StopJob(context.Background(), &weirpb.StopJobRequest{JobId: "0123456789abcdef0123456789abcdef", TargetDirectory: "sp/here"})
	if s, _ := status.FromError(err); s.Code() != codes.InvalidArgument || s.Message() != want {
		t.Errorf("stop with savepoint: %v\nwant InvalidArgument: %s", err, want)
	}
	// An absolute one gets as far as the job.
	_, err = c.api.TriggerSavepoint(context.Background(), &weirpb.TriggerSavepointRequest{JobId: "0123456789abcdef0123456789abcdef", TargetDirectory: t.TempDir()})
	if s, _ := status.FromError(err); s.Code() != codes.NotFound {
		t.Errorf("absolute target: %v, want NotFound (no such job)", err)
	}
}
