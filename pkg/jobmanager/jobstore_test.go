package jobmanager

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/proto/weirpb"
)

// seriesOf returns the names of the metrics that have a series of job.
func (c *cluster) seriesOf(job string) []string {
	c.t.Helper()
	mfs, err := c.reg.Gather()
	if err != nil {
		c.t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "job_id" && l.GetValue() == job {
					names = append(names, mf.GetName())
				}
			}
		}
	}
	return names
}

// A terminal job beyond jobstore.max-capacity is no longer listed or
// found; the newer one stays. A job's metrics go when it ends, before it
// leaves the job store.
func TestJobStoreDropsOldestTerminalJob(t *testing.T) {
	c := startJM(t, nil, map[string]string{"jobstore.max-capacity": "1"})
	a := startTM(t, c.jm.Addr(), "tm-a", 1)
	first := c.submit(chainJob(1))
	exec := a.receive(1)["0/0#0"].Execution
	if len(c.seriesOf(first)) == 0 {
		t.Fatal("no metrics of the first job while it runs")
	}
	a.report(exec, "FINISHED", "")
	c.waitState(first, "FINISHED", "")
	if names := c.seriesOf(first); len(names) != 0 {
		t.Fatalf("metrics of the FINISHED job remain: %v", names)
	}
	second := c.submit(chainJob(1))
	exec = a.receive(1)["0/0#0"].Execution
	if len(c.seriesOf(second)) == 0 {
		t.Fatal("no metrics of the second job while it runs")
	}
	a.report(exec, "CANCELED", "")
	c.waitState(second, "FAILED", "src -> map -> sink subtask 0 failed: canceled without a cancel request")

	_, err := c.api.GetJob(context.Background(), &weirpb.GetJobRequest{JobId: first})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("GetJob of the dropped job: %v", err)
	}
	resp, err := c.api.ListJobs(context.Background(), &weirpb.ListJobsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Jobs) != 1 || resp.Jobs[0].Id != second {
		t.Fatalf("ListJobs = %v; want only %s", resp.Jobs, second)
	}
	if names := c.seriesOf(second); len(names) != 0 {
		t.Fatalf("metrics of the FAILED job remain: %v", names)
	}
	_, err = c.api.ListCheckpoints(context.Background(), &weirpb.ListCheckpointsRequest{JobId: first})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("ListCheckpoints of the dropped job: %v", err)
	}
}
