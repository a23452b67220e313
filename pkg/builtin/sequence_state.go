package builtin

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// State items of the sequence source. Each says, for a set of keys, a
// next seq below which every pair of those keys has been emitted; the next
// seq of a key is the largest any item gives it, 0 when none does.
//
// Version 2, a position: version, uvarint parallelism P, uvarint subtask j,
// uvarint keys K, uvarint seq S, uvarint key index I. It covers the keys
// j, j+P, j+2P, ... below K (the keys of subtask j of a run at parallelism
// P with K keys), and gives the first I of them S+1 and the others S: the
// subtask's position, whatever the number of keys.
//
// Version 1, one key: version, uvarint key, uvarint next seq. Written by
// sources before positions existed (one item per key), still read, and
// written back by subtask 0 while it tells something.
const (
	seqItemV1     = 1
	seqItemV2     = 2
	seqItemMaxLen = 1 + 5*binary.MaxVarintLen64
)

// maxSeqLayers bounds the runs (parallelism and keys) a restore keeps
// apart. Each rescale that happens before the keys have caught up adds one
// (see seqState), so a real job has a handful; more is not a sequence's
// state.
const maxSeqLayers = 1024

// seqState is what the items of a restore say, per key, kept as the
// positions that said it: a function from key to next seq that costs
// memory per subtask of the runs that wrote it, not per key.
//
// Positions of one run (equal parallelism and keys) form a layer: one
// position per subtask at most. Two positions of the same subtask and
// layer are merged into the later one in emission order, which gives each
// key the larger next seq of the two. A layer that another, complete one
// (a position for every subtask that has keys) covers and is nowhere below
// adds nothing, and is dropped: so layers do not pile up over restores,
// once the keys have caught up after a rescale.
type seqState struct {
	layers  []seqLayer // by parallelism, then keys
	singles []seqKey   // version 1 items, by key
	max     int64      // the largest next seq any layer or single gives a key
}

type seqLayer struct {
	par, keys int64    // of the run; keys no more than the current keys
	subs      []seqSub // by subtask, one at most per subtask
	lo, hi    int64    // smallest and largest next seq the layer gives a key
	complete  bool     // a position for every subtask with keys
}

type seqSub struct {
	subtask int64
	pos     seqPosition // KeyIndex below the subtask's number of keys
}

type seqKey struct{ key, seq int64 }

// find returns the position of subtask sub.
func (l *seqLayer) find(sub int64) (seqPosition, bool) {
	i, ok := slices.BinarySearchFunc(l.subs, sub, func(e seqSub, t int64) int { return cmp.Compare(e.subtask, t) })
	if !ok {
		return seqPosition{}, false
	}
	return l.subs[i].pos, true
}

// at returns the next seq of key that the state gives: the largest over
// the positions and keys that cover it, 0 when none does.
func (st *seqState) at(key int64) int64 {
	v := int64(0)
	for i := range st.layers {
		l := &st.layers[i]
		if key >= l.keys {
			continue
		}
		if p, ok := l.find(key % l.par); ok {
			seq := p.Seq
			if key/l.par < p.KeyIndex {
				seq++
			}
			v = max(v, seq)
		}
	}
	if i, ok := slices.BinarySearchFunc(st.singles, key, func(e seqKey, t int64) int { return cmp.Compare(e.key, t) }); ok {
		v = max(v, st.singles[i].seq)
	}
	return v
}

// layer returns the index of the layer of a run with par and keys, or -1.
func (st *seqState) layer(par, keys int64) int {
	for i, l := range st.layers {
		if l.par == par && l.keys == keys {
			return i
		}
	}
	return -1
}

// lowerBound returns a next seq that no key of subtask sub of a run at par
// with keys is below: the smallest that a complete layer covering all
// those keys gives any key of the subtask's residue class. 0 when no
// layer covers them all.
func (st *seqState) lowerBound(par, sub, keys int64) int64 {
	lb := int64(0)
	for _, l := range st.layers {
		if !l.complete || l.keys < keys {
			continue
		}
		// The keys of sub (= sub mod par) that position j of the layer
		// (= j mod l.par) covers exist only if j = sub mod gcd(par, l.par).
		g := gcd(par, l.par)
		m := int64(math.MaxInt64)
		for _, e := range l.subs {
			if e.subtask%g == sub%g {
				m = min(m, e.pos.Seq)
			}
		}
		if m != math.MaxInt64 {
			lb = max(lb, m)
		}
	}
	return lb
}

// items returns how many items the state is written as.
func (st *seqState) items() int {
	n := len(st.singles)
	for _, l := range st.layers {
		n += len(l.subs)
	}
	return n
}

// update recomputes max after layers were removed.
func (st *seqState) update() {
	st.max = 0
	for _, l := range st.layers {
		st.max = max(st.max, l.hi)
	}
	for _, k := range st.singles {
		st.max = max(st.max, k.seq)
	}
}

// orNil returns nil for a state that says nothing.
func (st *seqState) orNil() *seqState {
	if len(st.layers) == 0 && len(st.singles) == 0 {
		return nil
	}
	return st
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// decodeSeqState decodes the items of all old subtasks, for a source that
// now has keys keys: what is said about keys beyond them is dropped, so
// that keys removed by lowering keys start at seq 0 if they come back.
func decodeSeqState(items [][]byte, keys int64) (*seqState, error) {
	type layerID struct{ par, keys int64 }
	layers := map[layerID]map[int64]seqPosition{}
	st := &seqState{}
	for i, item := range items {
		if len(item) == 0 || (item[0] != seqItemV1 && item[0] != seqItemV2) {
			return nil, fmt.Errorf("item %d: not a sequence item of version %d or %d: %q", i, seqItemV1, seqItemV2, item)
		}
		if item[0] == seqItemV1 {
			key, seq, err := decodeSeqItem(item)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			if key < keys {
				st.singles = append(st.singles, seqKey{key, seq})
			}
			continue
		}
		par, sub, k, pos, err := decodeSeqPosition(item)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		k = min(k, keys)
		n := keysOfSubtask(k, par, sub)
		if n == 0 {
			continue
		}
		if pos.KeyIndex >= n {
			// Every key left after clipping is past the round.
			pos = seqPosition{Seq: pos.Seq + 1}
		}
		id := layerID{par, k}
		if layers[id] == nil {
			if len(layers) == maxSeqLayers {
				return nil, fmt.Errorf("positions of more than %d runs (parallelism and keys)", maxSeqLayers)
			}
			layers[id] = map[int64]seqPosition{}
		}
		if old, ok := layers[id][sub]; !ok || old.less(pos) {
			layers[id][sub] = pos
		}
	}

	slices.SortFunc(st.singles, func(a, b seqKey) int { return cmp.Compare(a.key, b.key) })
	for i := 1; i < len(st.singles); i++ {
		if st.singles[i].key == st.singles[i-1].key {
			return nil, fmt.Errorf("key %d appears twice", st.singles[i].key)
		}
	}
	for id, subs := range layers {
		l := seqLayer{par: id.par, keys: id.keys, lo: math.MaxInt64}
		for sub, pos := range subs {
			l.subs = append(l.subs, seqSub{sub, pos})
			l.lo = min(l.lo, pos.Seq) // KeyIndex < keys of sub: some key is at Seq
			hi := pos.Seq
			if pos.KeyIndex > 0 {
				hi++
			}
			l.hi = max(l.hi, hi)
		}
		slices.SortFunc(l.subs, func(a, b seqSub) int { return cmp.Compare(a.subtask, b.subtask) })
		l.complete = int64(len(l.subs)) == min(l.par, l.keys)
		st.layers = append(st.layers, l)
	}
	slices.SortFunc(st.layers, func(a, b seqLayer) int {
		return cmp.Or(cmp.Compare(a.par, b.par), cmp.Compare(a.keys, b.keys))
	})

	// Drop what a complete layer makes redundant: a layer it covers and is
	// nowhere below of, a key it gives as much. Deterministic (in layer
	// order), so that every subtask keeps the same state.
	covers := func(b *seqLayer, keys, hi int64) bool {
		return b.complete && b.keys >= keys && b.lo >= hi
	}
	kept := st.layers[:0]
	for i := range st.layers {
		a := &st.layers[i]
		redundant := false
		for j := range st.layers {
			if j != i && !st.layers[j].dropped() && covers(&st.layers[j], a.keys, a.hi) {
				redundant = true
				break
			}
		}
		if redundant {
			a.subs = nil // marks it dropped for the layers after it
		}
	}
	for _, l := range st.layers {
		if !l.dropped() {
			kept = append(kept, l)
		}
	}
	st.layers = kept
	singles := st.singles[:0]
	for _, k := range st.singles {
		redundant := k.seq == 0
		for j := range st.layers {
			redundant = redundant || covers(&st.layers[j], k.key+1, k.seq)
		}
		if !redundant {
			singles = append(singles, k)
		}
	}
	st.singles = singles
	st.update()
	return st, nil
}

// dropped reports whether decodeSeqState dropped the layer.
func (l *seqLayer) dropped() bool { return l.subs == nil }

func appendSeqPosition(b []byte, par, sub, keys int64, pos seqPosition) []byte {
	b = append(b, seqItemV2)
	for _, v := range []int64{par, sub, keys, pos.Seq, pos.KeyIndex} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	return b
}

func appendSeqKey(b []byte, key, seq int64) []byte {
	b = append(b, seqItemV1)
	b = binary.AppendUvarint(b, uint64(key))
	return binary.AppendUvarint(b, uint64(seq))
}

// decodeSeqPosition decodes a version 2 item.
func decodeSeqPosition(b []byte) (par, sub, keys int64, pos seqPosition, err error) {
	rest := b[1:]
	next := func(what string, lo, hi uint64) (int64, error) {
		v, n := binary.Uvarint(rest)
		if n <= 0 || v < lo || v > hi {
			return 0, fmt.Errorf("bad %s in sequence item %q", what, b)
		}
		rest = rest[n:]
		return int64(v), nil
	}
	if par, err = next("parallelism", 1, math.MaxInt32); err != nil {
		return
	}
	if sub, err = next("subtask", 0, uint64(par-1)); err != nil {
		return
	}
	if keys, err = next("keys", 1, math.MaxInt64); err != nil {
		return
	}
	// Seq+1 must not overflow.
	if pos.Seq, err = next("seq", 0, math.MaxInt64-1); err != nil {
		return
	}
	if pos.KeyIndex, err = next("key index", 0, uint64(keysOfSubtask(keys, par, sub))); err != nil {
		return
	}
	if len(rest) != 0 {
		err = fmt.Errorf("bad key index in sequence item %q", b)
	}
	return
}

// decodeSeqItem decodes a version 1 item.
func decodeSeqItem(b []byte) (key, seq int64, err error) {
	k, n := binary.Uvarint(b[1:])
	if n <= 0 || k > math.MaxInt64 {
		return 0, 0, fmt.Errorf("bad key in item %q", b)
	}
	q, m := binary.Uvarint(b[1+n:])
	if m <= 0 || q > math.MaxInt64 || 1+n+m != len(b) {
		return 0, 0, fmt.Errorf("bad seq in item %q", b)
	}
	return int64(k), int64(q), nil
}
