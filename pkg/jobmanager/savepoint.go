package jobmanager

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/coordinator"
	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/scheduler"
	"github.com/weirstream/weir/pkg/snapshot"
)

// Savepoints (Flink semantics). A savepoint is a checkpoint the user asked
// for and owns: the coordinator triggers it at once, always aligned; the
// tasks write their state into the job's checkpoint location chk-<id> and
// acknowledge as for any checkpoint; at WriteMetadata the JobManager makes
// it self-contained and relocatable (snapshot.MaterializeSavepoint copies
// the referenced files into savepoint-<jobid6>-<random12>/ and writes
// _metadata there with relative paths), then deletes chk-<id>. It is never
// added to the HA store, never subsumed and never deleted by weir, except
// by DisposeSavepoint.
//
// A job started from a savepoint (or a retained checkpoint) has it in the
// HA store as its first completed checkpoint, flagged Savepoint: the first
// deployment and every restart before the first new checkpoint completes
// restore from it, and subsumption never deletes its files. The job's
// checkpoint ids continue at the savepoint's id + 1, as in Flink.

// savepointResult answers one TriggerSavepoint or StopJob call.
type savepointResult struct {
	path string
	err  error // a gRPC status error
}

// savepoint triggers a savepoint (stop: stop-with-savepoint) of a RUNNING
// job and waits until the coordinator answers or ctx ends. The savepoint
// goes on when ctx ends first; only its answer is dropped.
func (jm *JobManager) savepoint(ctx context.Context, jobID, target string, stop, drain bool) (string, error) {
	what := "take a savepoint"
	if stop {
		what = "be stopped with a savepoint"
	}
	if target != "" && !config.IsAbsolutePathOrURI(target) {
		return "", status.Errorf(codes.InvalidArgument, "savepoint directory %q is a relative path: give an absolute path or a URI such as file:///var/weir/savepoints, "+
			"since the JobManager and each TaskManager would resolve it against its own working directory", target)
	}
	// Off jm.mu: resolving links is I/O. The default directory was
	// checked at submission.
	if target != "" {
		if err := jm.checkAllowedPointer(target); err != nil {
			return "", status.Errorf(codes.InvalidArgument, "savepoint directory: %v", err)
		}
	}
	jm.mu.Lock()
	st, ok := jm.sched.JobState(jobID)
	if !ok {
		jm.mu.Unlock()
		return "", errJobNotFound(jobID)
	}
	cp := jm.checkpoints[jobID]
	if st != scheduler.JobRunning || cp == nil || cp.coord == nil || cp.stopped {
		jm.mu.Unlock()
		return "", status.Errorf(codes.FailedPrecondition, "job %s is %s: only a RUNNING job can %s", jobID, st, what)
	}
	if target == "" {
		target = cp.savepointDir
	}
	if target == "" {
		jm.mu.Unlock()
		how := "weir savepoint JOBID DIR"
		if stop {
			how = "weir stop --savepoint-path DIR JOBID"
		}
		return "", status.Errorf(codes.FailedPrecondition, "no savepoint directory: pass one (%s) or set %s", how, config.SavepointDir.Key)
	}
	// Before any task snapshots: a target no driver can write is refused.
	if err := snapshot.CheckPointer(target); err != nil {
		jm.mu.Unlock()
		return "", status.Errorf(codes.InvalidArgument, "savepoint directory: %v", err)
	}
	jm.nextSavepoint++
	req := jm.nextSavepoint
	answer := make(chan savepointResult, 1) // the answer may come within feed
	jm.savepointWaiters[req] = answer
	cp.log.Info("savepoint triggered", zap.String("target", target), zap.Bool("stop", stop), zap.Bool("drain", drain))
	jm.feed(cp, coordinator.TriggerSavepoint{Request: req, Target: target, Stop: stop, Drain: drain})
	jm.mu.Unlock()

	select {
	case r := <-answer:
		return r.path, r.err
	case <-ctx.Done():
		jm.mu.Lock()
		delete(jm.savepointWaiters, req)
		jm.mu.Unlock()
		return "", status.FromContextError(ctx.Err()).Err()
	case <-jm.stopping:
		return "", status.Error(codes.Unavailable, "the JobManager is shutting down")
	}
}

// answerSavepoint hands the coordinator's answer to the waiting call, if
// it still waits. Callers hold jm.mu.
func (jm *JobManager) answerSavepoint(req uint64, r savepointResult) {
	if ch, ok := jm.savepointWaiters[req]; ok {
		delete(jm.savepointWaiters, req)
		ch <- r
	}
}

// savepointError turns a SavepointFailed into the status the caller sees.
func savepointError(a coordinator.SavepointFailed) error {
	code := codes.Aborted
	switch a.Reason {
	case coordinator.ReasonNotAllTasksRunning, coordinator.ReasonTooManyRequests, coordinator.ReasonCoordinatorShutdown:
		code = codes.FailedPrecondition
	case coordinator.ReasonExpired:
		code = codes.DeadlineExceeded
	}
	if a.CheckpointID == 0 {
		return status.Errorf(code, "savepoint not triggered: %s: %s", a.Reason, a.Message)
	}
	return status.Errorf(code, "savepoint %d failed: %s: %s", a.CheckpointID, a.Reason, a.Message)
}

// writeSavepoint materializes a fully acknowledged savepoint on a goroutine
// of its own (storage I/O never runs on jm.mu): a new savepoint directory
// in a.Target with copies of the files the tasks wrote into chk-<id> and
// the _metadata, then chk-<id> is deleted. Any failure (a full disk, a
// target that cannot be created, a damaged state file) fails only this
// savepoint, with the cause; the coordinator's DiscardCheckpoint then
// deletes chk-<id>. Callers hold jm.mu.
func (jm *JobManager) writeSavepoint(cp *checkpointing, a coordinator.WriteMetadata, md *snapshot.Metadata, written func(string, error)) {
	src, err := cp.storage.CheckpointLocation(cp.jobID, a.CheckpointID)
	if err != nil {
		written("", err)
		return
	}
	jm.wg.Add(1) // under jm.mu and not closing (feed checked): Close waits for it
	cp.io++
	go func() {
		defer jm.wg.Done()
		var path string
		ctx, cancel := context.WithDeadline(context.Background(), a.Timestamp.Add(cp.cfg.Timeout))
		dst, err := cp.storage.SavepointLocation(ctx, a.Target, cp.jobID)
		if err == nil {
			path = dst.Path()
			_, err = snapshot.MaterializeSavepoint(ctx, md, src.Path(), dst)
		}
		cancel()
		if err == nil {
			// Everything the savepoint needs is in its own directory now.
			dctx, cancel := context.WithTimeout(context.Background(), storageTimeout)
			derr := src.Dispose(dctx)
			cancel()
			if derr != nil {
				cp.log.Warn("delete the temporary checkpoint directory of a savepoint", zap.Int64("checkpoint", a.CheckpointID), zap.Error(derr))
			}
		}
		jm.mu.Lock()
		defer jm.mu.Unlock()
		written(path, err)
		jm.ioDone(cp)
	}()
}

// loadSavepoint reads the _metadata a job is to be started from: a
// savepoint directory, a retained checkpoint's chk-<id> directory, or the
// _metadata file itself. Errors are the user's to read and name the path.
func loadSavepoint(ctx context.Context, path string) (*snapshot.Metadata, error) {
	ctx, cancel := context.WithTimeout(ctx, storageTimeout)
	defer cancel()
	md, err := snapshot.LoadMetadata(ctx, path)
	switch {
	case errors.Is(err, snapshot.ErrNotSnapshot):
		why := err.Error()
		if rest, ok := strings.CutPrefix(why, snapshot.ErrNotSnapshot.Error()+": "); ok {
			why = rest
			if rest, ok := strings.CutPrefix(why, path+": "); ok {
				why = rest
			}
		}
		return nil, fmt.Errorf("%s is not a weir savepoint or checkpoint: %s", path, why)
	case err != nil:
		return nil, fmt.Errorf("cannot restore from %s: %w", path, err)
	case md.CheckpointID < 1:
		return nil, fmt.Errorf("cannot restore from %s: it holds checkpoint id %d, want 1 or more", path, md.CheckpointID)
	}
	return md, nil
}

// matchSavepoint matches the state of a savepoint to the operators of the
// job to start from it, by operator id, as Flink does: the max parallelism
// must be the savepoint's (it fixes the key groups); an operator whose id
// names another type in the savepoint is refused (its state would be
// misread); state of an operator the job lacks is refused unless
// allowNonRestored, and then returned as dropped. Operators new to the
// job start empty. Only operators with state count: a stateless operator
// may be removed or change type freely. In-flight data of an unaligned
// checkpoint restores at another parallelism too, with the exceptions of
// checkChannelState.
func matchSavepoint(md *snapshot.Metadata, maxParallelism int, vertices []*jobgraph.JobVertex, allowNonRestored bool) (dropped []string, err error) {
	if md.MaxParallelism != maxParallelism {
		return nil, fmt.Errorf("the job's max-parallelism is %d but the savepoint %s was taken with max-parallelism %d: it cannot change for a job restored from state; set max-parallelism: %d",
			maxParallelism, md.Dir, md.MaxParallelism, md.MaxParallelism)
	}
	types := map[string]string{}
	for _, v := range vertices {
		for _, op := range v.Operators {
			types[op.ID] = op.Type
		}
	}
	if err := checkChannelState(md, vertices); err != nil {
		return nil, err
	}
	var missing []string
	for _, op := range md.Operators {
		if !operatorHasState(&op) {
			continue
		}
		typ, ok := types[op.ID]
		switch {
		case !ok:
			missing = append(missing, op.ID)
		case typ != op.Type:
			return nil, fmt.Errorf("operator %q has type %q in the savepoint %s but type %q in the job: its state cannot be restored into another type of operator (give the new operator a new id)",
				op.ID, op.Type, md.Dir, typ)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 && !allowNonRestored {
		return nil, fmt.Errorf("the savepoint %s has state of operators the job does not have: %s; to start without that state, pass --allow-non-restored-state",
			md.Dir, strings.Join(missing, ", "))
	}
	return missing, nil
}

// operatorHasState reports whether a savepoint holds anything of an
// operator: a state object, or a subtask that had finished.
func operatorHasState(op *snapshot.OperatorState) bool {
	for _, st := range op.Subtasks {
		if st.Finished || len(st.State) > 0 {
			return true
		}
	}
	return false
}

// checkChannelState refuses the in-flight data of an unaligned checkpoint
// that the tasks could not restore. At another parallelism it is
// redistributed (pkg/taskexec/rescale.go), except on a broadcast edge: each
// old consumer held its own unconsumed part of the same stream, which no
// new subtask can take over. And it belongs to the head of a chain (input
// channels) or to its tail (output subpartitions): a job whose chains
// changed around it cannot restore it.
func checkChannelState(md *snapshot.Metadata, vertices []*jobgraph.JobVertex) error {
	old := map[string]*snapshot.OperatorState{}
	for i := range md.Operators {
		old[md.Operators[i].ID] = &md.Operators[i]
	}
	parallelism := map[string]int{}
	for _, v := range vertices {
		for _, op := range v.Operators {
			parallelism[op.ID] = op.Parallelism
		}
	}
	for _, v := range vertices {
		if len(v.Operators) == 0 {
			continue
		}
		head, tail := v.Operators[0], v.Operators[len(v.Operators)-1]
		for _, op := range v.Operators {
			os := old[op.ID]
			if os == nil {
				continue
			}
			if op != head && hasChannelState(os, snapshot.KindInputChannel, -1) {
				return fmt.Errorf("%s has in-flight data of the input of operator %q (an unaligned checkpoint), which is no longer the first operator of its chain; restore it with the job's chains unchanged, or take a savepoint (always aligned)", md.Dir, op.ID)
			}
			if op != tail && hasChannelState(os, snapshot.KindResultSubpartition, -1) {
				return fmt.Errorf("%s has in-flight data of the output of operator %q (an unaligned checkpoint), which is no longer the last operator of its chain; restore it with the job's chains unchanged, or take a savepoint (always aligned)", md.Dir, op.ID)
			}
		}
		// The index of an edge in the vertex's inputs or outputs is the
		// gate of its channel state (the deployment descriptor's order).
		for gate, in := range v.Inputs {
			if os := old[head.ID]; in.Partition == jobgraph.Broadcast && os != nil && os.Parallelism != head.Parallelism && hasChannelState(os, snapshot.KindInputChannel, gate) {
				return fmt.Errorf("%s has in-flight data of the broadcast edge from %q to %q (an unaligned checkpoint), which cannot be redistributed to another parallelism of %q (%d, was %d); take a savepoint (always aligned) to rescale",
					md.Dir, in.FromOperator, head.ID, head.ID, head.Parallelism, os.Parallelism)
			}
		}
		for gate, out := range v.Outputs {
			os, cons := old[tail.ID], old[out.ToOperator]
			if out.Partition != jobgraph.Broadcast || os == nil || cons == nil || cons.Parallelism == parallelism[out.ToOperator] {
				continue
			}
			if hasChannelState(os, snapshot.KindResultSubpartition, gate) {
				return fmt.Errorf("%s has in-flight data of the broadcast edge from %q to %q (an unaligned checkpoint), which cannot be redistributed to another parallelism of %q (%d, was %d); take a savepoint (always aligned) to rescale",
					md.Dir, tail.ID, out.ToOperator, out.ToOperator, parallelism[out.ToOperator], cons.Parallelism)
			}
		}
	}
	return nil
}

// hasChannelState reports whether an operator's state holds in-flight
// buffers of kind, of gate (any gate: -1).
func hasChannelState(op *snapshot.OperatorState, kind snapshot.StateKind, gate int) bool {
	for _, st := range op.Subtasks {
		for _, o := range st.State {
			if o.Kind == kind && (gate < 0 || o.Channel == nil || o.Channel.Gate == gate) {
				return true
			}
		}
	}
	return false
}
