// Package cli implements the `weir` command-line client: the cobra command
// tree, the calls to the JobManager's public gRPC API (weirpb.JobService) and
// the formatting of what comes back, as tables for people and as JSON for
// scripts. One command reads checkpoint storage itself rather than asking the
// JobManager: `weir checkpoint inspect` (inspect.go), with the storage drivers
// that main hands to Main (StorageDrivers), as the daemons' mains register
// theirs.
//
// With high availability, weir finds the leading JobManager itself, from a
// list of addresses (--jobmanager host1:6123,host2:6123) or through the HA
// service that main provides (Services.HA, etcd), and follows a standby's
// answer to the leader; see leader.go.
//
// weir reads the configuration file the daemons read, found the same way
// (--config, else $WEIR_CONF_DIR/config.yaml, else /etc/weir/config.yaml;
// config.ConfigFile), with -D on top: its jobmanager.rpc.* or
// high-availability.* keys find the JobManager, its security.ssl.api.*
// keys its TLS (leader.go route has the precedence).
//
// Two commands validate job files themselves, with the operator types that
// main links (as the JobManager does): `weir info` shows a job's plan
// without any cluster, chained by jobgraph.Vertices as the JobManager
// chains it; `weir run -p N -D key=value` writes the flags into the job
// file it submits (jobfile.go), so that the JobManager, its HA store and a
// recovering JobManager all read one file that says what the job runs with.
//
// The verbs are Apache Flink's (run, info, list, cancel, stop, savepoint,
// checkpoints), and so are the flags a Flink user types (-p, -s, -n, -D,
// -m, --fromSavepoint, --savepointPath, list -r/-s/-a, --type canonical);
// the feel is kubectl's (-o json on every read command, quiet success, one
// clear line on failure).
//
// Invariants:
//   - The JSON shapes are defined by the tagged structs in json.go, never by
//     protojson, so that a field of the proto can be added or renamed without
//     changing what scripts parse. Fields are added, never renamed.
//   - Data goes to stdout, everything meant for a person only (progress,
//     confirmations, errors) to stderr, so `weir run -d job.yaml` and
//     `weir status -o json ID | jq` compose.
//   - Exit codes: 0 success, 1 a failed call or a job that did not FINISH,
//     2 bad usage (cobra's argument and flag errors), 130 interrupted.
//   - An error is one line: CEL's multi-line compile errors are joined
//     (oneLine), any other control character is escaped (printable).
//   - A relative local path of a savepoint for the JobManager to read (to
//     start from, to dispose of) is made absolute here: the JobManager
//     would resolve it against its own working directory. A target
//     directory is not: the JobManager and every TaskManager write there,
//     and the JobManager refuses a relative one.
//   - The client never acts on a job the user did not name: an interrupted
//     `weir run` leaves the job running and says how to cancel it.
//   - A call goes to a second JobManager only when the first provably did
//     not act on it: it could not be reached, or it refused the call as a
//     standby (UNAVAILABLE with the leader's address in the trailer). Any
//     other answer is final, so a submit, cancel or savepoint is never
//     sent twice (leader.go).
//   - The gRPC connections (one per JobManager asked) and the HA service's
//     client are created lazily, by the first call, and closed before Run
//     returns; Run starts no goroutine that outlives it.
package cli
