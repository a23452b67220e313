package jobmanager

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/scheduler"
	"github.com/weirstream/weir/proto/weirpb"
)

// Recovery: a new leader takes over the jobs of the HA store. A job whose
// result is recorded is never run again (its graph, left by a leader that
// died between recording the result and removing the graph, is removed).
// Every other job is admitted again, restoring from its latest completed
// checkpoint, with its subtasks' attempts above every attempt an earlier
// leader deployed (recorded in the store before each deployment), so that
// the new execution's tasks never share an attempt or a partition id with
// the old tasks still running on TaskManagers. Those old tasks are
// cancelled when their TaskManager registers with the new leader and
// reports them (cancelUnknownTasks). The job's checkpoint ids continue
// above every id ever handed out (the store's counter).
//
// The store's reads may fail while etcd is unreachable: recovery retries
// each job until it succeeds or this JobManager stops leading. A job whose
// stored graph no longer parses (a weir upgrade that refuses it) is
// logged and left in the store for an operator to look at.

// recoveryRetry is the pause between attempts to recover a job whose
// store reads failed.
const recoveryRetry = time.Second

// recoverJobs recovers every job of the store; it runs on its own
// goroutine once this JobManager leads at epoch.
func (jm *JobManager) recoverJobs(epoch int64) {
	log := jm.log.With(zap.Int64("epoch", epoch))
	var ids []string
	for {
		if !jm.stillLeading(epoch) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
		var err error
		ids, err = jm.ha.JobIDs(ctx)
		cancel()
		if err == nil {
			break
		}
		log.Warn("recovery: cannot list the jobs of the HA store: retrying", zap.Error(err))
		if !jm.sleepUnlessStopping(recoveryRetry) {
			return
		}
	}
	log.Info("recovery: jobs in the HA store", zap.Int("jobs", len(ids)))
	for _, id := range ids {
		for {
			if !jm.stillLeading(epoch) {
				return
			}
			retry, err := jm.recoverJob(id)
			if err == nil {
				break
			}
			if !retry {
				log.Error("recovery: job not recovered: its stored graph is not usable; it stays in the HA store", zap.String("job", id), zap.Error(err))
				break
			}
			log.Warn("recovery: job not recovered yet: retrying", zap.String("job", id), zap.Error(err))
			if !jm.sleepUnlessStopping(recoveryRetry) {
				return
			}
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

// recoverJob recovers one job; retry says whether an error may go away
// (the store or the checkpoint storage unreachable) or is the job's own.
func (jm *JobManager) recoverJob(id string) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
	defer cancel()
	log := jm.log.With(zap.String("job", id))
	jm.mu.Lock()
	_, known := jm.sched.JobState(id)
	jm.mu.Unlock()
	if known {
		return false, nil
	}
	if r, ok, err := jm.ha.JobResult(ctx, id); err != nil {
		return true, fmt.Errorf("read job result: %w", err)
	} else if ok {
		log.Info("recovery: the job ended before (its result is recorded): not run again", zap.String("state", string(r.State)))
		if err := jm.ha.RemoveJob(ctx, id); err != nil {
			return true, fmt.Errorf("remove the graph of an ended job: %w", err)
		}
		return false, nil
	}
	g, ok, err := jm.ha.JobGraph(ctx, id)
	if err != nil {
		return true, fmt.Errorf("read job graph: %w", err)
	}
	if !ok {
		return false, nil // removed meanwhile
	}
	attempt, err := jm.ha.JobAttempt(ctx, id)
	if err != nil {
		return true, fmt.Errorf("read the job's attempt: %w", err)
	}
	pj, err := jm.prepareJob(ctx, id, g.Spec, g.FileName)
	if err != nil {
		return false, err
	}
	md, err := jm.latestCheckpoint(id)
	if err != nil {
		return true, err
	}
	// Recorded before anything of the new execution is deployed.
	next := attempt + 1
	if err := jm.ha.SetJobAttempt(ctx, id, next); err != nil {
		return true, fmt.Errorf("record the job's attempt %d: %w", next, err)
	}
	from := "scratch"
	if md != nil {
		from = fmt.Sprintf("checkpoint %d (%s)", md.CheckpointID, md.Dir)
	}
	log.Info("recovery: job resubmitted", zap.String("name", g.Name), zap.String("from", from), zap.Int("attempt", next))
	jm.admit(pj, md, next, "JobManager failover: the new leader restarts the job from "+from)
	return false, nil
}

// cancelUnknownTasks cancels the tasks a TaskManager reports on
// registration that the scheduler does not run there: those of a former
// leader (failover) or of a job that ended. Callers hold jm.mu, after the
// registration was stepped.
func (jm *JobManager) cancelUnknownTasks(tmID string, tasks []*weirpb.ReportedTask) {
	te := jm.executors[tmID]
	if te == nil {
		return
	}
	for _, rt := range tasks {
		id := scheduler.ExecutionAttemptIDFromProto(rt.GetExecution())
		if ex, ok := jm.sched.Execution(id.JobID, id.Vertex, id.Subtask); ok && ex.ID == id && ex.TaskManager == tmID {
			continue
		}
		switch rt.GetState() {
		case "FINISHED", "FAILED", "CANCELED":
			continue // nothing runs; the TaskManager forgets it on ReleaseJob
		}
		exec := rt.GetExecution()
		jm.log.Info("canceling a task of a former execution reported by a TaskManager", zap.String("taskmanager", tmID),
			zap.String("job", id.JobID), zap.Int("vertex", id.Vertex), zap.Int("subtask", id.Subtask), zap.Int("attempt", id.Attempt))
		te.enqueue(func(ctx context.Context) {
			if _, err := te.client.CancelTask(ctx, &weirpb.CancelTaskRequest{Execution: exec}); err != nil && ctx.Err() == nil {
				jm.log.Warn("cancel task of a former execution failed", zap.String("taskmanager", tmID), zap.Error(err))
			}
		})
	}
}
