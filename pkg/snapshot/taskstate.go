package snapshot

import (
	"encoding/json"
	"fmt"
)

// TaskState is what one subtask attempt acknowledges for a checkpoint: the
// state objects of every stateful operator of its chain, by operator id. It
// travels as JSON in AcknowledgeCheckpointRequest.state; the JobManager puts
// each operator's objects into the checkpoint's Metadata under that operator
// and subtask.
type TaskState struct {
	Operators map[string][]StateObject `json:"operators,omitempty"`
}

// EncodeTaskState returns the wire form of s.
func EncodeTaskState(s *TaskState) ([]byte, error) { return json.Marshal(s) }

// DecodeTaskState parses an acknowledgement's state.
func DecodeTaskState(b []byte) (*TaskState, error) {
	var s TaskState
	if len(b) == 0 {
		return &s, nil
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode task state: %w", err)
	}
	return &s, nil
}

// TaskRestore is what one subtask attempt restores from: the
// TaskDeploymentDescriptor's restore_state, as JSON. The JobManager copies
// the checkpoint's Metadata entries of the chain's operators unchanged (the
// state of every OLD subtask); the TaskManager picks what the new subtask
// owns: every operator-state item (union redistribution: the operator keeps
// its own), and the key groups of its KeyGroupRange from every old keyed
// state object whose range overlaps it. So rescaling needs nothing more here.
type TaskRestore struct {
	CheckpointID int64 `json:"checkpoint_id"`
	// Location is the checkpoint's or savepoint's directory pointer
	// (Location.Path); state handle paths are relative to it.
	Location string `json:"location"`
	// Operators holds the chain's operators that have state in the
	// checkpoint, by operator id. An operator missing here starts empty.
	Operators map[string]*OperatorState `json:"operators,omitempty"`
}

// EncodeTaskRestore returns the wire form of r.
func EncodeTaskRestore(r *TaskRestore) ([]byte, error) { return json.Marshal(r) }

// DecodeTaskRestore parses a deployment descriptor's restore_state.
func DecodeTaskRestore(b []byte) (*TaskRestore, error) {
	var r TaskRestore
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode restore state: %w", err)
	}
	return &r, nil
}
