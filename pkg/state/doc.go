// Package state owns keyed state: the assignment of keys to key groups and
// of key groups to operator subtasks, and the heap state backend that holds
// one subtask's keyed state in memory.
//
// # Key groups
//
// As in Flink, a key never maps to a subtask directly. It maps to one of
// maxParallelism key groups, kg = hash(key) mod maxParallelism, where the
// hash is record.Value.Hash64 (stable across processes and runs). Subtask i
// of p owns the contiguous range of key groups computed exactly as Flink's
// KeyGroupRangeAssignment does, and rescaling from p to p' moves whole key
// groups, never splitting one. Invariants:
//
//   - maxParallelism is fixed for the life of a job (and its savepoints):
//     changing it reassigns every key. 0 < p <= maxParallelism.
//   - Every key group is owned by exactly one subtask, and
//     SubtaskForKeyGroup(kg) is the subtask whose range contains kg.
//   - KeyGroupFor must never change: state placed by one version must be
//     found by the next.
//
// # The heap backend
//
// KeyedStore keeps the values of one operator subtask in one Go map per key
// group, keyed by the canonical key bytes (record.Value.AppendKey). It is
// used by the subtask's single processing goroutine and is not safe for
// concurrent use. Lookups by []byte key do not allocate; a value is
// allocated once, when its key is first seen, and its pointer stays valid
// until the key is deleted, so operators update state in place.
//
// # Design note: asynchronous snapshots (next step)
//
// Checkpoints will need asynchronous snapshots, as Flink's heap backend
// does: the snapshot is frozen quickly at the barrier, then written per key
// group while processing continues. The per-key-group layout is the basis:
// a snapshot is written key group by key group, and restore after rescaling
// reads only the key groups of the new range. The intended mechanism is
// copy-on-write with version counters, like Flink's
// CopyOnWriteStateMap: the store keeps a version that a snapshot increments,
// each entry records the version it was last written in, and a write
// (GetOrCreate for modification, Delete) to an entry older than a running
// snapshot first copies it so the snapshot keeps the old one. For that the
// API keeps all access going through the store's methods (no exported map),
// and values are reached through *V returned per call; callers must not
// keep *V across records once snapshots exist, because a copy-on-write may
// replace it. Nothing of this is built yet.
package state
