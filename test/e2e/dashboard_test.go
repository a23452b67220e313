package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
)

// repoFile is the path of a file of the repository.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Join(filepath.Dir(self), "..", "..", rel)
}

type dashboardExpr struct {
	panel, expr string
}

// dashboardExprs returns the PromQL expressions of every panel (rows'
// nested panels included) of deploy/grafana/weir.json.
func dashboardExprs(t *testing.T) []dashboardExpr {
	t.Helper()
	d := readDashboard(t)
	var out []dashboardExpr
	var walk func(ps []dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q: a target without expr", p.Title)
					continue
				}
				out = append(out, dashboardExpr{panel: p.Title, expr: tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

type dashboardPanel struct {
	Title   string                  `json:"title"`
	Type    string                  `json:"type"`
	Targets []struct{ Expr string } `json:"targets"`
	Panels  []dashboardPanel        `json:"panels"`
}

type dashboard struct {
	Title      string           `json:"title"`
	UID        string           `json:"uid"`
	Panels     []dashboardPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(repoFile(t, "deploy/grafana/weir.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("deploy/grafana/weir.json: %v", err)
	}
	return d
}

// grafanaToPromQL replaces Grafana's variables by values PromQL accepts.
func grafanaToPromQL(e string) string {
	return strings.NewReplacer(
		"$__rate_interval", "1m", "${__rate_interval}", "1m",
		"$__interval", "1m", "$__range", "1h",
		"${job}", ".*", "$job", ".*",
		"${taskmanager}", ".*", "$taskmanager", ".*",
		"${datasource}", "", "$datasource", "",
	).Replace(e)
}

var (
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	metricName = regexp.MustCompile(`\b(?:weir|go|process)_[a-zA-Z0-9_]+\b`)
)

// metricNames returns the weir_, go_ and process_ metric names an
// expression names (outside of strings: label values are not names).
func metricNames(e string) []string {
	names := metricName.FindAllString(quoted.ReplaceAllString(e, `""`), -1)
	sort.Strings(names)
	return slices.Compact(names)
}

// The dashboard is valid JSON with a job variable over the jobs' names,
// a job overview and a TaskManager view, and every expression parses
// (promtool check rules: Prometheus's parser). That its names are exported
// is TestMetricsScrape's, which has the daemons running.
func TestDashboardParses(t *testing.T) {
	tool := promtool(t)
	d := readDashboard(t)
	var job bool
	for _, v := range d.Templating.List {
		if v.Name == "job" {
			job = true
			q, _ := json.Marshal(v.Query)
			if !strings.Contains(string(q), "job_name") {
				t.Errorf("variable job: query %s does not list job_name values", q)
			}
		}
	}
	if !job {
		t.Error("deploy/grafana/weir.json has no template variable job")
	}
	var rows []string
	for _, p := range d.Panels {
		if p.Type == "row" {
			rows = append(rows, p.Title)
		}
	}
	if !slices.Contains(rows, "Job overview") || !slices.Contains(rows, "TaskManagers") {
		t.Errorf("rows %v, want Job overview and TaskManagers", rows)
	}
	exported := map[string]bool{}
	for _, e := range dashboardExprs(t) {
		for _, n := range metricNames(grafanaToPromQL(e.expr)) {
			exported[n] = true // names are checked against the daemons in TestMetricsScrape
		}
	}
	checkDashboard(t, tool, exported)
}
