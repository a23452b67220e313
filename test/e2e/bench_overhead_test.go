package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkCheckpointOverhead measures what exactly-once checkpoints every
// second cost a job with large keyed state (issue 14: at least 95 % of the
// throughput without checkpoints). The job is sequence(1 M keys) -> hash ->
// aggregate(count, sum) -> blackhole-sink at parallelism 2 over two
// TaskManagers, so each aggregate subtask holds about 500 k keys; it runs
// once without checkpoints and once with them, interleaved b.N times, and
// reports both throughputs (records per second of wall time and per
// TaskManager CPU-second) and their ratios.
//
// WEIR_BENCH_RECORDS sets the number of records (default 40M, 40 per key).
func BenchmarkCheckpointOverhead(b *testing.B) {
	const keys = 1_000_000
	total := int64(40_000_000)
	if s := os.Getenv("WEIR_BENCH_RECORDS"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < keys {
			b.Fatalf("WEIR_BENCH_RECORDS=%q: want a number of records >= %d", s, keys)
		}
		total = n
	}
	perKey := total / keys
	c := newCluster(b, 2, 1)
	job := func(config string) string {
		return fmt.Sprintf(`
name: checkpoint-overhead
parallelism: 2
%soperators:
  - id: numbers
    type: sequence
    properties: {keys: %d, count: %d}
  - id: counted
    type: aggregate
    input: {from: numbers, partition: hash, key: key}
    properties: {aggregates: {n: count, total: "sum(seq)"}}
  - id: out
    type: blackhole-sink
    input: counted
`, config, keys, perKey)
	}
	ckptDir := filepath.Join(c.dir, "checkpoints")
	runs := []struct {
		name, file string
		wall, cpu  float64
	}{
		{name: "no checkpoints", file: c.writeJob("plain.yaml", job(""))},
		{name: "exactly-once every 1s", file: c.writeJob("checkpointed.yaml", job(fmt.Sprintf(`config:
  execution.checkpointing.interval: 1s
  execution.checkpointing.mode: EXACTLY_ONCE
  execution.checkpointing.dir: %q
`, ckptDir)))},
	}
	checkpoints := 0
	for i := 0; i < b.N; i++ {
		for r := range runs {
			cpuBefore := c.taskManagerCPU()
			start := time.Now()
			stdout, stderr, code := c.weir("run", runs[r].file)
			if code != 0 {
				b.Fatalf("%s: job failed: %s\n%s", runs[r].name, stdout, stderr)
			}
			runs[r].wall += time.Since(start).Seconds()
			runs[r].cpu += c.taskManagerCPU() - cpuBefore
		}
		checkpoints += completed(c.checkpoints(latestJob(b, c, "checkpoint-overhead").ID))
	}
	records := float64(perKey*keys) * float64(b.N)
	for _, r := range runs {
		fmt.Printf("checkpoint overhead, %s: %.0f records in %.2fs wall, %.2f TaskManager CPU-seconds: %.0f records/s, %.0f records per CPU-second\n",
			r.name, records, r.wall, r.cpu, records/r.wall, records/r.cpu)
	}
	plain, ckpt := runs[0], runs[1]
	b.ReportMetric(records/plain.wall, "plain-records/s")
	b.ReportMetric(records/ckpt.wall, "checkpointed-records/s")
	b.ReportMetric(plain.wall/ckpt.wall, "throughput-ratio")
	b.ReportMetric(plain.cpu/ckpt.cpu, "per-cpu-ratio")
	b.ReportMetric(float64(checkpoints)/float64(b.N), "checkpoints/run")
	fmt.Printf("checkpoint overhead: %d checkpoints completed; with checkpoints %.1f %% of the throughput without (wall), %.1f %% per TaskManager CPU-second (target 95 %%)\n",
		checkpoints, 100*plain.wall/ckpt.wall, 100*plain.cpu/ckpt.cpu)
}
