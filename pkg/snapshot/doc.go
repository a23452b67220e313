// Package snapshot owns checkpoint storage: where the state of a checkpoint
// or savepoint is written, the canonical _metadata that describes it, and
// reading both back. It is weir's counterpart of Flink's CheckpointStorage,
// CheckpointStorageLocation, StreamStateHandle and the metadata of a
// CompletedCheckpoint.
//
// # Drivers
//
// As with database/sql, the package knows storage only through a small set
// of primitives (Store: create an object, publish one atomically, open,
// delete), chosen by the URI scheme of the configured directory:
//
//	jobmanager                 state inline in the acknowledgements, metadata
//	                           in the JobManager's memory (lost with it; a
//	                           warning is logged: not for production)
//	file:///data/checkpoints   a filesystem (shared by all processes)
//	/data/checkpoints, ./cp    the same, as a plain path
//	s3://bucket/checkpoints    S3-compatible object storage (package s3),
//	                           when main registered it
//
// file and jobmanager are built in. Other drivers implement Driver (which
// resolves a pointer to a Store) and are registered by the daemons' main
// functions with Register, never by a library package's blank import, so
// that the pure scheduler and coordinator, which import this package, do not
// link an S3 client. A scheme without a driver is an
// *UnsupportedSchemeError naming the supported ones; CheckPointer tells,
// without I/O, whether a pointer can be used.
//
// The primitives are those of an object store: no directory rename, and no
// listing needed for correctness (listing is only used to clean up garbage).
// Every primitive that does I/O takes a context.Context, and so does every
// function and method of this package that does I/O: storage I/O ends when
// the checkpoint's deadline passes or the task is canceled, and a driver
// retries only within it. Optional interfaces add what only some stores
// have: Copier (a server-side copy, for savepoints) and EntropyInjector
// (Flink's entropy injection: state objects spread over key prefixes, their
// handles recording where; _metadata at the path without the entropy key).
//
// # Layout
//
//	<dir>/<job-id>/chk-<id>/_metadata      the commit point, written last
//	<dir>/<job-id>/chk-<id>/<state files>  one or more per subtask
//	<dir>/<job-id>/shared/                 reserved: incremental state
//	<dir>/<job-id>/taskowned/              reserved: state owned by tasks
//	<savepoint-dir>/savepoint-<jobid6>-<random12>/_metadata and state files
//
// # Life cycle
//
// The JobManager opens the job's Storage (Open) and checks it at submission
// (Validate). For checkpoint n it takes CheckpointLocation(job, n) and sends
// Location.Path in the trigger; each TaskManager resolves that path
// (Storage.ResolveLocation, or CheckpointLocation with the same id), writes
// each task's state with CreateStateFile, and acknowledges with the returned
// StateHandles. Once every task has acknowledged, the JobManager assembles a
// Metadata and calls WriteMetadata: from then on the checkpoint is complete.
// A checkpoint that is aborted or subsumed is removed with Dispose; state
// that no checkpoint references (a late acknowledgement) with DisposeState. A
// savepoint is written by the tasks into the checkpoint location like a
// checkpoint; the JobManager then calls MaterializeSavepoint, which copies
// the referenced state files into a SavepointLocation and writes its
// _metadata there, and disposes of the checkpoint location. A restore
// reads LoadMetadata(path) and then OpenState / OpenKeyGroups per handle.
//
// # Invariants
//
//   - _metadata is written last, after every state file it references has
//     been written durably (fsync on a filesystem), and is published
//     atomically and never overwritten: a _metadata that can be read
//     describes a complete checkpoint. A crash, a full disk or a permission
//     error leaves either no _metadata or the previous valid one, never a
//     half-written one, and never touches other checkpoints.
//   - Whenever _metadata is visible, every state file it references exists:
//     Dispose and DisposeSavepoint delete _metadata first.
//   - Checkpoints and savepoints are self-contained and relocatable: a
//     handle's Path is the base name of a file in the same directory as
//     _metadata. Readers refuse any other path, which also keeps a crafted
//     _metadata from making DisposeSavepoint delete files elsewhere.
//   - Nothing read back is trusted: _metadata is checked for magic, format
//     version, length and CRC-32C, then for structure (Metadata.Validate);
//     state is checked for size and CRC-32C. A mismatch is an error naming
//     the file; nothing is ever restored silently from damaged data.
//   - Dispose deletes exactly one checkpoint's directory and nothing else.
//
// # The _metadata format
//
// See EncodeMetadata. The payload is JSON rather than protobuf: encoding/json
// of these structs is deterministic (struct fields in declaration order, no
// maps) and stable across Go and library releases, whereas protobuf's
// "deterministic" marshalling is explicitly not canonical across versions.
// JSON can be inspected with standard tools when a restore fails, and
// metadata is small (handles, not state), so its size does not matter.
package snapshot
