// Package jobmanager is the JobManager daemon: the gRPC shell around the
// pure scheduler (package scheduler). It owns
//
//   - the gRPC server on jobmanager.rpc.address:port (or bind-host): the
//     public JobService, the JobManagerGateway for TaskManagers, the
//     standard health service and reflection;
//   - job submission: parsing and validating the job file (package
//     jobgraph) and its config over the cluster's, storing it in the HA
//     store, and handing it to the scheduler;
//   - the TaskManager connections: registration, the heartbeat streams
//     (a broken stream means the TaskManager is lost at once, which is
//     what makes a SIGKILLed TaskManager visible in milliseconds), and one
//     TaskExecutorGateway client per TaskManager;
//   - checkpointing (checkpointing.go): the shell around each job
//     execution's pure checkpoint coordinator (package coordinator), its
//     storage (package snapshot) and the HA store's checkpoint id counter
//     and completed checkpoints;
//   - failover: the restart strategy of each job, reading the checkpoint a
//     restarted job restores from, and the restart metrics and log lines;
//   - the Prometheus metrics weir_jobmanager_* and, per job while it is not
//     yet terminal, weir_job_* (metrics.go, docs/metrics.md).
//
// # Concurrency
//
// One mutex owns the scheduler. Every gRPC handler, the ticker and the
// TaskManager clients turn what they learn into a scheduler.Event and call
// step, which applies it and carries out the returned actions while still
// holding the mutex. Carrying out never blocks: RPCs to a TaskManager are
// queued to that TaskManager's own goroutine, which sends them in order (so
// a CancelTask never overtakes the SubmitTask it cancels) and reports a
// failed SubmitTask back as an event.
//
// # Checkpointing
//
// Every job has a coordinator, so that any job can take savepoints; it
// triggers periodic checkpoints when execution.checkpointing.interval is
// set (cluster or job config). Submission validates the options, the
// topology and the storage (its directory is created and probed) before
// anything is stored.
// The coordinator is built when the scheduler deploys the tasks (the job
// switches to RUNNING) with the next id of the HA store's counter and the
// completed checkpoints the store holds, as this leader knows them (read
// off the mutex before the job was admitted and kept current after each
// of its writes: checkpointing.go), and stopped when the job leaves
// RUNNING. It is fed under the same mutex: task RUNNING/FINISHED from the
// scheduler's ExecutionStateChanged (already attempt-fenced), acknowledgements
// and declines from the gateway, Tick from one timer goroutine for all jobs
// (set to the earliest NextTriggerTime), and MetadataWritten from the
// goroutine that wrote _metadata. Its actions are carried out in order:
// the id counter is written on a goroutine and a trigger is held until the
// write covering its id succeeded; RPCs go through the TaskManager's queue
// (behind SubmitTask); the _metadata write, HA bookkeeping and file
// deletion run on goroutines of their own, never on the mutex; FailJob
// becomes a scheduler GlobalFailure.
//
// # Savepoints
//
// TriggerSavepoint and StopJob (savepoint.go) register a waiter, feed the
// coordinator TriggerSavepoint (target: the request's directory, else
// execution.checkpointing.savepoint-dir) and wait off the mutex for its
// SavepointDone or SavepointFailed. The tasks write into chk-<id> as for a
// checkpoint; at WriteMetadata a goroutine creates the savepoint
// directory, copies the referenced files into it and writes _metadata
// there (snapshot.MaterializeSavepoint), then deletes chk-<id>. A savepoint
// never enters the HA store. SubmitJob with from_savepoint loads and
// matches the savepoint before anything is stored, then records it in the
// HA store as the job's first completed checkpoint (flagged Savepoint: never
// deleted) with the id counter at its id + 1, and the scheduler deploys
// the first attempts with its state.
//
// # Failover
//
// The scheduler decides (full restarts through the job's restart
// strategy, built at submission by restart.FromConfig); the shell does the
// I/O. The job leaving RUNNING for RESTARTING stops the coordinator like
// any other exit from RUNNING. When the scheduler asks for the restore
// state (LoadRestoreState), a goroutine waits until the stopped
// coordinator's _metadata writes and checkpoint deletions have ended (so
// its last checkpoint is either in the HA store for good or gone), takes
// the newest completed checkpoint the HA store holds, reads its _metadata
// with snapshot.LoadMetadata, off the mutex, and feeds RestoreLoaded. The
// redeployment (RESTARTING -> RUNNING) starts a new coordinator with the
// HA store's completed checkpoints and ids above every id used before;
// the old coordinator's history and counts are kept, so a job has one
// checkpoint history. The tick loop wakes at the scheduler's NextRestart,
// so a restart is not late by a tick. JobRestarted and JobRecovered become metrics and the
// "job recovered" log line.
//
// A scheduler step and a coordinator step may each cause the other (a
// FailJob fails the job, the job leaving RUNNING stops the coordinator).
// serialize queues such nested steps behind the current one, so every
// step's actions are carried out in order and never interleaved.
//
// # Invariants
//
//   - Nothing is stored or deployed for a job that fails validation.
//   - A TaskManager client belongs to one registration: it is stopped when
//     that registration is lost or replaced, and a heartbeat stream is
//     fenced to the registration it first heartbeated for, so a stale
//     stream that closes late cannot remove a newer registration.
//   - A call that names a TaskManager (heartbeat, state report) or an
//     attempt deployed on one (checkpoint acknowledgement, decline) takes
//     effect only when it comes from the identity that TaskManager
//     registered from, and a live registration is never replaced from
//     another identity (identity.go).
//   - Close stops every goroutine the JobManager started (server, ticker,
//     checkpoint timer, metadata writers, checkpoint deleters, restore
//     loaders, heartbeat receivers, TaskManager clients) before it returns.
//   - A checkpoint id is sent to a task only once the HA store's counter
//     covers it; a completed checkpoint is in the HA store before the
//     coordinator hears its _metadata was written, and leaves the store
//     before its files are deleted.
//   - Storage I/O and HA store calls never run while the mutex is held.
//   - Savepoint files are never deleted by the JobManager, except those of
//     a savepoint that failed (chk-<id>, or a directory written after it
//     was aborted), and by DisposeSavepoint on request.
//   - A job is kept after it ended only as long as the job store allows
//     (jobstore.max-capacity, jobstore.expiration-time); when the scheduler
//     drops it (JobRemoved), its checkpoint statistics and metric series go
//     with it, so nothing the JobManager keeps grows with every job it ran.
package jobmanager
