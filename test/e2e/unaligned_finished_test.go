package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type unalignedCheckpointJSON struct {
	ID         int64  `json:"id"`
	Status     string `json:"status"`
	Unaligned  bool   `json:"unaligned"`
	DurationMs int64  `json:"duration_ms"`
	InFlight   int64  `json:"persisted_in_flight_bytes"`
}

func (c *cluster) unalignedCheckpoints(jobID string) []unalignedCheckpointJSON {
	c.t.Helper()
	var cps []unalignedCheckpointJSON
	c.weirJSON(&cps, "checkpoints", jobID)
	return cps
}

// quickUnaligned returns the completed unaligned checkpoints after id that
// persisted in-flight data and took less than a second: ones that overtook
// the backlog instead of waiting for it to drain.
func quickUnaligned(cps []unalignedCheckpointJSON, after int64) []unalignedCheckpointJSON {
	var out []unalignedCheckpointJSON
	for _, cp := range cps {
		if cp.ID > after && cp.Status == "COMPLETED" && cp.Unaligned && cp.InFlight > 0 && cp.DurationMs < 1000 {
			out = append(out, cp)
		}
	}
	return out
}

// Unaligned checkpoints after the sources finished (FLIP-147): a bounded
// source that finishes at once feeds an aggregate and a throttled sink for
// over ten seconds. The checkpoints triggered at the aggregate once its
// inputs finished still overtake the backlog (in-flight bytes > 0, well
// under a second) instead of waiting for it; a SIGKILL after them and the
// output is still exactly once.
func TestUnalignedAfterSourcesFinished(t *testing.T) {
	c := newCluster(t, 3, 2)
	out := filepath.Join(c.dir, "out")
	// 16 keys x 2,000 records, unthrottled; the sink takes 1,500 records/s
	// per subtask (p=2): about 11 s.
	job := keyedJob{
		name: "finished-sources",
		config: c.checkpointing("300ms",
			"execution.checkpointing.unaligned.enabled: true",
			"restart-strategy.type: fixed-delay",
			"restart-strategy.fixed-delay.attempts: 10",
			"restart-strategy.fixed-delay.delay: 500ms"),
		keys: 16, count: 2000, sinkRate: 1500, out: out,
	}.write(c)
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", job))

	// The sources have finished emitting (their input ended, EndOfData
	// sent) once every record is out; they stay RUNNING until their output
	// queues drained, then FINISH.
	var sinkTM string
	waitFor(t, 30*time.Second, "every record emitted by the sources", func() bool {
		var out int64
		for _, task := range c.status(jobID).Tasks {
			switch {
			case task.Operator == "numbers":
				out += task.RecordsOut
			case task.State == "RUNNING":
				sinkTM = task.TaskManager
			}
		}
		return out == 16*2000 && sinkTM != ""
	})
	var before int64
	for _, cp := range c.unalignedCheckpoints(jobID) {
		before = max(before, cp.ID)
	}
	var quick []unalignedCheckpointJSON
	waitFor(t, 60*time.Second, "3 unaligned checkpoints with in-flight data after the sources finished", func() bool {
		quick = quickUnaligned(c.unalignedCheckpoints(jobID), before)
		return len(quick) >= 3
	})
	if st := c.status(jobID); st.State != "RUNNING" {
		t.Fatalf("the job is %s before the kill: the sink drained the backlog too early to test anything", st.State)
	}
	t.Logf("after the sources finished: %+v", quick)
	c.processOf(sinkTM).kill()
	t.Logf("killed TaskManager %s (aggregate and sink)", sinkTM)

	st := c.waitState(jobID, 180*time.Second, "FINISHED", "FAILED", "CANCELED")
	if st.State != "FINISHED" {
		t.Fatalf("job ended %s: %s", st.State, st.StatusMessage)
	}
	if f := c.failover(jobID); f.Restarts < 1 {
		t.Errorf("restarts = %d, want at least 1", f.Restarts)
	}
	checkKeyedCounts(t, out, 16, 2000)
}

// A sink so slow that one network buffer takes longer than 5 s: a barrier
// is taken between two records, the rest of the buffer becoming channel
// state, so unaligned checkpoints still complete in well under a second.
func TestUnalignedBarrierBetweenRecords(t *testing.T) {
	c := newCluster(t, 2, 2)
	out := filepath.Join(c.dir, "out")
	// Unthrottled sources fill whole 32 KiB buffers (over 1,000 records
	// each); the sink takes 100 records/s per subtask: over 10 s a buffer.
	job := keyedJob{
		name: "slow-buffer",
		config: c.checkpointing("500ms",
			"execution.checkpointing.unaligned.enabled: true",
			"execution.checkpointing.timeout: 10 min"),
		keys: 16, count: 1_000_000, sinkRate: 100, out: out,
	}.write(c)
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", job))
	c.waitState(jobID, 60*time.Second, "RUNNING")
	// The first checkpoints may complete before the buffers fill up: start
	// counting once one persisted in-flight data.
	waitFor(t, 30*time.Second, "a checkpoint with in-flight data", func() bool {
		for _, cp := range c.unalignedCheckpoints(jobID) {
			if cp.Status == "COMPLETED" && cp.InFlight > 0 {
				return true
			}
		}
		return false
	})
	var before int64
	for _, cp := range c.unalignedCheckpoints(jobID) {
		before = max(before, cp.ID)
	}
	var quick []unalignedCheckpointJSON
	waitFor(t, 60*time.Second, "3 quick unaligned checkpoints while the sink chews on a buffer", func() bool {
		quick = quickUnaligned(c.unalignedCheckpoints(jobID), before)
		return len(quick) >= 3
	})
	t.Logf("%+v", quick)
	// Each of them overtook part of a buffer being processed: more in flight
	// than the sink processes between two checkpoints.
	for _, cp := range quick {
		if cp.InFlight < 1000 {
			t.Errorf("checkpoint %d persisted only %d in-flight bytes", cp.ID, cp.InFlight)
		}
	}
	c.mustWeir("cancel", jobID)
	c.waitState(jobID, 60*time.Second, "CANCELED")
}
