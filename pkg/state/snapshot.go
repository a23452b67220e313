package state

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
)

// KeyedSnapshot is a view of a KeyedStore at the moment of Snapshot. It
// can be read from another goroutine while the store's goroutine goes on
// updating the store: the store never writes what the view reaches (the
// arrays of entries it froze, and the entries in them) while the snapshot
// is active; it writes copies instead. WriteKeyGroup may be called for
// different key groups from one goroutine, or concurrently (each touches
// only its own key group). Release it once written: until then every first
// write of an older entry copies it.
type KeyedSnapshot[V any] struct {
	rng   KeyGroupRange
	views [][]*entry[V] // views[kg-rng.Start]: the group's entries at the snapshot
	n     int
	rel   *releaser
}

// releaser is the part of a snapshot that Release and the cleanup of an
// unreachable snapshot share, so that the cleanup does not keep the
// snapshot alive.
type releaser struct {
	done   atomic.Bool
	active *atomic.Int64
}

func (r *releaser) release() {
	if r.done.CompareAndSwap(false, true) {
		r.active.Add(-1)
	}
}

// Snapshot returns a view of the store as it is now. Its cost is O(key
// groups) and one allocation, whatever the number of keys: it bumps the
// store's version and freezes each group's array. The store then copies
// an entry at its first write (clone, in the store's goroutine) and a
// group's array of pointers at the first write to a slot the view holds,
// for as long as a snapshot is active.
//
// A snapshot that is never released is released when the garbage
// collector finds it unreachable; until then, the store copies as if it
// were being written.
func (s *KeyedStore[V]) Snapshot() *KeyedSnapshot[V] {
	s.ver++
	s.active.Add(1)
	snap := &KeyedSnapshot[V]{
		rng: s.rng, views: make([][]*entry[V], len(s.groups)), n: s.n,
		rel: &releaser{active: s.active},
	}
	for i := range s.groups {
		g := &s.groups[i]
		// Full slice expression: nothing the view does can reach the
		// slots the store appends to.
		snap.views[i] = g.ents[:len(g.ents):len(g.ents)]
		g.frozen = len(g.ents)
	}
	runtime.AddCleanup(snap, (*releaser).release, snap.rel)
	return snap
}

// Release tells the store that the snapshot will not be read again, so
// that it may write its entries in place. Reading the snapshot after
// Release is a data race; WriteKeyGroup refuses it. Release may be called
// more than once, from any goroutine.
func (s *KeyedSnapshot[V]) Release() { s.rel.release() }

// Range returns the key groups the snapshot covers.
func (s *KeyedSnapshot[V]) Range() KeyGroupRange { return s.rng }

// Len returns the number of keys in the snapshot.
func (s *KeyedSnapshot[V]) Len() int { return s.n }

// ForEach calls fn for each key of key group kg (none outside the range),
// in unspecified order, until fn returns false. fn must not modify the
// value nor keep the pointer past Release.
func (s *KeyedSnapshot[V]) ForEach(kg int, fn func(key string, v *V) bool) {
	if !s.rng.Contains(kg) {
		return
	}
	// Keep s reachable until the end: its cleanup would release it.
	defer runtime.KeepAlive(s)
	for _, e := range s.views[kg-s.rng.Start] {
		if !fn(e.key, &e.val) {
			return
		}
	}
}

// Key group serialisation format, version 1 (all integers unsigned
// varints):
//
//	byte     format version (1)
//	byte     value format, chosen by the operator (its own version byte)
//	uvarint  number of entries
//	entries, sorted by key bytes:
//	    uvarint key length, key bytes, uvarint value length, value bytes
//
// An empty key group is written as nothing at all (zero bytes), so that
// storage can record it as empty; ReadKeyGroup reads zero bytes as no
// entries. Sorting makes the bytes a deterministic function of the state.
const keyGroupFormatV1 = 1

// maxEntryBytes bounds a key or value length read back, so that a corrupt
// state file produces an error instead of a huge allocation.
const maxEntryBytes = 64 << 20

// writeChunk is how many bytes WriteKeyGroup buffers before writing.
const writeChunk = 32 << 10

// WriteKeyGroup writes the entries of key group kg to w in the format
// above. appendValue appends the encoding of one value to dst and returns
// it; valueFormat is written once before the entries and handed back to
// ReadKeyGroup's callback, so that the operator can version its encoding.
// It writes nothing for a key group without keys.
func (s *KeyedSnapshot[V]) WriteKeyGroup(kg int, w io.Writer, valueFormat byte, appendValue func(dst []byte, v *V) []byte) error {
	if !s.rng.Contains(kg) {
		return fmt.Errorf("write key group %d: outside the snapshot's range %s", kg, s.rng)
	}
	if s.rel.done.Load() {
		return fmt.Errorf("write key group %d: the snapshot was released", kg)
	}
	// Keep s reachable until the end: its cleanup would release it.
	defer runtime.KeepAlive(s)
	view := s.views[kg-s.rng.Start]
	if len(view) == 0 {
		return nil
	}
	// Sort a copy: the view's array is the store's, which finds entries
	// by their position in it.
	entries := slices.Clone(view)
	slices.SortFunc(entries, func(a, b *entry[V]) int { return strings.Compare(a.key, b.key) })
	buf := make([]byte, 0, writeChunk+1024)
	buf = append(buf, keyGroupFormatV1, valueFormat)
	buf = binary.AppendUvarint(buf, uint64(len(entries)))
	var val []byte
	for _, e := range entries {
		val = appendValue(val[:0], &e.val)
		buf = binary.AppendUvarint(buf, uint64(len(e.key)))
		buf = append(buf, e.key...)
		buf = binary.AppendUvarint(buf, uint64(len(val)))
		buf = append(buf, val...)
		if len(buf) >= writeChunk {
			if _, err := w.Write(buf); err != nil {
				return fmt.Errorf("write key group %d: %w", kg, err)
			}
			buf = buf[:0]
		}
	}
	if len(buf) > 0 {
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("write key group %d: %w", kg, err)
		}
	}
	return nil
}

// ReadKeyGroup reads what WriteKeyGroup wrote for one key group and calls
// fn for each entry in the order written, with the value format byte. key
// and value are valid only during the call. Zero bytes read as no entries.
// Trailing bytes after the last entry are an error: the caller gave the
// wrong range of the state file.
func ReadKeyGroup(r io.Reader, fn func(valueFormat byte, key, value []byte) error) error {
	br, ok := r.(interface {
		io.Reader
		io.ByteReader
	})
	if !ok {
		br = bufio.NewReader(r)
	}
	version, err := br.ReadByte()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read key group: %w", err)
	}
	if version != keyGroupFormatV1 {
		return fmt.Errorf("read key group: unknown format version %d (want %d)", version, keyGroupFormatV1)
	}
	valueFormat, err := br.ReadByte()
	if err != nil {
		return fmt.Errorf("read key group: value format: %w", noEOF(err))
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return fmt.Errorf("read key group: entry count: %w", noEOF(err))
	}
	var key, val []byte
	for i := uint64(0); i < n; i++ {
		if key, err = readBytes(br, key); err != nil {
			return fmt.Errorf("read key group: entry %d of %d: key: %w", i, n, err)
		}
		if val, err = readBytes(br, val); err != nil {
			return fmt.Errorf("read key group: entry %d of %d: value: %w", i, n, err)
		}
		if err := fn(valueFormat, key, val); err != nil {
			return err
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		if err == nil {
			return fmt.Errorf("read key group: unexpected bytes after %d entries", n)
		}
		return fmt.Errorf("read key group: %w", err)
	}
	return nil
}

// readBytes reads a uvarint length and that many bytes into buf[:0].
func readBytes(r interface {
	io.Reader
	io.ByteReader
}, buf []byte) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return buf, noEOF(err)
	}
	if n > maxEntryBytes {
		return buf, fmt.Errorf("length %d exceeds the limit of %d bytes", n, maxEntryBytes)
	}
	buf = slices.Grow(buf[:0], int(n))[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return buf, noEOF(err)
	}
	return buf, nil
}

// noEOF turns an end of input in the middle of an entry into
// io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
