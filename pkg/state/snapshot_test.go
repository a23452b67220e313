package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"testing"
)

func appendInt64(dst []byte, v *int64) []byte { return binary.AppendVarint(dst, *v) }

// TestKeyGroupRoundTrip writes every key group of a snapshot and reads it
// back: exact bytes (sorted, deterministic), entries and value format.
func TestKeyGroupRoundTrip(t *testing.T) {
	s := NewKeyedStore[int64](KeyGroupRange{5, 7}, nil)
	*s.GetOrCreate(5, []byte("zz")) = -1
	*s.GetOrCreate(5, []byte("a")) = 300
	*s.GetOrCreate(7, []byte("")) = 0
	snap := s.Snapshot()
	defer snap.Release()

	tests := []struct {
		kg    int
		bytes string
		read  string
	}{
		// version 1, value format 9, 2 entries: "a" -> varint 300
		// (0xd8 0x04), "zz" -> varint -1 (0x01).
		{5, "\x01\x09\x02\x01a\x02\xd8\x04\x02zz\x01\x01", "9:a=300 9:zz=-1 "},
		{6, "", ""},
		{7, "\x01\x09\x01\x00\x01\x00", "9:=0 "},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := snap.WriteKeyGroup(tt.kg, &buf, 9, appendInt64); err != nil {
			t.Fatal(err)
		}
		if buf.String() != tt.bytes {
			t.Errorf("key group %d: wrote %q, want %q", tt.kg, buf.String(), tt.bytes)
		}
		var read strings.Builder
		err := ReadKeyGroup(bytes.NewReader(buf.Bytes()), func(f byte, k, v []byte) error {
			n, _ := binary.Varint(v)
			fmt.Fprintf(&read, "%d:%s=%d ", f, k, n)
			return nil
		})
		if err != nil || read.String() != tt.read {
			t.Errorf("key group %d: read %q, %v; want %q", tt.kg, read.String(), err, tt.read)
		}
	}
	if err := snap.WriteKeyGroup(8, io.Discard, 9, appendInt64); errString(err) != "write key group 8: outside the snapshot's range [5-7]" {
		t.Errorf("out of range: %v", err)
	}
}

// TestReadKeyGroupCorrupt: bad input is an error, never a panic or a huge
// allocation.
func TestReadKeyGroupCorrupt(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"\x02", "read key group: unknown format version 2 (want 1)"},
		{"\x01", "read key group: value format: unexpected EOF"},
		{"\x01\x09", "read key group: entry count: unexpected EOF"},
		{"\x01\x09\x01", "read key group: entry 0 of 1: key: unexpected EOF"},
		{"\x01\x09\x01\x03ab", "read key group: entry 0 of 1: key: unexpected EOF"},
		{"\x01\x09\x01\x01a", "read key group: entry 0 of 1: value: unexpected EOF"},
		{"\x01\x09\x01\x01a\xff\xff\xff\xff\x0f", "read key group: entry 0 of 1: value: length 4294967295 exceeds the limit of 67108864 bytes"},
		{"\x01\x09\x01\x01a\x00x", "read key group: unexpected bytes after 1 entries"},
		{"\x01\x09\x00", ""},
	}
	for _, tt := range tests {
		err := ReadKeyGroup(strings.NewReader(tt.in), func(byte, []byte, []byte) error { return nil })
		if errString(err) != tt.want {
			t.Errorf("ReadKeyGroup(%q) = %q, want %q", tt.in, errString(err), tt.want)
		}
	}
	stop := fmt.Errorf("stop")
	if err := ReadKeyGroup(strings.NewReader("\x01\x09\x01\x01a\x00"), func(byte, []byte, []byte) error { return stop }); err != stop {
		t.Errorf("callback error = %v, want it unchanged", err)
	}
}

// TestKeyGroupLarge crosses the write chunk size.
func TestKeyGroupLarge(t *testing.T) {
	s := NewKeyedStore[int64](KeyGroupRange{0, 0}, nil)
	const n = 20000
	for i := 0; i < n; i++ {
		*s.GetOrCreate(0, []byte(fmt.Sprintf("key-%06d", i))) = int64(i)
	}
	var buf bytes.Buffer
	if err := s.Snapshot().WriteKeyGroup(0, &buf, 1, appendInt64); err != nil {
		t.Fatal(err)
	}
	i := 0
	err := ReadKeyGroup(&buf, func(_ byte, k, v []byte) error {
		got, _ := binary.Varint(v)
		if want := fmt.Sprintf("key-%06d", i); string(k) != want || got != int64(i) {
			return fmt.Errorf("entry %d = %s:%d", i, k, got)
		}
		i++
		return nil
	})
	if err != nil || i != n {
		t.Fatalf("read %d entries, %v", i, err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
