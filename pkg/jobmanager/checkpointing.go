package jobmanager

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/coordinator"
	"github.com/weirstream/weir/pkg/ha"
	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/scheduler"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/proto/weirpb"
)

// The JobManager side of checkpointing: the shell around the pure
// checkpoint coordinator (package coordinator) of each job execution. It
// feeds the coordinator what the scheduler, the TaskManagers and time
// report, and carries out its actions: RPCs to the tasks, the _metadata
// write, the HA store, file clean-up and failing the job.
//
// # The HA store, never under jm.mu
//
// The HA store may be etcd: a call can take as long as haTimeout, and
// jm.mu is what every handler, the heartbeats and the timers need. So no
// store call is made with jm.mu held. While a JobManager leads it is the
// only writer of its jobs' entries (every etcd write is fenced by its
// epoch), so it knows what the store holds without asking: each job's
// checkpointing keeps the checkpoint id counter (persistedNext) and the
// completed checkpoint pointers (completed), read once off the lock
// before the job is admitted (a submitted job starts empty at id 1, or at
// the savepoint's id + 1 with the savepoint as its first checkpoint; a
// recovered job reads the store in recovery.go) and kept current after
// each successful write. A new coordinator (first deployment, restart,
// adoption) is built from them under jm.mu without I/O, and a restart
// restores from the newest of them.
//
// Checkpoint ids: the coordinator asks for its counter to be persisted
// (PersistCheckpointID) before it triggers an id. The write runs on a
// goroutine (one at a time per job, always to the coordinator's latest
// next id, so a write covers every trigger asked for meanwhile) and the
// TriggerTasks that needs it is held until it succeeds: a task never sees
// an id the store's counter does not cover, so a new leader never hands
// it out again. A trigger whose write failed is not sent: its checkpoint
// expires (the tasks never heard of it). The counter is written for each
// checkpoint rather than reserved in blocks ahead: a new leader then
// knows which ids the old one may have had in flight (those just below
// the counter, ha.Recovery aborts them on the adopted tasks), and ids
// have no gaps across a failover. The cost is one store write per
// checkpoint between the coordinator's decision and the trigger, off the
// lock.

// Retention policies (execution.checkpointing.externalized-checkpoint-retention).
const (
	deleteOnCancellation = "DELETE_ON_CANCELLATION"
	retainOnCancellation = "RETAIN_ON_CANCELLATION"
	noExternalized       = "NO_EXTERNALIZED_CHECKPOINTS"
)

// haTimeout bounds one call to the HA store.
const haTimeout = 5 * time.Second

// storageTimeout bounds storage I/O that no checkpoint's deadline bounds:
// probing the storage at submission, reading a checkpoint to restore from,
// deleting a checkpoint. A driver retries within it.
const storageTimeout = time.Minute

// checkpointing is the checkpointing of one job: what submission validated
// and, once the tasks are deployed, the coordinator of the execution. It
// belongs to the JobManager's mutex. It outlives the job, so that its
// checkpoint history can still be listed.
type checkpointing struct {
	jobID, jobName string
	maxParallelism int
	vertices       []*jobgraph.JobVertex
	cfg            coordinator.Config // options only: no tasks, ids or restored checkpoints
	retention      string
	storage        snapshot.Storage
	log            *zap.Logger
	// enabled: periodic checkpointing is on (an interval is set). Without
	// it the coordinator still runs, for savepoints.
	enabled bool
	// savepointDir is execution.checkpointing.savepoint-dir of the job's
	// effective configuration: the default target of its savepoints.
	savepointDir string

	// coord is nil until the tasks are deployed; then the coordinator of
	// the current (or last) execution: a restart replaces it.
	coord   *coordinator.Coordinator
	stopped bool
	// What the coordinators of earlier executions recorded, so that the
	// user sees one checkpoint history per job across restarts:
	// pastHistory newest first, at most coordinator.HistorySize.
	pastHistory               []coordinator.CheckpointStats
	pastCompleted, pastFailed int
	// io counts the goroutines writing _metadata or discarding checkpoints
	// (under jm.mu; jm.ioIdle is signaled when one ends). A restart reads
	// the latest checkpoint only when it is 0: the stopped coordinator's
	// last checkpoint is then either in the HA store for good or gone.
	io int

	// What the HA store holds for the job, as this leader knows it (see
	// the top of this file). storeKnown: read (or, for a new job, known
	// empty) before the job was admitted; a coordinator is never built
	// without it.
	storeKnown bool
	// persistedNext is the store's checkpoint id counter: ids below it
	// are covered. A trigger of a higher id waits in held for the write
	// that covers it, because a JobManager taking over could hand that id
	// out again.
	persistedNext int64
	// completed are the completed checkpoints in the store, oldest first.
	completed []ha.CompletedCheckpoint
	// persisting: a counter write is in flight (at most one per job).
	persisting bool
	held       []heldTrigger
}

// heldTrigger is a TriggerTasks waiting for the counter write that covers
// its id, with the coordinator that asked for it.
type heldTrigger struct {
	coord *coordinator.Coordinator
	a     coordinator.TriggerTasks
}

// setStored records what the HA store holds for the job before it is
// admitted: its checkpoint id counter and completed checkpoints. Called
// before the checkpointing is shared, so without jm.mu.
func (cp *checkpointing) setStored(next int64, completed []ha.CompletedCheckpoint) {
	cp.storeKnown = true
	cp.persistedNext = max(next, 1)
	cp.completed = slices.Clone(completed)
}

// latestCompleted is the newest completed checkpoint in the store, nil
// when there is none. Callers hold jm.mu.
func (cp *checkpointing) latestCompleted() *ha.CompletedCheckpoint {
	if len(cp.completed) == 0 {
		return nil
	}
	c := cp.completed[len(cp.completed)-1]
	return &c
}

// addCompleted records a checkpoint the store now holds. Two metadata
// writers may take jm.mu in the other order than their store writes
// succeeded: the list is kept in id order, as the store's.
// Callers hold jm.mu.
func (cp *checkpointing) addCompleted(c ha.CompletedCheckpoint) {
	i, _ := slices.BinarySearchFunc(cp.completed, c.CheckpointID, func(e ha.CompletedCheckpoint, id int64) int { return cmp.Compare(e.CheckpointID, id) })
	cp.completed = slices.Insert(cp.completed, i, c)
}

// removeCompleted forgets a checkpoint the store no longer holds. Callers
// hold jm.mu.
func (cp *checkpointing) removeCompleted(id int64) {
	cp.completed = slices.DeleteFunc(cp.completed, func(c ha.CompletedCheckpoint) bool { return c.CheckpointID == id })
}

// checkpointSettings reads the checkpointing options of a job's effective
// configuration. ok is false when periodic checkpointing is disabled (no
// interval): c then has no Interval, and the other options still apply to
// savepoints.
func checkpointSettings(cfg *config.Config) (c coordinator.Config, retention string, ok bool, err error) {
	// Flink's false stops checkpoints (and savepoints) once a task has
	// finished and lets tasks finish without a final checkpoint. Honouring
	// it takes the tasks too (a sink that commits on checkpoints waits for
	// a final one, which would never come), so it is refused rather than
	// accepted and ignored.
	if !cfg.Bool(config.CheckpointsAfterTasksFinish) {
		return c, "", false, fmt.Errorf("%s is false, which weir does not support: checkpoints go on after some tasks "+
			"finished (FLIP-147), and sinks that commit on checkpoints wait for a final one; remove the key or set it to true",
			config.CheckpointsAfterTasksFinish.Key)
	}
	ok = cfg.IsSet(config.CheckpointingInterval)
	var interval time.Duration
	if ok {
		interval = cfg.Duration(config.CheckpointingInterval)
	}
	c = coordinator.Config{
		Interval:                   interval,
		Mode:                       coordinator.Mode(cfg.String(config.CheckpointingMode)),
		MinPause:                   cfg.Duration(config.CheckpointingMinPause),
		Timeout:                    cfg.Duration(config.CheckpointingTimeout),
		TolerableFailedCheckpoints: cfg.Int(config.TolerableFailedCheckpoints),
		MaxConcurrent:              cfg.Int(config.MaxConcurrentCheckpoints),
		NumRetained:                cfg.Int(config.NumRetainedCheckpoints),
		Unaligned:                  cfg.Bool(config.UnalignedCheckpoints),
		AlignedCheckpointTimeout:   cfg.Duration(config.AlignedCheckpointTimeout),
	}
	// pkg/config checks each value; what only holds for a combination of
	// values is checked here, naming the keys (the coordinator checks it
	// too, in its own words).
	if c.Unaligned && ok {
		switch {
		case c.Mode != coordinator.ExactlyOnce:
			return c, "", true, fmt.Errorf("%s is true but %s is %s: unaligned checkpoints require EXACTLY_ONCE",
				config.UnalignedCheckpoints.Key, config.CheckpointingMode.Key, c.Mode)
		case c.MaxConcurrent > 1:
			return c, "", true, fmt.Errorf("%s is true but %s is %d: unaligned checkpoints require 1",
				config.UnalignedCheckpoints.Key, config.MaxConcurrentCheckpoints.Key, c.MaxConcurrent)
		}
	}
	if !ok {
		// Unaligned options only concern periodic checkpoints: savepoints
		// are always aligned.
		c.Unaligned, c.AlignedCheckpointTimeout = false, 0
	}
	return c, cfg.String(config.ExternalizedCheckpointRetention), ok, nil
}

// newCheckpointing validates the checkpointing of a submitted job: options,
// topology and storage, whose directory it creates and probes. Every job
// gets one, since any job can take savepoints; without an interval there
// are no periodic checkpoints, and a storage that fails the probe is only
// a warning (the job may never take a savepoint). Errors are the user's to
// read.
func newCheckpointing(ctx context.Context, jobID string, g *jobgraph.JobGraph, vertices []*jobgraph.JobVertex, eff *config.Config, log *zap.Logger) (*checkpointing, error) {
	cfg, retention, ok, err := checkpointSettings(eff)
	if err != nil {
		return nil, err
	}
	probe := cfg
	probe.Vertices = coordinatorTopology(vertices)
	if _, err := coordinator.New(probe, time.Now()); err != nil {
		return nil, err
	}
	uri, err := snapshot.StorageURI(eff)
	if err != nil {
		if ok {
			return nil, err
		}
		log.Warn("checkpoint storage misconfigured: savepoints of this job will fail", zap.Error(err))
		uri = "jobmanager"
	}
	// The jobmanager storage's "not for production" warning only matters
	// when the job checkpoints.
	storageLog := log
	if !ok {
		storageLog = zap.NewNop()
	}
	storage, err := snapshot.OpenWithOptions(uri, storageLog, snapshot.StorageOptions(eff))
	if err != nil {
		if ok {
			return nil, err
		}
		// An unsupported scheme fails only the jobs that checkpoint. The
		// savepoints of this one carry their state in the
		// acknowledgements, as the tasks do (package taskexec).
		log.Warn("checkpoint storage not usable: savepoints of this job keep their state in the JobManager's memory until written", zap.Error(err))
		if storage, err = snapshot.Open("jobmanager", zap.NewNop()); err != nil {
			return nil, err
		}
	}
	vctx, cancel := context.WithTimeout(ctx, storageTimeout)
	defer cancel()
	if err := storage.Validate(vctx, jobID); err != nil {
		if ok {
			return nil, err
		}
		log.Warn("checkpoint storage not usable: savepoints of this job will fail", zap.Error(err))
	}
	return &checkpointing{
		jobID: jobID, jobName: g.Name, maxParallelism: g.MaxParallelism, vertices: vertices,
		cfg: cfg, retention: retention, storage: storage, log: log,
		enabled: ok, savepointDir: eff.String(config.SavepointDir),
	}, nil
}

// coordinatorTopology is the topology the coordinator plans with: per
// vertex, its parallelism and the vertices it reads from. It is linear in
// vertices and edges: an all-to-all edge is one entry, whatever the
// parallelism.
func coordinatorTopology(vertices []*jobgraph.JobVertex) []coordinator.Vertex {
	out := make([]coordinator.Vertex, len(vertices))
	for i, v := range vertices {
		out[i].Parallelism = v.Parallelism
		for _, in := range v.Inputs {
			out[i].Inputs = append(out[i].Inputs, coordinator.Input{Vertex: in.FromVertex, Forward: in.Partition == jobgraph.Forward})
		}
	}
	return out
}

// serialize runs f now, or, when called from within another serialized
// function, after it and everything queued before. Scheduler and
// coordinator steps go through it: carrying out one step's actions may
// produce events for the other (a FailJob fails the job, the job leaving
// RUNNING stops the coordinator), and each must see its actions carried out
// in order, never interleaved with a nested step's. Callers hold jm.mu.
func (jm *JobManager) serialize(f func()) {
	jm.queue = append(jm.queue, f)
	if jm.draining {
		return
	}
	jm.draining = true
	for len(jm.queue) > 0 {
		next := jm.queue[0]
		jm.queue[0] = nil
		jm.queue = jm.queue[1:]
		next()
	}
	jm.queue = nil
	jm.draining = false
}

// feed steps a job's coordinator with one event and carries out its
// actions. Callers hold jm.mu.
func (jm *JobManager) feed(cp *checkpointing, ev coordinator.Event) {
	jm.serialize(func() {
		if jm.closing || cp.coord == nil {
			return
		}
		for _, a := range cp.coord.Step(time.Now(), ev) {
			jm.doCheckpoint(cp, a)
		}
		_, _, inProgress := cp.coord.Counts()
		jm.metrics.checkpointsInProgress(cp.jobID, inProgress)
		// The timer loop recomputes the earliest NextTriggerTime.
		select {
		case jm.cpWake <- struct{}{}:
		default:
		}
	})
}

// startCoordinator builds the coordinator of the execution whose tasks were
// just deployed (or adopted), from what the HA store holds as this leader
// knows it: no I/O. Ids go on above every id an earlier coordinator of the
// job used, also one whose counter write failed. It fails the job when
// the store's state was never read, since checkpointing without the id
// counter could reuse ids.
func (jm *JobManager) startCoordinator(cp *checkpointing) {
	fail := func(err error) {
		cp.log.Error("cannot start the checkpoint coordinator", zap.Error(err))
		jm.stepLocked(scheduler.GlobalFailure{JobID: cp.jobID, Cause: "start checkpoint coordinator: " + err.Error()})
	}
	if !cp.storeKnown { // a bug: every way to admit a job sets it
		fail(errors.New("the job's checkpoint id counter and completed checkpoints were not read from the HA store"))
		return
	}
	next := cp.persistedNext
	if cp.coord != nil {
		next = max(next, cp.coord.NextCheckpointID())
	}
	cfg := cp.cfg
	cfg.NextCheckpointID = next
	for _, s := range cp.completed {
		cfg.Restored = append(cfg.Restored, coordinator.CompletedCheckpoint{ID: s.CheckpointID, Path: s.Location, Savepoint: s.Savepoint})
	}
	cfg.Vertices = coordinatorTopology(cp.vertices)
	executions, _ := jm.sched.Executions(cp.jobID)
	cfg.Tasks = make([]coordinator.Task, 0, len(executions))
	for _, ex := range executions {
		cfg.Tasks = append(cfg.Tasks, coordinator.Task{
			ID:      coordinator.TaskID{Vertex: ex.ID.Vertex, Subtask: ex.ID.Subtask},
			Attempt: ex.ID.Attempt, Running: ex.State == scheduler.ExecutionRunning,
		})
	}
	c, err := coordinator.New(cfg, time.Now())
	if err != nil {
		fail(err)
		return
	}
	if cp.coord != nil {
		cp.archive()
	}
	cp.coord, cp.stopped, cp.held = c, false, nil
	jm.activeCheckpoints[cp.jobID] = cp
	cp.log.Info("checkpoint coordinator started", zap.Duration("interval", cfg.Interval), zap.String("mode", string(cfg.Mode)),
		zap.Int64("next_checkpoint_id", next), zap.Int("restored_checkpoints", len(cfg.Restored)))
	select {
	case jm.cpWake <- struct{}{}:
	default:
	}
}

// stopCoordinator ends periodic checkpointing: the execution left RUNNING.
func (jm *JobManager) stopCoordinator(cp *checkpointing) {
	if cp.coord == nil || cp.stopped {
		return
	}
	cp.stopped = true
	delete(jm.activeCheckpoints, cp.jobID)
	jm.feed(cp, coordinator.Stop{})
}

// jobEnded applies the retention policy to the retained checkpoints of a
// job that reached a globally terminal state, as Flink's
// ExternalizedCheckpointRetention (CheckpointProperties): the checkpoints
// are deleted when the job is CANCELED or FINISHED unless the policy is
// RETAIN_ON_CANCELLATION, and kept when it FAILED unless the policy is
// NO_EXTERNALIZED_CHECKPOINTS.
func (jm *JobManager) jobEnded(cp *checkpointing, state scheduler.JobState) {
	if cp.coord == nil {
		return
	}
	var discard bool
	switch state {
	case scheduler.JobCanceled, scheduler.JobFinished:
		discard = cp.retention != retainOnCancellation
	case scheduler.JobFailed:
		discard = cp.retention == noExternalized
	}
	var paths []string
	for _, c := range cp.coord.Retained() {
		if c.Savepoint {
			continue // the user's files
		}
		paths = append(paths, c.Path)
		if discard {
			jm.discard(cp, coordinator.DiscardCheckpoint{CheckpointID: c.ID, Path: c.Path})
		}
	}
	if len(paths) == 0 {
		return
	}
	if discard {
		cp.log.Info("deleting retained checkpoints", zap.String("state", string(state)), zap.String("retention", cp.retention), zap.Strings("paths", paths))
	} else {
		cp.log.Info("retained checkpoints kept", zap.String("state", string(state)), zap.String("retention", cp.retention), zap.Strings("paths", paths))
	}
}

// doCheckpoint carries out one action of a coordinator; it never blocks:
// the HA store and the storage are written on goroutines.
func (jm *JobManager) doCheckpoint(cp *checkpointing, a coordinator.Action) {
	switch a := a.(type) {
	case coordinator.PersistCheckpointID:
		jm.persistCheckpointID(cp)
	case coordinator.TriggerTasks:
		if a.CheckpointID < cp.persistedNext {
			jm.triggerTasks(cp, a)
			return
		}
		cp.held = append(cp.held, heldTrigger{coord: cp.coord, a: a})
		jm.persistCheckpointID(cp)
	case coordinator.WriteMetadata:
		jm.writeMetadata(cp, a)
	case coordinator.NotifyComplete:
		jm.checkpointCompleted(cp, a.CheckpointID)
		for _, t := range a.Tasks {
			jm.sendToTask(cp, t, "notify checkpoint complete", zap.DebugLevel, func(ctx context.Context, c weirpb.TaskExecutorGatewayClient, ex *weirpb.ExecutionAttemptID) error {
				_, err := c.NotifyCheckpointComplete(ctx, &weirpb.NotifyCheckpointRequest{Execution: ex, CheckpointId: a.CheckpointID})
				return err
			}, a.CheckpointID)
		}
	case coordinator.NotifyAborted:
		jm.checkpointFailed(cp, a.CheckpointID)
		for _, t := range a.Tasks {
			jm.sendToTask(cp, t, "notify checkpoint aborted", zap.DebugLevel, func(ctx context.Context, c weirpb.TaskExecutorGatewayClient, ex *weirpb.ExecutionAttemptID) error {
				_, err := c.NotifyCheckpointAborted(ctx, &weirpb.NotifyCheckpointRequest{Execution: ex, CheckpointId: a.CheckpointID})
				return err
			}, a.CheckpointID)
		}
	case coordinator.DiscardCheckpoint:
		jm.discard(cp, a)
	case coordinator.DiscardState:
		jm.discardState(cp, a)
	case coordinator.FailJob:
		cp.log.Error("checkpointing fails the job", zap.String("reason", a.Reason))
		jm.stepLocked(scheduler.GlobalFailure{JobID: cp.jobID, Cause: a.Reason})
	case coordinator.SavepointDone:
		s, _ := cp.stats(a.CheckpointID)
		cp.log.Info("savepoint completed", zap.Int64("checkpoint", a.CheckpointID), zap.Duration("duration", s.Duration),
			zap.Int64("size_bytes", s.StateSize), zap.String("path", a.Path))
		jm.answerSavepoint(a.Request, savepointResult{path: a.Path})
	case coordinator.SavepointFailed:
		cp.log.Warn("savepoint failed", zap.Int64("checkpoint", a.CheckpointID), zap.String("reason", string(a.Reason)), zap.String("message", a.Message))
		jm.answerSavepoint(a.Request, savepointResult{err: savepointError(a)})
	case coordinator.Log:
		cp.log.Debug(a.Message)
	}
}

// triggerTasks sends a trigger whose id the store's counter covers.
func (jm *JobManager) triggerTasks(cp *checkpointing, a coordinator.TriggerTasks) {
	for _, t := range a.Tasks {
		jm.sendToTask(cp, t, "trigger checkpoint", zap.WarnLevel, func(ctx context.Context, c weirpb.TaskExecutorGatewayClient, ex *weirpb.ExecutionAttemptID) error {
			_, err := c.TriggerCheckpoint(ctx, &weirpb.TriggerCheckpointRequest{
				Execution: ex, CheckpointId: a.CheckpointID, TimestampUnixMs: a.Timestamp.UnixMilli(),
				Savepoint: a.Savepoint, Unaligned: a.Unaligned, Drain: a.Drain, Stop: a.Stop,
			})
			return err
		}, a.CheckpointID)
	}
}

// persistCheckpointID writes the store's checkpoint id counter up to the
// running coordinator's next id, on a goroutine, unless a write is in
// flight (its completion starts the next one if a trigger still waits) or
// the counter covers it already. Callers hold jm.mu.
func (jm *JobManager) persistCheckpointID(cp *checkpointing) {
	if cp.persisting || jm.closing || cp.coord == nil || cp.stopped {
		return
	}
	next := cp.coord.NextCheckpointID()
	if next <= cp.persistedNext {
		return
	}
	cp.persisting = true
	jm.wg.Add(1)
	go func() {
		defer jm.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
		err := jm.ha.SetCheckpointIDCounter(ctx, cp.jobID, next)
		cancel()
		jm.mu.Lock()
		defer jm.mu.Unlock()
		jm.serialize(func() { jm.checkpointIDPersisted(cp, next, err) })
	}()
}

// checkpointIDPersisted ends a counter write (up to next, failed with
// err): the held triggers it covers are sent if their checkpoint is still
// pending in the running coordinator; those it should have covered are
// dropped (their checkpoints expire); those asked for meanwhile wait for
// the next write. Callers hold jm.mu.
func (jm *JobManager) checkpointIDPersisted(cp *checkpointing, next int64, err error) {
	cp.persisting = false
	jm.ioIdle.Broadcast() // recordResult waits for the job's writes to end
	if jm.closing {
		return
	}
	if err == nil {
		cp.persistedNext = max(cp.persistedNext, next)
	}
	held := cp.held
	cp.held = nil
	for _, h := range held {
		id := h.a.CheckpointID
		switch {
		case h.coord != cp.coord || cp.stopped || !pending(h.coord, id):
			cp.log.Debug("checkpoint ended before its id was persisted: not triggered", zap.Int64("checkpoint", id))
		case id < cp.persistedNext:
			jm.triggerTasks(cp, h.a)
		case id < next:
			// Aborted at once (not counted, as in Flink): an outage of the
			// store must neither fail the job nor block the next trigger
			// until this one expires.
			cp.log.Error("persist checkpoint id counter: the checkpoint is not triggered",
				zap.Int64("checkpoint", id), zap.Int64("next", next), zap.Error(err))
			jm.feed(cp, coordinator.TriggerFailed{CheckpointID: id, Message: "persist checkpoint id counter: " + err.Error()})
		default:
			cp.held = append(cp.held, h)
		}
	}
	if len(cp.held) > 0 {
		jm.persistCheckpointID(cp)
	}
}

// pending reports whether checkpoint id is in progress in c.
func pending(c *coordinator.Coordinator, id int64) bool {
	for _, s := range c.History() {
		if s.ID == id {
			return s.Status == coordinator.StatusInProgress
		}
	}
	return false
}

// sendToTask queues an RPC to the current attempt of task t on its
// TaskManager's client goroutine, behind its SubmitTask. Failures are only
// logged: a trigger that does not arrive makes the checkpoint expire or be
// declined; a lost notification is subsumed by the next checkpoint's.
func (jm *JobManager) sendToTask(cp *checkpointing, t coordinator.TaskID, what string, lvl zapcore.Level,
	call func(context.Context, weirpb.TaskExecutorGatewayClient, *weirpb.ExecutionAttemptID) error, checkpointID int64) {
	ex, ok := jm.sched.Execution(cp.jobID, t.Vertex, t.Subtask)
	te := jm.executors[ex.TaskManager]
	if !ok || te == nil {
		cp.log.Log(lvl, what+": task is not deployed", zap.Int64("checkpoint", checkpointID), zap.Int("vertex", t.Vertex), zap.Int("subtask", t.Subtask))
		return
	}
	id := ex.ID
	te.enqueue(func(ctx context.Context) {
		if err := call(ctx, te.client, id.Proto()); err != nil && ctx.Err() == nil {
			cp.log.Log(lvl, what+" failed", zap.Int64("checkpoint", checkpointID), zap.String("taskmanager", te.id),
				zap.Int("vertex", id.Vertex), zap.Int("subtask", id.Subtask), zap.Int("attempt", id.Attempt), zap.Error(err))
		}
	})
}

// writeMetadata assembles the checkpoint's _metadata under the lock (it
// only decodes the acknowledgements) and writes it on a goroutine of its
// own: storage I/O never runs on the JobManager's lock. On success the
// checkpoint is added to the HA store before the coordinator hears of it;
// any failure (a full disk, a permission error, the HA store) fails only
// this checkpoint, with the cause.
func (jm *JobManager) writeMetadata(cp *checkpointing, a coordinator.WriteMetadata) {
	written := func(path string, err error) {
		jm.feed(cp, coordinator.MetadataWritten{CheckpointID: a.CheckpointID, Path: path, Err: err})
	}
	md, err := cp.metadata(a)
	if err != nil {
		written("", err)
		return
	}
	if a.Savepoint {
		jm.writeSavepoint(cp, a, md, written)
		return
	}
	loc, err := cp.storage.CheckpointLocation(cp.jobID, a.CheckpointID)
	if err != nil {
		written("", err)
		return
	}
	jm.wg.Add(1) // under jm.mu and not closing (feed checked): Close waits for it
	cp.io++
	go func() {
		defer jm.wg.Done()
		// Within the checkpoint's deadline: a storage that keeps failing
		// fails the checkpoint before the coordinator expires it.
		ctx, cancel := context.WithDeadline(context.Background(), a.Timestamp.Add(cp.cfg.Timeout))
		_, err := loc.WriteMetadata(ctx, md)
		cancel()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
			err = jm.ha.AddCompletedCheckpoint(ctx, cp.jobID, ha.CompletedCheckpoint{CheckpointID: a.CheckpointID, Location: loc.Path()})
			cancel()
			if err != nil {
				// Nothing refers to the written checkpoint: remove it here,
				// since the coordinator discards only what it completed.
				err = fmt.Errorf("record checkpoint in the HA store: %w", err)
				dctx, cancel := context.WithTimeout(context.Background(), storageTimeout)
				derr := loc.Dispose(dctx)
				cancel()
				if derr != nil {
					cp.log.Warn("dispose checkpoint", zap.Int64("checkpoint", a.CheckpointID), zap.Error(derr))
				}
			}
		}
		jm.mu.Lock()
		defer jm.mu.Unlock()
		if err == nil {
			cp.addCompleted(ha.CompletedCheckpoint{CheckpointID: a.CheckpointID, Location: loc.Path()})
		}
		written(loc.Path(), err) // may start a discard: io stays > 0
		jm.ioDone(cp)
	}()
}

// metadata builds the checkpoint's Metadata: every operator of the job,
// every subtask, with the state objects its task acknowledged (a chain's
// acknowledgement holds the objects of each of its operators).
func (cp *checkpointing) metadata(a coordinator.WriteMetadata) (*snapshot.Metadata, error) {
	md := &snapshot.Metadata{
		JobID: cp.jobID, JobName: cp.jobName, CheckpointID: a.CheckpointID,
		TimestampMs: a.Timestamp.UnixMilli(), Savepoint: a.Savepoint, MaxParallelism: cp.maxParallelism,
	}
	for _, v := range cp.vertices {
		states := make([]*snapshot.TaskState, v.Parallelism)
		finished := make([]bool, v.Parallelism)
		for st := range states {
			id := coordinator.TaskID{Vertex: v.Index, Subtask: st}
			ts, ok := a.Tasks[id]
			if !ok {
				return nil, fmt.Errorf("checkpoint %d has no state of task %s subtask %d", a.CheckpointID, vertexName(v), st)
			}
			finished[st] = ts.Finished
			s, err := decodeTaskState(v, ts.State)
			if err != nil {
				return nil, fmt.Errorf("task %s subtask %d: %w", vertexName(v), st, err)
			}
			states[st] = s
		}
		for _, op := range v.Operators {
			os := snapshot.OperatorState{ID: op.ID, Type: op.Type, Parallelism: v.Parallelism}
			for st, s := range states {
				os.Subtasks = append(os.Subtasks, snapshot.SubtaskState{Subtask: st, Finished: finished[st], State: s.Operators[op.ID]})
			}
			md.Operators = append(md.Operators, os)
		}
	}
	return md, nil
}

// decodeTaskState decodes an acknowledgement's state and checks that it
// names only operators of the task's chain.
func decodeTaskState(v *jobgraph.JobVertex, b []byte) (*snapshot.TaskState, error) {
	s, err := snapshot.DecodeTaskState(b)
	if err != nil {
		return nil, err
	}
	for id := range s.Operators {
		found := false
		for _, op := range v.Operators {
			found = found || op.ID == id
		}
		if !found {
			return nil, fmt.Errorf("state of operator %q, which is not in the chain %s", id, vertexName(v))
		}
	}
	return s, nil
}

func vertexName(v *jobgraph.JobVertex) string {
	ids := make([]string, len(v.Operators))
	for i, op := range v.Operators {
		ids[i] = op.ID
	}
	return strings.Join(ids, " -> ")
}

// discard forgets a checkpoint in the HA store and deletes its files, on a
// goroutine of its own. The HA entry goes first, so that the store never
// points at deleted files. A failed savepoint is never in the HA store: its
// files are the chk-<id> directory its tasks wrote into (no Path), or the
// savepoint directory written after it had been aborted (Path).
func (jm *JobManager) discard(cp *checkpointing, a coordinator.DiscardCheckpoint) {
	var loc snapshot.Location
	var err error
	if a.Path != "" {
		loc, err = cp.storage.ResolveLocation(a.Path)
	} else {
		loc, err = cp.storage.CheckpointLocation(cp.jobID, a.CheckpointID)
	}
	if err != nil {
		cp.log.Warn("discard checkpoint", zap.Int64("checkpoint", a.CheckpointID), zap.Error(err))
		return
	}
	// The files of what the tasks acknowledged are in the checkpoint's
	// location (also for a savepoint), or, with entropy injection, where
	// only their handles say.
	acked, chk := ackedState(cp, a)
	jm.goDiscard(cp, func() {
		if !a.Savepoint {
			ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
			err := jm.ha.RemoveCompletedCheckpoint(ctx, cp.jobID, a.CheckpointID)
			cancel()
			if err != nil {
				cp.log.Warn("remove checkpoint from the HA store; its files are kept", zap.Int64("checkpoint", a.CheckpointID), zap.Error(err))
				return
			}
			jm.mu.Lock()
			cp.removeCompleted(a.CheckpointID)
			jm.mu.Unlock()
		}
		ctx, cancel := context.WithTimeout(context.Background(), storageTimeout)
		defer cancel()
		err := loc.Dispose(ctx)
		if err == nil && len(acked) > 0 {
			err = snapshot.DisposeState(ctx, chk, acked)
		}
		if err != nil {
			cp.log.Warn("discard checkpoint", zap.Int64("checkpoint", a.CheckpointID), zap.Error(err))
			return
		}
		cp.log.Debug("checkpoint discarded", zap.Int64("checkpoint", a.CheckpointID), zap.String("path", loc.Path()), zap.String("reason", string(a.Reason)))
	})
}

// ackedState decodes the acknowledged states of an aborted checkpoint and
// returns their objects and the location the tasks wrote them to.
func ackedState(cp *checkpointing, a coordinator.DiscardCheckpoint) ([]snapshot.StateObject, string) {
	if len(a.States) == 0 {
		return nil, ""
	}
	loc, err := cp.storage.CheckpointLocation(cp.jobID, a.CheckpointID)
	if err != nil {
		return nil, ""
	}
	var objs []snapshot.StateObject
	for _, s := range a.States {
		ts, err := snapshot.DecodeTaskState(s.State)
		if err != nil {
			continue // a malformed state names nothing to delete
		}
		for _, o := range ts.Operators {
			objs = append(objs, o...)
		}
	}
	return objs, loc.Path()
}

// discardState deletes, on a goroutine of its own, the state files of an
// acknowledgement that no checkpoint references (it came late), and, once
// the checkpoint has ended, its location again: a task that was still
// writing when the checkpoint was disposed of may have recreated it.
// Callers hold jm.mu.
func (jm *JobManager) discardState(cp *checkpointing, a coordinator.DiscardState) {
	loc, err := cp.storage.CheckpointLocation(cp.jobID, a.CheckpointID)
	var ts *snapshot.TaskState
	if err == nil {
		ts, err = snapshot.DecodeTaskState(a.State)
	}
	if err != nil {
		cp.log.Warn("discard the state of a late acknowledgement", zap.Int64("checkpoint", a.CheckpointID), zap.Error(err))
		return
	}
	var objs []snapshot.StateObject
	for _, o := range ts.Operators {
		objs = append(objs, o...)
	}
	jm.goDiscard(cp, func() {
		ctx, cancel := context.WithTimeout(context.Background(), storageTimeout)
		defer cancel()
		err := snapshot.DisposeState(ctx, loc.Path(), objs)
		if err == nil && a.Ended {
			err = loc.Dispose(ctx)
		}
		if err != nil {
			cp.log.Warn("discard the state of a late acknowledgement", zap.Int64("checkpoint", a.CheckpointID), zap.Error(err))
			return
		}
		cp.log.Debug("state of a late acknowledgement discarded", zap.Int64("checkpoint", a.CheckpointID),
			zap.Int("vertex", a.Task.Vertex), zap.Int("subtask", a.Task.Subtask))
	})
}

// goDiscard runs fn, which deletes state of cp, on a goroutine of its own:
// storage I/O never runs on jm.mu. Close waits for it, and a restore waits
// until cp has no I/O left (ioDone). Nothing starts once the JobManager is
// closing. Callers hold jm.mu.
func (jm *JobManager) goDiscard(cp *checkpointing, fn func()) {
	if jm.closing {
		return
	}
	jm.wg.Add(1)
	cp.io++
	go func() {
		defer jm.wg.Done()
		defer func() {
			jm.mu.Lock()
			defer jm.mu.Unlock()
			jm.ioDone(cp)
		}()
		fn()
	}()
}

// ioDone ends one checkpoint I/O goroutine of cp. Callers hold jm.mu.
func (jm *JobManager) ioDone(cp *checkpointing) {
	cp.io--
	if cp.io == 0 {
		jm.ioIdle.Broadcast()
	}
}

// loadRestoreState answers the scheduler's LoadRestoreState on a goroutine
// (never on jm.mu): it records the restart's attempt in the HA store (a
// later leader deploys above it), and, once the I/O of the stopped
// coordinator has ended, reads the _metadata of the newest completed
// checkpoint the store holds (as this leader knows it: the one the next
// coordinator starts with). A job without checkpointing restarts from
// scratch. Callers hold jm.mu.
func (jm *JobManager) loadRestoreState(a scheduler.LoadRestoreState) {
	ev := scheduler.RestoreLoaded{JobID: a.JobID, Request: a.Request}
	cp := jm.checkpoints[a.JobID]
	if jm.closing {
		return
	}
	jm.wg.Add(1)
	go func() {
		defer jm.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
		err := jm.ha.SetJobAttempt(ctx, a.JobID, a.NextAttempt)
		cancel()
		if err != nil {
			ev.Err = fmt.Errorf("record attempt %d in the HA store: %w", a.NextAttempt, err)
		}
		jm.mu.Lock()
		for cp != nil && cp.io > 0 && !jm.closing {
			jm.ioIdle.Wait()
		}
		closing := jm.closing
		var latest *ha.CompletedCheckpoint
		if cp != nil {
			latest = cp.latestCompleted()
		}
		jm.mu.Unlock()
		if closing {
			return
		}
		if latest != nil && ev.Err == nil {
			ev.Checkpoint, ev.Err = loadCompleted(*latest)
		}
		jm.mu.Lock()
		defer jm.mu.Unlock()
		jm.stepLocked(ev)
	}()
}

// latestCheckpoint reads the _metadata of the job's newest completed
// checkpoint in the HA store; nil when there is none. Never on jm.mu.
func (jm *JobManager) latestCheckpoint(jobID string) (*snapshot.Metadata, error) {
	ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
	defer cancel()
	stored, err := jm.ha.CompletedCheckpoints(ctx, jobID)
	if err != nil {
		return nil, fmt.Errorf("read completed checkpoints from the HA store: %w", err)
	}
	if len(stored) == 0 {
		return nil, nil
	}
	return loadCompleted(stored[len(stored)-1])
}

// loadCompleted reads the _metadata of a completed checkpoint and checks
// that it is that checkpoint. Never on jm.mu.
func loadCompleted(latest ha.CompletedCheckpoint) (*snapshot.Metadata, error) {
	lctx, lcancel := context.WithTimeout(context.Background(), storageTimeout)
	defer lcancel()
	md, err := snapshot.LoadMetadata(lctx, latest.Location)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint %d: %w", latest.CheckpointID, err)
	}
	if md.CheckpointID != latest.CheckpointID {
		return nil, fmt.Errorf("read checkpoint %d: %s holds checkpoint %d", latest.CheckpointID, latest.Location, md.CheckpointID)
	}
	return md, nil
}

// archive keeps what the coordinator of the ending execution recorded
// before a new one replaces it.
func (cp *checkpointing) archive() {
	cp.pastHistory = cp.history()
	completed, failed, _ := cp.coord.Counts()
	cp.pastCompleted += completed
	cp.pastFailed += failed
}

// history is the job's checkpoint history across its executions, newest
// first, at most coordinator.HistorySize entries.
func (cp *checkpointing) history() []coordinator.CheckpointStats {
	if cp.coord == nil {
		return nil
	}
	h := append(cp.coord.History(), cp.pastHistory...)
	if len(h) > coordinator.HistorySize {
		h = h[:coordinator.HistorySize]
	}
	return h
}

// stats returns the statistics of one checkpoint from the coordinator's
// history.
func (cp *checkpointing) stats(id int64) (coordinator.CheckpointStats, bool) {
	for _, s := range cp.coord.History() {
		if s.ID == id {
			return s, true
		}
	}
	return coordinator.CheckpointStats{}, false
}

// checkpointCompleted and checkpointFailed count and log checkpoints;
// savepoints are logged when the coordinator answers them.
func (jm *JobManager) checkpointCompleted(cp *checkpointing, id int64) {
	s, _ := cp.stats(id)
	if s.Savepoint {
		return
	}
	jm.metrics.checkpointCompleted(cp.jobID, s.Duration, s.StateSize, time.Now())
	cp.log.Info("checkpoint completed", zap.Int64("checkpoint", id), zap.Duration("duration", s.Duration),
		zap.Int64("size_bytes", s.StateSize), zap.String("path", s.Path))
}

func (jm *JobManager) checkpointFailed(cp *checkpointing, id int64) {
	s, _ := cp.stats(id)
	if s.Savepoint {
		return
	}
	jm.metrics.checkpointFailed(cp.jobID)
	cp.log.Warn("checkpoint failed", zap.Int64("checkpoint", id), zap.String("reason", string(s.FailureReason)),
		zap.String("message", s.FailureMessage), zap.Duration("duration", s.Duration))
}

// checkpointTimerLoop is the one timer of every coordinator: it sleeps
// until the earliest NextTriggerTime of the running coordinators and sends
// Tick to those that are due. A coordinator step wakes it to recompute.
func (jm *JobManager) checkpointTimerLoop() {
	defer jm.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		jm.mu.Lock()
		var next time.Time
		for _, cp := range jm.activeCheckpoints {
			if t := cp.coord.NextTriggerTime(); !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		jm.mu.Unlock()
		var fire <-chan time.Time
		if !next.IsZero() {
			timer.Reset(time.Until(next))
			fire = timer.C
		}
		select {
		case <-jm.stopping:
			return
		case <-jm.cpWake:
			timer.Stop()
		case <-fire:
			jm.mu.Lock()
			now := time.Now()
			ids := make([]string, 0, len(jm.activeCheckpoints))
			for id := range jm.activeCheckpoints {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			for _, id := range ids {
				cp := jm.activeCheckpoints[id]
				if cp == nil {
					continue // stopped by an earlier Tick's FailJob
				}
				if t := cp.coord.NextTriggerTime(); !t.IsZero() && !now.Before(t) {
					jm.feed(cp, coordinator.Tick{})
				}
			}
			jm.mu.Unlock()
		}
	}
}

// declineFailureReasons is the one table from the wire's decline reasons
// to the coordinator's failure reasons.
var declineFailureReasons = map[weirpb.DeclineReason]coordinator.FailureReason{
	weirpb.DeclineReason_DECLINE_REASON_DECLINED:                coordinator.ReasonDeclined,
	weirpb.DeclineReason_DECLINE_REASON_ASYNC_EXCEPTION:         coordinator.ReasonAsyncException,
	weirpb.DeclineReason_DECLINE_REASON_TASK_NOT_READY:          coordinator.ReasonTaskNotReady,
	weirpb.DeclineReason_DECLINE_REASON_TASK_CLOSING:            coordinator.ReasonTaskClosing,
	weirpb.DeclineReason_DECLINE_REASON_SUBSUMED:                coordinator.ReasonDeclinedSubsumed,
	weirpb.DeclineReason_DECLINE_REASON_ON_CANCELLATION_BARRIER: coordinator.ReasonDeclinedOnCancellationBarrier,
}

// declineFailureReason maps a task's decline reason to the coordinator's.
// A reason this JobManager does not know (UNSPECIFIED, or a number added by
// a newer TaskManager) is a plain CHECKPOINT_DECLINED, which counts toward
// tolerable failures: a decline is never lost nor made harmless by its
// code. msg is the task's message, already clipped.
func declineFailureReason(code weirpb.DeclineReason, msg string) (coordinator.FailureReason, string) {
	if r, ok := declineFailureReasons[code]; ok {
		return r, msg
	}
	if code == weirpb.DeclineReason_DECLINE_REASON_UNSPECIFIED {
		return coordinator.ReasonDeclined, msg
	}
	return coordinator.ReasonDeclined, fmt.Sprintf("unknown decline reason %d: %s", int32(code), msg)
}

// checkpointInfo is the API's view of one checkpoint's statistics.
func checkpointInfo(s coordinator.CheckpointStats) *weirpb.CheckpointInfo {
	info := &weirpb.CheckpointInfo{
		Id: s.ID, Status: string(s.Status), TriggerTimeUnixMs: s.TriggerTime.UnixMilli(),
		DurationMs: s.Duration.Milliseconds(), SizeBytes: s.StateSize, AlignmentMs: s.MaxAlignmentMs,
		Path: s.Path, Unaligned: s.Unaligned, PersistedInFlightBytes: s.PersistedInFlightBytes, Savepoint: s.Savepoint,
	}
	if s.FailureReason != "" {
		info.Failure = string(s.FailureReason) + ": " + s.FailureMessage
	}
	return info
}

// checkpointStats is the summary in JobDetails.
func (cp *checkpointing) checkpointStats() *weirpb.CheckpointStats {
	out := &weirpb.CheckpointStats{}
	if cp == nil || cp.coord == nil {
		return out
	}
	completed, failed, inProgress := cp.coord.Counts()
	out.Completed = int64(completed + cp.pastCompleted)
	out.Failed = int64(failed + cp.pastFailed)
	out.InProgress = int64(inProgress)
	if l := cp.coord.Latest(); l != nil {
		out.Latest = &weirpb.CheckpointInfo{Id: l.ID, Status: string(coordinator.StatusCompleted), Path: l.Path, SizeBytes: l.StateSize}
		if !l.Timestamp.IsZero() && !l.CompletionTime.IsZero() {
			out.Latest.TriggerTimeUnixMs = l.Timestamp.UnixMilli()
			out.Latest.DurationMs = l.CompletionTime.Sub(l.Timestamp).Milliseconds()
		} else {
			// Restored from the HA store after a restart: the store has no
			// times or size, the history of the execution that took it has.
			for _, s := range cp.pastHistory {
				if s.ID == l.ID && s.Status == coordinator.StatusCompleted {
					out.Latest.TriggerTimeUnixMs, out.Latest.DurationMs = s.TriggerTime.UnixMilli(), s.Duration.Milliseconds()
					if out.Latest.SizeBytes == 0 {
						out.Latest.SizeBytes = s.StateSize
					}
					break
				}
			}
		}
	}
	return out
}
