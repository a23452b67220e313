package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The command line a Flink user types, against a real cluster: -p and -D
// change what the job runs with, a job wider than the free slots says what
// it waits for, weir list shows what flink list shows, and relative paths
// of savepoints are weir's working directory's.
func TestFlinkCommandLine(t *testing.T) {
	c := newCluster(t, 1, 2)
	job := c.writeJob("counts.yaml", fmt.Sprintf(`
name: counts
parallelism: 2
operators:
  - id: numbers
    type: sequence
    properties: {keys: 4, count: 100, rate: 0}
  - id: counted
    type: aggregate
    input: {from: numbers, partition: hash, key: key}
    properties: {aggregates: {count: count}}
  - id: out
    type: file-sink
    input: counted
    properties: {path: %q, format: json}
`, filepath.Join(c.dir, "out")))

	// weir info needs no cluster and says what -p makes of the job.
	info := c.mustWeir("info", "-p", "1", "-D", "execution.buffer-timeout=5ms", job)
	for _, want := range []string{"Parallelism:       1 (max 128)\n", "Slots:             1\n",
		"1     counted -> out  1\n", "execution.buffer-timeout  5ms    -D\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("weir info lacks %q:\n%s", want, info)
		}
	}

	stdout, stderr, code := c.weir("run", "-d", "-p", "1", "-D", "execution.buffer-timeout=5ms", job)
	if code != 0 {
		t.Fatalf("weir run -p 1: exit %d: %s", code, stderr)
	}
	st := c.waitState(strings.TrimSpace(stdout), 60*time.Second, "FINISHED", "FAILED", "CANCELED")
	if st.State != "FINISHED" || st.Parallelism != 1 || len(st.Tasks) != 2 {
		t.Fatalf("job with -p 1 ended %s at parallelism %d with %d tasks, want FINISHED at 1 with 2: %s",
			st.State, st.Parallelism, len(st.Tasks), st.StatusMessage)
	}

	// Wider than the two slots: it waits, and says for what.
	stdout, stderr, code = c.weir("run", "-d", "-p", "3", job)
	if code != 0 {
		t.Fatalf("weir run -p 3: exit %d: %s", code, stderr)
	}
	wide := strings.TrimSpace(stdout)
	st = c.waitState(wide, 30*time.Second, "CREATED")
	if want := "waiting for 1 more task slot: needs 3, 2 free"; st.StatusMessage != want {
		t.Errorf("waiting job's message %q, want %q", st.StatusMessage, want)
	}
	if out := c.mustWeir("list"); !strings.Contains(out, wide) || strings.Contains(out, "FINISHED") {
		t.Errorf("weir list shows:\n%s\nwant the CREATED job and not the FINISHED one", out)
	}
	if out := c.mustWeir("list", "-a"); !strings.Contains(out, wide) || !strings.Contains(out, "FINISHED") {
		t.Errorf("weir list -a shows:\n%s\nwant both jobs", out)
	}
	c.mustWeir("cancel", wide)
	c.waitState(wide, 30*time.Second, "CANCELED")
	if _, stderr, code := c.weir("list", "-r", "-s"); code != 0 || stderr != "No running or scheduled jobs.\n" {
		t.Errorf("weir list -r -s: exit %d, stderr %q", code, stderr)
	}

	// Relative savepoint paths are the user's (weir runs in c.dir).
	missing := filepath.Join(c.dir, "savepoints", "missing")
	if _, stderr, code := c.weir("savepoint", "--dispose", "savepoints/missing"); code != 1 ||
		stderr != "weir: dispose savepoint: not a weir checkpoint or savepoint: "+missing+": does not exist\n" {
		t.Errorf("dispose of a missing relative path: exit %d, stderr %q", code, stderr)
	}
	if _, stderr, code := c.weir("run", "-d", "--fromSavepoint", "savepoints/missing", job); code != 1 ||
		stderr != "weir: "+missing+" is not a weir savepoint or checkpoint: does not exist\n" {
		t.Errorf("run from a missing relative path: exit %d, stderr %q", code, stderr)
	}
}
