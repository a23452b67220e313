// Package s3 is the storage driver of s3://bucket/prefix checkpoint and
// savepoint directories, for Amazon S3 and S3-compatible stores (MinIO,
// Ceph, R2), through github.com/minio/minio-go/v7. It implements the
// primitives of package snapshot (snapshot.Store) and nothing else: layout,
// _metadata, checksums and inline state are snapshot's.
//
// A daemon's main registers it once, with the daemon's own configuration
// (Flink's keys s3.endpoint, s3.access-key, s3.secret-key, s3.region,
// s3.path-style-access, s3.entropy.key, s3.entropy.length, and s3.ssl.ca):
//
//	if err := s3.Register(cfg); err != nil { ... }
//
// Library packages never import it, so that the pure scheduler and
// coordinator, which import snapshot, do not link minio-go.
//
// # Requests
//
//   - A state object is streamed: parts of PartSize bytes are buffered and
//     uploaded one at a time (multipart upload); an object smaller than
//     one part is a single PUT. Memory is bounded by one part per writer.
//   - _metadata is published with a conditional PUT (If-None-Match: *): of
//     two writers of the same checkpoint, at most one succeeds.
//   - Reads are ranged GETs; deletes are batched DeleteObjects requests (up
//     to 1000 keys each); a savepoint's state is copied server-side
//     (CopyObject, ComposeObject beyond 5 GiB).
//
// # Invariants
//
//   - An https endpoint's certificate is verified, host name included,
//     against the system roots or, with s3.ssl.ca, against that CA bundle
//     only (read once, by New). An untrusted certificate is not retried:
//     the error names s3.endpoint and s3.ssl.ca.
//   - Credentials never appear in an error, a log line or a String: errors
//     name the operation, the bucket and key, the S3 error code and the
//     HTTP status.
//   - Every request is retried on throttling (503 SlowDown, 429) and server
//     or transport errors, with capped exponential backoff and jitter, only
//     while its context allows (the checkpoint's deadline, a task's
//     cancellation); a context without a deadline gets Config.RetryBudget.
//     minio-go's own retries are off, so that this is the only loop.
//   - One client per endpoint and credentials per process, whatever the
//     number of jobs and tasks: the driver holds it, and New reuses a
//     client already made with the same settings.
//   - No goroutine outlives a call: uploads are synchronous, listings and
//     batch deletes are iterators.
package s3
