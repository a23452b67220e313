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
// KeyedStore keeps the values of one operator subtask per key group: a Go
// map from the canonical key bytes (record.Value.AppendKey) to an entry,
// and a dense array of the same entries. It is used by the subtask's single
// processing goroutine and is not safe for concurrent use; its snapshots
// are read from other goroutines. Lookups by []byte key do not allocate; an
// entry (key, value, version, position) is allocated when its key is first
// seen. Get and GetOrCreate return *V for the caller to update in place;
// the pointer is valid until the next call of the store, because a
// copy-on-write may replace the entry, so callers never keep it across
// records.
//
// # Snapshots: copy-on-write
//
// A checkpoint captures the store at the barrier and writes it later, from
// another goroutine, key group by key group (the per-key-group layout is
// what lets a restore after rescaling read only the key groups of the new
// range). The capture is copy-on-write, as Flink's CopyOnWriteStateMap:
//
//   - The store has a version. Snapshot increments it, counts the snapshot
//     as active, and takes as its view each key group's array of entry
//     pointers as it is (a slice header), marking the group frozen up to
//     that length. That is O(key groups) and a few allocations, whatever
//     the number of keys: 4 µs for 128 key groups on a 2-core VM
//     (BenchmarkKeyedStoreSnapshot), under 0.1 ms at 10 M keys.
//   - Every entry records the version in which it was created or last
//     copied. A Get or GetOrCreate of an entry of an older version while a
//     snapshot is active copies it first (clone, given to NewKeyedStore,
//     copies what the operator changes in place, e.g. a slice of
//     accumulators) and puts the copy in the map and the array: the
//     snapshot keeps the old entry. With no snapshot active the entry is
//     just marked current. The check on the per-record path is one
//     comparison of two integers; the copy happens at most once per entry
//     per checkpoint.
//   - A slot of a group's array below its frozen length is never written:
//     the first write there (an entry copy or a Delete's swap) copies the
//     group's array first (thaw: 8 bytes a key of the group, once per group
//     per checkpoint, about 0.1 ms for 80,000 keys). Appends write past
//     the frozen length. The snapshot's views are never written again.
//   - The snapshot sorts a copy of a view to write it (WriteKeyGroup), as
//     the view's order is the store's.
//   - Release (the owner calls it once the snapshot is written or dropped)
//     decrements the active count; the store reads the count atomically
//     before writing an old entry in place, so the snapshot's reads happen
//     before those writes. A snapshot never released is released by a
//     runtime cleanup once unreachable. While any snapshot is active the
//     store copies every entry older than the newest snapshot: with two
//     active, releasing the newer does not stop copies for the older (a
//     copy too many, never too few).
//
// Invariants: (1) an entry or array slot reachable from an active snapshot
// is never written by the store; (2) every entry of the store at Snapshot
// is in exactly one view slot and every view holds exactly the entries
// present at its Snapshot; (3) the store's entry for a key is the newest
// version, and entry.pos is its slot in the group's current array.
// TestSnapshotModel checks the contents against a plain map copied at each
// snapshot, with up to three snapshots read by other goroutines while the
// store changes.
//
// Costs moved off the barrier: after a checkpoint, the first update of each
// key allocates a copy of its entry (and what clone allocates), and the
// first write to each key group copies its pointer array; memory holds the
// old entries until the snapshot is released and collected. Each entry
// costs 40 bytes more than a bare value (version, key header, position,
// array slot).
// The per-record path without a snapshot: a lookup 1-3 ns slower than the
// plain map of values it replaced (BenchmarkKeyedStoreGetOrCreate,
// BenchmarkKeyedStoreGet), no allocation. On a 2-core VM with 10,000,000
// keys: see docs/benchmarks.md, "Synchronous snapshot at 10 M keys"
// (BenchmarkKeyedStoreSnapshot10M, builtin's BenchmarkAggregateSnapshot10M).
//
// Invariants of the serialised form (WriteKeyGroup, ReadKeyGroup): it
// starts with a format version byte and the operator's value format byte;
// entries are sorted by key bytes, so the bytes are a function of the
// state; an empty key group is zero bytes.
package state
