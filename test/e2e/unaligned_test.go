package e2e

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Exactly-once under SIGKILL with unaligned checkpoints, while a
// rate-limited sink keeps the pipeline backpressured: checkpoints persist
// in-flight buffers, and the restored job still commits every (key, seq)
// exactly once with count == seq+1.
func TestUnalignedExactlyOnceUnderKill(t *testing.T) {
	rnd := rand.New(rand.NewPCG(4, uint64(time.Now().UnixNano())))
	c := newCluster(t, 3, 2)
	out := filepath.Join(c.dir, "out")
	// 16 keys x 10000; the sink takes 5,000 records/s per subtask, half
	// what the sources offer, so buffers queue up in between: about 16 s.
	job := keyedJob{
		name: "unaligned",
		config: c.checkpointing("300ms",
			"execution.checkpointing.unaligned.enabled: true",
			"restart-strategy.type: fixed-delay",
			"restart-strategy.fixed-delay.attempts: 10",
			"restart-strategy.fixed-delay.delay: 500ms"),
		keys: 16, count: 10000, rate: 10000, sinkRate: 5000, out: out,
	}.write(c)
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", job))
	victim := c.runningOn(jobID, rnd)
	var inflight int64
	waitFor(t, 60*time.Second, "a completed unaligned checkpoint with in-flight data", func() bool {
		var cps []struct {
			Status    string `json:"status"`
			Unaligned bool   `json:"unaligned"`
			InFlight  int64  `json:"persisted_in_flight_bytes"`
		}
		c.weirJSON(&cps, "checkpoints", jobID)
		for _, cp := range cps {
			if cp.Status == "COMPLETED" && cp.Unaligned && cp.InFlight > 0 {
				inflight = cp.InFlight
				return true
			}
		}
		return false
	})
	c.processOf(victim).kill()
	t.Logf("killed TaskManager %s after a checkpoint persisted %d in-flight bytes", victim, inflight)

	st := c.waitState(jobID, 180*time.Second, "FINISHED", "FAILED", "CANCELED")
	if st.State != "FINISHED" {
		t.Fatalf("job ended %s: %s", st.State, st.StatusMessage)
	}
	if f := c.failover(jobID); f.Restarts < 1 {
		t.Errorf("restarts = %d, want at least 1", f.Restarts)
	}
	checkKeyedCounts(t, out, 16, 10000)
}

// Unaligned checkpoints need EXACTLY_ONCE and one checkpoint at a time.
func TestUnalignedConfigRejected(t *testing.T) {
	c := newCluster(t, 1, 1)
	for _, tc := range []struct{ config, want string }{
		{"{execution.checkpointing.interval: 1s, execution.checkpointing.unaligned.enabled: true, execution.checkpointing.mode: AT_LEAST_ONCE}", "execution.checkpointing.mode"},
		{"{execution.checkpointing.interval: 1s, execution.checkpointing.unaligned.enabled: true, execution.checkpointing.max-concurrent-checkpoints: 2}", "execution.checkpointing.max-concurrent-checkpoints"},
	} {
		job := c.writeJob("bad-unaligned.yaml", fmt.Sprintf(`
name: bad
config: %s
operators:
  - id: numbers
    type: sequence
    properties: {keys: 1, count: 10}
  - id: out
    type: blackhole-sink
    input: numbers
`, tc.config))
		_, stderr, code := c.weir("run", "-d", job)
		if code == 0 || !strings.Contains(stderr, "unaligned") || !strings.Contains(stderr, tc.want) {
			t.Errorf("config %s: exit %d, %q: want a rejection naming unaligned and %s", tc.config, code, stderr, tc.want)
		}
	}
}
