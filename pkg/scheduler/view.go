package scheduler

import (
	"time"

	"github.com/weirstream/weir/proto/weirpb"
)

// Views of the scheduler's state for the public API and metrics. They
// return fresh values the caller may keep.

// SlotCounts returns the number of slots of every registered TaskManager and
// how many of them are free.
func (s *Scheduler) SlotCounts() (total, free int) {
	for _, tm := range s.tms {
		total += tm.slots
		free += tm.free
	}
	return total, free
}

// TaskManagerInstance returns the current registration of a TaskManager.
func (s *Scheduler) TaskManagerInstance(id string) (instance uint64, ok bool) {
	tm, ok := s.tms[id]
	if !ok {
		return 0, false
	}
	return tm.instance, true
}

// NumTaskManagers returns how many TaskManagers are registered.
func (s *Scheduler) NumTaskManagers() int { return len(s.tms) }

// JobState returns the state of a job.
func (s *Scheduler) JobState(jobID string) (JobState, bool) {
	j, ok := s.jobs[jobID]
	if !ok {
		return "", false
	}
	return j.state, true
}

// JobCounts returns how many jobs are in each state (every state present).
func (s *Scheduler) JobCounts() map[JobState]int {
	out := make(map[JobState]int, len(JobStates))
	for _, st := range JobStates {
		out[st] = 0
	}
	for _, j := range s.order {
		out[j.state]++
	}
	return out
}

// Jobs returns a summary of every job, in submission (start time) order.
func (s *Scheduler) Jobs() []*weirpb.JobSummary {
	out := make([]*weirpb.JobSummary, 0, len(s.order))
	for _, j := range s.order {
		out = append(out, &weirpb.JobSummary{
			Id: j.eg.JobID, Name: j.eg.JobName, State: string(j.state),
			StartTimeUnixMs: j.submitted.UnixMilli(), EndTimeUnixMs: unixMilli(j),
		})
	}
	return out
}

// JobDetails returns the details of a job: its tasks in vertex and subtask
// order.
func (s *Scheduler) JobDetails(jobID string) (*weirpb.JobDetails, bool) {
	j, ok := s.jobs[jobID]
	if !ok {
		return nil, false
	}
	d := &weirpb.JobDetails{
		Id: j.eg.JobID, Name: j.eg.JobName, State: string(j.state),
		Parallelism: int32(j.eg.Parallelism), MaxParallelism: int32(j.eg.MaxParallelism),
		StartTimeUnixMs: j.submitted.UnixMilli(), EndTimeUnixMs: unixMilli(j),
		StatusMessage: j.statusMessage,
		Checkpoints:   &weirpb.CheckpointStats{},
		Restarts:      int32(j.restarts),
	}
	for v, ex := range j.eg.subtasks() {
		d.Tasks = append(d.Tasks, &weirpb.TaskStatus{
			Operator: v.Name, Subtask: int32(ex.Subtask), State: string(ex.State),
			Taskmanager: ex.TaskManager, RecordsIn: ex.RecordsIn, RecordsOut: ex.RecordsOut,
			Attempt: int32(ex.Attempt), Failure: ex.Failure,
		})
	}
	for _, e := range j.exceptions {
		d.Exceptions = append(d.Exceptions, &weirpb.JobException{TimeUnixMs: e.TimeUnixMs, Task: e.Task, Message: e.Message})
	}
	return d, true
}

// NextRestart returns when the earliest pending restart is due: the time
// at which the caller should send a Tick so that a restart delay ends on
// time rather than at the next periodic Tick. The zero time means none is
// pending.
func (s *Scheduler) NextRestart() time.Time {
	var next time.Time
	for _, j := range s.order {
		if j.state == JobRestarting && j.restoreRequest == 0 && s.allTerminal(j) && (next.IsZero() || j.restartAt.Before(next)) {
			next = j.restartAt
		}
	}
	return next
}

// TaskManagers returns every registered TaskManager, sorted by id.
func (s *Scheduler) TaskManagers() []*weirpb.TaskManagerInfo {
	out := make([]*weirpb.TaskManagerInfo, 0, len(s.tms))
	for _, id := range sortedKeys(s.tms) {
		tm := s.tms[id]
		out = append(out, &weirpb.TaskManagerInfo{
			Id: tm.id, Address: tm.rpcAddress, DataAddress: tm.dataAddress,
			SlotsTotal: int32(tm.slots), SlotsFree: int32(tm.free),
			RegisteredUnixMs: tm.registered.UnixMilli(), LastHeartbeatUnixMs: tm.lastHeartbeat.UnixMilli(),
		})
	}
	return out
}

func unixMilli(j *job) int64 {
	if j.ended.IsZero() {
		return 0
	}
	return j.ended.UnixMilli()
}

// ExecutionInfo is the current attempt of one subtask, for the checkpoint
// coordinator's shell: which attempt to trigger and where it runs.
type ExecutionInfo struct {
	ID          ExecutionAttemptID
	State       ExecutionState
	TaskManager string // "" before deployment
}

// Executions returns the current attempt of every subtask of a job, in
// vertex and subtask order.
func (s *Scheduler) Executions(jobID string) ([]ExecutionInfo, bool) {
	j, ok := s.jobs[jobID]
	if !ok {
		return nil, false
	}
	var out []ExecutionInfo
	for v, ex := range j.eg.subtasks() {
		out = append(out, executionInfo(jobID, v, ex))
	}
	return out, true
}

// Execution returns the current attempt of one subtask.
func (s *Scheduler) Execution(jobID string, vertex, subtask int) (ExecutionInfo, bool) {
	j, ok := s.jobs[jobID]
	if !ok || vertex < 0 || vertex >= len(j.eg.Vertices) {
		return ExecutionInfo{}, false
	}
	v := j.eg.Vertices[vertex]
	if subtask < 0 || subtask >= len(v.Subtasks) {
		return ExecutionInfo{}, false
	}
	return executionInfo(jobID, v, v.Subtasks[subtask]), true
}

func executionInfo(jobID string, v *ExecutionJobVertex, ex *ExecutionVertex) ExecutionInfo {
	return ExecutionInfo{
		ID:    ExecutionAttemptID{JobID: jobID, Vertex: v.JobVertex.Index, Subtask: ex.Subtask, Attempt: ex.Attempt},
		State: ex.State, TaskManager: ex.TaskManager,
	}
}
