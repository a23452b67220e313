package cli

import (
	"testing"

	"github.com/weirstream/weir/proto/weirpb"
)

// The JobManager's warnings about a job file reach the user on stderr, one
// line each, control characters made printable; stdout keeps only the id.
func TestRunPrintsSubmitWarnings(t *testing.T) {
	addr := serve(t, &fakeJobService{submit: func(*weirpb.SubmitJobRequest) (*weirpb.SubmitJobResponse, error) {
		return &weirpb.SubmitJobResponse{JobId: "7f3c2a1e", Warnings: []string{
			`job.yaml: config: unknown configuration key "parallelism.defualt" (did you mean "parallelism.default"?)`,
			"evil\x1b[2J",
		}}, nil
	}})
	weir(t, addr, "run", "-d", writeJobFile(t)).check(t, "7f3c2a1e\n",
		`warning: job.yaml: config: unknown configuration key "parallelism.defualt" (did you mean "parallelism.default"?)`+"\n"+
			`warning: evil\x1b[2J`+"\n", 0)
}
