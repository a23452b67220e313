package coordinator

import (
	"runtime"
	"testing"
)

// wideJob is a source and edges all-to-all edges in a chain, every vertex
// at parallelism p: the shape of a small job file that once made the
// JobManager grow without bound (p squared upstream entries per edge).
func wideJob(p, edges int) []Vertex {
	vs := []Vertex{vtx(p)}
	for i := 0; i < edges; i++ {
		vs = append(vs, vtx(p, allToAll(i)))
	}
	return vs
}

// TestWideJobIsLinear checks what the coordinator stores for a wide job:
// one entry per task and one per edge, never one per pair of subtasks.
func TestWideJobIsLinear(t *testing.T) {
	const p, edges = 32768, 20
	c, err := New(Config{Vertices: wideJob(p, edges)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	var inputs, tasks int
	for _, v := range c.vertices {
		inputs += len(v.inputs)
		tasks += len(v.tasks)
	}
	if inputs != edges || tasks != p*(edges+1) {
		t.Fatalf("stored %d inputs and %d tasks; want %d and %d", inputs, tasks, edges, p*(edges+1))
	}
}

// TestWideJobMemoryGrowsLinearly builds the coordinator of a wide job and
// triggers a savepoint (only the sources are triggered) at parallelism p
// and 2p: the bytes allocated must about double (linear), not quadruple
// (quadratic).
func TestWideJobMemoryGrowsLinearly(t *testing.T) {
	allocated := func(p int) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		vs := wideJob(p, 20)
		c, err := New(Config{Vertices: vs, Tasks: running(vs)}, t0)
		if err != nil {
			t.Fatal(err)
		}
		var trig TriggerTasks
		for _, a := range c.Step(t0, TriggerSavepoint{Request: 1}) {
			if tt, ok := a.(TriggerTasks); ok {
				trig = tt
			}
		}
		runtime.ReadMemStats(&after)
		if len(trig.Tasks) != p || trig.Tasks[p-1] != tid(0, p-1) {
			t.Fatalf("triggered %d tasks; want the %d sources", len(trig.Tasks), p)
		}
		runtime.KeepAlive(c)
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := allocated(2048), allocated(4096)
	if ratio := float64(large) / float64(small); ratio > 3 {
		t.Fatalf("doubling the parallelism multiplied the memory allocated by %.1f (%d -> %d bytes): not linear", ratio, small, large)
	}
}

// BenchmarkNewWideJob builds the coordinator of a 20-edge job at the
// highest parallelism (pipeline.max-parallelism's bound).
func BenchmarkNewWideJob(b *testing.B) {
	vs := wideJob(32768, 20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(Config{Vertices: vs}, t0); err != nil {
			b.Fatal(err)
		}
	}
}
