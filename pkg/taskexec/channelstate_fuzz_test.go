package taskexec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/weirstream/weir/pkg/snapshot"
)

// FuzzChannelState checks the decoding of recovered channel state (in-flight buffers of an unaligned checkpoint).
// First as hostile data: an object's bytes and the buffer offsets its metadata claims (zigzag varints) are split
// without panic, into buffers that alias the object and cover it exactly after the header, or fail with ErrCorrupt.
// Then as a round trip: the same bytes cut into buffers (the cuts are the fuzzer's) and written as a channel state
// object with layout decode to the same layout and buffers.
func FuzzChannelState(f *testing.F) {
	frames := func(recs ...string) []byte {
		var b []byte
		for _, r := range recs {
			b = binary.AppendUvarint(b, uint64(len(r)))
			b = append(b, r...)
		}
		return b
	}
	zigzag := func(offs ...int64) []byte {
		var b []byte
		for _, o := range offs {
			b = binary.AppendVarint(b, o)
		}
		return b
	}
	obj := append([]byte{3}, frames("a", "bc", "def")...)
	f.Add(obj, zigzag(1, 3, 6), uint32(3))
	f.Add(obj, zigzag(1, 9, 3), uint32(1))
	f.Add(obj, zigzag(2), uint32(0))
	f.Add(obj, zigzag(1, 1<<40), uint32(1<<31))
	f.Add([]byte{0x80}, zigzag(-1), uint32(128))
	f.Add([]byte{}, []byte{}, uint32(0))
	f.Fuzz(func(t *testing.T, obj, offsets []byte, layout uint32) {
		var offs []int64
		for rest := offsets; len(rest) > 0; {
			o, n := binary.Varint(rest)
			if n <= 0 {
				break
			}
			offs = append(offs, o)
			rest = rest[n:]
		}
		if _, n, err := channelStateLayout(obj); err != nil {
			if !errors.Is(err, snapshot.ErrCorrupt) {
				t.Fatalf("header error %v is not ErrCorrupt", err)
			}
		} else if bufs, err := splitChannelBuffers(obj, n, offs); err != nil {
			if !errors.Is(err, snapshot.ErrCorrupt) {
				t.Fatalf("split error %v is not ErrCorrupt", err)
			}
		} else {
			if len(bufs) != len(offs) {
				t.Fatalf("%d buffers for %d offsets", len(bufs), len(offs))
			}
			if got := bytes.Join(bufs, nil); !bytes.Equal(got, obj[n:]) {
				t.Fatalf("buffers %x do not cover the object %x after its %d-byte header", bufs, obj, n)
			}
			for i, b := range bufs {
				if len(b) > 0 && &b[0] != &obj[offs[i]] {
					t.Fatalf("buffer %d does not alias the object at offset %d", i, offs[i])
				}
			}
		}

		// Round trip.
		var c channelData
		var want [][]byte
		rest := obj
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if i < len(offsets) {
				n = min(int(offsets[i]), n)
			}
			c.add(rest[:n])
			want = append(want, rest[:n])
			rest = rest[n:]
		}
		if len(want) == 0 {
			return // an empty channel is not written
		}
		hdr, offs := channelStateHeader(int(layout), &c)
		written := append(hdr, c.data...)
		got, n, err := channelStateLayout(written)
		if err != nil || got != uint64(layout) || n != len(hdr) {
			t.Fatalf("header of layout %d read as %d, %d bytes, %v", layout, got, n, err)
		}
		bufs, err := splitChannelBuffers(written, n, offs)
		if err != nil {
			t.Fatalf("split what was written: %v", err)
		}
		if len(bufs) != len(want) {
			t.Fatalf("%d buffers written, %d read", len(want), len(bufs))
		}
		for i := range want {
			if !bytes.Equal(bufs[i], want[i]) {
				t.Fatalf("buffer %d written as %x, read as %x", i, want[i], bufs[i])
			}
		}
	})
}
