package jobmanager

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirstream/weir/pkg/scheduler"
)

// jmMetrics are the JobManager's gauges, set after every scheduler step.
type jmMetrics struct {
	reg         prometheus.Registerer
	taskManager prometheus.Gauge
	slotsTotal  prometheus.Gauge
	slotsFree   prometheus.Gauge
	jobs        *prometheus.GaugeVec

	// Per job (label job), as Flink's numberOfCompletedCheckpoints,
	// numberOfFailedCheckpoints, lastCheckpointDuration and
	// lastCheckpointSize.
	checkpointsCompleted *prometheus.CounterVec
	checkpointsFailed    *prometheus.CounterVec
	lastDuration         *prometheus.GaugeVec
	lastSize             *prometheus.GaugeVec

	// Failover, per job (Flink's numRestarts and
	// lastCheckpointRestoreTimestamp, and restores by origin).
	restarts    *prometheus.CounterVec
	lastRestore *prometheus.GaugeVec
	restores    *prometheus.CounterVec

	// Calls refused because their caller is not the TaskManager they
	// name (identity.go), by gateway method and reason.
	rejected *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*jmMetrics, error) {
	m := &jmMetrics{
		reg: reg,
		taskManager: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_jobmanager_taskmanagers_registered", Help: "TaskManagers registered with the JobManager.",
		}),
		slotsTotal: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_jobmanager_task_slots_total", Help: "Task slots of all registered TaskManagers.",
		}),
		slotsFree: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_jobmanager_task_slots_free", Help: "Task slots not allocated to a job.",
		}),
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_jobmanager_jobs", Help: "Jobs known to the JobManager, by state.",
		}, []string{"state"}),
		checkpointsCompleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_jobmanager_checkpoints_completed_total", Help: "Checkpoints of the job that completed.",
		}, []string{"job"}),
		checkpointsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_jobmanager_checkpoints_failed_total", Help: "Checkpoints of the job that failed (declined, expired, not written, or aborted).",
		}, []string{"job"}),
		lastDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_jobmanager_last_checkpoint_duration_seconds", Help: "Time from trigger to completion of the job's last completed checkpoint.",
		}, []string{"job"}),
		lastSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_jobmanager_last_checkpoint_size_bytes", Help: "State size of the job's last completed checkpoint.",
		}, []string{"job"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_jobmanager_job_restarts_total", Help: "Restarts of the job (full failovers) since it was submitted.",
		}, []string{"job"}),
		lastRestore: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_jobmanager_last_restore_timestamp_seconds", Help: "Unix time of the job's last restart (from a checkpoint or from scratch).",
		}, []string{"job"}),
		restores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_jobmanager_restores_total", Help: "Restarts of the job by what its tasks restored from: checkpoint or scratch.",
		}, []string{"job", "from"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_jobmanager_rejected_calls_total",
			Help: "TaskManager calls refused because the caller is not the TaskManager they name (reason foreign_peer) or that TaskManager is not registered (reason unregistered), by gateway method.",
		}, []string{"method", "reason"}),
	}
	for _, method := range identityCheckedMethods {
		m.rejected.WithLabelValues(method, rejectForeignPeer)
	}
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors()[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("jobmanager: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *jmMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.taskManager, m.slotsTotal, m.slotsFree, m.jobs,
		m.checkpointsCompleted, m.checkpointsFailed, m.lastDuration, m.lastSize,
		m.restarts, m.lastRestore, m.restores, m.rejected}
}

// unregister lets a new JobManager register on the same registry (tests).
func (m *jmMetrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors() {
		m.reg.Unregister(c)
	}
}

func (m *jmMetrics) set(taskManagers, slotsTotal, slotsFree int, jobs map[scheduler.JobState]int) {
	m.taskManager.Set(float64(taskManagers))
	m.slotsTotal.Set(float64(slotsTotal))
	m.slotsFree.Set(float64(slotsFree))
	for st, n := range jobs {
		m.jobs.WithLabelValues(string(st)).Set(float64(n))
	}
}

// initJob makes the job's checkpoint counters visible at 0.
func (m *jmMetrics) initJob(job string) {
	m.checkpointsCompleted.WithLabelValues(job)
	m.checkpointsFailed.WithLabelValues(job)
}

func (m *jmMetrics) checkpointCompleted(job string, d time.Duration, size int64) {
	m.checkpointsCompleted.WithLabelValues(job).Inc()
	m.lastDuration.WithLabelValues(job).Set(d.Seconds())
	m.lastSize.WithLabelValues(job).Set(float64(size))
}

func (m *jmMetrics) checkpointFailed(job string) {
	m.checkpointsFailed.WithLabelValues(job).Inc()
}

// forgetJob drops every series of a job that left the job store, so that
// the metrics do not grow with every job ever run.
func (m *jmMetrics) forgetJob(job string) {
	only := prometheus.Labels{"job": job}
	m.checkpointsCompleted.DeletePartialMatch(only)
	m.checkpointsFailed.DeletePartialMatch(only)
	m.lastDuration.DeletePartialMatch(only)
	m.lastSize.DeletePartialMatch(only)
	m.restarts.DeletePartialMatch(only)
	m.lastRestore.DeletePartialMatch(only)
	m.restores.DeletePartialMatch(only)
}

// initRestarts makes a new job's restart counters visible at 0.
func (m *jmMetrics) initRestarts(job string) {
	m.restarts.WithLabelValues(job)
	m.restores.WithLabelValues(job, "checkpoint")
	m.restores.WithLabelValues(job, "scratch")
}

// restarted counts a restart whose tasks restore from "checkpoint" or
// "scratch".
func (m *jmMetrics) restarted(job, from string, now time.Time) {
	m.restarts.WithLabelValues(job).Inc()
	m.restores.WithLabelValues(job, from).Inc()
	m.lastRestore.WithLabelValues(job).Set(float64(now.UnixNano()) / 1e9)
}

// rejectedCall counts a call refused for its caller's identity.
func (m *jmMetrics) rejectedCall(method, reason string) {
	m.rejected.WithLabelValues(method, reason).Inc()
}
