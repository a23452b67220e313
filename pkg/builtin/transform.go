package builtin

import (
	"fmt"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/expr"
	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
)

func init() {
	operator.Register(&operator.Type{
		Name: "map",
		Kind: operator.KindTransform,
		Properties: []operator.PropertySpec{
			{Name: "expr", Required: true, Description: "expression returning a map, which becomes the output record"},
		},
		Validate: func(p operator.Properties) error {
			_, err := compileExpr(p, expr.ResultMap)
			return err
		},
		NewOperator: func(p operator.Properties) (operator.Operator, error) {
			prog, err := compileExpr(p, expr.ResultMap)
			if err != nil {
				return nil, err
			}
			return &mapOp{prog: prog}, nil
		},
	})
	operator.Register(&operator.Type{
		Name: "filter",
		Kind: operator.KindTransform,
		Properties: []operator.PropertySpec{
			{Name: "expr", Required: true, Description: "expression returning a bool; the record is kept when it is true"},
		},
		Validate: func(p operator.Properties) error {
			_, err := compileExpr(p, expr.ResultBool)
			return err
		},
		NewOperator: func(p operator.Properties) (operator.Operator, error) {
			prog, err := compileExpr(p, expr.ResultBool)
			if err != nil {
				return nil, err
			}
			return &filterOp{prog: prog}, nil
		},
	})
	operator.Register(&operator.Type{
		Name: "flat-map",
		Kind: operator.KindTransform,
		Properties: []operator.PropertySpec{
			{Name: "expr", Required: true, Description: "expression returning a list of maps, each emitted as a record (in order)"},
		},
		Validate: func(p operator.Properties) error {
			_, err := compileExpr(p, expr.ResultListOfMaps)
			return err
		},
		NewOperator: func(p operator.Properties) (operator.Operator, error) {
			prog, err := compileExpr(p, expr.ResultListOfMaps)
			if err != nil {
				return nil, err
			}
			f := &flatMapOp{prog: prog}
			f.emit = f.collect // one method value, not one per record
			return f, nil
		},
	})
}

// compileExpr compiles the `expr` property for the wanted result type. It
// runs at submission (Validate) and again when the operator is built, on
// the TaskManager.
func compileExpr(p operator.Properties, want expr.ResultType) (*expr.Program, error) {
	src, err := p.RequiredString("expr")
	if err != nil {
		return nil, err
	}
	prog, err := expr.Compile(src, want)
	if err != nil {
		return nil, fmt.Errorf("property %q: %w", "expr", err)
	}
	return prog, nil
}

// setLimits gives prog the job's cost limit and the task's cancellation:
// a runaway expression fails the job, and a canceled task stops in the
// middle of an evaluation.
func setLimits(prog *expr.Program, ctx *operator.Context) error {
	l := expr.Limits{Done: ctx.Done}
	if ctx.Config != nil {
		l.CostLimit = uint64(ctx.Config.Int(config.ExpressionCostLimit))
	}
	return prog.SetLimits(l)
}

// mapOp emits the map its expression returns for each record.
type mapOp struct {
	prog *expr.Program
	id   string
	out  record.Record
}

func (m *mapOp) Open(ctx *operator.Context) error {
	m.id = ctx.OperatorID
	return setLimits(m.prog, ctx)
}

func (m *mapOp) ProcessRecord(in *record.Record, out operator.Collector) error {
	m.out.Reset()
	if err := m.prog.EvalMap(in, &m.out); err != nil {
		return fmt.Errorf("map %q: %w", m.id, err) // err names the expression and record
	}
	return out.Collect(&m.out)
}

func (m *mapOp) EndInput(operator.Collector) error { return nil }
func (m *mapOp) Close() error                      { return nil }

// filterOp passes on the records for which its expression is true.
type filterOp struct {
	prog *expr.Program
	id   string
}

func (f *filterOp) Open(ctx *operator.Context) error {
	f.id = ctx.OperatorID
	return setLimits(f.prog, ctx)
}

func (f *filterOp) ProcessRecord(in *record.Record, out operator.Collector) error {
	keep, err := f.prog.EvalBool(in)
	if err != nil {
		return fmt.Errorf("filter %q: %w", f.id, err)
	}
	if !keep {
		return nil
	}
	return out.Collect(in)
}

func (f *filterOp) EndInput(operator.Collector) error { return nil }
func (f *filterOp) Close() error                      { return nil }

// flatMapOp emits each map of the list its expression returns.
type flatMapOp struct {
	prog *expr.Program
	id   string
	emit func(*record.Record) error
	out  operator.Collector // the collector of the current ProcessRecord
	// collectErr tells a downstream failure (returned unchanged) from an
	// evaluation error (wrapped with the operator and record).
	collectErr error
}

func (f *flatMapOp) Open(ctx *operator.Context) error {
	f.id = ctx.OperatorID
	return setLimits(f.prog, ctx)
}

func (f *flatMapOp) collect(r *record.Record) error {
	if err := f.out.Collect(r); err != nil {
		f.collectErr = err
		return err
	}
	return nil
}

func (f *flatMapOp) ProcessRecord(in *record.Record, out operator.Collector) error {
	f.out, f.collectErr = out, nil
	err := f.prog.EvalList(in, f.emit)
	f.out = nil
	if err != nil {
		if f.collectErr != nil {
			return f.collectErr
		}
		return fmt.Errorf("flat-map %q: %w", f.id, err)
	}
	return nil
}

func (f *flatMapOp) EndInput(operator.Collector) error { return nil }
func (f *flatMapOp) Close() error                      { return nil }
