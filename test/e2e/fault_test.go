package e2e

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type exceptionJSON struct {
	Time    string `json:"time"`
	Task    string `json:"task"`
	Message string `json:"message"`
}

type failoverJSON struct {
	State         string          `json:"state"`
	StatusMessage string          `json:"status_message"`
	Restarts      int             `json:"restarts"`
	Exceptions    []exceptionJSON `json:"exceptions"`
}

func (c *cluster) failover(jobID string) failoverJSON {
	c.t.Helper()
	var f failoverJSON
	c.weirJSON(&f, "status", jobID)
	return f
}

// faultJob is the fault tests' job: sequence(keys 16, count per key, rate
// per subtask, p=2) -> hash(key) -> aggregate(count) -> file-sink, with
// checkpoints every 300 ms in the given mode and fixed-delay restarts.
func faultJob(c *cluster, mode string, count, rate int, out string) string {
	return keyedJob{
		name: "keyed-" + strings.ToLower(strings.ReplaceAll(mode, "_", "-")),
		config: c.checkpointing("300ms",
			"execution.checkpointing.mode: "+mode,
			"restart-strategy.type: fixed-delay",
			"restart-strategy.fixed-delay.attempts: 10",
			"restart-strategy.fixed-delay.delay: 500ms"),
		keys: 16, count: count, rate: rate, out: out,
	}.write(c)
}

// runningOn waits until every task of the job runs and returns a
// TaskManager that runs one of them, preferring the sources' TaskManager.
func (c *cluster) runningOn(jobID string, rnd *rand.Rand) string {
	c.t.Helper()
	var tms []string
	waitFor(c.t, 60*time.Second, "every task RUNNING", func() bool {
		st := c.status(jobID)
		if st.State != "RUNNING" || len(st.Tasks) == 0 {
			return false
		}
		tms = tms[:0]
		for _, task := range st.Tasks {
			if task.State != "RUNNING" {
				return false
			}
			tms = append(tms, task.TaskManager)
		}
		return true
	})
	return tms[rnd.IntN(len(tms))]
}

// waitCheckpoints waits until the job has completed n more checkpoints than before.
func (c *cluster) waitCheckpoints(jobID string, n int) {
	c.t.Helper()
	before := completed(c.checkpoints(jobID))
	waitFor(c.t, 60*time.Second, fmt.Sprintf("%d more completed checkpoints", n), func() bool {
		return completed(c.checkpoints(jobID)) >= before+n
	})
}

// Exactly-once under SIGKILL: a TaskManager running tasks is killed while the
// job runs; the job restarts from the latest checkpoint and finishes, and the
// committed output holds every (key, seq) exactly once with count == seq+1.
func TestExactlyOnceUnderKill(t *testing.T) { exactlyOnceUnderKill(t, newCluster(t, 3, 2)) }

// exactlyOnceUnderKill runs the exactly-once SIGKILL test on c (3
// TaskManagers of 2 slots).
func exactlyOnceUnderKill(t *testing.T, c *cluster) {
	rnd := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	out := filepath.Join(c.dir, "out")
	// 16 keys x 20000 at 10,000 records/s per subtask: 16 s without failures.
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", faultJob(c, "EXACTLY_ONCE", 20000, 10000, out)))
	victim := c.runningOn(jobID, rnd)
	c.waitCheckpoints(jobID, 3)
	c.processOf(victim).kill()
	t.Logf("killed TaskManager %s", victim)

	st := c.waitState(jobID, 120*time.Second, "FINISHED", "FAILED", "CANCELED")
	if st.State != "FINISHED" {
		t.Fatalf("job ended %s: %s", st.State, st.StatusMessage)
	}
	f := c.failover(jobID)
	if f.Restarts < 1 {
		t.Errorf("restarts = %d, want at least 1 after the kill", f.Restarts)
	}
	named := false
	for _, e := range f.Exceptions {
		named = named || strings.Contains(e.Message, victim) || e.Task == victim
	}
	if !named {
		t.Errorf("no exception names the killed TaskManager %s: %+v", victim, f.Exceptions)
	}
	checkKeyedCounts(t, out, 16, 20000)
	t.Logf("after %d restart(s): exactly-once output verified", f.Restarts)
}

// Three kills at random moments, one of them while a checkpoint is in
// flight; a new TaskManager joins after each kill.
func TestExactlyOnceUnderThreeKills(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rnd := rand.New(rand.NewPCG(2, seed))
	t.Logf("random seed %d", seed)
	c := newCluster(t, 3, 2)
	out := filepath.Join(c.dir, "out")
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", faultJob(c, "EXACTLY_ONCE", 20000, 10000, out)))
	hitInFlight := false
	for kill := 1; kill <= 3; kill++ {
		victim := c.runningOn(jobID, rnd)
		c.waitCheckpoints(jobID, 1)
		time.Sleep(time.Duration(rnd.IntN(1500)) * time.Millisecond) // a random moment
		if kill == 2 {
			// Kill while a checkpoint is in flight: poll until one is.
			deadline := time.Now().Add(20 * time.Second)
			for !hitInFlight && time.Now().Before(deadline) {
				for _, cp := range c.checkpoints(jobID) {
					if cp.Status == "IN_PROGRESS" {
						hitInFlight = true
						break
					}
				}
			}
		}
		c.processOf(victim).kill()
		t.Logf("kill %d: TaskManager %s", kill, victim)
		c.addTaskManager(2)
	}
	if !hitInFlight {
		t.Errorf("never saw a checkpoint IN_PROGRESS to kill during")
	}
	st := c.waitState(jobID, 180*time.Second, "FINISHED", "FAILED", "CANCELED")
	if st.State != "FINISHED" {
		t.Fatalf("job ended %s: %s", st.State, st.StatusMessage)
	}
	f := c.failover(jobID)
	if f.Restarts < 3 {
		t.Errorf("restarts = %d, want at least 3", f.Restarts)
	}
	checkKeyedCounts(t, out, 16, 20000)
	t.Logf("3 kills (one during an in-flight checkpoint), %d restarts: exactly-once output verified", f.Restarts)
}

// AT_LEAST_ONCE with a kill: no (key, seq) is missing; duplicates are allowed
// and counted.
func TestAtLeastOnceUnderKill(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, uint64(time.Now().UnixNano())))
	c := newCluster(t, 3, 2)
	out := filepath.Join(c.dir, "out")
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", faultJob(c, "AT_LEAST_ONCE", 10000, 10000, out)))
	victim := c.runningOn(jobID, rnd)
	c.waitCheckpoints(jobID, 3)
	c.processOf(victim).kill()
	st := c.waitState(jobID, 120*time.Second, "FINISHED", "FAILED", "CANCELED")
	if st.State != "FINISHED" {
		t.Fatalf("job ended %s: %s", st.State, st.StatusMessage)
	}
	seen := map[[2]int64]int{}
	for _, r := range committedRecords(t, out) {
		seen[[2]int64{intField(t, r, "key"), intField(t, r, "seq")}]++
	}
	dups := 0
	for k := int64(0); k < 16; k++ {
		for s := int64(0); s < 10000; s++ {
			n := seen[[2]int64{k, s}]
			if n == 0 {
				t.Fatalf("missing record for key %d seq %d", k, s)
			}
			dups += n - 1
		}
	}
	if len(seen) != 16*10000 {
		t.Errorf("%d distinct (key, seq) pairs, want %d", len(seen), 16*10000)
	}
	t.Logf("at-least-once: all %d (key, seq) pairs present, %d duplicates after %d restart(s)", len(seen), dups, c.failover(jobID).Restarts)
}

// Restart strategies on a deterministic failure: a map that fails at seq 300.
func TestRestartStrategies(t *testing.T) {
	c := newCluster(t, 1, 2)
	cases := []struct {
		name, config string
		restarts     int
		minGap       time.Duration // between consecutive failures
		growing      bool          // gaps must grow
	}{
		{"fixed-delay", "{restart-strategy.type: fixed-delay, restart-strategy.fixed-delay.attempts: 2, restart-strategy.fixed-delay.delay: 1s}", 2, time.Second, false},
		{"none", "{restart-strategy.type: none}", 0, 0, false},
		{"failure-rate", "{restart-strategy.type: failure-rate, restart-strategy.failure-rate.max-failures-per-interval: 2, restart-strategy.failure-rate.failure-rate-interval: 1 min, restart-strategy.failure-rate.delay: 300ms}", 2, 300 * time.Millisecond, false},
		{"exponential-delay", "{restart-strategy.type: exponential-delay, restart-strategy.exponential-delay.initial-backoff: 200ms, restart-strategy.exponential-delay.backoff-multiplier: 3, restart-strategy.exponential-delay.max-backoff: 1 min, restart-strategy.exponential-delay.jitter-factor: 0, restart-strategy.exponential-delay.attempts-before-reset-backoff: 3}", 3, 200 * time.Millisecond, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job := c.writeJob(tc.name+".yaml", fmt.Sprintf(`
name: fails-at-300
config: %s
operators:
  - id: numbers
    type: sequence
    properties: {keys: 1, count: 1000}
  - id: divide
    type: map
    input: numbers
    properties: {expr: '{"seq": record.seq, "q": 100 / (record.seq - 300)}'}
  - id: out
    type: blackhole-sink
    input: divide
`, tc.config))
			jobID := strings.TrimSpace(c.mustWeir("run", "-d", job))
			st := c.waitState(jobID, 60*time.Second, "FAILED", "FINISHED", "CANCELED")
			if st.State != "FAILED" {
				t.Fatalf("job ended %s, want FAILED", st.State)
			}
			f := c.failover(jobID)
			if f.Restarts != tc.restarts {
				t.Errorf("restarts = %d, want exactly %d", f.Restarts, tc.restarts)
			}
			if !strings.Contains(f.StatusMessage, "100 / (record.seq - 300)") {
				t.Errorf("root cause %q does not name the failing expression", f.StatusMessage)
			}
			// Exceptions come newest first; one per failure.
			var times []time.Time
			for i := len(f.Exceptions) - 1; i >= 0; i-- {
				e := f.Exceptions[i]
				if !strings.Contains(e.Message, "division by zero") {
					continue
				}
				ts, err := time.Parse(time.RFC3339Nano, e.Time)
				if err != nil {
					t.Fatalf("exception time %q: %v", e.Time, err)
				}
				times = append(times, ts)
			}
			if len(times) != tc.restarts+1 {
				t.Fatalf("%d failures in the exceptions, want %d: %+v", len(times), tc.restarts+1, f.Exceptions)
			}
			var gaps []time.Duration
			for i := 1; i < len(times); i++ {
				gap := times[i].Sub(times[i-1])
				gaps = append(gaps, gap)
				if gap < tc.minGap {
					t.Errorf("failures %d and %d are %v apart, want at least the restart delay %v", i, i+1, gap, tc.minGap)
				}
				if tc.growing && i > 1 && gap <= gaps[i-2] {
					t.Errorf("gaps between failures %v do not grow", gaps)
				}
			}
			t.Logf("%s: %d restarts, gaps between failures %v", tc.name, f.Restarts, gaps)
		})
	}
}
