package e2e

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/record"
)

// BenchmarkPipelineLoop is the yardstick for BenchmarkPipeline (issue 14):
// the same per-record work written as one Go loop on one goroutine, with no
// engine around it. It generates (key, seq) as the sequence source does,
// builds the map's {key, seq, twice}, hashes the key with weir's key hash
// (record.Value.Hash64) to the key group and subtask that the hash
// partitioner would pick, keeps count and sum(twice) per key in a Go map,
// builds the aggregate's output and hands it to a blackhole. What it leaves
// out is what the engine adds: serialization, network buffers, CEL, the
// task loop, checkpoints. It reports records per CPU-second of this process
// (getrusage), to set beside the pipeline's records per TaskManager
// CPU-second.
//
// WEIR_BENCH_RECORDS sets the number of records (default 20M), as for
// BenchmarkPipeline; BenchmarkEngineVsLoop runs both and reports the ratio.
func BenchmarkPipelineLoop(b *testing.B) {
	total := benchRecords(b)
	var wall, cpu float64
	for i := 0; i < b.N; i++ {
		w, c := runPipelineLoop(b, total)
		wall += w
		cpu += c
	}
	records := float64(total/loopKeys*loopKeys) * float64(b.N)
	b.ReportMetric(records/wall, "records/s")
	b.ReportMetric(records/cpu, "records/cpu-s")
	fmt.Printf("pipeline loop: %.0f records in %.2fs wall, %.2f CPU-seconds: %.0f records/s, %.0f records per CPU-second\n",
		records, wall, cpu, records/wall, records/cpu)
}

// BenchmarkEngineVsLoop is issue 14's yardstick in one go (make bench): the
// pipeline of BenchmarkPipeline on a cluster, then the loop of
// BenchmarkPipelineLoop in this process, and the ratio of their records per
// CPU-second (the engine's counted over its TaskManagers). Target: 0.5.
func BenchmarkEngineVsLoop(b *testing.B) {
	total := benchRecords(b)
	c := newCluster(b, 2, 1)
	var engineWall, engineCPU, loopWall, loopCPU float64
	for i := 0; i < b.N; i++ {
		w, cpu := runPipeline(b, c, total)
		engineWall += w
		engineCPU += cpu
		w, cpu = runPipelineLoop(b, total)
		loopWall += w
		loopCPU += cpu
	}
	records := float64(total/loopKeys*loopKeys) * float64(b.N)
	engine, loop := records/engineCPU, records/loopCPU
	b.ReportMetric(engine, "engine-records/cpu-s")
	b.ReportMetric(loop, "loop-records/cpu-s")
	b.ReportMetric(engine/loop, "engine/loop")
	fmt.Printf("engine vs loop: engine %.0f records per TaskManager CPU-second (%.2fs wall, %.2f CPU-s), loop %.0f records per CPU-second (%.2fs wall, %.2f CPU-s): ratio %.3f (target 0.5)\n",
		engine, engineWall, engineCPU, loop, loopWall, loopCPU, engine/loop)
}

// loopKeys is the number of keys of the pipeline benchmarks' sequence
// source; each key gets total/loopKeys records.
const loopKeys = 1024

// benchRecords is WEIR_BENCH_RECORDS, the number of source records of the
// pipeline benchmarks (default 20M).
func benchRecords(b *testing.B) int64 {
	total := int64(20_000_000)
	if s := os.Getenv("WEIR_BENCH_RECORDS"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < loopKeys {
			b.Fatalf("WEIR_BENCH_RECORDS=%q: want a number of records >= %d", s, loopKeys)
		}
		total = n
	}
	return total
}

// runPipelineLoop runs the loop once over total records (rounded down to a
// multiple of loopKeys) and returns its wall and CPU seconds.
func runPipelineLoop(b *testing.B, total int64) (wall, cpu float64) {
	const (
		parallelism    = 2
		maxParallelism = 128 // pipeline.max-parallelism's default
	)
	perKey := total / loopKeys
	var sink loopBlackhole
	// One state map per subtask, as the two aggregate subtasks keep.
	var state [parallelism]map[int64]loopAcc
	for s := range state {
		state[s] = make(map[int64]loopAcc)
	}
	cpuBefore := processCPU(b)
	start := time.Now()
	// The sequence emits seq 0 of every key, then seq 1, and so on.
	for seq := int64(0); seq < perKey; seq++ {
		for key := int64(0); key < loopKeys; key++ {
			m := loopMapped{key: key, seq: seq, twice: seq * 2}
			kg := record.Int(m.key).Hash64() % maxParallelism
			st := state[kg*parallelism/maxParallelism]
			a := st[m.key]
			a.n++
			a.total += m.twice
			st[m.key] = a
			sink.consume(m, a)
		}
	}
	wall = time.Since(start).Seconds()
	cpu = processCPU(b) - cpuBefore
	if sink.n != perKey*loopKeys {
		b.Fatalf("blackhole got %d records, want %d", sink.n, perKey*loopKeys)
	}
	return wall, cpu
}

// loopMapped is the map operator's output; loopAcc an aggregate key's
// running count and sum(twice).
type (
	loopMapped struct{ key, seq, twice int64 }
	loopAcc    struct{ n, total int64 }
)

// loopBlackhole is the blackhole sink of the loop: it takes the aggregate's
// output (the mapped record with the running values) and folds it into a
// checksum, so that the compiler cannot drop the work that produced it. Not
// inlined: the pipeline's sink is a call too.
type loopBlackhole struct{ n, sum int64 }

//go:noinline
func (b *loopBlackhole) consume(m loopMapped, a loopAcc) {
	b.n++
	b.sum += a.total ^ a.n ^ m.seq ^ m.key
}

// processCPU is the user+system CPU time, in seconds, that this process has
// used so far, over all its threads (the garbage collector's included, as
// it is in the TaskManagers' times).
func processCPU(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
