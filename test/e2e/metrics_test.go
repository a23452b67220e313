package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// promtool returns the path of promtool (Debian package prometheus,
// installed by .ci/tools.sh).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (%v): .ci/tools.sh installs it (Debian package prometheus)", err)
	}
	return p
}

// scrape reads addr's /metrics, checks it with promtool check metrics, and
// parses it.
func scrape(t *testing.T, tool, addr string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: status %d, %v", addr, resp.StatusCode, err)
	}
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Fatalf("promtool check metrics on the scrape of %s: %v\n%s", addr, err, out)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse the scrape of %s: %v", addr, err)
	}
	return string(body), mfs
}

// labelsOf returns a series' labels.
func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func labelNames(m *dto.Metric) string {
	var ns []string
	for _, l := range m.GetLabel() {
		ns = append(ns, l.GetName())
	}
	sort.Strings(ns)
	return strings.Join(ns, ",")
}

// seriesWith returns the series of family name whose labels include want.
func seriesWith(mfs map[string]*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	var out []*dto.Metric
	mf := mfs[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.GetMetric() {
		have := labelsOf(m)
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

var (
	// The per-job series of the JobManager (docs/metrics.md).
	requiredJobMetrics = []string{
		"weir_job_checkpoints_completed_total", "weir_job_checkpoints_failed_total", "weir_job_checkpoints_in_progress",
		"weir_job_last_checkpoint_duration_seconds", "weir_job_last_checkpoint_size_bytes",
		"weir_job_last_checkpoint_completed_timestamp_seconds", "weir_job_restarts_total", "weir_job_uptime_seconds",
	}
	// The per-task series of the TaskManagers.
	requiredTaskMetrics = []string{
		"weir_task_records_in_total", "weir_task_records_out_total", "weir_task_bytes_out_total",
		"weir_task_busy_seconds_total", "weir_task_idle_seconds_total", "weir_task_backpressured_seconds_total",
		"weir_task_checkpoint_alignment_seconds", "weir_task_checkpoint_start_delay_seconds",
	}
	// The per-TaskManager series.
	requiredTaskManagerMetrics = []string{
		"weir_taskmanager_network_buffers_in_use", "weir_taskmanager_network_buffers_available",
		"weir_taskmanager_network_input_queue_length", "weir_taskmanager_network_output_queue_length",
	}
	// The Go runtime and process collectors of every daemon.
	requiredRuntimeMetrics = []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"}
)

// A real JobManager and two TaskManagers run a job with checkpoints across
// both: every scrape passes promtool check metrics, and every required
// series is there with its labels (the task's with the TaskManager it runs
// on). Once the job is canceled, none of its series remain. The dashboard
// in deploy/grafana queries only names these daemons export.
func TestMetricsScrape(t *testing.T) {
	tool := promtool(t)
	c := &cluster{t: t, dir: t.TempDir()}
	ports := map[string]string{}
	for _, n := range []string{"jobmanager", "taskmanager-1", "taskmanager-2"} {
		ports[n] = strconv.Itoa(freePort(t))
	}
	c.perProcess = func(name string) []string { return []string{"metrics.reporter.prom.port=" + ports[name]} }
	c.launch(2, 2)
	addr := func(name string) string { return "127.0.0.1:" + ports[name] }

	job := c.writeJob("metrics.yaml", fmt.Sprintf(`
name: metrics-e2e
parallelism: 2
config:
  execution.checkpointing.interval: 200ms
  execution.checkpointing.dir: %q
  execution.buffer-timeout: 20ms
operators:
  - id: numbers
    type: sequence
    properties: {keys: 64, rate: 2000}
  - id: counted
    type: aggregate
    input: {from: numbers, partition: hash, key: key}
    properties: {aggregates: {count: "count"}}
  - id: out
    type: file-sink
    input: counted
    properties: {path: %q, format: json}
`, filepath.Join(c.dir, "checkpoints"), filepath.Join(c.dir, "out")))
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", job))
	waitFor(t, 60*time.Second, "2 completed checkpoints", func() bool { return completed(c.checkpoints(jobID)) >= 2 })
	st := c.status(jobID)
	if st.State != "RUNNING" || len(st.Tasks) != 4 {
		t.Fatalf("job %s with %d tasks, want RUNNING with 4: %+v", st.State, len(st.Tasks), st)
	}
	jobLabels := map[string]string{"job_id": jobID, "job_name": "metrics-e2e"}
	exported := map[string]bool{}

	// The JobManager: every per-job series, labelled job_id and job_name.
	_, jm := scrape(t, tool, addr("jobmanager"))
	for _, name := range append(slices.Clone(requiredJobMetrics), "weir_jobmanager_task_slots", "weir_jobmanager_task_slots_available") {
		if jm[name] == nil {
			t.Errorf("JobManager: no %s", name)
		}
	}
	for _, name := range requiredJobMetrics {
		ms := seriesWith(jm, name, jobLabels)
		if len(ms) != 1 || labelNames(ms[0]) != "job_id,job_name" {
			t.Errorf("JobManager: %s series of the job: %v, want 1 labelled job_id, job_name", name, ms)
		}
	}
	if ms := seriesWith(jm, "weir_job_restores_total", jobLabels); len(ms) != 2 {
		t.Errorf("JobManager: weir_job_restores_total of the job: %v, want from=checkpoint and from=scratch", ms)
	}
	if ms := seriesWith(jm, "weir_job_checkpoints_completed_total", jobLabels); len(ms) == 1 && ms[0].GetCounter().GetValue() < 2 {
		t.Errorf("JobManager: %v completed checkpoints counted, the CLI saw 2 or more", ms[0].GetCounter().GetValue())
	}
	for name := range jm {
		exported[name] = true
	}

	// The TaskManagers: the series of every task on the TaskManager that
	// runs it, labelled as in Flink's reporter.
	tmOf := map[string]string{} // tm_id -> process name
	all := map[string]map[string]*dto.MetricFamily{}
	waitFor(t, 30*time.Second, "records counted by every task", func() bool {
		for _, n := range []string{"taskmanager-1", "taskmanager-2"} {
			_, all[n] = scrape(t, tool, addr(n))
		}
		for _, task := range st.Tasks {
			found := false
			for _, mfs := range all {
				for _, m := range seriesWith(mfs, "weir_task_records_in_total", map[string]string{"job_id": jobID, "task_name": task.Operator, "subtask_index": strconv.Itoa(task.Subtask)}) {
					out := seriesWith(mfs, "weir_task_records_out_total", labelsOf(m))
					found = found || m.GetCounter().GetValue() > 0 || (len(out) == 1 && out[0].GetCounter().GetValue() > 0)
				}
			}
			if !found {
				return false
			}
		}
		return true
	})
	for n, mfs := range all {
		for _, name := range append(slices.Clone(requiredTaskManagerMetrics), requiredRuntimeMetrics...) {
			if mfs[name] == nil || len(mfs[name].GetMetric()) != 1 {
				t.Errorf("%s: %s missing or not one series", n, name)
			}
		}
		for _, name := range requiredTaskManagerMetrics {
			if ms := mfs[name].GetMetric(); len(ms) == 1 {
				id := labelsOf(ms[0])["tm_id"]
				if id == "" || labelNames(ms[0]) != "tm_id" {
					t.Errorf("%s: %s labels %v, want tm_id", n, name, labelsOf(ms[0]))
				}
				tmOf[id] = n
			}
		}
		for name := range mfs {
			exported[name] = true
		}
	}
	for name := range jm {
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		exported[name] = true
	}
	for _, task := range st.Tasks {
		n, ok := tmOf[task.TaskManager]
		if !ok {
			t.Errorf("task %s/%d runs on TaskManager %q, which no scrape names (%v)", task.Operator, task.Subtask, task.TaskManager, tmOf)
			continue
		}
		want := map[string]string{"job_id": jobID, "job_name": "metrics-e2e", "task_name": task.Operator,
			"subtask_index": strconv.Itoa(task.Subtask), "tm_id": task.TaskManager}
		for _, name := range requiredTaskMetrics {
			ms := seriesWith(all[n], name, want)
			if len(ms) != 1 || labelNames(ms[0]) != "job_id,job_name,subtask_index,task_name,tm_id" {
				t.Errorf("%s: %s of task %s/%d: %v, want one series labelled %v", n, name, task.Operator, task.Subtask, ms, want)
			}
		}
	}

	checkDashboard(t, tool, exported)

	// Canceled: nothing of the job is left on any daemon.
	c.mustWeir("cancel", jobID)
	c.waitState(jobID, 30*time.Second, "CANCELED")
	waitFor(t, 30*time.Second, "no series of the canceled job", func() bool {
		for _, n := range []string{"jobmanager", "taskmanager-1", "taskmanager-2"} {
			body, _ := scrape(t, tool, addr(n))
			if strings.Contains(body, `job_id="`+jobID+`"`) {
				return false
			}
		}
		return true
	})
}

// checkDashboard checks every PromQL expression of deploy/grafana/weir.json:
// promtool parses it (as the expression of a recording rule: `promtool check
// rules` runs Prometheus's own parser), and every metric it names is one
// the daemons export.
func checkDashboard(t *testing.T, tool string, exported map[string]bool) {
	t.Helper()
	exprs := dashboardExprs(t)
	if len(exprs) < 10 {
		t.Fatalf("deploy/grafana/weir.json: %d expressions, want the panels of docs/metrics.md", len(exprs))
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: weir-dashboard\n    rules:\n")
	for i, e := range exprs {
		q := grafanaToPromQL(e.expr)
		fmt.Fprintf(&rules, "      - record: weir_dashboard_expr_%d\n        expr: %s\n", i, strconv.Quote(q))
		for _, name := range metricNames(q) {
			if !exported[name] {
				t.Errorf("dashboard panel %q queries %s, which no daemon exports: %s", e.panel, name, e.expr)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the dashboard's expressions: %v\n%s\n%s", err, out, rules.String())
	}
}
