package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/snapshot"
)

type rescaleCheckpointJSON struct {
	ID                     int64  `json:"id"`
	Status                 string `json:"status"`
	Path                   string `json:"path"`
	Unaligned              bool   `json:"unaligned"`
	PersistedInFlightBytes int64  `json:"persisted_in_flight_bytes"`
}

// A retained unaligned checkpoint is a point to rescale from, like a
// savepoint: numbers -hash-> counted -rebalance-> out, backpressured by a
// rate-limited sink so that checkpoints persist in-flight data on both
// edges, is cancelled at p=2, resumed from its retained checkpoint at p=3,
// cancelled again and resumed at p=1 until it finishes. The recovered
// records are redistributed by key group (hash) and spread over the new
// subtasks (rebalance): the committed output of the three runs holds every
// (key, seq) exactly once with count == seq+1.
func TestUnalignedCheckpointRescale(t *testing.T) {
	c := newCluster(t, 2, 2)
	out := filepath.Join(c.dir, "out")
	cpDir := filepath.Join(c.dir, "checkpoints")
	// 16 keys x 2500; the sources offer 6,000 records/s, the sink takes
	// 1,000 records/s per subtask: buffers queue up on both edges.
	const keys, count = 16, 2500
	job := func(name string, p int) string {
		return c.writeJob(name+".yaml", fmt.Sprintf(`
name: %s
parallelism: 2
max-parallelism: 128
config:
  execution.checkpointing.interval: 500ms
  execution.checkpointing.dir: %q
  execution.checkpointing.mode: EXACTLY_ONCE
  execution.checkpointing.unaligned.enabled: true
  execution.checkpointing.num-retained: 1
  execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION
operators:
  - id: numbers
    type: sequence
    properties: {keys: %d, count: %d, rate: 3000}
  - id: counted
    type: aggregate
    parallelism: %d
    input: {from: numbers, partition: hash, key: key}
    properties: {aggregates: {count: count}}
  - id: out
    type: file-sink
    parallelism: %d
    input: {from: counted, partition: rebalance}
    properties: {path: %q, rate: 1000}
`, name, cpDir, keys, count, p, p, out))
	}

	checkpoints := func(jobID string) []rescaleCheckpointJSON {
		var cps []rescaleCheckpointJSON
		c.weirJSON(&cps, "checkpoints", jobID)
		return cps
	}
	// cancelWithInFlight waits for a completed unaligned checkpoint with
	// in-flight data, cancels the job and returns its retained (latest)
	// checkpoint, which must hold in-flight data of both edges.
	cancelWithInFlight := func(jobID string) string {
		t.Helper()
		c.waitState(jobID, 60*time.Second, "RUNNING")
		waitFor(t, 60*time.Second, "a completed unaligned checkpoint with in-flight data", func() bool {
			for _, cp := range checkpoints(jobID) {
				if cp.Status == "COMPLETED" && cp.Unaligned && cp.PersistedInFlightBytes > 0 {
					return true
				}
			}
			return false
		})
		c.mustWeir("cancel", jobID)
		if st := c.waitState(jobID, 60*time.Second, "CANCELED", "FINISHED", "FAILED"); st.State != "CANCELED" {
			t.Fatalf("job %s ended %s before it was cancelled: %s", jobID, st.State, st.StatusMessage)
		}
		var latest rescaleCheckpointJSON
		for _, cp := range checkpoints(jobID) {
			if cp.Status == "COMPLETED" && cp.ID > latest.ID {
				latest = cp
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		md, err := snapshot.LoadMetadata(ctx, latest.Path)
		if err != nil {
			t.Fatalf("retained checkpoint %d at %q: %v", latest.ID, latest.Path, err)
		}
		has := func(op string, kind snapshot.StateKind) bool {
			for _, os := range md.Operators {
				if os.ID != op {
					continue
				}
				for _, st := range os.Subtasks {
					for _, o := range st.State {
						if o.Kind == kind {
							return true
						}
					}
				}
			}
			return false
		}
		hash := has("numbers", snapshot.KindResultSubpartition) || has("counted", snapshot.KindInputChannel)
		rebalance := has("counted", snapshot.KindResultSubpartition) || has("out", snapshot.KindInputChannel)
		if !hash || !rebalance {
			t.Fatalf("retained checkpoint %d (%d in-flight bytes): in-flight data on the hash edge %v, on the rebalance edge %v; want both",
				latest.ID, latest.PersistedInFlightBytes, hash, rebalance)
		}
		t.Logf("job %s cancelled; retained checkpoint %d holds %d in-flight bytes on both edges", jobID, latest.ID, latest.PersistedInFlightBytes)
		return latest.Path
	}

	job1 := strings.TrimSpace(c.mustWeir("run", "-d", job("run1", 2)))
	chk1 := cancelWithInFlight(job1)

	job2 := strings.TrimSpace(c.mustWeir("run", "-d", "--from-savepoint", chk1, job("run2", 3)))
	chk2 := cancelWithInFlight(job2)

	job3 := strings.TrimSpace(c.mustWeir("run", "-d", "--from-savepoint", chk2, job("run3", 1)))
	if st := c.waitState(job3, 180*time.Second, "FINISHED", "FAILED", "CANCELED"); st.State != "FINISHED" {
		t.Fatalf("run 3 ended %s: %s", st.State, st.StatusMessage)
	}
	checkKeyedCounts(t, out, keys, count)
}
