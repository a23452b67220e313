package taskexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/internal/allowpath"
	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/pkg/state"
	"github.com/weirstream/weir/proto/weirpb"
)

// ExecutionState is the state a task reports to the JobManager.
type ExecutionState string

// The states of a task attempt, as sent in TaskExecutionState.state.
const (
	Running  ExecutionState = "RUNNING"
	Finished ExecutionState = "FINISHED"
	Failed   ExecutionState = "FAILED"
	Canceled ExecutionState = "CANCELED"
)

// ErrCanceled is the cause given to partitions released by Cancel, and the
// error a canceled task ends with.
var ErrCanceled = errors.New("task canceled")

// ErrNotRunning is returned by Execute once the task has ended.
var ErrNotRunning = errors.New("task is not running")

// Action is a control action run by the task goroutine between records (a
// checkpoint trigger, later). An error fails the task.
type Action func() error

// Env is what a task needs from its TaskManager.
type Env struct {
	Network *network.Manager
	// Logger gets the task's fields (job, task, subtask, attempt) added.
	Logger *zap.Logger
	// Stdout is given to operators (print-sink); nil means io.Discard.
	Stdout io.Writer
	// Metrics may be nil (no Prometheus counters).
	Metrics *Metrics
	// OnRunning, if set, is called by the task goroutine once the task is
	// running: partitions created, input gate created, operators opened.
	OnRunning func()
	// Responder receives the task's checkpoint acknowledgements and
	// declines; nil drops them (logged).
	Responder CheckpointResponder
	// Now is the clock of checkpoint alignment; nil means time.Now.
	Now func() time.Time
	// Metadata reads the checkpoint a restore points at (a descriptor's
	// restore state with FromMetadata); nil reads it with
	// snapshot.LoadMetadata each time. A TaskManager shares one
	// MetadataCache between its tasks.
	Metadata func(ctx context.Context, location string) (*snapshot.Metadata, error)
	// AllowedPaths is the TaskManager's io.allowed-paths, given to
	// operators; nil allows every path.
	AllowedPaths *allowpath.Checker
}

// Result is how a task attempt ended.
type Result struct {
	State ExecutionState // Finished, Failed or Canceled
	Err   error          // set when Failed
}

// Task is one subtask attempt. Build it with New, run it with Run (in the
// goroutine that becomes the task goroutine), stop it with Cancel.
//
// Its fields are grouped by owner and phase. Each group is a struct
// embedded by value, so its fields are Task's and the record path reaches
// them at a fixed offset, without an extra pointer:
//
//	operatorChain    chain.go      built by New, then called by the task goroutine
//	inputChannels    task.go       the gate's channels: the task goroutine's
//	loopState        runloop.go    the record path: the task goroutine's
//	checkpointState  ckptsetup.go  the task goroutine's (the writer reads settings)
//	control          runloop.go    shared with every goroutine: atomics, channels
//	netResources     task.go       guarded by mu against a concurrent Cancel
type Task struct {
	// Fixed by New, read by any goroutine.
	desc          *weirpb.TaskDeploymentDescriptor
	exec          *weirpb.ExecutionAttemptID
	env           Env
	log           *zap.Logger
	subtask       int
	cfg           *config.Config // the job's configuration, for operators
	bufferTimeout time.Duration

	operatorChain
	inputChannels
	loopState
	checkpointState
	stop stopState // stop-with-savepoint (savepoint.go), task goroutine only
	control
	netResources
}

// inputChannels maps the channels of the input gate to the descriptor
// (fixed by New) and tracks the end of each (the task goroutine's).
type inputChannels struct {
	gate    *network.InputGate // nil for a source; Cancel closes it through gateRes
	inputOf []int              // gate channel -> input index of the head
	// gate channel -> index of its input in the descriptor, and of the
	// channel within that input (channel state is recorded by these).
	channelGate  []int
	channelIndex []int
	dataEnded    []bool // per channel: EndOfData or EndOfPartition seen
	numDataEnded int
	inputEnded   bool // EndInput ran on the chain
}

// netResources are the network resources the task created. mu guards them
// against a concurrent Cancel: Cancel releases what the task goroutine
// created so far, and the task goroutine does not create more once
// canceled.
type netResources struct {
	mu         sync.Mutex
	partitions []*network.ResultPartition
	gateRes    *network.InputGate
	released   bool
	finished   bool // partitions finished: nothing left to release
}

// New validates the descriptor and builds the operator chain. It starts
// nothing: on error (which names what is wrong with the descriptor) there
// is nothing to clean up.
func New(desc *weirpb.TaskDeploymentDescriptor, env Env) (*Task, error) {
	if env.Network == nil {
		return nil, errors.New("taskexec: Env.Network is nil")
	}
	if err := validateDescriptor(desc); err != nil {
		return nil, err
	}
	ex := desc.GetExecution()
	t := &Task{
		desc:    desc,
		exec:    ex,
		env:     env,
		subtask: int(ex.GetSubtask()),
		stop:    stopState{id: noID},
	}
	t.control.init()
	if t.env.Stdout == nil {
		t.env.Stdout = io.Discard
	}
	if t.env.Logger == nil {
		t.env.Logger = zap.NewNop()
	}

	var err error
	if t.operatorChain, err = buildChain(desc); err != nil {
		return nil, err
	}
	if t.inputChannels, err = mapInputs(desc, t.chain[0].spec); err != nil {
		return nil, err
	}
	if t.cfg, t.bufferTimeout, err = jobConfig(desc); err != nil {
		return nil, err
	}
	if t.checkpointState, err = newCheckpointState(t.cfg, len(t.inputOf)); err != nil {
		return nil, err
	}
	t.log = t.env.Logger.With(
		zap.String("job", ex.GetJobId()),
		zap.String("task", t.name),
		zap.Int("subtask", t.subtask),
		zap.Int32("attempt", ex.GetAttempt()),
	)
	t.operatorChain.wire(desc, t.subtask, t.bufferTimeout == 0)
	t.out.times = &t.times
	return t, nil
}

// mapInputs maps every channel of the gate (the channels of the
// descriptor's inputs, in order) to the input of head it feeds.
func mapInputs(desc *weirpb.TaskDeploymentDescriptor, head *jobgraph.Operator) (inputChannels, error) {
	var in inputChannels
	for gate, di := range desc.GetInputs() {
		if idx := int(di.GetInputIndex()); idx >= len(head.Inputs) && len(head.Inputs) > 0 {
			return in, fmt.Errorf("input of operator %q from %q: input_index %d, but the operator has %d inputs", head.ID, di.GetProducerOperator(), idx, len(head.Inputs))
		}
		for j := range di.GetChannels() {
			in.inputOf = append(in.inputOf, int(di.GetInputIndex()))
			in.channelGate = append(in.channelGate, gate)
			in.channelIndex = append(in.channelIndex, j)
		}
	}
	in.dataEnded = make([]bool, len(in.inputOf))
	return in, nil
}

// jobConfig parses the job configuration of the descriptor and checks its
// buffer timeout.
func jobConfig(desc *weirpb.TaskDeploymentDescriptor) (*config.Config, time.Duration, error) {
	cfg, _, err := config.FromMap(desc.GetConfig())
	if err != nil {
		return nil, 0, fmt.Errorf("job configuration: %w", err)
	}
	bt := cfg.Duration(config.BufferTimeout)
	if bt < 0 {
		return nil, 0, fmt.Errorf("job configuration: %s must not be negative, got %s", config.BufferTimeout.Key, bt)
	}
	return cfg, bt, nil
}

// validateDescriptor checks what New cannot learn from building operators.
func validateDescriptor(d *weirpb.TaskDeploymentDescriptor) error {
	if d == nil {
		return errors.New("no task deployment descriptor")
	}
	ex := d.GetExecution()
	switch {
	case ex == nil:
		return errors.New("execution: missing")
	case ex.GetJobId() == "":
		return errors.New("execution.job_id: empty")
	case ex.GetVertex() < 0:
		return fmt.Errorf("execution.vertex: %d is negative", ex.GetVertex())
	case ex.GetAttempt() < 0:
		return fmt.Errorf("execution.attempt: %d is negative", ex.GetAttempt())
	case d.GetParallelism() < 1:
		return fmt.Errorf("parallelism: %d, want at least 1", d.GetParallelism())
	case ex.GetSubtask() < 0 || ex.GetSubtask() >= d.GetParallelism():
		return fmt.Errorf("execution.subtask: %d is outside [0, parallelism %d)", ex.GetSubtask(), d.GetParallelism())
	case len(d.GetOperators()) == 0:
		return errors.New("operators: empty")
	}
	if err := state.ValidateParallelism(int(d.GetMaxParallelism()), int(d.GetParallelism())); err != nil {
		return fmt.Errorf("parallelism: %w", err)
	}
	for i, in := range d.GetInputs() {
		what := fmt.Sprintf("inputs[%d] (from %q)", i, in.GetProducerOperator())
		if in.GetInputIndex() < 0 {
			return fmt.Errorf("%s: input_index %d is negative", what, in.GetInputIndex())
		}
		if !knownPartitioning(in.GetPartition()) {
			return fmt.Errorf("%s: unknown partition %q", what, in.GetPartition())
		}
		if len(in.GetChannels()) == 0 {
			return fmt.Errorf("%s: no channels", what)
		}
		for j, ch := range in.GetChannels() {
			switch {
			case ch.GetPartitionId() == "":
				return fmt.Errorf("%s channels[%d]: empty partition_id", what, j)
			case ch.GetSubpartition() < 0:
				return fmt.Errorf("%s channels[%d]: subpartition %d is negative", what, j, ch.GetSubpartition())
			case ch.GetProducerDataAddress() == "":
				return fmt.Errorf("%s channels[%d]: empty producer_data_address", what, j)
			}
		}
	}
	seen := make(map[string]bool, len(d.GetOutputs()))
	for i, out := range d.GetOutputs() {
		what := fmt.Sprintf("outputs[%d] (to %q)", i, out.GetConsumerOperator())
		switch {
		case out.GetPartitionId() == "":
			return fmt.Errorf("%s: empty partition_id", what)
		case seen[out.GetPartitionId()]:
			return fmt.Errorf("%s: duplicate partition_id %q", what, out.GetPartitionId())
		case !knownPartitioning(out.GetPartition()):
			return fmt.Errorf("%s: unknown partition %q", what, out.GetPartition())
		case out.GetNumSubpartitions() < 1:
			return fmt.Errorf("%s: num_subpartitions %d, want at least 1", what, out.GetNumSubpartitions())
		case out.GetPartition() == jobgraph.Hash && out.GetKey() == "":
			return fmt.Errorf("%s: hash partition without a key", what)
		case out.GetPartition() == jobgraph.Forward && out.GetNumSubpartitions() != 1:
			return fmt.Errorf("%s: a forward partition has 1 subpartition, not %d", what, out.GetNumSubpartitions())
		}
		if out.GetPartition() == jobgraph.Hash {
			if err := state.ValidateParallelism(int(d.GetMaxParallelism()), int(out.GetNumSubpartitions())); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		seen[out.GetPartitionId()] = true
	}
	return nil
}

func knownPartitioning(p string) bool {
	switch p {
	case jobgraph.Forward, jobgraph.Rebalance, jobgraph.Hash, jobgraph.Broadcast:
		return true
	}
	return false
}

// Name returns the operator ids of the chain joined with " -> ".
func (t *Task) Name() string { return t.name }

// Execution returns the attempt id of the task.
func (t *Task) Execution() *weirpb.ExecutionAttemptID { return t.exec }

// RecordsIn returns the records read from the inputs so far (published once
// per buffer).
func (t *Task) RecordsIn() int64 { return t.recordsIn.Load() }

// RecordsOut returns the records the chain emitted to its outputs so far
// (published once per buffer or source batch).
func (t *Task) RecordsOut() int64 { return t.recordsOut.Load() }

// Done is closed when Run has returned.
func (t *Task) Done() <-chan struct{} { return t.done }

// Cancel stops the task: it interrupts a blocked emit or poll, closes the
// operators' Context.Done, and makes Run return a Canceled result (see
// Cancellation in the package doc). It is safe to call at any time, from any
// goroutine, any number of times.
func (t *Task) Cancel() {
	t.cancelOnce.Do(func() {
		t.canceled.Store(true)
		close(t.cancelCh)
		t.ctxCancel()
		t.releaseNetwork(ErrCanceled)
	})
}

// Execute hands an action to the task goroutine, which runs it between two
// records. It returns ErrNotRunning once the task has ended; an action
// accepted just before the end may not run.
func (t *Task) Execute(a Action) error {
	select {
	case <-t.done:
		return ErrNotRunning
	default:
	}
	t.pending.Add(1)
	select {
	case t.mailbox <- a:
		return nil
	case <-t.done:
		return ErrNotRunning
	}
}

// releaseNetwork releases every partition the task created and closes its
// gate, once. Partitions that were finished are left to ReleaseJob.
func (t *Task) releaseNetwork(cause error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.released {
		return
	}
	t.released = true
	if !t.finished {
		for _, p := range t.partitions {
			p.Release(cause)
		}
	}
	if t.gateRes != nil {
		t.gateRes.Close()
	}
}

// Run runs the task in the calling goroutine until it finishes, fails or is
// canceled. It must be called once.
func (t *Task) Run() Result {
	t.goid.Store(goroutineID())
	defer close(t.done)
	defer t.goid.Store(0)
	defer t.ctxCancel()
	t.times.start()
	if m := t.env.Metrics; m != nil {
		// Exported while it runs: the series of an ended attempt go.
		m.add(t)
		defer m.remove(t)
	}
	err := t.run()
	switch {
	case err == nil:
		t.log.Info("task finished", zap.Int64("records_in", t.recordsIn.Load()), zap.Int64("records_out", t.recordsOut.Load()))
		return Result{State: Finished}
	case t.canceled.Load():
		t.log.Info("task canceled")
		return Result{State: Canceled}
	default:
		t.log.Warn("task failed", zap.Error(err))
		return Result{State: Failed, Err: err}
	}
}

func (t *Task) run() (err error) {
	defer func() {
		// The writer first: on success its acknowledgements go out before
		// the task reports FINISHED; on failure what is queued is dropped.
		// Either way it reads no operator's state after Close.
		t.stopWriter(err == nil)
		// Close every opened operator, head first, on every path; the
		// first close error fails an otherwise successful task.
		err = t.closeChain(err)
		cause := err
		if t.canceled.Load() {
			cause = ErrCanceled
		}
		if cause == nil {
			cause = errors.New("task ended")
		}
		t.releaseNetwork(cause)
		t.publish()
	}()

	if err := t.createNetwork(); err != nil {
		return err
	}
	stopTicker := t.startFlushTicker()
	defer stopTicker()
	defer t.stopAlignmentTimer()

	restore, err := t.decodeRestore()
	if err != nil {
		return err
	}
	fin, err := t.checkFinishedOnRestore(restore)
	if err != nil {
		return err
	}
	if fin {
		if err := t.runFinishedOnRestore(restore.CheckpointID); err != nil {
			return err
		}
		return t.finishOutputs()
	}
	channels, err := t.planChannelState(restore)
	if err != nil {
		return err
	}
	// Recovered output buffers go out before anything else (channelstate.go).
	if err := t.restoreOutputState(channels); err != nil {
		return err
	}

	// Open tail first (chain.go), so that an operator is open before
	// anything can emit into it.
	if err := t.openChain(); err != nil {
		return err
	}
	if err := t.restoreState(restore); err != nil {
		return err
	}
	// Recovered input buffers before the first PollNext.
	if err := t.replayInputState(channels); err != nil {
		return err
	}
	if t.canceled.Load() {
		return ErrCanceled
	}
	t.log.Info("task running")
	if t.env.OnRunning != nil {
		t.env.OnRunning()
	}

	if t.chain[0].src != nil {
		err = t.runSource()
	} else {
		err = t.runInput()
	}
	if err != nil {
		return err
	}
	// Every input ended and every channel delivered EndOfPartition (a
	// source: it reported EndOfInput). Order of the end (Flink's):
	// EndInput, EndOfData downstream, the final checkpoint if an operator
	// needs one (its barrier follows EndOfData, so downstream tasks can
	// still align it), and only then EndOfPartition.
	if err := t.endInput(); err != nil {
		return err
	}
	if err := t.awaitFinalCheckpoint(); err != nil {
		return err
	}
	return t.finishOutputs()
}

func (t *Task) finishOutputs() error {
	t.mu.Lock()
	parts := t.partitions
	canceled := t.released
	t.mu.Unlock()
	if canceled {
		return ErrCanceled
	}
	for i, p := range parts {
		if err := p.Finish(); err != nil {
			return fmt.Errorf("finish output to %q: %w", t.desc.GetOutputs()[i].GetConsumerOperator(), err)
		}
	}
	t.mu.Lock()
	t.finished = true
	t.mu.Unlock()
	return nil
}

// createNetwork creates the output partitions and the input gate, unless
// the task was canceled meanwhile.
func (t *Task) createNetwork() error {
	outs := t.desc.GetOutputs()
	for i, o := range outs {
		t.mu.Lock()
		if t.released {
			t.mu.Unlock()
			return ErrCanceled
		}
		p, err := t.env.Network.CreatePartition(network.PartitionID(o.GetPartitionId()), int(o.GetNumSubpartitions()))
		if err != nil {
			t.mu.Unlock()
			return fmt.Errorf("create result partition %q for %q: %w", o.GetPartitionId(), o.GetConsumerOperator(), err)
		}
		t.partitions = append(t.partitions, p)
		t.mu.Unlock()
		t.out.outs[i].p = p
	}
	if len(t.desc.GetInputs()) == 0 {
		return nil
	}
	var specs []network.ChannelSpec
	for _, in := range t.desc.GetInputs() {
		for _, ch := range in.GetChannels() {
			specs = append(specs, network.ChannelSpec{
				Partition:       network.PartitionID(ch.GetPartitionId()),
				Subpartition:    int(ch.GetSubpartition()),
				ProducerAddress: ch.GetProducerDataAddress(),
			})
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.released {
		return ErrCanceled
	}
	g, err := t.env.Network.CreateInputGate(specs)
	if err != nil {
		return fmt.Errorf("create input gate: %w", err)
	}
	t.gateRes = g
	t.gate = g
	return nil
}
