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
//   - the Prometheus gauges weir_jobmanager_*.
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
// # Invariants
//
//   - Nothing is stored or deployed for a job that fails validation.
//   - A TaskManager client belongs to one registration: it is stopped when
//     that registration is lost or replaced, and a heartbeat stream is
//     fenced to the registration it first heartbeated for, so a stale
//     stream that closes late cannot remove a newer registration.
//   - Close stops every goroutine the JobManager started (server, ticker,
//     heartbeat receivers, TaskManager clients) before it returns.
package jobmanager
