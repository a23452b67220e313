package ha

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

const window = 10 * time.Second

// job is a stored job at attempt 2 whose latest completed checkpoint is 5
// and whose counter is at 7: checkpoint 6 may be in flight.
func job(id string, par ...int) StoredJob {
	return StoredJob{JobID: id, Parallelism: par, Attempt: 2, LatestCheckpointID: 5, NextCheckpointID: 7, MaxPendingCheckpoints: 1}
}

func task(jobID string, v, s, attempt int, state ReportedState) ReportedTask {
	return ReportedTask{JobID: jobID, Vertex: v, Subtask: s, Attempt: attempt, State: state}
}

// run is a RUNNING task of attempt 2.
func run(jobID string, v, s int) ReportedTask { return task(jobID, v, s, 2, ReportedRunning) }

func rep(tm string, ts ...ReportedTask) TaskManagerReport {
	return TaskManagerReport{TaskManagerID: tm, Tasks: ts}
}

func on(tm string, t ReportedTask) TaskOn { return TaskOn{TaskManagerID: tm, Task: t} }

func adoptJ(id string, tasks ...TaskOn) AdoptJob {
	return AdoptJob{JobID: id, Attempt: 2, Tasks: tasks, AbortCheckpoints: []int64{6}, NotifyCheckpointID: 5}
}

func restartJ(id string, attempt int, cause string, cancel ...TaskOn) RestartJob {
	return RestartJob{JobID: id, Attempt: attempt, CheckpointID: 5, Cause: "JobManager failover: " + cause, Cancel: cancel}
}

func cancelT(tm string, t ReportedTask, reason string) CancelTask {
	return CancelTask{Task: on(tm, t), Reason: reason}
}

type rstep struct {
	at   time.Duration
	ev   RecoveryEvent
	want []RecoveryAction
	done bool // Done() after the step
}

type rscenario struct {
	name  string
	jobs  []StoredJob
	start []RecoveryAction // NewRecovery's actions
	steps []rstep
}

func showR(as []RecoveryAction) string {
	if len(as) == 0 {
		return "[]"
	}
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "\n\t%T%+v", a, a)
	}
	return b.String()
}

func runRecovery(t *testing.T, sc rscenario) *Recovery {
	t.Helper()
	r, acts, err := NewRecovery(t0, RecoveryConfig{Window: window, Jobs: sc.jobs})
	if err != nil {
		t.Fatalf("NewRecovery: %v", err)
	}
	if !reflect.DeepEqual(acts, sc.start) {
		t.Fatalf("NewRecovery:\n got: %s\nwant: %s", showR(acts), showR(sc.start))
	}
	for i, st := range sc.steps {
		got := r.Step(at(st.at), st.ev)
		if !reflect.DeepEqual(got, st.want) {
			t.Fatalf("step %d (t0+%v %T%+v):\n got: %s\nwant: %s", i, st.at, st.ev, st.ev, showR(got), showR(st.want))
		}
		if r.Done() != st.done {
			t.Fatalf("after step %d: Done() = %v, want %v", i, r.Done(), st.done)
		}
		if wantDeadline := at(window); !st.done && !r.Deadline().Equal(wantDeadline) {
			t.Fatalf("after step %d: Deadline() = %v, want %v", i, r.Deadline(), wantDeadline)
		} else if st.done && !r.Deadline().IsZero() {
			t.Fatalf("after step %d: Deadline() = %v once done, want zero", i, r.Deadline())
		}
	}
	return r
}

func TestRecovery(t *testing.T) {
	for _, sc := range recoveryScenarios() {
		t.Run(sc.name, func(t *testing.T) { runRecovery(t, sc) })
	}
}

func recoveryScenarios() []rscenario {
	// j is vertex 0 with 2 subtasks -> vertex 1 with 1 subtask.
	j := job("j", 2, 1)
	return []rscenario{
		{
			name: "every subtask reported once, running: adopted at once",
			jobs: []StoredJob{j},
			steps: []rstep{
				{at: time.Second, ev: rep("tm1", run("j", 1, 0), run("j", 0, 1), run("j", 0, 0)),
					want: []RecoveryAction{adoptJ("j", on("tm1", run("j", 0, 0)), on("tm1", run("j", 0, 1)), on("tm1", run("j", 1, 0)))},
					done: true},
				{at: 2 * time.Second, ev: rep("tm1", run("j", 0, 0)),
					want: []RecoveryAction{logf("recovery: report of TaskManager tm1 after the recovery ended: left to the scheduler")}, done: true},
			},
		},
		{
			name: "reports from several TaskManagers; DEPLOYING and FINISHED subtasks can continue",
			jobs: []StoredJob{j},
			steps: []rstep{
				{ev: rep("tm2", task("j", 0, 1, 2, ReportedFinished))},
				{ev: rep("tm3")}, // a TaskManager with no task
				{ev: rep("tm1", task("j", 1, 0, 2, ReportedDeploying), run("j", 0, 0)),
					want: []RecoveryAction{adoptJ("j", on("tm1", run("j", 0, 0)), on("tm2", task("j", 0, 1, 2, ReportedFinished)),
						on("tm1", task("j", 1, 0, 2, ReportedDeploying)))},
					done: true},
			},
		},
		{
			name: "every subtask FINISHED: adopted (the scheduler finishes the job)",
			jobs: []StoredJob{job("j", 1)},
			steps: []rstep{
				{ev: rep("tm1", task("j", 0, 0, 2, ReportedFinished)),
					want: []RecoveryAction{adoptJ("j", on("tm1", task("j", 0, 0, 2, ReportedFinished)))}, done: true},
			},
		},
		{
			name:  "a recorded result is skipped at once and its tasks canceled; a job not in the store too",
			jobs:  []StoredJob{{JobID: "done", Result: "FINISHED"}, j},
			start: []RecoveryAction{SkipJob{JobID: "done", Result: "FINISHED"}},
			steps: []rstep{
				{ev: rep("tm1", run("done", 0, 0), run("gone", 0, 0), run("j", 0, 0)), want: []RecoveryAction{
					cancelT("tm1", run("done", 0, 0), "job done already ended: FINISHED"),
					cancelT("tm1", run("gone", 0, 0), "job gone is not in the HA store")}},
			},
		},
		{
			name:  "only recorded results: done at once",
			jobs:  []StoredJob{{JobID: "b", Result: "CANCELED"}, {JobID: "a", Result: "FAILED", Parallelism: []int{3}}},
			start: []RecoveryAction{SkipJob{JobID: "a", Result: "FAILED"}, SkipJob{JobID: "b", Result: "CANCELED"}},
			steps: []rstep{
				{ev: RecoveryTick{}, done: true},
			},
		},
		{
			name: "no job: done at once",
			steps: []rstep{
				{ev: rep("tm1", run("x", 0, 0)),
					want: []RecoveryAction{logf("recovery: report of TaskManager tm1 after the recovery ended: left to the scheduler")}, done: true},
			},
		},
		{
			name: "a FAILED subtask restarts the job at once, from the latest checkpoint, above the attempts reported",
			jobs: []StoredJob{j},
			steps: []rstep{
				{ev: rep("tm1", run("j", 0, 0))},
				{ev: rep("tm2", task("j", 0, 1, 2, ReportedFailed), run("j", 1, 0)), want: []RecoveryAction{
					restartJ("j", 3, "TaskManager tm2 reports subtask 0/1 attempt 2 FAILED",
						on("tm1", run("j", 0, 0)), on("tm2", task("j", 0, 1, 2, ReportedFailed)), on("tm2", run("j", 1, 0)))},
					done: true},
			},
		},
		{
			name: "CANCELING: the old leader had begun a failover or a cancellation",
			jobs: []StoredJob{job("j", 1)},
			steps: []rstep{
				{ev: rep("tm1", task("j", 0, 0, 2, ReportedCanceling)), want: []RecoveryAction{
					restartJ("j", 3, "TaskManager tm1 reports subtask 0/0 attempt 2 CANCELING", on("tm1", task("j", 0, 0, 2, ReportedCanceling)))},
					done: true},
			},
		},
		{
			name: "CANCELED",
			jobs: []StoredJob{job("j", 1)},
			steps: []rstep{
				{ev: rep("tm1", task("j", 0, 0, 2, ReportedCanceled)), want: []RecoveryAction{
					restartJ("j", 3, "TaskManager tm1 reports subtask 0/0 attempt 2 CANCELED", on("tm1", task("j", 0, 0, 2, ReportedCanceled)))},
					done: true},
			},
		},
		{
			name: "a state nobody knows",
			jobs: []StoredJob{job("j", 1)},
			steps: []rstep{
				{ev: rep("tm1", task("j", 0, 0, 2, "SLEEPING\n")), want: []RecoveryAction{
					restartJ("j", 3, `TaskManager tm1 reports subtask 0/0 attempt 2 in unknown state "SLEEPING\n"`,
						on("tm1", task("j", 0, 0, 2, "SLEEPING\n")))},
					done: true},
			},
		},
		{
			name: "one subtask reported by two TaskManagers: restart, both copies canceled",
			jobs: []StoredJob{j},
			steps: []rstep{
				{ev: rep("tm1", run("j", 0, 0), run("j", 0, 1))},
				{ev: rep("tm2", run("j", 0, 1), run("j", 1, 0)), want: []RecoveryAction{
					restartJ("j", 3, "subtask 0/1 attempt 2 is reported by TaskManagers tm1 and tm2",
						on("tm1", run("j", 0, 0)), on("tm1", run("j", 0, 1)), on("tm2", run("j", 1, 0)), on("tm2", run("j", 0, 1)))},
					done: true},
			},
		},
		{
			name: "one subtask listed twice in one report: restart, even if the report is otherwise complete",
			jobs: []StoredJob{job("j", 1)},
			steps: []rstep{
				{ev: rep("tm1", run("j", 0, 0), run("j", 0, 0)), want: []RecoveryAction{
					restartJ("j", 3, "TaskManager tm1 reports subtask 0/0 attempt 2 twice", on("tm1", run("j", 0, 0)), on("tm1", run("j", 0, 0)))},
					done: true},
			},
		},
		{
			name: "an attempt above the store's: restart above every attempt of the report, also those after the conflict",
			jobs: []StoredJob{j},
			steps: []rstep{
				{ev: rep("tm1", task("j", 0, 0, 3, ReportedRunning), run("j", 1, 0), task("j", 0, 1, 7, ReportedRunning)), want: []RecoveryAction{
					restartJ("j", 8, "TaskManager tm1 reports attempt 3 of subtask 0/0, above the job's attempt 2 in the HA store",
						on("tm1", run("j", 1, 0)), on("tm1", task("j", 0, 0, 3, ReportedRunning)), on("tm1", task("j", 0, 1, 7, ReportedRunning)))},
					done: true},
			},
		},
		{
			name: "stale attempts are canceled at once and do not count; the current ones are adopted",
			jobs: []StoredJob{job("j", 1)},
			steps: []rstep{
				{ev: rep("zombie", task("j", 0, 0, 1, ReportedRunning)), want: []RecoveryAction{
					cancelT("zombie", task("j", 0, 0, 1, ReportedRunning), "attempt 1 of job j is stale: the job runs attempt 2")}},
				{ev: rep("tm1", run("j", 0, 0)), want: []RecoveryAction{adoptJ("j", on("tm1", run("j", 0, 0)))}, done: true},
			},
		},
		{
			name: "a vertex the graph does not have",
			jobs: []StoredJob{j},
			steps: []rstep{
				{ev: rep("tm1", run("j", 0, 0), run("j", 2, 0)), want: []RecoveryAction{
					restartJ("j", 3, "TaskManager tm1 reports subtask 2/0, but the job graph has 2 vertices", on("tm1", run("j", 0, 0)), on("tm1", run("j", 2, 0)))},
					done: true},
			},
		},
		{
			name: "a negative vertex",
			jobs: []StoredJob{j},
			steps: []rstep{
				{ev: rep("tm1", run("j", -1, 0)), want: []RecoveryAction{
					restartJ("j", 3, "TaskManager tm1 reports subtask -1/0, but the job graph has 2 vertices", on("tm1", run("j", -1, 0)))},
					done: true},
			},
		},
		{
			name: "a subtask above the parallelism (the graph was rescaled) and a negative one",
			jobs: []StoredJob{j},
			steps: []rstep{
				{ev: rep("tm1", run("j", 1, 1), run("j", 0, -1)), want: []RecoveryAction{
					restartJ("j", 3, "TaskManager tm1 reports subtask 1/1, but vertex 1 has parallelism 1", on("tm1", run("j", 1, 1)), on("tm1", run("j", 0, -1)))},
					done: true},
			},
		},
		{
			name: "attempts out of range are canceled and never raise the restart attempt",
			jobs: []StoredJob{job("j", 1)},
			steps: []rstep{
				{ev: rep("tm1", task("j", 0, 0, MaxAttempt+1, ReportedRunning), task("j", 0, 0, -1, ReportedRunning)), want: []RecoveryAction{
					cancelT("tm1", task("j", 0, 0, MaxAttempt+1, ReportedRunning), fmt.Sprintf("attempt %d is out of range [0, %d]", MaxAttempt+1, MaxAttempt)),
					cancelT("tm1", task("j", 0, 0, -1, ReportedRunning), fmt.Sprintf("attempt -1 is out of range [0, %d]", MaxAttempt))}},
				{at: window, ev: RecoveryTick{}, want: []RecoveryAction{
					restartJ("j", 3, "1 of 1 subtasks of attempt 2 not reported within 10s: 0/0")}, done: true},
			},
		},
		{
			name: "a report without a TaskManager id is ignored",
			jobs: []StoredJob{job("j", 1)},
			steps: []rstep{
				{ev: rep("", run("j", 0, 0)), want: []RecoveryAction{logf("recovery: a report without a TaskManager id, 1 task(s): ignored")}},
			},
		},
		{
			name: "the deadline restarts what is missing, naming the first three missing subtasks",
			jobs: []StoredJob{job("j", 3, 2)},
			steps: []rstep{
				{ev: rep("tm1", run("j", 0, 1))},
				{at: window - time.Nanosecond, ev: RecoveryTick{}},
				{at: window, ev: RecoveryTick{}, want: []RecoveryAction{
					restartJ("j", 3, "4 of 5 subtasks of attempt 2 not reported within 10s: 0/0, 0/2, 1/0 and 1 more", on("tm1", run("j", 0, 1)))},
					done: true},
				{at: window + time.Second, ev: RecoveryTick{}, done: true},
				{at: window + time.Second, ev: rep("tm2", run("j", 0, 0)),
					want: []RecoveryAction{logf("recovery: report of TaskManager tm2 after the recovery ended: left to the scheduler")}, done: true},
			},
		},
		{
			name: "a job nobody reports (its TaskManagers died, or it was waiting for slots) restarts at the deadline",
			jobs: []StoredJob{job("j", 2)},
			steps: []rstep{
				{at: 2 * window, ev: RecoveryTick{}, want: []RecoveryAction{
					restartJ("j", 3, "2 of 2 subtasks of attempt 2 not reported within 10s: 0/0, 0/1")}, done: true},
			},
		},
		{
			name: "a TaskManager's second report replaces its first: a task it no longer lists is missing",
			jobs: []StoredJob{j},
			steps: []rstep{
				{ev: rep("tm1", run("j", 0, 0), run("j", 0, 1))},
				{ev: rep("tm1", run("j", 0, 0))},
				// 0/1 moved: no duplicate with tm1's first report.
				{ev: rep("tm2", run("j", 0, 1))},
				{ev: rep("tm3", run("j", 1, 0)), want: []RecoveryAction{
					adoptJ("j", on("tm1", run("j", 0, 0)), on("tm2", run("j", 0, 1)), on("tm3", run("j", 1, 0)))}, done: true},
			},
		},
		{
			name: "a TaskManager's second report with a task FAILED since",
			jobs: []StoredJob{j},
			steps: []rstep{
				{ev: rep("tm1", run("j", 0, 0), run("j", 0, 1))},
				{ev: rep("tm1", run("j", 0, 0), task("j", 0, 1, 2, ReportedFailed)), want: []RecoveryAction{
					restartJ("j", 3, "TaskManager tm1 reports subtask 0/1 attempt 2 FAILED",
						on("tm1", run("j", 0, 0)), on("tm1", task("j", 0, 1, 2, ReportedFailed)))},
					done: true},
			},
		},
		{
			name: "reports after adoption: stale canceled, the adopted task ignored, a second copy fails the job over once, later attempts left alone",
			jobs: []StoredJob{job("a", 2), job("b", 1)}, // b keeps the recovery going
			steps: []rstep{
				{ev: rep("tm1", run("a", 0, 0), run("a", 0, 1)), want: []RecoveryAction{
					adoptJ("a", on("tm1", run("a", 0, 0)), on("tm1", run("a", 0, 1)))}},
				{ev: rep("tm1", run("a", 0, 0), task("a", 0, 1, 2, ReportedFinished))}, // the same tasks again
				{ev: rep("tm2", task("a", 0, 0, 1, ReportedRunning), task("a", 0, 0, 3, ReportedRunning), run("a", 0, 5)), want: []RecoveryAction{
					cancelT("tm2", task("a", 0, 0, 1, ReportedRunning), "attempt 1 of job a is stale: the job runs attempt 2"),
					cancelT("tm2", run("a", 0, 5), "job a has no subtask 0/5")}},
				{ev: rep("tm3", run("a", 0, 1)), want: []RecoveryAction{
					cancelT("tm3", run("a", 0, 1), "subtask 0/1 attempt 2 of job a runs on TaskManager tm1"),
					FailAdoptedJob{JobID: "a", Cause: "JobManager failover: subtask 0/1 attempt 2 was adopted on TaskManager tm1, and TaskManager tm3 reports it too"}}},
				{ev: rep("tm4", run("a", 0, 0)), want: []RecoveryAction{
					cancelT("tm4", run("a", 0, 0), "subtask 0/0 attempt 2 of job a runs on TaskManager tm1")}},
			},
		},
		{
			name: "reports after a restart: below the new attempt canceled, at or above it left to the scheduler",
			jobs: []StoredJob{job("a", 1), job("b", 1)},
			steps: []rstep{
				{ev: rep("tm1", task("a", 0, 0, 2, ReportedFailed)), want: []RecoveryAction{
					restartJ("a", 3, "TaskManager tm1 reports subtask 0/0 attempt 2 FAILED", on("tm1", task("a", 0, 0, 2, ReportedFailed)))}},
				{ev: rep("tm2", run("a", 0, 0), task("a", 0, 0, 3, ReportedDeploying), task("a", 0, 0, 4, ReportedRunning)), want: []RecoveryAction{
					cancelT("tm2", run("a", 0, 0), "job a restarts as attempt 3")}},
			},
		},
		{
			name: "one report decides several jobs, in job id order; the undecided one stays open",
			jobs: []StoredJob{job("c", 1), job("a", 1), job("b", 1)},
			steps: []rstep{
				{ev: rep("tm1", run("c", 0, 0), task("b", 0, 0, 2, ReportedFailed), run("a", 0, 0)), want: []RecoveryAction{
					adoptJ("a", on("tm1", run("a", 0, 0))),
					restartJ("b", 3, "TaskManager tm1 reports subtask 0/0 attempt 2 FAILED", on("tm1", task("b", 0, 0, 2, ReportedFailed))),
					adoptJ("c", on("tm1", run("c", 0, 0)))},
					done: true},
			},
		},
		{
			name: "a stale report does not touch the job's decision",
			jobs: []StoredJob{job("a", 1), job("b", 1)},
			steps: []rstep{
				{ev: rep("tm1", task("a", 0, 0, 0, ReportedFailed)), want: []RecoveryAction{
					cancelT("tm1", task("a", 0, 0, 0, ReportedFailed), "attempt 0 of job a is stale: the job runs attempt 2")}},
				{ev: rep("tm1", run("a", 0, 0), run("b", 0, 0)), want: []RecoveryAction{
					adoptJ("a", on("tm1", run("a", 0, 0))), adoptJ("b", on("tm1", run("b", 0, 0)))}, done: true},
			},
		},
	}
}

func TestRecoveryCheckpoints(t *testing.T) {
	for _, tc := range []struct {
		latest, next int64
		pending      int
		abort        []int64
	}{
		{latest: 0, next: 0},                                       // a store without a counter: nothing in flight
		{latest: 0, next: 1},                                       // nothing ever triggered
		{latest: 0, next: 2, abort: []int64{1}},                    // the first checkpoint in flight
		{latest: 5, next: 6},                                       // the latest completed is the last one used
		{latest: 3, next: 10, pending: 3, abort: []int64{7, 8, 9}}, // failed ones before the last pending are not re-aborted
		{latest: 8, next: 10, pending: 5, abort: []int64{9}},
		{latest: 9, next: 5}, // a counter behind the latest (never written so): nothing
	} {
		name := fmt.Sprintf("latest %d next %d pending %d", tc.latest, tc.next, tc.pending)
		sj := StoredJob{JobID: "j", Parallelism: []int{1}, LatestCheckpointID: tc.latest, NextCheckpointID: tc.next, MaxPendingCheckpoints: tc.pending}
		r, _, err := NewRecovery(t0, RecoveryConfig{Window: window, Jobs: []StoredJob{sj}})
		if err != nil {
			t.Fatal(err)
		}
		got := r.Step(t0, rep("tm1", task("j", 0, 0, 0, ReportedRunning)))
		want := []RecoveryAction{AdoptJob{JobID: "j", Tasks: []TaskOn{on("tm1", task("j", 0, 0, 0, ReportedRunning))},
			AbortCheckpoints: tc.abort, NotifyCheckpointID: tc.latest}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got: %s\nwant: %s", name, showR(got), showR(want))
		}
	}
}

func TestNewRecoveryRefusesBrokenJobs(t *testing.T) {
	for _, tc := range []struct {
		cfg  RecoveryConfig
		want string
	}{
		{RecoveryConfig{Window: -time.Second}, "ha: recovery window -1s is negative"},
		{RecoveryConfig{Jobs: []StoredJob{{Parallelism: []int{1}}}}, "ha: recover jobs: a job without an id"},
		{RecoveryConfig{Jobs: []StoredJob{job("a", 1), job("a", 1)}}, "ha: recover jobs: job a listed twice"},
		{RecoveryConfig{Jobs: []StoredJob{{JobID: "a"}}}, "ha: recover job a: its graph has no vertex"},
		{RecoveryConfig{Jobs: []StoredJob{job("a", 2, 0)}}, "ha: recover job a: vertex 1 has parallelism 0"},
		{RecoveryConfig{Jobs: []StoredJob{{JobID: "a", Parallelism: []int{1}, Attempt: -1}}}, "ha: recover job a: attempt -1 is negative"},
	} {
		_, _, err := NewRecovery(t0, tc.cfg)
		if err == nil || err.Error() != tc.want {
			t.Errorf("NewRecovery(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestRecoveryAnyOrder spreads the subtasks of a job over TaskManagers
// and reports them in random orders, one TaskManager twice (first a part
// of its tasks): the job is always adopted once, with the same tasks, and
// nothing else happens.
func TestRecoveryAnyOrder(t *testing.T) {
	par := []int{4, 3, 2}
	var want []TaskOn
	byTM := map[string][]ReportedTask{}
	for v, p := range par {
		for s := range p {
			tm := fmt.Sprintf("tm%d", (v*7+s)%4)
			byTM[tm] = append(byTM[tm], run("j", v, s))
			want = append(want, on(tm, run("j", v, s)))
		}
	}
	tms := []string{"tm0", "tm1", "tm2", "tm3"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		// k, never reported, keeps the recovery open: the reports after
		// the adoption go through the "adopted task again" path.
		r, _, err := NewRecovery(t0, RecoveryConfig{Window: window, Jobs: []StoredJob{job("j", par...), job("k", 1)}})
		if err != nil {
			t.Fatal(err)
		}
		order := append([]string(nil), tms...)
		rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		// A TaskManager that reports twice first reports a partial list.
		twice := order[rng.IntN(len(order))]
		partial := byTM[twice][:rng.IntN(len(byTM[twice])+1)]
		reports := []TaskManagerReport{rep(twice, partial...)}
		for _, tm := range order {
			ts := append([]ReportedTask(nil), byTM[tm]...)
			rng.Shuffle(len(ts), func(a, b int) { ts[a], ts[b] = ts[b], ts[a] })
			reports = append(reports, rep(tm, ts...))
		}
		var got []RecoveryAction
		for _, rp := range reports {
			got = append(got, r.Step(t0, rp)...)
		}
		if w := []RecoveryAction{adoptJ("j", want...)}; !reflect.DeepEqual(got, w) {
			t.Fatalf("run %d:\n got: %s\nwant: %s", i, showR(got), showR(w))
		}
		if r.Done() {
			t.Fatalf("run %d: done with job k undecided", i)
		}
	}
}

func TestUnknownEvents(t *testing.T) {
	r, _, err := NewRecovery(t0, RecoveryConfig{Window: window, Jobs: []StoredJob{job("j", 1)}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Step(t0, nil), []RecoveryAction{logf("recovery: unknown event <nil>")}; !reflect.DeepEqual(got, want) {
		t.Errorf("Recovery.Step(nil) = %s, want %s", showR(got), showR(want))
	}
	l := NewLeadership(self)
	if got, want := l.Step(t0, nil), []LeadershipAction{logf("leadership: unknown event <nil>")}; !reflect.DeepEqual(got, want) {
		t.Errorf("Leadership.Step(nil) = %s, want %s", showL(got), showL(want))
	}
}
