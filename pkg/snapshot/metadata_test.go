package snapshot

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// Idle keep-alive connections of the S3 clients (one per endpoint and
// credentials, for the process's life) are not leaks.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"))
}

// sampleMetadata has one of each kind of state object.
func sampleMetadata(jobID string, id int64, savepoint bool) *Metadata {
	return &Metadata{
		JobID: jobID, JobName: "wordcount", CheckpointID: id, TimestampMs: 1700000000123,
		Savepoint: savepoint, MaxParallelism: 8,
		Operators: []OperatorState{
			{ID: "source", Type: "sequence-source", Parallelism: 1, Subtasks: []SubtaskState{
				{Subtask: 0, State: []StateObject{{Kind: KindOperator,
					StateHandle:    StateHandle{Size: 3, CRC: crc32.Checksum([]byte("pos"), castagnoli), Inline: []byte("pos")},
					OperatorStates: []NamedOperatorState{{Name: "offsets", Mode: SplitDistribute, Offsets: []int64{0}}}}}},
			}},
			{ID: "count", Type: "keyed-aggregate", Parallelism: 2, Subtasks: []SubtaskState{
				{Subtask: 0, State: []StateObject{{Kind: KindKeyed, StateHandle: StateHandle{Path: "count-0-0011223344556677", Size: 10, CRC: 7},
					KeyGroups: &KeyGroupRangeOffsets{Start: 0, End: 3, Offsets: []int64{0, 4, 4, 9}, CRCs: []uint32{1, 0, 2, 3}}}}},
				{Subtask: 1, Finished: true},
			}},
			{ID: "sink", Type: "file-sink", Parallelism: 1, Subtasks: []SubtaskState{
				{Subtask: 0, State: []StateObject{
					{Kind: KindSinkPending, StateHandle: StateHandle{Path: "sink-0-aa", Size: 5, CRC: 9}},
					{Kind: KindInputChannel, StateHandle: StateHandle{Path: "sink-0-bb", Size: 6, CRC: 1},
						Channel: &ChannelStateInfo{Gate: 0, Channel: 1, Offsets: []int64{0, 3}}},
				}},
			}},
		},
	}
}

func TestMetadataRoundTripAndDeterminism(t *testing.T) {
	m := sampleMetadata("job1", 7, false)
	b, err := EncodeMetadata(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[:8], []byte{0x89, 'w', 'e', 'i', 'r', '\r', '\n', 0x1a}) || binary.BigEndian.Uint32(b[8:]) != 1 ||
		binary.BigEndian.Uint64(b[12:]) != uint64(len(b)-24) {
		t.Fatalf("header % x", b[:20])
	}
	got, err := DecodeMetadata(b)
	if err != nil {
		t.Fatal(err)
	}
	// Encoding sorts operators by id.
	want := sampleMetadata("job1", 7, false)
	want.Operators = []OperatorState{want.Operators[1], want.Operators[2], want.Operators[0]}
	want.Operators[0].Subtasks[1].State = nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	// The same metadata in another order encodes to the same bytes.
	again, err := EncodeMetadata(want)
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("not deterministic (err %v)", err)
	}
	if m.Operators[0].ID != "source" {
		t.Fatal("EncodeMetadata reordered the caller's slice")
	}
	if got.StateSize() != 3+10+5+6 {
		t.Fatalf("StateSize %d", got.StateSize())
	}
}

// writeRaw puts raw _metadata bytes in a new directory and returns it.
func writeRaw(t *testing.T, b []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, MetadataFileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestMetadataTruncatedAtEveryOffset(t *testing.T) {
	b, err := EncodeMetadata(&Metadata{JobID: "j", CheckpointID: 1, MaxParallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, MetadataFileName)
	for n := range len(b) {
		if err := os.WriteFile(file, b[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		var want string
		if n < headerLen {
			want = fmt.Sprintf("%s: truncated _metadata: %d bytes, shorter than the 20-byte header", file, n)
		} else {
			want = fmt.Sprintf("%s: truncated _metadata: %d bytes, header says %d", file, n, len(b))
		}
		_, err := LoadMetadata(ctx, dir)
		if err == nil || err.Error() != want || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated at %d: got %v, want %q", n, err, want)
		}
	}
}

func TestMetadataFlippedBytes(t *testing.T) {
	b, err := EncodeMetadata(sampleMetadata("job1", 7, false))
	if err != nil {
		t.Fatal(err)
	}
	plen := binary.BigEndian.Uint64(b[12:])
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0xff
		_, err := DecodeMetadata(c)
		var want string
		switch {
		case i < 8:
			want = "not a weir checkpoint or savepoint: _metadata does not start with weir's magic bytes"
		case i < 12:
			want = fmt.Sprintf("unsupported format version %d (this weir reads 1)", binary.BigEndian.Uint32(c[8:]))
		case i < 20:
			if l := binary.BigEndian.Uint64(c[12:]); l > plen {
				want = fmt.Sprintf("truncated _metadata: %d bytes, header says %d", len(b), 24+min(l, 1<<62))
			} else {
				want = fmt.Sprintf("corrupt _metadata: %d bytes after its checksum", plen-l)
			}
		default:
			want = "checksum mismatch: _metadata has CRC-32C"
		}
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("byte %d flipped: got %v, want %q", i, err, want)
		}
	}
}

// reseal recomputes the CRC after a deliberate change.
func reseal(b []byte) []byte {
	end := len(b) - 4
	binary.BigEndian.PutUint32(b[end:], crc32.Checksum(b[:end], castagnoli))
	return b
}

func TestMetadataRejected(t *testing.T) {
	good, err := EncodeMetadata(sampleMetadata("job1", 7, false))
	if err != nil {
		t.Fatal(err)
	}
	future := bytes.Clone(good)
	binary.BigEndian.PutUint32(future[8:], 7)
	reseal(future)

	badJSON := bytes.Clone(good)
	badJSON[20] = '['
	reseal(badJSON)

	escape := sampleMetadata("job1", 7, true)
	escape.Operators[2].Subtasks[0].State[0].Path = "../../etc/passwd"
	escapeBytes, err := json.Marshal(escape)
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		b    []byte
		want string // after "<file>: " or "<dir>: "
	}{
		{"future version", future, "unsupported format version 7 (this weir reads 1)"},
		{"wrong magic", append([]byte("PK\x03\x04"), good[4:]...), "_metadata does not start with weir's magic bytes"},
		{"empty", nil, "truncated _metadata: 0 bytes, shorter than the 20-byte header"},
		{"trailing bytes", append(bytes.Clone(good), 0), "corrupt _metadata: 1 bytes after its checksum"},
		{"bad payload", badJSON, "corrupt _metadata payload: invalid character ':' after array element"},
		{"path outside the directory", frame(escapeBytes), `invalid _metadata: operator "sink": subtask 0 state 0: state file path "../../etc/passwd" is not a file name inside the checkpoint directory`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := writeRaw(t, c.b)
			_, err := LoadMetadata(ctx, dir)
			prefix := filepath.Join(dir, MetadataFileName) + ": "
			if c.name == "wrong magic" {
				prefix = "not a weir checkpoint or savepoint: " + dir + ": "
			}
			if err == nil || err.Error() != prefix+c.want {
				t.Fatalf("got  %v\nwant %s", err, prefix+c.want)
			}
		})
	}
}

// frame wraps a payload as a version-1 _metadata without validating it.
func frame(payload []byte) []byte {
	b := append([]byte(nil), magic[:]...)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(len(payload)))
	b = append(b, payload...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func TestLoadMetadataNotASnapshot(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, why string }{
		{dir, "no _metadata"},
		{filepath.Join(dir, MetadataFileName), "no _metadata"},
		{filepath.Join(dir, "missing"), "does not exist"},
		{filepath.Join(dir, "missing", MetadataFileName), "does not exist"},
		{file, "not a directory"},
		{filepath.Join(file, "sub"), "does not exist"},
	} {
		_, err := LoadMetadata(ctx, tc.path)
		want := "not a weir checkpoint or savepoint: " + tc.path + ": " + tc.why
		if err == nil || err.Error() != want || !errors.Is(err, ErrNotSnapshot) {
			t.Errorf("LoadMetadata(ctx, %s) = %v, want %q", tc.path, err, want)
		}
	}
}

func TestValidateMetadata(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(m *Metadata)
		want   string
	}{
		{"no job id", func(m *Metadata) { m.JobID = "" }, `job id "" cannot name a directory`},
		{"max parallelism", func(m *Metadata) { m.MaxParallelism = 0 }, "max parallelism 0 must be in [1, 32768]"},
		{"duplicate operator", func(m *Metadata) { m.Operators[1].ID = "source" }, `operator "source" appears twice`},
		{"subtask count", func(m *Metadata) { m.Operators[1].Parallelism = 3 }, `operator "count": 2 subtasks, want parallelism 3`},
		{"subtask index", func(m *Metadata) { m.Operators[1].Subtasks[1].Subtask = 0 }, `operator "count": subtask entry 1 has index 0`},
		{"unknown kind", func(m *Metadata) { m.Operators[0].Subtasks[0].State[0].Kind = "timers" }, `operator "source": subtask 0 state 0: unknown state kind "timers"`},
		{"keyed without key groups", func(m *Metadata) { m.Operators[1].Subtasks[0].State[0].KeyGroups = nil }, `operator "count": subtask 0 state 0: keyed state: key_groups must be set exactly for keyed state`},
		{"key groups beyond max parallelism", func(m *Metadata) { m.Operators[1].Subtasks[0].State[0].KeyGroups.End = 8 }, `operator "count": subtask 0 state 0: key group range [0-8] not within [0-7]`},
		{"offset beyond size", func(m *Metadata) { m.Operators[1].Subtasks[0].State[0].KeyGroups.Offsets[3] = 11 }, `operator "count": subtask 0 state 0: key group offsets: offset 11 out of order or beyond size 10`},
		{"inline size", func(m *Metadata) { m.Operators[0].Subtasks[0].State[0].Size = 4 }, `operator "source": subtask 0 state 0: inline state of 3 bytes, size says 4`},
		{"absolute path", func(m *Metadata) { m.Operators[2].Subtasks[0].State[0].Path = "/etc/passwd" }, `operator "sink": subtask 0 state 0: state file path "/etc/passwd" is not a file name inside the checkpoint directory`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := sampleMetadata("job1", 1, false)
			c.change(m)
			_, err := EncodeMetadata(m)
			if err == nil || err.Error() != "invalid metadata: "+c.want {
				t.Fatalf("got  %v\nwant invalid metadata: %s", err, c.want)
			}
		})
	}
}
