package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type checkpointJSON struct {
	ID          int64  `json:"id"`
	Status      string `json:"status"`
	TriggerTime string `json:"trigger_time"`
	DurationMs  int64  `json:"duration_ms"`
	SizeBytes   int64  `json:"size_bytes"`
	AlignmentMs int64  `json:"alignment_ms"`
	Path        string `json:"path"`
	Failure     string `json:"failure"`
}

type checkpointStatsJSON struct {
	Checkpoints struct {
		Completed  int64 `json:"completed"`
		Failed     int64 `json:"failed"`
		InProgress int64 `json:"in_progress"`
		Latest     *struct {
			ID         int64  `json:"id"`
			Path       string `json:"path"`
			DurationMs int64  `json:"duration_ms"`
			SizeBytes  int64  `json:"size_bytes"`
		} `json:"latest"`
	} `json:"checkpoints"`
}

func (c *cluster) checkpoints(jobID string) []checkpointJSON {
	c.t.Helper()
	var cps []checkpointJSON
	c.weirJSON(&cps, "checkpoints", jobID)
	return cps
}

func completed(cps []checkpointJSON) (n int) {
	for _, cp := range cps {
		if cp.Status == "COMPLETED" {
			n++
		}
	}
	return n
}

// checkKeyedCounts checks that the committed output holds every (key, seq)
// for keys 0..keys-1 and seq 0..count-1 exactly once, with count == seq+1.
func checkKeyedCounts(t *testing.T, dir string, keys, count int64) {
	t.Helper()
	recs := committedRecords(t, dir)
	seen := make(map[[2]int64]bool, len(recs))
	for _, r := range recs {
		k, s, n := intField(t, r, "key"), intField(t, r, "seq"), intField(t, r, "count")
		if k < 0 || k >= keys || s < 0 || s >= count {
			t.Fatalf("unexpected record %v", r)
		}
		if seen[[2]int64{k, s}] {
			t.Fatalf("duplicate record for key %d seq %d", k, s)
		}
		seen[[2]int64{k, s}] = true
		if n != s+1 {
			t.Fatalf("key %d seq %d: count %d, want %d", k, s, n, s+1)
		}
	}
	for k := int64(0); k < keys; k++ {
		for s := int64(0); s < count; s++ {
			if !seen[[2]int64{k, s}] {
				t.Fatalf("missing record for key %d seq %d (of %d records)", k, s, len(recs))
			}
		}
	}
	t.Logf("checked %d committed records: every (key, seq) of %d keys x %d once, count == seq+1", len(recs), keys, count)
}

// checkGapless checks that the committed output holds, for each of keys
// keys, seq 0..max exactly once with count == seq+1, and returns the number
// of records.
func checkGapless(t *testing.T, out string, keys int) int {
	t.Helper()
	seqs := map[int64]map[int64]bool{}
	for _, r := range committedRecords(t, out) {
		k, s, n := intField(t, r, "key"), intField(t, r, "seq"), intField(t, r, "count")
		if n != s+1 {
			t.Fatalf("key %d seq %d: count %d, want %d", k, s, n, s+1)
		}
		if seqs[k] == nil {
			seqs[k] = map[int64]bool{}
		}
		if seqs[k][s] {
			t.Fatalf("duplicate record for key %d seq %d", k, s)
		}
		seqs[k][s] = true
	}
	if len(seqs) != keys {
		t.Fatalf("output has %d keys, want %d", len(seqs), keys)
	}
	total := 0
	for k, ss := range seqs {
		for s := int64(0); s < int64(len(ss)); s++ {
			if !ss[s] {
				t.Fatalf("key %d: seq %d missing below max %d", k, s, len(ss)-1)
			}
		}
		total += len(ss)
	}
	return total
}

// A bounded keyed job with checkpoints every 200 ms finishes with exactly the
// expected committed output and at least 3 completed checkpoints, in both
// checkpointing modes.
func TestCheckpointedBoundedJob(t *testing.T) {
	for _, mode := range []string{"EXACTLY_ONCE", "AT_LEAST_ONCE"} {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t, 2, 1)
			out := filepath.Join(c.dir, "out")
			cpDir := filepath.Join(c.dir, "checkpoints")
			// 16 keys x 5000 at 10,000 records/s per subtask: about 4 s.
			job := keyedJob{
				name: "checkpointed",
				config: []string{
					"execution.checkpointing.interval: 200ms",
					"execution.checkpointing.mode: " + mode,
					fmt.Sprintf("execution.checkpointing.dir: %q", cpDir),
					"execution.checkpointing.num-retained: 2",
					"execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION",
				},
				keys: 16, count: 5000, rate: 10000, out: out,
			}.write(c)
			jobID := strings.TrimSpace(c.mustWeir("run", "-d", job))
			st := c.waitState(jobID, 90*time.Second, "FINISHED", "FAILED", "CANCELED")
			if st.State != "FINISHED" {
				t.Fatalf("job ended %s: %s", st.State, st.StatusMessage)
			}
			checkKeyedCounts(t, out, 16, 5000)
			// Nothing is left uncommitted.
			entries, _ := os.ReadDir(out)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".") {
					t.Errorf("uncommitted file left behind: %s", e.Name())
				}
			}

			cps := c.checkpoints(jobID)
			if n := completed(cps); n < 3 {
				t.Fatalf("%d completed checkpoints, want at least 3: %+v", n, cps)
			}
			var lastID int64
			for i := len(cps) - 1; i >= 0; i-- { // oldest first
				if cps[i].ID <= lastID {
					t.Errorf("checkpoint ids not increasing: %+v", cps)
				}
				lastID = cps[i].ID
			}
			for _, cp := range cps {
				if cp.Status != "COMPLETED" {
					continue
				}
				if cp.Path == "" || cp.TriggerTime == "" || cp.SizeBytes <= 0 {
					t.Errorf("completed checkpoint lacks path, trigger time or size: %+v", cp)
				}
			}
			// The retained checkpoints are on disk with their metadata.
			var stats checkpointStatsJSON
			c.weirJSON(&stats, "status", jobID)
			if stats.Checkpoints.Completed < 3 || stats.Checkpoints.Latest == nil {
				t.Fatalf("status checkpoints %+v, want >= 3 completed and a latest", stats.Checkpoints)
			}
			latest := stats.Checkpoints.Latest
			if _, err := os.Stat(filepath.Join(cpDir, jobID, fmt.Sprintf("chk-%d", latest.ID), "_metadata")); err != nil {
				t.Errorf("latest checkpoint %d has no _metadata under %s: %v", latest.ID, cpDir, err)
			}
			t.Logf("%s: %d completed checkpoints, latest %d at %s", mode, completed(cps), latest.ID, latest.Path)
			checkSubtaskDetails(c, jobID, cps, len(st.Tasks))
		})
	}
}

// checkSubtaskDetails checks Flink's checkpoint details of the oldest
// completed checkpoint (taken while every task ran): one entry per subtask
// with its sync, async and alignment durations present and >= 0.
func checkSubtaskDetails(c *cluster, jobID string, cps []checkpointJSON, tasks int) {
	t := c.t
	t.Helper()
	var id int64
	for _, cp := range cps {
		if cp.Status == "COMPLETED" {
			id = cp.ID // newest first: the last one is the oldest
		}
	}
	var details struct {
		ID       int64 `json:"id"`
		Subtasks []struct {
			Operator string   `json:"operator"`
			Vertex   int      `json:"vertex"`
			Subtask  int      `json:"subtask"`
			Sync     *float64 `json:"sync_duration_ms"`
			Async    *float64 `json:"async_duration_ms"`
			Align    *int64   `json:"alignment_ms"`
		} `json:"subtasks"`
	}
	c.weirJSON(&details, "checkpoints", jobID, fmt.Sprint(id))
	if details.ID != id || len(details.Subtasks) != tasks {
		t.Fatalf("details of checkpoint %d: id %d, %d subtasks, want %d (one per task)", id, details.ID, len(details.Subtasks), tasks)
	}
	seen := map[[2]int]bool{}
	for _, s := range details.Subtasks {
		if s.Operator == "" || seen[[2]int{s.Vertex, s.Subtask}] || s.Sync == nil || *s.Sync < 0 || s.Async == nil || *s.Async < 0 || s.Align == nil || *s.Align < 0 {
			t.Errorf("checkpoint %d: subtask %+v: want a new subtask with sync, async and alignment durations >= 0", id, s)
		}
		seen[[2]int{s.Vertex, s.Subtask}] = true
		if s.Sync != nil && s.Async != nil {
			t.Logf("checkpoint %d, %s[%d]: sync %.3f ms, async %.3f ms", id, s.Operator, s.Subtask, *s.Sync, *s.Async)
		}
	}
}

// Checkpoints go on after a bounded source finished, while an unbounded one
// runs (FLIP-147).
func TestCheckpointsAfterTasksFinish(t *testing.T) {
	c := newCluster(t, 2, 1)
	out := filepath.Join(c.dir, "out")
	job := c.writeJob("mixed.yaml", fmt.Sprintf(`
name: mixed
parallelism: 1
config:
  execution.checkpointing.interval: 200ms
  execution.checkpointing.dir: %q
operators:
  - id: bounded
    type: sequence
    properties: {keys: 2, count: 50}
  - id: unbounded
    type: sequence
    properties: {keys: 2, rate: 100}
  - id: merged
    type: map
    input: [bounded, {from: unbounded, partition: rebalance}]
    properties: {expr: 'record'}
  - id: out
    type: file-sink
    input: merged
    properties: {path: %q}
`, filepath.Join(c.dir, "checkpoints"), out))
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", job))
	waitFor(t, 60*time.Second, "the bounded source to finish", func() bool {
		for _, task := range c.status(jobID).Tasks {
			if task.Operator == "bounded" && task.State == "FINISHED" {
				return true
			}
		}
		return false
	})
	before := completed(c.checkpoints(jobID))
	waitFor(t, 60*time.Second, "3 more completed checkpoints after the bounded source finished", func() bool {
		return completed(c.checkpoints(jobID)) >= before+3
	})
	if st := c.status(jobID); st.State != "RUNNING" {
		t.Fatalf("job is %s, want RUNNING: %s", st.State, st.StatusMessage)
	}
	c.mustWeir("cancel", jobID)
	c.waitState(jobID, 30*time.Second, "CANCELED")
}

// Bad checkpoint settings are rejected at submission, naming the problem.
func TestBadCheckpointConfig(t *testing.T) {
	c := newCluster(t, 1, 1)
	notADir := filepath.Join(c.dir, "file")
	os.WriteFile(notADir, []byte("x"), 0o644)
	cases := []struct{ name, config, want string }{
		{"zero interval", "{execution.checkpointing.interval: 0}", "execution.checkpointing.interval"},
		{"negative interval", "{execution.checkpointing.interval: -1s}", "execution.checkpointing.interval"},
		{"unknown mode", "{execution.checkpointing.interval: 1s, execution.checkpointing.mode: SOMETIMES}", "execution.checkpointing.mode"},
		{"unknown retention", "{execution.checkpointing.interval: 1s, execution.checkpointing.externalized-checkpoint-retention: KEEP}", "externalized-checkpoint-retention"},
		{"filesystem without dir", "{execution.checkpointing.interval: 1s, execution.checkpointing.storage: filesystem}", "execution.checkpointing.dir"},
		{"unwritable dir", fmt.Sprintf("{execution.checkpointing.interval: 1s, execution.checkpointing.dir: %q}", filepath.Join(notADir, "cp")), notADir},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job := c.writeJob("bad.yaml", fmt.Sprintf(`
name: bad
config: %s
operators:
  - id: numbers
    type: sequence
    properties: {keys: 1, count: 10}
  - id: out
    type: blackhole-sink
    input: numbers
`, tc.config))
			stdout, stderr, code := c.weir("run", "-d", job)
			if code == 0 {
				t.Fatalf("accepted: %s", stdout)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("error %q does not name %q", stderr, tc.want)
			}
		})
	}
	var jobs []jobJSON
	c.weirJSON(&jobs, "list", "-a")
	if len(jobs) != 0 {
		t.Errorf("rejected jobs were registered: %+v", jobs)
	}
}
