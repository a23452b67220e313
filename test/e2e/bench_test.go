package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkPipeline runs sequence -> map -> hash -> aggregate -> blackhole-sink
// at parallelism 2 over two TaskManagers (one slot each) and reports records
// per second of wall time and per CPU-second of the TaskManager processes.
// It runs the job once per b.N; run it with -benchtime 1x (make bench).
//
// WEIR_BENCH_RECORDS sets the number of source records (default 20M).
func BenchmarkPipeline(b *testing.B) { benchPipeline(b, newCluster(b, 2, 1)) }

// BenchmarkPipelineTLS is BenchmarkPipeline with internal and API TLS on:
// every record crosses a TLS connection between the TaskManagers.
func BenchmarkPipelineTLS(b *testing.B) {
	c, _, _ := newTLSCluster(b, 2, 1)
	benchPipeline(b, c)
}

func benchPipeline(b *testing.B, c *cluster) {
	total := benchRecords(b)
	var wall, cpu float64
	for i := 0; i < b.N; i++ {
		w, c := runPipeline(b, c, total)
		wall += w
		cpu += c
	}
	records := float64(total/loopKeys*loopKeys) * float64(b.N)
	b.ReportMetric(records/wall, "records/s")
	b.ReportMetric(records/cpu, "records/cpu-s")
	b.ReportMetric(cpu/wall, "tm-cores")
	fmt.Printf("pipeline: %.0f records in %.2fs wall, %.2f TaskManager CPU-seconds: %.0f records/s, %.0f records per CPU-second\n",
		records, wall, cpu, records/wall, records/cpu)
}

// runPipeline runs the benchmark pipeline once on c over total records
// (rounded down to a multiple of loopKeys) and returns its wall seconds and
// the TaskManagers' CPU seconds.
func runPipeline(b *testing.B, c *cluster, total int64) (wall, cpu float64) {
	job := c.writeJob("bench.yaml", fmt.Sprintf(`
name: bench-pipeline
parallelism: 2
operators:
  - id: numbers
    type: sequence
    properties: {keys: %d, count: %d}
  - id: doubled
    type: map
    input: numbers
    properties: {expr: '{"key": record.key, "seq": record.seq, "twice": record.seq * 2}'}
  - id: counted
    type: aggregate
    input: {from: doubled, partition: hash, key: key}
    properties: {aggregates: {n: count, total: "sum(twice)"}}
  - id: out
    type: blackhole-sink
    input: counted
`, loopKeys, total/loopKeys))
	cpuBefore := c.taskManagerCPU()
	start := time.Now()
	stdout, stderr, code := c.weir("run", job)
	if code != 0 {
		b.Fatalf("job failed: %s\n%s", stdout, stderr)
	}
	return time.Since(start).Seconds(), c.taskManagerCPU() - cpuBefore
}

// taskManagerCPU is the user+system CPU time, in seconds, that the running
// TaskManager processes have used so far (from /proc/<pid>/stat).
func (c *cluster) taskManagerCPU() float64 {
	const clockTicks = 100 // USER_HZ on Linux
	var sum float64
	for _, p := range c.taskmanagers {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
		if err != nil {
			continue
		}
		// Fields after the command name in parentheses; utime and stime are
		// fields 14 and 15 of the line.
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ut, _ := strconv.ParseFloat(fields[11], 64)
		st, _ := strconv.ParseFloat(fields[12], 64)
		sum += (ut + st) / clockTicks
	}
	return sum
}
