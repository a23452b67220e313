package state

import "fmt"

// KeyedStore is the heap state backend of one operator subtask: values of
// type V by (key group, key bytes), held in one map per key group of its
// range so that snapshots can be written, and rescaling can move state, per
// key group. It is not safe for concurrent use (see the package doc).
type KeyedStore[V any] struct {
	rng KeyGroupRange
	// groups[kg-rng.Start] holds key group kg; nil until its first key, so
	// that a subtask owning many key groups pays only for those in use.
	// Values are pointers so that *V stays valid while the map grows.
	groups []map[string]*V
	n      int
}

// NewKeyedStore returns an empty store for the key groups of r.
func NewKeyedStore[V any](r KeyGroupRange) *KeyedStore[V] {
	return &KeyedStore[V]{rng: r, groups: make([]map[string]*V, r.NumKeyGroups())}
}

// Range returns the key groups the store holds.
func (s *KeyedStore[V]) Range() KeyGroupRange { return s.rng }

// Len returns the number of keys in all key groups.
func (s *KeyedStore[V]) Len() int { return s.n }

// group returns the map of kg, panicking if kg is outside the range: a key
// routed to a subtask that does not own its key group is a bug in
// partitioning (in Flink, most often a non-deterministic key), and storing
// it would lose it on the next rescale.
func (s *KeyedStore[V]) group(kg int) *map[string]*V {
	if !s.rng.Contains(kg) {
		panic(fmt.Sprintf("state: key group %d is not in this subtask's key group range %s; "+
			"the key was routed to the wrong subtask", kg, s.rng))
	}
	return &s.groups[kg-s.rng.Start]
}

// Get returns the value of key in key group kg, or nil if absent. It does
// not allocate.
func (s *KeyedStore[V]) Get(kg int, key []byte) *V {
	return (*s.group(kg))[string(key)]
}

// GetOrCreate returns the value of key in key group kg, adding a zero V if
// absent. It allocates only when the key is new (the value and a copy of
// the key).
func (s *KeyedStore[V]) GetOrCreate(kg int, key []byte) *V {
	g := s.group(kg)
	if v, ok := (*g)[string(key)]; ok {
		return v
	}
	if *g == nil {
		*g = make(map[string]*V)
	}
	v := new(V)
	(*g)[string(key)] = v
	s.n++
	return v
}

// Delete removes key from key group kg, if present.
func (s *KeyedStore[V]) Delete(kg int, key []byte) {
	g := s.group(kg)
	if _, ok := (*g)[string(key)]; ok {
		delete(*g, string(key))
		s.n--
	}
}

// ForEach calls fn for each key of key group kg, in unspecified order,
// until fn returns false. fn must not add or delete keys of the store.
func (s *KeyedStore[V]) ForEach(kg int, fn func(key string, v *V) bool) {
	for k, v := range *s.group(kg) {
		if !fn(k, v) {
			return
		}
	}
}
