package jobmanager

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"

	"github.com/weirstream/weir/pkg/scheduler"
)

// The per-job series follow a job from its first state to its terminal one,
// through restarts, and many jobs leave none behind; an update after the
// end does not bring them back. The exposition passes promtool's linter.
func TestJobSeriesLifecycle(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.unregister()
	t0 := time.Unix(1_700_000_000, 0)
	now := t0
	m.perJob.now = func() time.Time { return now }

	m.jobStateChanged("j1", "wordcount", "", scheduler.JobCreated, now)
	m.jobStateChanged("j1", "wordcount", scheduler.JobCreated, scheduler.JobRunning, now)
	now = t0.Add(90 * time.Second)
	m.checkpointCompleted("j1", 1500*time.Millisecond, 4096, now)
	m.checkpointFailed("j1")
	m.checkpointsInProgress("j1", 1)
	m.restarted("j1", "checkpoint", now)
	m.jobStateChanged("j1", "wordcount", scheduler.JobRunning, scheduler.JobRestarting, now)

	want := `
# HELP weir_job_checkpoints_completed_total Checkpoints of the job that completed (Flink numberOfCompletedCheckpoints); savepoints are not counted.
# TYPE weir_job_checkpoints_completed_total counter
weir_job_checkpoints_completed_total{job_id="j1",job_name="wordcount"} 1
# HELP weir_job_checkpoints_failed_total Checkpoints of the job that failed: declined, expired, not written, or aborted (Flink numberOfFailedCheckpoints).
# TYPE weir_job_checkpoints_failed_total counter
weir_job_checkpoints_failed_total{job_id="j1",job_name="wordcount"} 1
# HELP weir_job_checkpoints_in_progress Checkpoints and savepoints of the job triggered and not yet completed or failed (Flink numberOfInProgressCheckpoints).
# TYPE weir_job_checkpoints_in_progress gauge
weir_job_checkpoints_in_progress{job_id="j1",job_name="wordcount"} 1
# HELP weir_job_last_checkpoint_completed_timestamp_seconds Unix time at which the job's last checkpoint completed (Flink lastCompletedCheckpointId's completion time).
# TYPE weir_job_last_checkpoint_completed_timestamp_seconds gauge
weir_job_last_checkpoint_completed_timestamp_seconds{job_id="j1",job_name="wordcount"} 1.70000009e+09
# HELP weir_job_last_checkpoint_duration_seconds Trigger to completion of the job's last completed checkpoint (Flink lastCheckpointDuration).
# TYPE weir_job_last_checkpoint_duration_seconds gauge
weir_job_last_checkpoint_duration_seconds{job_id="j1",job_name="wordcount"} 1.5
# HELP weir_job_last_checkpoint_size_bytes State size of the job's last completed checkpoint (Flink lastCheckpointSize).
# TYPE weir_job_last_checkpoint_size_bytes gauge
weir_job_last_checkpoint_size_bytes{job_id="j1",job_name="wordcount"} 4096
# HELP weir_job_last_restore_timestamp_seconds Unix time of the job's last restart, from a checkpoint or from scratch (Flink lastCheckpointRestoreTimestamp).
# TYPE weir_job_last_restore_timestamp_seconds gauge
weir_job_last_restore_timestamp_seconds{job_id="j1",job_name="wordcount"} 1.70000009e+09
# HELP weir_job_restarts_total Restarts of the job (full failovers) since it was submitted to this JobManager or recovered by it (Flink numRestarts).
# TYPE weir_job_restarts_total counter
weir_job_restarts_total{job_id="j1",job_name="wordcount"} 1
# HELP weir_job_restores_total Restarts of the job by what its tasks restored from: checkpoint or scratch.
# TYPE weir_job_restores_total counter
weir_job_restores_total{from="checkpoint",job_id="j1",job_name="wordcount"} 1
weir_job_restores_total{from="scratch",job_id="j1",job_name="wordcount"} 0
# HELP weir_job_uptime_seconds Time since the job last switched to RUNNING; 0 while it is not running (Flink uptime).
# TYPE weir_job_uptime_seconds gauge
weir_job_uptime_seconds{job_id="j1",job_name="wordcount"} 0
`
	if got := exposition(t, reg, jobMetricNames()...); got != strings.TrimPrefix(want, "\n") {
		t.Fatalf("exposition:\n%s\nwant:\n%s", got, want)
	}
	m.jobStateChanged("j1", "wordcount", scheduler.JobRestarting, scheduler.JobRunning, now)
	now = now.Add(30 * time.Second)
	if got, want := exposition(t, reg, "weir_job_uptime_seconds"), `# HELP weir_job_uptime_seconds Time since the job last switched to RUNNING; 0 while it is not running (Flink uptime).
# TYPE weir_job_uptime_seconds gauge
weir_job_uptime_seconds{job_id="j1",job_name="wordcount"} 30
`; got != want {
		t.Fatalf("exposition:\n%s\nwant:\n%s", got, want)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if problems, err := promlint.NewWithMetricFamilies(mfs).Lint(); err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}

	// Many jobs come and go: nothing of them stays.
	for i := range 200 {
		id := fmt.Sprintf("job-%d", i)
		m.jobStateChanged(id, "n", "", scheduler.JobCreated, now)
		m.jobStateChanged(id, "n", scheduler.JobCreated, scheduler.JobRunning, now)
		m.checkpointCompleted(id, time.Second, 1, now)
		end := []scheduler.JobState{scheduler.JobFinished, scheduler.JobCanceled, scheduler.JobFailed}[i%3]
		m.jobStateChanged(id, "n", scheduler.JobRunning, end, now)
		m.checkpointCompleted(id, time.Second, 1, now) // late: the stopping coordinator
		m.restarted(id, "scratch", now)
		m.checkpointsInProgress(id, 0)
	}
	m.jobStateChanged("j1", "wordcount", scheduler.JobRunning, scheduler.JobCanceled, now)
	if got := exposition(t, reg, jobMetricNames()...); got != "" {
		t.Fatalf("per-job series left after every job ended:\n%s", got)
	}
}

// exposition is the text format of the families named, as scraped.
func exposition(t *testing.T, reg *prometheus.Registry, names ...string) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, n := range names {
			if mf.GetName() == n && len(mf.GetMetric()) > 0 {
				if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return b.String()
}

func jobMetricNames() []string {
	var names []string
	for _, d := range jobDescs {
		s := d.String()
		i := strings.Index(s, `fqName: "`) + len(`fqName: "`)
		names = append(names, s[i:i+strings.Index(s[i:], `"`)])
	}
	return names
}
