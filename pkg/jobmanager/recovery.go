package jobmanager

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/coordinator"
	"github.com/weirstream/weir/pkg/ha"
	"github.com/weirstream/weir/pkg/scheduler"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/proto/weirpb"
)

// Recovery: a new leader takes over the jobs of the HA store, and keeps
// their running tasks where it can (docs/high-availability.md). The pure
// ha.Recovery decides per job; this file feeds it and carries out what it
// decides:
//
//   - The leader pauses scheduling (no job takes the slots of tasks it may
//     adopt) and reads every job of the store off jm.mu: its result, graph
//     (parsed again), attempt and checkpoint pointers.
//   - Each TaskManager that registers reports the tasks it runs; reports
//     that arrive before the store is read are kept until it is.
//   - SkipJob: the job ended (its result is recorded): never run again, its
//     graph removed. AdoptJob: the scheduler takes the tasks as they are
//     (scheduler.JobAdopted), the coordinator starts at the store's id
//     counter, and each unfinished task is told that the checkpoints the
//     old leader may have had in flight are aborted and the latest
//     completed one is complete (sinks commit idempotently). RestartJob:
//     the attempt is recorded, then the job is admitted from its latest
//     completed checkpoint with that attempt; the reported tasks are
//     cancelled. CancelTask: a task of no job, or of an older attempt.
//   - Task state updates for a job not decided yet are kept and replayed
//     once it is adopted.
//   - Recovery ends when every job is decided or the reporting window
//     (heartbeat.timeout) passed; scheduling resumes.
//
// A job whose stored graph no longer parses (a weir upgrade that refuses
// it) is logged and left in the store for an operator to look at; store
// reads that fail are retried while this JobManager leads.

// recoveryRetry is the pause between attempts to read the store.
const recoveryRetry = time.Second

// maxHeldUpdates bounds the task state updates kept during a recovery:
// one per subtask of the cluster's jobs at most (jobgraph.MaxSubtasks).
const maxHeldUpdates = 100_000

// recovering is the state of a recovery in progress; jm.mu guards it.
type recovering struct {
	rec  *ha.Recovery // nil until the store is read
	jobs map[string]*preparedJob
	// reports holds the registrations that came before rec, by TaskManager.
	reports map[string][]ha.ReportedTask
	// updates holds task state updates of jobs not decided yet.
	updates []scheduler.TaskStateChanged
}

// beginRecovery is called under jm.mu when this JobManager starts to lead,
// before any TaskManager can register with it.
func (jm *JobManager) beginRecovery() {
	jm.recovery = &recovering{reports: map[string][]ha.ReportedTask{}}
	jm.stepLocked(scheduler.SchedulingPaused{Paused: true})
}

// recoverJobs reads the jobs of the store and starts the recovery; it
// runs on its own goroutine once this JobManager leads at epoch.
func (jm *JobManager) recoverJobs(epoch int64) {
	log := jm.log.With(zap.Int64("epoch", epoch))
	var ids []string
	if !jm.retryWhileLeading(epoch, "list the jobs of the HA store", func(ctx context.Context) (err error) {
		ids, err = jm.ha.JobIDs(ctx)
		return err
	}) {
		return
	}
	var stored []ha.StoredJob
	prepared := map[string]*preparedJob{}
	for _, id := range ids {
		var sj ha.StoredJob
		var pj *preparedJob
		ok := jm.retryWhileLeading(epoch, "read job "+id+" of the HA store", func(ctx context.Context) error {
			var err error
			sj, pj, err = jm.readStoredJob(ctx, id)
			return err
		})
		if !ok {
			return
		}
		if sj.JobID == "" {
			continue // gone, or not usable (logged)
		}
		stored = append(stored, sj)
		if pj != nil {
			prepared[id] = pj
		}
	}
	jm.mu.Lock()
	defer jm.mu.Unlock()
	if jm.recovery == nil || jm.closing || jm.leadEpoch.Load() != epoch {
		return
	}
	rec, acts, err := ha.NewRecovery(time.Now(), ha.RecoveryConfig{Window: jm.hbTimeout, Jobs: stored})
	if err != nil {
		// The store holds what NewRecovery refuses (a duplicate, a bad
		// attempt): a bug or a corrupted store; nothing can be adopted.
		log.Error("recovery: cannot start: every job restarts", zap.Error(err))
		for _, sj := range stored {
			if pj := prepared[sj.JobID]; pj != nil {
				jm.restartRecovered(pj, ha.RestartJob{JobID: sj.JobID, Attempt: sj.Attempt + 1, Cause: err.Error()})
			}
		}
		jm.endRecovery()
		return
	}
	r := jm.recovery
	r.rec, r.jobs = rec, prepared
	log.Info("recovery: waiting for the TaskManagers to report their tasks", zap.Int("jobs", len(stored)), zap.Duration("window", jm.hbTimeout))
	jm.doRecovery(acts)
	for tm, tasks := range r.reportsInOrder() {
		if jm.recovery != r {
			return // done
		}
		jm.doRecovery(rec.Step(time.Now(), ha.TaskManagerReport{TaskManagerID: tm, Tasks: tasks}))
	}
	r.reports = nil
	if jm.recovery == r {
		jm.wg.Add(1)
		go jm.recoveryTimer(rec, rec.Deadline())
	}
}

// reportsInOrder yields the kept reports, by TaskManager id.
func (r *recovering) reportsInOrder() func(yield func(string, []ha.ReportedTask) bool) {
	return func(yield func(string, []ha.ReportedTask) bool) {
		for _, tm := range slices.Sorted(maps.Keys(r.reports)) {
			if !yield(tm, r.reports[tm]) {
				return
			}
		}
	}
}

// recoveryTimer feeds RecoveryTick at the recovery's deadline (rec is
// read under jm.mu only: reports step it).
func (jm *JobManager) recoveryTimer(rec *ha.Recovery, deadline time.Time) {
	defer jm.wg.Done()
	for {
		select {
		case <-time.After(time.Until(deadline)):
		case <-jm.stopping:
			return
		}
		jm.mu.Lock()
		if jm.recovery == nil || jm.recovery.rec != rec {
			jm.mu.Unlock()
			return
		}
		jm.doRecovery(rec.Step(time.Now(), ha.RecoveryTick{}))
		done := jm.recovery == nil
		deadline = rec.Deadline()
		jm.mu.Unlock()
		if done {
			return
		}
	}
}

// retryWhileLeading runs f until it succeeds; false when this JobManager
// stops leading at epoch (or closes) first.
func (jm *JobManager) retryWhileLeading(epoch int64, what string, f func(ctx context.Context) error) bool {
	for {
		if !jm.stillLeading(epoch) {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
		err := f(ctx)
		cancel()
		if err == nil {
			return true
		}
		jm.log.Warn("recovery: cannot "+what+": retrying", zap.Error(err))
		if !jm.sleepUnlessStopping(recoveryRetry) {
			return false
		}
	}
}

// stillLeading reports whether this JobManager still leads at epoch and is
// not closing.
func (jm *JobManager) stillLeading(epoch int64) bool {
	select {
	case <-jm.stopping:
		return false
	default:
	}
	return jm.leadEpoch.Load() == epoch
}

// sleepUnlessStopping waits d; false when the JobManager closes first.
func (jm *JobManager) sleepUnlessStopping(d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-jm.stopping:
		return false
	}
}

// readStoredJob reads one job of the store. An error is worth a retry (the
// store or the checkpoint storage unreachable); a job that is not usable
// is logged and returned with an empty JobID.
func (jm *JobManager) readStoredJob(ctx context.Context, id string) (ha.StoredJob, *preparedJob, error) {
	log := jm.log.With(zap.String("job", id))
	if r, ok, err := jm.ha.JobResult(ctx, id); err != nil {
		return ha.StoredJob{}, nil, fmt.Errorf("read job result: %w", err)
	} else if ok {
		return ha.StoredJob{JobID: id, Result: string(r.State)}, nil, nil
	}
	g, ok, err := jm.ha.JobGraph(ctx, id)
	if err != nil {
		return ha.StoredJob{}, nil, fmt.Errorf("read job graph: %w", err)
	}
	if !ok {
		return ha.StoredJob{}, nil, nil // removed meanwhile
	}
	attempt, err := jm.ha.JobAttempt(ctx, id)
	if err != nil {
		return ha.StoredJob{}, nil, fmt.Errorf("read the job's attempt: %w", err)
	}
	next, err := jm.ha.CheckpointIDCounter(ctx, id)
	if err != nil {
		return ha.StoredJob{}, nil, fmt.Errorf("read the checkpoint id counter: %w", err)
	}
	cps, err := jm.ha.CompletedCheckpoints(ctx, id)
	if err != nil {
		return ha.StoredJob{}, nil, fmt.Errorf("read the completed checkpoints: %w", err)
	}
	pj, err := jm.prepareJob(ctx, id, g.Spec, g.FileName)
	if err != nil {
		log.Error("recovery: the stored job graph is not usable: the job is not recovered and stays in the HA store", zap.Error(err))
		return ha.StoredJob{}, nil, nil
	}
	if pj.cp != nil {
		pj.cp.setStored(next, cps) // its coordinators start from them (checkpointing.go)
	}
	sj := ha.StoredJob{JobID: id, Attempt: attempt, NextCheckpointID: next,
		MaxPendingCheckpoints: pj.eff.Int(config.MaxConcurrentCheckpoints) + coordinator.MaxPendingSavepoints}
	for _, v := range pj.vertices {
		sj.Parallelism = append(sj.Parallelism, v.Parallelism)
	}
	if len(cps) > 0 {
		sj.LatestCheckpointID = cps[len(cps)-1].CheckpointID
	}
	return sj, pj, nil
}

// reportTasks hands a registering TaskManager's tasks to the recovery in
// progress; false when there is none (the caller cancels what the
// scheduler does not run). Callers hold jm.mu, after the registration.
func (jm *JobManager) reportTasks(tmID string, tasks []*weirpb.ReportedTask) bool {
	r := jm.recovery
	if r == nil {
		return false
	}
	report := make([]ha.ReportedTask, 0, len(tasks))
	for _, t := range tasks {
		e := t.GetExecution()
		report = append(report, ha.ReportedTask{JobID: e.GetJobId(), Vertex: int(e.GetVertex()), Subtask: int(e.GetSubtask()),
			Attempt: int(e.GetAttempt()), State: ha.ReportedState(t.GetState())})
	}
	if r.rec == nil {
		r.reports[tmID] = report
		return true
	}
	jm.doRecovery(r.rec.Step(time.Now(), ha.TaskManagerReport{TaskManagerID: tmID, Tasks: report}))
	return true
}

// holdUpdate keeps a task state update of a job the recovery has not
// decided yet, for when it is adopted; false when it is not such a one.
// Callers hold jm.mu.
func (jm *JobManager) holdUpdate(ev scheduler.TaskStateChanged) bool {
	r := jm.recovery
	if r == nil {
		return false
	}
	if _, known := jm.sched.JobState(ev.Execution.JobID); known {
		return false
	}
	if len(r.updates) < maxHeldUpdates {
		r.updates = append(r.updates, ev)
	}
	return true
}

// doRecovery carries out the recovery's actions. Callers hold jm.mu; the
// store I/O they need runs on goroutines.
func (jm *JobManager) doRecovery(acts []ha.RecoveryAction) {
	r := jm.recovery
	for _, a := range acts {
		switch a := a.(type) {
		case ha.SkipJob:
			jm.log.Info("recovery: the job ended before (its result is recorded): not run again", zap.String("job", a.JobID), zap.String("result", a.Result))
			jm.goStore("remove the graph of an ended job", a.JobID, func(ctx context.Context) error { return jm.ha.RemoveJob(ctx, a.JobID) })
		case ha.AdoptJob:
			jm.adopt(r.jobs[a.JobID], a)
			jm.replayUpdates(a.JobID)
		case ha.RestartJob:
			for _, t := range a.Cancel {
				jm.cancelReported(t, "the job restarts after the JobManager failover")
			}
			jm.restartRecovered(r.jobs[a.JobID], a)
		case ha.CancelTask:
			jm.cancelReported(a.Task, a.Reason)
		case ha.FailAdoptedJob:
			jm.stepLocked(scheduler.GlobalFailure{JobID: a.JobID, Cause: a.Cause})
		case ha.Log:
			jm.log.Info("recovery: " + a.Message)
		}
	}
	if r.rec != nil && r.rec.Done() {
		jm.endRecovery()
	}
}

// endRecovery resumes scheduling. Callers hold jm.mu.
func (jm *JobManager) endRecovery() {
	jm.recovery = nil
	jm.stepLocked(scheduler.SchedulingPaused{Paused: false})
	jm.log.Info("recovery: done")
}

// adopt hands an adopted job to the scheduler as it runs, then tells its
// unfinished tasks which checkpoints ended. Callers hold jm.mu.
func (jm *JobManager) adopt(pj *preparedJob, a ha.AdoptJob) {
	if pj == nil {
		return
	}
	tasks := make([]scheduler.AdoptedTask, len(a.Tasks))
	for i, t := range a.Tasks {
		tasks[i] = scheduler.AdoptedTask{Vertex: t.Task.Vertex, Subtask: t.Task.Subtask, TaskManagerID: t.TaskManagerID, State: scheduler.ExecutionState(t.Task.State)}
	}
	jm.log.Info("recovery: the job keeps running: its tasks are adopted", zap.String("job", a.JobID), zap.Int("attempt", a.Attempt),
		zap.Int("tasks", len(tasks)), zap.Int64s("aborted_checkpoints", a.AbortCheckpoints), zap.Int64("notified_checkpoint", a.NotifyCheckpointID))
	jm.checkpoints[pj.id] = pj.cp
	jm.stepLocked(scheduler.JobAdopted{Job: pj.submitted(nil, a.Attempt, "JobManager failover: the new leader adopted the job's running tasks"), Tasks: tasks})
	for _, t := range a.Tasks {
		if t.Task.State == ha.ReportedFinished {
			continue
		}
		te := jm.executors[t.TaskManagerID]
		if te == nil {
			continue
		}
		exec := scheduler.ExecutionAttemptID{JobID: a.JobID, Vertex: t.Task.Vertex, Subtask: t.Task.Subtask, Attempt: t.Task.Attempt}.Proto()
		aborted, notify := a.AbortCheckpoints, a.NotifyCheckpointID
		te.enqueue(func(ctx context.Context) {
			for _, id := range aborted {
				if _, err := te.client.NotifyCheckpointAborted(ctx, &weirpb.NotifyCheckpointRequest{Execution: exec, CheckpointId: id}); err != nil {
					return
				}
			}
			if notify != 0 {
				_, _ = te.client.NotifyCheckpointComplete(ctx, &weirpb.NotifyCheckpointRequest{Execution: exec, CheckpointId: notify})
			}
		})
	}
}

// replayUpdates steps the task state updates kept for an adopted job.
// Callers hold jm.mu.
func (jm *JobManager) replayUpdates(jobID string) {
	r := jm.recovery
	kept := r.updates[:0]
	var replay []scheduler.TaskStateChanged
	for _, ev := range r.updates {
		if ev.Execution.JobID == jobID {
			replay = append(replay, ev)
		} else {
			kept = append(kept, ev)
		}
	}
	r.updates = kept
	for _, ev := range replay {
		jm.stepLocked(ev)
	}
}

// restartRecovered records the restart's attempt, then admits the job
// from its latest completed checkpoint; off jm.mu. Callers hold jm.mu.
func (jm *JobManager) restartRecovered(pj *preparedJob, a ha.RestartJob) {
	if pj == nil {
		return
	}
	epoch := jm.leadEpoch.Load()
	jm.wg.Add(1)
	go func() {
		defer jm.wg.Done()
		var md *snapshot.Metadata
		if !jm.retryWhileLeading(epoch, "restart job "+a.JobID, func(ctx context.Context) error {
			if err := jm.ha.SetJobAttempt(ctx, a.JobID, a.Attempt); err != nil {
				return fmt.Errorf("record attempt %d: %w", a.Attempt, err)
			}
			var err error
			md, err = jm.latestCheckpoint(a.JobID)
			return err
		}) {
			return
		}
		from := "scratch"
		if md != nil {
			from = fmt.Sprintf("checkpoint %d", md.CheckpointID)
		}
		jm.log.Info("recovery: the job restarts", zap.String("job", a.JobID), zap.String("from", from), zap.Int("attempt", a.Attempt), zap.String("cause", a.Cause))
		jm.mu.Lock()
		defer jm.mu.Unlock()
		if jm.closing {
			return
		}
		if pj.cp != nil {
			jm.checkpoints[pj.id] = pj.cp
		}
		ev := pj.submitted(md, a.Attempt, fmt.Sprintf("JobManager failover: the new leader restarts the job from %s: %s", from,
			strings.TrimPrefix(a.Cause, "JobManager failover: ")))
		ev.Restarted = true
		jm.stepLocked(ev)
		// The job's status counts this restart (Restarted), and so does
		// weir_job_restarts_total: the step above created its series.
		restored := "scratch"
		if md != nil {
			restored = "checkpoint"
		}
		jm.serialize(func() { jm.metrics.restarted(pj.id, restored, time.Now()) })
	}()
}

// goStore runs one store write off jm.mu, logging its failure. Callers
// hold jm.mu.
func (jm *JobManager) goStore(what, jobID string, f func(ctx context.Context) error) {
	if jm.closing {
		return
	}
	jm.wg.Add(1)
	go func() {
		defer jm.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
		defer cancel()
		if err := f(ctx); err != nil {
			jm.log.Warn("recovery: "+what, zap.String("job", jobID), zap.Error(err))
		}
	}()
}

// cancelReported cancels a reported task on its TaskManager. Callers hold
// jm.mu.
func (jm *JobManager) cancelReported(t ha.TaskOn, reason string) {
	te := jm.executors[t.TaskManagerID]
	if te == nil {
		return
	}
	exec := scheduler.ExecutionAttemptID{JobID: t.Task.JobID, Vertex: t.Task.Vertex, Subtask: t.Task.Subtask, Attempt: t.Task.Attempt}.Proto()
	jm.log.Info("canceling a reported task", zap.String("task", t.String()), zap.String("job", t.Task.JobID), zap.String("reason", reason))
	te.enqueue(func(ctx context.Context) {
		if _, err := te.client.CancelTask(ctx, &weirpb.CancelTaskRequest{Execution: exec}); err != nil && ctx.Err() == nil {
			jm.log.Warn("cancel a reported task", zap.String("task", t.String()), zap.Error(err))
		}
	})
}

// cancelUnknownTasks cancels the tasks a TaskManager reports on
// registration, outside a recovery, that the scheduler does not run
// there. Callers hold jm.mu, after the registration was stepped.
func (jm *JobManager) cancelUnknownTasks(tmID string, tasks []*weirpb.ReportedTask) {
	for _, rt := range tasks {
		id := scheduler.ExecutionAttemptIDFromProto(rt.GetExecution())
		if ex, ok := jm.sched.Execution(id.JobID, id.Vertex, id.Subtask); ok && ex.ID == id && ex.TaskManager == tmID {
			continue
		}
		switch rt.GetState() {
		case "FINISHED", "FAILED", "CANCELED":
			continue // nothing runs; the TaskManager forgets it on ReleaseJob
		}
		jm.cancelReported(ha.TaskOn{TaskManagerID: tmID, Task: ha.ReportedTask{JobID: id.JobID, Vertex: id.Vertex, Subtask: id.Subtask, Attempt: id.Attempt}},
			"a task of a former execution")
	}
}
