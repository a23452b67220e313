package config

// Every configuration option of weir, declared once. Keys, defaults and value
// syntax follow Apache Flink unless the description says otherwise.
// docs/configuration.md is generated from this list (go test ./pkg/config -update).

// Cluster addresses and ports.
import "time"

var (
	JobManagerRPCAddress = &Option{
		Key: "jobmanager.rpc.address", Scope: ScopeCluster, Type: TypeString, Default: "127.0.0.1",
		Description: "Address of the JobManager that TaskManagers and clients connect to.",
	}
	JobManagerRPCPort = &Option{
		Key: "jobmanager.rpc.port", Scope: ScopeCluster, Type: TypeInt, Default: "6123", Min: bound(0), Max: bound(65535),
		Description: "Port of the JobManager's gRPC endpoint; 0 picks any free port.",
	}
	JobManagerBindHost = &Option{
		Key: "jobmanager.bind-host", Scope: ScopeCluster, Daemon: DaemonJobManager, Type: TypeString,
		Description: "Local address the JobManager's endpoints (gRPC, metrics) listen on, e.g. 0.0.0.0 or one interface's address, " +
			"while TaskManagers and clients are told jobmanager.rpc.address. Unset: jobmanager.rpc.address.",
	}
	TaskManagerHost = &Option{
		Key: "taskmanager.host", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeString, Default: "127.0.0.1",
		Description: "Address of this TaskManager, advertised to the JobManager and to other TaskManagers.",
	}
	TaskManagerBindHost = &Option{
		Key: "taskmanager.bind-host", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeString,
		Description: "Local address the TaskManager's endpoints (gRPC, data port, metrics) listen on, e.g. 0.0.0.0 or one interface's address, " +
			"while the JobManager and other TaskManagers are told taskmanager.host. Unset: taskmanager.host.",
	}
	TaskManagerRPCPort = &Option{
		Key: "taskmanager.rpc.port", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypePortRange, Default: "0",
		Description: "Port or port range (tried in order) of the TaskManager's gRPC endpoint; 0 picks any free port.",
	}
	TaskManagerDataPort = &Option{
		Key: "taskmanager.data.port", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypePortRange, Default: "0",
		Description: "Port or port range (tried in order) on which the TaskManager serves result partitions to other TaskManagers; 0 picks any free port. " +
			"Flink accepts only a single port here; a range is a weir extension.",
	}
	TaskManagerNumberOfTaskSlots = &Option{
		Key: "taskmanager.numberOfTaskSlots", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeInt, Default: "1", Min: bound(1),
		Description: "Number of task slots a TaskManager offers; each slot runs one pipeline of chained subtasks.",
	}
	TaskManagerRegistrationBackoffMax = &Option{
		Key: "taskmanager.registration.max-backoff", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeDuration, Default: "10 s", Min: bound(1),
		Description: "Upper bound of the backoff between a TaskManager's attempts to register with an unreachable JobManager.",
	}
)

// Memory (docs/configuration.md, Memory). There is no JVM: a process size
// is Go's soft memory limit, and no metaspace or JVM overhead is taken off it.
var (
	JobManagerProcessSize = &Option{
		Key: "jobmanager.memory.process.size", Scope: ScopeCluster, Daemon: DaemonJobManager, Type: TypeMemorySize, Min: bound(1 << 20),
		Description: "Memory budget of the JobManager process: Go's soft memory limit (runtime/debug.SetMemoryLimit), logged at start; " +
			"past it the garbage collector works harder rather than let the heap grow. Unset: no limit (GOMEMLIMIT, if set, applies). " +
			"Flink's config.yaml sets 1600m; there is no JVM metaspace or overhead to take off it.",
	}
	TaskManagerProcessSize = &Option{
		Key: "taskmanager.memory.process.size", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeMemorySize, Min: bound(1 << 20),
		Description: "Memory budget of the TaskManager process: Go's soft memory limit (runtime/debug.SetMemoryLimit), logged at start, " +
			"and the total from which network memory is derived (taskmanager.memory.network.fraction). Unset: no limit and no network " +
			"memory budget. Flink's config.yaml sets 1728m; there is no JVM metaspace or overhead to take off it.",
	}
	NetworkMemoryFraction = &Option{
		Key: "taskmanager.memory.network.fraction", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeFloat, Default: "0.1",
		Min: bound(0), Max: bound(1), FallbackKeys: []string{"taskmanager.network.memory.fraction"},
		Description: "Fraction of taskmanager.memory.process.size reserved for network buffers, bounded by taskmanager.memory.network.min and " +
			".max: as in Flink, whose total Flink memory is the process size here.",
	}
	NetworkMemoryMin = &Option{
		Key: "taskmanager.memory.network.min", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeMemorySize, Default: "64mb", Min: bound(0),
		FallbackKeys: []string{"taskmanager.network.memory.min"},
		Description:  "Least network memory of a TaskManager with taskmanager.memory.process.size; set min and max equal for an exact size.",
	}
	NetworkMemoryMax = &Option{
		Key: "taskmanager.memory.network.max", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeMemorySize, Min: bound(0),
		FallbackKeys: []string{"taskmanager.network.memory.max"},
		Description:  "Most network memory of a TaskManager with taskmanager.memory.process.size. Unset: no bound (Flink: infinite).",
	}
)

// The JobManager's job store: how many finished jobs it keeps, and for how long.
var (
	JobStoreMaxCapacity = &Option{
		Key: "jobstore.max-capacity", Scope: ScopeCluster, Daemon: DaemonJobManager, Type: TypeInt, Default: "1000", Min: bound(1),
		Description: "Most globally terminal (FINISHED, FAILED or CANCELED) jobs the JobManager keeps for `weir list` and `weir status`; " +
			"beyond it, those that ended first are dropped. weir default: Flink keeps every one (2147483647), " +
			"which lets a long-lived JobManager grow without bound.",
	}
	JobStoreExpirationTime = &Option{
		Key: "jobstore.expiration-time", Scope: ScopeCluster, Daemon: DaemonJobManager, Type: TypeDuration, Default: "1 h", Min: bound(1),
		Description: "Time after which a globally terminal job is dropped from the JobManager's job store (Flink's default, 3600 s). " +
			"A bare number is milliseconds, as for every duration: write 3600 s, not 3600 (Flink 1.x read seconds).",
	}
)

// Heartbeats and timeouts.
var (
	HeartbeatInterval = &Option{
		Key: "heartbeat.interval", Scope: ScopeCluster, Type: TypeDuration, Default: "2 s", Min: bound(1),
		Description: "Time between heartbeats from the JobManager to TaskManagers. weir default; Flink uses 10 s.",
	}
	HeartbeatTimeout = &Option{
		Key: "heartbeat.timeout", Scope: ScopeCluster, Type: TypeDuration, Default: "20 s", Min: bound(1),
		Description: "Time without a heartbeat after which the peer (TaskManager or JobManager) is considered lost. " +
			"A killed process is seen at once (its connection closes); this bounds the detection of a crashed or hung machine " +
			"or a network partition. weir default; Flink uses 50 s (see docs/fault-tolerance.md).",
	}
	SlotRequestTimeout = &Option{
		Key: "slot.request.timeout", Scope: ScopeBoth, Type: TypeDuration, Default: "5 min", Min: bound(1),
		Description: "Time a job waits for the slots it needs before it fails.",
	}
	ClusterEvenlySpreadOutSlots = &Option{
		Key: "cluster.evenly-spread-out-slots", Scope: ScopeCluster, Daemon: DaemonJobManager, Type: TypeBool, Default: "true",
		Description: "Place a job's subtasks on the TaskManager with the most free slots instead of filling one TaskManager first. " +
			"weir defaults to true (Flink: false) so that a job spreads over all TaskManagers and the loss of one " +
			"TaskManager affects as few subtasks as possible.",
	}
)

// Task cancellation and daemon shutdown (docs/fault-tolerance.md).
var (
	TaskCancellationTimeout = &Option{
		Key: "task.cancellation.timeout", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeDuration, Default: "180 s", Min: bound(0),
		Description: "Time a canceled task has to stop before its TaskManager exits with a fatal error (exit code 70), so that the task " +
			"cannot go on writing output after a new attempt started; the service manager restarts the TaskManager. 0 disables the watchdog. " +
			"Read from the TaskManager's configuration.",
	}
	TaskCancellationInterval = &Option{
		Key: "task.cancellation.interval", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeDuration, Default: "30 s", Min: bound(1),
		Description: "Time between two warnings, each with the stack of the task's goroutine, about a canceled task that has not stopped. " +
			"Flink also interrupts the task thread this often; a goroutine cannot be interrupted. Read from the TaskManager's configuration.",
	}
	ShutdownTimeout = &Option{
		Key: "cluster.services.shutdown-timeout", Scope: ScopeCluster, Type: TypeDuration, Default: "10 s", Min: bound(1),
		Description: "Time a JobManager or TaskManager has, after SIGTERM or SIGINT, to cancel its tasks and stop its services before it exits anyway " +
			"(exit code 1); a second signal exits at once. weir default, below systemd's TimeoutStopSec of 90 s; Flink uses 30 s for its executors.",
	}
)

// Logging and metrics.
var (
	LogFormat = &Option{
		Key: "log.format", Scope: ScopeCluster, Type: TypeEnum, Default: "console", Values: []string{"console", "json"},
		Description: "Format of the daemon's log: console (human-readable) or json (one JSON object per line: level, ts, logger, caller, " +
			"msg and the fields; for log shippers, see docs/deployment.md). weir-specific.",
	}
	LogLevel = &Option{
		Key: "log.level", Scope: ScopeCluster, Type: TypeEnum, Default: "info", Values: []string{"debug", "info", "warn", "error"},
		Description: "Lowest level that is logged. weir-specific.",
	}
	MetricsPromPort = &Option{
		Key: "metrics.reporter.prom.port", Scope: ScopeCluster, Type: TypePortRange, Default: "9249-9260",
		Description: "Port or port range (tried in order) of the Prometheus /metrics endpoint of the JobManager and of each TaskManager; " +
			"the range lets several daemons share a host. 0 picks any free port.",
	}
	MetricsPprofEnabled = &Option{
		Key: "metrics.pprof.enabled", Scope: ScopeCluster, Type: TypeBool, Default: "false",
		Description: "Serve Go's runtime profiles (net/http/pprof: CPU, heap, goroutines, execution trace) under /debug/pprof/ on the " +
			"metrics.reporter.prom.port endpoint of the JobManager and of each TaskManager. They reveal the daemon's internals " +
			"(command line, code paths) and a CPU profile or trace costs CPU while it runs: expose the port only to operators. weir-specific.",
	}
)

// Network stack and execution.
var (
	SegmentSize = &Option{
		Key: "taskmanager.memory.segment-size", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeMemorySize, Default: "32kb", Min: bound(1),
		Description: "Size of a network buffer (memory segment): the unit in which records travel between subtasks.",
	}
	BufferTimeout = &Option{
		Key: "execution.buffer-timeout", Scope: ScopeBoth, Type: TypeDuration, Default: "100ms",
		Description: "Longest time a partly filled network buffer waits before it is sent; 0 sends after every record (lowest latency, lowest throughput).",
	}
	BuffersPerChannel = &Option{
		Key: "taskmanager.network.memory.buffers-per-channel", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeInt, Default: "2", Min: bound(0),
		Description: "Exclusive buffers (credits) of each input channel.",
	}
	FloatingBuffersPerGate = &Option{
		Key: "taskmanager.network.memory.floating-buffers-per-gate", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeInt, Default: "8", Min: bound(0),
		Description: "Buffers of each input gate shared by its channels on demand, on top of the exclusive ones.",
	}
	MaxBuffersPerChannel = &Option{
		Key: "taskmanager.network.memory.max-buffers-per-channel", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeInt, Default: "10", Min: bound(1),
		Description: "Most buffers one output subpartition may hold, so that one slow or skewed channel cannot take all buffers of its partition.",
	}
	PartitionRequestTimeout = &Option{
		Key: "taskmanager.network.partition-request-timeout", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeDuration, Default: "30 s", Min: bound(1),
		Description: "Time an input channel keeps retrying to request its result subpartition from the producing TaskManager before the task fails.",
	}
	NetworkHandshakeTimeout = &Option{
		Key: "taskmanager.network.handshake-timeout", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeDuration, Default: "10 s", Min: bound(1),
		Description: "Time the data server gives a new connection to send its partition request before it closes the connection, " +
			"and a multiplexed connection with no open channel to send its next one, " +
			"so that peers that connect and send nothing cannot hold sockets forever. weir-specific.",
	}
	NetworkMaxPendingConnectionsPerHost = &Option{
		Key: "taskmanager.network.max-pending-connections-per-host", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeInt, Default: "128", Min: bound(1),
		Description: "Most connections from one IP address that the data server holds before they have sent their partition request; " +
			"it refuses more at once (logging the peer), and a refused TaskManager retries with backoff. weir-specific.",
	}
	NetworkMaxPendingConnections = &Option{
		Key: "taskmanager.network.max-pending-connections", Scope: ScopeCluster, Daemon: DaemonTaskManager, Type: TypeInt, Default: "1024", Min: bound(1),
		Description: "Most connections, from all hosts together, that the data server holds before they have sent their partition request; " +
			"it refuses more at once (logging the peer). weir-specific.",
	}
	Parallelism = &Option{
		Key: "parallelism.default", Scope: ScopeBoth, Type: TypeInt, Default: "1", Min: bound(1),
		Description: "Parallelism of operators that do not set their own. A job file's parallelism field wins over this key in its config:, which wins over the cluster's.",
	}
	MaxParallelism = &Option{
		Key: "pipeline.max-parallelism", Scope: ScopeBoth, Type: TypeInt, Default: "128", Min: bound(1), Max: bound(32768),
		Description: "Number of key groups: the upper bound to which a job can be rescaled from a checkpoint or savepoint. Cannot change for a job that has state. " +
			"A job file's max-parallelism field wins over this key in its config:, which wins over the cluster's. weir default; Flink derives it from the parallelism when unset.",
	}
)

// Checkpointing.
var (
	CheckpointingInterval = &Option{
		Key: "execution.checkpointing.interval", Scope: ScopeBoth, Type: TypeDuration, Min: bound(10e6),
		Description: "Time between the starts of two periodic checkpoints. Unset disables checkpointing.",
	}
	CheckpointingMode = &Option{
		Key: "execution.checkpointing.mode", Scope: ScopeBoth, Type: TypeEnum, Default: "EXACTLY_ONCE", Values: []string{"EXACTLY_ONCE", "AT_LEAST_ONCE"},
		Description: "EXACTLY_ONCE aligns barriers so that state reflects each record once; AT_LEAST_ONCE does not align (lower latency) and may replay records into state after a failure.",
	}
	CheckpointingTimeout = &Option{
		Key: "execution.checkpointing.timeout", Scope: ScopeBoth, Type: TypeDuration, Default: "10 min", Min: bound(1),
		Description: "Time after which a checkpoint that has not completed is aborted.",
	}
	CheckpointingMinPause = &Option{
		Key: "execution.checkpointing.min-pause", Scope: ScopeBoth, Type: TypeDuration, Default: "0",
		Description: "Least time between the end of one checkpoint and the start of the next.",
	}
	TolerableFailedCheckpoints = &Option{
		Key: "execution.checkpointing.tolerable-failed-checkpoints", Scope: ScopeBoth, Type: TypeInt, Default: "0", Min: bound(0),
		Description: "Number of consecutive checkpoint failures tolerated before the job fails over.",
	}
	MaxConcurrentCheckpoints = &Option{
		Key: "execution.checkpointing.max-concurrent-checkpoints", Scope: ScopeBoth, Type: TypeInt, Default: "1", Min: bound(1),
		Description: "Most checkpoints in progress at the same time.",
	}
	NumRetainedCheckpoints = &Option{
		Key: "execution.checkpointing.num-retained", Scope: ScopeBoth, Type: TypeInt, Default: "1", Min: bound(1),
		FallbackKeys: []string{"state.checkpoints.num-retained"},
		Description:  "Number of completed checkpoints kept.",
	}
	ExternalizedCheckpointRetention = &Option{
		Key: "execution.checkpointing.externalized-checkpoint-retention", Scope: ScopeBoth, Type: TypeEnum, Default: "DELETE_ON_CANCELLATION",
		Values:      []string{"DELETE_ON_CANCELLATION", "RETAIN_ON_CANCELLATION", "NO_EXTERNALIZED_CHECKPOINTS"},
		Description: "Whether the retained checkpoints survive the job: deleted when it is cancelled, kept when it is cancelled, or never kept once it ends.",
	}
	CheckpointStorage = &Option{
		Key: "execution.checkpointing.storage", Scope: ScopeBoth, Type: TypeEnum, Values: []string{"jobmanager", "filesystem"},
		FallbackKeys: []string{"state.checkpoint-storage"},
		Description:  "Where checkpoints are stored. Unset: filesystem when execution.checkpointing.dir is set, else jobmanager (in memory, lost with the JobManager).",
	}
	CheckpointsDir = &Option{
		Key: "execution.checkpointing.dir", Scope: ScopeBoth, Type: TypeString, AbsolutePathOrURI: true,
		FallbackKeys: []string{"state.checkpoints.dir"},
		Description:  "URI of the directory for checkpoint data and metadata (e.g. file:///var/weir/checkpoints).",
	}
	CheckpointInlineThreshold = &Option{
		Key: "execution.checkpointing.data-inline-threshold", Scope: ScopeBoth, Type: TypeMemorySize, Default: "20kb", Min: bound(0), Max: bound(1 << 20),
		FallbackKeys: []string{"state.storage.fs.memory-threshold"},
		Description: "With a checkpoint directory (file or s3), state of at most this size is sent inline in the acknowledgement and kept in the " +
			"checkpoint's _metadata instead of an object of its own: fewer, larger writes. At most 1mb; 0 writes every piece of state as an object. " +
			"However many operators a subtask chains, at most 1mb of its state travels inline per checkpoint; the rest is written as objects.",
	}
	SavepointDir = &Option{
		Key: "execution.checkpointing.savepoint-dir", Scope: ScopeBoth, Type: TypeString, AbsolutePathOrURI: true,
		FallbackKeys: []string{"state.savepoints.dir"},
		Description:  "Default URI of the directory for savepoints when a savepoint is triggered without a target directory.",
	}
	UnalignedCheckpoints = &Option{
		Key: "execution.checkpointing.unaligned.enabled", Scope: ScopeBoth, Type: TypeBool, Default: "false",
		FallbackKeys: []string{"execution.checkpointing.unaligned"},
		Description:  "Let barriers overtake buffered records, storing in-flight data in the checkpoint, so that checkpoints complete under backpressure. Requires EXACTLY_ONCE and max-concurrent-checkpoints 1.",
	}
	AlignedCheckpointTimeout = &Option{
		Key: "execution.checkpointing.aligned-checkpoint-timeout", Scope: ScopeBoth, Type: TypeDuration, Default: "0",
		FallbackKeys: []string{"execution.checkpointing.alignment-timeout"},
		Description:  "With unaligned checkpoints enabled: time a checkpoint starts aligned before it switches to unaligned; 0 starts unaligned.",
	}
	CheckpointsAfterTasksFinish = &Option{
		Key: "execution.checkpointing.checkpoints-after-tasks-finish", Scope: ScopeBoth, Type: TypeBool, Default: "true",
		FallbackKeys: []string{"execution.checkpointing.checkpoints-after-tasks-finish.enabled"},
		Description: "Keep taking checkpoints after some tasks have finished, so that bounded sources do not stop checkpoints of the rest of the job. " +
			"Only true is supported: a job that sets false (Flink: no checkpoint once a task finished) is refused at submission.",
	}
)

// Restart strategies. Defaults follow Flink except where noted.
var (
	RestartStrategy = &Option{
		Key: "restart-strategy.type", Scope: ScopeBoth, Type: TypeEnum,
		Values:       []string{"none", "off", "disable", "fixed-delay", "exponential-delay", "failure-rate"},
		FallbackKeys: []string{"restart-strategy"},
		Description:  "How a failed job restarts: none, off and disable never restart; fixed-delay, exponential-delay and failure-rate as configured below. Unset: exponential-delay when checkpointing is enabled, else none.",
	}
	FixedDelayAttempts = &Option{
		Key: "restart-strategy.fixed-delay.attempts", Scope: ScopeBoth, Type: TypeInt, Default: "1", Min: bound(0),
		Description: "fixed-delay: restarts tried before the job fails.",
	}
	FixedDelayDelay = &Option{
		Key: "restart-strategy.fixed-delay.delay", Scope: ScopeBoth, Type: TypeDuration, Default: "1 s",
		Description: "fixed-delay: time between two restart attempts.",
	}
	ExponentialDelayInitialBackoff = &Option{
		Key: "restart-strategy.exponential-delay.initial-backoff", Scope: ScopeBoth, Type: TypeDuration, Default: "1 s",
		Description: "exponential-delay: backoff before the first restart.",
	}
	ExponentialDelayMaxBackoff = &Option{
		Key: "restart-strategy.exponential-delay.max-backoff", Scope: ScopeBoth, Type: TypeDuration, Default: "2 min",
		Description: "exponential-delay: largest backoff between restarts. weir default; Flink 1.19+ uses 1 min.",
	}
	ExponentialDelayBackoffMultiplier = &Option{
		Key: "restart-strategy.exponential-delay.backoff-multiplier", Scope: ScopeBoth, Type: TypeFloat, Default: "1.4", Min: bound(1),
		Description: "exponential-delay: factor by which the backoff grows after each failure. weir default; Flink 1.19+ uses 1.5.",
	}
	ExponentialDelayResetBackoffThreshold = &Option{
		Key: "restart-strategy.exponential-delay.reset-backoff-threshold", Scope: ScopeBoth, Type: TypeDuration, Default: "10 min", Min: bound(1),
		Description: "exponential-delay: time the job must run without failure for the backoff to return to initial-backoff. weir default; Flink uses 1 h.",
	}
	ExponentialDelayJitterFactor = &Option{
		Key: "restart-strategy.exponential-delay.jitter-factor", Scope: ScopeBoth, Type: TypeFloat, Default: "0.1", Min: bound(0), Max: bound(1),
		Description: "exponential-delay: random fraction added to or subtracted from each backoff, so that jobs failing together do not restart together.",
	}
	ExponentialDelayAttemptsBeforeResetBackoff = &Option{
		Key: "restart-strategy.exponential-delay.attempts-before-reset-backoff", Scope: ScopeBoth, Type: TypeInt, Default: "2147483647", Min: bound(1),
		Description: "exponential-delay: restarts tried before the job fails, counted since the backoff was last reset. The default means unlimited.",
	}
	FailureRateMaxFailuresPerInterval = &Option{
		Key: "restart-strategy.failure-rate.max-failures-per-interval", Scope: ScopeBoth, Type: TypeInt, Default: "1", Min: bound(1),
		Description: "failure-rate: failures within failure-rate-interval after which the job fails instead of restarting.",
	}
	FailureRateInterval = &Option{
		Key: "restart-strategy.failure-rate.failure-rate-interval", Scope: ScopeBoth, Type: TypeDuration, Default: "1 min", Min: bound(1),
		Description: "failure-rate: window in which failures are counted.",
	}
	FailureRateDelay = &Option{
		Key: "restart-strategy.failure-rate.delay", Scope: ScopeBoth, Type: TypeDuration, Default: "1 s",
		Description: "failure-rate: time between two restart attempts.",
	}
)

// User expressions (CEL in map, filter and flat-map). weir-specific.
var (
	ExpressionCostLimit = &Option{
		Key: "weir.expression.cost-limit", Scope: ScopeBoth, Type: TypeInt, Default: "1000000", Min: bound(1),
		Description: "Most cost units one evaluation of an expression (one record through a map, filter or flat-map) may use; " +
			"past it the job fails with an error naming the operator, the expression and this limit. A unit is about one operation: " +
			"a function call or comparison, plus one per 10 bytes of its string arguments and result and one per element of a list " +
			"or map it returns; a step of a comprehension; a list literal 10 and a map literal 30, plus one per element; " +
			"a value written to the output record 2 (see docs/jobs.md). The default allows at most about 0.5 s of CPU and " +
			"45 MB of memory per record. weir-specific.",
	}
)

// S3-compatible object storage for s3:// checkpoint and savepoint
// directories, with Flink's keys. Cluster options: each daemon reads them
// from its own configuration, and opens one client with them.
var (
	S3Endpoint = &Option{
		Key: "s3.endpoint", Scope: ScopeCluster, Type: TypeString,
		Description: "Endpoint of the S3-compatible object store of s3:// directories: host[:port] (HTTPS), or a URL http://host:port or https://host:port. " +
			"Unset: Amazon S3.",
	}
	S3AccessKey = &Option{
		Key: "s3.access-key", Scope: ScopeCluster, Type: TypeString, Secret: true, FallbackKeys: []string{"s3.access.key"},
		Description: "Access key id for s3:// directories, with s3.secret-key. Unset: the standard chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, " +
			"~/.aws/credentials, then the instance's IAM role).",
	}
	S3SecretKey = &Option{
		Key: "s3.secret-key", Scope: ScopeCluster, Type: TypeString, Secret: true, FallbackKeys: []string{"s3.secret.key"},
		Description: "Secret access key for s3:// directories, with s3.access-key.",
	}
	S3Region = &Option{
		Key: "s3.region", Scope: ScopeCluster, Type: TypeString,
		Description: "Region of the buckets of s3:// directories. Unset: asked of the store once per bucket (us-east-1 for MinIO).",
	}
	S3PathStyleAccess = &Option{
		Key: "s3.path-style-access", Scope: ScopeCluster, Type: TypeBool, Default: "false", FallbackKeys: []string{"s3.path.style.access"},
		Description: "Address buckets as endpoint/bucket (path style, needed by most MinIO and on-premises stores) instead of bucket.endpoint " +
			"(virtual-host style); an IP-address endpoint always uses path style.",
	}
	S3EntropyKey = &Option{
		Key: "s3.entropy.key", Scope: ScopeCluster, Type: TypeString,
		Description: "A path segment of an s3:// checkpoint directory (e.g. _entropy_ in s3://bucket/_entropy_/checkpoints) that is replaced by " +
			"random characters in the keys of state objects, spreading writes over key prefixes, and removed from _metadata and other paths that " +
			"must be found by name (see docs/checkpointing.md). Unset: no entropy injection.",
	}
	S3EntropyLength = &Option{
		Key: "s3.entropy.length", Scope: ScopeCluster, Type: TypeInt, Default: "4", Min: bound(1), Max: bound(64),
		Description: "Number of random characters that replace s3.entropy.key.",
	}
	S3SSLCA = &Option{
		Key: "s3.ssl.ca", Scope: ScopeCluster, Type: TypeString, AbsolutePathOrURI: true,
		Description: "PEM CA certificate(s) that verify the certificate of an https s3.endpoint, instead of the system roots (a private CA, " +
			"as with AWS_CA_BUNDLE); read at start. Unset: the system roots. Refused with an http:// endpoint. weir-specific.",
	}
)

// JobManager high availability through etcd (docs/high-availability.md),
// with Flink's keys where they exist.
var (
	HighAvailabilityType = &Option{
		Key: "high-availability.type", Scope: ScopeCluster, Type: TypeEnum, Default: "none", Values: []string{"none", "etcd"},
		FallbackKeys: []string{"high-availability"},
		Description: "none: a single JobManager, whose jobs and checkpoint history are lost with it. etcd: JobManagers elect a leader " +
			"through etcd and a standby takes over the jobs of a failed leader.",
	}
	HighAvailabilityEtcdEndpoints = &Option{
		Key: "high-availability.etcd.endpoints", Scope: ScopeCluster, Type: TypeString,
		Description: "etcd endpoints as comma-separated host:port, http://host:port or https://host:port (all http or all https) for " +
			"high-availability.type: etcd. host:port is plaintext unless high-availability.etcd.tls.enabled.",
	}
	HighAvailabilityClusterID = &Option{
		Key: "high-availability.cluster-id", Scope: ScopeCluster, Type: TypeString, Default: "default",
		Description: "Name of the cluster in etcd: every key lives under /weir/<cluster-id>/, so several clusters may share one etcd.",
	}
	HighAvailabilityStorageDir = &Option{
		Key: "high-availability.storageDir", Scope: ScopeCluster, Type: TypeString, AbsolutePathOrURI: true,
		FallbackKeys: []string{"high-availability.storage-dir"},
		Description: "Directory or s3:// URI for what is too large for etcd (job graphs); etcd holds pointers to it. Required with " +
			"high-availability.type: etcd, and reachable from every JobManager.",
	}
	HighAvailabilityEtcdLeaseTTL = &Option{
		Key: "high-availability.etcd.lease-ttl", Scope: ScopeCluster, Type: TypeDuration, Default: "15 s", Min: bound(float64(2 * time.Second)), Max: bound(float64(time.Hour)),
		Description: "Time-to-live of a JobManager's etcd session: how long a dead leader keeps its leadership before a standby takes over. " +
			"Shorter fails over faster; longer tolerates longer pauses of the leader or of etcd (see docs/high-availability.md).",
	}
	HighAvailabilityEtcdTLSEnabled = &Option{
		Key: "high-availability.etcd.tls.enabled", Scope: ScopeCluster, Type: TypeBool, Default: "false",
		Description: "TLS to etcd (TLS 1.2 or later, the server's certificate verified with its host name). Also on, whatever this key says, " +
			"when the endpoints are https://; host:port endpoints then use TLS, and http:// endpoints are refused. weir-specific.",
	}
	HighAvailabilityEtcdTLSCert = &Option{
		Key: "high-availability.etcd.tls.cert", Scope: ScopeCluster, Type: TypeString, AbsolutePathOrURI: true,
		Description: "PEM client certificate presented to etcd (for an etcd with --client-cert-auth); reloaded when the file changes. " +
			"Needs high-availability.etcd.tls.key. Unset: no client certificate.",
	}
	HighAvailabilityEtcdTLSKey = &Option{
		Key: "high-availability.etcd.tls.key", Scope: ScopeCluster, Type: TypeString, AbsolutePathOrURI: true,
		Description: "PEM private key of high-availability.etcd.tls.cert; reloaded when the file changes.",
	}
	HighAvailabilityEtcdTLSCA = &Option{
		Key: "high-availability.etcd.tls.ca", Scope: ScopeCluster, Type: TypeString, AbsolutePathOrURI: true,
		Description: "PEM CA certificate(s) that verify etcd's server certificate (etcd's --trusted-ca-file is the other direction), " +
			"instead of the system roots; read at start. Unset: the system roots.",
	}
)

// Security (docs/security.md), with Flink's keys where they exist. Cluster
// options: a job file cannot change them.
var (
	SSLInternalEnabled = &Option{
		Key: "security.ssl.internal.enabled", Scope: ScopeCluster, Type: TypeBool, Default: "false",
		Description: "Mutual TLS on every connection between daemons: JobManager and TaskManager gRPC, the TaskManagers' data plane. " +
			"Every daemon presents security.ssl.internal.cert and accepts only peers whose certificate security.ssl.internal.ca signed " +
			"(host names are not checked: dedicate the CA to the cluster). On the JobManager's port, which also serves the job API, " +
			"daemons are told apart by the TLS server name weir-internal; gateway calls over anything else are refused.",
	}
	SSLInternalCert = &Option{
		Key: "security.ssl.internal.cert", Scope: ScopeCluster, Type: TypeString, AbsolutePathOrURI: true,
		Description: "PEM certificate (chain) this daemon presents on internal connections; reloaded when the file changes.",
	}
	SSLInternalKey = &Option{
		Key: "security.ssl.internal.key", Scope: ScopeCluster, Type: TypeString, AbsolutePathOrURI: true,
		Description: "PEM private key of security.ssl.internal.cert; reloaded when the file changes.",
	}
	SSLInternalCA = &Option{
		Key: "security.ssl.internal.ca", Scope: ScopeCluster, Type: TypeString, AbsolutePathOrURI: true,
		Description: "PEM certificate(s) of the CA that signs every daemon's internal certificate.",
	}
	SSLAPIEnabled = &Option{
		Key: "security.ssl.api.enabled", Scope: ScopeCluster, Type: TypeBool, Default: "false",
		Description: "TLS on the job API (jobmanager.rpc.port, the port the weir CLI talks to; the CLI reads the same keys). " +
			"Flink: security.ssl.rest.enabled. With security.ssl.internal.enabled too, plaintext connections to the JobManager are refused.",
	}
	SSLAPICert = &Option{
		Key: "security.ssl.api.cert", Scope: ScopeCluster, Type: TypeString, AbsolutePathOrURI: true,
		Description: "PEM certificate of the job API (server); for the CLI, its client certificate.",
	}
	SSLAPIKey = &Option{
		Key: "security.ssl.api.key", Scope: ScopeCluster, Type: TypeString, AbsolutePathOrURI: true,
		Description: "PEM private key of security.ssl.api.cert.",
	}
	SSLAPICA = &Option{
		Key: "security.ssl.api.ca", Scope: ScopeCluster, Type: TypeString, AbsolutePathOrURI: true,
		Description: "PEM CA certificate(s): for the CLI, the CA of the server's certificate; for the server with " +
			"security.ssl.api.authentication-enabled, the CA of the clients' certificates.",
	}
	SSLAPIAuthentication = &Option{
		Key: "security.ssl.api.authentication-enabled", Scope: ScopeCluster, Type: TypeBool, Default: "false",
		Description: "The job API requires a client certificate signed by security.ssl.api.ca. Flink: security.ssl.rest.authentication-enabled.",
	}
	IOAllowedPaths = &Option{
		Key: "io.allowed-paths", Scope: ScopeCluster, Type: TypeString, AbsoluteDirList: true,
		Description: "Comma-separated absolute directories that jobs may read and write (file-source, file-sink, checkpoint, " +
			"savepoint and dispose paths), checked after resolving symbolic links. Empty: no restriction (a warning is logged " +
			"when TLS is on). weir-specific.",
	}
)

// allOptions is the registry: an option missing here is unknown to Load and
// panics in the getters.
var allOptions = []*Option{
	JobManagerRPCAddress, JobManagerRPCPort, JobManagerBindHost,
	TaskManagerHost, TaskManagerRPCPort, TaskManagerDataPort, TaskManagerNumberOfTaskSlots,
	TaskManagerRegistrationBackoffMax, TaskManagerBindHost,
	JobManagerProcessSize, TaskManagerProcessSize, NetworkMemoryFraction, NetworkMemoryMin, NetworkMemoryMax,
	JobStoreMaxCapacity, JobStoreExpirationTime,
	HeartbeatInterval, HeartbeatTimeout, SlotRequestTimeout, ClusterEvenlySpreadOutSlots,
	TaskCancellationTimeout, TaskCancellationInterval, ShutdownTimeout,
	LogFormat, LogLevel, MetricsPromPort, MetricsPprofEnabled,
	SegmentSize, BufferTimeout, BuffersPerChannel, FloatingBuffersPerGate, MaxBuffersPerChannel,
	PartitionRequestTimeout, NetworkHandshakeTimeout, NetworkMaxPendingConnectionsPerHost, NetworkMaxPendingConnections,
	Parallelism, MaxParallelism,
	CheckpointingInterval, CheckpointingMode, CheckpointingTimeout, CheckpointingMinPause,
	TolerableFailedCheckpoints, MaxConcurrentCheckpoints, NumRetainedCheckpoints,
	ExternalizedCheckpointRetention, CheckpointStorage, CheckpointsDir, SavepointDir, CheckpointInlineThreshold,
	UnalignedCheckpoints, AlignedCheckpointTimeout, CheckpointsAfterTasksFinish,
	RestartStrategy, FixedDelayAttempts, FixedDelayDelay,
	ExponentialDelayInitialBackoff, ExponentialDelayMaxBackoff, ExponentialDelayBackoffMultiplier,
	ExponentialDelayResetBackoffThreshold, ExponentialDelayJitterFactor, ExponentialDelayAttemptsBeforeResetBackoff,
	FailureRateMaxFailuresPerInterval, FailureRateInterval, FailureRateDelay,
	ExpressionCostLimit,
	S3Endpoint, S3AccessKey, S3SecretKey, S3Region, S3PathStyleAccess, S3EntropyKey, S3EntropyLength, S3SSLCA,
	HighAvailabilityType, HighAvailabilityEtcdEndpoints, HighAvailabilityClusterID, HighAvailabilityStorageDir, HighAvailabilityEtcdLeaseTTL,
	HighAvailabilityEtcdTLSEnabled, HighAvailabilityEtcdTLSCert, HighAvailabilityEtcdTLSKey, HighAvailabilityEtcdTLSCA,
	SSLInternalEnabled, SSLInternalCert, SSLInternalKey, SSLInternalCA,
	SSLAPIEnabled, SSLAPICert, SSLAPIKey, SSLAPICA, SSLAPIAuthentication, IOAllowedPaths,
}
