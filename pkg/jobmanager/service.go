package jobmanager

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/ha"
	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/restart"
	"github.com/weirstream/weir/pkg/scheduler"
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
	if !jm.ha.IsLeader() {
		return nil, status.Error(codes.Unavailable, "this JobManager is not the leader")
	}
	if req.FromSavepoint != "" {
		return nil, status.Error(codes.Unimplemented, "restoring a job from a savepoint is not supported yet")
	}
	g, warnings, err := jobgraph.ParseWithOptions(req.JobSpec, req.FileName, jobgraph.ParseOptions{
		DefaultParallelism: jm.cfg.Int(config.Parallelism),
	})
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	// The job's config: section on top of the cluster's: what its tasks run with.
	eff, warns, err := jm.cfg.With(g.Config)
	if err != nil {
		var multi interface{ Unwrap() []error }
		if errors.As(err, &multi) && len(multi.Unwrap()) > 0 {
			err = multi.Unwrap()[0] // one error at a time, as in the job file
		}
		msg := "config: " + err.Error()
		if req.FileName != "" {
			msg = req.FileName + ": " + msg
		}
		return nil, status.Error(codes.InvalidArgument, msg)
	}
	warnings = append(warnings, warns...)
	vertices := g.Vertices()

	// One strategy for the job's whole life: failures count across
	// restarts. Checkpointing is enabled exactly when its interval is set.
	strategy, err := restart.FromConfig(eff, eff.IsSet(config.CheckpointingInterval), nil)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}

	jobID := NewJobID()
	log := jm.log.With(zap.String("job", jobID))
	// Checkpointing last: it creates and probes the checkpoint directory.
	cp, err := newCheckpointing(jobID, g, vertices, eff, log)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "checkpointing: "+err.Error())
	}
	if err := jm.ha.PutJobGraph(ctx, ha.JobGraphRecord{JobID: jobID, Name: g.Name, FileName: req.FileName, Spec: req.JobSpec}); err != nil {
		log.Error("store job graph", zap.Error(err))
		return nil, status.Errorf(codes.Unavailable, "store job graph: %v", err)
	}
	log.Info("job submitted", zap.String("name", g.Name), zap.String("file", req.FileName),
		zap.Int("vertices", len(vertices)), zap.Int("slots", g.MaxParallelismOfVertices()))
	for _, w := range warnings {
		log.Warn("job file warning", zap.String("warning", w))
	}
	jm.mu.Lock()
	defer jm.mu.Unlock()
	if cp != nil {
		// Before the scheduler sees the job: it may deploy it at once.
		jm.checkpoints[jobID] = cp
	}
	jm.stepLocked(scheduler.JobSubmitted{
		JobID:              jobID,
		Name:               g.Name,
		MaxParallelism:     g.MaxParallelism,
		Vertices:           vertices,
		Config:             eff.ToMap(),
		SlotRequestTimeout: eff.Duration(config.SlotRequestTimeout),
		RestartStrategy:    strategy,
	})
	return &weirpb.SubmitJobResponse{JobId: jobID}, nil
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
// for a job without checkpointing or not deployed yet.
func (s *jobService) ListCheckpoints(_ context.Context, req *weirpb.ListCheckpointsRequest) (*weirpb.ListCheckpointsResponse, error) {
	s.jm.mu.Lock()
	defer s.jm.mu.Unlock()
	if _, ok := s.jm.sched.JobState(req.JobId); !ok {
		return nil, errJobNotFound(req.JobId)
	}
	resp := &weirpb.ListCheckpointsResponse{}
	if cp := s.jm.checkpoints[req.JobId]; cp != nil {
		for _, st := range cp.history() {
			resp.Checkpoints = append(resp.Checkpoints, checkpointInfo(st))
		}
	}
	return resp, nil
}

func (s *jobService) TriggerSavepoint(context.Context, *weirpb.TriggerSavepointRequest) (*weirpb.TriggerSavepointResponse, error) {
	return nil, status.Error(codes.Unimplemented, "savepoints are not supported yet")
}

func (s *jobService) StopJob(context.Context, *weirpb.StopJobRequest) (*weirpb.StopJobResponse, error) {
	return nil, status.Error(codes.Unimplemented, "stopping a job with a savepoint is not supported yet (savepoints are not supported yet); use cancel")
}

func (s *jobService) DisposeSavepoint(context.Context, *weirpb.DisposeSavepointRequest) (*weirpb.DisposeSavepointResponse, error) {
	return nil, status.Error(codes.Unimplemented, "savepoints are not supported yet")
}

func errJobNotFound(id string) error {
	return status.Error(codes.NotFound, fmt.Sprintf("job %s not found", id))
}
