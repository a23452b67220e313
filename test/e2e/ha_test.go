package e2e

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The end-to-end tests of JobManager high availability (issue 11, "Done
// when" 1 to 5), on the harness of ha_cluster_test.go: etcd, three
// JobManagers under a supervisor and three TaskManagers, all separate
// processes, with a lease TTL of 3 s. Their job is the fault tests' keyed
// job, sequence -> hash(key) -> aggregate(count) -> file-sink,
// checkpointed every 300 ms, exactly-once.

// haJob writes the tests' job: 16 keys x count at rate records/s per
// source subtask (parallelism 2), fixed-delay restarts.
func haJob(h *haCluster, name string, count, rate int, out string) string {
	return keyedJob{
		name: name,
		config: h.checkpointing("300ms",
			"restart-strategy.type: fixed-delay",
			"restart-strategy.fixed-delay.attempts: 10",
			"restart-strategy.fixed-delay.delay: 500ms"),
		keys: 16, count: count, rate: rate, out: out,
	}.write(h.cluster)
}

// Done when 1: SIGKILL of the leader in the middle of a checkpointed job. A
// standby leads within lease TTL + 2 s; the tasks keep running on their
// TaskManagers (adopted by the new leader): restarts 0, every task at the
// attempt and on the TaskManager it had; the job FINISHES with every
// (key, seq) once and count == seq + 1, and checkpoint ids go on above the
// old leader's.
func TestHALeaderKill(t *testing.T) {
	h := newHACluster(t, haOptions{})
	out := filepath.Join(h.dir, "out")
	// 16 keys x 20000 at 10,000 records/s per subtask: 16 s.
	jobID := strings.TrimSpace(h.mustWeir("run", "-d", haJob(h, "leader-kill", 20000, 10000, out)))
	cps := h.watchCheckpoints(jobID)
	before := h.waitAllRunning(jobID, 60*time.Second)
	h.waitCheckpoints(jobID, 3)
	lastBefore := h.latestCompleted(jobID)

	nl := h.killLeader(h.leader())
	after := h.waitAllRunning(jobID, 30*time.Second)
	if !maps.Equal(before.attempts(), after.attempts()) {
		t.Errorf("tasks after the failover differ from before it (a restart, not an adoption):\nbefore %v\nafter  %v",
			before.attempts(), after.attempts())
	}
	next := h.waitCompletedAbove(jobID, lastBefore, 30*time.Second)
	t.Logf("checkpoint %d completed under the new leader %s (last before the kill: %d)", next, nl.addr, lastBefore)

	st := h.waitEnd(jobID, 120*time.Second)
	if st.State != "FINISHED" {
		t.Fatalf("job ended %s: %s", st.State, st.StatusMessage)
	}
	if st.Restarts != 0 {
		t.Errorf("restarts = %d, want 0: the failover must not restart the job (exceptions: %+v)", st.Restarts, st.Exceptions)
	}
	for _, task := range st.Tasks {
		key := fmt.Sprintf("%s/%d", task.Operator, task.Subtask)
		if want := before.attempts()[key]; want != fmt.Sprintf("attempt %d on %s", task.Attempt, task.TaskManager) {
			t.Errorf("task %s finished as attempt %d on %s, it ran as %s before the failover", key, task.Attempt, task.TaskManager, want)
		}
	}
	const adopted = "JobManager failover: the new leader adopted the job's running tasks"
	if !slices.ContainsFunc(st.Exceptions, func(e exceptionJSON) bool { return strings.HasPrefix(e.Message, adopted) }) {
		t.Errorf("no exception %q: %+v", adopted, st.Exceptions)
	}
	cps.check(t)
	checkKeyedCounts(t, out, 16, 20000)
}

// Done when 2: SIGKILL of the leader and of a busy TaskManager at once. The
// new leader cannot account for the subtasks of the dead TaskManager, and
// restarts the job from the latest completed checkpoint of the store (its
// exception history says so, the restart is counted, every task runs a
// new attempt, none on the dead TaskManager): exactly-once output.
func TestHALeaderAndTaskManagerKill(t *testing.T) {
	h := newHACluster(t, haOptions{})
	out := filepath.Join(h.dir, "out")
	jobID := strings.TrimSpace(h.mustWeir("run", "-d", haJob(h, "leader-tm-kill", 20000, 10000, out)))
	cps := h.watchCheckpoints(jobID)
	before := h.waitAllRunning(jobID, 60*time.Second)
	var victim string
	attempts := map[string]int{}
	for _, task := range before.Tasks {
		if task.Operator == "numbers" {
			victim = task.TaskManager // a source's: busy by definition
		}
		attempts[fmt.Sprintf("%s/%d", task.Operator, task.Subtask)] = task.Attempt
	}
	h.waitCheckpoints(jobID, 3)
	old := h.leader()
	tm := h.processOf(victim)

	killed := time.Now()
	u := h.unit(old.addr)
	// Both signals before either wait: "at once".
	_ = tm.cmd.Process.Kill()
	u.kill()
	<-tm.done
	// The latest checkpoint in the store, where no one writes until the
	// new leader (at least the lease TTL away) completes one.
	latest := h.storeLatestCheckpoint(jobID)
	nl := h.waitLeaderBy(killed.Add(h.leaseTTL+2*time.Second), old.epoch)
	t.Logf("leader %s (epoch %d) and TaskManager %s killed; %s leads at epoch %d", old.addr, old.epoch, victim, nl.addr, nl.epoch)

	st := h.waitEnd(jobID, 120*time.Second)
	if st.State != "FINISHED" {
		t.Fatalf("job ended %s: %s", st.State, st.StatusMessage)
	}
	want := fmt.Sprintf("JobManager failover: the new leader restarts the job from checkpoint %d: ", latest)
	if !slices.ContainsFunc(st.Exceptions, func(e exceptionJSON) bool { return strings.HasPrefix(e.Message, want) }) {
		t.Errorf("no exception %q...: %+v", want, st.Exceptions)
	}
	for _, task := range st.Tasks {
		key := fmt.Sprintf("%s/%d", task.Operator, task.Subtask)
		if task.TaskManager == victim || task.Attempt <= attempts[key] {
			t.Errorf("task %s finished as attempt %d on %s; before the failover it ran as attempt %d, and %s was killed",
				key, task.Attempt, task.TaskManager, attempts[key], victim)
		}
	}
	if st.Restarts < 1 {
		t.Errorf("restarts = %d, want at least 1: the new leader restarted the job (exceptions %+v)", st.Restarts, st.Exceptions)
	}
	t.Logf("restarted from checkpoint %d, restarts %d: %+v", latest, st.Restarts, st.Exceptions)
	cps.check(t)
	checkKeyedCounts(t, out, 16, 20000)
}

// Done when 3: a zombie leader. The leader is paused (SIGSTOP) for longer
// than the lease TTL; a standby takes over and the job runs on under it;
// then the old leader is continued (SIGCONT). It must act on nothing: it
// exits 75 for its supervisor, the job's tasks stay as the new leader
// placed them (no deployment, no cancel: same attempts, no restart), the
// TaskManagers reject whatever it still sent (their
// weir_taskmanager_rejected_leader_calls_total), checkpoint ids stay
// unique and increasing, and the output is exactly-once.
func TestHAZombieLeader(t *testing.T) {
	h := newHACluster(t, haOptions{})
	out := filepath.Join(h.dir, "out")
	// 16 keys x 25000 at 10,000 records/s per subtask: 20 s.
	jobID := strings.TrimSpace(h.mustWeir("run", "-d", haJob(h, "zombie", 25000, 10000, out)))
	cps := h.watchCheckpoints(jobID)
	h.waitAllRunning(jobID, 60*time.Second)
	h.waitCheckpoints(jobID, 3)
	old := h.leader()
	u := h.unit(old.addr)
	runs := len(u.exits())

	paused := time.Now()
	u.pause()
	nl := h.waitLeaderBy(paused.Add(h.leaseTTL+2*time.Second), old.epoch)
	t.Logf("leader %s (epoch %d) paused; %s leads at epoch %d", old.addr, old.epoch, nl.addr, nl.epoch)
	// The new leader has called the TaskManagers (deployed or adopted, and
	// checkpointed): they know its epoch before the zombie wakes up.
	h.waitAllRunning(jobID, 30*time.Second)
	h.waitCompletedAbove(jobID, h.latestCompleted(jobID), 30*time.Second)
	underNew, _ := h.tryStatus(jobID)
	rejectedBefore := h.tmMetric("weir_taskmanager_rejected_leader_calls_total")

	u.resume()
	waitFor(t, 30*time.Second, "the resumed old leader to exit", func() bool { return len(u.exits()) > runs })
	if got := u.exits()[runs]; got != "exit status 75" {
		t.Errorf("the resumed old leader ended with %q, want exit status 75 (leadership lost)", got)
	}
	zombie := u.runLog(runs + 1)
	if i := strings.LastIndex(zombie, "leadership lost"); i >= 0 {
		zombie = zombie[max(0, strings.LastIndex(zombie[:i], "\n")+1):]
	}
	t.Logf("the old leader's log from its loss of leadership:\n%s", zombie)
	rejected := h.tmMetric("weir_taskmanager_rejected_leader_calls_total")
	var tried []string
	for labels, n := range rejected {
		if d := n - rejectedBefore[labels]; d > 0 {
			tried = append(tried, fmt.Sprintf("%s %v", labels, d))
		}
	}
	slices.Sort(tried)
	t.Logf("calls of the zombie rejected by the TaskManagers after its resume: %v (0 if it stopped itself before sending any)", tried)
	if l := h.leader(); l != nl {
		t.Errorf("after the zombie's resume %s leads at epoch %d, want %s at %d", l.addr, l.epoch, nl.addr, nl.epoch)
	}
	now, ok := h.tryStatus(jobID)
	if !ok {
		t.Fatal("no status from the new leader after the zombie's resume")
	}
	if now.Restarts != underNew.Restarts || !maps.Equal(now.attempts(), underNew.attempts()) {
		t.Errorf("the job's tasks changed across the zombie's resume:\nbefore %v, %d restarts\nafter  %v, %d restarts",
			underNew.attempts(), underNew.Restarts, now.attempts(), now.Restarts)
	}

	st := h.waitEnd(jobID, 120*time.Second)
	if st.State != "FINISHED" {
		t.Fatalf("job ended %s: %s", st.State, st.StatusMessage)
	}
	cps.check(t)
	checkKeyedCounts(t, out, 16, 25000)
}

// Done when 4: etcd SIGKILLed for a few seconds, less than the lease TTL
// (10 s here), then restarted on the same ports and data. The leader keeps
// its leadership (same epoch, no JobManager exits) and no job fails: no
// restart, FINISHED, exactly-once output. Checkpointing resumes: a
// checkpoint completes within the lease TTL of etcd's return, while the
// job still runs (a checkpoint whose id could not be persisted during the
// outage must not hold up the next ones).
func TestHAEtcdOutage(t *testing.T) {
	h := newHACluster(t, haOptions{leaseTTL: 10 * time.Second})
	out := filepath.Join(h.dir, "out")
	// 16 keys x 40000 at 10,000 records/s per subtask: 32 s, long after
	// the outage.
	const count = 40000
	jobID := strings.TrimSpace(h.mustWeir("run", "-d", haJob(h, "etcd-outage", count, 10000, out)))
	cps := h.watchCheckpoints(jobID)
	h.waitAllRunning(jobID, 60*time.Second)
	h.waitCheckpoints(jobID, 3)
	leader := h.leader()

	// The outage lasts outage: the fault's length, not a wait for a
	// condition. Meanwhile the job must stay RUNNING under its leader,
	// which still answers (its state is its own, not etcd's).
	const outage = 4 * time.Second
	h.etcd.Kill()
	killed := time.Now()
	for time.Since(killed) < outage {
		if st, ok := h.tryStatus(jobID); ok && st.State != "RUNNING" {
			t.Errorf("job %s while etcd is down: %s", st.State, st.StatusMessage)
		}
		time.Sleep(200 * time.Millisecond)
	}
	lastBefore := h.latestCompleted(jobID)
	h.etcd.Restart()
	back := time.Now()
	t.Logf("etcd down for %v; latest checkpoint then %d", back.Sub(killed).Round(time.Millisecond), lastBefore)

	if l := h.leader(); l != leader {
		t.Errorf("after the etcd outage %s leads at epoch %d, want %s still at %d", l.addr, l.epoch, leader.addr, leader.epoch)
	}
	for _, u := range h.jms {
		if e := u.exits(); len(e) > 0 {
			t.Errorf("%s exited during the etcd outage: %v", u.name, e)
		}
	}
	// A bound, not a measure: the interval is 300 ms.
	deadline := back.Add(h.leaseTTL)
	for {
		var cps []checkpointJSON
		if h.tryJSON(&cps, "checkpoints", jobID) && slices.ContainsFunc(cps, func(cp checkpointJSON) bool {
			return cp.Status == "COMPLETED" && cp.ID > lastBefore
		}) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("no checkpoint completed within %v of etcd's return (latest %d): %+v", h.leaseTTL, lastBefore, cps)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st, ok := h.tryStatus(jobID); !ok || st.State != "RUNNING" {
		t.Errorf("the job is %q after etcd's return, want it still RUNNING for the check above to mean anything", st.State)
	}
	st := h.waitEnd(jobID, 120*time.Second)
	if st.State != "FINISHED" {
		t.Fatalf("job ended %s: %s", st.State, st.StatusMessage)
	}
	if st.Restarts != 0 {
		t.Errorf("restarts = %d, want 0 (exceptions: %+v)", st.Restarts, st.Exceptions)
	}
	cps.check(t)
	checkKeyedCounts(t, out, 16, count)
}

// Done when 5: five leader kills in a row during one job, each killed
// JobManager restarted by its supervisor. Exactly-once output, checkpoint
// ids strictly increasing across the six leaders, the job FINISHED once
// (one result in the HA store); and once it has finished, a later leader
// (after a sixth kill) never runs it again.
func TestHAFiveLeaderKills(t *testing.T) {
	h := newHACluster(t, haOptions{})
	out := filepath.Join(h.dir, "out")
	// 16 keys x 60000 at 10,000 records/s per subtask: 48 s, longer than
	// five failovers.
	const count = 60000
	jobID := strings.TrimSpace(h.mustWeir("run", "-d", haJob(h, "five-kills", count, 10000, out)))
	cps := h.watchCheckpoints(jobID)
	h.waitAllRunning(jobID, 60*time.Second)
	h.waitCheckpoints(jobID, 2)

	l := h.leader()
	epochs := []int64{l.epoch}
	for kill := 1; kill <= 5; kill++ {
		if st, ok := h.tryStatus(jobID); !ok || st.State != "RUNNING" {
			t.Fatalf("before kill %d the job is %q (status answered: %v): make it longer", kill, st.State, ok)
		}
		u := h.unit(l.addr)
		runs := len(u.exits()) + 1
		l = h.killLeader(l)
		epochs = append(epochs, l.epoch)
		u.waitRuns(runs+1, 30*time.Second) // restarted by its supervisor
		h.waitAllRunning(jobID, 60*time.Second)
		h.waitCompletedAbove(jobID, h.latestCompleted(jobID), 30*time.Second)
	}
	t.Logf("leader epochs: %v", epochs)

	st := h.waitEnd(jobID, 180*time.Second)
	if st.State != "FINISHED" {
		t.Fatalf("job ended %s: %s", st.State, st.StatusMessage)
	}
	t.Logf("FINISHED with restarts %d; exceptions %+v", st.Restarts, st.Exceptions)
	cli := h.etcdClient()
	waitFor(t, 30*time.Second, "the job's result recorded and its graph removed", func() bool {
		state, graph := h.jobResult(cli, jobID)
		return state == "FINISHED" && !graph
	})
	cps.check(t)
	checkKeyedCounts(t, out, 16, count)
	files := committedNames(out)

	// A later leader: its recovery ends without the job, which stays as it
	// ended; no task runs, no output is added.
	l = h.killLeader(l)
	waitFor(t, 30*time.Second, "the new leader's recovery done", func() bool { return h.unit(l.addr).logHas("recovery: done") })
	h.waitTaskManagers(3)
	if s, ok := h.tryStatus(jobID); ok && s.State != "FINISHED" {
		t.Errorf("after another failover the finished job is %s", s.State)
	}
	var jobs []jobSummary
	h.weirJSON(&jobs, "list", "-a")
	for _, j := range jobs {
		if j.ID == jobID && j.State != "FINISHED" {
			t.Errorf("after another failover the leader lists the finished job as %s", j.State)
		}
	}
	if running := h.tmMetric("weir_taskmanager_tasks_running"); running[""] != 0 {
		t.Errorf("after another failover the TaskManagers run %v tasks, want none", running[""])
	}
	if state, graph := h.jobResult(cli, jobID); state != "FINISHED" || graph {
		t.Errorf("after another failover the HA store holds result %q, graph stored %v", state, graph)
	}
	if now := committedNames(out); !maps.Equal(now, files) {
		t.Errorf("after another failover the output changed: %d committed files, had %d", len(now), len(files))
	}
	checkKeyedCounts(t, out, 16, count)
}

type jobSummary struct {
	ID    string `json:"id"`
	State string `json:"state"`
}
