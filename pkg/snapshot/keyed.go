package snapshot

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"strings"

	"github.com/weirstream/weir/pkg/state"
)

// KeyGroupWriter writes one subtask's keyed state key group by key group
// and records, for each key group, where it starts and its CRC-32C, so that
// a restore after rescaling reads and verifies only the key groups it owns
// (OpenKeyGroups). The file is exactly the concatenation of the key groups
// of the range, in order; key groups not started are empty.
//
// Use: StartKeyGroup(kg) for each non-empty key group in increasing order,
// Write its bytes, then Close. Write costs one CRC update, no allocation.
type KeyGroupWriter struct {
	w        StateWriter
	kgs      KeyGroupRangeOffsets
	cur      int   // key group being written; Start-1 before the first
	off      int64 // bytes written
	segStart int64 // offset where cur started
	crc      uint32
	done     bool
}

// NewKeyGroupWriter writes the key groups of r (which must not be empty)
// to w, a writer from Location.CreateStateFile.
func NewKeyGroupWriter(w StateWriter, r state.KeyGroupRange) *KeyGroupWriter {
	n := max(r.NumKeyGroups(), 0)
	return &KeyGroupWriter{
		w:   w,
		kgs: KeyGroupRangeOffsets{Start: r.Start, End: r.End, Offsets: make([]int64, 0, n), CRCs: make([]uint32, 0, n)},
		cur: r.Start - 1,
	}
}

// StartKeyGroup ends the current key group and starts kg, which must be in
// the range and after the current one.
func (k *KeyGroupWriter) StartKeyGroup(kg int) error {
	if k.done {
		return fmt.Errorf("start key group %d: writer is closed", kg)
	}
	if kg <= k.cur || kg > k.kgs.End {
		return fmt.Errorf("start key group %d: want one in [%d-%d] after %d", kg, k.cur+1, k.kgs.End, k.cur)
	}
	k.endThrough(kg - 1)
	k.cur = kg
	return nil
}

// endThrough ends the current key group and records empty ones up to last.
func (k *KeyGroupWriter) endThrough(last int) {
	if k.cur >= k.kgs.Start {
		k.kgs.Offsets = append(k.kgs.Offsets, k.segStart)
		k.kgs.CRCs = append(k.kgs.CRCs, k.crc)
	}
	for g := max(k.cur+1, k.kgs.Start); g <= last; g++ {
		k.kgs.Offsets = append(k.kgs.Offsets, k.off)
		k.kgs.CRCs = append(k.kgs.CRCs, 0) // CRC-32C of no bytes
	}
	k.crc = 0
	k.segStart = k.off
}

// Write appends p to the current key group.
func (k *KeyGroupWriter) Write(p []byte) (int, error) {
	if k.done || k.cur < k.kgs.Start {
		return 0, fmt.Errorf("write keyed state: no key group started")
	}
	n, err := k.w.Write(p)
	k.crc = crc32.Update(k.crc, castagnoli, p[:n])
	k.off += int64(n)
	return n, err
}

// Close ends the last key group, closes the state file and returns the
// keyed StateObject.
func (k *KeyGroupWriter) Close() (StateObject, error) {
	if k.done {
		return StateObject{}, fmt.Errorf("close keyed state: closed already")
	}
	k.endThrough(k.kgs.End)
	k.done = true
	h, err := k.w.Close()
	if err != nil {
		return StateObject{}, err
	}
	kgs := k.kgs
	return StateObject{Kind: KindKeyed, StateHandle: h, KeyGroups: &kgs}, nil
}

// Abort discards the state file.
func (k *KeyGroupWriter) Abort() error {
	k.done = true
	return k.w.Abort()
}

// OpenKeyGroups opens the bytes of the key groups of o (a keyed state
// object of the checkpoint in locationPath) that lie in r: the key groups
// of both, concatenated in order; key group g starts at
// o.KeyGroups.Offsets[g-Start] minus the offset of the first one read. The
// CRC-32C of each key group is checked at its end; a mismatch or a file
// whose size differs from the metadata is an error naming the file. When
// the ranges do not overlap the reader is empty.
func OpenKeyGroups(ctx context.Context, locationPath string, o StateObject, r state.KeyGroupRange) (io.ReadCloser, error) {
	if o.Kind != KindKeyed || o.KeyGroups == nil {
		return nil, fmt.Errorf("open key groups in %s: %s state has no key groups", locationPath, o.Kind)
	}
	if err := o.validate(state.UpperBoundMaxParallelism); err != nil {
		return nil, fmt.Errorf("open key groups in %s: %w", locationPath, err)
	}
	k := o.KeyGroups
	first, last := max(r.Start, k.Start), min(r.End, k.End)
	if first > last {
		return io.NopCloser(strings.NewReader("")), nil
	}
	segs := make([]segment, 0, last-first+1)
	for g := first; g <= last; g++ {
		off, end := k.span(g, o.Size)
		segs = append(segs, segment{n: end - off, crc: k.CRCs[g-k.Start]})
	}
	off, _ := k.span(first, o.Size)
	return openSegments(ctx, locationPath, o.StateHandle, off, segs)
}
