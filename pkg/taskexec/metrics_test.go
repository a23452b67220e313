package taskexec

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/network"
)

// taskSeries returns, per family of the weir_task_ metrics, the label sets
// of its series ("k=v,..." sorted) with their values.
func taskSeries(t *testing.T, reg *prometheus.Registry) map[string]map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "weir_task_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(ls)
			v := m.GetGauge().GetValue()
			if m.GetCounter() != nil {
				v = m.GetCounter().GetValue()
			}
			if out[mf.GetName()] == nil {
				out[mf.GetName()] = map[string]float64{}
			}
			out[mf.GetName()][strings.Join(ls, ",")] = v
		}
	}
	return out
}

// The series of a task exist while it runs, with Flink's labels, and go
// when it ends: many jobs one after the other leave none behind. The
// exposition passes the linter promtool check metrics runs.
func TestTaskMetricsFollowRunningTasks(t *testing.T) {
	m := newManager(t)
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg, "tm-1")
	if err != nil {
		t.Fatal(err)
	}
	env := Env{Network: m, Logger: zap.NewNop(), Metrics: metrics}
	labels := func(job, task string) string {
		return fmt.Sprintf("job_id=%s,job_name=test,subtask_index=0,task_name=%s,tm_id=tm-1", job, task)
	}
	const jobs = 12
	for i := range jobs {
		job := fmt.Sprintf("metrics-%d", i)
		src, sink := job+"-src", job+"-sink"
		reset(src)
		a := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{opJSON(t, "src", "test-trickle", map[string]any{"name": src})}}
		b := &vertex{index: 1, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
			opJSON(t, "sink", "test-sink", map[string]any{"name": sink}, jobgraph.Input{From: "src", Partition: jobgraph.Forward}),
		}}
		e := edge{from: a, to: b, partition: jobgraph.Forward, consumer: "sink", producer: "src"}
		cfg := map[string]string{"execution.buffer-timeout": "1ms"}
		rb := startEnv(t, descriptors(job, b, []edge{e}, nil, cfg)[0], env)
		ra := startEnv(t, descriptors(job, a, nil, []edge{e}, cfg)[0], env)
		for v := range int64(3) {
			feed(src) <- v
		}
		waitUntil(t, "3 records at the sink", func() bool { return len(store(sink).snapshot()) == 3 })
		waitUntil(t, "3 records counted", func() bool {
			s := taskSeries(t, reg)
			return s["weir_task_records_out_total"][labels(job, "src")] == 3 && s["weir_task_records_in_total"][labels(job, "sink")] == 3
		})
		s := taskSeries(t, reg)
		for _, name := range []string{"weir_task_records_in_total", "weir_task_records_out_total", "weir_task_bytes_in_total",
			"weir_task_bytes_out_total", "weir_task_busy_seconds_total", "weir_task_idle_seconds_total",
			"weir_task_backpressured_seconds_total", "weir_task_checkpoint_alignment_seconds",
			"weir_task_checkpoint_start_delay_seconds", "weir_task_checkpoint_size_bytes", "weir_task_checkpoint_inflight_bytes"} {
			got := make([]string, 0, 2)
			for ls := range s[name] {
				got = append(got, ls)
			}
			sort.Strings(got)
			if want := []string{labels(job, "sink"), labels(job, "src")}; strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("%s series %v, want %v", name, got, want)
			}
		}
		if s["weir_task_bytes_out_total"][labels(job, "src")] == 0 || s["weir_task_bytes_in_total"][labels(job, "sink")] == 0 {
			t.Errorf("bytes out of src %v, in of sink %v: want > 0", s["weir_task_bytes_out_total"][labels(job, "src")],
				s["weir_task_bytes_in_total"][labels(job, "sink")])
		}
		if s["weir_task_idle_seconds_total"][labels(job, "sink")] == 0 {
			t.Error("the sink waited for input but its idle time is 0")
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		if problems, err := promlint.NewWithMetricFamilies(mfs).Lint(); err != nil || len(problems) != 0 {
			t.Fatalf("lint: %v %v", problems, err)
		}
		ra.task.Cancel()
		rb.task.Cancel()
		<-ra.result
		<-rb.result
		if s := taskSeries(t, reg); len(s) != 0 {
			t.Fatalf("after job %s ended: series %v", job, s)
		}
	}
	if n := metrics.Len(); n != 0 {
		t.Fatalf("%d tasks still exported", n)
	}
}

// Readers of a task's time never see a total decrease, however their reads
// interleave with the task goroutine's switches (run with -race).
func TestTaskTimeMonotonic(t *testing.T) {
	var a taskTime
	a.start()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last [numTimeStates]int64
			for {
				select {
				case <-stop:
					return
				default:
				}
				got := a.read()
				for i := range got {
					if int64(got[i]) < last[i] {
						select {
						case errs <- fmt.Sprintf("state %d went from %d to %d", i, last[i], got[i]):
						default:
						}
						return
					}
					last[i] = int64(got[i])
				}
			}
		}()
	}
	for i := range 20000 {
		a.switchTo(timeState(i % int(numTimeStates)))
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// A task whose consumer takes nothing fills its output and then waits in an
// emit for a buffer: that time is backpressured, not busy, and its source,
// waiting for the map to take its buffers, is backpressured too.
func TestBackpressuredTime(t *testing.T) {
	m := newManager(t)
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg, "tm-1")
	if err != nil {
		t.Fatal(err)
	}
	env := Env{Network: m, Logger: zap.NewNop(), Metrics: metrics}
	job := "metrics-backpressure"
	src := job + "-src"
	reset(src)
	a := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{opJSON(t, "src", "test-trickle", map[string]any{"name": src})}}
	b := &vertex{index: 1, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "map", "test-map", map[string]any{}, jobgraph.Input{From: "src", Partition: jobgraph.Forward}),
	}}
	c := &vertex{index: 2, par: 1, managers: []*network.Manager{m}} // never deployed: nobody reads map's output
	ab := edge{from: a, to: b, partition: jobgraph.Forward, consumer: "map", producer: "src"}
	bc := edge{from: b, to: c, partition: jobgraph.Forward, consumer: "sink", producer: "map"}
	cfg := map[string]string{"execution.buffer-timeout": "0"} // a buffer per record: the output fills fast
	rb := startEnv(t, descriptors(job, b, []edge{ab}, []edge{bc}, cfg)[0], env)
	ra := startEnv(t, descriptors(job, a, nil, []edge{ab}, cfg)[0], env)
	defer func() {
		ra.task.Cancel()
		rb.task.Cancel()
		<-ra.result
		<-rb.result
	}()
	for v := range int64(200) {
		feed(src) <- v
	}
	labels := func(task string) string {
		return fmt.Sprintf("job_id=%s,job_name=test,subtask_index=0,task_name=%s,tm_id=tm-1", job, task)
	}
	var first float64
	waitUntil(t, "map backpressured", func() bool {
		first = taskSeries(t, reg)["weir_task_backpressured_seconds_total"][labels("map")]
		return first > 0
	})
	// Still blocked: the running wait is counted at each scrape.
	waitUntil(t, "map's backpressured time growing", func() bool {
		return taskSeries(t, reg)["weir_task_backpressured_seconds_total"][labels("map")] > first
	})
	waitUntil(t, "src backpressured", func() bool {
		return taskSeries(t, reg)["weir_task_backpressured_seconds_total"][labels("src")] > 0
	})
	s := taskSeries(t, reg)
	if out := s["weir_task_records_out_total"][labels("map")]; out == 0 || out >= 200 {
		t.Errorf("map emitted %v records before it blocked, want some but not all 200", out)
	}
}
