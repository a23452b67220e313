package network

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestNextRecord(t *testing.T) {
	frames := func(recs ...string) []byte {
		var b []byte
		for _, r := range recs {
			b = binary.AppendUvarint(b, uint64(len(r)))
			b = append(b, r...)
		}
		return b
	}
	tests := []struct {
		name    string
		in      []byte
		want    []string
		wantErr error
	}{
		{"empty", nil, nil, io.EOF},
		{"one", frames("abc"), []string{"abc"}, io.EOF},
		{"several incl empty record", frames("a", "", "long record here"), []string{"a", "", "long record here"}, io.EOF},
		{"truncated payload", frames("abcdef")[:4], nil, errTruncatedRecord},
		{"truncated second", append(frames("ab"), 5, 'x'), []string{"ab"}, errTruncatedRecord},
		{"length prefix cut", []byte{0x80}, nil, errMalformedLength},
		{"varint overflow", bytes.Repeat([]byte{0xff}, 11), nil, errMalformedLength},
		{"huge length", binary.AppendUvarint(nil, 1<<62), nil, errTruncatedRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			rest := tt.in
			var err error
			for {
				var rec []byte
				rec, rest, err = NextRecord(rest)
				if err != nil {
					break
				}
				got = append(got, string(rec))
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("records = %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("records = %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestPartitionRequestCodec(t *testing.T) {
	b := encodePartitionRequest(9, "job/v/3/0/0", 7, 2)
	typ, ch, n, err := readHeader(bytes.NewReader(b), make([]byte, frameHeaderLen), maxRequestLen)
	if err != nil || typ != framePartitionRequest || ch != 9 || n != len(b)-frameHeaderLen {
		t.Fatalf("header = %d %d %d %v", typ, ch, n, err)
	}
	id, sub, credit, err := decodePartitionRequest(b[frameHeaderLen:])
	if err != nil || id != "job/v/3/0/0" || sub != 7 || credit != 2 {
		t.Fatalf("decoded %q %d %d %v", id, sub, credit, err)
	}

	bad := []struct {
		name string
		p    []byte
	}{
		{"short", []byte{0, 0, 0, 1}},
		{"no id", make([]byte, 8)},
		{"huge credit", append([]byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, 'x')},
		{"huge subpartition", append([]byte{0xff, 0, 0, 0, 0, 0, 0, 1}, 'x')},
		{"not utf8", append(make([]byte, 8), 0xff, 0xfe)},
		{"too long", make([]byte, maxRequestLen+1)},
	}
	for _, tt := range bad {
		if _, _, _, err := decodePartitionRequest(tt.p); !errors.Is(err, errProtocol) {
			t.Errorf("%s: err = %v, want protocol error", tt.name, err)
		}
	}
}

func TestReadHeaderCapsLength(t *testing.T) {
	h := make([]byte, frameHeaderLen)
	putHeader(h, frameBuffer, 1, 1<<31)
	if _, _, _, err := readHeader(bytes.NewReader(h), make([]byte, frameHeaderLen), 1<<20); !errors.Is(err, errProtocol) {
		t.Fatalf("err = %v, want protocol error", err)
	}
	if _, _, _, err := readHeader(bytes.NewReader(h[:3]), make([]byte, frameHeaderLen), 1<<20); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want unexpected EOF", err)
	}
}

func TestEventCodec(t *testing.T) {
	for _, ev := range []Event{
		{Type: EndOfPartition},
		{Type: CheckpointBarrier, CheckpointID: 42, Timestamp: -7, Flags: 0xdeadbeef},
		{Type: CancelCheckpointMarker, CheckpointID: 1<<62 + 3},
		{Type: EndOfData},
	} {
		var b [eventSize]byte
		ev.encode(b[:])
		got, err := decodeEvent(b[:])
		if err != nil || got != ev {
			t.Errorf("round trip %+v = %+v, %v", ev, got, err)
		}
	}
	for _, b := range [][]byte{make([]byte, eventSize), append([]byte{99}, make([]byte, eventSize-1)...), make([]byte, 3)} {
		if _, err := decodeEvent(b); !errors.Is(err, errProtocol) {
			t.Errorf("decode %x: err = %v, want protocol error", b, err)
		}
	}
}

func TestErrorCodec(t *testing.T) {
	b := encodeError(1, errCodeReleased, string(bytes.Repeat([]byte("x"), 2*maxErrorLen)))
	if len(b)-frameHeaderLen > maxErrorLen {
		t.Fatalf("error frame payload %d exceeds %d", len(b)-frameHeaderLen, maxErrorLen)
	}
	code, msg, err := decodeError(b[frameHeaderLen:])
	if err != nil || code != errCodeReleased || len(msg) != maxErrorLen-1 {
		t.Fatalf("decoded %d %d %v", code, len(msg), err)
	}
	if _, _, err := decodeError(nil); !errors.Is(err, errProtocol) {
		t.Fatalf("empty: err = %v", err)
	}
}

func TestUvarintLen(t *testing.T) {
	var buf [binary.MaxVarintLen64]byte
	for _, x := range []uint64{0, 1, 127, 128, 16383, 16384, 1 << 35, 1<<64 - 1} {
		if got, want := uvarintLen(x), binary.PutUvarint(buf[:], x); got != want {
			t.Errorf("uvarintLen(%d) = %d, want %d", x, got, want)
		}
	}
}
