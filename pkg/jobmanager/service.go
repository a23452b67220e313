package jobmanager

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/coordinator"
	"github.com/weirstream/weir/pkg/ha"
	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/restart"
	"github.com/weirstream/weir/pkg/scheduler"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/proto/weirpb"

	// The built-in operator types, so that job files are validated
	// against them at submission.
	_ "github.com/weirstream/weir/pkg/builtin"
)

// jobService implements the public API (weirpb.JobService).
type jobService struct {
	weirpb.UnimplementedJobServiceServer
	jm *JobManager
}

func (s *jobService) SubmitJob(ctx context.Context, req *weirpb.SubmitJobRequest) (*weirpb.SubmitJobResponse, error) {
	jm := s.jm
	if err := checkSubmitLimits(req); err != nil {
		return nil, err
	}
	jobID := NewJobID()
	pj, err := jm.prepareJob(ctx, jobID, req.JobSpec, req.FileName)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	// The savepoint to start from is read and matched before anything is
	// stored. The read is I/O: never under jm.mu.
	var restore *snapshot.Metadata
	var dropped []string
	if req.FromSavepoint != "" {
		if err = jm.checkAllowedPointer(req.FromSavepoint); err != nil {
			err = fmt.Errorf("savepoint to start from: %w", err)
		} else if restore, err = loadSavepoint(ctx, req.FromSavepoint); err == nil {
			dropped, err = matchSavepoint(restore, pj.graph.MaxParallelism, pj.vertices, req.AllowNonRestoredState)
		}
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	log := pj.log
	if err := jm.ha.PutJobGraph(ctx, ha.JobGraphRecord{JobID: jobID, Name: pj.graph.Name, FileName: req.FileName, Spec: req.JobSpec}); err != nil {
		log.Error("store job graph", zap.Error(err))
		return nil, status.Errorf(codes.Unavailable, "store job graph: %v", err)
	}
	// What the store holds for the new job, for its coordinators to start
	// from without reading it (checkpointing.go): nothing, or the
	// savepoint it starts from.
	next, completed := int64(1), []ha.CompletedCheckpoint(nil)
	if restore != nil {
		initial, err := jm.storeInitialRestore(ctx, jobID, restore)
		if err != nil {
			log.Error("store the savepoint to start from", zap.Error(err))
			if rerr := jm.ha.RemoveJob(ctx, jobID); rerr != nil {
				log.Warn("remove job from HA store", zap.Error(rerr))
			}
			return nil, status.Errorf(codes.Unavailable, "store the savepoint to start from: %v", err)
		}
		next, completed = restore.CheckpointID+1, []ha.CompletedCheckpoint{initial}
		log.Info("job starts from a savepoint", zap.String("path", restore.Dir), zap.Int64("checkpoint", restore.CheckpointID),
			zap.Bool("savepoint", restore.Savepoint), zap.String("from_job", restore.JobID))
		if len(dropped) > 0 {
			log.Warn("state of operators the job does not have is not restored (allow-non-restored-state)", zap.Strings("operators", dropped))
		}
	}
	log.Info("job submitted", zap.String("name", pj.graph.Name), zap.String("file", req.FileName),
		zap.Int("vertices", len(pj.vertices)), zap.Int("slots", pj.graph.MaxParallelismOfVertices()))
	for _, w := range pj.warnings {
		log.Warn("job file warning", zap.String("warning", w))
	}
	if pj.cp != nil {
		pj.cp.setStored(next, completed)
	}
	jm.admit(pj, restore, 0, "")
	return &weirpb.SubmitJobResponse{JobId: jobID, Warnings: pj.warnings}, nil
}

// maxWarnings bounds the warnings of one submission that are logged and sent
// back: a config: of thousands of unknown keys must not flood the log or
// outgrow the client's message limit.
const maxWarnings = 100

// clipWarnings keeps the first maxWarnings warnings and says how many more
// there were.
func clipWarnings(ws []string) []string {
	if len(ws) <= maxWarnings {
		return ws
	}
	return append(ws[:maxWarnings:maxWarnings], fmt.Sprintf("%d more warnings not shown", len(ws)-maxWarnings))
}

// preparedJob is a parsed job with everything the scheduler needs, not yet
// admitted.
type preparedJob struct {
	id       string
	graph    *jobgraph.JobGraph
	vertices []*jobgraph.JobVertex
	eff      *config.Config
	strategy restart.Strategy
	cp       *checkpointing // nil without checkpointing
	warnings []string
	log      *zap.Logger
}

// prepareJob parses a job file and builds its checkpointing (which probes
// the checkpoint directory: I/O, never under jm.mu). Its errors are the
// user's: they name the file, the key or the operator.
func (jm *JobManager) prepareJob(ctx context.Context, jobID string, spec []byte, fileName string) (*preparedJob, error) {
	g, warnings, err := jobgraph.ParseWithOptions(spec, fileName, jobgraph.ParseOptions{
		DefaultParallelism:    jm.cfg.Int(config.Parallelism),
		DefaultMaxParallelism: jm.cfg.Int(config.MaxParallelism),
	})
	if err != nil {
		return nil, err
	}
	// The job's config: section on top of the cluster's: what its tasks run with.
	// Its warnings are those of the same keys that the parser already
	// reported, naming the file: dropped, so each is said once.
	eff, _, err := jm.cfg.WithJob(g.Config)
	if err != nil {
		var multi interface{ Unwrap() []error }
		if errors.As(err, &multi) && len(multi.Unwrap()) > 0 {
			err = multi.Unwrap()[0] // one error at a time, as in the job file
		}
		msg := "config: " + err.Error()
		if fileName != "" {
			msg = fileName + ": " + msg
		}
		return nil, errors.New(msg)
	}
	// One strategy for the job's whole life: failures count across
	// restarts. Checkpointing is enabled exactly when its interval is set.
	strategy, err := restart.FromConfig(eff, eff.IsSet(config.CheckpointingInterval), nil)
	if err != nil {
		return nil, err
	}
	vertices := g.Vertices()
	log := jm.log.With(zap.String("job", jobID))
	if err := checkAllowedPaths(jm.cfg, eff, vertices); err != nil {
		if fileName != "" {
			err = fmt.Errorf("%s: %w", fileName, err)
		}
		return nil, err
	}
	// Checkpointing last: it creates and probes the checkpoint directory.
	cp, err := newCheckpointing(ctx, jobID, g, vertices, eff, log)
	if err != nil {
		return nil, fmt.Errorf("checkpointing: %w", err)
	}
	return &preparedJob{id: jobID, graph: g, vertices: vertices, eff: eff, strategy: strategy, cp: cp,
		warnings: clipWarnings(warnings), log: log}, nil
}

// admit hands a prepared job to the scheduler, which may deploy it at once.
func (jm *JobManager) admit(pj *preparedJob, restore *snapshot.Metadata, firstAttempt int, failover string) {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	// Before the scheduler sees the job: it may deploy it at once.
	if pj.cp != nil {
		jm.checkpoints[pj.id] = pj.cp
	}
	jm.stepLocked(pj.submitted(restore, firstAttempt, failover))
}

// submitted is the scheduler's event for the job.
func (pj *preparedJob) submitted(restore *snapshot.Metadata, firstAttempt int, failover string) scheduler.JobSubmitted {
	return scheduler.JobSubmitted{
		JobID:              pj.id,
		Name:               pj.graph.Name,
		MaxParallelism:     pj.graph.MaxParallelism,
		Vertices:           pj.vertices,
		Config:             pj.eff.ToMap(),
		SlotRequestTimeout: pj.eff.Duration(config.SlotRequestTimeout),
		RestartStrategy:    pj.strategy,
		Restore:            restore,
		FirstAttempt:       firstAttempt,
		Failover:           failover,
	}
}

func (s *jobService) ListJobs(context.Context, *weirpb.ListJobsRequest) (*weirpb.ListJobsResponse, error) {
	s.jm.mu.Lock()
	defer s.jm.mu.Unlock()
	return &weirpb.ListJobsResponse{Jobs: s.jm.sched.Jobs()}, nil
}

func (s *jobService) GetJob(_ context.Context, req *weirpb.GetJobRequest) (*weirpb.JobDetails, error) {
	s.jm.mu.Lock()
	defer s.jm.mu.Unlock()
	d, ok := s.jm.sched.JobDetails(req.JobId)
	if !ok {
		return nil, errJobNotFound(req.JobId)
	}
	d.Checkpoints = s.jm.checkpoints[req.JobId].checkpointStats()
	return d, nil
}

func (s *jobService) CancelJob(_ context.Context, req *weirpb.CancelJobRequest) (*weirpb.CancelJobResponse, error) {
	jm := s.jm
	jm.mu.Lock()
	defer jm.mu.Unlock()
	st, ok := jm.sched.JobState(req.JobId)
	switch {
	case !ok:
		return nil, errJobNotFound(req.JobId)
	case st == scheduler.JobFinished || st == scheduler.JobFailed:
		return nil, status.Errorf(codes.FailedPrecondition, "job %s is already %s", req.JobId, st)
	}
	jm.log.Info("cancel requested", zap.String("job", req.JobId), zap.String("state", string(st)))
	jm.stepLocked(scheduler.CancelRequested{JobID: req.JobId})
	return &weirpb.CancelJobResponse{}, nil
}

func (s *jobService) ListTaskManagers(context.Context, *weirpb.ListTaskManagersRequest) (*weirpb.ListTaskManagersResponse, error) {
	s.jm.mu.Lock()
	defer s.jm.mu.Unlock()
	return &weirpb.ListTaskManagersResponse{Taskmanagers: s.jm.sched.TaskManagers()}, nil
}

// ListCheckpoints returns the job's recent checkpoints, newest first; none
// for a job without checkpointing or not deployed yet. With a checkpoint
// id, it returns that checkpoint alone with its subtasks (Flink's
// checkpoint details), NotFound if it is not among the recent ones.
func (s *jobService) ListCheckpoints(_ context.Context, req *weirpb.ListCheckpointsRequest) (*weirpb.ListCheckpointsResponse, error) {
	s.jm.mu.Lock()
	defer s.jm.mu.Unlock()
	if _, ok := s.jm.sched.JobState(req.JobId); !ok {
		return nil, errJobNotFound(req.JobId)
	}
	resp := &weirpb.ListCheckpointsResponse{}
	cp := s.jm.checkpoints[req.JobId]
	if req.CheckpointId != 0 {
		if cp != nil {
			for _, st := range cp.history() {
				if st.ID == req.CheckpointId {
					resp.Checkpoints = append(resp.Checkpoints, cp.checkpointDetails(st))
					return resp, nil
				}
			}
		}
		return nil, status.Errorf(codes.NotFound, "checkpoint %d of job %s is not among its last %d checkpoints",
			req.CheckpointId, req.JobId, coordinator.HistorySize)
	}
	if cp != nil {
		for _, st := range cp.history() {
			resp.Checkpoints = append(resp.Checkpoints, checkpointInfo(st))
		}
	}
	return resp, nil
}

// TriggerSavepoint takes a savepoint of a RUNNING job and answers its
// path once it is complete. A failed savepoint leaves the job running.
func (s *jobService) TriggerSavepoint(ctx context.Context, req *weirpb.TriggerSavepointRequest) (*weirpb.TriggerSavepointResponse, error) {
	path, err := s.jm.savepoint(ctx, req.JobId, req.TargetDirectory, false, false)
	if err != nil {
		return nil, err
	}
	return &weirpb.TriggerSavepointResponse{Path: path}, nil
}

// StopJob stops a RUNNING job with a savepoint (Flink's stop-with-savepoint)
// and answers the savepoint's path once it is complete; the tasks then
// finish and the job ends FINISHED. If the savepoint fails, the job keeps
// running (a task declining it fails the job over, as in Flink).
func (s *jobService) StopJob(ctx context.Context, req *weirpb.StopJobRequest) (*weirpb.StopJobResponse, error) {
	path, err := s.jm.savepoint(ctx, req.JobId, req.TargetDirectory, true, req.Drain)
	if err != nil {
		return nil, err
	}
	return &weirpb.StopJobResponse{Path: path}, nil
}

// DisposeSavepoint deletes exactly one savepoint; anything else (a
// checkpoint, a directory without _metadata) is refused and left alone.
func (s *jobService) DisposeSavepoint(ctx context.Context, req *weirpb.DisposeSavepointRequest) (*weirpb.DisposeSavepointResponse, error) {
	if req.Path == "" {
		return nil, status.Error(codes.InvalidArgument, "dispose savepoint: no path given")
	}
	if err := s.jm.checkAllowedPointer(req.Path); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "dispose savepoint: %v", err)
	}
	if err := snapshot.DisposeSavepoint(ctx, req.Path); err != nil {
		code := codes.FailedPrecondition
		if errors.Is(err, snapshot.ErrNotSnapshot) {
			code = codes.InvalidArgument
		}
		return nil, status.Error(code, err.Error())
	}
	s.jm.log.Info("savepoint disposed", zap.String("path", req.Path))
	return &weirpb.DisposeSavepointResponse{}, nil
}

// storeInitialRestore records in the HA store what a job started from a
// savepoint restores from until its first checkpoint completes: the
// savepoint as its first completed checkpoint (flagged Savepoint, so its
// files are never deleted), and the checkpoint id counter at the
// savepoint's id + 1, as Flink. It returns the checkpoint recorded.
func (jm *JobManager) storeInitialRestore(ctx context.Context, jobID string, md *snapshot.Metadata) (ha.CompletedCheckpoint, error) {
	c := ha.CompletedCheckpoint{CheckpointID: md.CheckpointID, Location: md.Dir, Savepoint: true}
	if err := jm.ha.SetCheckpointIDCounter(ctx, jobID, md.CheckpointID+1); err != nil {
		return c, err
	}
	return c, jm.ha.AddCompletedCheckpoint(ctx, jobID, c)
}

// checkSubmitLimits refuses a submission beyond the documented limits
// before anything is parsed: the job file at most config.MaxJobFileSize,
// its name and the savepoint path at most config.MaxPathLength (they are
// echoed in errors and logs).
func checkSubmitLimits(req *weirpb.SubmitJobRequest) error {
	if n := len(req.FileName); n > config.MaxPathLength {
		return status.Errorf(codes.InvalidArgument, "job file name is %d bytes: the limit is %d bytes", n, config.MaxPathLength)
	}
	name := req.FileName
	if name == "" {
		name = "the job file"
	}
	if n := len(req.JobSpec); n > config.MaxJobFileSize {
		return status.Errorf(codes.InvalidArgument, "%s is %d bytes: the limit for job files is %d bytes (1 MiB)", name, n, config.MaxJobFileSize)
	}
	if n := len(req.FromSavepoint); n > config.MaxPathLength {
		return status.Errorf(codes.InvalidArgument, "from_savepoint is %d bytes: the limit is %d bytes", n, config.MaxPathLength)
	}
	return nil
}

func errJobNotFound(id string) error {
	return status.Error(codes.NotFound, fmt.Sprintf("job %s not found", id))
}
