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

	"github.com/weirstream/weir/pkg/snapshot/s3/s3test"
)

// BenchmarkCheckpointStorage runs a keyed count over 1 M keys (sequence ->
// hash -> aggregate -> blackhole-sink, parallelism 2 over two TaskManagers)
// with a checkpoint every 2 s, once into a local directory and once into a
// MinIO server on loopback, and reports the job's throughput and the
// duration and size of its checkpoints once every key is in the state
// (make bench; docs/benchmarks.md).
//
// WEIR_BENCH_CP_RECORDS_PER_KEY sets the records per key (default 8).
func BenchmarkCheckpointStorage(b *testing.B) {
	perKey := 8
	if s := os.Getenv("WEIR_BENCH_CP_RECORDS_PER_KEY"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 {
			b.Fatalf("WEIR_BENCH_CP_RECORDS_PER_KEY %q: want an integer of at least 2", s)
		}
		perKey = n
	}
	const keys = 1_000_000
	for _, driver := range []string{"file", "s3"} {
		b.Run(driver, func(b *testing.B) {
			var extra []string
			dir := ""
			if driver == "s3" {
				srv := s3test.Start(b)
				for k, v := range srv.Config() {
					extra = append(extra, k+"="+v)
				}
				dir = "s3://" + srv.Bucket + "/cp"
			}
			c := newCluster(b, 2, 1, extra...)
			if dir == "" {
				dir = filepath.Join(c.dir, "checkpoints")
			}
			job := c.writeJob("bench-cp.yaml", fmt.Sprintf(`
name: bench-checkpoint-%s
parallelism: 2
config:
  execution.checkpointing.interval: 2s
  execution.checkpointing.dir: %q
operators:
  - id: numbers
    type: sequence
    properties: {keys: %d, count: %d}
  - id: counted
    type: aggregate
    input: {from: numbers, partition: hash, key: key}
    properties: {aggregates: {n: count}}
  - id: out
    type: blackhole-sink
    input: counted
`, driver, dir, keys, perKey))
			var wall float64
			var durations []int64
			var size int64
			for i := 0; i < b.N; i++ {
				start := time.Now()
				jobID := strings.TrimSpace(c.mustWeir("run", "-d", job))
				st := c.waitState(jobID, 30*time.Minute, "FINISHED", "FAILED", "CANCELED")
				wall += time.Since(start).Seconds()
				if st.State != "FINISHED" {
					b.Fatalf("job ended %s: %s", st.State, st.StatusMessage)
				}
				// Checkpoints of the full state: at least the largest
				// size seen, less 1% (counts grow, keys do not).
				cps := c.checkpoints(jobID)
				for _, cp := range cps {
					if cp.Status == "COMPLETED" {
						size = max(size, cp.SizeBytes)
					}
				}
				for _, cp := range cps {
					if cp.Status == "COMPLETED" && cp.SizeBytes >= size*99/100 {
						durations = append(durations, cp.DurationMs)
					}
				}
			}
			if len(durations) == 0 {
				b.Fatalf("no checkpoint of the full state: the job ended too soon (raise WEIR_BENCH_CP_RECORDS_PER_KEY)")
			}
			slices.Sort(durations)
			median := durations[len(durations)/2]
			records := float64(keys*perKey) * float64(b.N)
			b.ReportMetric(records/wall, "records/s")
			b.ReportMetric(float64(median), "checkpoint-ms")
			b.ReportMetric(float64(size), "checkpoint-bytes")
			fmt.Printf("checkpoint storage %s: %.0f records in %.1fs (%.0f records/s); %d checkpoints of the full state (%d bytes): median %d ms, min %d ms, max %d ms\n",
				driver, records, wall, records/wall, len(durations), size, median, durations[0], durations[len(durations)-1])
		})
	}
}
