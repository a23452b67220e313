package state

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Entry is one key and its value in a KeyedSnapshot.
type Entry[V any] struct {
	Key   string // canonical key bytes (record.Value.AppendKey)
	Value V
}

// KeyedSnapshot is a copy of a KeyedStore taken at a checkpoint barrier. It
// shares nothing the store changes later (keys are immutable strings, values
// are copied), so it can be written from another goroutine while the
// store's goroutine goes on updating the store. It is read-only once taken;
// WriteKeyGroup may be called for different key groups from one goroutine,
// or concurrently (each touches only its own key group).
type KeyedSnapshot[V any] struct {
	rng    KeyGroupRange
	groups [][]Entry[V] // groups[kg-rng.Start], sorted lazily by WriteKeyGroup
	n      int
}

// Snapshot copies the store. clone copies *src into *dst so that dst shares
// nothing the store's owner changes later (for a V holding a slice: copy
// the slice); nil means plain assignment, which is right for a V without
// pointers, slices or maps. clone is called in the caller's goroutine,
// s.Len() times.
//
// Cost: one allocation for all entries and one per non-empty key group's
// slice header array, plus what clone allocates; the time is one map
// iteration and one value copy per key (see BenchmarkKeyedStoreSnapshot).
// This is the simple strategy the package doc calls the alternative to
// copy-on-write: it takes the snapshot synchronously but does no more than
// copy memory, and nothing on the per-record path changes.
func (s *KeyedStore[V]) Snapshot(clone func(dst, src *V)) *KeyedSnapshot[V] {
	snap := &KeyedSnapshot[V]{rng: s.rng, groups: make([][]Entry[V], len(s.groups)), n: s.n}
	entries := make([]Entry[V], s.n)
	i := 0
	for gi, g := range s.groups {
		start := i
		for k, v := range g {
			e := &entries[i]
			e.Key = k
			if clone != nil {
				clone(&e.Value, v)
			} else {
				e.Value = *v
			}
			i++
		}
		if i > start {
			// Full slice expression: a key group's slice can never
			// grow into its neighbour's.
			snap.groups[gi] = entries[start:i:i]
		}
	}
	return snap
}

// Range returns the key groups the snapshot covers.
func (s *KeyedSnapshot[V]) Range() KeyGroupRange { return s.rng }

// Len returns the number of keys in the snapshot.
func (s *KeyedSnapshot[V]) Len() int { return s.n }

// KeyGroup returns the entries of key group kg in unspecified order (nil
// for a key group outside the range or without keys). The caller must not
// modify them.
func (s *KeyedSnapshot[V]) KeyGroup(kg int) []Entry[V] {
	if !s.rng.Contains(kg) {
		return nil
	}
	return s.groups[kg-s.rng.Start]
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
	entries := s.groups[kg-s.rng.Start]
	if len(entries) == 0 {
		return nil
	}
	slices.SortFunc(entries, func(a, b Entry[V]) int { return strings.Compare(a.Key, b.Key) })
	buf := make([]byte, 0, writeChunk+1024)
	buf = append(buf, keyGroupFormatV1, valueFormat)
	buf = binary.AppendUvarint(buf, uint64(len(entries)))
	var val []byte
	for i := range entries {
		e := &entries[i]
		val = appendValue(val[:0], &e.Value)
		buf = binary.AppendUvarint(buf, uint64(len(e.Key)))
		buf = append(buf, e.Key...)
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
