package jobmanager

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirstream/weir/pkg/scheduler"
)

// jmMetrics are the JobManager's metrics (docs/metrics.md): the cluster's
// gauges, set after every scheduler step, and the per-job series, which a
// collector builds at scrape time from jobSeries.
//
// A job's series exist from its submission (or recovery) until it reaches
// a globally terminal state or leaves the job store, whichever comes
// first: then they are removed, and a late update for it (a checkpoint the
// stopping coordinator completes) is dropped rather than bringing them
// back. So the label sets never grow with the jobs a JobManager has run.
type jmMetrics struct {
	reg         prometheus.Registerer
	taskManager prometheus.Gauge
	slotsTotal  prometheus.Gauge
	slotsFree   prometheus.Gauge
	jobs        *prometheus.GaugeVec

	// Calls refused because their caller is not the TaskManager they
	// name (identity.go), by gateway method and reason.
	rejected *prometheus.CounterVec

	perJob *jobCollector
}

func newMetrics(reg prometheus.Registerer) (*jmMetrics, error) {
	m := &jmMetrics{
		reg: reg,
		taskManager: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_jobmanager_taskmanagers_registered", Help: "TaskManagers registered with the JobManager (Flink numRegisteredTaskManagers).",
		}),
		slotsTotal: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_jobmanager_task_slots", Help: "Task slots of all registered TaskManagers (Flink taskSlotsTotal).",
		}),
		slotsFree: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_jobmanager_task_slots_available", Help: "Task slots not allocated to a job (Flink taskSlotsAvailable).",
		}),
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_jobmanager_jobs", Help: "Jobs known to the JobManager (its job store included), by state.",
		}, []string{"state"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_jobmanager_rejected_calls_total",
			Help: "TaskManager calls refused because the caller is not the TaskManager they name (reason foreign_peer) or that TaskManager is not registered (reason unregistered), by gateway method.",
		}, []string{"method", "reason"}),
		perJob: newJobCollector(time.Now),
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
	return []prometheus.Collector{m.taskManager, m.slotsTotal, m.slotsFree, m.jobs, m.rejected, m.perJob}
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

// rejectedCall counts a call refused for its caller's identity.
func (m *jmMetrics) rejectedCall(method, reason string) {
	m.rejected.WithLabelValues(method, reason).Inc()
}

// jobSeries is what the per-job series show of one job.
type jobSeries struct {
	name              string
	completed, failed uint64
	inProgress        int
	hasLast           bool
	lastDuration      time.Duration
	lastSize          int64
	lastCompleted     time.Time
	restarts          uint64
	restoresFrom      [2]uint64 // checkpoint, scratch
	lastRestore       time.Time
	runningSince      time.Time // zero unless RUNNING
}

// The "from" label values of weir_job_restores_total.
var restoreOrigins = [2]string{"checkpoint", "scratch"}

// jobCollector holds the per-job series. Its methods are called with
// jm.mu held or not; it has a lock of its own and does no I/O.
type jobCollector struct {
	now func() time.Time

	mu   sync.Mutex
	jobs map[string]*jobSeries
}

func newJobCollector(now func() time.Time) *jobCollector {
	return &jobCollector{now: now, jobs: map[string]*jobSeries{}}
}

var jobLabels = []string{"job_id", "job_name"}

func jobDesc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string(nil), jobLabels...), extra...), nil)
}

var (
	descCheckpointsCompleted = jobDesc("weir_job_checkpoints_completed_total",
		"Checkpoints of the job that completed (Flink numberOfCompletedCheckpoints); savepoints are not counted.")
	descCheckpointsFailed = jobDesc("weir_job_checkpoints_failed_total",
		"Checkpoints of the job that failed: declined, expired, not written, or aborted (Flink numberOfFailedCheckpoints).")
	descCheckpointsInProgress = jobDesc("weir_job_checkpoints_in_progress",
		"Checkpoints and savepoints of the job triggered and not yet completed or failed (Flink numberOfInProgressCheckpoints).")
	descLastDuration = jobDesc("weir_job_last_checkpoint_duration_seconds",
		"Trigger to completion of the job's last completed checkpoint (Flink lastCheckpointDuration).")
	descLastSize = jobDesc("weir_job_last_checkpoint_size_bytes",
		"State size of the job's last completed checkpoint (Flink lastCheckpointSize).")
	descLastCompleted = jobDesc("weir_job_last_checkpoint_completed_timestamp_seconds",
		"Unix time at which the job's last checkpoint completed (Flink lastCompletedCheckpointId's completion time).")
	descRestarts = jobDesc("weir_job_restarts_total",
		"Restarts of the job (full failovers) since it was submitted to this JobManager or recovered by it (Flink numRestarts).")
	descRestores = jobDesc("weir_job_restores_total",
		"Restarts of the job by what its tasks restored from: checkpoint or scratch.", "from")
	descLastRestore = jobDesc("weir_job_last_restore_timestamp_seconds",
		"Unix time of the job's last restart, from a checkpoint or from scratch (Flink lastCheckpointRestoreTimestamp).")
	descUptime = jobDesc("weir_job_uptime_seconds",
		"Time since the job last switched to RUNNING; 0 while it is not running (Flink uptime).")

	jobDescs = []*prometheus.Desc{descCheckpointsCompleted, descCheckpointsFailed, descCheckpointsInProgress,
		descLastDuration, descLastSize, descLastCompleted, descRestarts, descRestores, descLastRestore, descUptime}
)

func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range jobDescs {
		ch <- d
	}
}

// Collect copies the series under the lock and sends them after it, so
// that a slow scrape never holds up the JobManager's updates.
func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	c.mu.Lock()
	out := make([]prometheus.Metric, 0, len(c.jobs)*(len(jobDescs)+1))
	for id, j := range c.jobs {
		lv := func(extra ...string) []string { return append([]string{id, j.name}, extra...) }
		emit := func(d *prometheus.Desc, t prometheus.ValueType, v float64, extra ...string) {
			out = append(out, prometheus.MustNewConstMetric(d, t, v, lv(extra...)...))
		}
		emit(descCheckpointsCompleted, prometheus.CounterValue, float64(j.completed))
		emit(descCheckpointsFailed, prometheus.CounterValue, float64(j.failed))
		emit(descCheckpointsInProgress, prometheus.GaugeValue, float64(j.inProgress))
		if j.hasLast {
			emit(descLastDuration, prometheus.GaugeValue, j.lastDuration.Seconds())
			emit(descLastSize, prometheus.GaugeValue, float64(j.lastSize))
			emit(descLastCompleted, prometheus.GaugeValue, unixSeconds(j.lastCompleted))
		}
		emit(descRestarts, prometheus.CounterValue, float64(j.restarts))
		for i, from := range restoreOrigins {
			emit(descRestores, prometheus.CounterValue, float64(j.restoresFrom[i]), from)
		}
		if !j.lastRestore.IsZero() {
			emit(descLastRestore, prometheus.GaugeValue, unixSeconds(j.lastRestore))
		}
		var up float64
		if !j.runningSince.IsZero() && now.After(j.runningSince) {
			up = now.Sub(j.runningSince).Seconds()
		}
		emit(descUptime, prometheus.GaugeValue, up)
	}
	c.mu.Unlock()
	for _, m := range out {
		ch <- m
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// update applies f to the job's series if it has them.
func (c *jobCollector) update(job string, f func(*jobSeries)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if j := c.jobs[job]; j != nil {
		f(j)
	}
}

// jobStateChanged follows a job's state: its series appear with its
// first state and go with its terminal one.
func (m *jmMetrics) jobStateChanged(job, name string, from, to scheduler.JobState, now time.Time) {
	c := m.perJob
	c.mu.Lock()
	defer c.mu.Unlock()
	if to.IsGloballyTerminal() {
		delete(c.jobs, job)
		return
	}
	j := c.jobs[job]
	if j == nil {
		if from != "" {
			return // removed already: not brought back
		}
		j = &jobSeries{name: name}
		c.jobs[job] = j
	}
	switch {
	case to == scheduler.JobRunning:
		j.runningSince = now
	case from == scheduler.JobRunning:
		j.runningSince = time.Time{}
	}
}

// forgetJob drops every series of a job that left the job store.
func (m *jmMetrics) forgetJob(job string) {
	m.perJob.mu.Lock()
	delete(m.perJob.jobs, job)
	m.perJob.mu.Unlock()
}

func (m *jmMetrics) checkpointCompleted(job string, d time.Duration, size int64, now time.Time) {
	m.perJob.update(job, func(j *jobSeries) {
		j.completed++
		j.hasLast, j.lastDuration, j.lastSize, j.lastCompleted = true, d, size, now
	})
}

func (m *jmMetrics) checkpointFailed(job string) {
	m.perJob.update(job, func(j *jobSeries) { j.failed++ })
}

// checkpointsInProgress sets the job's pending checkpoints and savepoints.
func (m *jmMetrics) checkpointsInProgress(job string, n int) {
	m.perJob.update(job, func(j *jobSeries) { j.inProgress = n })
}

// restarted counts a restart whose tasks restore from "checkpoint" or
// "scratch".
func (m *jmMetrics) restarted(job, from string, now time.Time) {
	m.perJob.update(job, func(j *jobSeries) {
		j.restarts++
		if from == restoreOrigins[0] {
			j.restoresFrom[0]++
		} else {
			j.restoresFrom[1]++
		}
		j.lastRestore = now
	})
}
