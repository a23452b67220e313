// Package builtin owns weir's built-in operator types, registered by name
// in init (import it for its side effect, as with database/sql drivers):
//
//	sequence       source: {"key": k, "seq": s} per key, deterministic
//	nexmark        source: Nexmark person, auction and bid events, deterministic
//	file-source    source: lines or JSON objects from files
//	map            transform: an expression builds the output record
//	filter         transform: an expression keeps or drops the record
//	flat-map       transform: an expression returns 0..n records
//	aggregate      keyed transform: running count/sum/min/max/avg per key
//	file-sink      sink: part files in a directory
//	print-sink     sink: JSON lines on the TaskManager's stdout
//	blackhole-sink sink: counts and discards
//
// docs/jobs.md ("Operators") is the user reference for their properties;
// every PropertySpec here says the same thing in short.
//
// Invariants:
//   - each type's Validate and its constructor share one parse function
//     (parseX returning a config struct), so a job accepted at submission
//     never fails at deployment because of its properties. What depends on
//     the TaskManager's machine (a file-source path exists, a file-sink
//     directory is writable) is checked at Open.
//   - file-source and file-sink check the TaskManager's io.allowed-paths
//     (operator.Context.AllowedPaths) at Open, file-source again for each
//     file it opens (one inside an allowed directory may be a link out of
//     it). Their errors name the file and line, never a line's content:
//     they reach clients (weir status).
//   - sources are deterministic functions of their position (sequence: next
//     seq and key index; file-source: file and byte offset), kept as small
//     structs so that they can be snapshotted and replayed.
//   - no per-record allocation, lock or syscall on the hot path once state
//     for a key exists; rate limits read the clock once per batch, not per
//     record (see rateLimiter).
//   - no goroutines: everything runs on the task's goroutine. A snapshot
//     (operator.Snapshotter) shares nothing with the live operator, so the
//     runtime may write it from its own goroutine.
//   - state items and keyed state values start with a version byte, and
//     restoring an item of another version or operator is an error, never
//     a silent misread.
//
// State kept in checkpoints: sequence (the position of each subtask, never
// one item per key: a sequence may have 10^18 keys), file-source
// (offset, line and done flag per file), aggregate (accumulators per key,
// by key group) and file-sink (pending part files: a two-phase-commit
// sink). map, filter, flat-map, print-sink and blackhole-sink are
// stateless. Every item-based state is a list of independent items that a
// subtask restored at any parallelism filters by ownership (key mod p,
// file assignment, part file subtask mod p).
//
// Every property has a documented range (docs/jobs.md, "Limits"), checked
// at submission, and nothing a source or sink allocates grows with a
// property's value beyond it: no state per key, no line longer than
// file-source's max-line-bytes.
package builtin
