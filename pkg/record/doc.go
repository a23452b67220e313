// Package record owns weir's data model: the records that flow between
// operators, their values, and their two serialised forms (a compact binary
// form for the network and state, and JSON for users).
//
// In user terms a record is a JSON object. In memory it is a *Record: an
// ordered set of uniquely named fields, built to be reused on the hot path
// (Reset keeps capacity, Decoder interns field names) so that steady-state
// processing allocates nothing per record.
//
// # Invariants
//
//   - Field names in a Record are unique. Set replaces the value of an
//     existing field in place (keeping its position) or appends a new field.
//     Code that appends to Record.Fields directly must keep names unique;
//     Decode rejects binary input with a duplicate name as corrupt.
//   - Insertion order is kept: AppendBinary and AppendJSON write fields in
//     order, and Decode and DecodeJSON restore that order.
//   - The binary form round-trips exactly: Decode(AppendBinary(r)) is Equal
//     to r, field order, kinds and float bits included.
//   - Ints stay ints: an Int never becomes a Float through binary or JSON.
//     JSON numbers without fraction or exponent that fit in int64 decode as
//     KindInt; AppendJSON writes every Float so that it decodes as a Float
//     again (2.0 is written "2.0", never "2").
//   - A Value is immutable once built. Lists and maps inside a Value are
//     shared, not copied, by Value copies, CopyFrom and Clone; nobody may
//     modify a slice passed to List or a *Record passed to Map afterwards.
//     Decode therefore never reuses nested storage of the record it decodes
//     into: only the top-level Fields slice is reused.
//
// # Equality and hashing
//
// Equal is structural and kind-sensitive: Int(5) and Float(5) differ, and two
// maps are equal only if their fields are equal in the same order (the order
// is part of a record, as the binary round-trip shows). Floats compare like
// Java's Double.equals, which Flink users know from keys: by bits, with every
// NaN equal to every other NaN, and 0.0 different from -0.0.
//
// Hash64 and AppendKey agree with Equal: equal values have equal keys and
// hashes. Hash64 is FNV-1a over the canonical key bytes (AppendKey) followed
// by murmur3's fmix64 finalizer; it has a fixed seed, so it is stable across
// processes, runs and machines. Key groups (package state) depend on that:
// changing the hash changes which subtask owns a key and breaks restoring
// savepoints, so it must never change.
package record
