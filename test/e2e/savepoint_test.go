package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/snapshot"
)

// savepointJob is an unbounded keyed job whose aggregate and sink run at
// parallelism p (the source at 2).
func savepointJob(c *cluster, name string, p int, maxParallelism int, out string) string {
	return keyedJob{
		name: name, stateful: p, maxParallelism: maxParallelism,
		config: c.checkpointing("300ms"),
		keys:   32, rate: 2000, out: out,
	}.write(c)
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// waitCommitted waits until the output holds at least n committed records.
func (c *cluster) waitCommitted(out string, n int) {
	c.t.Helper()
	waitFor(c.t, 60*time.Second, fmt.Sprintf("%d committed records", n), func() bool {
		entries, _ := os.ReadDir(out)
		total := 0
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			data, _ := os.ReadFile(filepath.Join(out, e.Name()))
			total += strings.Count(string(data), "\n")
		}
		return total >= n
	})
}

// A job is savepointed, stopped with a savepoint, moved, resumed at p=3,
// stopped again and resumed at p=1: the output of the three runs together
// has, for every key, seq 0..max with no gap and no duplicate and
// count == seq+1.
func TestSavepointStopResumeRescale(t *testing.T) {
	c := newCluster(t, 2, 3)
	out := filepath.Join(c.dir, "out")
	spDir := filepath.Join(c.dir, "savepoints")

	// Run 1 at p=2: a savepoint while it runs, then stop with one.
	job1 := strings.TrimSpace(c.mustWeir("run", "-d", savepointJob(c, "run1", 2, 128, out)))
	c.waitState(job1, 60*time.Second, "RUNNING")
	c.waitCommitted(out, 500)
	sp0 := lastLine(c.mustWeir("savepoint", job1, spDir))
	if _, err := os.Stat(filepath.Join(sp0, "_metadata")); err != nil {
		t.Fatalf("savepoint %q has no _metadata: %v", sp0, err)
	}
	if st := c.status(job1); st.State != "RUNNING" {
		t.Fatalf("job is %s after a savepoint, want RUNNING", st.State)
	}
	sp1 := lastLine(c.mustWeir("stop", "--savepoint-path", spDir, job1))
	c.waitState(job1, 60*time.Second, "FINISHED")

	// Move the savepoint elsewhere, then resume from there at p=3.
	moved := filepath.Join(c.dir, "elsewhere", "sp1")
	os.MkdirAll(filepath.Dir(moved), 0o755)
	if err := os.Rename(sp1, moved); err != nil {
		t.Fatal(err)
	}
	job2 := strings.TrimSpace(c.mustWeir("run", "-d", "--from-savepoint", moved, savepointJob(c, "run2", 3, 128, out)))
	c.waitState(job2, 60*time.Second, "RUNNING")
	c.waitCommitted(out, 3000)
	sp2 := lastLine(c.mustWeir("stop", "--savepoint-path", spDir, job2))
	c.waitState(job2, 60*time.Second, "FINISHED")

	// Resume at p=1 and stop once more.
	job3 := strings.TrimSpace(c.mustWeir("run", "-d", "--from-savepoint", sp2, savepointJob(c, "run3", 1, 128, out)))
	c.waitState(job3, 60*time.Second, "RUNNING")
	c.waitCommitted(out, 5000)
	sp3 := lastLine(c.mustWeir("stop", "--savepoint-path", spDir, job3))
	c.waitState(job3, 60*time.Second, "FINISHED")

	// Every key: seq 0..max exactly once, count == seq+1.
	total := checkGapless(t, out, 32)
	t.Logf("3 runs (p=2, 3, 1) through savepoints %s, %s, %s: %d records, every key gapless and duplicate-free, count == seq+1", moved, sp2, sp3, total)

	// Dispose removes exactly the first savepoint.
	c.mustWeir("savepoint", "--dispose", sp0)
	if _, err := os.Stat(sp0); !os.IsNotExist(err) {
		t.Errorf("disposed savepoint %s still exists: %v", sp0, err)
	}
	for _, sp := range []string{moved, sp2, sp3} {
		if _, err := os.Stat(filepath.Join(sp, "_metadata")); err != nil {
			t.Errorf("savepoint %s was touched by the dispose: %v", sp, err)
		}
	}
	if _, stderr, code := c.weir("savepoint", "--dispose", out); code == 0 {
		t.Errorf("disposing a directory that is not a savepoint succeeded")
	} else if !strings.Contains(stderr, out) {
		t.Errorf("dispose error %q does not name the path", stderr)
	}

	// Rejections when resuming.
	removed := c.writeJob("removed.yaml", fmt.Sprintf(`
name: removed
parallelism: 2
config: {execution.checkpointing.interval: 300ms}
operators:
  - id: numbers
    type: sequence
    properties: {keys: 32, rate: 10}
  - id: out
    type: file-sink
    input: numbers
    properties: {path: %q}
`, filepath.Join(c.dir, "out-removed")))
	if _, stderr, code := c.weir("run", "-d", "--from-savepoint", sp3, removed); code == 0 || !strings.Contains(stderr, "counted") {
		t.Errorf("resume without operator counted: exit %d, %q: want a rejection naming counted", code, stderr)
	}
	jobOK := strings.TrimSpace(c.mustWeir("run", "-d", "--from-savepoint", sp3, "--allow-non-restored-state", removed))
	c.waitState(jobOK, 60*time.Second, "RUNNING")
	c.mustWeir("cancel", jobOK)

	if _, stderr, code := c.weir("run", "-d", "--from-savepoint", sp3, savepointJob(c, "maxp", 2, 64, filepath.Join(c.dir, "out-maxp"))); code == 0 || !strings.Contains(stderr, "128") || !strings.Contains(stderr, "64") {
		t.Errorf("resume with max-parallelism 64: exit %d, %q: want a rejection naming 128 and 64", code, stderr)
	}
	truncated := filepath.Join(c.dir, "truncated")
	os.MkdirAll(truncated, 0o755)
	meta, _ := os.ReadFile(filepath.Join(sp3, "_metadata"))
	os.WriteFile(filepath.Join(truncated, "_metadata"), meta[:len(meta)/2], 0o644)
	if _, stderr, code := c.weir("run", "-d", "--from-savepoint", truncated, savepointJob(c, "trunc", 2, 128, filepath.Join(c.dir, "out-t"))); code == 0 || !strings.Contains(stderr, "truncated") {
		t.Errorf("resume from a truncated _metadata: exit %d, %q", code, stderr)
	}
	if _, stderr, code := c.weir("run", "-d", "--from-savepoint", out, savepointJob(c, "notsp", 2, 128, filepath.Join(c.dir, "out-n"))); code == 0 || !strings.Contains(stderr, "not a weir savepoint") {
		t.Errorf("resume from a directory that is not a savepoint: exit %d, %q", code, stderr)
	}
}

// drainJob is an unbounded keyed count (numbers -> counted -> out) next to
// a bounded branch (done -> done-out, 2 keys x 3 records) that finishes
// long before the job is stopped.
func drainJob(c *cluster, name, out, doneOut string) string {
	return c.writeJob(name+".yaml", fmt.Sprintf(`
name: %s
parallelism: 2
config:
  execution.checkpointing.interval: 300ms
  execution.checkpointing.dir: %q
operators:
  - id: numbers
    type: sequence
    properties: {keys: 8, rate: 400}
  - id: counted
    type: aggregate
    input: {from: numbers, partition: hash, key: key}
    properties: {aggregates: {count: count}}
  - id: out
    type: file-sink
    input: counted
    properties: {path: %q}
  - id: done
    type: sequence
    parallelism: 1
    properties: {keys: 2, count: 3}
  - id: done-out
    type: file-sink
    parallelism: 1
    input: done
    properties: {path: %q}
`, name, filepath.Join(c.dir, "checkpoints"), out, doneOut))
}

// Stop-with-savepoint --drain takes a regular savepoint, as Flink's
// (FLIP-147: the tasks were still running when it was triggered, so the
// JobManager records no subtask as finished, only those FINISHED before:
// the bounded branch). Resumed from it, the unbounded source goes on at its
// position: over both runs every key has seq 0..max exactly once with
// count == seq+1; the bounded branch that had finished emits nothing again.
func TestStopWithDrainResumes(t *testing.T) {
	c := newCluster(t, 1, 4)
	out, doneOut := filepath.Join(c.dir, "out"), filepath.Join(c.dir, "done-out")
	spDir := filepath.Join(c.dir, "savepoints")

	job1 := strings.TrimSpace(c.mustWeir("run", "-d", drainJob(c, "drain1", out, doneOut)))
	c.waitState(job1, 60*time.Second, "RUNNING")
	c.waitCommitted(out, 400)
	c.waitCommitted(doneOut, 6)
	waitFor(t, 60*time.Second, "the bounded branch FINISHED", func() bool {
		for _, task := range c.status(job1).Tasks {
			if strings.HasPrefix(task.Operator, "done") && task.State != "FINISHED" {
				return false
			}
		}
		return true
	})
	sp := lastLine(c.mustWeir("stop", "--drain", "--savepoint-path", spDir, job1))
	c.waitState(job1, 60*time.Second, "FINISHED")
	atStop := checkGapless(t, out, 8)

	md, err := snapshot.LoadMetadata(context.Background(), sp)
	if err != nil {
		t.Fatalf("load the drained savepoint: %v", err)
	}
	for _, op := range md.Operators {
		wantFinished := strings.HasPrefix(op.ID, "done")
		for _, st := range op.Subtasks {
			if st.Finished != wantFinished {
				t.Errorf("drained savepoint: operator %q subtask %d finished %t, want %t", op.ID, st.Subtask, st.Finished, wantFinished)
			}
		}
	}

	job2 := strings.TrimSpace(c.mustWeir("run", "-d", "--from-savepoint", sp, drainJob(c, "drain2", out, doneOut)))
	c.waitState(job2, 60*time.Second, "RUNNING")
	c.waitCommitted(out, atStop+400)
	c.mustWeir("stop", "--savepoint-path", spDir, job2)
	c.waitState(job2, 60*time.Second, "FINISHED")

	total := checkGapless(t, out, 8)
	if total < atStop+400 {
		t.Fatalf("%d records after the resume, want at least %d more than the %d at the drain", total, 400, atStop)
	}
	if n := len(committedRecords(t, doneOut)); n != 6 {
		t.Errorf("the bounded branch wrote %d records over both runs, want 6 (it had finished before the drain)", n)
	}
	t.Logf("drained at %d records, resumed to %d: every key gapless and duplicate-free", atStop, total)
}
