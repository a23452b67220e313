package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkRecovery measures recovery time after a SIGKILL: from the kill of
// a TaskManager running tasks to the first record committed after the
// restore, split into detection, restart delay, redeploy + restore, and the
// wait for the first checkpoint after it (which commits). The job is the
// exactly-once fault test's keyed job with the default restart strategy of
// a checkpointed job (exponential-delay from 1 s) and the default heartbeat
// settings. Run it with -benchtime Nx for N kills.
func BenchmarkRecovery(b *testing.B) {
	var detect, delay, deploy, commit, total time.Duration
	for i := 0; i < b.N; i++ {
		r := measureRecovery(b)
		detect += r.detected
		delay += r.restartDelay
		deploy += r.deploy
		commit += r.firstCommit
		total += r.total
		fmt.Printf("recovery %d: detection %v, restart delay %v, redeploy+restore %v, first commit after %v, kill to first commit %v\n",
			i+1, r.detected, r.restartDelay, r.deploy, r.firstCommit, r.total)
	}
	n := time.Duration(b.N)
	b.ReportMetric(float64((detect / n).Milliseconds()), "detect-ms")
	b.ReportMetric(float64((delay / n).Milliseconds()), "restart-delay-ms")
	b.ReportMetric(float64((deploy / n).Milliseconds()), "redeploy-restore-ms")
	b.ReportMetric(float64((commit / n).Milliseconds()), "first-commit-ms")
	b.ReportMetric(float64((total / n).Milliseconds()), "kill-to-commit-ms")
}

type recovery struct {
	detected, restartDelay, deploy, firstCommit, total time.Duration
}

func measureRecovery(b *testing.B) recovery {
	c := newCluster(b, 3, 2, "log.format=json")
	out := filepath.Join(c.dir, "out")
	job := keyedJob{name: "recovery", config: c.checkpointing("300ms"), keys: 16, rate: 10000, out: out}.write(c)
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", job))
	var victim string
	waitFor(b, 60*time.Second, "every task RUNNING", func() bool {
		st := c.status(jobID)
		for _, t := range st.Tasks {
			if t.State != "RUNNING" {
				return false
			}
			if t.Operator == "numbers" {
				victim = t.TaskManager
			}
		}
		return st.State == "RUNNING" && victim != ""
	})
	c.waitCheckpoints(jobID, 3)
	before := committedNames(out)
	proc := c.processOf(victim)
	killed := time.Now()
	proc.kill()

	var firstCommit time.Time
	waitFor(b, 120*time.Second, "a part file committed after the restore", func() bool {
		for name := range committedNames(out) {
			if !before[name] {
				firstCommit = time.Now()
				return true
			}
		}
		return false
	})
	var line struct {
		Detected     string `json:"detected"`
		RestartDelay string `json:"restart_delay"`
		Deploy       string `json:"deploy"`
	}
	waitFor(b, 30*time.Second, `the JobManager's "job recovered" log line`, func() bool {
		f, err := os.Open(c.jm.log)
		if err != nil {
			return false
		}
		defer f.Close()
		s := bufio.NewScanner(f)
		s.Buffer(make([]byte, 1<<20), 1<<20)
		for s.Scan() {
			if strings.Contains(s.Text(), `"job recovered"`) {
				return json.Unmarshal(s.Bytes(), &line) == nil
			}
		}
		return false
	})
	detected, err := time.Parse("2006-01-02T15:04:05.000Z0700", line.Detected)
	if err != nil {
		b.Fatalf("detected %q: %v", line.Detected, err)
	}
	restartDelay, _ := time.ParseDuration(line.RestartDelay)
	deploy, _ := time.ParseDuration(line.Deploy)
	running := detected.Add(restartDelay).Add(deploy)
	c.mustWeir("cancel", jobID)
	return recovery{
		detected:     detected.Sub(killed),
		restartDelay: restartDelay,
		deploy:       deploy,
		firstCommit:  firstCommit.Sub(running),
		total:        firstCommit.Sub(killed),
	}
}

// committedNames returns the names of the committed part files in dir.
func committedNames(dir string) map[string]bool {
	names := map[string]bool{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if n := e.Name(); !strings.HasPrefix(n, ".") && !strings.HasPrefix(n, "_") {
			names[n] = true
		}
	}
	return names
}
