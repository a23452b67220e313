package state

import (
	"fmt"
	"sync/atomic"
)

// KeyedStore is the heap state backend of one operator subtask: values of
// type V by (key group, key bytes), held per key group of its range so that
// snapshots can be written, and rescaling can move state, per key group. It
// is copy-on-write (see the package doc): Snapshot costs O(key groups), and
// the first write of an entry after a snapshot copies that entry. It is not
// safe for concurrent use; its snapshots are.
type KeyedStore[V any] struct {
	rng KeyGroupRange
	// groups[kg-rng.Start] holds key group kg.
	groups []group[V]
	n      int
	clone  func(dst, src *V)
	// ver is the store's version: Snapshot increments it, and an entry
	// with entry.ver < ver was written before the latest snapshot.
	ver uint64
	// active counts the snapshots not yet released. The owner's
	// goroutine reads it; snapshots decrement it from theirs.
	active *atomic.Int64
}

// entry is one key and its value. Once a snapshot may read it (ver <
// store.ver while a snapshot is active) its key and val are never written
// again: the store writes a copy instead.
type entry[V any] struct {
	// ver and val first: the per-record path reads only them, so for a
	// small V they share a cache line.
	ver uint64 // the store version in which the entry was created or copied
	val V
	key string
	pos int // index in its group's ents; store-only, snapshots never read it
}

// group is one key group: a map for lookups and a dense array of the same
// entries that a snapshot takes as its view in O(1).
type group[V any] struct {
	m    map[string]*entry[V]
	ents []*entry[V]
	// frozen: ents[:frozen] may be the view of an active snapshot, so a
	// slot below it is never written; the store writes a copy of ents
	// instead (thaw). Appending writes at len(ents) >= frozen.
	frozen int
}

// NewKeyedStore returns an empty store for the key groups of r. clone
// copies *src into *dst so that dst shares nothing the store's owner
// changes in place later (for a V holding a slice: copy the slice); nil
// means plain assignment, which is right for a V without pointers, slices
// or maps. The store calls clone in its owner's goroutine, at the first
// write of an entry after a snapshot, while a snapshot is active.
func NewKeyedStore[V any](r KeyGroupRange, clone func(dst, src *V)) *KeyedStore[V] {
	return &KeyedStore[V]{
		rng: r, groups: make([]group[V], r.NumKeyGroups()), clone: clone, active: new(atomic.Int64),
	}
}

// Range returns the key groups the store holds.
func (s *KeyedStore[V]) Range() KeyGroupRange { return s.rng }

// Len returns the number of keys in all key groups.
func (s *KeyedStore[V]) Len() int { return s.n }

// group returns key group kg, panicking if kg is outside the range: a key
// routed to a subtask that does not own its key group is a bug in
// partitioning (in Flink, most often a non-deterministic key), and storing
// it would lose it on the next rescale.
func (s *KeyedStore[V]) group(kg int) *group[V] {
	if !s.rng.Contains(kg) {
		panic(fmt.Sprintf("state: key group %d is not in this subtask's key group range %s; "+
			"the key was routed to the wrong subtask", kg, s.rng))
	}
	return &s.groups[kg-s.rng.Start]
}

// Get returns the value of key in key group kg, or nil if absent. The
// caller may update the value in place until it calls another method of
// the store; it must not keep the pointer longer (a copy-on-write may
// replace the entry). It does not allocate unless it copies the entry
// (its first access since a snapshot that is still active).
func (s *KeyedStore[V]) Get(kg int, key []byte) *V {
	g := s.group(kg)
	e := g.m[string(key)]
	if e == nil {
		return nil
	}
	if e.ver != s.ver {
		e = s.own(g, e)
	}
	return &e.val
}

// Contains reports whether key is in key group kg. Unlike Get it never
// copies.
func (s *KeyedStore[V]) Contains(kg int, key []byte) bool {
	_, ok := s.group(kg).m[string(key)]
	return ok
}

// GetOrCreate returns the value of key in key group kg, adding a zero V if
// absent; the pointer is valid as for Get. It allocates when the key is new
// (the entry and a copy of the key) and as Get does.
func (s *KeyedStore[V]) GetOrCreate(kg int, key []byte) *V {
	g := s.group(kg)
	if e := g.m[string(key)]; e != nil {
		if e.ver != s.ver {
			e = s.own(g, e)
		}
		return &e.val
	}
	if g.m == nil {
		g.m = make(map[string]*entry[V])
	}
	e := &entry[V]{key: string(key), ver: s.ver, pos: len(g.ents)}
	c := cap(g.ents)
	g.ents = append(g.ents, e)
	if cap(g.ents) != c {
		g.frozen = 0 // a new array: no snapshot has seen it
	}
	g.m[e.key] = e
	s.n++
	return &e.val
}

// Delete removes key from key group kg, if present.
func (s *KeyedStore[V]) Delete(kg int, key []byte) {
	g := s.group(kg)
	e := g.m[string(key)]
	if e == nil {
		return
	}
	delete(g.m, e.key)
	// Swap the last entry into the hole. Only slots >= e.pos change, so
	// the array needs a copy only if e.pos is frozen.
	if e.pos < g.frozen {
		s.thaw(g)
	}
	last := len(g.ents) - 1
	if e.pos != last {
		moved := g.ents[last]
		g.ents[e.pos] = moved
		moved.pos = e.pos
	}
	g.ents[last] = nil
	g.ents = g.ents[:last]
	s.n--
}

// ForEach calls fn for each key of key group kg, in unspecified order,
// until fn returns false. fn must neither add nor delete keys nor change
// the value: v may be shared with a snapshot.
func (s *KeyedStore[V]) ForEach(kg int, fn func(key string, v *V) bool) {
	for _, e := range s.group(kg).ents {
		if !fn(e.key, &e.val) {
			return
		}
	}
}

// own makes e writable: in place when no snapshot is active, else by
// replacing it with a copy (e stays as the snapshots saw it). Called when
// e.ver != s.ver, i.e. e was last written before the latest snapshot.
//
// The check is conservative: while any snapshot is active, every entry
// older than the latest snapshot is copied, even if only a newer snapshot
// than the one that saw it was released. That costs a copy, never
// correctness. Reading active synchronises with Release, so that the
// snapshot's reads of e happen before the writes that follow here.
func (s *KeyedStore[V]) own(g *group[V], e *entry[V]) *entry[V] {
	if s.active.Load() == 0 {
		e.ver = s.ver
		g.frozen = 0
		return e
	}
	c := &entry[V]{key: e.key, ver: s.ver, pos: e.pos}
	if s.clone != nil {
		s.clone(&c.val, &e.val)
	} else {
		c.val = e.val
	}
	if c.pos < g.frozen {
		s.thaw(g)
	}
	g.ents[c.pos] = c
	g.m[c.key] = c
	return c
}

// thaw gives g an array of its own before a write below g.frozen: the old
// array stays, unchanged, with the snapshots that hold it. Once no
// snapshot is active there is nothing to protect and no copy is needed.
func (s *KeyedStore[V]) thaw(g *group[V]) {
	if s.active.Load() > 0 {
		ents := make([]*entry[V], len(g.ents), len(g.ents)+len(g.ents)/4+1)
		copy(ents, g.ents)
		g.ents = ents
	}
	g.frozen = 0
}
