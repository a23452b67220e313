package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkBackpressure runs three backpressured jobs, each once with
// aligned and once with unaligned checkpoints, and prints the checkpoint
// duration (median and max) and size of both. Run with -benchtime 1x
// (make bench-backpressure). WEIR_BENCH_SECONDS sets how long each run
// measures (default 30).
//
//   - backpressure: a sink throttled to a tenth of what its sources offer,
//     a checkpoint every second;
//   - finished-sources: a bounded source that finishes at once, then a
//     throttled sink for tens of seconds: the checkpoints after the sources
//     finished (FLIP-147), triggered at the tasks whose inputs ended;
//   - slow-buffer: a sink that takes over 10 s per network buffer: a barrier
//     handled only between buffers waits for the one in progress.
func BenchmarkBackpressure(b *testing.B) {
	run := 30 * time.Second
	if s := os.Getenv("WEIR_BENCH_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("WEIR_BENCH_SECONDS: %v", err)
		}
		run = time.Duration(n) * time.Second
	}
	only := os.Getenv("WEIR_BENCH_SCENARIO") // one scenario by name; "" = all
	for i := 0; i < b.N; i++ {
		for _, sc := range backpressureScenarios {
			if only != "" && sc.name != only {
				continue
			}
			for _, unaligned := range []bool{false, true} {
				mode := map[bool]string{false: "aligned", true: "unaligned"}[unaligned]
				d := backpressuredCheckpoints(b, sc, unaligned, run)
				fmt.Printf("%-16s %-9s checkpoints: %d completed, duration median %v max %v, size median %s (in-flight median %s)\n",
					sc.name, mode, d.n, d.medianDur, d.maxDur, humanBytes(d.medianSize), humanBytes(d.medianInFlight))
				b.ReportMetric(float64(d.medianDur.Milliseconds()), sc.name+"-"+mode+"-median-ms")
				b.ReportMetric(float64(d.maxDur.Milliseconds()), sc.name+"-"+mode+"-max-ms")
			}
		}
	}
}

type checkpointDurations struct {
	n                          int
	medianDur, maxDur          time.Duration
	medianSize, medianInFlight int64
}

// backpressureScenario is a job and the moment its measurement starts:
// checkpoints triggered after started returns are measured.
type backpressureScenario struct {
	name     string
	interval string
	job      keyedJob
	started  func(c *cluster, jobID string) bool
	warmup   time.Duration // at least this long after RUNNING
}

var backpressureScenarios = []backpressureScenario{
	{name: "backpressure", interval: "1s", job: keyedJob{keys: 64, rate: 20000, sinkRate: 2000},
		started: func(*cluster, string) bool { return true }},
	// 32,000 records fit in the network buffers: the sources are done at
	// once, the sink needs about 30 s.
	{name: "finished-sources", interval: "1s", job: keyedJob{keys: 16, count: 2000, sinkRate: 500},
		started: func(c *cluster, jobID string) bool {
			// Every record emitted: the sources' input ended.
			var out int64
			for _, task := range c.status(jobID).Tasks {
				if task.Operator == "numbers" {
					out += task.RecordsOut
				}
			}
			return out == 16*2000
		}},
	// The unthrottled sources fill every buffer within milliseconds; the
	// sink's records_in shows only after a whole buffer, so the start is a
	// warm-up instead.
	{name: "slow-buffer", interval: "1s", job: keyedJob{keys: 16, count: 1_000_000, sinkRate: 100}, warmup: 3 * time.Second,
		started: func(*cluster, string) bool { return true }},
}

func backpressuredCheckpoints(b *testing.B, sc backpressureScenario, unaligned bool, run time.Duration) checkpointDurations {
	c := newCluster(b, 2, 1)
	j := sc.job
	j.name = sc.name
	j.out = filepath.Join(c.dir, "out")
	j.config = c.checkpointing(sc.interval,
		fmt.Sprintf("execution.checkpointing.unaligned.enabled: %t", unaligned),
		"execution.checkpointing.timeout: 10 min")
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", j.write(c)))
	c.waitState(jobID, 60*time.Second, "RUNNING")
	time.Sleep(sc.warmup)
	waitFor(b, 60*time.Second, sc.name+": the measurement's start", func() bool { return sc.started(c, jobID) })
	var after int64
	for _, cp := range c.unalignedCheckpoints(jobID) {
		after = max(after, cp.ID)
	}
	// The measurement window: checkpoints complete as they can, until the
	// window ends or the job does.
	start := time.Now()
	deadline := start.Add(run)
	for time.Now().Before(deadline) && c.status(jobID).State == "RUNNING" {
		time.Sleep(500 * time.Millisecond)
	}
	b.Logf("%s (unaligned %t): measured for %v after checkpoint %d", sc.name, unaligned, time.Since(start).Round(time.Millisecond), after)
	var cps []struct {
		ID         int64  `json:"id"`
		Status     string `json:"status"`
		DurationMs int64  `json:"duration_ms"`
		SizeBytes  int64  `json:"size_bytes"`
		InFlight   int64  `json:"persisted_in_flight_bytes"`
	}
	c.weirJSON(&cps, "checkpoints", jobID)
	c.weir("cancel", jobID)
	var durs []time.Duration
	var sizes, inflight []int64
	statuses := map[string]int{}
	for _, cp := range cps {
		if cp.ID > after {
			statuses[cp.Status]++
		}
		if cp.ID > after && cp.Status == "COMPLETED" {
			durs = append(durs, time.Duration(cp.DurationMs)*time.Millisecond)
			sizes = append(sizes, cp.SizeBytes)
			inflight = append(inflight, cp.InFlight)
		}
	}
	b.Logf("%s (unaligned %t): checkpoints after the start by status: %v", sc.name, unaligned, statuses)
	if len(durs) == 0 {
		b.Logf("%s: no checkpoint completed within %v", sc.name, run)
		return checkpointDurations{medianDur: run, maxDur: run}
	}
	slices.Sort(durs)
	slices.Sort(sizes)
	slices.Sort(inflight)
	return checkpointDurations{
		n: len(durs), medianDur: durs[len(durs)/2], maxDur: durs[len(durs)-1],
		medianSize: sizes[len(sizes)/2], medianInFlight: inflight[len(inflight)/2],
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
