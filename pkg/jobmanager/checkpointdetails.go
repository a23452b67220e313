package jobmanager

import (
	"github.com/weirstream/weir/pkg/coordinator"
	"github.com/weirstream/weir/proto/weirpb"
)

// checkpointDetails is checkpointInfo with one entry per acknowledging
// subtask (Flink's checkpoint details): its sync, async and alignment
// durations, size and acknowledgement time. vertices names the chains.
func (cp *checkpointing) checkpointDetails(s coordinator.CheckpointStats) *weirpb.CheckpointInfo {
	info := checkpointInfo(s)
	info.Subtasks = make([]*weirpb.SubtaskCheckpointInfo, 0, len(s.Subtasks))
	for _, st := range s.Subtasks {
		sub := &weirpb.SubtaskCheckpointInfo{
			Vertex: int32(st.Task.Vertex), Subtask: int32(st.Task.Subtask),
			AckTimeUnixMs: st.AckTime.UnixMilli(), EndToEndDurationMs: max(st.AckTime.UnixMilli()-s.TriggerTime.UnixMilli(), 0),
			StateSize: st.StateSize, AlignmentMs: st.AlignmentMs,
			SyncDurationMicros: st.SyncDuration.Microseconds(), AsyncDurationMicros: st.AsyncDuration.Microseconds(),
			PersistedInFlightBytes: st.PersistedInFlightBytes,
		}
		if st.Task.Vertex >= 0 && st.Task.Vertex < len(cp.vertices) {
			sub.Operator = vertexName(cp.vertices[st.Task.Vertex])
		}
		info.Subtasks = append(info.Subtasks, sub)
	}
	return info
}
