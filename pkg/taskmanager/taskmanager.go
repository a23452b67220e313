package taskmanager

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	// The built-in operator types a TaskManager can run.
	_ "github.com/weirstream/weir/pkg/builtin"
	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/ha"
	"github.com/weirstream/weir/pkg/metrics"
	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/security"
	"github.com/weirstream/weir/pkg/taskexec"
	"github.com/weirstream/weir/proto/weirpb"
)

// Options are the parts of a TaskManager that are not configuration.
type Options struct {
	// Stdout receives the output of print sinks; nil means os.Stdout.
	Stdout io.Writer
	// Registry receives the TaskManager's metrics; nil means a new
	// metrics.NewRegistry().
	Registry *prometheus.Registry
	// NoMetricsServer skips the Prometheus HTTP endpoint (tests).
	NoMetricsServer bool
	// Exit ends the process when a canceled task does not stop within
	// task.cancellation.timeout (watchdog.go); nil means os.Exit. A test
	// passes a function that records the code.
	Exit func(code int)
	// Leaders tells who leads the JobManagers; required with
	// high-availability.type etcd (cmd/taskmanager passes the *ha.Etcd
	// store), and not allowed without it: jobmanager.rpc.address is the
	// JobManager then. The TaskManager does not close it.
	Leaders LeaderRetrieval
}

// LeaderRetrieval tells who leads the JobManagers (*ha.Etcd does): first
// the leader now, then each change, until ctx ends.
type LeaderRetrieval interface {
	Observe(ctx context.Context) <-chan ha.ObservedLeader
}

// TaskManager is a running TaskManager daemon. Start it with New, stop it
// with Close.
type TaskManager struct {
	cfg      *config.Config
	log      *zap.Logger
	id       string
	rpcAddr  string // advertised gRPC address
	dataAddr string // advertised data address
	jmAddr   string // standalone: jobmanager.rpc.address:port
	slots    int
	// leaders: nil in standalone mode (see follower in leader.go).
	leaders LeaderRetrieval

	net        *network.Manager
	grpcSrv    *grpc.Server
	health     *health.Server
	metricsSrv *metrics.Server
	conn       *grpc.ClientConn // standalone: to jmAddr; HA: the registration loop's
	stdout     io.Writer

	taskMetrics   *taskexec.Metrics
	tasksRunning  prometheus.Gauge
	leaderChanges prometheus.Counter
	fence         *leaderFence  // rejects calls of a deposed JobManager leader (fencing.go)
	guard         *callGuard    // rejects calls without the call token (transport.go)
	tls           *security.TLS // internal TLS; nil: plaintext
	// restoreMetadata: the tasks of a job restoring on this TaskManager
	// read their checkpoint's _metadata once.
	restoreMetadata *taskexec.MetadataCache

	// The cancellation watchdog (watchdog.go).
	cancelTimeout  time.Duration // task.cancellation.timeout; 0: never fatal
	cancelInterval time.Duration // task.cancellation.interval
	exit           func(code int)
	fatalOnce      sync.Once
	wgWatch        sync.WaitGroup // watchdog goroutines

	ctx    context.Context // canceled by Close: stops registration and heartbeats
	cancel context.CancelFunc
	// reportCtx bounds the state reports; canceled by Close after a grace
	// period so that final states of canceled tasks can still be sent.
	reportCtx    context.Context
	reportCancel context.CancelFunc
	loopDone     chan struct{}
	wgTasks      sync.WaitGroup // task goroutines
	wgReports    sync.WaitGroup // reporter goroutines
	wgServe      sync.WaitGroup
	closeOnce    sync.Once

	// readiness: the registration's state for /readyz (readiness.go).
	readiness atomic.Pointer[readiness]

	mu    sync.Mutex
	tasks map[subtaskKey]*taskEntry
	// ended holds the attempts that ended and that no leader released
	// yet, for the next leader's report (HA only; maxEndedAttempts).
	ended      map[subtaskKey]*attemptStatus
	endedCount uint64
	// jm is where state reports and checkpoint answers go: the JobManager
	// of the current registration (nil before the first one, in HA
	// mode). leaderGen grows each time a new leader (another
	// jobmanager_id) accepts a registration.
	jm        weirpb.JobManagerGatewayClient
	leaderGen uint64
	netBudget networkBudget // guarded by mu
	closed    bool
}

// reportGrace is how long Close waits for the final state reports of the
// tasks it canceled.
const reportGrace = 3 * time.Second

// New starts a TaskManager: data server, gRPC server, metrics server, and
// the registration with the JobManager (in the background). It fails if a
// server cannot listen; an unreachable JobManager is not an error.
func New(cfg *config.Config, log *zap.Logger, opts Options) (_ *TaskManager, err error) {
	host := cfg.String(config.TaskManagerHost)
	advertised := host
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if advertised, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("taskmanager.host is %q and the hostname is unknown: %w", host, err)
		}
	}
	// The endpoints listen on taskmanager.bind-host (one interface, or
	// 0.0.0.0) while the JobManager and other TaskManagers are told
	// taskmanager.host, as in Flink.
	bind := cfg.String(config.TaskManagerBindHost)
	if bind == "" {
		bind = host
	}
	switch haType := cfg.String(config.HighAvailabilityType); {
	case haType == "etcd" && opts.Leaders == nil:
		return nil, fmt.Errorf("%s is etcd, but the TaskManager was given no leader retrieval service (Options.Leaders)", config.HighAvailabilityType.Key)
	case haType != "etcd" && opts.Leaders != nil:
		return nil, fmt.Errorf("%s is %s: the JobManager is %s, and a leader retrieval service (Options.Leaders) is not used",
			config.HighAvailabilityType.Key, haType, config.JobManagerRPCAddress.Key)
	}
	tm := &TaskManager{
		cfg:     cfg,
		jmAddr:  net.JoinHostPort(cfg.String(config.JobManagerRPCAddress), strconv.Itoa(cfg.Int(config.JobManagerRPCPort))),
		slots:   cfg.Int(config.TaskManagerNumberOfTaskSlots),
		stdout:  opts.Stdout,
		tasks:   map[subtaskKey]*taskEntry{},
		ended:   map[subtaskKey]*attemptStatus{},
		leaders: opts.Leaders,

		cancelTimeout:  cfg.Duration(config.TaskCancellationTimeout),
		cancelInterval: cfg.Duration(config.TaskCancellationInterval),
		exit:           opts.Exit,
	}
	if tm.stdout == nil {
		tm.stdout = os.Stdout
	}
	if tm.exit == nil {
		tm.exit = os.Exit
	}
	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()

	if tm.tls, err = security.InternalFromConfig(cfg, log); err != nil {
		return nil, err
	}
	// gRPC listener first: the id contains its port.
	lo, hi := cfg.PortRange(config.TaskManagerRPCPort)
	lis, err := listenRange(bind, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("taskmanager.rpc.port: %w", err)
	}
	closers = append(closers, func() { _ = lis.Close() })
	rpcPort := lis.Addr().(*net.TCPAddr).Port
	tm.rpcAddr = net.JoinHostPort(advertised, strconv.Itoa(rpcPort))
	tm.id = tm.rpcAddr + "-" + randomHex(3)
	tm.log = log.With(zap.String("taskmanager", tm.id))

	ncfg := network.DefaultConfig()
	ncfg.SegmentSize = int(cfg.MemorySize(config.SegmentSize))
	ncfg.AdvertisedHost = advertised // local channels are found by the advertised address
	ncfg.BuffersPerChannel = cfg.Int(config.BuffersPerChannel)
	ncfg.FloatingBuffersPerGate = cfg.Int(config.FloatingBuffersPerGate)
	ncfg.MaxBuffersPerSubpartition = cfg.Int(config.MaxBuffersPerChannel)
	ncfg.PartitionRequestTimeout = cfg.Duration(config.PartitionRequestTimeout)
	ncfg.HandshakeTimeout = cfg.Duration(config.NetworkHandshakeTimeout)
	ncfg.MaxPendingConnectionsPerHost = cfg.Int(config.NetworkMaxPendingConnectionsPerHost)
	ncfg.MaxPendingConnections = cfg.Int(config.NetworkMaxPendingConnections)
	if tm.tls != nil {
		ncfg.TLS = tm.tls
	}
	if ncfg.MaxFrameSize < ncfg.SegmentSize {
		ncfg.MaxFrameSize = ncfg.SegmentSize
	}
	nm, budget, err := config.DeriveNetworkMemory(cfg)
	if err != nil {
		return nil, err
	}
	if budget {
		tm.netBudget = networkBudget{total: nm.Buffers, mem: nm}
		tm.log.Info("network memory", zap.Int64("bytes", nm.Bytes), zap.Int64("buffers", nm.Buffers), zap.Int64(config.SegmentSize.Key, nm.SegmentSize),
			zap.String(config.TaskManagerProcessSize.Key, cfg.String(config.TaskManagerProcessSize)))
	} else {
		tm.log.Info("no network memory budget: " + config.TaskManagerProcessSize.Key + " is unset; buffers are bounded per channel and gate only")
	}
	lo, hi = cfg.PortRange(config.TaskManagerDataPort)
	tm.net, err = newNetworkInRange(ncfg, bind, lo, hi, tm.log)
	if err != nil {
		return nil, fmt.Errorf("taskmanager.data.port: %w", err)
	}
	closers = append(closers, func() { _ = tm.net.Close() })
	_, dataPort, err := net.SplitHostPort(tm.net.Addr())
	if err != nil {
		return nil, fmt.Errorf("data server address %q: %w", tm.net.Addr(), err)
	}
	tm.dataAddr = net.JoinHostPort(advertised, dataPort)

	reg := opts.Registry
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	tm.restoreMetadata = taskexec.NewMetadataCache(time.Minute)
	if tm.taskMetrics, err = taskexec.NewMetrics(reg, tm.id); err != nil {
		return nil, err
	}
	if err := registerNetworkMetrics(reg, tm.id, tm.net); err != nil {
		return nil, err
	}
	tm.tasksRunning = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "weir_taskmanager_tasks_running",
		Help: "Tasks running on this TaskManager.",
	})
	if err := reg.Register(tm.tasksRunning); err != nil {
		return nil, fmt.Errorf("register taskmanager metrics: %w", err)
	}
	if tm.fence, err = newLeaderFence(reg, tm.log); err != nil {
		return nil, err
	}
	if tm.guard, err = newCallGuard(reg, tm.log); err != nil {
		return nil, err
	}
	tm.leaderChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "weir_taskmanager_leader_changes_total",
		Help: "Changes of the JobManager leader that etcd named to this TaskManager (high-availability.type etcd).",
	})
	leaderEpoch := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weir_taskmanager_leader_epoch",
		Help: "Highest JobManager leader epoch this TaskManager has seen; calls with a lower one are rejected (0: none, standalone).",
	}, func() float64 { return float64(tm.fence.highest.Load()) })
	collectors := []prometheus.Collector{tm.leaderChanges, leaderEpoch}
	// One data connection per TaskManager pair and direction of data flow (network doc.go).
	for _, dir := range []string{"outgoing", "incoming"} {
		collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "weir_taskmanager_network_connections",
			Help:        "Open data-plane TCP connections: outgoing to producers' TaskManagers (one per TaskManager this one reads from), incoming from consumers' TaskManagers.",
			ConstLabels: prometheus.Labels{"direction": dir},
		}, func() float64 {
			out, in := tm.net.Connections()
			if dir == "outgoing" {
				return float64(out)
			}
			return float64(in)
		}))
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register taskmanager metrics: %w", err)
		}
	}
	if !opts.NoMetricsServer {
		lo, hi = cfg.PortRange(config.MetricsPromPort)
		if tm.metricsSrv, err = metrics.Serve(tm.log, bind, lo, hi, reg, metrics.Options{Pprof: cfg.Bool(config.MetricsPprofEnabled), Ready: tm.Ready}); err != nil {
			return nil, err
		}
		closers = append(closers, func() { _ = tm.metricsSrv.Close() })
	}

	if tm.leaders == nil {
		if tm.conn, err = tm.dialJobManager(tm.jmAddr); err != nil {
			return nil, err
		}
		tm.jm = weirpb.NewJobManagerGatewayClient(tm.conn)
	}

	tm.grpcSrv = grpc.NewServer(grpc.Creds(tm.serverCreds()), grpc.ConnectionTimeout(handshakeTimeout),
		grpc.ChainUnaryInterceptor(tm.guard.unary, tm.fence.unary))
	weirpb.RegisterTaskExecutorGatewayServer(tm.grpcSrv, &gateway{tm: tm})
	tm.health = health.NewServer()
	healthpb.RegisterHealthServer(tm.grpcSrv, tm.health)
	reflection.Register(tm.grpcSrv)
	tm.wgServe.Add(1)
	go func() {
		defer tm.wgServe.Done()
		if err := tm.grpcSrv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			tm.log.Error("gRPC server stopped", zap.Error(err))
		}
	}()

	tm.ctx, tm.cancel = context.WithCancel(context.Background())
	tm.reportCtx, tm.reportCancel = context.WithCancel(context.Background())
	tm.loopDone = make(chan struct{})
	go func() {
		defer close(tm.loopDone)
		tm.connectLoop(tm.ctx)
	}()
	jmField := zap.String("jobmanager", tm.jmAddr)
	if tm.leaders != nil {
		jmField = zap.String("jobmanager", "the leader named by etcd ("+config.HighAvailabilityType.Key+" etcd)")
	}
	tm.log.Info("TaskManager started",
		zap.String("rpc_address", tm.rpcAddr),
		zap.String("data_address", tm.dataAddr),
		jmField,
		zap.Int("slots", tm.slots))
	return tm, nil
}

// dialJobManager returns a client connection to the JobManager at addr
// (connected lazily).
func (tm *TaskManager) dialJobManager(addr string) (*grpc.ClientConn, error) {
	// gRPC's own reconnect backoff (up to 2 min by default) would delay the
	// registration with a restarted JobManager long after our retry loop
	// asks; bound it by the same maximum.
	maxBackoff := tm.cfg.Duration(config.TaskManagerRegistrationBackoffMax)
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(tm.clientCreds()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  min(initialRegistrationBackoff, maxBackoff),
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   maxBackoff,
			},
			MinConnectTimeout: registrationTimeout,
		}))
	if err != nil {
		return nil, fmt.Errorf("JobManager address %s: %w", addr, err)
	}
	return conn, nil
}

// ID returns the TaskManager's id, "<host>:<rpc-port>-<6 hex>".
func (tm *TaskManager) ID() string { return tm.id }

// RPCAddr returns the advertised address of the TaskExecutorGateway.
func (tm *TaskManager) RPCAddr() string { return tm.rpcAddr }

// DataAddr returns the advertised address of the data server.
func (tm *TaskManager) DataAddr() string { return tm.dataAddr }

// MetricsAddr returns the address of the metrics endpoint ("" without one).
func (tm *TaskManager) MetricsAddr() string {
	if tm.metricsSrv == nil {
		return ""
	}
	return tm.metricsSrv.Addr()
}

// Close is Shutdown without a deadline.
func (tm *TaskManager) Close() error { return tm.Shutdown(context.Background()) }

// Shutdown shuts the TaskManager down: it stops accepting tasks, cancels
// every task and waits for it, stops serving, gives the final state reports
// a short grace period, and stops the heartbeats. Every wait ends when ctx
// does (the daemon gives cluster.services.shutdown-timeout). Tasks that
// have not stopped by then cannot be stopped: Shutdown logs each (with its
// stack), closes what it can without waiting for them, and returns an
// error naming them; the caller exits the process. Safe to call twice.
func (tm *TaskManager) Shutdown(ctx context.Context) error {
	var err error
	tm.closeOnce.Do(func() { err = tm.shutdown(ctx) })
	return err
}

func (tm *TaskManager) shutdown(ctx context.Context) error {
	tm.log.Info("TaskManager shutting down")
	tm.readiness.Store(readinessStopped) // /readyz turns 503 before the tasks are canceled
	tm.mu.Lock()
	tm.closed = true
	entries := make([]*taskEntry, 0, len(tm.tasks))
	for _, e := range tm.tasks {
		entries = append(entries, e)
	}
	tm.mu.Unlock()
	tm.health.Shutdown()
	for _, e := range entries {
		tm.cancelTask(e)
	}
	if err := tm.awaitTasks(ctx); err != nil {
		tm.grpcSrv.Stop()
		tm.reportCancel()
		tm.cancel()
		tm.closeConn()
		_ = tm.net.Close()
		if tm.metricsSrv != nil {
			_ = tm.metricsSrv.Close()
		}
		return err
	}

	// Stop serving (no more submissions), then the registration loop.
	stopped := make(chan struct{})
	go func() { tm.grpcSrv.GracefulStop(); close(stopped) }()
	grace := time.NewTimer(5 * time.Second)
	select {
	case <-stopped:
	case <-grace.C:
	case <-ctx.Done():
	}
	grace.Stop()
	tm.grpcSrv.Stop() // ends what GracefulStop still waits for; no-op after it
	<-stopped
	tm.wgServe.Wait()
	tm.wgTasks.Wait() // a submission that raced with shutdown

	reportsDone := make(chan struct{})
	go func() { tm.wgReports.Wait(); close(reportsDone) }()
	grace = time.NewTimer(reportGrace)
	select {
	case <-reportsDone:
	case <-grace.C:
	case <-ctx.Done():
	}
	grace.Stop()
	tm.reportCancel()
	<-reportsDone
	tm.cancel()
	<-tm.loopDone
	tm.closeConn()
	_ = tm.net.Close()
	if tm.metricsSrv != nil {
		_ = tm.metricsSrv.Close()
	}
	tm.wgWatch.Wait()
	tm.log.Info("TaskManager stopped")
	return nil
}

// closeConn closes the standalone JobManager connection (the registration
// loop closes its own in HA mode).
func (tm *TaskManager) closeConn() {
	if tm.conn != nil {
		_ = tm.conn.Close()
	}
}

// awaitTasks waits until every task goroutine has returned or ctx ends; in
// the latter case it logs each task still running and returns an error
// naming them.
func (tm *TaskManager) awaitTasks(ctx context.Context) error {
	done := make(chan struct{})
	// Ends with the last task, even if that is after Shutdown gave up.
	go func() { tm.wgTasks.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	tm.mu.Lock()
	stuck := make([]*taskEntry, 0, len(tm.tasks))
	for _, e := range tm.tasks {
		stuck = append(stuck, e)
	}
	tm.mu.Unlock()
	names := make([]string, 0, len(stuck))
	for _, e := range stuck {
		logStack(e.log, zapcore.ErrorLevel, "canceled task did not stop before the shutdown deadline", e.task.Stack())
		names = append(names, attemptString(e.exec))
	}
	slices.Sort(names)
	return fmt.Errorf("%d task(s) did not stop after cancel: %s", len(names), strings.Join(names, ", "))
}

// listenRange listens on host and the first free port of lo..hi.
func listenRange(host string, lo, hi int) (net.Listener, error) {
	var err error
	for p := lo; p <= hi; p++ {
		var lis net.Listener
		lis, err = net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return lis, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, fmt.Errorf("listen on %s ports %d-%d: %w", host, lo, hi, err)
}

// newNetworkInRange starts the data server on the first port of lo..hi
// where it can listen.
func newNetworkInRange(cfg network.Config, host string, lo, hi int, log *zap.Logger) (*network.Manager, error) {
	var err error
	for p := lo; p <= hi; p++ {
		cfg.ListenAddress = net.JoinHostPort(host, strconv.Itoa(p))
		var m *network.Manager
		if m, err = network.NewManager(cfg, log); err == nil {
			return m, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, fmt.Errorf("start data server on %s ports %d-%d: %w", host, lo, hi, err)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
