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

// BenchmarkBackpressure runs a job whose sink is throttled to a tenth of
// what its sources offer, with a checkpoint every second, once with aligned
// and once with unaligned checkpoints, and prints the checkpoint duration
// (median and max) and size of both. Run with -benchtime 1x
// (make bench-backpressure). WEIR_BENCH_SECONDS sets how long each mode
// runs (default 30).
func BenchmarkBackpressure(b *testing.B) {
	run := 30 * time.Second
	if s := os.Getenv("WEIR_BENCH_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("WEIR_BENCH_SECONDS: %v", err)
		}
		run = time.Duration(n) * time.Second
	}
	for i := 0; i < b.N; i++ {
		for _, unaligned := range []bool{false, true} {
			mode := map[bool]string{false: "aligned", true: "unaligned"}[unaligned]
			d := backpressuredCheckpoints(b, unaligned, run)
			fmt.Printf("%-9s checkpoints: %d completed, duration median %v max %v, size median %s (in-flight median %s)\n",
				mode, d.n, d.medianDur, d.maxDur, humanBytes(d.medianSize), humanBytes(d.medianInFlight))
			b.ReportMetric(float64(d.medianDur.Milliseconds()), mode+"-median-ms")
			b.ReportMetric(float64(d.maxDur.Milliseconds()), mode+"-max-ms")
		}
	}
}

type checkpointDurations struct {
	n                          int
	medianDur, maxDur          time.Duration
	medianSize, medianInFlight int64
}

func backpressuredCheckpoints(b *testing.B, unaligned bool, run time.Duration) checkpointDurations {
	c := newCluster(b, 2, 1)
	job := keyedJob{
		name: "backpressure",
		config: c.checkpointing("1s",
			fmt.Sprintf("execution.checkpointing.unaligned.enabled: %t", unaligned),
			"execution.checkpointing.timeout: 10 min"),
		keys: 64, rate: 20000, sinkRate: 2000, out: filepath.Join(c.dir, "out"),
	}.write(c)
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", job))
	c.waitState(jobID, 60*time.Second, "RUNNING")
	time.Sleep(run) // the measurement window: checkpoints complete as they can
	var cps []struct {
		Status     string `json:"status"`
		DurationMs int64  `json:"duration_ms"`
		SizeBytes  int64  `json:"size_bytes"`
		InFlight   int64  `json:"persisted_in_flight_bytes"`
	}
	c.weirJSON(&cps, "checkpoints", jobID)
	c.mustWeir("cancel", jobID)
	var durs []time.Duration
	var sizes, inflight []int64
	for _, cp := range cps {
		if cp.Status == "COMPLETED" {
			durs = append(durs, time.Duration(cp.DurationMs)*time.Millisecond)
			sizes = append(sizes, cp.SizeBytes)
			inflight = append(inflight, cp.InFlight)
		}
	}
	if len(durs) == 0 {
		b.Logf("no checkpoint completed within %v", run)
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
