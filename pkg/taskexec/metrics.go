package taskexec

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exports the per-task metrics of the tasks of one TaskManager
// (docs/metrics.md). It is a prometheus.Collector over the tasks that are
// running: a task joins when Run starts and leaves when Run returns, so
// the series of a finished, failed or canceled task disappear with it and
// the label sets never grow with the jobs and restarts a TaskManager has
// seen. The values are read at scrape time from what the task goroutine
// publishes (atomics, once per buffer or source batch): nothing is updated
// per record for Prometheus.
type Metrics struct {
	tmID string

	mu    sync.Mutex
	tasks map[*Task]struct{}
}

// taskLabels are the labels of every per-task series, as Flink's
// Prometheus reporter names them.
var taskLabels = []string{"job_id", "job_name", "task_name", "subtask_index", "tm_id"}

func taskDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, taskLabels, nil)
}

var (
	descRecordsIn = taskDesc("weir_task_records_in_total",
		"Records the task read from its inputs (Flink numRecordsIn).")
	descRecordsOut = taskDesc("weir_task_records_out_total",
		"Records the task's operator chain emitted to its outputs (Flink numRecordsOut).")
	descBytesIn = taskDesc("weir_task_bytes_in_total",
		"Bytes of the network buffers the task read from its inputs (Flink numBytesIn).")
	descBytesOut = taskDesc("weir_task_bytes_out_total",
		"Bytes of serialized records the task wrote to its output subpartitions, a broadcast record once per subpartition (Flink numBytesOut).")
	descBusy = taskDesc("weir_task_busy_seconds_total",
		"Time the task was neither idle nor backpressured (Flink busyTimeMsPerSecond).")
	descIdle = taskDesc("weir_task_idle_seconds_total",
		"Time the task waited for input or for its mailbox (Flink idleTimeMsPerSecond).")
	descBackPressured = taskDesc("weir_task_backpressured_seconds_total",
		"Time the task waited for an output buffer (Flink backPressuredTimeMsPerSecond).")
	descAlignment = taskDesc("weir_task_checkpoint_alignment_seconds",
		"Barrier alignment time of the task's last checkpoint, first barrier to last (Flink checkpointAlignmentTime).")
	descStartDelay = taskDesc("weir_task_checkpoint_start_delay_seconds",
		"Time from the trigger of the task's last checkpoint to the first barrier reaching the task (Flink checkpointStartDelayNanos).")
	descCheckpointSize = taskDesc("weir_task_checkpoint_size_bytes",
		"State size of the task's last acknowledged checkpoint.")
	descInFlight = taskDesc("weir_task_checkpoint_inflight_bytes",
		"In-flight data (input and output channel state) of the task's last acknowledged checkpoint; 0 unless it was unaligned.")

	taskDescs = []*prometheus.Desc{descRecordsIn, descRecordsOut, descBytesIn, descBytesOut,
		descBusy, descIdle, descBackPressured, descAlignment, descStartDelay, descCheckpointSize, descInFlight}
)

// NewMetrics registers the per-task metrics of the TaskManager
// taskManagerID (the tm_id label) with reg.
func NewMetrics(reg prometheus.Registerer, taskManagerID string) (*Metrics, error) {
	m := &Metrics{tmID: taskManagerID, tasks: map[*Task]struct{}{}}
	if err := reg.Register(m); err != nil {
		return nil, fmt.Errorf("register task metrics: %w", err)
	}
	return m, nil
}

func (m *Metrics) add(t *Task) {
	m.mu.Lock()
	m.tasks[t] = struct{}{}
	m.mu.Unlock()
}

func (m *Metrics) remove(t *Task) {
	m.mu.Lock()
	delete(m.tasks, t)
	m.mu.Unlock()
}

// Len returns the number of tasks exported (tests).
func (m *Metrics) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tasks)
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range taskDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Two attempts of one subtask can
// run on one TaskManager for a moment (the old one still canceling): the
// newer attempt's series win, since two series with the same labels would
// fail the scrape.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	type key struct {
		job, task string
		subtask   int
	}
	m.mu.Lock()
	newest := make(map[key]*Task, len(m.tasks))
	for t := range m.tasks {
		k := key{t.exec.GetJobId(), t.name, t.subtask}
		if o := newest[k]; o == nil || o.exec.GetAttempt() < t.exec.GetAttempt() {
			newest[k] = t
		}
	}
	m.mu.Unlock()
	for _, t := range newest {
		lv := []string{t.exec.GetJobId(), t.desc.GetJobName(), t.name, strconv.Itoa(t.subtask), m.tmID}
		counter := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
		}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
		}
		counter(descRecordsIn, float64(t.recordsIn.Load()))
		counter(descRecordsOut, float64(t.recordsOut.Load()))
		counter(descBytesIn, float64(t.bytesIn.Load()))
		counter(descBytesOut, float64(t.bytesOut.Load()))
		times := t.times.read()
		counter(descBusy, times[stateBusy].Seconds())
		counter(descIdle, times[stateIdle].Seconds())
		counter(descBackPressured, times[stateBackPressured].Seconds())
		gauge(descAlignment, float64(t.lastAlignment.Load())/1e9)
		gauge(descStartDelay, float64(t.lastStartDelay.Load())/1e9)
		gauge(descCheckpointSize, float64(t.lastCheckpointSize.Load()))
		gauge(descInFlight, float64(t.lastInFlightBytes.Load()))
	}
}
