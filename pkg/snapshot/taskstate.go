package snapshot

import (
	"encoding/json"
	"fmt"
	"strings"
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
	// FromMetadata says that Operators is not sent: the TaskManager reads
	// the _metadata at Location and takes the entries of its chain's
	// operators itself (Metadata.TaskRestore). A descriptor then stays
	// the same small size whatever the parallelism: carrying the entries,
	// every subtask would get those of every old subtask, and a job's
	// descriptors would grow with the square of its parallelism.
	FromMetadata bool `json:"from_metadata,omitempty"`
}

// TaskRestore returns the restore of a subtask whose chain has the given
// operators: their entries of md, unchanged (the TaskManager picks its
// subtask's part), those of operators without state left out.
func (md *Metadata) TaskRestore(operatorIDs []string) *TaskRestore {
	tr := &TaskRestore{CheckpointID: md.CheckpointID, Location: md.Dir}
	for _, id := range operatorIDs {
		for i := range md.Operators {
			if os := &md.Operators[i]; os.ID == id && os.hasState() {
				if tr.Operators == nil {
					tr.Operators = map[string]*OperatorState{}
				}
				tr.Operators[id] = os
			}
		}
	}
	return tr
}

// hasState reports whether a checkpoint holds anything of an operator: a
// state object, or a subtask that had finished (FLIP-147: it is restored as
// finished).
func (os *OperatorState) hasState() bool {
	for _, st := range os.Subtasks {
		if st.Finished || len(st.State) > 0 {
			return true
		}
	}
	return false
}

// ReadableByTaskManagers reports whether the TaskManagers can read the
// checkpoint or savepoint at pointer themselves: every durable directory,
// not jobmanager storage, which lives in the JobManager's memory.
func ReadableByTaskManagers(pointer string) bool {
	scheme, _, isURI := strings.Cut(pointer, "://")
	return !isURI || scheme != jobManagerScheme
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
