package jobmanager

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/coordinator"
	"github.com/weirstream/weir/pkg/ha"
	"github.com/weirstream/weir/pkg/scheduler"
	"github.com/weirstream/weir/pkg/security"
	"github.com/weirstream/weir/proto/weirpb"
)

// HAServices is what the JobManager needs from the HA store (package ha):
// the submitted job graphs, their results and attempts, and per job the
// checkpoint id counter and the completed checkpoints.
type HAServices interface {
	PutJobGraph(ctx context.Context, g ha.JobGraphRecord) error
	JobGraph(ctx context.Context, jobID string) (g ha.JobGraphRecord, ok bool, err error)
	JobIDs(ctx context.Context) ([]string, error)
	RemoveJob(ctx context.Context, jobID string) error
	CheckpointIDCounter(ctx context.Context, jobID string) (int64, error)
	SetCheckpointIDCounter(ctx context.Context, jobID string, next int64) error
	AddCompletedCheckpoint(ctx context.Context, jobID string, cp ha.CompletedCheckpoint) error
	RemoveCompletedCheckpoint(ctx context.Context, jobID string, checkpointID int64) error
	CompletedCheckpoints(ctx context.Context, jobID string) ([]ha.CompletedCheckpoint, error)
	SetJobAttempt(ctx context.Context, jobID string, attempt int) error
	JobAttempt(ctx context.Context, jobID string) (int, error)
	PutJobResult(ctx context.Context, jobID string, r ha.JobResult) error
	JobResult(ctx context.Context, jobID string) (r ha.JobResult, ok bool, err error)
}

var _ HAServices = (*ha.Standalone)(nil)

// Options configure a JobManager.
type Options struct {
	// Config is the cluster configuration; nil means every default.
	Config *config.Config
	// Logger; nil discards.
	Logger *zap.Logger
	// Registerer receives the weir_jobmanager_* metrics; nil registers none.
	Registerer prometheus.Registerer
	// HA stores the durable facts; nil means ha.NewStandalone().
	HA HAServices
	// Election makes this JobManager one of a highly available group
	// (leadership.go): it stands by until elected, then recovers the jobs
	// of HA (which must be the same etcd store). nil: standalone, leading
	// from the start.
	Election LeaderElection
	// Advertised is the address (host:port) clients and TaskManagers are
	// told to reach this JobManager at; "" means the listen address.
	Advertised string
	// Exit ends the process with a code after the leadership was lost;
	// nil means os.Exit.
	Exit func(code int)
}

// JobManager is a running JobManager.
type JobManager struct {
	log        *zap.Logger
	cfg        *config.Config
	ha         HAServices
	election   LeaderElection // nil: standalone
	advertised string
	started    time.Time
	exit       func(code int)
	// leadEpoch is the epoch this JobManager leads at (HA), 0 while it
	// stands by or once fenced; leaderSince when it began (Unix ms);
	// leader the leader as last observed; haState the ha.LeadershipState
	// after each step of the election (for Ready, readiness.go).
	leadEpoch   atomic.Int64
	leaderSince atomic.Int64
	leader      atomic.Pointer[ha.LeaderInfo]
	haState     atomic.Value
	id          string // this process's JobManager id
	hbInterval  time.Duration
	hbTimeout   time.Duration
	lis         net.Listener
	port        *security.Port // the TLS of lis's connections (transport.go)
	srv         *grpc.Server
	health      *health.Server
	metrics     *jmMetrics
	rejectLog   logLimiter // of calls refused for their caller's identity

	mu        sync.Mutex // owns everything below
	sched     *scheduler.Scheduler
	executors map[string]*taskExecutor // TaskManager id -> client of its current registration
	tmPeers   map[string]tmBinding     // TaskManager id -> identity it registered from (identity.go)
	closing   bool
	// checkpoints holds the checkpointing of every job that has it
	// enabled, also after the job ended (for its history);
	// activeCheckpoints those whose coordinator runs (the timer's).
	checkpoints       map[string]*checkpointing
	activeCheckpoints map[string]*checkpointing
	// savepointWaiters are the TriggerSavepoint and StopJob calls waiting
	// for their coordinator's answer, by request (nextSavepoint the last).
	savepointWaiters map[uint64]chan savepointResult
	nextSavepoint    uint64
	queue            []func() // see serialize
	draining         bool
	// ioIdle is signaled (on mu) when a job's checkpoint I/O goroutines
	// end, and on Close: a restart waits for them before reading the
	// latest checkpoint.
	ioIdle *sync.Cond
	// restartAt is the scheduler's NextRestart the tick loop was told about.
	restartAt time.Time

	// recovery is the recovery of a new leader in progress (recovery.go).
	recovery *recovering

	cpWake      chan struct{} // capacity 1: a coordinator stepped, recompute the timer
	restartWake chan struct{} // capacity 1: the next restart time changed

	stopping  chan struct{} // closed by Close
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// randomHex returns n random bytes as 2n hex characters.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}

// NewJobID returns a job id: 32 hex characters, like Flink's JobID.
func NewJobID() string { return randomHex(16) }

// Start listens on the configured address and serves until Close.
func Start(opts Options) (*JobManager, error) {
	cfg := opts.Config
	if cfg == nil {
		cfg = config.New()
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	store := opts.HA
	if store == nil {
		store = ha.NewStandalone()
	}
	jm := &JobManager{
		log:        log,
		cfg:        cfg,
		ha:         store,
		election:   opts.Election,
		started:    time.Now(),
		exit:       opts.Exit,
		id:         randomHex(16),
		hbInterval: cfg.Duration(config.HeartbeatInterval),
		hbTimeout:  cfg.Duration(config.HeartbeatTimeout),
		executors:  map[string]*taskExecutor{},
		stopping:   make(chan struct{}),
		cpWake:     make(chan struct{}, 1),

		restartWake: make(chan struct{}, 1),

		checkpoints:       map[string]*checkpointing{},
		activeCheckpoints: map[string]*checkpointing{},
		savepointWaiters:  map[uint64]chan savepointResult{},
		sched: scheduler.New(scheduler.Config{
			HeartbeatTimeout:     cfg.Duration(config.HeartbeatTimeout),
			EvenlySpreadOutSlots: cfg.Bool(config.ClusterEvenlySpreadOutSlots),
			JobStoreMaxCapacity:  cfg.Int(config.JobStoreMaxCapacity),
			JobStoreExpiration:   cfg.Duration(config.JobStoreExpirationTime),
		}),
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	jm.metrics = m
	jm.ioIdle = sync.NewCond(&jm.mu)

	if jm.port, err = newTransport(cfg, log); err != nil {
		m.unregister()
		return nil, err
	}
	host := cfg.String(config.JobManagerBindHost)
	if host == "" {
		host = cfg.String(config.JobManagerRPCAddress)
	}
	addr := net.JoinHostPort(host, strconv.Itoa(cfg.Int(config.JobManagerRPCPort)))
	jm.lis, err = net.Listen("tcp", addr)
	if err != nil {
		m.unregister()
		return nil, fmt.Errorf("jobmanager: listen on %s (jobmanager.rpc.port): %w", addr, err)
	}

	jm.advertised = opts.Advertised
	if jm.advertised == "" {
		jm.advertised = jm.lis.Addr().String()
	}
	if jm.exit == nil {
		jm.exit = os.Exit
	}
	jm.srv = grpc.NewServer(grpc.MaxRecvMsgSize(maxRecvMsgSize),
		grpc.Creds(jm.port.Credentials()), grpc.ConnectionTimeout(handshakeTimeout),
		grpc.ChainUnaryInterceptor(jm.authorizeUnary, jm.leaderOnlyUnary), grpc.ChainStreamInterceptor(jm.authorizeStream, jm.leaderOnlyStream))
	weirpb.RegisterJobServiceServer(jm.srv, &jobService{jm: jm})
	weirpb.RegisterJobManagerGatewayServer(jm.srv, &gateway{jm: jm})
	jm.health = health.NewServer()
	healthpb.RegisterHealthServer(jm.srv, jm.health)
	reflection.Register(jm.srv)

	if jm.election != nil {
		jm.wg.Add(1)
		go jm.leadershipLoop(jm.advertised)
	}
	jm.wg.Add(3)
	go jm.checkpointTimerLoop()
	go func() {
		defer jm.wg.Done()
		if err := jm.srv.Serve(jm.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			jm.log.Error("gRPC server stopped", zap.Error(err))
		}
	}()
	go jm.tickLoop()
	jm.updateMetrics()
	log.Info("JobManager started", zap.String("addr", jm.Addr()), zap.String("jobmanager_id", jm.id),
		zap.Duration("heartbeat_interval", jm.hbInterval), zap.Duration("heartbeat_timeout", jm.hbTimeout))
	return jm, nil
}

// Addr returns the address the gRPC server listens on, host:port.
func (jm *JobManager) Addr() string { return jm.lis.Addr().String() }

// ID returns this process's JobManager id.
func (jm *JobManager) ID() string { return jm.id }

// maxRecvMsgSize is the largest gRPC message the JobManager accepts: 4 MiB,
// gRPC's default, set here so that it is a decision rather than an
// accident. The largest messages it expects: a submission (a job file of
// at most config.MaxJobFileSize and two paths of at most
// config.MaxPathLength), a TaskManager's heartbeat (about 60 bytes per
// task, so tens of thousands of tasks), a task's acknowledgement (state
// handles, with at most snapshot.MaxInlinePerLocation bytes of state
// inline, 1.4 MiB as JSON). gRPC refuses a larger
// message (ResourceExhausted) before any handler allocates for it.
const maxRecvMsgSize = 4 << 20

// shutdownGrace bounds how long Close waits for in-flight unary calls.
const shutdownGrace = 5 * time.Second

// Close stops the JobManager gracefully: heartbeat streams are closed,
// in-flight calls finish (for up to a few seconds), TaskManager clients stop.
// Jobs are not canceled: their TaskManagers notice the JobManager is gone.
// It returns when every goroutine has stopped; calling it twice is safe.
func (jm *JobManager) Close() error {
	jm.closeOnce.Do(func() {
		jm.mu.Lock()
		jm.closing = true
		executors := jm.executors
		jm.executors = map[string]*taskExecutor{}
		jm.ioIdle.Broadcast() // restore loaders stop waiting
		jm.mu.Unlock()
		close(jm.stopping)
		jm.health.Shutdown()

		done := make(chan struct{})
		go func() { jm.srv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(shutdownGrace):
			jm.srv.Stop()
			<-done
		}
		for _, te := range executors {
			te.stop()
		}
		jm.wg.Wait()
		jm.metrics.unregister()
		jm.log.Info("JobManager stopped")
	})
	return nil
}

// tickInterval is how often time is fed to the scheduler: fine enough for
// heartbeat.timeout and slot.request.timeout, coarse enough to cost nothing.
func tickInterval(hbInterval time.Duration) time.Duration {
	return min(max(hbInterval/2, 10*time.Millisecond), time.Second)
}

// tickLoop feeds time to the scheduler: periodically, and at the moment a
// restart delay ends, so that a restart is not late by up to a tick.
func (jm *JobManager) tickLoop() {
	defer jm.wg.Done()
	t := time.NewTicker(tickInterval(jm.hbInterval))
	defer t.Stop()
	restart := time.NewTimer(time.Hour)
	restart.Stop()
	defer restart.Stop()
	for {
		select {
		case <-jm.stopping:
			return
		case <-t.C:
			jm.step(scheduler.Tick{})
		case <-restart.C:
			jm.step(scheduler.Tick{})
		case <-jm.restartWake:
		}
		jm.mu.Lock()
		next := jm.restartAt
		jm.mu.Unlock()
		restart.Stop()
		if !next.IsZero() {
			restart.Reset(time.Until(next))
		}
	}
}

// step applies an event to the scheduler and carries out its actions.
func (jm *JobManager) step(ev scheduler.Event) {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	jm.stepLocked(ev)
}

func (jm *JobManager) stepLocked(ev scheduler.Event) {
	jm.serialize(func() {
		if jm.closing {
			return
		}
		for _, a := range jm.sched.Step(time.Now(), ev) {
			jm.do(a)
		}
		jm.updateMetrics()
		if next := jm.sched.NextRestart(); !next.Equal(jm.restartAt) {
			jm.restartAt = next
			select {
			case jm.restartWake <- struct{}{}:
			default:
			}
		}
	})
}

// do carries out one action; it never blocks.
func (jm *JobManager) do(a scheduler.Action) {
	switch a := a.(type) {
	case scheduler.Deploy:
		id := scheduler.ExecutionAttemptIDFromProto(a.TDD.Execution)
		te := jm.executors[a.TaskManagerID]
		if te == nil { // cannot happen: the scheduler deploys only to registered TaskManagers
			jm.log.Error("deploy to unknown TaskManager", zap.String("job", id.JobID), zap.String("taskmanager", a.TaskManagerID))
			return
		}
		te.enqueue(func(ctx context.Context) { jm.submitTask(ctx, te, a.TDD, id) })
	case scheduler.CancelTask:
		if te := jm.executors[a.TaskManagerID]; te != nil {
			te.enqueue(func(ctx context.Context) {
				if _, err := te.client.CancelTask(ctx, &weirpb.CancelTaskRequest{Execution: a.Execution.Proto()}); err != nil && ctx.Err() == nil {
					jm.log.Warn("cancel task failed", zap.String("job", a.Execution.JobID), zap.String("taskmanager", te.id),
						zap.Int("vertex", a.Execution.Vertex), zap.Int("subtask", a.Execution.Subtask), zap.Int("attempt", a.Execution.Attempt), zap.Error(err))
				}
			})
		}
	case scheduler.ReleaseJob:
		if te := jm.executors[a.TaskManagerID]; te != nil {
			te.enqueue(func(ctx context.Context) {
				if _, err := te.client.ReleaseJob(ctx, &weirpb.ReleaseJobRequest{JobId: a.JobID}); err != nil && ctx.Err() == nil {
					jm.log.Warn("release job failed", zap.String("job", a.JobID), zap.String("taskmanager", te.id), zap.Error(err))
				}
			})
		}
	case scheduler.TaskManagerAdded:
		te, err := newTaskExecutor(a.ID, a.Instance, a.RPCAddress, jm.hbTimeout, jm.leaderEpoch, jm.mayCall, jm.internalCreds(), a.CallToken)
		if err != nil {
			// RegisterTaskManager checked the address; this is a bug, not input.
			jm.log.Error("cannot create TaskManager client", zap.String("taskmanager", a.ID), zap.Error(err))
			return
		}
		jm.executors[a.ID] = te
		jm.wg.Add(1)
		go func() { defer jm.wg.Done(); te.run() }()
	case scheduler.TaskManagerRemoved:
		if te := jm.executors[a.ID]; te != nil && te.instance == a.Instance {
			te.stop()
			delete(jm.executors, a.ID)
		}
		jm.log.Warn(a.Reason, zap.String("taskmanager", a.ID))
	case scheduler.ExecutionStateChanged:
		if cp := jm.activeCheckpoints[a.Execution.JobID]; cp != nil {
			task := coordinator.TaskID{Vertex: a.Execution.Vertex, Subtask: a.Execution.Subtask}
			switch a.State {
			case scheduler.ExecutionRunning:
				jm.feed(cp, coordinator.TaskRunning{Task: task, Attempt: a.Execution.Attempt})
			case scheduler.ExecutionFinished:
				jm.feed(cp, coordinator.TaskFinished{Task: task, Attempt: a.Execution.Attempt})
			}
		}
	case scheduler.LoadRestoreState:
		jm.loadRestoreState(a)
	case scheduler.JobRemoved:
		// Its coordinator stopped when it left RUNNING; goroutines still
		// deleting its checkpoints hold cp itself.
		delete(jm.checkpoints, a.JobID)
		delete(jm.activeCheckpoints, a.JobID)
		jm.metrics.forgetJob(a.JobID)
		jm.log.Info("job removed from the job store", zap.String("job", a.JobID), zap.String("reason", a.Reason))
	case scheduler.JobRestarted:
		from := "scratch"
		if a.CheckpointID != 0 {
			from = "checkpoint"
		}
		jm.metrics.restarted(a.JobID, from, time.Now())
		log := jm.log.With(zap.String("job", a.JobID))
		if a.CheckpointID != 0 {
			log.Info("job restarting from checkpoint", zap.Int("restarts", a.Restarts),
				zap.Int64("checkpoint", a.CheckpointID), zap.String("path", a.Location))
		} else {
			log.Info("job restarting from scratch: no completed checkpoint", zap.Int("restarts", a.Restarts))
		}
	case scheduler.JobRecovered:
		// One line with the whole timing of a failover, for benchmarks.
		jm.log.Info("job recovered", zap.String("job", a.JobID),
			zap.Time("failure_time", a.FailureTime), zap.Time("detected", a.Detected),
			zap.Duration("restart_delay", a.RestartDelay), zap.Duration("deploy", a.Running.Sub(a.Redeployed)),
			zap.Int64("restored_checkpoint", a.CheckpointID), zap.Duration("downtime", a.Running.Sub(a.FailureTime)))
	case scheduler.JobStateChanged:
		var name string
		if cp := jm.checkpoints[a.JobID]; cp != nil {
			name = cp.jobName
		}
		jm.metrics.jobStateChanged(a.JobID, name, a.From, a.To, time.Now())
		jm.checkpointJobState(a)
		log := jm.log.With(zap.String("job", a.JobID))
		fields := []zap.Field{zap.String("from", string(a.From)), zap.String("to", string(a.To))}
		if a.Message != "" {
			fields = append(fields, zap.String("message", a.Message))
		}
		if a.To == scheduler.JobFailed || a.To == scheduler.JobFailing || a.To == scheduler.JobRestarting {
			log.Warn("job state changed", fields...)
		} else {
			log.Info("job state changed", fields...)
		}
		if a.To.IsGloballyTerminal() {
			// Queued behind the retention policy's deletions (jobEnded).
			now := time.Now()
			jm.serialize(func() { jm.recordResult(a, now) })
		}
	}
}

// checkpointJobState follows a job's state for its checkpointing: the
// coordinator starts when the tasks are deployed (the job switches to
// RUNNING), stops when the job leaves RUNNING, and the retention policy
// applies when the job ends.
func (jm *JobManager) checkpointJobState(a scheduler.JobStateChanged) {
	cp := jm.checkpoints[a.JobID]
	if cp == nil {
		return
	}
	switch {
	case a.To == scheduler.JobRunning:
		jm.startCoordinator(cp)
	case a.From == scheduler.JobRunning:
		jm.stopCoordinator(cp)
	}
	if a.To.IsGloballyTerminal() {
		// Queued behind the Stop, so that what Stop aborted is not
		// counted among the retained checkpoints.
		jm.serialize(func() { jm.jobEnded(cp, a.To) })
	}
}

// submitTask runs on the TaskManager's client goroutine. A failed
// submission fails the attempt, through the scheduler like any failure.
func (jm *JobManager) submitTask(ctx context.Context, te *taskExecutor, tdd *weirpb.TaskDeploymentDescriptor, id scheduler.ExecutionAttemptID) {
	_, err := te.client.SubmitTask(ctx, tdd)
	if err == nil || ctx.Err() != nil {
		return // stopped: the TaskManager is gone or the JobManager closes
	}
	jm.log.Warn("submit task failed", zap.String("job", id.JobID), zap.String("taskmanager", te.id),
		zap.Int("vertex", id.Vertex), zap.Int("subtask", id.Subtask), zap.Int("attempt", id.Attempt), zap.Error(err))
	jm.step(scheduler.TaskStateChanged{
		TaskManagerID: te.id, Execution: id, State: scheduler.ExecutionFailed,
		Failure: fmt.Sprintf("deploy to TaskManager %s: %s", te.id, statusMessage(err)),
	})
}

func (jm *JobManager) updateMetrics() {
	total, free := jm.sched.SlotCounts()
	jm.metrics.set(jm.sched.NumTaskManagers(), total, free, jm.sched.JobCounts())
}

// recordResult records how a job ended in the HA store, then forgets its
// graph: no leader runs it again (a leader that dies between the two
// leaves a graph that the next one removes, seeing the result). Off jm.mu:
// the store may be etcd. Callers hold jm.mu.
// Results in etcd are kept (a later leader must not run the job again);
// they are small (at most ha.MaxJobResultError of message each).
func (jm *JobManager) recordResult(a scheduler.JobStateChanged, at time.Time) {
	if jm.closing {
		return
	}
	r := ha.JobResult{JobID: a.JobID, State: ha.JobResultState(a.To), EndTime: at}
	if a.To == scheduler.JobFailed {
		r.Error = a.Message
	}
	log := jm.log.With(zap.String("job", a.JobID))
	cp := jm.checkpoints[a.JobID]
	jm.wg.Add(1)
	go func() {
		defer jm.wg.Done()
		// The job's store writes in flight (a counter write, a completed
		// checkpoint, a deletion) end first: one landing after RemoveJob
		// would leave its key behind.
		jm.mu.Lock()
		for cp != nil && (cp.io > 0 || cp.persisting) && !jm.closing {
			jm.ioIdle.Wait()
		}
		jm.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
		defer cancel()
		// Standalone, nobody recovers jobs: a result would only be kept
		// for nothing.
		if jm.election != nil {
			if err := jm.ha.PutJobResult(ctx, a.JobID, r); err != nil {
				log.Warn("record the job's result in the HA store", zap.Error(err))
				return
			}
		}
		if err := jm.ha.RemoveJob(ctx, a.JobID); err != nil {
			log.Warn("remove job from HA store", zap.Error(err))
		}
	}()
}
