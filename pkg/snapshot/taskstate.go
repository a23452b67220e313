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
