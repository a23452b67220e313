package snapshot

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"

	"github.com/weirstream/weir/pkg/state"
)

// FormatVersion is the version of the _metadata format this weir writes and
// reads. Bump it for any change that an older reader would misread; adding
// an optional JSON field that older readers may ignore is not such a change.
const FormatVersion = 1

// MetadataFileName is the name of the commit point of a checkpoint or
// savepoint directory.
const MetadataFileName = "_metadata"

// magic opens every _metadata. Like PNG's signature, it has a non-ASCII
// byte and CR LF, so that a file mangled by a text-mode transfer is not
// mistaken for a valid one.
var magic = [8]byte{0x89, 'w', 'e', 'i', 'r', '\r', '\n', 0x1a}

const (
	headerLen  = len(magic) + 4 + 8 // magic, version (uint32), payload length (uint64)
	trailerLen = 4                  // CRC-32C
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrNotSnapshot matches (errors.Is) the error for a path that holds no
// weir checkpoint or savepoint at all: no _metadata, or not weir's magic.
var ErrNotSnapshot = errors.New("not a weir checkpoint or savepoint")

// ErrCorrupt matches (errors.Is) the errors for a _metadata or state file
// that exists but is truncated, fails its checksum or is malformed.
var ErrCorrupt = errors.New("corrupt checkpoint data")

// notSnapshotError reads "not a weir checkpoint or savepoint: <path>: <why>".
type notSnapshotError struct{ path, why string }

func (e *notSnapshotError) Error() string {
	if e.path == "" {
		return ErrNotSnapshot.Error() + ": " + e.why
	}
	return ErrNotSnapshot.Error() + ": " + e.path + ": " + e.why
}

func (e *notSnapshotError) Is(target error) bool { return target == ErrNotSnapshot }

// corruptError carries its own message and matches ErrCorrupt.
type corruptError struct{ msg string }

func (e *corruptError) Error() string        { return e.msg }
func (e *corruptError) Is(target error) bool { return target == ErrCorrupt }

func corruptf(format string, args ...any) error {
	return &corruptError{fmt.Sprintf(format, args...)}
}

// Metadata is the canonical description of one completed checkpoint or
// savepoint, independent of the storage it was written to. It is the format
// that a later release must still read from a savepoint: change it only by
// adding optional fields, or bump FormatVersion.
type Metadata struct {
	JobID   string `json:"job_id"`
	JobName string `json:"job_name"`
	// CheckpointID is the id from the job's checkpoint counter (savepoints
	// take theirs from the same counter, as in Flink).
	CheckpointID int64 `json:"checkpoint_id"`
	// TimestampMs is when the checkpoint was triggered, in Unix milliseconds.
	TimestampMs int64 `json:"timestamp_ms"`
	Savepoint   bool  `json:"savepoint"`
	// MaxParallelism is the job's number of key groups; it cannot change
	// for a job that has keyed state.
	MaxParallelism int `json:"max_parallelism"`
	// Operators, sorted by ID when encoded (EncodeMetadata sorts a copy).
	Operators []OperatorState `json:"operators"`

	// Dir is where LoadMetadata found this metadata (the directory, in the
	// form given to LoadMetadata): pass it to OpenState. Not stored, since
	// the directory can move.
	Dir string `json:"-"`
}

// OperatorState is the state of all subtasks of one operator.
type OperatorState struct {
	// ID is the operator's id in the job graph: state is matched to
	// operators by it on restore.
	ID string `json:"id"`
	// Type is the operator type (the job file's `type`), so that a restore
	// can tell that an id now names a different kind of operator.
	Type        string `json:"type"`
	Parallelism int    `json:"parallelism"`
	// Subtasks has exactly Parallelism entries; Subtasks[i].Subtask == i.
	Subtasks []SubtaskState `json:"subtasks"`
}

// SubtaskState is the state of one subtask (Flink's OperatorSubtaskState).
type SubtaskState struct {
	Subtask int `json:"subtask"`
	// Finished marks a subtask that had finished (bounded input) when the
	// checkpoint was taken; it is not restarted on restore.
	Finished bool          `json:"finished"`
	State    []StateObject `json:"state,omitempty"`
}

// StateKind tags a StateObject with what its bytes hold.
type StateKind string

// The kinds of state (Flink's names in comments).
const (
	// KindOperator is non-keyed operator state (OperatorStateHandle), e.g.
	// a source's position. OperatorStates, if set, lists its named states.
	KindOperator StateKind = "operator"
	// KindKeyed is keyed state (KeyGroupsStateHandle): KeyGroups is required
	// and gives the offset and CRC of each key group in the file.
	KindKeyed StateKind = "keyed"
	// KindInputChannel is in-flight data of an input channel, for unaligned
	// checkpoints (InputChannelStateHandle); Channel is required.
	KindInputChannel StateKind = "input-channel"
	// KindResultSubpartition is in-flight data of an output subpartition
	// (ResultSubpartitionStateHandle); Channel is required.
	KindResultSubpartition StateKind = "result-subpartition"
	// KindSinkPending is a sink's pending (pre-committed, not yet
	// committed) files of its two-phase commit, in the sink's own encoding.
	KindSinkPending StateKind = "sink-pending"
)

var knownKinds = []StateKind{KindOperator, KindKeyed, KindInputChannel, KindResultSubpartition, KindSinkPending}

// StateHandle says where the bytes of one piece of state are and how to
// check them (Flink's StreamStateHandle).
type StateHandle struct {
	// Path is the base name of the state file in the checkpoint's
	// directory (never absolute, never with a separator), or "" when the
	// bytes are Inline.
	Path string `json:"path,omitempty"`
	// Size is the number of bytes; CRC their CRC-32C (Castagnoli).
	Size int64  `json:"size"`
	CRC  uint32 `json:"crc32c"`
	// Inline holds the bytes themselves when Path is "" (jobmanager
	// storage, or state smaller than the filesystem's inline threshold).
	Inline []byte `json:"inline,omitempty"`
	// Entropy is set when entropy injection (s3.entropy.key) wrote the
	// file outside the checkpoint's directory: the random characters
	// that, with a separator, were inserted at byte EntropyAt of the
	// directory's path (where the entropy key was). Never in savepoints,
	// which are self-contained.
	Entropy   string `json:"entropy,omitempty"`
	EntropyAt int    `json:"entropy_at,omitempty"`
}

// IsInline reports whether the bytes are in the handle rather than a file.
func (h StateHandle) IsInline() bool { return h.Path == "" }

// StateObject is one piece of a subtask's state: a handle tagged with its
// kind and the kind's index into the bytes.
type StateObject struct {
	Kind StateKind `json:"kind"`
	StateHandle
	// KeyGroups is set for KindKeyed only.
	KeyGroups *KeyGroupRangeOffsets `json:"key_groups,omitempty"`
	// OperatorStates is optional for KindOperator: the named states in the
	// bytes, needed to redistribute them when the parallelism changes.
	OperatorStates []NamedOperatorState `json:"operator_states,omitempty"`
	// Channel is set for KindInputChannel and KindResultSubpartition only.
	Channel *ChannelStateInfo `json:"channel,omitempty"`
}

// KeyGroupRangeOffsets indexes a keyed state file by key group (Flink's
// KeyGroupRangeOffsets), so that a restore after rescaling reads only the
// key groups of its new range. Key group Start+i occupies the bytes
// [Offsets[i], Offsets[i+1]) of the file (the last one up to Size) and
// CRCs[i] is their CRC-32C. KeyGroupWriter fills it in.
type KeyGroupRangeOffsets struct {
	Start   int      `json:"start"` // first key group, inclusive
	End     int      `json:"end"`   // last key group, inclusive
	Offsets []int64  `json:"offsets"`
	CRCs    []uint32 `json:"crc32c"`
}

// Range returns the key groups as a state.KeyGroupRange.
func (k *KeyGroupRangeOffsets) Range() state.KeyGroupRange {
	return state.KeyGroupRange{Start: k.Start, End: k.End}
}

// span returns the byte range of key group kg within a file of size bytes.
func (k *KeyGroupRangeOffsets) span(kg int, size int64) (off, end int64) {
	i := kg - k.Start
	end = size
	if i+1 < len(k.Offsets) {
		end = k.Offsets[i+1]
	}
	return k.Offsets[i], end
}

// DistributionMode says how a named operator state is redistributed when
// the parallelism changes (Flink's OperatorStateHandle.Mode).
type DistributionMode string

// Flink's modes.
const (
	// SplitDistribute: the list elements of all subtasks are split among
	// the new subtasks (ListState).
	SplitDistribute DistributionMode = "split"
	// Union: every new subtask gets all elements (UnionListState).
	Union DistributionMode = "union"
	// Broadcast: every subtask held the same state; each gets one copy.
	Broadcast DistributionMode = "broadcast"
)

// NamedOperatorState locates one named list state within an operator state
// file: Offsets[i] is where its i-th element starts.
type NamedOperatorState struct {
	Name    string           `json:"name"`
	Mode    DistributionMode `json:"mode"`
	Offsets []int64          `json:"offsets"`
}

// ChannelStateInfo locates in-flight data of one channel (unaligned
// checkpoints): Gate is the input gate (or result partition) index, Channel
// the channel (or subpartition) index, Offsets where each buffer starts.
type ChannelStateInfo struct {
	Gate    int     `json:"gate"`
	Channel int     `json:"channel"`
	Offsets []int64 `json:"offsets"`
}

// StateSize returns the total size of the state the metadata references
// (inline and in files), for checkpoint statistics.
func (m *Metadata) StateSize() int64 {
	var n int64
	for _, op := range m.Operators {
		for _, st := range op.Subtasks {
			for _, o := range st.State {
				n += o.Size
			}
		}
	}
	return n
}

// Validate checks the structure of m: everything that must hold for a
// restore to make sense. WriteMetadata and LoadMetadata call it, so a
// malformed Metadata is neither written nor restored.
func (m *Metadata) Validate() error {
	if err := validJobID(m.JobID); err != nil {
		return err
	}
	if m.CheckpointID < 0 {
		return fmt.Errorf("checkpoint id %d is negative", m.CheckpointID)
	}
	if m.MaxParallelism <= 0 || m.MaxParallelism > state.UpperBoundMaxParallelism {
		return fmt.Errorf("max parallelism %d must be in [1, %d]", m.MaxParallelism, state.UpperBoundMaxParallelism)
	}
	seen := make(map[string]bool, len(m.Operators))
	for _, op := range m.Operators {
		if op.ID == "" {
			return errors.New("operator with an empty id")
		}
		if seen[op.ID] {
			return fmt.Errorf("operator %q appears twice", op.ID)
		}
		seen[op.ID] = true
		if err := op.validate(m.MaxParallelism); err != nil {
			return fmt.Errorf("operator %q: %w", op.ID, err)
		}
		if m.Savepoint && op.hasEntropy() {
			return fmt.Errorf("operator %q: a savepoint's state files have no entropy (they are in its directory)", op.ID)
		}
	}
	return nil
}

func (op *OperatorState) validate(maxP int) error {
	if err := state.ValidateParallelism(maxP, op.Parallelism); err != nil {
		return err
	}
	if len(op.Subtasks) != op.Parallelism {
		return fmt.Errorf("%d subtasks, want parallelism %d", len(op.Subtasks), op.Parallelism)
	}
	for i, st := range op.Subtasks {
		if st.Subtask != i {
			return fmt.Errorf("subtask entry %d has index %d", i, st.Subtask)
		}
		for j, o := range st.State {
			if err := o.validate(maxP); err != nil {
				return fmt.Errorf("subtask %d state %d: %w", i, j, err)
			}
		}
	}
	return nil
}

func (op *OperatorState) hasEntropy() bool {
	for _, st := range op.Subtasks {
		for _, o := range st.State {
			if o.Entropy != "" {
				return true
			}
		}
	}
	return false
}

func (o *StateObject) validate(maxP int) error {
	if !slices.Contains(knownKinds, o.Kind) {
		return fmt.Errorf("unknown state kind %q", o.Kind)
	}
	if err := o.StateHandle.validate(); err != nil {
		return err
	}
	if (o.Kind == KindKeyed) != (o.KeyGroups != nil) {
		return fmt.Errorf("%s state: key_groups must be set exactly for keyed state", o.Kind)
	}
	isChannel := o.Kind == KindInputChannel || o.Kind == KindResultSubpartition
	if isChannel != (o.Channel != nil) {
		return fmt.Errorf("%s state: channel must be set exactly for channel state", o.Kind)
	}
	if len(o.OperatorStates) > 0 && o.Kind != KindOperator {
		return fmt.Errorf("%s state: operator_states is for operator state only", o.Kind)
	}
	if k := o.KeyGroups; k != nil {
		if k.Start < 0 || k.End < k.Start || k.End >= maxP {
			return fmt.Errorf("key group range [%d-%d] not within [0-%d]", k.Start, k.End, maxP-1)
		}
		n := k.End - k.Start + 1
		if len(k.Offsets) != n || len(k.CRCs) != n {
			return fmt.Errorf("key group range [%d-%d] has %d offsets and %d checksums, want %d", k.Start, k.End, len(k.Offsets), len(k.CRCs), n)
		}
		if err := validOffsets(k.Offsets, o.Size); err != nil {
			return fmt.Errorf("key group offsets: %w", err)
		}
	}
	for _, ns := range o.OperatorStates {
		switch ns.Mode {
		case SplitDistribute, Union, Broadcast:
		default:
			return fmt.Errorf("operator state %q: unknown distribution mode %q", ns.Name, ns.Mode)
		}
		if err := validOffsets(ns.Offsets, o.Size); err != nil {
			return fmt.Errorf("operator state %q offsets: %w", ns.Name, err)
		}
	}
	if c := o.Channel; c != nil {
		if c.Gate < 0 || c.Channel < 0 {
			return fmt.Errorf("channel %d/%d is negative", c.Gate, c.Channel)
		}
		if err := validOffsets(c.Offsets, o.Size); err != nil {
			return fmt.Errorf("channel offsets: %w", err)
		}
	}
	return nil
}

func (h *StateHandle) validate() error {
	if h.Size < 0 {
		return fmt.Errorf("negative size %d", h.Size)
	}
	if h.Path == "" {
		if h.Entropy != "" || h.EntropyAt != 0 {
			return errors.New("inline state with entropy")
		}
		if int64(len(h.Inline)) != h.Size {
			return fmt.Errorf("inline state of %d bytes, size says %d", len(h.Inline), h.Size)
		}
		return nil
	}
	if h.Inline != nil {
		return fmt.Errorf("state %q has both a path and inline bytes", h.Path)
	}
	if h.EntropyAt < 0 || (h.Entropy == "" && h.EntropyAt != 0) {
		return fmt.Errorf("state %q has entropy %q at byte %d", h.Path, h.Entropy, h.EntropyAt)
	}
	if h.Entropy != "" && !validEntropy(h.Entropy) {
		return fmt.Errorf("state %q has entropy %q: want 1 to %d lower-case letters and digits", h.Path, h.Entropy, maxEntropyLength)
	}
	return validFileName(h.Path)
}

// maxEntropyLength bounds the entropy of a state file (s3.entropy.length).
const maxEntropyLength = 64

func validEntropy(e string) bool {
	if len(e) == 0 || len(e) > maxEntropyLength {
		return false
	}
	for _, c := range []byte(e) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// validFileName accepts only a base name, so that every handle stays inside
// the checkpoint's directory (relocatable, and safe to delete).
func validFileName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("state file path %q is not a file name inside the checkpoint directory", name)
	}
	return nil
}

func validOffsets(offs []int64, size int64) error {
	prev := int64(0)
	for _, o := range offs {
		if o < prev || o > size {
			return fmt.Errorf("offset %d out of order or beyond size %d", o, size)
		}
		prev = o
	}
	return nil
}

func validJobID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\\\x00") {
		return fmt.Errorf("job id %q cannot name a directory", id)
	}
	return nil
}

// EncodeMetadata returns the _metadata bytes of m:
//
//	8 bytes   magic 0x89 'w' 'e' 'i' 'r' '\r' '\n' 0x1a
//	4 bytes   format version, big-endian uint32 (FormatVersion)
//	8 bytes   payload length n, big-endian uint64
//	n bytes   payload: m as JSON (operators sorted by id)
//	4 bytes   CRC-32C (Castagnoli) of all preceding bytes, big-endian
//
// The same m always encodes to the same bytes.
func EncodeMetadata(m *Metadata) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("invalid metadata: %w", err)
	}
	c := *m
	c.Operators = slices.Clone(m.Operators)
	slices.SortFunc(c.Operators, func(a, b OperatorState) int { return strings.Compare(a.ID, b.ID) })
	payload, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	b := make([]byte, 0, headerLen+len(payload)+trailerLen)
	b = append(b, magic[:]...)
	b = binary.BigEndian.AppendUint32(b, FormatVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(len(payload)))
	b = append(b, payload...)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return b, nil
}

// DecodeMetadata parses and checks _metadata bytes. Errors name the problem
// ("truncated _metadata", "checksum mismatch", "unsupported format version
// 7 (this weir reads 1)", ...); LoadMetadata adds the path.
func DecodeMetadata(b []byte) (*Metadata, error) {
	// A prefix of the magic is a truncated file; anything else is not ours.
	n := min(len(b), len(magic))
	if !bytes.Equal(b[:n], magic[:n]) {
		return nil, &notSnapshotError{why: "_metadata does not start with weir's magic bytes"}
	}
	if len(b) < headerLen {
		return nil, corruptf("truncated _metadata: %d bytes, shorter than the %d-byte header", len(b), headerLen)
	}
	if v := binary.BigEndian.Uint32(b[len(magic):]); v != FormatVersion {
		return nil, fmt.Errorf("unsupported format version %d (this weir reads %d)", v, FormatVersion)
	}
	plen := binary.BigEndian.Uint64(b[len(magic)+4:])
	avail := uint64(len(b) - headerLen)
	if plen > avail || avail-plen < trailerLen {
		return nil, corruptf("truncated _metadata: %d bytes, header says %d", len(b), uint64(headerLen+trailerLen)+min(plen, 1<<62))
	}
	if extra := avail - plen - trailerLen; extra > 0 {
		return nil, corruptf("corrupt _metadata: %d bytes after its checksum", extra)
	}
	end := headerLen + int(plen)
	stored := binary.BigEndian.Uint32(b[end:])
	if got := crc32.Checksum(b[:end], castagnoli); got != stored {
		return nil, corruptf("checksum mismatch: _metadata has CRC-32C %08x, its content gives %08x", stored, got)
	}
	var m Metadata
	if err := json.Unmarshal(b[headerLen:end], &m); err != nil {
		return nil, corruptf("corrupt _metadata payload: %v", err)
	}
	if err := m.Validate(); err != nil {
		return nil, corruptf("invalid _metadata: %v", err)
	}
	return &m, nil
}
