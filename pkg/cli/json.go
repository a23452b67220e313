package cli

import "github.com/weirstream/weir/proto/weirpb"

// The JSON shapes of `-o json`. They are part of weir's interface to scripts:
// later versions add fields, never rename or remove one. Instants are RFC 3339
// in UTC with milliseconds, and omitted when unknown (0 in the API).

type jobSummaryJSON struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	State     string `json:"state"`
	StartTime string `json:"start_time,omitempty"`
	EndTime   string `json:"end_time,omitempty"`
}

type jobDetailsJSON struct {
	ID             string              `json:"id"`
	Name           string              `json:"name"`
	State          string              `json:"state"`
	Parallelism    int32               `json:"parallelism"`
	MaxParallelism int32               `json:"max_parallelism"`
	StartTime      string              `json:"start_time,omitempty"`
	EndTime        string              `json:"end_time,omitempty"`
	StatusMessage  string              `json:"status_message"`
	Tasks          []taskJSON          `json:"tasks"`
	Restarts       int32               `json:"restarts"`
	Exceptions     []exceptionJSON     `json:"exceptions"`
	Checkpoints    checkpointStatsJSON `json:"checkpoints"`
}

type taskJSON struct {
	Operator    string `json:"operator"`
	Subtask     int32  `json:"subtask"`
	State       string `json:"state"`
	TaskManager string `json:"taskmanager"`
	RecordsIn   int64  `json:"records_in"`
	RecordsOut  int64  `json:"records_out"`
	Attempt     int32  `json:"attempt"`
	Failure     string `json:"failure,omitempty"`
}

type exceptionJSON struct {
	Time    string `json:"time,omitempty"`
	Task    string `json:"task"`
	Message string `json:"message"`
}

type checkpointStatsJSON struct {
	Completed  int64                 `json:"completed"`
	Failed     int64                 `json:"failed"`
	InProgress int64                 `json:"in_progress"`
	Latest     *latestCheckpointJSON `json:"latest,omitempty"`
}

type latestCheckpointJSON struct {
	ID         int64  `json:"id"`
	Path       string `json:"path"`
	DurationMS int64  `json:"duration_ms"`
	SizeBytes  int64  `json:"size_bytes"`
}

type checkpointJSON struct {
	ID          int64  `json:"id"`
	Savepoint   bool   `json:"savepoint"`
	Status      string `json:"status"`
	TriggerTime string `json:"trigger_time,omitempty"`
	DurationMS  int64  `json:"duration_ms"`
	SizeBytes   int64  `json:"size_bytes"`
	AlignmentMS int64  `json:"alignment_ms"`
	Path        string `json:"path"`
	Failure     string `json:"failure"`
	// Unaligned checkpoints persist the in-flight buffers their barriers
	// overtook.
	Unaligned              bool  `json:"unaligned"`
	PersistedInFlightBytes int64 `json:"persisted_in_flight_bytes"`
}

// checkpointDetailsJSON is `weir checkpoints JOBID CHECKPOINT_ID -o json`:
// the checkpoint and its subtasks, as Flink's checkpoint details.
type checkpointDetailsJSON struct {
	checkpointJSON
	Subtasks []subtaskCheckpointJSON `json:"subtasks"`
}

// subtaskCheckpointJSON is Flink's SubtaskCheckpointStatistics. The sync
// and async durations are milliseconds to the microsecond (0.012).
type subtaskCheckpointJSON struct {
	Operator               string  `json:"operator"`
	Vertex                 int32   `json:"vertex"`
	Subtask                int32   `json:"subtask"`
	AckTime                string  `json:"ack_time,omitempty"`
	EndToEndDurationMS     int64   `json:"end_to_end_duration_ms"`
	StateSize              int64   `json:"state_size"`
	AlignmentMS            int64   `json:"alignment_ms"`
	SyncDurationMS         float64 `json:"sync_duration_ms"`
	AsyncDurationMS        float64 `json:"async_duration_ms"`
	PersistedInFlightBytes int64   `json:"persisted_in_flight_bytes"`
}

type taskManagerJSON struct {
	ID            string `json:"id"`
	Address       string `json:"address"`
	DataAddress   string `json:"data_address"`
	SlotsTotal    int32  `json:"slots_total"`
	SlotsFree     int32  `json:"slots_free"`
	LastHeartbeat string `json:"last_heartbeat,omitempty"`
}

type jobManagerJSON struct {
	Address string `json:"address"`
	Leader  bool   `json:"leader"`
	Since   string `json:"since,omitempty"`
	// The leader's epoch, the fencing token that TaskManagers check and
	// log when they reject a call from an older leader; 0 for a standby.
	Epoch int64 `json:"epoch"`
}

type versionJSON struct {
	Version  string `json:"version"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func toJobSummaryJSON(jobs []*weirpb.JobSummary) []jobSummaryJSON {
	out := make([]jobSummaryJSON, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, jobSummaryJSON{
			ID:        j.GetId(),
			Name:      j.GetName(),
			State:     j.GetState(),
			StartTime: jsonTime(j.GetStartTimeUnixMs()),
			EndTime:   jsonTime(j.GetEndTimeUnixMs()),
		})
	}
	return out
}

func toJobDetailsJSON(d *weirpb.JobDetails) jobDetailsJSON {
	out := jobDetailsJSON{
		ID:             d.GetId(),
		Name:           d.GetName(),
		State:          d.GetState(),
		Parallelism:    d.GetParallelism(),
		MaxParallelism: d.GetMaxParallelism(),
		StartTime:      jsonTime(d.GetStartTimeUnixMs()),
		EndTime:        jsonTime(d.GetEndTimeUnixMs()),
		StatusMessage:  d.GetStatusMessage(),
		Tasks:          make([]taskJSON, 0, len(d.GetTasks())),
		Restarts:       d.GetRestarts(),
		Exceptions:     make([]exceptionJSON, 0, len(d.GetExceptions())),
	}
	for _, t := range d.GetTasks() {
		out.Tasks = append(out.Tasks, taskJSON{
			Operator:    t.GetOperator(),
			Subtask:     t.GetSubtask(),
			State:       t.GetState(),
			TaskManager: t.GetTaskmanager(),
			RecordsIn:   t.GetRecordsIn(),
			RecordsOut:  t.GetRecordsOut(),
			Attempt:     t.GetAttempt(),
			Failure:     t.GetFailure(),
		})
	}
	for _, e := range d.GetExceptions() {
		out.Exceptions = append(out.Exceptions, exceptionJSON{
			Time:    jsonTime(e.GetTimeUnixMs()),
			Task:    e.GetTask(),
			Message: e.GetMessage(),
		})
	}
	cp := d.GetCheckpoints()
	out.Checkpoints = checkpointStatsJSON{
		Completed:  cp.GetCompleted(),
		Failed:     cp.GetFailed(),
		InProgress: cp.GetInProgress(),
	}
	if l := cp.GetLatest(); l != nil {
		out.Checkpoints.Latest = &latestCheckpointJSON{
			ID:         l.GetId(),
			Path:       l.GetPath(),
			DurationMS: l.GetDurationMs(),
			SizeBytes:  l.GetSizeBytes(),
		}
	}
	return out
}

func toCheckpointDetailsJSON(c *weirpb.CheckpointInfo) checkpointDetailsJSON {
	out := checkpointDetailsJSON{
		checkpointJSON: toCheckpointsJSON([]*weirpb.CheckpointInfo{c})[0],
		Subtasks:       make([]subtaskCheckpointJSON, 0, len(c.GetSubtasks())),
	}
	for _, s := range c.GetSubtasks() {
		out.Subtasks = append(out.Subtasks, subtaskCheckpointJSON{
			Operator:               s.GetOperator(),
			Vertex:                 s.GetVertex(),
			Subtask:                s.GetSubtask(),
			AckTime:                jsonTime(s.GetAckTimeUnixMs()),
			EndToEndDurationMS:     s.GetEndToEndDurationMs(),
			StateSize:              s.GetStateSize(),
			AlignmentMS:            s.GetAlignmentMs(),
			SyncDurationMS:         float64(s.GetSyncDurationMicros()) / 1000,
			AsyncDurationMS:        float64(s.GetAsyncDurationMicros()) / 1000,
			PersistedInFlightBytes: s.GetPersistedInFlightBytes(),
		})
	}
	return out
}

func toCheckpointsJSON(cps []*weirpb.CheckpointInfo) []checkpointJSON {
	out := make([]checkpointJSON, 0, len(cps))
	for _, c := range cps {
		out = append(out, checkpointJSON{
			ID:          c.GetId(),
			Savepoint:   c.GetSavepoint(),
			Status:      c.GetStatus(),
			TriggerTime: jsonTime(c.GetTriggerTimeUnixMs()),
			DurationMS:  c.GetDurationMs(),
			SizeBytes:   c.GetSizeBytes(),
			AlignmentMS: c.GetAlignmentMs(),
			Path:        c.GetPath(),
			Failure:     c.GetFailure(),

			Unaligned:              c.GetUnaligned(),
			PersistedInFlightBytes: c.GetPersistedInFlightBytes(),
		})
	}
	return out
}

func toTaskManagersJSON(tms []*weirpb.TaskManagerInfo) []taskManagerJSON {
	out := make([]taskManagerJSON, 0, len(tms))
	for _, tm := range tms {
		out = append(out, taskManagerJSON{
			ID:            tm.GetId(),
			Address:       tm.GetAddress(),
			DataAddress:   tm.GetDataAddress(),
			SlotsTotal:    tm.GetSlotsTotal(),
			SlotsFree:     tm.GetSlotsFree(),
			LastHeartbeat: jsonTime(tm.GetLastHeartbeatUnixMs()),
		})
	}
	return out
}

func toJobManagersJSON(jms []*weirpb.JobManagerInfo) []jobManagerJSON {
	out := make([]jobManagerJSON, 0, len(jms))
	for _, jm := range jms {
		out = append(out, jobManagerJSON{
			Address: jm.GetAddress(),
			Leader:  jm.GetLeader(),
			Since:   jsonTime(jm.GetSinceUnixMs()),
			Epoch:   jm.GetEpoch(),
		})
	}
	return out
}
