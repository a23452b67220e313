package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"strings"
	"testing"

	"github.com/weirstream/weir/pkg/internal/fuzzcheck"
	"github.com/weirstream/weir/pkg/state"
)

// encoding/json allocates in proportion to its input: a number in a JSON array becomes 8 bytes of int64 (with append
// growth), a string its bytes, base64 three quarters of them.
const (
	jsonAllocBase    = 1 << 20
	jsonAllocPerByte = 256
)

// FuzzDecodeMetadata checks DecodeMetadata on hostile _metadata files, both as raw bytes (nearly always stopped by
// the magic, the length or the checksum) and as a payload sealed with a valid header and CRC, as a crafted file
// would be. Errors must be typed (ErrCorrupt, ErrNotSnapshot, or an unsupported version) and allocation bounded by
// the input. Metadata that decodes must pass Validate, re-encode and decode to the same Metadata, and its inline
// state must read back as itself or fail with ErrCorrupt, never panic.
func FuzzDecodeMetadata(f *testing.F) {
	for _, m := range []*Metadata{sampleMetadata("job1", 7, false), sampleMetadata("j", 0, true), oneOperator("j", 3, false)} {
		b, err := EncodeMetadata(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[headerLen : len(b)-trailerLen])
	}
	f.Add([]byte{})
	f.Add(magic[:5])
	f.Add([]byte(`{"job_id":"j","max_parallelism":1,"operators":[{"id":"a","parallelism":1,"subtasks":[{"subtask":0,` +
		`"state":[{"kind":"keyed","size":3,"inline":"YWJj","key_groups":{"start":0,"end":0,"offsets":[0],"crc32c":[0]}}]}]}]}`))
	f.Add([]byte(`{"job_id":"j","max_parallelism":32768,"operators":[{"id":"a","parallelism":1,"subtasks":[{"subtask":0,` +
		`"state":[{"kind":"input-channel","size":0,"channel":{"gate":0,"channel":0,"offsets":[0,0]}}]}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, frame(b)} {
			var m *Metadata
			var err error
			fuzzcheck.BoundedAlloc(t, "DecodeMetadata", len(in), jsonAllocBase, jsonAllocPerByte, func() { m, err = DecodeMetadata(in) })
			if err != nil {
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotSnapshot) && !strings.HasPrefix(err.Error(), "unsupported format version") {
					t.Fatalf("untyped error %v", err)
				}
				continue
			}
			if err := m.Validate(); err != nil {
				t.Fatalf("decoded metadata fails Validate: %v", err)
			}
			enc, err := EncodeMetadata(m)
			if err != nil {
				t.Fatalf("decoded metadata does not encode: %v", err)
			}
			// Equal up to what JSON does not tell apart (an empty list and none): the encoding is canonical.
			again, err := DecodeMetadata(enc)
			if err != nil {
				t.Fatalf("re-decoding: %v", err)
			}
			if enc2, err := EncodeMetadata(again); err != nil || !bytes.Equal(enc2, enc) {
				t.Fatalf("round trip changed the metadata:\n%s\n%s", enc[headerLen:len(enc)-trailerLen], enc2)
			}
			if again.JobID != m.JobID || again.CheckpointID != m.CheckpointID || len(again.Operators) != len(m.Operators) {
				t.Fatalf("round trip: got %+v, want %+v", again, m)
			}
			for _, op := range m.Operators {
				for _, st := range op.Subtasks {
					for _, o := range st.State {
						readInline(t, o)
					}
				}
			}
		}
	})
}

// FuzzDecodeTaskState checks the JSON of acknowledgements (TaskState) and restore descriptors (TaskRestore): no
// panic, bounded allocation, a stable encoding once decoded, and state objects that, whether valid or not, can be
// checked and (inline ones) read without a panic.
func FuzzDecodeTaskState(f *testing.F) {
	m := sampleMetadata("job1", 7, false)
	ts := &TaskState{Operators: map[string][]StateObject{}}
	tr := &TaskRestore{CheckpointID: 7, Location: "jobmanager://job1/chk-7", Operators: map[string]*OperatorState{}}
	for i := range m.Operators {
		op := &m.Operators[i]
		ts.Operators[op.ID] = op.Subtasks[0].State
		tr.Operators[op.ID] = op
	}
	for _, v := range []any{ts, tr, &TaskState{}, &TaskRestore{}} {
		b, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"operators":{"a":[{"kind":"keyed","size":1,"inline":"eA==","key_groups":{"start":5,"end":4}}]}}`))
	f.Add([]byte(`{"operators":{"a":[{"kind":"operator","size":2,"inline":"eHk=","operator_states":[{"name":"n","mode":"split","offsets":[3,1]}]}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s *TaskState
		var err error
		fuzzcheck.BoundedAlloc(t, "DecodeTaskState", len(b), jsonAllocBase, jsonAllocPerByte, func() { s, err = DecodeTaskState(b) })
		if err == nil {
			checkStableJSON(t, s, func(b []byte) (any, error) { return DecodeTaskState(b) })
			for _, objs := range s.Operators {
				for _, o := range objs {
					readInline(t, o)
				}
			}
		} else if !strings.HasPrefix(err.Error(), "decode task state: ") {
			t.Fatalf("error %q does not say what was decoded", err)
		}
		var r *TaskRestore
		fuzzcheck.BoundedAlloc(t, "DecodeTaskRestore", len(b), jsonAllocBase, jsonAllocPerByte, func() { r, err = DecodeTaskRestore(b) })
		if err != nil {
			if !strings.HasPrefix(err.Error(), "decode restore state: ") {
				t.Fatalf("error %q does not say what was decoded", err)
			}
			return
		}
		checkStableJSON(t, r, func(b []byte) (any, error) { return DecodeTaskRestore(b) })
		for _, op := range r.Operators {
			if op == nil {
				continue
			}
			for _, st := range op.Subtasks {
				for _, o := range st.State {
					readInline(t, o)
				}
			}
		}
	})
}

// checkStableJSON: once decoded, a value encodes to JSON that decodes and encodes to the same bytes.
func checkStableJSON(t *testing.T, v any, decode func([]byte) (any, error)) {
	t.Helper()
	b1, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("decoded value does not encode: %v", err)
	}
	v2, err := decode(b1)
	if err != nil {
		t.Fatalf("re-decoding %s: %v", b1, err)
	}
	if b2, err := json.Marshal(v2); err != nil || !bytes.Equal(b1, b2) {
		t.Fatalf("encoding not stable: %s then %s (%v)", b1, b2, err)
	}
}

// readInline reads an inline state object, valid or not, as a restore would: whole (OpenState) and, for keyed
// state, by key group range. Reading must succeed with the object's bytes or fail with an error, never panic; a
// read that succeeds on a valid object returns exactly the bytes its metadata describes.
func readInline(t *testing.T, o StateObject) {
	t.Helper()
	if !o.IsInline() {
		return
	}
	valid := o.validate(state.UpperBoundMaxParallelism) == nil
	if rc, err := OpenState(ctx, "jobmanager://fuzz/chk-1", o.StateHandle); err == nil {
		got, err := io.ReadAll(rc)
		rc.Close()
		if err == nil && !bytes.Equal(got, o.Inline) {
			t.Fatalf("OpenState read %q, the handle holds %q", got, o.Inline)
		}
		if err == nil && valid && crc32.Checksum(o.Inline, castagnoli) != o.CRC {
			t.Fatalf("OpenState read %q whose CRC does not match %08x", got, o.CRC)
		}
	} else if valid {
		t.Fatalf("OpenState of a valid inline handle: %v", err)
	}
	if o.Kind != KindKeyed || o.KeyGroups == nil {
		return
	}
	k := o.KeyGroups
	for _, r := range []state.KeyGroupRange{{Start: 0, End: state.UpperBoundMaxParallelism - 1}, {Start: k.Start + 1, End: k.End - 1}, {Start: k.End, End: k.End}} {
		rc, err := OpenKeyGroups(ctx, "jobmanager://fuzz/chk-1", o, r)
		if err != nil {
			if valid {
				t.Fatalf("OpenKeyGroups %v of a valid object: %v", r, err)
			}
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err == nil && valid {
			first, last := max(r.Start, k.Start), min(r.End, k.End)
			var want []byte
			if first <= last {
				off, _ := k.span(first, o.Size)
				_, end := k.span(last, o.Size)
				want = o.Inline[off:end]
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("OpenKeyGroups %v read %q, want %q", r, got, want)
			}
		}
	}
}

// memStateWriter is a StateWriter that keeps the state inline, as jobmanager storage does.
type memStateWriter struct{ buf bytes.Buffer }

func (w *memStateWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }
func (w *memStateWriter) Abort() error                { return nil }
func (w *memStateWriter) Close() (StateHandle, error) {
	b := w.buf.Bytes()
	return StateHandle{Size: int64(len(b)), CRC: crc32.Checksum(b, castagnoli), Inline: b}, nil
}

// FuzzKeyGroups writes keyed state with KeyGroupWriter (the fuzzer chooses the bytes and how they are cut into key
// groups), optionally damages one byte, and reads back a key group range with OpenKeyGroups: the read returns
// exactly the bytes of the key groups in the range, unless the damaged byte is among them, when it fails with a
// checksum mismatch (ErrCorrupt).
func FuzzKeyGroups(f *testing.F) {
	f.Add([]byte("threefour!seven"), []byte{0, 5, 5, 0, 0, 5}, uint16(2), uint16(0), uint16(127), uint32(1<<31))
	f.Add([]byte("threefour!seven"), []byte{0, 5, 5, 0, 0, 5}, uint16(2), uint16(4), uint16(6), uint32(7))
	f.Add([]byte("abc"), []byte{3}, uint16(32767), uint16(32767), uint16(32767), uint32(0))
	f.Add([]byte{}, []byte{}, uint16(0), uint16(0), uint16(0), uint32(0))
	f.Fuzz(func(t *testing.T, data, cuts []byte, start, readStart, readEnd uint16, damage uint32) {
		kgStart := int(start) % state.UpperBoundMaxParallelism
		r := state.KeyGroupRange{Start: kgStart, End: min(kgStart+max(len(cuts), 1)-1, state.UpperBoundMaxParallelism-1)}
		w := NewKeyGroupWriter(&memStateWriter{}, r)
		var groups [][]byte // bytes of key group r.Start+i
		rest := data
		for i := 0; i < r.NumKeyGroups(); i++ {
			n := 0
			if i < len(cuts) {
				n = min(int(cuts[i]), len(rest))
			}
			if i == r.NumKeyGroups()-1 {
				n = len(rest)
			}
			groups = append(groups, rest[:n])
			rest = rest[n:]
			if n == 0 {
				continue
			}
			if err := w.StartKeyGroup(r.Start + i); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(groups[i]); err != nil {
				t.Fatal(err)
			}
		}
		o, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := o.validate(state.UpperBoundMaxParallelism); err != nil {
			t.Fatalf("KeyGroupWriter wrote an invalid object: %v", err)
		}
		damaged := -1
		if int(damage) < len(o.Inline) {
			damaged = int(damage)
			o.Inline = bytes.Clone(o.Inline)
			o.Inline[damaged] ^= 0x20
		}
		read := state.KeyGroupRange{Start: int(min(readStart, readEnd)), End: int(max(readStart, readEnd))}
		var want []byte
		hit := false // the damaged byte is in a key group that is read
		off := 0
		for i, g := range groups {
			kg := r.Start + i
			if kg >= read.Start && kg <= read.End {
				want = append(want, g...)
				hit = hit || (damaged >= off && damaged < off+len(g))
			}
			off += len(g)
		}
		rc, err := OpenKeyGroups(ctx, "jobmanager://fuzz/chk-1", o, read)
		if err != nil {
			t.Fatalf("OpenKeyGroups %v: %v", read, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		switch {
		case hit && !errors.Is(err, ErrCorrupt):
			t.Fatalf("read %v with byte %d damaged: %q, %v; want a checksum mismatch", read, damaged, got, err)
		case !hit && (err != nil || !bytes.Equal(got, want)):
			t.Fatalf("read %v = %q, %v; want %q", read, got, err, want)
		}
	})
}
