package scheduler

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/jobgraph"
)

// checkCounts checks the counts every job keeps of its attempts against a
// walk over them (not through subtasks, which counts its visits).
func checkCounts(t *testing.T, s *Scheduler) {
	t.Helper()
	for _, j := range s.order {
		nonTerminal, notUp := 0, 0
		for _, v := range j.eg.Vertices {
			for _, ex := range v.Subtasks {
				if !ex.State.IsTerminal() {
					nonTerminal++
				}
				if ex.State != ExecutionRunning && ex.State != ExecutionFinished {
					notUp++
				}
			}
		}
		if j.nonTerminal != nonTerminal || j.notUp != notUp {
			t.Fatalf("job %s counts %d not terminal, %d not up; the attempts say %d and %d", j.eg.JobID, j.nonTerminal, j.notUp, nonTerminal, notUp)
		}
	}
}

// ends runs job id (pipeline(1, 1), both subtasks on TaskManager a) at
// second sec: deployed, then ended as end says (FINISHED, CANCELED or
// FAILED) at sec+0.5.
func ends(id string, sec float64, end JobState) []step {
	at := func(d float64) time.Duration { return time.Duration(d * float64(time.Second)) }
	deployed := step{at(sec), submit(id, pipeline(1, 1)), []string{
		"job " + id + "  -> CREATED", "deploy a " + id + "/0/0#0", "deploy a " + id + "/1/0#0", "job " + id + " CREATED -> RUNNING"}}
	switch end {
	case JobFinished:
		return []step{deployed,
			{at(sec + 0.5), report("a", id, 0, 0, 0, ExecutionFinished, ""), []string{"task " + id + "/0/0#0 FINISHED"}},
			{at(sec + 0.5), report("a", id, 1, 0, 0, ExecutionFinished, ""), []string{
				"task " + id + "/1/0#0 FINISHED", "job " + id + " RUNNING -> FINISHED", "release a " + id}},
		}
	case JobCanceled:
		return []step{deployed,
			{at(sec + 0.5), CancelRequested{JobID: id}, []string{
				"cancel a " + id + "/0/0#0", "cancel a " + id + "/1/0#0", "job " + id + " RUNNING -> CANCELING"}},
			{at(sec + 0.5), report("a", id, 0, 0, 0, ExecutionCanceled, ""), nil},
			{at(sec + 0.5), report("a", id, 1, 0, 0, ExecutionCanceled, ""), []string{"job " + id + " CANCELING -> CANCELED", "release a " + id}},
		}
	}
	return []step{deployed,
		{at(sec + 0.5), report("a", id, 0, 0, 0, ExecutionFailed, "boom"), []string{
			"cancel a " + id + "/1/0#0", "job " + id + " RUNNING -> FAILING: src subtask 0 failed: boom"}},
		{at(sec + 0.5), report("a", id, 1, 0, 0, ExecutionCanceled, ""), []string{
			"job " + id + " FAILING -> FAILED: src subtask 0 failed: boom", "release a " + id}},
	}
}

// TestJobStore: the globally terminal jobs are kept up to
// jobstore.max-capacity, those that ended first removed first, and each
// for jobstore.expiration-time after it ended; jobs that have not ended are
// never removed.
func TestJobStore(t *testing.T) {
	const capacity = "more than 2 terminal jobs (jobstore.max-capacity)"
	const expired = "ended more than 1m0s ago (jobstore.expiration-time)"
	tests := []struct {
		name  string
		cfg   Config
		steps []step
		jobs  []string // what Jobs lists at the end
	}{
		{
			name: "capacity: the job that ended first goes first, whatever its state or submission",
			cfg:  Config{JobStoreMaxCapacity: 2},
			steps: concat(
				[]step{{0, reg("a", 10), []string{"tm+ a#1 a:1"}}},
				ends("j1", 1, JobFailed), ends("j2", 2, JobCanceled),
				// j3 runs on and ends last.
				[]step{{3 * time.Second, submit("j3", pipeline(1, 1)), []string{
					"job j3  -> CREATED", "deploy a j3/0/0#0", "deploy a j3/1/0#0", "job j3 CREATED -> RUNNING"}}},
				ends("j4", 4, JobFinished)[:2],
				[]step{{4500 * time.Millisecond, report("a", "j4", 1, 0, 0, ExecutionFinished, ""), []string{
					"task j4/1/0#0 FINISHED", "job j4 RUNNING -> FINISHED", "release a j4", "removed j1: " + capacity}}},
				[]step{{5 * time.Second, CancelRequested{JobID: "j3"}, []string{
					"cancel a j3/0/0#0", "cancel a j3/1/0#0", "job j3 RUNNING -> CANCELING"}},
					{5 * time.Second, report("a", "j3", 0, 0, 0, ExecutionCanceled, ""), nil},
					{5 * time.Second, report("a", "j3", 1, 0, 0, ExecutionCanceled, ""), []string{
						"job j3 CANCELING -> CANCELED", "release a j3", "removed j2: " + capacity}},
					// Time alone removes nothing without an expiration.
					{100 * time.Hour, Tick{}, nil}},
			),
			jobs: []string{"j3 CANCELED", "j4 FINISHED"},
		},
		{
			name: "expiration: each job its own time after it ended; running and waiting jobs stay",
			cfg:  Config{JobStoreExpiration: time.Minute},
			steps: concat(
				[]step{{0, reg("a", 2), []string{"tm+ a#1 a:1"}}},
				ends("j1", 1, JobFinished), ends("j2", 2, JobFailed),
				[]step{
					{3 * time.Second, submit("j3", pipeline(1, 1)), []string{
						"job j3  -> CREATED", "deploy a j3/0/0#0", "deploy a j3/1/0#0", "job j3 CREATED -> RUNNING"}},
					{4 * time.Second, submit("j4", pipeline(4, 1)), []string{"job j4  -> CREATED"}},
					{61*time.Second + 499*time.Millisecond, Tick{}, nil},
					{61*time.Second + 500*time.Millisecond, Tick{}, []string{"removed j1: " + expired}},
					// Any event lets time pass, not only a Tick.
					{62*time.Second + 500*time.Millisecond, reg("b", 1), []string{"tm+ b#2 b:1", "removed j2: " + expired}},
					{5 * time.Minute, Tick{}, nil},
				},
			),
			jobs: []string{"j3 RUNNING", "j4 CREATED"},
		},
		{
			name: "both bounds, and the unbounded default",
			cfg:  Config{JobStoreMaxCapacity: 1, JobStoreExpiration: time.Minute},
			steps: concat(
				[]step{{0, reg("a", 2), []string{"tm+ a#1 a:1"}}},
				ends("j1", 1, JobFinished),
				ends("j2", 2, JobFinished)[:2],
				[]step{
					{2500 * time.Millisecond, report("a", "j2", 1, 0, 0, ExecutionFinished, ""), []string{
						"task j2/1/0#0 FINISHED", "job j2 RUNNING -> FINISHED", "release a j2",
						"removed j1: more than 1 terminal jobs (jobstore.max-capacity)"}},
					{62500 * time.Millisecond, Tick{}, []string{"removed j2: " + expired}},
				},
			),
			jobs: nil,
		},
		{
			name: "no bounds: every job is kept",
			steps: concat(
				[]step{{0, reg("a", 2), []string{"tm+ a#1 a:1"}}},
				ends("j1", 1, JobFinished), ends("j2", 2, JobCanceled),
				[]step{{1000 * time.Hour, Tick{}, nil}},
			),
			jobs: []string{"j1 FINISHED", "j2 CANCELED"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := runScenario(t, tt.cfg, tt.steps)
			var jobs []string
			for _, j := range s.Jobs() {
				jobs = append(jobs, j.Id+" "+j.State)
			}
			if strings.Join(jobs, "\n") != strings.Join(tt.jobs, "\n") {
				t.Fatalf("Jobs:\n%s\nwant:\n%s", strings.Join(jobs, "\n"), strings.Join(tt.jobs, "\n"))
			}
			for _, j := range tt.jobs {
				id := strings.Fields(j)[0]
				if _, ok := s.JobDetails(id); !ok {
					t.Errorf("job %s listed but not found", id)
				}
			}
			if len(s.jobs) != len(tt.jobs) {
				t.Errorf("%d jobs kept, %d listed", len(s.jobs), len(tt.jobs))
			}
		})
	}
}

// wide is a source and `edges` vertices in a chain, every vertex at
// parallelism p, connected by partition.
func wide(p, edges int, partition string) []*jobgraph.JobVertex {
	vs := make([]*jobgraph.JobVertex, edges+1)
	for i := range vs {
		id := fmt.Sprintf("op%d", i)
		vs[i] = &jobgraph.JobVertex{Index: i, Parallelism: p, Operators: []*jobgraph.Operator{{ID: id, Type: "map", Parallelism: p}}}
		if i > 0 {
			from := fmt.Sprintf("op%d", i-1)
			vs[i].Operators[0].Inputs = []jobgraph.Input{{From: from, Partition: partition}}
			vs[i].Inputs = []jobgraph.VertexInput{{FromVertex: i - 1, FromOperator: from, Partition: partition}}
			vs[i-1].Outputs = []jobgraph.VertexOutput{{ToVertex: i, ToOperator: id, Partition: partition}}
		}
	}
	return vs
}

// TestWideJobWorkIsLinear runs a wide job through deployment, every task
// reporting RUNNING, a failure, the cancellation of every other task and
// the restart: the subtasks visited stay a small multiple of the subtasks,
// where a walk per report would visit them squared.
func TestWideJobWorkIsLinear(t *testing.T) {
	const p, edges = 512, 20
	const n = p * (edges + 1)
	s := New(Config{})
	s.Step(t0, reg("a", p))
	s.Step(t0, submitWith("j", wide(p, edges, jobgraph.Forward), fixed(1, 0)))
	report := func(v, st, attempt int, state ExecutionState) {
		s.Step(t0, TaskStateChanged{TaskManagerID: "a", Execution: ExecutionAttemptID{JobID: "j", Vertex: v, Subtask: st, Attempt: attempt}, State: state})
	}
	for attempt := 0; attempt < 2; attempt++ {
		for v := 0; v <= edges; v++ {
			for st := 0; st < p; st++ {
				report(v, st, attempt, ExecutionRunning)
			}
		}
		checkCounts(t, s)
		if st, _ := s.JobState("j"); st != JobRunning || s.jobs["j"].notUp != 0 {
			t.Fatalf("attempt %d: job %s, %d tasks not up", attempt, st, s.jobs["j"].notUp)
		}
		if attempt == 1 {
			break
		}
		report(0, 0, 0, ExecutionFailed)
		for v := 0; v <= edges; v++ {
			for st := 0; st < p; st++ {
				if v != 0 || st != 0 {
					report(v, st, 0, ExecutionCanceled)
				}
			}
		}
		s.Step(t0, RestoreLoaded{JobID: "j", Request: 1})
	}
	if visited := s.jobs["j"].eg.visited; visited > 10*n {
		t.Fatalf("%d subtasks visited for %d subtasks: not linear", visited, n)
	}
}

// TestWideJobMemoryGrowsLinearly submits a job of 20 all-to-all edges at
// parallelism p and 2p (no slots: it waits): the bytes allocated must about
// double, not quadruple. The deployment descriptors, built only when the
// job is deployed, hold p channels per all-to-all input: that is the size
// of the job, bounded by its maximum parallelism.
func TestWideJobMemoryGrowsLinearly(t *testing.T) {
	allocated := func(p int) uint64 {
		vs := wide(p, 20, jobgraph.Rebalance)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := New(Config{})
		s.Step(t0, submit("j", vs))
		runtime.ReadMemStats(&after)
		if st, _ := s.JobState("j"); st != JobCreated {
			t.Fatalf("job %s", st)
		}
		runtime.KeepAlive(s)
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := allocated(2048), allocated(4096)
	if ratio := float64(large) / float64(small); ratio > 3 {
		t.Fatalf("doubling the parallelism multiplied the memory allocated by %.1f (%d -> %d bytes): not linear", ratio, small, large)
	}
}
