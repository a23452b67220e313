package taskexec

import (
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/pkg/state"
	"github.com/weirstream/weir/proto/weirpb"
)

// operatorChain is the chain of operators of the task and the collectors
// that join them. New builds it (buildChain, then wire once the job
// configuration is known); from then on only the task goroutine calls into
// it. Its parts are fields of Task (embedded) so that the record path
// reaches chain[0] and headOut without an extra pointer.
type operatorChain struct {
	chain   []*chainOp
	headOut operator.Collector // chain[0].out: where the head emits
	out     *outputCollector   // where the tail emits: every output of the task
	name    string             // operator ids of the chain joined with " -> "
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

// buildChain decodes and builds the operators of the descriptor, checking
// that only the head is a source and that the head has inputs unless it is
// one. Nothing is opened.
func buildChain(desc *weirpb.TaskDeploymentDescriptor) (operatorChain, error) {
	var c operatorChain
	ids := make([]string, 0, len(desc.GetOperators()))
	for i, raw := range desc.GetOperators() {
		var spec jobgraph.Operator
		if err := jobgraph.DecodeOperator(raw, &spec); err != nil {
			return c, fmt.Errorf("operator %d of the chain: invalid JSON: %w", i, err)
		}
		if spec.ID == "" {
			return c, fmt.Errorf("operator %d of the chain: no id", i)
		}
		typ, ok := operator.Lookup(spec.Type)
		if !ok {
			return c, fmt.Errorf("operator %q: unknown type %q", spec.ID, spec.Type)
		}
		op := &chainOp{spec: &spec, kind: typ.Kind}
		var err error
		switch {
		case i == 0 && typ.Kind == operator.KindSource:
			if len(desc.GetInputs()) > 0 {
				return c, fmt.Errorf("operator %q: a source has no inputs, but the descriptor has %d", spec.ID, len(desc.GetInputs()))
			}
			if typ.NewSource == nil {
				return c, fmt.Errorf("operator %q: type %q cannot build a source", spec.ID, spec.Type)
			}
			op.src, err = typ.NewSource(spec.Properties)
		case typ.Kind == operator.KindSource:
			return c, fmt.Errorf("operator %q: a source (type %q) can only head a chain", spec.ID, spec.Type)
		default:
			if i == 0 && len(desc.GetInputs()) == 0 {
				return c, fmt.Errorf("operator %q: the head of a chain that is not a source needs inputs", spec.ID)
			}
			if typ.NewOperator == nil {
				return c, fmt.Errorf("operator %q: type %q cannot build an operator", spec.ID, spec.Type)
			}
			op.op, err = typ.NewOperator(spec.Properties)
		}
		if err != nil {
			return c, fmt.Errorf("operator %q: %w", spec.ID, err)
		}
		c.chain = append(c.chain, op)
		ids = append(ids, spec.ID)
	}
	c.name = strings.Join(ids, " -> ")
	return c, nil
}

// wire creates the collectors, tail first: the tail emits into the outputs
// of the descriptor, operator i into operator i+1. flushEach flushes every
// record (a buffer timeout of 0).
func (c *operatorChain) wire(desc *weirpb.TaskDeploymentDescriptor, subtask int, flushEach bool) {
	c.out = newOutputCollector(desc, flushEach)
	var next operator.Collector = c.out
	for i := len(c.chain) - 1; i >= 0; i-- {
		c.chain[i].out = next
		if i > 0 {
			next = &chainCollector{op: c.chain[i].op, next: next, id: c.chain[i].spec.ID, subtask: subtask}
		}
	}
	c.headOut = c.chain[0].out
}

// openChain opens the operators tail first, as Flink does, so that an
// operator is open before anything can emit into it. An operator is marked
// opened before its Open, so that closeChain closes it even if Open fails.
func (t *Task) openChain() error {
	for i := len(t.chain) - 1; i >= 0; i-- {
		if t.canceled.Load() {
			return ErrCanceled // an Open may be slow: no more of them
		}
		c := t.chain[i]
		c.opened = true
		ctx := t.operatorContext(c, i)
		c.ctx = ctx
		var err error
		if c.src != nil {
			err = c.src.Open(ctx)
		} else {
			err = c.op.Open(ctx)
		}
		if err != nil {
			return opError(c.spec.ID, t.subtask, fmt.Errorf("open: %w", err))
		}
	}
	return nil
}

// closeChain closes every opened operator, head first, and returns err, or
// the first close error if err is nil (it fails an otherwise successful
// task); later close errors are logged.
func (t *Task) closeChain(err error) error {
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
	return err
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
