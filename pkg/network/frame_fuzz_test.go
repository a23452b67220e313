package network

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/weirstream/weir/pkg/internal/fuzzcheck"
)

// records frames records as a buffer holds them.
func records(recs ...string) []byte {
	var b []byte
	for _, r := range recs {
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	return b
}

// FuzzNextRecord checks the record framing inside a buffer: NextRecord never panics or reads past its input, each
// record is a sub-slice of the input whose prefix says its length, and a buffer that splits without error is
// consumed exactly.
func FuzzNextRecord(f *testing.F) {
	f.Add(records("a", "", "long record here"))
	f.Add(records(strings.Repeat("x", 300)))
	f.Add(binary.AppendUvarint(nil, 1<<62))
	f.Add(bytes.Repeat([]byte{0xff}, 11))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		rest := b
		for len(rest) > 0 {
			rec, next, err := NextRecord(rest)
			if err != nil {
				if !errors.Is(err, errMalformedLength) && !errors.Is(err, errTruncatedRecord) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			n, k := binary.Uvarint(rest)
			consumed := len(rest) - len(next)
			if k <= 0 || uint64(len(rec)) != n || consumed != k+len(rec) || !bytes.Equal(rest[k:consumed], rec) {
				t.Fatalf("NextRecord(%x) = %x, rest %x", rest, rec, next)
			}
			if cap(rec) != len(rec) {
				t.Fatalf("record of %d bytes has capacity %d: appending to it would overwrite the next record", len(rec), cap(rec))
			}
			rest = next
		}
	})
}

// FuzzServerFrames feeds the data server's reader what a consumer (or anyone) sends: the partition request, then
// credit frames. Both readers return a protocol error or an I/O error, never panic, allocate nothing proportional to
// a length field, and a request or credit they accept is the exact encoding of what they return.
func FuzzServerFrames(f *testing.F) {
	credit := func(n int) []byte { return putUint32Frame(make([]byte, 9), frameAddCredit, n) }
	f.Add(append(encodePartitionRequest("job/v/3/0/0", 7, 2), append(credit(1), credit(5)...)...))
	f.Add(encodePartitionRequest("x", 0, 0))
	f.Add(encodePartitionRequest(PartitionID(strings.Repeat("p", maxPartitionIDLen)), 1<<16, maxCredit))
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff, framePartitionRequest})
	f.Add(append(encodePartitionRequest("x", 0, 0), 0, 0, 0, 4, frameAddCredit, 0xff, 0xff, 0xff, 0xff))
	f.Add(append(encodePartitionRequest("x", 0, 0), 0, 0, 0, 5, frameAddCredit))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		scratch := make([]byte, frameHeaderLen+4)
		var (
			id          PartitionID
			sub, credit int
			err         error
		)
		fuzzcheck.BoundedAlloc(t, "readPartitionRequest", len(b), 1<<20, 0, func() {
			id, sub, credit, err = readPartitionRequest(r, scratch)
		})
		if err != nil {
			checkReadError(t, err)
			return
		}
		consumed := len(b) - r.Len()
		if enc := encodePartitionRequest(id, sub, credit); !bytes.Equal(enc, b[:consumed]) {
			t.Fatalf("request %x decoded as %q %d %d, which encodes as %x", b[:consumed], id, sub, credit, enc)
		}
		if sub > 1<<16 || credit > maxCredit || len(id) == 0 || len(id) > maxPartitionIDLen {
			t.Fatalf("request out of bounds: %q %d %d", id, sub, credit)
		}
		for {
			before := r.Len()
			n, err := readCredit(r, scratch)
			if err != nil {
				checkReadError(t, err)
				return
			}
			if got := b[len(b)-before : len(b)-r.Len()]; !bytes.Equal(got, putUint32Frame(make([]byte, 9), frameAddCredit, n)) {
				t.Fatalf("credit frame %x read as %d", got, n)
			}
		}
	})
}

// checkReadError: a reader fails with a protocol error (naming what is wrong) or with the end of its input.
func checkReadError(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, errProtocol) {
		if len(err.Error()) <= len(errProtocol.Error())+2 {
			t.Fatalf("protocol error %q does not say what is wrong", err)
		}
		return
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("unexpected error %v", err)
	}
}

// FuzzClientFrames plays a hostile producer against a remote input channel: the channel reads the fuzzer's bytes
// as its connection, and the gate is drained as a task would. Checks: no panic; the reader ends with nil only after
// EndOfPartition, else with a protocol error or the end of the connection; a consumer that never announces credit
// receives at most its exclusive and floating buffers; priority events stay within their bound; every buffer and
// event delivered is one the input holds; allocation is bounded by the input (a frame announcing MaxFrameSize and
// bringing ten bytes costs ten bytes, not MaxFrameSize).
func FuzzClientFrames(f *testing.F) {
	cfg := testConfig()
	cfg.MaxFrameSize = DefaultConfig().MaxFrameSize // 64 MiB: what a frame may announce, far above the bound below
	m := newManager(f, cfg)
	buf := func(backlog int, frames []byte) []byte {
		b := make([]byte, frameHeaderLen+4, frameHeaderLen+4+len(frames))
		putHeader(b, frameBuffer, 4+len(frames))
		binary.BigEndian.PutUint32(b[5:], uint32(backlog))
		return append(b, frames...)
	}
	event := func(typ byte, backlog int, ev Event) []byte {
		b := make([]byte, frameHeaderLen+4+eventSize)
		putHeader(b, typ, 4+eventSize)
		binary.BigEndian.PutUint32(b[5:], uint32(backlog))
		ev.encode(b[9:])
		return b
	}
	join := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	f.Add(join(buf(0, records("a", "b")), event(frameEvent, 0, Event{Type: EndOfPartition})))
	f.Add(join(buf(3, records("a")), putUint32Frame(make([]byte, 9), frameBacklog, 5), buf(0, records(strings.Repeat("x", 600))),
		event(framePriorityEvent, 1, barrier(7)), event(frameEvent, 0, Event{Type: CheckpointBarrier, CheckpointID: 8, Flags: 3}),
		event(frameEvent, 0, Event{Type: EndOfPartition})))
	f.Add(join(event(framePriorityEvent, 0, Event{Type: CancelCheckpointMarker, CheckpointID: 1}), encodeError(errCodeReleased, "gone")))
	f.Add(encodeError(errCodePartitionNotFound, "not yet"))
	f.Add(encodeError(errCodeBusy, "busy"))
	f.Add(join(buf(0, nil)[:frameHeaderLen], []byte{0, 0, 0, 0}, []byte("ten bytes!")))
	// Announces 64 MiB, brings one byte.
	f.Add([]byte{0x03, 0xff, 0, 0, frameBuffer, 0, 0, 0, 0, 'x'})
	// A record of 150 KiB: its buffer grows from the first chunk.
	f.Add(join(buf(0, records(strings.Repeat("y", 150<<10))), event(frameEvent, 0, Event{Type: EndOfPartition})))
	f.Add([]byte{0, 0, 0, 0, 77})
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := m.newInputGate([]ChannelSpec{{Partition: "job/src/0/0/0", ProducerAddress: "producer.invalid:1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		c := g.channels[0].(*remoteChannel)
		fuzzcheck.BoundedAlloc(t, "readFrames", len(b), 1<<20, 64, func() {
			err = c.readFrames(bufio.NewReaderSize(bytes.NewReader(b), 16<<10))
		})
		ended := false
		var data, events, prio int
		for {
			boe, ok, perr := g.PollNext()
			if perr != nil || !ok {
				break
			}
			if boe.IsEvent {
				var enc [eventSize]byte
				boe.Event.encode(enc[:])
				if !bytes.Contains(b, enc[:]) {
					t.Fatalf("delivered %+v, which the input does not hold", boe.Event)
				}
				if boe.Priority {
					prio++
					if boe.Overtaken != len(boe.OvertakenData) {
						t.Fatalf("priority event overtook %d buffers but carries %d copies", boe.Overtaken, len(boe.OvertakenData))
					}
				} else {
					events++
				}
				ended = ended || boe.Event.Type == EndOfPartition
				continue
			}
			data++
			if !bytes.Contains(b, boe.Buffer.Data()) {
				t.Fatalf("delivered a buffer of %d bytes which the input does not hold", boe.Buffer.Len())
			}
			boe.Buffer.Recycle()
		}
		switch {
		case err == nil && !ended:
			t.Fatal("reader ended without error before EndOfPartition")
		case err != nil && !errors.Is(err, errProtocol) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) &&
			!errors.Is(err, errPartitionNotFound) && !errors.Is(err, errProducerBusy) && !errors.Is(err, ErrPartitionReleased):
			t.Fatalf("unexpected error %v", err)
		}
		if credit := cfg.BuffersPerChannel + cfg.FloatingBuffersPerGate; data+events > credit {
			t.Fatalf("received %d buffers and events on %d credit", data+events, credit)
		}
		if prio > maxPendingPriority {
			t.Fatalf("%d priority events delivered, more than the %d a channel may hold", prio, maxPendingPriority)
		}
	})
}
