package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkNexmark runs the Nexmark queries that weir's operators express
// (examples/nexmark/q0-q2.yaml) over a fixed number of events into a
// blackhole sink, at parallelism 2 over two TaskManagers of one slot each,
// once without checkpoints and once with exactly-once checkpoints every 10 s
// (issue 14). It reports events per second of wall time and per
// TaskManager CPU-second: the per-core figure that the published Flink and
// Feldera numbers give (docs/benchmarks.md). Events are counted as Nexmark
// counts them, every generated event (persons and auctions too, which q0-q2
// skip), so the figures compare with the published ones.
//
// WEIR_BENCH_EVENTS sets the number of events per query (default 20M;
// make bench-nexmark runs 400M, so that every run outlasts the checkpoint
// interval). Run it through `make bench-nexmark` (-benchtime 1x).
func BenchmarkNexmark(b *testing.B) {
	events := int64(20_000_000)
	if s := os.Getenv("WEIR_BENCH_EVENTS"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("WEIR_BENCH_EVENTS=%q: want a positive number of events", s)
		}
		events = n
	}
	c := newCluster(b, 2, 1)
	for _, q := range []string{"q0", "q1", "q2"} {
		for _, ckpt := range []struct{ name, config string }{
			{"no-checkpoints", ""},
			{"exactly-once-10s", fmt.Sprintf(`config:
  execution.checkpointing.interval: 10s
  execution.checkpointing.mode: EXACTLY_ONCE
  execution.checkpointing.dir: %q
`, filepath.Join(c.dir, "checkpoints-"+q))},
		} {
			b.Run(q+"/"+ckpt.name, func(b *testing.B) {
				job := c.writeJob("nexmark-"+q+".yaml", nexmarkJob(b, q, events, ckpt.config))
				var wall, cpu float64
				checkpoints := 0
				for i := 0; i < b.N; i++ {
					cpuBefore := c.taskManagerCPU()
					start := time.Now()
					stdout, stderr, code := c.weir("run", job)
					if code != 0 {
						b.Fatalf("%s failed: %s\n%s", q, stdout, stderr)
					}
					wall += time.Since(start).Seconds()
					cpu += c.taskManagerCPU() - cpuBefore
					checkpoints += completed(c.checkpoints(latestJob(b, c, "nexmark-"+q).ID))
				}
				// A run shorter than the interval takes no checkpoint and
				// would measure nothing of their cost.
				if ckpt.config != "" && checkpoints < b.N {
					b.Fatalf("%s: %d checkpoints completed in %d runs of %.1fs: raise WEIR_BENCH_EVENTS so that each run lasts longer than the 10 s interval",
						q, checkpoints, b.N, wall/float64(b.N))
				}
				n := float64(events) * float64(b.N)
				b.ReportMetric(n/wall, "events/s")
				b.ReportMetric(n/cpu, "events/cpu-s")
				b.ReportMetric(cpu/wall, "tm-cores")
				b.ReportMetric(float64(checkpoints)/float64(b.N), "checkpoints/run")
				fmt.Printf("nexmark %s %s: %.0f events in %.2fs wall, %.2f TaskManager CPU-seconds, %d checkpoints: %.0f events/s, %.0f events per CPU-second\n",
					q, ckpt.name, n, wall, cpu, checkpoints, n/wall, n/cpu)
			})
		}
	}
}

// latestJob is the last job of that name the cluster ran.
func latestJob(b *testing.B, c *cluster, name string) jobJSON {
	var latest jobJSON
	for _, j := range c.jobs() {
		if j.Name == name && j.StartTime >= latest.StartTime {
			latest = j
		}
	}
	if latest.ID == "" {
		b.Fatalf("no job named %s in weir list -a", name)
	}
	return latest
}

// nexmarkJob returns examples/nexmark/<q>.yaml with its event count set and
// config (a `config:` block, or "") added: the benchmark runs the shipped
// example, not a copy of it that could drift. (go test runs in test/e2e.)
func nexmarkJob(b *testing.B, q string, events int64, config string) string {
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "nexmark", q+".yaml"))
	if err != nil {
		b.Fatal(err)
	}
	job := string(data)
	const shipped = "events: 10000000"
	if strings.Count(job, shipped) != 1 {
		b.Fatalf("examples/nexmark/%s.yaml: want exactly one %q to replace with the benchmark's event count", q, shipped)
	}
	job = strings.Replace(job, shipped, fmt.Sprintf("events: %d", events), 1)
	if config != "" {
		job = strings.Replace(job, "\noperators:", "\n"+config+"operators:", 1)
	}
	return job
}
