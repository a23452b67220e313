package coordinator

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"
)

// Coordinator is the checkpoint coordinator of one job execution. It is not
// safe for concurrent use: one goroutine (or one mutex) owns it.
type Coordinator struct {
	cfg           Config        // with defaults applied
	baseInterval  time.Duration // max(Interval, MinPause), as Flink
	maxConcurrent int

	// vertices hold the topology and every task's state, by vertex and
	// subtask index: iterating them visits the tasks in sorted order.
	vertices   []vertexInfo
	unfinished int // tasks not FINISHED

	nextID  int64
	pending map[int64]*pendingCheckpoint

	// Periodic scheduling (Flink's ScheduledTrigger at a fixed rate plus the
	// CheckpointRequestDecider's single queued periodic request).
	nextPeriodic   time.Time // next periodic request; meaningful when periodicActive
	periodicQueued bool      // a periodic request waits for a free slot
	lastCompletion time.Time // for MinPause; zero before the first completion
	suspended      bool      // a stop-with-savepoint was triggered
	stopped        bool

	// CheckpointFailureManager.
	failures      int
	lastSucceeded int64

	retained []CompletedCheckpoint // oldest first

	// Checkpoints aborted while their metadata was being written: a later
	// successful MetadataWritten must delete what was written.
	abortedWriting map[int64]DiscardCheckpoint

	history        []*CheckpointStats // oldest first, at most HistorySize
	completedCount int
	failedCount    int

	out []Action
}

type vertexInfo struct {
	inputs     []Input
	tasks      []taskInfo // by subtask
	unfinished int        // tasks not FINISHED
}

type taskInfo struct {
	attempt  int
	running  bool
	finished bool
}

type savepointRequest struct {
	request     uint64
	target      string
	stop, drain bool
}

// pendingCheckpoint is Flink's PendingCheckpoint.
type pendingCheckpoint struct {
	id        int64
	timestamp time.Time
	deadline  time.Time
	savepoint *savepointRequest // nil for a checkpoint
	tasks     []TaskID          // waited for: not FINISHED at trigger, sorted
	awaiting  map[TaskID]bool   // not acknowledged yet
	states    map[TaskID]TaskState
	writing   bool // fully acknowledged, WriteMetadata sent
	stats     *CheckpointStats
}

// New builds the coordinator of one job execution at time now; the first
// periodic checkpoint is due at now+Interval. It returns an error for an
// invalid configuration or topology.
func New(cfg Config, now time.Time) (*Coordinator, error) {
	if cfg.Interval < 0 || cfg.MinPause < 0 || cfg.Timeout < 0 || cfg.AlignedCheckpointTimeout < 0 {
		return nil, errors.New("checkpoint coordinator: negative duration in configuration")
	}
	if cfg.TolerableFailedCheckpoints < 0 || cfg.MaxConcurrent < 0 || cfg.NumRetained < 0 || cfg.NextCheckpointID < 0 {
		return nil, errors.New("checkpoint coordinator: negative number in configuration")
	}
	if cfg.Mode == "" {
		cfg.Mode = ExactlyOnce
	}
	if cfg.Mode != ExactlyOnce && cfg.Mode != AtLeastOnce {
		return nil, fmt.Errorf("checkpoint coordinator: unknown mode %q", cfg.Mode)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.NumRetained == 0 {
		cfg.NumRetained = DefaultNumRetained
	}
	if cfg.NextCheckpointID == 0 {
		cfg.NextCheckpointID = 1
	}
	if cfg.Unaligned && (cfg.Mode != ExactlyOnce || cfg.MaxConcurrent > 1) {
		return nil, errors.New("checkpoint coordinator: unaligned checkpoints require EXACTLY_ONCE and max-concurrent-checkpoints 1")
	}
	c := &Coordinator{
		cfg:            cfg,
		baseInterval:   max(cfg.Interval, cfg.MinPause),
		maxConcurrent:  cfg.MaxConcurrent,
		nextID:         cfg.NextCheckpointID,
		pending:        map[int64]*pendingCheckpoint{},
		abortedWriting: map[int64]DiscardCheckpoint{},
	}
	if cfg.Interval == 0 {
		c.baseInterval = 0
	}
	if cfg.MinPause > 0 {
		// Flink: "this configuration value also implies that the number of
		// concurrent checkpoints is one".
		c.maxConcurrent = 1
	}
	if err := c.buildTopology(cfg.Vertices, cfg.Tasks); err != nil {
		return nil, err
	}
	if err := c.seed(cfg.Restored); err != nil {
		return nil, err
	}
	c.cfg.Vertices, c.cfg.Tasks, c.cfg.Restored = nil, nil, nil // owned by vertices and retained now
	if c.baseInterval > 0 {
		c.nextPeriodic = now.Add(c.baseInterval)
	}
	return c, nil
}

func (c *Coordinator) buildTopology(vertices []Vertex, tasks []Task) error {
	if len(vertices) == 0 {
		return errors.New("checkpoint coordinator: no vertices")
	}
	c.vertices = make([]vertexInfo, len(vertices))
	for i, v := range vertices {
		if v.Parallelism < 1 {
			return fmt.Errorf("checkpoint coordinator: vertex %d has parallelism %d", i, v.Parallelism)
		}
		for _, in := range v.Inputs {
			if in.Vertex < 0 || in.Vertex >= len(vertices) {
				return fmt.Errorf("checkpoint coordinator: vertex %d reads from unknown vertex %d", i, in.Vertex)
			}
			if up := vertices[in.Vertex].Parallelism; in.Forward && up != v.Parallelism {
				return fmt.Errorf("checkpoint coordinator: vertex %d (parallelism %d) reads forward from vertex %d (parallelism %d)",
					i, v.Parallelism, in.Vertex, up)
			}
		}
		c.vertices[i] = vertexInfo{inputs: append([]Input(nil), v.Inputs...), tasks: make([]taskInfo, v.Parallelism), unfinished: v.Parallelism}
		c.unfinished += v.Parallelism
	}
	listed := make([]bool, c.unfinished) // by task index over all vertices
	offsets := make([]int, len(vertices))
	for i := 1; i < len(vertices); i++ {
		offsets[i] = offsets[i-1] + vertices[i-1].Parallelism
	}
	for _, t := range tasks {
		if t.ID.Vertex < 0 || t.ID.Vertex >= len(vertices) || t.ID.Subtask < 0 || t.ID.Subtask >= vertices[t.ID.Vertex].Parallelism {
			return fmt.Errorf("checkpoint coordinator: task %v is not in the topology", t.ID)
		}
		k := offsets[t.ID.Vertex] + t.ID.Subtask
		if listed[k] {
			return fmt.Errorf("checkpoint coordinator: task %v listed twice", t.ID)
		}
		listed[k] = true
		c.vertices[t.ID.Vertex].tasks[t.ID.Subtask] = taskInfo{attempt: t.Attempt, running: t.Running}
	}
	// A cycle would leave a checkpoint without trigger targets. Over
	// vertices: a cycle of subtasks is a cycle of their vertices.
	const (
		unvisited = iota
		visiting
		done
	)
	mark := make([]int, len(vertices))
	var visit func(int) error
	visit = func(v int) error {
		switch mark[v] {
		case visiting:
			return fmt.Errorf("checkpoint coordinator: vertex %d is its own upstream", v)
		case done:
			return nil
		}
		mark[v] = visiting
		for _, in := range vertices[v].Inputs {
			if err := visit(in.Vertex); err != nil {
				return err
			}
		}
		mark[v] = done
		return nil
	}
	for v := range vertices {
		if err := visit(v); err != nil {
			return err
		}
	}
	return nil
}

func (c *Coordinator) seed(restored []CompletedCheckpoint) error {
	c.retained = append([]CompletedCheckpoint(nil), restored...)
	sort.Slice(c.retained, func(i, j int) bool { return c.retained[i].ID < c.retained[j].ID })
	for i, cp := range c.retained {
		if cp.ID <= 0 || cp.ID >= c.nextID {
			return fmt.Errorf("checkpoint coordinator: restored checkpoint %d is not below the next checkpoint id %d", cp.ID, c.nextID)
		}
		if i > 0 && c.retained[i-1].ID == cp.ID {
			return fmt.Errorf("checkpoint coordinator: restored checkpoint %d listed twice", cp.ID)
		}
	}
	return nil
}

// Step applies one event at time now and returns what the caller must do,
// in order.
func (c *Coordinator) Step(now time.Time, ev Event) []Action {
	c.out = nil
	switch ev := ev.(type) {
	case Tick:
		c.tick(now)
	case TriggerSavepoint:
		c.triggerSavepoint(now, ev)
	case Acknowledge:
		c.acknowledge(now, ev)
	case Decline:
		c.decline(now, ev)
	case TaskRunning:
		if t := c.current(ev.Task, ev.Attempt); t != nil && !t.finished {
			t.running = true
		}
	case TaskFinished:
		c.taskFinished(now, ev)
	case MetadataWritten:
		c.metadataWritten(now, ev)
	case TriggerFailed:
		if p, ok := c.pending[ev.CheckpointID]; ok {
			c.abort(now, p, ReasonTriggerFailure, fmt.Sprintf("checkpoint %d not triggered: %s", ev.CheckpointID, ev.Message), false)
		}
	case Stop:
		c.shutdown(now, ReasonCoordinatorShutdown, "the job is ending")
	}
	// A checkpoint that ended frees a slot for a queued periodic request, as
	// Flink's scheduleTriggerRequest after every completion and abort.
	c.triggerQueued(now)
	out := c.out
	c.out = nil
	return out
}

func (c *Coordinator) emit(a Action) { c.out = append(c.out, a) }

func (c *Coordinator) logf(format string, args ...any) {
	c.emit(Log{Message: fmt.Sprintf(format, args...)})
}

// task returns a task of the topology, or nil for an unknown id.
func (c *Coordinator) task(id TaskID) *taskInfo {
	if id.Vertex < 0 || id.Vertex >= len(c.vertices) {
		return nil
	}
	v := &c.vertices[id.Vertex]
	if id.Subtask < 0 || id.Subtask >= len(v.tasks) {
		return nil
	}
	return &v.tasks[id.Subtask]
}

// current returns the task if attempt is its current attempt.
func (c *Coordinator) current(id TaskID, attempt int) *taskInfo {
	t := c.task(id)
	if t == nil || t.attempt != attempt {
		return nil
	}
	return t
}

func (c *Coordinator) periodicActive() bool {
	return c.baseInterval > 0 && !c.stopped && !c.suspended && c.unfinished > 0
}

func (c *Coordinator) tick(now time.Time) {
	if c.stopped {
		return
	}
	for _, p := range c.sortedPending() {
		if !now.Before(p.deadline) {
			c.abort(now, p, ReasonExpired, fmt.Sprintf("checkpoint %d expired before completing", p.id), false)
		}
	}
	if c.periodicActive() && !now.Before(c.nextPeriodic) {
		// Fixed rate: skip the periods missed rather than bursting.
		missed := now.Sub(c.nextPeriodic) / c.baseInterval
		c.nextPeriodic = c.nextPeriodic.Add((missed + 1) * c.baseInterval)
		c.periodicQueued = true
	}
}

// triggerQueued starts the queued periodic request if a slot is free and
// MinPause has passed since the last completion; if only MinPause holds it
// back, the request is dropped and the periodic schedule restarts at the
// end of the pause (Flink's rescheduleTrigger).
func (c *Coordinator) triggerQueued(now time.Time) {
	if !c.periodicQueued {
		return
	}
	if !c.periodicActive() {
		c.periodicQueued = false
		return
	}
	if len(c.pending) >= c.maxConcurrent {
		return
	}
	c.periodicQueued = false
	if c.cfg.MinPause > 0 && !c.lastCompletion.IsZero() {
		if earliest := c.lastCompletion.Add(c.cfg.MinPause); now.Before(earliest) {
			c.nextPeriodic = earliest
			return
		}
	}
	c.trigger(now, nil)
}

func (c *Coordinator) triggerSavepoint(now time.Time, ev TriggerSavepoint) {
	sp := &savepointRequest{request: ev.Request, target: ev.Target, stop: ev.Stop, drain: ev.Drain}
	switch {
	case c.stopped:
		c.emit(SavepointFailed{Request: ev.Request, Reason: ReasonCoordinatorShutdown, Message: "the checkpoint coordinator is stopped"})
		return
	case ev.Stop && c.suspended:
		c.emit(SavepointFailed{Request: ev.Request, Reason: ReasonTooManyRequests, Message: "a stop-with-savepoint is already in progress or done"})
		return
	case c.pendingSavepoints() >= MaxPendingSavepoints:
		c.emit(SavepointFailed{Request: ev.Request, Reason: ReasonTooManyRequests,
			Message: fmt.Sprintf("%d savepoints are in progress, the most at once", MaxPendingSavepoints)})
		return
	}
	if ev.Stop {
		// Flink stops the periodic scheduler first, so that only the
		// synchronous savepoint's data is committed before the tasks stop.
		c.suspended = true
		c.periodicQueued = false
		for _, p := range c.sortedPending() {
			c.abort(now, p, ReasonCoordinatorSuspend, "periodic checkpointing stopped for stop-with-savepoint", false)
		}
	}
	if !c.trigger(now, sp) && ev.Stop {
		c.resume(now)
	}
}

func (c *Coordinator) pendingSavepoints() int {
	n := 0
	for _, p := range c.pending {
		if p.savepoint != nil {
			n++
		}
	}
	return n
}

// resume restarts periodic checkpointing after a failed stop-with-savepoint.
// Flink restarts its scheduler with a random initial delay in
// [min-pause, interval]; weir takes the interval, to stay deterministic.
func (c *Coordinator) resume(now time.Time) {
	c.suspended = false
	if c.baseInterval > 0 {
		c.nextPeriodic = now.Add(c.baseInterval)
	}
}

// trigger plans and triggers a checkpoint (sp == nil) or savepoint. It
// reports whether one was triggered.
func (c *Coordinator) trigger(now time.Time, sp *savepointRequest) bool {
	var toTrigger, waitFor []TaskID
	states := map[TaskID]TaskState{}
	var notRunning []TaskID
	for vi := range c.vertices {
		v := &c.vertices[vi]
		// An all-to-all input is done when its whole vertex finished: one
		// check per edge, not per pair of subtasks.
		inputsDone := true
		for _, in := range v.inputs {
			inputsDone = inputsDone && (in.Forward || c.vertices[in.Vertex].unfinished == 0)
		}
		for st := range v.tasks {
			t, id := &v.tasks[st], TaskID{Vertex: vi, Subtask: st}
			if t.finished {
				states[id] = TaskState{Finished: true}
				continue
			}
			waitFor = append(waitFor, id)
			if !t.running {
				notRunning = append(notRunning, id)
			}
			if inputsDone && c.forwardInputsFinished(v, st) {
				toTrigger = append(toTrigger, id)
			}
		}
	}
	var why string
	switch {
	case len(waitFor) == 0:
		why = "every task is finished"
	case len(notRunning) > 0:
		why = fmt.Sprintf("task %v is not running", notRunning[0])
	}
	if why != "" {
		if sp != nil {
			c.emit(SavepointFailed{Request: sp.request, Reason: ReasonNotAllTasksRunning, Message: why})
		} else {
			c.logf("checkpoint not triggered: %s", why)
		}
		return false
	}

	id := c.nextID
	c.nextID++
	c.emit(PersistCheckpointID{Next: c.nextID})
	p := &pendingCheckpoint{
		id:        id,
		timestamp: now,
		deadline:  now.Add(c.cfg.Timeout),
		savepoint: sp,
		tasks:     waitFor,
		awaiting:  make(map[TaskID]bool, len(waitFor)),
		states:    states,
		stats: &CheckpointStats{
			ID: id, Status: StatusInProgress, Savepoint: sp != nil, Unaligned: sp == nil && c.cfg.Unaligned,
			TriggerTime: now, NumTasks: len(waitFor),
		},
	}
	for _, t := range waitFor {
		p.awaiting[t] = true
	}
	c.pending[id] = p
	c.record(p.stats)
	tt := TriggerTasks{CheckpointID: id, Timestamp: now, Tasks: toTrigger, Mode: c.cfg.Mode}
	if sp != nil {
		tt.Savepoint, tt.Target, tt.Stop, tt.Drain = true, sp.target, sp.stop, sp.drain
	} else {
		tt.Unaligned, tt.AlignedCheckpointTimeout = c.cfg.Unaligned, c.cfg.AlignedCheckpointTimeout
	}
	c.emit(tt)
	return true
}

// forwardInputsFinished reports whether subtask st of v has finished
// upstream subtasks on all of its forward inputs.
func (c *Coordinator) forwardInputsFinished(v *vertexInfo, st int) bool {
	for _, in := range v.inputs {
		if in.Forward && !c.vertices[in.Vertex].tasks[st].finished {
			return false
		}
	}
	return true
}

func (c *Coordinator) acknowledge(now time.Time, ev Acknowledge) {
	if c.current(ev.Task, ev.Attempt) == nil {
		c.logf("ignored acknowledgement of checkpoint %d from task %v attempt %d: not the current attempt", ev.CheckpointID, ev.Task, ev.Attempt)
		c.discardLate(ev)
		return
	}
	p, ok := c.pending[ev.CheckpointID]
	if !ok {
		c.logf("ignored acknowledgement of checkpoint %d from task %v: not pending (late or unknown)", ev.CheckpointID, ev.Task)
		c.discardLate(ev)
		return
	}
	if !p.awaiting[ev.Task] {
		c.logf("ignored acknowledgement of checkpoint %d from task %v: not awaited (duplicate, or finished at trigger)", ev.CheckpointID, ev.Task)
		return
	}
	delete(p.awaiting, ev.Task)
	p.states[ev.Task] = TaskState{State: ev.State, StateSize: ev.StateSize}
	s := p.stats
	s.NumAcknowledged++
	s.StateSize += ev.StateSize
	s.MaxAlignmentMs = max(s.MaxAlignmentMs, ev.AlignmentMs)
	s.PersistedInFlightBytes += ev.PersistedInFlightBytes
	sub := SubtaskStats{
		Task: ev.Task, AckTime: now, StateSize: ev.StateSize, AlignmentMs: ev.AlignmentMs,
		SyncDuration: ev.SyncDuration, AsyncDuration: ev.AsyncDuration, PersistedInFlightBytes: ev.PersistedInFlightBytes,
	}
	i, _ := slices.BinarySearchFunc(s.Subtasks, ev.Task, func(a SubtaskStats, t TaskID) int { return compareTasks(a.Task, t) })
	s.Subtasks = slices.Insert(s.Subtasks, i, sub)
	if len(p.awaiting) > 0 {
		return
	}
	p.writing = true
	wm := WriteMetadata{CheckpointID: p.id, Timestamp: p.timestamp, Tasks: make(map[TaskID]TaskState, len(p.states))}
	for id, st := range p.states {
		wm.Tasks[id] = st
	}
	if p.savepoint != nil {
		wm.Savepoint, wm.Target = true, p.savepoint.target
	}
	c.emit(wm)
}

func compareTasks(a, b TaskID) int {
	return cmp.Or(cmp.Compare(a.Vertex, b.Vertex), cmp.Compare(a.Subtask, b.Subtask))
}

// discardLate has the state of an ignored acknowledgement deleted, unless a
// checkpoint may hold the same state: a retained one of that id, or a
// pending one that recorded these bytes for the task (a duplicate).
func (c *Coordinator) discardLate(ev Acknowledge) {
	if len(ev.State) == 0 {
		return
	}
	for _, r := range c.retained {
		if r.ID == ev.CheckpointID {
			return
		}
	}
	p, pending := c.pending[ev.CheckpointID]
	if pending {
		if st, ok := p.states[ev.Task]; ok && bytes.Equal(st.State, ev.State) {
			return
		}
	}
	c.emit(DiscardState{CheckpointID: ev.CheckpointID, Task: ev.Task, State: ev.State, Ended: !pending})
}

func (c *Coordinator) decline(now time.Time, ev Decline) {
	if c.current(ev.Task, ev.Attempt) == nil {
		c.logf("ignored decline of checkpoint %d from task %v attempt %d: not the current attempt", ev.CheckpointID, ev.Task, ev.Attempt)
		return
	}
	p, ok := c.pending[ev.CheckpointID]
	if !ok {
		c.logf("ignored decline of checkpoint %d from task %v: not pending (late or unknown)", ev.CheckpointID, ev.Task)
		return
	}
	if !containsTask(p.tasks, ev.Task) {
		c.logf("ignored decline of checkpoint %d from task %v: not part of it", ev.CheckpointID, ev.Task)
		return
	}
	reason := ev.Reason
	if reason == "" {
		reason = ReasonDeclined
	}
	msg := fmt.Sprintf("task %v declined checkpoint %d", ev.Task, p.id)
	if ev.Message != "" {
		msg += ": " + ev.Message
	}
	c.abort(now, p, reason, msg, true)
}

// taskFinished records a FINISHED task. A pending checkpoint the task has
// acknowledged keeps its state. A pending checkpoint it has not
// acknowledged is aborted (CHECKPOINT_DECLINED_TASK_CLOSING, not counted):
// the acknowledgement may still be in flight, so recording the task as
// finished could drop records it emitted after its snapshot; and a finished
// source may never have injected the barrier its downstream tasks wait
// for. The next checkpoint is planned with the task finished.
func (c *Coordinator) taskFinished(now time.Time, ev TaskFinished) {
	t := c.current(ev.Task, ev.Attempt)
	if t == nil || t.finished {
		return
	}
	t.finished, t.running = true, false
	c.unfinished--
	c.vertices[ev.Task.Vertex].unfinished--
	for _, p := range c.sortedPending() {
		if p.awaiting[ev.Task] {
			c.abort(now, p, ReasonTaskClosing, fmt.Sprintf("task %v finished before acknowledging checkpoint %d", ev.Task, p.id), false)
		}
	}
}

func (c *Coordinator) metadataWritten(now time.Time, ev MetadataWritten) {
	p, ok := c.pending[ev.CheckpointID]
	if !ok || !p.writing {
		if d, aborted := c.abortedWriting[ev.CheckpointID]; aborted {
			delete(c.abortedWriting, ev.CheckpointID)
			if ev.Err == nil && ev.Path != "" {
				d.Path = ev.Path
				c.emit(d)
			}
			return
		}
		c.logf("ignored metadata result of checkpoint %d: not being written", ev.CheckpointID)
		return
	}
	p.writing = false // the write is over, whatever happens next
	if ev.Err != nil {
		c.abort(now, p, ReasonIOException, fmt.Sprintf("write metadata of checkpoint %d: %v", p.id, ev.Err), false)
		return
	}
	c.complete(now, p, ev.Path)
}

// complete turns p into a completed checkpoint, in Flink's order: add it to
// the store and subsume the oldest, answer the savepoint request, abort the
// older pending checkpoints, notify the tasks.
func (c *Coordinator) complete(now time.Time, p *pendingCheckpoint, path string) {
	delete(c.pending, p.id)
	s := p.stats
	s.Status, s.Duration, s.Path = StatusCompleted, now.Sub(p.timestamp), path
	c.completedCount++
	c.lastCompletion = now
	if p.id > c.lastSucceeded {
		c.lastSucceeded = p.id
		c.failures = 0
	}
	if p.savepoint == nil {
		c.retained = append(c.retained, CompletedCheckpoint{
			ID: p.id, Timestamp: p.timestamp, CompletionTime: now, Path: path,
			StateSize: s.StateSize, Tasks: p.states,
		})
		for len(c.retained) > c.cfg.NumRetained {
			old := c.retained[0]
			c.retained = c.retained[1:]
			if !old.Savepoint {
				c.emit(DiscardCheckpoint{CheckpointID: old.ID, Path: old.Path, Reason: ReasonSubsumed})
			}
		}
	} else {
		c.emit(SavepointDone{Request: p.savepoint.request, CheckpointID: p.id, Path: path})
	}
	// A savepoint commits nothing and subsumes nothing, except a
	// stop-with-savepoint: the tasks stop after it, so it is their last
	// checkpoint (Flink's synchronous savepoint).
	if p.savepoint != nil && !p.savepoint.stop {
		return
	}
	for _, q := range c.sortedPending() {
		if q.id < p.id && q.savepoint == nil {
			c.abort(now, q, ReasonSubsumed, fmt.Sprintf("checkpoint %d subsumed by checkpoint %d", q.id, p.id), false)
		}
	}
	c.emit(NotifyComplete{CheckpointID: p.id, Tasks: c.live(p.tasks)})
}

// abort ends p as failed. taskLevel marks failures reported by a task (a
// decline), which Flink's CheckpointFailureManager treats differently for
// savepoints.
func (c *Coordinator) abort(now time.Time, p *pendingCheckpoint, reason FailureReason, msg string, taskLevel bool) {
	if c.pending[p.id] != p {
		return // already ended by a FailJob earlier in the same loop
	}
	delete(c.pending, p.id)
	s := p.stats
	s.Status, s.Duration, s.FailureReason, s.FailureMessage = StatusFailed, now.Sub(p.timestamp), reason, msg
	c.failedCount++
	discard := DiscardCheckpoint{CheckpointID: p.id, Reason: reason}
	for _, t := range slices.SortedFunc(maps.Keys(p.states), compareTasks) {
		if st := p.states[t].State; len(st) > 0 {
			discard.States = append(discard.States, TaskStateOf{Task: t, State: st})
		}
	}
	if p.savepoint != nil {
		discard.Savepoint, discard.Target = true, p.savepoint.target
	}
	if p.writing {
		c.abortedWriting[p.id] = discard
	}
	c.emit(NotifyAborted{CheckpointID: p.id, Tasks: c.live(p.tasks), Reason: reason})
	c.emit(discard)
	if p.savepoint != nil {
		c.emit(SavepointFailed{Request: p.savepoint.request, CheckpointID: p.id, Reason: reason, Message: msg})
		if p.savepoint.stop && !c.stopped {
			c.resume(now)
		}
	}
	c.countFailure(now, p, reason, msg, taskLevel)
}

// countFailure is Flink's CheckpointFailureManager, but kinder to
// savepoints: a failed savepoint is reported to the user who asked for it
// and never counts (Flink counts a task's decline), except that a task
// declining a stop-with-savepoint fails the job, because its tasks may be
// waiting to stop; any other failure counts if its reason does, and only
// if no newer checkpoint completed.
func (c *Coordinator) countFailure(now time.Time, p *pendingCheckpoint, reason FailureReason, msg string, taskLevel bool) {
	if c.stopped {
		return
	}
	if p.savepoint != nil {
		if !taskLevel {
			return
		}
		if p.savepoint.stop {
			c.failJob(now, fmt.Sprintf("stop-with-savepoint %d failed: %s", p.id, msg))
			return
		}
		// Unlike Flink, a user's savepoint that a task declined never
		// fails the job over: the user is told, the job keeps running.
		return
	}
	// Each checkpoint fails once here (it leaves pending), so unlike Flink
	// no set of counted ids is needed.
	if !reason.Counted() || p.id <= c.lastSucceeded {
		return
	}
	c.failures++
	if c.failures > c.cfg.TolerableFailedCheckpoints {
		c.failures = 0
		c.failJob(now, fmt.Sprintf("exceeded checkpoint tolerable failure threshold (%d): %s", c.cfg.TolerableFailedCheckpoints, msg))
	}
}

func (c *Coordinator) failJob(now time.Time, reason string) {
	c.emit(FailJob{Reason: reason})
	c.shutdown(now, ReasonJobFailure, "the job is failing over")
}

func (c *Coordinator) shutdown(now time.Time, reason FailureReason, msg string) {
	if c.stopped {
		return
	}
	c.stopped = true
	c.periodicQueued = false
	for _, p := range c.sortedPending() {
		c.abort(now, p, reason, msg, false)
	}
}

// live returns the tasks that are not FINISHED: only they can receive a
// notification.
func (c *Coordinator) live(ids []TaskID) []TaskID {
	var out []TaskID
	for _, id := range ids {
		if !c.task(id).finished {
			out = append(out, id)
		}
	}
	return out
}

func (c *Coordinator) sortedPending() []*pendingCheckpoint {
	ps := make([]*pendingCheckpoint, 0, len(c.pending))
	for _, p := range c.pending {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].id < ps[j].id })
	return ps
}

func (c *Coordinator) record(s *CheckpointStats) {
	if len(c.history) == HistorySize {
		copy(c.history, c.history[1:])
		c.history = c.history[:HistorySize-1]
	}
	c.history = append(c.history, s)
}

func containsTask(ids []TaskID, id TaskID) bool {
	i := sort.Search(len(ids), func(i int) bool { return !ids[i].less(id) })
	return i < len(ids) && ids[i] == id
}
