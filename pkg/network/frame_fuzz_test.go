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
// requests, credit and cancel frames of any channel. The reader returns a protocol error or an I/O error, never
// panics, allocates nothing proportional to a length field, and a frame it accepts is the exact encoding of what it
// returns.
func FuzzServerFrames(f *testing.F) {
	credit := func(ch uint32, n int) []byte {
		return putUint32Frame(make([]byte, frameHeaderLen+4), frameAddCredit, ch, n)
	}
	cancel := consumerFrame{typ: frameCancel, ch: 1}.encode()
	join := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	f.Add(join(encodePartitionRequest(1, "job/v/3/0/0", 7, 2), credit(1, 1), credit(1, 5)))
	f.Add(join(encodePartitionRequest(1, "job/v/3/0/0", 7, 2), encodePartitionRequest(2, "job/v/4/0/0", 7, 2),
		credit(2, 1), cancel, credit(1, 3)))
	f.Add(encodePartitionRequest(1, "x", 0, 0))
	f.Add(encodePartitionRequest(0, "x", 0, 0))
	f.Add(encodePartitionRequest(0xffffffff, PartitionID(strings.Repeat("p", maxPartitionIDLen)), 1<<16, maxCredit))
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff, framePartitionRequest, 0, 0, 0, 1})
	f.Add(join(encodePartitionRequest(1, "x", 0, 0), []byte{0, 0, 0, 4, frameAddCredit, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}))
	f.Add(join(encodePartitionRequest(1, "x", 0, 0), []byte{0, 0, 0, 5, frameAddCredit, 0, 0, 0, 1}))
	f.Add(join(encodePartitionRequest(1, "x", 0, 0), []byte{0, 0, 0, 3, frameCancel, 0, 0, 0, 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		scratch := make([]byte, frameHeaderLen+4)
		for first := true; ; first = false {
			var (
				fr  consumerFrame
				err error
			)
			before := r.Len()
			fuzzcheck.BoundedAlloc(t, "readConsumerFrame", len(b), 1<<20, 0, func() {
				if first {
					fr, err = readPartitionRequest(r, scratch)
				} else {
					fr, err = readConsumerFrame(r, scratch)
				}
			})
			if err != nil {
				checkReadError(t, err)
				return
			}
			got := b[len(b)-before : len(b)-r.Len()]
			if enc := fr.encode(); !bytes.Equal(enc, got) {
				t.Fatalf("frame %x decoded as %+v, which encodes as %x", got, fr, enc)
			}
			if fr.ch == 0 || fr.sub > 1<<16 || fr.credit > maxCredit || len(fr.partition) > maxPartitionIDLen ||
				(fr.typ == framePartitionRequest) != (len(fr.partition) > 0) {
				t.Fatalf("frame out of bounds: %+v", fr)
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

// FuzzClientFrames plays a hostile producer against the reader of a consumer's connection, on which two channels
// (ids 1 and 2) are open and one (id 3) has ended; the gate is drained as a task would. Checks: no panic; a channel
// ends cleanly only after its EndOfPartition was delivered; the reader ends with a protocol error or the end of the
// connection (or a producer's error); a consumer that never announces credit receives at most its exclusive and
// floating buffers per channel; priority events stay within their bound; every buffer and event delivered is one
// the input holds; allocation is bounded by the input (a frame announcing MaxFrameSize and bringing ten bytes costs
// ten bytes, not MaxFrameSize).
func FuzzClientFrames(f *testing.F) {
	cfg := testConfig()
	cfg.MaxFrameSize = DefaultConfig().MaxFrameSize // 64 MiB: what a frame may announce, far above the bound below
	m := newManager(f, cfg)
	buf := func(ch uint32, backlog int, frames []byte) []byte {
		b := make([]byte, frameHeaderLen+4, frameHeaderLen+4+len(frames))
		putHeader(b, frameBuffer, ch, 4+len(frames))
		binary.BigEndian.PutUint32(b[frameHeaderLen:], uint32(backlog))
		return append(b, frames...)
	}
	event := func(typ byte, ch uint32, backlog int, ev Event) []byte {
		b := make([]byte, frameHeaderLen+4+eventSize)
		putHeader(b, typ, ch, 4+eventSize)
		binary.BigEndian.PutUint32(b[frameHeaderLen:], uint32(backlog))
		ev.encode(b[frameHeaderLen+4:])
		return b
	}
	end := Event{Type: EndOfPartition}
	join := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	f.Add(join(buf(1, 0, records("a", "b")), event(frameEvent, 1, 0, end)))
	f.Add(join(buf(1, 0, records("a")), buf(2, 0, records("b")), buf(3, 0, records("ended")), event(frameEvent, 2, 0, end),
		event(frameEvent, 1, 0, end)))
	f.Add(join(buf(1, 3, records("a")), putUint32Frame(make([]byte, frameHeaderLen+4), frameBacklog, 1, 5),
		buf(1, 0, records(strings.Repeat("x", 600))), event(framePriorityEvent, 1, 1, barrier(7)),
		event(frameEvent, 2, 0, Event{Type: CheckpointBarrier, CheckpointID: 8, Flags: 3}), event(frameEvent, 1, 0, end)))
	f.Add(join(event(framePriorityEvent, 2, 0, Event{Type: CancelCheckpointMarker, CheckpointID: 1}),
		encodeError(2, errCodeReleased, "gone"), buf(1, 0, records("still here"))))
	f.Add(join(encodeError(1, errCodePartitionNotFound, "not yet"), encodeError(2, errCodeReleased, "gone")))
	f.Add(encodeError(0, errCodeBusy, "busy"))
	f.Add(join(buf(1, 0, nil)[:frameHeaderLen], []byte{0, 0, 0, 0}, []byte("ten bytes!")))
	// Announces 64 MiB, brings one byte.
	f.Add([]byte{0x03, 0xff, 0, 0, frameBuffer, 0, 0, 0, 1, 0, 0, 0, 0, 'x'})
	// A record of 150 KiB: its buffer grows from the first chunk.
	f.Add(join(buf(2, 0, records(strings.Repeat("y", 150<<10))), event(frameEvent, 2, 0, end)))
	f.Add([]byte{0, 0, 0, 0, 77, 0, 0, 0, 1})
	f.Add(buf(4, 0, records("never requested")))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := m.newInputGate([]ChannelSpec{
			{Partition: "job/src/0/0/0", ProducerAddress: "producer.invalid:1"},
			{Partition: "job/src/1/0/0", ProducerAddress: "producer.invalid:1"},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		cc := newClientConn(m, "producer.invalid:1")
		done := []chan error{openForTest(cc, g.channels[0].(*remoteChannel)), openForTest(cc, g.channels[1].(*remoteChannel))}
		cc.lastID++ // channel 3: ended on this side
		fuzzcheck.BoundedAlloc(t, "readLoop", len(b), 1<<20, 64, func() {
			err = cc.readLoop(bufio.NewReaderSize(bytes.NewReader(b), 16<<10))
		})
		ended := make([]bool, 2)
		data, events := make([]int, 2), make([]int, 2)
		prio := 0
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
					events[boe.Channel]++
				}
				ended[boe.Channel] = ended[boe.Channel] || boe.Event.Type == EndOfPartition
				continue
			}
			data[boe.Channel]++
			if !bytes.Contains(b, boe.Buffer.Data()) {
				t.Fatalf("delivered a buffer of %d bytes which the input does not hold", boe.Buffer.Len())
			}
			boe.Buffer.Recycle()
		}
		if !errors.Is(err, errProtocol) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) &&
			!errors.Is(err, errProducerBusy) && !errors.Is(err, errPartitionNotFound) && !errors.Is(err, ErrPartitionReleased) {
			t.Fatalf("reader ended with unexpected error %v", err)
		}
		for i, d := range done {
			select {
			case cerr := <-d:
				if cerr == nil && !ended[i] {
					t.Fatalf("channel %d ended cleanly before EndOfPartition", i+1)
				}
				if cerr != nil && !errors.Is(cerr, errPartitionNotFound) && !errors.Is(cerr, ErrPartitionReleased) {
					t.Fatalf("channel %d ended with %v, want a producer's error", i+1, cerr)
				}
			default:
			}
			if credit := cfg.BuffersPerChannel + cfg.FloatingBuffersPerGate; data[i]+events[i] > credit {
				t.Fatalf("channel %d received %d buffers and events on %d credit", i+1, data[i]+events[i], credit)
			}
		}
		if prio > 2*maxPendingPriority {
			t.Fatalf("%d priority events delivered, more than the %d two channels may hold", prio, 2*maxPendingPriority)
		}
	})
}

// openForTest opens c on cc as serveChannel would, without sending anything: the next id, no credit announced.
func openForTest(cc *clientConn, c *remoteChannel) chan error {
	done := make(chan error, 1)
	cc.mu.Lock()
	cc.lastID++
	id := cc.lastID
	cc.channels[id] = clientChannel{c: c, done: done}
	cc.mu.Unlock()
	c.mu.Lock()
	c.cc, c.id = cc, id
	c.mu.Unlock()
	return done
}
