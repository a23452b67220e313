package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// A bounded keyed pipeline across two TaskManagers: every (key, seq) that
// passes the filter arrives exactly once with its exact running count and sum.
func TestKeyedPipelineAcrossTaskManagers(t *testing.T) {
	c := newCluster(t, 2, 1)
	out := filepath.Join(c.dir, "out")
	job := c.writeJob("keyed.yaml", fmt.Sprintf(`
name: keyed-sums
parallelism: 2
operators:
  - id: numbers
    type: sequence
    properties: {keys: 8, count: 500}
  - id: evens
    type: filter
    input: numbers
    properties: {expr: "record.seq %% 2 == 0"}
  - id: summed
    type: aggregate
    input: {from: evens, partition: hash, key: key}
    properties: {aggregates: {count: count, total: "sum(seq)"}}
  - id: out
    type: file-sink
    input: summed
    properties: {path: %q, format: json}
`, out))
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", job))
	if len(jobID) != 32 {
		t.Fatalf("weir run -d printed %q, want a 32-character job id alone", jobID)
	}
	st := c.waitState(jobID, 60*time.Second, "FINISHED", "FAILED", "CANCELED")
	if st.State != "FINISHED" {
		t.Fatalf("job ended %s: %s", st.State, st.StatusMessage)
	}
	if st.Name != "keyed-sums" || st.Parallelism != 2 {
		t.Errorf("status name %q parallelism %d, want keyed-sums 2", st.Name, st.Parallelism)
	}
	tms := map[string]bool{}
	for _, task := range st.Tasks {
		tms[task.TaskManager] = true
		if task.State != "FINISHED" {
			t.Errorf("task %s[%d] is %s, want FINISHED", task.Operator, task.Subtask, task.State)
		}
	}
	if len(tms) != 2 {
		t.Errorf("tasks ran on %d TaskManagers %v, want both", len(tms), tms)
	}

	recs := committedRecords(t, out)
	const keys, perKey = 8, 250 // seq 0, 2, ..., 498
	if len(recs) != keys*perKey {
		t.Errorf("got %d committed records, want %d", len(recs), keys*perKey)
	}
	seen := map[[2]int64]bool{}
	for _, r := range recs {
		if len(r) != 4 {
			t.Fatalf("record %v: want exactly the fields key, seq, count, total", r)
		}
		k, s := intField(t, r, "key"), intField(t, r, "seq")
		j := s / 2 // the j-th even seq of this key, from 0
		if k < 0 || k >= keys || s%2 != 0 || s < 0 || s >= 2*perKey {
			t.Fatalf("unexpected record %v", r)
		}
		if seen[[2]int64{k, s}] {
			t.Fatalf("duplicate record for key %d seq %d", k, s)
		}
		seen[[2]int64{k, s}] = true
		if got, want := intField(t, r, "count"), j+1; got != want {
			t.Errorf("key %d seq %d: count %d, want %d", k, s, got, want)
		}
		if got, want := intField(t, r, "total"), j*(j+1); got != want {
			t.Errorf("key %d seq %d: total %d, want %d", k, s, got, want)
		}
	}
	for k := int64(0); k < keys; k++ {
		for s := int64(0); s < 2*perKey; s += 2 {
			if !seen[[2]int64{k, s}] {
				t.Fatalf("missing record for key %d seq %d", k, s)
			}
		}
	}
	t.Logf("checked %d records: every (key, seq) once, count and total exact, tasks on %d TaskManagers", len(recs), len(tms))
}

// A word count over a directory of text files, with the exact counts.
func TestFileSourceWordCount(t *testing.T) {
	c := newCluster(t, 2, 1)
	in := filepath.Join(c.dir, "in")
	out := filepath.Join(c.dir, "out")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	texts := []string{
		"the quick brown fox\njumps over the lazy dog\n",
		"the dog barks\nthe fox runs\n\n  away  from the dog\n",
		"a last line without newline the",
	}
	want := map[string]int64{}
	for i, text := range texts {
		if err := os.WriteFile(filepath.Join(in, fmt.Sprintf("f%d.txt", i)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, w := range strings.Fields(text) {
			want[w]++
		}
	}
	// Ignored: hidden and underscore files.
	os.WriteFile(filepath.Join(in, ".hidden"), []byte("ignored words\n"), 0o644)
	os.WriteFile(filepath.Join(in, "_SUCCESS"), []byte("ignored words\n"), 0o644)
	job := c.writeJob("wc.yaml", fmt.Sprintf(`
name: word-count
parallelism: 2
operators:
  - id: lines
    type: file-source
    properties: {path: %q, format: text}
  - id: words
    type: flat-map
    input: lines
    properties: {expr: 'record.line.split(" ").filter(w, w != "").map(w, {"word": w})'}
  - id: counts
    type: aggregate
    input: {from: words, partition: hash, key: word}
    properties: {aggregates: {n: count}}
  - id: out
    type: file-sink
    input: counts
    properties: {path: %q}
`, in, out))
	stdout, stderr, code := c.weir("run", job)
	if code != 0 {
		t.Fatalf("weir run exited %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	got := map[string][]int64{}
	for _, r := range committedRecords(t, out) {
		w, _ := r["word"].(string)
		got[w] = append(got[w], intField(t, r, "n"))
	}
	for w, n := range want {
		counts := got[w]
		sort.Slice(counts, func(i, j int) bool { return counts[i] < counts[j] })
		if int64(len(counts)) != n {
			t.Errorf("word %q: %d records, want %d", w, len(counts), n)
			continue
		}
		for i, c := range counts {
			if c != int64(i+1) {
				t.Errorf("word %q: running counts %v, want 1..%d", w, counts, n)
				break
			}
		}
	}
	for w := range got {
		if _, ok := want[w]; !ok {
			t.Errorf("unexpected word %q", w)
		}
	}
}

// Bad job files are rejected with a message naming what is wrong, and
// nothing is deployed.
func TestBadJobsAreRejected(t *testing.T) {
	c := newCluster(t, 1, 2)
	const src = "  - id: src\n    type: sequence\n    properties: {keys: 2, count: 10}\n"
	cases := []struct {
		name, job, want string
	}{
		{"unknown type", "name: j\noperators:\n  - id: a\n    type: nosuch\n", `unknown type "nosuch"`},
		{"unknown property", "name: j\noperators:\n  - id: a\n    type: sequence\n    properties: {keys: 2, colour: red}\n", `unknown property "colour"`},
		{"duplicate id", "name: j\noperators:\n" + src + src, `duplicate`},
		{"malformed id", "name: j\noperators:\n  - id: Bad!\n    type: sequence\n    properties: {keys: 1}\n", `"Bad!"`},
		{"missing input", "name: j\noperators:\n" + src + "  - id: out\n    type: print-sink\n    input: nosuch\n", `input "nosuch" does not exist`},
		{"cycle", "name: j\noperators:\n" + src + "  - id: a\n    type: map\n    input: [src, b]\n    properties: {expr: 'record'}\n  - id: b\n    type: map\n    input: a\n    properties: {expr: 'record'}\n", `cycle`},
		{"source with input", "name: j\noperators:\n" + src + "  - id: s2\n    type: sequence\n    input: src\n    properties: {keys: 1}\n", `source`},
		{"hash without key", "name: j\noperators:\n" + src + "  - id: out\n    type: print-sink\n    input: {from: src, partition: hash}\n", `key`},
		{"aggregate not hash", "name: j\noperators:\n" + src + "  - id: agg\n    type: aggregate\n    input: src\n    properties: {aggregates: {n: count}}\n", `hash`},
		{"cel does not compile", "name: j\noperators:\n" + src + "  - id: f\n    type: filter\n    input: src\n    properties: {expr: 'record.seq %'}\n", `record.seq %`},
		{"cel wrong type", "name: j\noperators:\n" + src + "  - id: f\n    type: filter\n    input: src\n    properties: {expr: '1 + 2'}\n", `bool`},
		{"parallelism above max", "name: j\nmax-parallelism: 4\noperators:\n  - id: src\n    type: sequence\n    parallelism: 5\n    properties: {keys: 1}\n", `max-parallelism`},
		{"bad config value", "name: j\nconfig: {execution.buffer-timeout: soon}\noperators:\n" + src, `execution.buffer-timeout`},
		{"not yaml", "name: [unclosed\n", `yaml`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job := c.writeJob(strings.ReplaceAll(tc.name, " ", "-")+".yaml", tc.job)
			stdout, stderr, code := c.weir("run", "-d", job)
			if code == 0 {
				t.Fatalf("accepted: stdout %q", stdout)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("error %q does not contain %q", stderr, tc.want)
			}
			if strings.Contains(stderr, "rpc error") {
				t.Errorf("error shows gRPC internals: %q", stderr)
			}
		})
	}
	var jobs []jobJSON
	c.weirJSON(&jobs, "list", "-a")
	if len(jobs) != 0 {
		t.Errorf("rejected jobs were registered: %v", jobs)
	}
	// A missing file is a CLI error.
	if _, stderr, code := c.weir("run", filepath.Join(c.dir, "missing.yaml")); code == 0 || !strings.Contains(stderr, "missing.yaml") {
		t.Errorf("missing job file: exit %d, stderr %q", code, stderr)
	}
}

// A record on which an expression fails at run time fails the job, and the
// error names the operator, the expression and the record.
func TestRuntimeExpressionError(t *testing.T) {
	c := newCluster(t, 1, 1)
	job := c.writeJob("fail.yaml", `
name: divide
operators:
  - id: numbers
    type: sequence
    properties: {keys: 1, count: 100}
  - id: divide
    type: map
    input: numbers
    properties: {expr: '{"q": 100 / (record.seq - 42)}'}
  - id: out
    type: blackhole-sink
    input: divide
`)
	stdout, stderr, code := c.weir("run", job)
	if code == 0 {
		t.Fatalf("weir run exited 0 for a failing job: %s", stdout)
	}
	msg := stdout + stderr
	for _, want := range []string{`divide`, `100 / (record.seq - 42)`, `"seq":42`} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure output does not name %q:\n%s", want, msg)
		}
	}
}

// A job that needs more slots than the cluster has waits, says why, and fails
// after slot.request.timeout.
func TestNotEnoughSlots(t *testing.T) {
	c := newCluster(t, 1, 2, "slot.request.timeout=3s")
	job := c.writeJob("big.yaml", `
name: too-big
parallelism: 3
operators:
  - id: numbers
    type: sequence
    properties: {keys: 3, count: 10}
  - id: out
    type: blackhole-sink
    input: numbers
`)
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", job))
	st := c.status(jobID)
	if st.State == "CREATED" && !strings.Contains(st.StatusMessage, "1 more task slot") {
		t.Errorf("waiting job's status message %q does not say 1 more task slot is missing", st.StatusMessage)
	}
	st = c.waitState(jobID, 30*time.Second, "FAILED", "FINISHED")
	if st.State != "FAILED" || !strings.Contains(st.StatusMessage, "slot.request.timeout") {
		t.Errorf("job ended %s with %q, want FAILED naming slot.request.timeout", st.State, st.StatusMessage)
	}
}

// Killing a TaskManager that runs tasks fails the job with a message that
// names the lost TaskManager.
func TestKillTaskManagerFailsJob(t *testing.T) {
	c := newCluster(t, 2, 1)
	job := c.writeJob("slow.yaml", `
name: slow
parallelism: 2
operators:
  - id: numbers
    type: sequence
    properties: {keys: 4, rate: 200}
  - id: counted
    type: aggregate
    input: {from: numbers, partition: hash, key: key}
    properties: {aggregates: {n: count}}
  - id: out
    type: blackhole-sink
    input: counted
`)
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", job))
	var victim string
	waitFor(t, 30*time.Second, "all tasks running", func() bool {
		st := c.status(jobID)
		if st.State != "RUNNING" || len(st.Tasks) == 0 {
			return false
		}
		for _, task := range st.Tasks {
			if task.State != "RUNNING" {
				return false
			}
			victim = task.TaskManager
		}
		return true
	})
	proc := c.processOf(victim)
	proc.kill()
	st := c.waitState(jobID, 30*time.Second, "FAILED")
	if !strings.Contains(st.StatusMessage, victim) || !strings.Contains(st.StatusMessage, "lost") {
		t.Errorf("failure %q does not name the lost TaskManager %q", st.StatusMessage, victim)
	}
	var after []taskManagerJSON
	c.weirJSON(&after, "taskmanagers")
	if len(after) != 1 {
		t.Errorf("after the kill %d TaskManagers are registered, want 1: %v", len(after), after)
	}
}
