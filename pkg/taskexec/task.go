package taskexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/internal/allowpath"
	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/pkg/state"
	"github.com/weirstream/weir/pkg/taskexec/barrier"
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

// chainOp is one operator of the chain.
type chainOp struct {
	spec   *jobgraph.Operator
	kind   operator.Kind
	op     operator.Operator // nil for the head source
	src    operator.Source
	out    operator.Collector // what this operator emits into
	ctx    *operator.Context  // set when opened
	opened bool
}

// Task is one subtask attempt. Build it with New, run it with Run (in the
// goroutine that becomes the task goroutine), stop it with Cancel.
type Task struct {
	desc          *weirpb.TaskDeploymentDescriptor
	exec          *weirpb.ExecutionAttemptID
	env           Env
	log           *zap.Logger
	name          string // operator ids of the chain joined with " -> "
	subtask       int
	chain         []*chainOp
	headOut       operator.Collector
	out           *outputCollector
	bufferTimeout time.Duration
	inputOf       []int // gate channel -> input index of the head
	// gate channel -> index of its input in the descriptor, and of the
	// channel within that input (channel state is recorded by these).
	channelGate  []int
	channelIndex []int

	// Task goroutine only.
	dec      record.Decoder
	rec      record.Record
	nIn      int64
	pubIn    int64
	pubOut   int64
	gate     *network.InputGate
	promIn   counterAdder
	promOut  counterAdder
	timer    *time.Timer
	finished bool // partitions finished: nothing left to release
	// deployedFinished: finished on restore (finished.go); no operator of
	// the chain is opened, and records from the inputs are dropped.
	deployedFinished bool
	dropped          int64 // records dropped while deployedFinished

	// Checkpointing, task goroutine only.
	cfg         *config.Config   // the job's configuration, for operators
	storage     snapshot.Storage // nil when checkpointing is disabled
	exactlyOnce bool
	// checkpointing is true when the job takes periodic checkpoints
	// (execution.checkpointing.interval); savepoints work either way.
	checkpointing bool
	// checkpointTimeout is execution.checkpointing.timeout: a snapshot's
	// storage I/O ends that long after it starts.
	checkpointTimeout time.Duration
	handler           barrier.Handler
	// uh is handler when unaligned checkpoints are enabled (EXACTLY_ONCE
	// and execution.checkpointing.unaligned.enabled), else nil.
	uh             *barrier.Unaligned
	alignedTimeout time.Duration   // execution.checkpointing.aligned-checkpoint-timeout
	capture        *channelCapture // the unaligned checkpoint recording its channel state
	bufferEvents   []barrier.Event // BufferReceived of each channel, boxed once
	alignTimer     *time.Timer     // fires the switch of a timeoutable aligned checkpoint
	alignTimerC    <-chan time.Time
	alignDeadline  time.Time
	writer         *snapshotWriter // started on first use
	dataEnded      []bool          // per channel: EndOfData or EndOfPartition seen
	numDataEnded   int
	inputEnded     bool  // EndInput ran on the chain
	awaitingFinal  bool  // FLIP-147: do not finish before a final checkpoint completed
	finalFrom      int64 // the first checkpoint snapshotted after the end of input

	stop stopState // stop-with-savepoint (savepoint.go), task goroutine only

	promAlignment       gaugeSetter
	promCheckpointBytes gaugeSetter
	promInFlightBytes   gaugeSetter

	// Shared with other goroutines.
	recordsIn  atomic.Int64
	recordsOut atomic.Int64
	flushDue   atomic.Bool
	flushWake  chan struct{}
	canceled   atomic.Bool
	cancelCh   chan struct{} // closed by Cancel; also operator.Context.Done
	goid       atomic.Int64  // id of the goroutine in Run, 0 outside (Stack)
	// ctx is canceled by Cancel and at the end of Run: it bounds what the
	// writer goroutine does (state writes, answers to the JobManager).
	ctx        context.Context
	ctxCancel  context.CancelFunc
	cancelOnce sync.Once
	pending    atomic.Int32
	mailbox    chan Action
	done       chan struct{}

	// mu guards the network resources against a concurrent Cancel: Cancel
	// releases what the task goroutine created so far, and the task
	// goroutine does not create more once canceled.
	mu         sync.Mutex
	partitions []*network.ResultPartition
	gateRes    *network.InputGate
	released   bool
}

type counterAdder interface{ Add(float64) }

type gaugeSetter interface{ Set(float64) }

type nopCounter struct{}

func (nopCounter) Add(float64) {}
func (nopCounter) Set(float64) {}

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
		desc:      desc,
		exec:      ex,
		env:       env,
		subtask:   int(ex.GetSubtask()),
		flushWake: make(chan struct{}, 1),
		cancelCh:  make(chan struct{}),
		mailbox:   make(chan Action, 16),
		done:      make(chan struct{}),
		promIn:    nopCounter{},
		promOut:   nopCounter{},
		finalFrom: noID,
		stop:      stopState{id: noID},

		promAlignment:       nopCounter{},
		promCheckpointBytes: nopCounter{},
		promInFlightBytes:   nopCounter{},
	}
	t.ctx, t.ctxCancel = context.WithCancel(context.Background())
	if t.env.Stdout == nil {
		t.env.Stdout = io.Discard
	}
	if t.env.Logger == nil {
		t.env.Logger = zap.NewNop()
	}

	ids := make([]string, 0, len(desc.GetOperators()))
	for i, raw := range desc.GetOperators() {
		var spec jobgraph.Operator
		if err := jobgraph.DecodeOperator(raw, &spec); err != nil {
			return nil, fmt.Errorf("operator %d of the chain: invalid JSON: %w", i, err)
		}
		if spec.ID == "" {
			return nil, fmt.Errorf("operator %d of the chain: no id", i)
		}
		typ, ok := operator.Lookup(spec.Type)
		if !ok {
			return nil, fmt.Errorf("operator %q: unknown type %q", spec.ID, spec.Type)
		}
		c := &chainOp{spec: &spec, kind: typ.Kind}
		var err error
		switch {
		case i == 0 && typ.Kind == operator.KindSource:
			if len(desc.GetInputs()) > 0 {
				return nil, fmt.Errorf("operator %q: a source has no inputs, but the descriptor has %d", spec.ID, len(desc.GetInputs()))
			}
			if typ.NewSource == nil {
				return nil, fmt.Errorf("operator %q: type %q cannot build a source", spec.ID, spec.Type)
			}
			c.src, err = typ.NewSource(spec.Properties)
		case typ.Kind == operator.KindSource:
			return nil, fmt.Errorf("operator %q: a source (type %q) can only head a chain", spec.ID, spec.Type)
		default:
			if i == 0 && len(desc.GetInputs()) == 0 {
				return nil, fmt.Errorf("operator %q: the head of a chain that is not a source needs inputs", spec.ID)
			}
			if typ.NewOperator == nil {
				return nil, fmt.Errorf("operator %q: type %q cannot build an operator", spec.ID, spec.Type)
			}
			c.op, err = typ.NewOperator(spec.Properties)
		}
		if err != nil {
			return nil, fmt.Errorf("operator %q: %w", spec.ID, err)
		}
		t.chain = append(t.chain, c)
		ids = append(ids, spec.ID)
	}
	t.name = strings.Join(ids, " -> ")

	head := t.chain[0].spec
	for gate, in := range desc.GetInputs() {
		if idx := int(in.GetInputIndex()); idx >= len(head.Inputs) && len(head.Inputs) > 0 {
			return nil, fmt.Errorf("input of operator %q from %q: input_index %d, but the operator has %d inputs", head.ID, in.GetProducerOperator(), idx, len(head.Inputs))
		}
		for j := range in.GetChannels() {
			t.inputOf = append(t.inputOf, int(in.GetInputIndex()))
			t.channelGate = append(t.channelGate, gate)
			t.channelIndex = append(t.channelIndex, j)
		}
	}

	cfg, _, err := config.FromMap(desc.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("job configuration: %w", err)
	}
	t.cfg = cfg
	t.bufferTimeout = cfg.Duration(config.BufferTimeout)
	if t.bufferTimeout < 0 {
		return nil, fmt.Errorf("job configuration: %s must not be negative, got %s", config.BufferTimeout.Key, t.bufferTimeout)
	}

	// Every task knows the mode and its storage (no I/O until the first
	// state is written): a job without periodic checkpoints can still take
	// savepoints.
	t.exactlyOnce = cfg.String(config.CheckpointingMode) != "AT_LEAST_ONCE"
	t.checkpointing = cfg.IsSet(config.CheckpointingInterval)
	t.checkpointTimeout = cfg.Duration(config.CheckpointingTimeout)
	// The JobManager logs the warnings about the storage; every task
	// repeating them would only be noise.
	uri, err := snapshot.StorageURI(cfg)
	if err == nil {
		t.storage, err = snapshot.OpenWithOptions(uri, zap.NewNop(), snapshot.StorageOptions(cfg))
	}
	if err != nil {
		if t.checkpointing {
			return nil, fmt.Errorf("job configuration: %w", err)
		}
		// As on the JobManager: a storage this process cannot use (an
		// unsupported scheme) fails only jobs that checkpoint; the
		// savepoints of this one carry their state in the acknowledgements.
		if t.storage, err = snapshot.Open("jobmanager", zap.NewNop()); err != nil {
			return nil, fmt.Errorf("job configuration: %w", err)
		}
	}
	t.alignedTimeout = cfg.Duration(config.AlignedCheckpointTimeout)
	if t.alignedTimeout < 0 {
		return nil, fmt.Errorf("job configuration: %s must not be negative, got %s", config.AlignedCheckpointTimeout.Key, t.alignedTimeout)
	}
	switch {
	case t.exactlyOnce && cfg.Bool(config.UnalignedCheckpoints):
		t.uh = barrier.NewUnaligned(len(t.inputOf), t.alignedTimeout)
		t.handler = t.uh
		t.bufferEvents = make([]barrier.Event, len(t.inputOf))
		for ch := range t.bufferEvents {
			t.bufferEvents[ch] = barrier.BufferReceived{Channel: ch}
		}
	case t.exactlyOnce:
		t.handler = barrier.NewAligned(len(t.inputOf))
	default:
		t.handler = barrier.NewTracker(len(t.inputOf))
	}
	t.dataEnded = make([]bool, len(t.inputOf))

	t.log = t.env.Logger.With(
		zap.String("job", ex.GetJobId()),
		zap.String("task", t.name),
		zap.Int("subtask", t.subtask),
		zap.Int32("attempt", ex.GetAttempt()),
	)

	// Collectors, tail first: the tail emits into the outputs, operator i
	// into operator i+1.
	t.out = newOutputCollector(desc, t.bufferTimeout == 0)
	var next operator.Collector = t.out
	for i := len(t.chain) - 1; i >= 0; i-- {
		t.chain[i].out = next
		if i > 0 {
			next = &chainCollector{op: t.chain[i].op, next: next, id: t.chain[i].spec.ID, subtask: t.subtask}
		}
	}
	t.headOut = t.chain[0].out

	if m := env.Metrics; m != nil {
		labels := []string{ex.GetJobId(), t.name, strconv.Itoa(t.subtask)}
		t.promIn = m.RecordsIn.WithLabelValues(labels...)
		t.promOut = m.RecordsOut.WithLabelValues(labels...)
		t.promAlignment = m.CheckpointAlignment.WithLabelValues(labels...)
		t.promCheckpointBytes = m.CheckpointBytes.WithLabelValues(labels...)
		t.promInFlightBytes = m.CheckpointInFlightBytes.WithLabelValues(labels...)
	}
	return t, nil
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
		for _, c := range t.chain {
			if !c.opened {
				continue
			}
			var cerr error
			if c.src != nil {
				cerr = c.src.Close()
			} else {
				cerr = c.op.Close()
			}
			if cerr != nil {
				cerr = opError(c.spec.ID, t.subtask, fmt.Errorf("close: %w", cerr))
				if err == nil {
					err = cerr
				} else {
					t.log.Warn("closing operator after failure", zap.String("operator", c.spec.ID), zap.Error(cerr))
				}
			}
		}
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

	// Open tail first, as Flink does, so that an operator is open before
	// anything can emit into it.
	for i := len(t.chain) - 1; i >= 0; i-- {
		if t.canceled.Load() {
			return ErrCanceled // an Open may be slow: no more of them
		}
		c := t.chain[i]
		c.opened = true
		ctx := t.operatorContext(c, i)
		c.ctx = ctx
		if c.src != nil {
			err = c.src.Open(ctx)
		} else {
			err = c.op.Open(ctx)
		}
		if err != nil {
			return opError(c.spec.ID, t.subtask, fmt.Errorf("open: %w", err))
		}
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

func (t *Task) operatorContext(c *chainOp, i int) *operator.Context {
	maxP := int(t.desc.GetMaxParallelism())
	p := int(t.desc.GetParallelism())
	keyField := ""
	for _, in := range c.spec.Inputs {
		if in.Partition == jobgraph.Hash {
			keyField = in.Key
			break
		}
	}
	// A keyed operator (hash input) owns its subtask's key groups; any
	// other operator sees all of them.
	kg := state.KeyGroupRange{Start: 0, End: maxP - 1}
	if keyField != "" {
		kg = state.KeyGroupRangeForSubtask(maxP, p, t.subtask)
	}
	return &operator.Context{
		JobID:          t.exec.GetJobId(),
		JobName:        t.desc.GetJobName(),
		OperatorID:     c.spec.ID,
		Subtask:        t.subtask,
		Parallelism:    p,
		MaxParallelism: maxP,
		Attempt:        int(t.exec.GetAttempt()),
		KeyGroups:      kg,
		KeyField:       keyField,
		Logger:         t.log.With(zap.String("operator", c.spec.ID)),
		Stdout:         t.env.Stdout,
		Checkpointing:  t.checkpointing,
		ExactlyOnce:    t.exactlyOnce,
		Done:           t.cancelCh,
		Config:         t.cfg,
		AllowedPaths:   t.env.AllowedPaths,
	}
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

// startFlushTicker starts the goroutine that marks the output buffers due
// for a flush every buffer timeout. It never touches a buffer itself.
func (t *Task) startFlushTicker() (stop func()) {
	if t.bufferTimeout <= 0 || len(t.desc.GetOutputs()) == 0 {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(t.bufferTimeout)
		defer tk.Stop()
		for {
			select {
			case <-tk.C:
				t.flushDue.Store(true)
				select {
				case t.flushWake <- struct{}{}:
				default:
				}
			case <-quit:
				return
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
}

// maybeFlush flushes the outputs if the ticker marked them due.
func (t *Task) maybeFlush() {
	if t.flushDue.Load() {
		t.flushDue.Store(false)
		t.out.flush()
	}
}

// publish makes the task goroutine's counters visible to heartbeats and
// Prometheus.
func (t *Task) publish() {
	if d := t.nIn - t.pubIn; d != 0 {
		t.promIn.Add(float64(d))
		t.pubIn = t.nIn
		t.recordsIn.Store(t.nIn)
	}
	if d := t.out.count - t.pubOut; d != 0 {
		t.promOut.Add(float64(d))
		t.pubOut = t.out.count
		t.recordsOut.Store(t.out.count)
	}
}

// runMailbox runs the actions waiting in the mailbox.
func (t *Task) runMailbox() error {
	for t.pending.Load() > 0 {
		var a Action
		select {
		case a = <-t.mailbox:
		case <-t.cancelCh:
			return ErrCanceled
		}
		t.pending.Add(-1)
		if err := t.runAction(a); err != nil {
			return err
		}
	}
	return nil
}

func (t *Task) runAction(a Action) error {
	if err := a(); err != nil {
		return fmt.Errorf("control action: %w", err)
	}
	return nil
}

// runSource drives the head source until it reports EndOfInput.
func (t *Task) runSource() error {
	src := t.chain[0].src
	id := t.chain[0].spec.ID
	for {
		if t.canceled.Load() {
			return ErrCanceled
		}
		if t.pending.Load() > 0 {
			if err := t.runMailbox(); err != nil {
				return err
			}
		}
		// A stop-with-savepoint holds the source after its barrier, and
		// ends it once complete (or drained).
		if end, err := t.holdSource(); end || err != nil {
			return err
		}
		// Under backpressure, wait for an output buffer here rather than
		// blocked in an emit, where a checkpoint trigger waits until the
		// emit returns (Flink's mailbox suspends the source the same way).
		if p := t.out.unavailable(); p != nil {
			if err := t.awaitOutput(p); err != nil {
				return err
			}
			continue
		}
		status, retry, err := src.PollNext(t.headOut)
		t.publish()
		if err != nil {
			return opError(id, t.subtask, err)
		}
		t.maybeFlush()
		switch status {
		case operator.MoreAvailable:
		case operator.EndOfInput:
			return nil
		case operator.NothingAvailable:
			if retry <= 0 {
				retry = time.Millisecond
			}
			if err := t.idle(retry); err != nil {
				return err
			}
		default:
			return opError(id, t.subtask, fmt.Errorf("PollNext returned unknown status %d", status))
		}
	}
}

// awaitOutput waits until output p may have a buffer again, or the mailbox
// or the flush timer needs the task goroutine, and serves them.
func (t *Task) awaitOutput(p *network.ResultPartition) error {
	select {
	case <-p.Available():
	case a := <-t.mailbox:
		t.pending.Add(-1)
		return t.runAction(a)
	case <-t.flushWake:
		t.maybeFlush()
	case <-t.cancelCh:
		return ErrCanceled
	}
	return nil
}

// idle waits up to d (a source with nothing available) while serving the
// mailbox and the flush timer.
func (t *Task) idle(d time.Duration) error {
	if t.timer == nil {
		t.timer = time.NewTimer(d)
	} else {
		t.timer.Reset(d)
	}
	for {
		select {
		case <-t.timer.C:
			return nil
		case a := <-t.mailbox:
			t.pending.Add(-1)
			if err := t.runAction(a); err != nil {
				t.timer.Stop()
				return err
			}
		case <-t.flushWake:
			t.maybeFlush()
		case <-t.cancelCh:
			t.timer.Stop()
			return ErrCanceled
		}
	}
}

// runInput drives the head operator from the input gate until every
// channel delivered EndOfPartition. Once every channel delivered EndOfData
// (or EndOfPartition) the input has ended (endInput); checkpoint barriers
// and cancel markers may still come after that, until EndOfPartition.
func (t *Task) runInput() error {
	head := t.chain[0]
	g := t.gate
	for {
		if t.canceled.Load() {
			return ErrCanceled
		}
		if t.pending.Load() > 0 {
			if err := t.runMailbox(); err != nil {
				return err
			}
		}
		boe, ok, err := g.PollNext()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if t.canceled.Load() {
				return ErrCanceled
			}
			return fmt.Errorf("input of operator %q[%d]: %w", head.spec.ID, t.subtask, err)
		}
		if !ok {
			select {
			case <-g.Available():
			case a := <-t.mailbox:
				t.pending.Add(-1)
				if err := t.runAction(a); err != nil {
					return err
				}
			case <-t.flushWake:
				t.maybeFlush()
			case <-t.alignTimerC: // nil unless a timeoutable checkpoint aligns
				if err := t.alignmentTimerFired(); err != nil {
					return err
				}
			case <-t.cancelCh:
				return ErrCanceled
			}
			continue
		}
		if boe.IsEvent {
			if err := t.handleEvent(boe.Channel, boe.Event, boe.OvertakenData); err != nil {
				return err
			}
			continue
		}
		data := boe.Buffer.Data()
		if t.uh != nil {
			// The switch of a timed-out alignment first: the buffer is
			// then recorded if its channel's barrier has not arrived.
			if t.alignTimerC != nil {
				select {
				case <-t.alignTimerC:
					if err := t.alignmentTimerFired(); err != nil {
						boe.Buffer.Recycle()
						return err
					}
				default:
				}
			}
			if t.uh.Recording() {
				// Before its records are processed: a copy of the
				// buffer goes to the channel state if the handler says so.
				if err := t.recordBuffer(boe.Channel, data); err != nil {
					boe.Buffer.Recycle()
					return err
				}
			}
		}
		if t.deployedFinished {
			t.dropBuffer(data)
		} else {
			err = t.processBuffer(data)
		}
		boe.Buffer.Recycle()
		t.publish()
		if err != nil {
			return err
		}
		t.maybeFlush()
	}
}

// handleEvent handles an in-band event of a channel, in order with its
// data: every record before it has been processed, none after it.
// overtaken holds copies of the buffers a priority barrier overtook on its
// channel (network.BufferOrEvent.OvertakenData).
func (t *Task) handleEvent(channel int, ev network.Event, overtaken [][]byte) error {
	switch ev.Type {
	case network.CheckpointBarrier:
		b := barrier.BarrierReceived{Channel: channel, CheckpointID: ev.CheckpointID, Timestamp: ev.Timestamp, Flags: ev.Flags, Overtaken: len(overtaken)}
		return t.carryOut(t.handler.Step(t.now(), b), carried{overtaken: overtaken})
	case network.CancelCheckpointMarker:
		return t.stepBarrier(barrier.CancelMarkerReceived{Channel: channel, CheckpointID: ev.CheckpointID})
	case network.EndOfData:
		t.endOfDataReceived(ev.Flags)
		return t.channelEnded(channel)
	case network.EndOfPartition:
		// The end of input first: a checkpoint this completes (FLIP-147)
		// then covers everything the channel sent.
		if err := t.channelEnded(channel); err != nil {
			return err
		}
		return t.stepBarrier(barrier.EndOfPartitionReceived{Channel: channel})
	default:
		if channel >= 0 && channel < len(t.inputOf) {
			t.log.Debug("ignoring input event", zap.Stringer("event", ev.Type), zap.Int("input", t.inputOf[channel]))
		}
		return nil
	}
}

// processBuffer decodes the records of one buffer into the reused record
// and hands each to the head. The record does not alias the buffer (the
// decoder copies strings), so the buffer can be recycled afterwards.
func (t *Task) processBuffer(data []byte) error {
	head := t.chain[0]
	for len(data) > 0 {
		frame, rest, err := network.NextRecord(data)
		if err != nil {
			return fmt.Errorf("input of operator %q[%d]: %w", head.spec.ID, t.subtask, err)
		}
		if err := t.dec.Decode(frame, &t.rec); err != nil {
			return fmt.Errorf("input of operator %q[%d]: %w", head.spec.ID, t.subtask, err)
		}
		t.nIn++
		if err := head.op.ProcessRecord(&t.rec, t.headOut); err != nil {
			return opError(head.spec.ID, t.subtask, err)
		}
		data = rest
	}
	return nil
}

// attributedError is an error already attributed to its origin (an operator
// or an output); operators upstream in the chain that pass it on do not
// rename it.
type attributedError struct{ err error }

func (e *attributedError) Error() string { return e.err.Error() }
func (e *attributedError) Unwrap() error { return e.err }

// opError names the operator and subtask an error came from, unless the
// error was already attributed further down the chain.
func opError(id string, subtask int, err error) error {
	if errors.Is(err, ErrCanceled) {
		return err
	}
	var ae *attributedError
	if errors.As(err, &ae) {
		return ae
	}
	return &attributedError{fmt.Errorf("operator %q[%d]: %w", id, subtask, err)}
}

// chainCollector hands a record to the next operator of the chain.
type chainCollector struct {
	op      operator.Operator
	next    operator.Collector
	id      string
	subtask int
}

func (c *chainCollector) Collect(r *record.Record) error {
	if err := c.op.ProcessRecord(r, c.next); err != nil {
		return opError(c.id, c.subtask, err)
	}
	return nil
}
